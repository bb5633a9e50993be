"""``jaxotdm verify``: the theorem-verification report (the main job).

Runs, on the embedded default (scikit-learn digits plus 2-D point sets) or the user's own points:

1. convergence of the probability-flow map to the semi-discrete OT map (the Monge-Ampere gradient)
   as the termination time grows, per schedule: distances with error bars, self-convergence, a
   fitted exponential rate with a confidence interval, and the measured floor;
2. the forward direction (Thm 3.11) on a 2-D set;
3. the prior error W2(p_T, q_T) against T, the end-of-sampling error of the exact flow, and the OT
   correction with the smoothing sweep (Table 2 analogue).

Writes report.md, report.json and PNG figures to --out. Measurements are reported as measured.
"""

from __future__ import annotations

import argparse
import math
import time

import jax
import numpy as np

from jaxotdm.cli import _common as C

DEFAULT_TIMES = {
    "ou": [0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 10.0, 12.0],
    "vp": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.4],
    "subvp": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.4],
    "cosine": [0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.995],
    "ve": [0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
    "edm": [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 80.0],
}
PRIOR_T = {"ou": 2.0, "vp": 0.3, "subvp": 0.3, "cosine": 0.7, "ve": 0.5, "edm": 5.0}


def register(sub) -> None:
    p = sub.add_parser("verify", help="theorem-verification report (the main job)", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    C.add_dataset_args(p)
    p.add_argument("--toy", default="eight_gaussians,two_points",
                   help="comma-separated 2-D point sets to run beside the dataset ('' for none)")
    p.add_argument("--toy-points", type=int, default=32, help="points per 2-D toy set")
    p.add_argument("--schedules", default="ou,vp,subvp,cosine,ve,edm",
                   help=f"comma-separated subset of {','.join(C.SCHEDULE_CHOICES)}")
    p.add_argument("--times", default=None, help="comma-separated termination times (overrides per-schedule defaults)")
    p.add_argument("--num-samples", type=int, default=2048, help="Monte Carlo samples per measurement")
    p.add_argument("--ot-tol", type=float, default=0.1, help="semi-discrete OT max relative mass error")
    p.add_argument("--eps", type=float, default=1e-3)
    p.add_argument("--quick", action="store_true", help="small sizes: under 2 minutes on 2 cores")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--out", default="jaxotdm-out/verify")
    p.set_defaults(func=run)


class _Progress:
    def __init__(self, enabled: bool, total: int):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, disable=not enabled, unit="task", dynamic_ncols=True)

    def task(self, label: str):
        def cb(i, n, msg):
            self.bar.set_description(f"{label}: {msg} ({i + 1}/{n})")

        return cb

    def done_task(self):
        self.bar.update(1)

    def close(self):
        self.bar.close()


def _parse_list(s: str, name: str, cast=str):
    try:
        return [cast(v) for v in s.split(",") if v.strip()]
    except ValueError as exc:
        raise ValueError(f"`{name}` must be a comma-separated list: {exc}") from exc


def run(args: argparse.Namespace) -> int:
    import jaxotdm as jo
    from jaxotdm.verify import convergence_to_brenier

    t_all = time.perf_counter()
    schedules = _parse_list(args.schedules, "--schedules")
    for s in schedules:
        C.make_schedule(s)
    toys = _parse_list(args.toy, "--toy")
    times_override = _parse_list(args.times, "--times", float) if args.times else None
    if args.num_samples < 2:
        raise ValueError(f"`--num-samples` must be >= 2, got {args.num_samples}.")
    quick = args.quick
    n_samples = min(args.num_samples, 512) if quick else args.num_samples
    # Cost: the OT solve needs (z_n / (0.6 tol))^2 / min(nu) Monte Carlo samples per pass, i.e. ~9M for all
    # 1797 digits at tol 0.1 (minutes per schedule on 2 cores), so the default uses a fixed subset;
    # --max-points changes it (all 1797 converge: tests/test_ot_semidiscrete.py, slow marker).
    default_points = {"digits": 150 if quick else 300, "mnist": 100 if quick else 300}.get(args.dataset)
    max_points = args.max_points if args.max_points is not None else default_points
    points, shape, desc = C.load_dataset(args.dataset, max_points=max_points, npz_key=args.npz_key)
    if quick:
        schedules = [s for s in schedules if s in ("ou", "ve")] or schedules[:1]
    datasets = [(args.dataset, points, desc)]
    for name in toys:
        tp, _, tdesc = C.load_dataset(name, toy_points=args.toy_points)
        datasets.append((name, tp, tdesc))
    out = C.output_dir(args.out)
    key = jax.random.key(args.seed)
    report = {"settings": {**vars(args), "func": None, "num_samples_used": n_samples, "quick": quick},
              "datasets": {n: d for n, _, d in datasets}, "convergence": [], "forward": [], "timings": {}}
    n_tasks = len(datasets) * len(schedules) + 1
    bar = _Progress(not args.no_progress, n_tasks)
    try:
        # 1. backward convergence to the semi-discrete OT map, per dataset and schedule
        for di, (dname, pts, _) in enumerate(datasets):
            weights = None
            if dname == "two_points":  # unequal weights: the OT boundary is not fixed by symmetry
                weights = np.array([0.7, 0.3], np.float32)
            mu = jo.EmpiricalMeasure(pts, weights)
            from jaxotdm.ot import semidiscrete_ot

            t0 = time.perf_counter()
            smap = semidiscrete_ot(mu.points, mu.weights, key=jax.random.fold_in(key, 1000 + di), tol=args.ot_tol)
            report["timings"][f"semidiscrete_ot[{dname}]"] = time.perf_counter() - t0
            for si, sname in enumerate(schedules):
                sched = C.make_schedule(sname)
                times = times_override or DEFAULT_TIMES[sname]
                if quick:
                    times = times[::2]
                res = convergence_to_brenier(
                    mu, sched, times, key=jax.random.fold_in(key, 10 * di + si), num_samples=n_samples,
                    eps=args.eps, ot_map=smap, progress=bar.task(f"{dname}/{sname}"),
                )
                bar.done_task()
                report["convergence"].append(_summary(dname, sname, res))
        # 2. forward direction (Thm 3.11) on the first 2-D set, OU
        fwd_name = toys[0] if toys else None
        if fwd_name is not None:
            tp = [p for n, p, _ in datasets if n == fwd_name][0]
            mu = jo.EmpiricalMeasure(tp)
            res = convergence_to_brenier(
                mu, jo.OU(), [1.0, 2.0, 3.0, 4.0, 6.0, 8.0] if not quick else [1.0, 2.0, 4.0, 8.0],
                key=jax.random.fold_in(key, 7), num_samples=min(n_samples, 1024), direction="forward", T0=0.5,
                ot_points=1024 if quick else 2048, ot_mc_per_point=64 if quick else 256, ot_tol=args.ot_tol,
                progress=bar.task(f"{fwd_name}/ou forward"),
            )
            bar.done_task()
            report["forward"].append(_summary(fwd_name, "ou", res))
        # 3. prior error and OT correction (jaxotdm.verify.prior)
        report["prior"] = _prior_section(datasets, schedules, key, quick, n_samples, args.eps)
    finally:
        bar.close()
    report["timings"]["total_seconds"] = time.perf_counter() - t_all
    figures = _figures(report, out)
    C.write_json(out / "report.json", report)
    (out / "report.md").write_text(_markdown(report, figures))
    print(f"[verify] wrote {out / 'report.md'}, report.json and {len(figures)} figures "
          f"in {report['timings']['total_seconds']:.0f} s")
    return 0


def _summary(dname, sname, r) -> dict:
    def fit(f):
        return {"rate": f.rate, "rate_ci": list(f.rate_ci), "r2": f.r2, "num_points": f.num_points}

    return {
        "dataset": dname, "schedule": sname, "direction": r.direction,
        "times": r.termination_times.tolist(), "log_snr": r.log_snr.tolist(),
        "l2_to_ot": r.l2_to_ot.tolist(), "l2_to_ot_se": r.l2_to_ot_se.tolist(),
        "mismatch_fraction": r.mismatch_fraction.tolist(), "mismatch_se": r.mismatch_se.tolist(),
        "self_convergence": r.self_convergence.tolist(), "self_convergence_se": r.self_convergence_se.tolist(),
        "fit_self_time": fit(r.fit_time), "fit_self_log_snr": fit(r.fit_log_snr), "fit_to_ot": fit(r.fit_to_ot),
        "floor": r.floor, "floor_se": r.floor_se, "floor_distinguishable": r.floor_distinguishable,
        "ot_resolution": r.ot_resolution, "nfe": r.nfe.tolist(), "settings": r.settings,
    }


def _prior_section(datasets, schedules, key, quick, n_samples, eps):
    try:
        from jaxotdm.verify import ot_correction, prior_error
    except ImportError:
        return {"skipped": "jaxotdm.verify.prior is not available"}
    return _run_prior(prior_error, ot_correction, datasets, schedules, key, quick, n_samples, eps)


def _run_prior(prior_error, ot_correction, datasets, schedules, key, quick, n_samples, eps):
    """Prior error against T, the end-of-sampling error (Thm 3.2), and the OT correction (Table 2 analogue).

    Runs on the first 2-D point set (the semi-discrete solves behind the bounds are the cost).
    """
    import jaxotdm as jo

    toys = [(n, p) for n, p, _ in datasets if p.shape[1] == 2 and n != "two_points"]
    if not toys:
        return {"skipped": "needs a 2-D point set other than two_points (--toy)"}
    name, pts = toys[0]
    mu = jo.EmpiricalMeasure(pts.astype(np.float64) if pts.dtype == np.float64 else pts)
    sched = jo.OU()
    t0 = time.perf_counter()
    times = [0.5, 1.5, 3.0] if quick else [0.5, 1.0, 1.5, 2.0, 3.0, 4.0]
    rows = []
    for i, T in enumerate(times):
        r = prior_error(mu, sched, T, key=jax.random.fold_in(key, 500 + i), num_samples=1024 if quick else 2048,
                        eps=eps, end_of_sampling=(i == 0), corrected=False, num_kl_samples=2**12 if quick else 2**14)
        rows.append({
            "T": T, "alpha": float(r.alpha), "w2": float(r.w2), "lower": float(r.lower), "upper": float(r.upper),
            "upper_se": float(r.upper_se), "end_w2": float(r.end_w2), "end_null_upper": float(r.end_null_upper),
            "end_positive": bool(r.end_positive) if i == 0 else None, "ratio_lower": float(r.ratio_lower),
            "ratio_upper": float(r.ratio_upper),
        })
    lo = np.array([r["lower"] for r in rows])
    al = np.array([r["alpha"] for r in rows])
    slope = float(np.polyfit(np.log(al), np.log(lo), 1)[0]) if np.all(lo > 0) else float("nan")
    oc = ot_correction(mu, sched, 1.0, key=jax.random.fold_in(key, 600), tau_scale=10.0,
                       tolerances=(0.5, 0.2, 0.1) if quick else (0.5, 0.2, 0.1, 0.05),
                       num_samples=2**16 if quick else 2**18, num_tau_samples=1024 if quick else 2048,
                       prior_kwargs={"end_of_sampling": False, "corrected": False, "num_kl_samples": 2**12})
    return {
        "dataset": name, "schedule": "ou", "rows": rows, "slope_log_lower_vs_log_alpha": slope,
        "ot_correction": {
            "T": 1.0, "num_points": int(oc.num_points), "tolerances": np.asarray(oc.tolerances).tolist(),
            "solver_w2": np.asarray(oc.solver_w2).tolist(), "certificates": np.asarray(oc.certificates).tolist(),
            "solver_w2_floor_upper": float(oc.solver_w2_floor_upper), "taus": np.asarray(oc.taus).tolist(),
            "effective_taus": np.asarray(oc.effective_taus).tolist(), "tau_w2": np.asarray(oc.tau_w2).tolist(),
            "tau_w2_floor_upper": float(oc.tau_w2_floor_upper), "uncorrected_w2": float(oc.uncorrected_w2),
            "uncorrected_bracket": [float(oc.uncorrected_lower), float(oc.uncorrected_upper)],
        },
        "seconds": time.perf_counter() - t0,
    }


def _figures(report, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figs = []
    by_ds = {}
    for r in report["convergence"]:
        by_ds.setdefault(r["dataset"], []).append(r)
    for dname, rows in by_ds.items():
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
        for r in rows:
            lam = -np.asarray(r["log_snr"])
            l2, se = np.asarray(r["l2_to_ot"]), np.asarray(r["l2_to_ot_se"])
            (line,) = axes[0].plot(lam, np.maximum(l2, 1e-12), "o-", ms=3, label=r["schedule"])
            axes[0].fill_between(lam, np.maximum(l2 - 2 * se, 1e-12), l2 + 2 * se, color=line.get_color(), alpha=0.15)
            sc = np.asarray(r["self_convergence"])[:-1]
            axes[1].plot(lam[:-1], np.maximum(sc, 1e-12), "o-", ms=3, color=line.get_color(), label=r["schedule"])
            f = r["fit_self_log_snr"]
            if f["num_points"] >= 3 and math.isfinite(f["rate"]):
                fit_line = np.exp(_intercept(r, lam[:-1], sc) - f["rate"] * lam[:-1])
                axes[1].plot(lam[:-1], fit_line, "--", lw=1, color=line.get_color())
        axes[0].set(yscale="log", xlabel="-log-SNR at the termination time", ylabel="L2 distance to the OT map",
                    title=f"{dname}: flow map vs semi-discrete OT map (±2 SE)")
        axes[1].set(yscale="log", xlabel="-log-SNR at the termination time", ylabel="L2 distance to the map at the largest T",
                    title="self-convergence, with fitted exponential (dashed)")
        for ax in axes:
            ax.grid(alpha=0.3, which="both")
            ax.legend(fontsize=7)
        fig.tight_layout()
        path = out / f"convergence_{dname}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        figs.append(path.name)
    for r in report["forward"]:
        fig, ax = plt.subplots(figsize=(5, 3.8))
        t = np.asarray(r["times"])
        ax.errorbar(t, r["l2_to_ot"], yerr=2 * np.asarray(r["l2_to_ot_se"]), fmt="o-", ms=3, label="to Brenier p_T0 -> N(0,I)")
        ax.plot(t[:-1], np.maximum(r["self_convergence"][:-1], 1e-12), "s--", ms=3, label="self-convergence")
        res = max(r["ot_resolution"]["barycentre_mc_se"], r["ot_resolution"]["discretisation_scale_n^(-1/d)"])
        ax.axhline(3 * res, color="gray", lw=0.8, label="3 x Brenier resolution (MC, n^-1/d)")
        ax.set(yscale="log", xlabel="s (OU time)", ylabel="L2 distance", title=f"forward direction (Thm 3.11), {r['dataset']}")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3, which="both")
        fig.tight_layout()
        path = out / f"forward_{r['dataset']}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        figs.append(path.name)
    figs += _prior_figures(report.get("prior", {}), out)
    return figs


def _intercept(r, x, y):
    f = r["fit_self_log_snr"]
    m = (np.asarray(y) > 0) & np.isfinite(y)
    return float(np.mean(np.log(np.asarray(y)[m]) + f["rate"] * np.asarray(x)[m])) if m.any() else 0.0


def _prior_figures(prior, out):
    if "rows" not in prior:
        return []
    import matplotlib.pyplot as plt

    rows = prior["rows"]
    T = np.array([r["T"] for r in rows])
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    ax = axes[0]
    lo, up = np.array([r["lower"] for r in rows]), np.array([r["upper"] for r in rows])
    ax.fill_between(T, lo, up, alpha=0.25, label="W2(p_T, q_T) bracket")
    ax.plot(T, [r["w2"] for r in rows], "o-", ms=3, label="estimate")
    al = np.array([r["alpha"] for r in rows])
    ax.plot(T, lo[0] * al / al[0], "k--", lw=0.8, label="alpha(T) rate")
    ax.set(yscale="log", xlabel="termination time T (OU)", ylabel="prior error", title=f"prior error, {prior['dataset']}")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")
    oc = prior["ot_correction"]
    ax = axes[1]
    ax.plot(oc["effective_taus"], oc["tau_w2"], "o-", ms=3, label="W2(smoothed OT pushforward, diffused set)")
    ax.axhline(oc["tau_w2_floor_upper"], color="gray", lw=0.8, label="Monte Carlo floor (95%)")
    ax.axhline(oc["uncorrected_w2"], color="r", lw=0.8, ls="--", label="uncorrected prior error")
    ax.set(xlabel="tau (effective)", ylabel="W2", title=f"OT correction and smoothing (T = {oc['T']})")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = out / "prior_error_and_tau.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path.name]


def _fmt(v, p=3):
    if v is None:
        return "-"
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        return f"{v:.{p}g}"
    return str(v)


def _markdown(report, figures) -> str:
    L = ["# jaxotdm verify: probability flow vs the Monge-Ampere (semi-discrete OT) map", ""]
    s = report["settings"]
    L += [
        "Claims under test (arXiv 2410.13431): as the termination time grows the probability-flow map converges "
        "exponentially to the gradient of the Monge-Ampere solution (semi-discrete OT map); the prior error cannot be "
        "fixed by a better score; a semi-discrete OT map removes it. Everything below is measured, not assumed "
        "(Lavenant & Santambrogio 2022: flow maps are not OT maps in general).",
        "",
        f"Datasets: {'; '.join(f'**{k}**: {v}' for k, v in report['datasets'].items())}.",
        f"Monte Carlo samples per measurement: {s['num_samples_used']}; end time eps = {s['eps']}; "
        f"OT tolerance (max relative cell-mass error) {s['ot_tol']}; seed {s['seed']}; quick = {s['quick']}.",
        "",
        "## 1. Backward direction: prior at time s -> data, against the semi-discrete OT map N(0, I) -> data",
        "",
        "`l2` = L2 distance (± standard error) between the denoised flow output and the OT map's output for the same "
        "Gaussian draw; `mis` = fraction of Gaussian mass landing on a different data point; `self` = L2 distance to the "
        "flow map at the largest s. Rates are per unit of -log-SNR (exp(-rate x (-lambda))) with 95% CIs.",
        "",
    ]
    for r in report["convergence"]:
        L += _table(r)
    if report["forward"]:
        L += ["## 2. Forward direction (Thm 3.11): p_T0 -> p_s against the Brenier map p_T0 -> N(0, I)", ""]
        for r in report["forward"]:
            L += [f"Brenier map: {r['ot_resolution']['kind']}; barycentre MC error "
                  f"{_fmt(r['ot_resolution']['barycentre_mc_se'])}, discretisation scale n^(-1/d) = "
                  f"{_fmt(r['ot_resolution'].get('discretisation_scale_n^(-1/d)'))}.", ""]
            L += _table(r)
    L += ["## 3. Prior error and OT correction", ""]
    L += _prior_markdown(report.get("prior", {}))
    L += ["## Figures", ""] + [f"![{f}]({f})" for f in figures] + [""]
    L += ["## Timing", ""] + [f"- {k}: {v:.1f} s" for k, v in report["timings"].items()] + [""]
    return "\n".join(L)


def _table(r) -> list[str]:
    f, ft, fo = r["fit_self_log_snr"], r["fit_self_time"], r["fit_to_ot"]
    L = [f"### {r['dataset']} / {r['schedule']} ({r['direction']})", ""]
    L += ["| s | -log-SNR | l2 to OT | ± SE | mis | self | NFE |", "|---|---|---|---|---|---|---|"]
    for i, t in enumerate(r["times"]):
        L.append(
            f"| {t:g} | {-r['log_snr'][i]:.3g} | {_fmt(r['l2_to_ot'][i])} | {_fmt(r['l2_to_ot_se'][i], 2)} | "
            f"{_fmt(r['mismatch_fraction'][i])} | {_fmt(r['self_convergence'][i])} | {int(r['nfe'][i])} |"
        )
    ci = lambda x: f"[{_fmt(x['rate_ci'][0])}, {_fmt(x['rate_ci'][1])}]"  # noqa: E731
    L += [
        "",
        f"- self-convergence rate: {_fmt(f['rate'])} per unit -log-SNR, 95% CI {ci(f)} "
        f"({f['num_points']} points, R² {_fmt(f['r2'])}); per unit time {_fmt(ft['rate'])} {ci(ft)}.",
        f"- distance-to-OT decay rate (resolvable range): {_fmt(fo['rate'])} per unit time, 95% CI {ci(fo)} "
        f"({fo['num_points']} points).",
        f"- floor (distance at the largest s): {_fmt(r['floor'])} ± {_fmt(r['floor_se'], 2)}; "
        f"**{'distinguishable from zero' if r['floor_distinguishable'] else 'not distinguishable from zero'}** at this "
        f"Monte Carlo and OT resolution (OT map: max relative mass error "
        f"{_fmt(r['ot_resolution'].get('max_relative_mass_error'))}, mass TV "
        f"{_fmt(r['ot_resolution'].get('mass_total_variation'))}).",
        f"- time: {r['settings']['seconds']:.1f} s.",
        "",
    ]
    return L


def _prior_markdown(prior) -> list[str]:
    if "skipped" in prior:
        return [f"Skipped: {prior['skipped']}.", ""]
    L = [f"Dataset {prior['dataset']}, OU schedule. W2(p_T, q_T) is bracketed by the Gelbrich lower bound and the "
         "smaller of a coupling and a Talagrand (KL) upper bound (see jaxotdm.verify.prior).", "",
         "| T | alpha(T) | lower | estimate | upper | end-of-sampling W2(p_eps, q_eps) | null 95% |", "|---|---|---|---|---|---|---|"]
    for r in prior["rows"]:
        end = f"{_fmt(r['end_w2'])} | {_fmt(r['end_null_upper'])}" if r["end_positive"] is not None else "- | -"
        L.append(f"| {r['T']:g} | {_fmt(r['alpha'])} | {_fmt(r['lower'])} | {_fmt(r['w2'])} | {_fmt(r['upper'])} | {end} |")
    r0 = prior["rows"][0]
    L += ["", f"- slope of log(lower bound) against log alpha(T): {_fmt(prior['slope_log_lower_vs_log_alpha'])} "
          "(1 when the data mean is away from 0, 2 for centred data).",
          f"- Thm 3.2 (end of sampling with the exact score, started from q_T at T = {r0['T']:g}): W2(p_eps, q_eps) = "
          f"{_fmt(r0['end_w2'])} against a null (i.i.d. resampling noise) 95% level of {_fmt(r0['end_null_upper'])}: "
          f"**{'strictly positive' if r0['end_positive'] else 'not distinguishable from the null'}**; ratio to the prior "
          f"error in [{_fmt(r0['ratio_lower'])}, {_fmt(r0['ratio_upper'])}].", ""]
    oc = prior["ot_correction"]
    L += [f"OT correction at T = {oc['T']} ({oc['num_points']} diffused points, one noise draw each):", "",
          "| solver tolerance | W2(grad u_h # N(0,I), points) | certificate |", "|---|---|---|"]
    labels = ["initial heights" if not math.isfinite(t) else f"{t:g}" for t in oc["tolerances"]]
    for tol, w, c in zip(labels, oc["solver_w2"], oc["certificates"], strict=True):
        L.append(f"| {tol} | {_fmt(w)} | {_fmt(c)} |")
    L += ["", f"Monte Carlo floor of that W2 (95%): {_fmt(oc['solver_w2_floor_upper'])}; uncorrected prior error "
          f"{_fmt(oc['uncorrected_w2'])} (bracket [{_fmt(oc['uncorrected_bracket'][0])}, {_fmt(oc['uncorrected_bracket'][1])}]).",
          "", "| tau (paper) | tau (effective, x10 for 2-D scale) | W2 of the smoothed map's pushforward |", "|---|---|---|"]
    for t, te, w in zip(oc["taus"], oc["effective_taus"], oc["tau_w2"], strict=True):
        L.append(f"| {t:g} | {te:g} | {_fmt(w)} |")
    L += ["", f"Floor of the smoothed-map estimator (95%): {_fmt(oc['tau_w2_floor_upper'])}. Time {prior['seconds']:.0f} s.", ""]
    return L
