"""``jaxotdm verify``: the theorem-verification report (the main job), and the floor study.

The main job (``--study main``) runs, on the embedded default (scikit-learn digits plus 2-D point sets) or
the user's own points:

1. the backward direction per dataset and schedule: the probability-flow map from the prior at time ``s``
   against the semi-discrete OT map (the Monge-Ampere gradient) as ``s`` grows: distances with error
   bars, misrouted mass, the transport-cost gap of the flow's limit map to OT, self-convergence with a
   fitted exponential rate, and the measured floor;
2. the exact one-dimensional control (the flow's limit is the monotone rearrangement = the OT map);
3. the forward direction (Thm 3.11) on a 2-D set, with the computable part of the theorem's right side;
4. the prior error W2(p_T, q_T) against T, the end-of-sampling error of the exact flow (Thm 3.2), and the
   OT correction with the smoothing sweep (Table 2 analogue).

``--study floor`` measures how the floor scales over random point clouds (sizes x dimensions x equal or
Dirichlet weights) and digits subsets.

Writes report.md, report.json and PNG figures to --out (atomically; existing results are kept unless
--overwrite). Every option is checked before any computation. Measurements are reported as measured.
"""

from __future__ import annotations

import argparse
import os
import time
from types import SimpleNamespace

from jaxotdm.cli import _common as C

DEFAULT_TIMES = {
    "ou": [0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 10.0, 12.0],
    "vp": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.4],
    "subvp": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.4],
    "cosine": [0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.995],
    "ve": [0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
    "edm": [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 80.0],
}
FORWARD_T0 = 0.5
FORWARD_TIMES = ([1.0, 2.0, 3.0, 4.0, 6.0, 8.0], [1.0, 2.0, 4.0, 8.0])  # full, quick
CONTROL_TIMES = (4.0, 6.0, 8.0, 10.0, 12.0, 16.0, 20.0)
PRIOR_TIMES = ([0.5, 1.0, 1.5, 2.0, 3.0, 4.0], [0.5, 2.0, 3.0, 4.0])


def register(sub) -> None:
    p = sub.add_parser("verify", help="theorem-verification report (the main job)", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    C.add_dataset_args(p)
    p.add_argument("--study", choices=("main", "floor"), default="main",
                   help="'main': the verification report; 'floor': how the flow's floor scales (random clouds)")
    p.add_argument("--toy", default="eight_gaussians,two_points",
                   help="comma-separated 2-D point sets to run beside the dataset ('' for none)")
    p.add_argument("--toy-points", type=int, default=32, help="points per 2-D toy set")
    p.add_argument("--schedules", default="ou,vp,subvp,cosine,ve,edm",
                   help="comma-separated subset of ou,vp,subvp,cosine,ve,edm")
    p.add_argument("--times", default=None,
                   help="comma-separated termination times for every schedule (default: per-schedule grids)")
    p.add_argument("--num-samples", type=int, default=2048, help="Monte Carlo samples per measurement")
    p.add_argument("--ot-tol", type=float, default=0.1, help="semi-discrete OT max relative mass error")
    p.add_argument("--eps", type=float, default=1e-3, help="end time of the backward flow")
    p.add_argument("--floor-ns", default="2,3,5,10,30,100,300", help="--study floor: numbers of points")
    p.add_argument("--floor-ds", default="1,2,4,8,16,64", help="--study floor: dimensions")
    p.add_argument("--floor-samples", type=int, default=2048, help="--study floor: Gaussian draws per cloud")
    p.add_argument("--quick", action="store_true", help="small sizes: about a minute on 2 cores")
    p.add_argument("--seed", type=int, default=0, help="PRNG seed")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--out", default="jaxotdm-out/verify", help="output folder")
    p.add_argument("--overwrite", action="store_true", help="replace results already in --out")
    p.set_defaults(func=run)


# ------------------------------------------------------------------------------------------ validation
def _names(text: str, option: str, choices) -> list[str]:
    names = [s.strip() for s in str(text).split(",") if s.strip()]
    bad = [s for s in names if s not in choices]
    if bad:
        raise ValueError(f"`{option}` must be a comma-separated subset of {','.join(choices)}; got {text!r}.")
    if len(set(names)) != len(names):
        raise ValueError(f"`{option}` lists a name twice: {text!r}.")
    return names


def _check_times(times, option: str, sched_name: str, schedule) -> list[float]:
    if len(times) < 2 or any(b <= a for a, b in zip(times, times[1:], strict=False)):
        raise ValueError(f"`{option}` must hold at least 2 strictly increasing times, got {times}.")
    for t in times:
        try:
            C.time_option(t, option, schedule)
        except ValueError as exc:
            raise ValueError(f"{exc} (schedule {sched_name!r})") from None
    return times


def _validate(args) -> SimpleNamespace:
    """Every option, before any computation; messages name the option as typed."""
    from jaxotdm import data as D

    cfg = SimpleNamespace(study=args.study, quick=bool(args.quick), seed=C.seed(args.seed))
    cfg.num_samples = C.positive_int(args.num_samples, "--num-samples", minimum=2)
    if cfg.quick:
        cfg.num_samples = min(cfg.num_samples, 512)
    cfg.ot_tol = C.positive_float(args.ot_tol, "--ot-tol", upper=1.0)
    cfg.eps = C.positive_float(args.eps, "--eps")
    cfg.schedules = _names(args.schedules, "--schedules", tuple(C.SCHEDULE_CHOICES))
    if not cfg.schedules:
        raise ValueError("`--schedules` must name at least one schedule.")
    override = C.float_list(args.times, "--times") if args.times else None
    cfg.times = {}
    for name in cfg.schedules:  # every schedule asked for is checked, also those --quick leaves out
        sched = C.make_schedule(name)
        times = override or DEFAULT_TIMES[name]
        times = _check_times(times[::2] if cfg.quick and not override else times, "--times", name, sched)
        C.time_option(cfg.eps, "--eps", sched)
        if not cfg.eps < times[0]:
            raise ValueError(f"`--eps` must be below every termination time, got {cfg.eps} >= {times[0]} "
                             f"(schedule {name!r}).")
        cfg.times[name] = times
    if cfg.quick:
        cfg.schedules = [s for s in cfg.schedules if s in ("ou", "ve")] or cfg.schedules[:1]
    cfg.toys = _names(args.toy, "--toy", D.TOY_2D)
    cfg.toy_points = C.positive_int(args.toy_points, "--toy-points", minimum=2)
    cfg.floor_ns = C.int_list(args.floor_ns, "--floor-ns", minimum=2)
    cfg.floor_ds = C.int_list(args.floor_ds, "--floor-ds", minimum=1)
    cfg.floor_samples = C.positive_int(args.floor_samples, "--floor-samples", minimum=16)
    cfg.progress = not args.no_progress
    default_points = {"digits": 150 if cfg.quick else 300, "mnist": 100 if cfg.quick else 300}.get(args.dataset)
    max_points = args.max_points if args.max_points is not None else default_points
    pts, _, desc = C.load_dataset(args.dataset, max_points=max_points, npz_key=args.npz_key)
    cfg.datasets = [(args.dataset, pts, desc)]
    for name in cfg.toys:
        tp, _, tdesc = C.load_dataset(name, toy_points=cfg.toy_points)
        cfg.datasets.append((name, tp, tdesc))
    if len({d[0] for d in cfg.datasets}) != len(cfg.datasets):
        raise ValueError(f"`--toy` repeats `--dataset` {args.dataset!r}.")
    files = ["report.md", "report.json"] if cfg.study == "main" else ["floor_study.md", "floor_study.json"]
    cfg.out = C.prepare_output(args.out, files, overwrite=bool(args.overwrite))
    cfg.args = {k: v for k, v in vars(args).items() if k != "func"}
    return cfg


# ------------------------------------------------------------------------------------------ progress
class _Progress:
    """One bar over tasks; each running task's callback shows where it is inside (flows, OT iterations,
    batches). Tasks running at the same time (the forward task runs beside the others) share the line."""

    def __init__(self, enabled: bool, total: int):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, disable=not enabled, unit="task", dynamic_ncols=True)
        self.times: dict[str, float] = {}
        self.active: dict[str, str] = {}

    def _show(self):
        self.bar.set_description(" | ".join(f"{k}: {v}" for k, v in list(self.active.items())))
        self.bar.refresh()

    def task(self, label: str):
        t0 = time.perf_counter()
        self.times[label] = 0.0
        self.active[label] = "starting"

        def cb(i, n, msg):
            self.times[label] = time.perf_counter() - t0
            self.active[label] = f"{msg} ({i + 1}/{n})"
            self._show()

        cb.label, cb.t0 = label, t0
        return cb

    def done(self, cb, count: bool = True):
        self.times[cb.label] = time.perf_counter() - cb.t0
        self.active.pop(cb.label, None)
        if count:
            self.bar.update(1)
        self._show()

    def close(self):
        self.bar.close()


# ------------------------------------------------------------------------------------------ the job
def run(args: argparse.Namespace) -> int:
    from jaxotdm._io import locked

    cfg = _validate(args)
    stem = "report" if cfg.study == "main" else "floor_study"
    with locked(cfg.out, stem, option="--out"), C.Interrupts("stop", "verify"):
        C.prepare_output(args.out, [f"{stem}.md", f"{stem}.json"], overwrite=bool(args.overwrite))  # under the lock
        return _run_floor(cfg) if cfg.study == "floor" else _run_main(cfg)


def _run_main(cfg) -> int:
    import jax

    from jaxotdm.cli import _verify_markdown as _markdown
    from jaxotdm.cli import _verify_report as R

    t_all, load0 = time.perf_counter(), os.getloadavg()
    key = jax.random.key(cfg.seed)
    n_tasks = len(cfg.datasets) * len(cfg.schedules) + 3 + (1 if _prior_set(cfg) else 0)
    bar = _Progress(cfg.progress, n_tasks)
    report = {"settings": {**cfg.args, "num_samples_used": cfg.num_samples, "quick": cfg.quick},
              "datasets": {n: d for n, _, d in cfg.datasets}, "convergence": [], "forward": []}
    # The forward task (one large OT solve) runs beside the others: XLA:CPU runs most of this job's kernels
    # on one core, so on a 2-core machine this overlaps the two (results do not depend on the order: every
    # task has its own key).
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        forward = pool.submit(_forward, cfg, key, bar) if (os.cpu_count() or 1) > 1 else None
        try:
            maps = _backward(cfg, key, bar, report)
            report["control_1d"] = _control(cfg, key, bar)
            report["prior"] = _prior(cfg, key, bar, maps)
            report["forward"] = forward.result() if forward is not None else _forward(cfg, key, bar)
        finally:
            if forward is not None:
                forward.cancel()
            bar.close()
    report["timings"] = {**bar.times, "total_seconds": time.perf_counter() - t_all}
    report["environment"] = R.environment(cfg.seed, load0, os.getloadavg())
    report["thm_3_11"] = R.thm311(report)
    report["verdicts"] = R.verdicts(report)
    _write(cfg.out, "report", report, lambda figures: _markdown.markdown(report, figures),
           lambda folder: R.figures(report, folder), "report.json")
    return 0


def _write(out, stem: str, record: dict, markdown, figures, what: str) -> None:
    """The report as one output set: ``<stem>.json`` and ``<stem>.md`` committed first, then the figures
    (``figures(folder) -> names``; one that fails prints a warning and costs nothing), and one line saying so."""
    from jaxotdm._io import Transaction

    with Transaction(out, stem, option="--out") as txn:
        C.write_json(txn.path(f"{stem}.json"), record)
        txn.write_text(f"{stem}.md", markdown([]))
        txn.commit()  # the results are safe before any figure is drawn
        names = []
        C.figure_or_warning("verify", "figures", lambda: names.extend(figures(txn.staging())))
        txn.write_text(f"{stem}.md", markdown(names))
        txn.commit()
    print(f"[verify] wrote {out / (stem + '.md')}, {what} and {len(names)} figures in "
          f"{record['timings']['total_seconds']:.0f} s")


def _weights_for(name, n):
    import numpy as np

    # two points get unequal weights: the OT boundary is then not fixed by symmetry
    return np.array([0.7, 0.3], np.float32) if name == "two_points" and n == 2 else None


def _backward(cfg, key, bar, report) -> dict:
    """Backward direction per dataset and schedule; returns the OT map of each dataset (reused later)."""
    import jax

    import jaxotdm as jo
    from jaxotdm.cli._verify_report import summary
    from jaxotdm.ot import semidiscrete_ot
    from jaxotdm.verify import convergence_to_brenier

    maps = {}
    for di, (dname, pts, _) in enumerate(cfg.datasets):
        mu = jo.EmpiricalMeasure(pts, _weights_for(dname, len(pts)))
        cb = bar.task(f"{dname}: OT map")
        cb(0, 1, f"OT N(0, I) -> {len(pts)} points")
        # (no progress callback here: semidiscrete_ot reports one solve at a time, and the forward task's solve,
        # running beside this one, holds that slot for minutes)
        smap = semidiscrete_ot(mu.points, mu.weights, key=jax.random.fold_in(key, 1000 + di), tol=cfg.ot_tol)
        bar.done(cb, count=False)  # part of the dataset's first task
        maps[dname] = smap
        for si, sname in enumerate(cfg.schedules):
            cb = bar.task(f"{dname}/{sname}")
            res = convergence_to_brenier(
                mu, C.make_schedule(sname), cfg.times[sname], key=jax.random.fold_in(key, 10 * di + si),
                num_samples=cfg.num_samples, eps=cfg.eps, ot_map=smap, progress=cb,
            )
            bar.done(cb)
            report["convergence"].append(summary(dname, sname, res, bar.times[cb.label]))
    return maps


def _control(cfg, key, bar) -> dict:
    """The exact 1-D control (the flow's limit is the monotone rearrangement = the OT map)."""
    import jax

    from jaxotdm.cli._verify_report import control_summary
    from jaxotdm.verify import monotone_control

    cb = bar.task("1-D control")
    c = monotone_control(key=jax.random.fold_in(key, 3), times=CONTROL_TIMES, num_samples=2048 if cfg.quick else 4096,
                         eps=cfg.eps, progress=cb)
    bar.done(cb)
    return control_summary(c, bar.times[cb.label])


def _prior_set(cfg):
    toys = [(n, p) for n, p, _ in cfg.datasets if p.shape[1] == 2 and n != "two_points"]
    return toys[0] if toys else None


def _prior(cfg, key, bar, maps) -> dict:
    """Prior error against T (Thm 3.2 at the first T) and the OT correction (Table 2 analogue) on the first
    2-D set; the map N(0, I) -> data of the backward section is reused (it does not depend on T)."""
    import jax

    import jaxotdm as jo
    from jaxotdm.cli._verify_report import prior_summary
    from jaxotdm.verify import ot_correction, prior_error_curve

    chosen = _prior_set(cfg)
    if chosen is None:
        return {"skipped": "needs a 2-D point set other than two_points (--toy)"}
    name, pts = chosen
    mu, sched = jo.EmpiricalMeasure(pts), jo.OU()
    times = PRIOR_TIMES[1] if cfg.quick else PRIOR_TIMES[0]
    cb = bar.task(f"{name}: prior error")
    t0 = time.perf_counter()
    rows = prior_error_curve(mu, sched, times, key=jax.random.fold_in(key, 500), end_of_sampling_at=[times[0]],
                             corrected=False, num_samples=1024 if cfg.quick else 2048, eps=cfg.eps,
                             num_kl_samples=2**12 if cfg.quick else 2**14, ot_tol=cfg.ot_tol, ot_map=maps[name],
                             skip_uninformative=True, progress=cb)
    cb(len(times) - 1, len(times), "OT correction and smoothing sweep (Table 2 analogue)")
    oc = ot_correction(mu, sched, 1.0, key=jax.random.fold_in(key, 600), tau_scale=10.0,
                       tolerances=(0.5, 0.2, 0.1) if cfg.quick else (0.5, 0.2, 0.1, 0.05),
                       num_samples=2**16 if cfg.quick else 2**18, num_tau_samples=1024 if cfg.quick else 2048,
                       prior_kwargs={"num_kl_samples": 2**12, "ot_map": maps[name]})
    bar.done(cb)
    return prior_summary(name, rows, oc, time.perf_counter() - t0)


def _forward(cfg, key, bar) -> list:
    """Forward direction (Thm 3.11) on the first 2-D set, OU; and a discretisation check at n / 4 points."""
    import jax

    import jaxotdm as jo
    from jaxotdm.cli._verify_report import summary
    from jaxotdm.verify import convergence_to_brenier

    fwd = [(n, p) for n, p, _ in cfg.datasets if p.shape[1] == 2]
    if not fwd:
        return []
    name, pts = fwd[0]
    mu = jo.EmpiricalMeasure(pts)
    times = FORWARD_TIMES[1] if cfg.quick else FORWARD_TIMES[0]
    n_ot = 1024 if cfg.quick else 2048
    out = []
    for n_points, label in ((n_ot, "forward"), (n_ot // 4, "forward, n/4 check")):
        cb = bar.task(f"{name}/ou {label}")
        res = convergence_to_brenier(
            mu, jo.OU(), times, key=jax.random.fold_in(key, 7), num_samples=min(cfg.num_samples, 1024),
            direction="forward", T0=FORWARD_T0, ot_points=n_points, ot_mc_per_point=64 if cfg.quick else 256,
            ot_tol=cfg.ot_tol, progress=cb,
        )
        bar.done(cb)
        out.append(summary(name, "ou", res, bar.times[cb.label]))
    return out


# ------------------------------------------------------------------------------------------ floor study
def _run_floor(cfg) -> int:
    import jax
    import numpy as np

    from jaxotdm.cli import _floor_report as F
    from jaxotdm.cli import _verify_report as R
    from jaxotdm.verify import Cloud, floor_study, random_clouds

    t_all, load0 = time.perf_counter(), os.getloadavg()
    key = jax.random.key(cfg.seed)
    clouds = random_clouds(cfg.floor_ns, cfg.floor_ds, key=jax.random.fold_in(key, 1))
    dname, pts, _ = cfg.datasets[0]
    if pts.shape[1] > 2:  # data subsets (the default: digits)
        for n in [n for n in (10, 30, 100, 300) if n <= len(pts)]:
            sub = np.asarray(pts[:n], np.float64)
            clouds.append(Cloud(f"{dname} n={n}", sub, np.full(n, 1.0 / n), dname))
    bar = _Progress(cfg.progress, len(clouds))
    rows = []
    try:
        for i, cloud in enumerate(clouds):
            cb = bar.task(cloud.label)
            cb(i, len(clouds), "OT solve and flow")
            rows += floor_study([cloud], key=jax.random.fold_in(jax.random.fold_in(key, 2), i),
                                num_samples=cfg.floor_samples, ot_tol=cfg.ot_tol, eps=cfg.eps)
            bar.done(cb)
    finally:
        bar.close()
    study = F.floor_summary(rows, bar.times)
    study["timings"] = {"total_seconds": time.perf_counter() - t_all}
    study["environment"] = R.environment(cfg.seed, load0, os.getloadavg())
    study["settings"] = cfg.args
    _write(cfg.out, "floor_study", study, lambda figures: F.floor_markdown(study, figures),
           lambda folder: F.floor_figures(study, folder), f"floor_study.json ({len(rows)} clouds)")
    return 0


__all__ = ["register", "run"]
