"""The floor study's report (``jaxotdm verify --study floor``): table, what drives the floor, figures."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from jaxotdm.cli._verify_report import save_figure

Z95 = 1.959963984540054


def _row(r, seconds) -> dict:
    c = r.cost
    return {
        "label": r.label, "kind": r.kind, "n": r.n, "d": r.d, "misrouted": r.misrouted, "misrouted_se": r.misrouted_se,
        "l2_floor": r.l2_floor, "l2_floor_se": r.l2_floor_se, "gap": c.gap, "gap_se": c.gap_se,
        "misrouting": c.misrouting, "misrouting_se": c.misrouting_se, "mass_error": c.mass_error,
        "mass_error_null": c.mass_error_null, "cost_ot": c.cost_ot, "cost_independent": c.cost_independent,
        "readout_error": r.readout_error, "distinguishable": r.distinguishable, "min_spacing": r.min_spacing,
        "median_nn": r.median_nn, "rel_spacing": r.rel_spacing, "weight_ratio": r.weight_ratio,
        "weight_entropy": r.weight_entropy, "ot_mass_error": r.ot_mass_error, "nfe": r.nfe,
        "flow_success": r.flow_success, "seconds": seconds,
    }


def floor_summary(rows, times) -> dict:
    """Rows as JSON-able dicts plus the driver analysis (:func:`drivers`)."""
    out = [_row(r, times.get(r.label, math.nan)) for r in rows]
    return {"rows": out, "drivers": drivers(out)}


def _ols(X, y, names) -> dict:
    X = np.column_stack([np.ones(len(y)), X])
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ coef
    dof = max(len(y) - X.shape[1], 1)
    cov = (resid @ resid / dof) * np.linalg.pinv(X.T @ X)
    r2 = 1 - (resid @ resid) / max(((y - y.mean()) ** 2).sum(), 1e-300)
    return {"names": ["intercept", *names], "coef": coef.tolist(), "se": np.sqrt(np.diag(cov)).tolist(),
            "r2": float(r2), "num_rows": int(len(y))}


def drivers(rows) -> dict:
    """What the misrouted mass depends on, from the measured rows of random clouds with d >= 2:

    Spearman correlations with each candidate driver; a least-squares fit of ``log(misrouted + 1/N)`` on
    ``log n``, ``log d``, ``log(median nearest-neighbour distance)`` and the weight imbalance ``1 - H(w)/log n``;
    the paired difference Dirichlet - equal weights at the same points; and the 1-D rows (the control).
    """
    rnd = [r for r in rows if r["kind"] in ("equal", "dirichlet")]
    multi = [r for r in rnd if r["d"] >= 2 and r["n"] >= 3]
    out: dict = {}
    if len(multi) >= 6:
        y = np.array([r["misrouted"] for r in multi])
        feats = {"log n": np.log([r["n"] for r in multi]), "log d": np.log([r["d"] for r in multi]),
                 "log median spacing": np.log([r["median_nn"] for r in multi]),
                 "weight imbalance": 1 - np.array([r["weight_entropy"] for r in multi])}
        out["spearman"] = {k: float(stats.spearmanr(v, y).statistic) for k, v in feats.items()}
        floor_y = np.log(y + 1.0 / 2048)
        out["fit_log_misrouted"] = _ols(np.column_stack(list(feats.values())), floor_y, list(feats))
        gaps = np.array([r["gap"] for r in multi])
        out["spearman_gap"] = {k: float(stats.spearmanr(v, gaps).statistic) for k, v in feats.items()}
    pairs = {}
    for r in rnd:
        pairs.setdefault((r["n"], r["d"]), {})[r["kind"]] = r
    diffs = np.array([p["dirichlet"]["misrouted"] - p["equal"]["misrouted"] for p in pairs.values()
                      if len(p) == 2 and p["equal"]["d"] >= 2])
    if len(diffs) >= 2:
        out["dirichlet_minus_equal"] = {"mean": float(diffs.mean()), "se": float(diffs.std(ddof=1) / math.sqrt(len(diffs))),
                                        "pairs": int(len(diffs))}
    one = [r for r in rnd if r["d"] == 1]
    if one:
        out["one_dimensional"] = {"rows": len(one), "distinguishable": int(sum(r["distinguishable"] for r in one)),
                                  "max_misrouted": float(max(r["misrouted"] for r in one)),
                                  "max_readout_error": float(max(r["readout_error"] for r in one))}
    return out


def _drivers_text(dr) -> list[str]:
    L = []
    if "fit_log_misrouted" in dr:
        f = dr["fit_log_misrouted"]
        terms = ", ".join(f"{n} {c:+.2f} ± {Z95 * s:.2f}" for n, c, s in zip(f["names"][1:], f["coef"][1:], f["se"][1:],
                                                                             strict=True))
        sp = ", ".join(f"{k} {v:+.2f}" for k, v in dr["spearman"].items())
        L += [f"- Spearman correlation of the misrouted mass with each candidate (d >= 2, {f['num_rows']} clouds): {sp}.",
              f"- Least-squares fit of log(misrouted + 1/N) (R² {f['r2']:.2f}): {terms} (95% intervals). A coefficient "
              "whose interval excludes 0 is a driver at fixed values of the others."]
        sg = ", ".join(f"{k} {v:+.2f}" for k, v in dr["spearman_gap"].items())
        L.append(f"- Spearman correlation of the cost gap with the same candidates: {sg}.")
    if "dirichlet_minus_equal" in dr:
        p = dr["dirichlet_minus_equal"]
        L.append(f"- Same points, Dirichlet minus equal weights: misrouted mass {p['mean']:+.3f} ± {Z95 * p['se']:.3f} "
                 f"({p['pairs']} pairs, d >= 2).")
    if "one_dimensional" in dr:
        o = dr["one_dimensional"]
        L.append(f"- d = 1: {o['distinguishable']}/{o['rows']} clouds with a floor beyond resolution; the largest "
                 f"misrouted mass {o['max_misrouted']:.3g} is at the read-off's resolution (largest read-off error "
                 f"{o['max_readout_error']:.3g}: random 1-D clouds have points closer than sigma(eps)).")
    return L


def floor_markdown(study, figures) -> str:
    env = study["environment"]
    L = ["# The floor of the probability flow's limit map: how it scales", "",
         "Random clouds y_i ~ N(0, I_d) (the same points for equal and Dirichlet(1) weights) and data subsets; "
         "OU, flow from s = 16 to eps; per cloud one OT map (closed form in d = 1, else semi-discrete) and one flow. "
         "`misrouted` = fraction of Gaussian mass landing on a different point than the OT map's; `L2` = "
         "sqrt(E|M(z) - T(z)|^2); `gap` = relative transport-cost gap (C_flow - C_OT)/C_OT; intervals 95%. `beyond "
         "res.` = misrouted mass above 3 SE + the OT map's mass error + the landing read-off's error.", "",
         f"Environment: jaxotdm {env['versions']['jaxotdm']}, jax {env['versions']['jax']}, ott-jax "
         f"{env['versions']['ott-jax']}, diffrax {env['versions']['diffrax']}; {env['device']}, {env['cpu_count']} "
         f"CPUs, dtype {env['dtype']}, seed {env['seed']}; total {study['timings']['total_seconds']:.0f} s (load "
         f"average {env['load_average_start'][0]:.2f} -> {env['load_average_end'][0]:.2f}).", "",
         "## What drives the floor (from these rows)", ""]
    L += _drivers_text(study["drivers"]) + [""]
    L += ["## Table", "", "| cloud | n | d | misrouted | L2 floor | cost gap | beyond res. | median spacing | "
          "max w / min w | read-off err. | s |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in study["rows"]:
        L.append(f"| {r['label']} | {r['n']} | {r['d']} | {r['misrouted']:.3g} ± {Z95 * r['misrouted_se']:.2g} | "
                 f"{r['l2_floor']:.3g} ± {Z95 * r['l2_floor_se']:.2g} | {r['gap']:.3g} ± {Z95 * r['gap_se']:.2g} | "
                 f"{'yes' if r['distinguishable'] else 'no'} | {r['median_nn']:.3g} | {r['weight_ratio']:.3g} | "
                 f"{r['readout_error']:.3g} | {r['seconds']:.1f} |")
    L += ["", "## Figures", ""] + [f"![{f}]({f})" for f in figures] + [""]
    return "\n".join(L)


def floor_figures(study, out) -> list[str]:
    from jaxotdm import plotting

    rows = [r for r in study["rows"] if r["kind"] in ("equal", "dirichlet")]
    ds = sorted({r["d"] for r in rows})
    fig, axes = plotting.subplots(2, 2, figsize=(11, 7.5))
    for j, kind in enumerate(("equal", "dirichlet")):
        for d in ds:
            sel = sorted((r for r in rows if r["kind"] == kind and r["d"] == d), key=lambda r: r["n"])
            if not sel:
                continue
            n = np.array([r["n"] for r in sel], float)
            one = d == 1  # random 1-D clouds have points closer than sigma(eps): read-off limited
            for i, (key, se) in enumerate((("misrouted", "misrouted_se"), ("gap", "gap_se"))):
                y = np.array([r[key] for r in sel])
                e = np.array([r[se] for r in sel])
                axes[i, j].errorbar(n, y, yerr=Z95 * e, fmt="o:" if one else "o-", ms=3, capsize=2, mfc="none" if one
                                    else None, label=f"d = {d}" + (" (read-off limited)" if one else ""))
            if one:
                axes[0, j].plot(n, [r["readout_error"] for r in sel], "--", color="gray", lw=0.8,
                                label="d = 1: read-off error on exact p_eps samples")
        axes[0, j].set(xscale="log", xlabel="n (points)", ylabel="misrouted mass", title=f"floor vs n, {kind} weights")
        axes[1, j].set(xscale="log", xlabel="n (points)", ylabel="(C_flow - C_OT) / C_OT",
                       title=f"transport-cost gap vs n, {kind} weights")
        for i in range(2):
            axes[i, j].grid(alpha=0.3, which="both")
            axes[i, j].legend(fontsize=7)
        axes[1, j].axhline(0.0, color="k", lw=0.8)
    save_figure(fig, out / "floor_vs_n.png")
    return ["floor_vs_n.png"]
