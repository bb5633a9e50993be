"""The ``jaxotdm verify`` report: JSON summaries of the measurements, the verdict table, the Thm 3.11
comparison, the environment, figures and markdown (used by :mod:`jaxotdm.cli.verify`; no computation of
its own beyond arithmetic on measured numbers).
"""

from __future__ import annotations

import math
import os
import platform
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from jaxotdm.cli._common import safe_name

Z95 = 1.959963984540054


# ------------------------------------------------------------------------------------------ summaries
def _fit(f) -> dict:
    return {"rate": f.rate, "rate_ci": list(f.rate_ci), "r2": f.r2, "num_points": f.num_points,
            "intercept": f.intercept, "mask": np.asarray(f.mask).tolist()}


def _cost(c) -> dict | None:
    if c is None:
        return None
    return {k: np.asarray(getattr(c, k)).tolist() for k in c.__dataclass_fields__}


def summary(dname, sname, r, seconds) -> dict:
    """A :class:`~jaxotdm.verify.ConvergenceResult` as JSON-able numbers."""
    return {
        "dataset": dname, "schedule": sname, "direction": r.direction,
        "times": r.termination_times.tolist(), "log_snr": r.log_snr.tolist(),
        "l2_to_ot": r.l2_to_ot.tolist(), "l2_to_ot_se": r.l2_to_ot_se.tolist(),
        "mismatch_fraction": r.mismatch_fraction.tolist(), "mismatch_se": r.mismatch_se.tolist(),
        "self_convergence": r.self_convergence.tolist(), "self_convergence_se": r.self_convergence_se.tolist(),
        "fit_self_time": _fit(r.fit_time), "fit_self_log_snr": _fit(r.fit_log_snr), "fit_to_ot": _fit(r.fit_to_ot),
        "floor": r.floor, "floor_se": r.floor_se, "floor_distinguishable": r.floor_distinguishable,
        "ot_resolution": r.ot_resolution, "nfe": r.nfe.tolist(), "settings": r.settings, "cost": _cost(r.cost),
        "flow_success": np.asarray(r.flow_success).tolist(), "seconds": seconds,
    }


def thm311_summary(dname, st, seconds) -> dict:
    """A :class:`~jaxotdm.verify.Thm311Study` as JSON-able numbers: ``rows`` (one per n, largest first, with the
    keys of :func:`summary` the report's forward section reads) and the extrapolation with its verdict."""
    d = st.settings["dim"]
    rows = []
    for i in reversed(range(len(st.ns))):
        n = int(st.ns[i])
        res = {"ot_points": n, "barycentre_mc_se": float(st.barycentre_mc_se[i]),
               "discretisation_scale_n^(-1/d)": float(n ** (-1.0 / d)),
               "max_relative_mass_error": float(st.max_relative_mass_error[i]),
               "ot_iterations": int(st.ot_iterations[i]), "ot_converged": bool(st.ot_converged[i])}
        floor, se = float(st.floors[i]), float(st.floor_ses[i])
        rows.append({"dataset": dname, "schedule": "ou", "direction": "forward", "times": st.termination_times.tolist(),
                     "l2_to_ot": st.l2[i].tolist(), "l2_to_ot_se": st.l2_se[i].tolist(),
                     "self_convergence": st.self_convergence[i].tolist(), "floor": floor, "floor_se": se,
                     "floor_distinguishable": bool(floor > 3 * se and floor > 3 * max(res["barycentre_mc_se"],
                                                                                   res["discretisation_scale_n^(-1/d)"])),
                     "ot_resolution": res, "nfe": st.nfe[i].tolist(), "flow_success": st.flow_success[i].tolist(),
                     "settings": {**st.settings, "T0": st.T0}})
    def fit_summary(f):
        return {"model": f"floor(n) = {f.model}", "limit": f.limit, "limit_se": f.limit_se,
                "limit_ci": list(f.limit_ci), "coefficient": f.coefficient, "chi2": f.chi2, "dof": f.dof,
                "fit_p_value": f.fit_p_value, "loglog_slope": f.loglog_slope}

    f, v = st.extrapolation, st.verdict
    alt = st.extrapolation_log
    return {"dataset": dname, "rows": rows, "ns": st.ns.tolist(), "floors": st.floors.tolist(),
            "floor_ses": st.floor_ses.tolist(), "T0": st.T0, "times": st.termination_times.tolist(),
            "fit": fit_summary(f), "fit_log": None if alt is None else fit_summary(alt),
            "verdict": v.verdict, "reason": v.reason, "n_needed": v.n_needed, "mc_samples_factor": v.mc_samples_factor,
            "settings": st.settings, "seconds": seconds}


def basin_summary(label, bm) -> dict:
    """A :class:`~jaxotdm.verify.BasinMap`'s numbers (the index arrays go to the figure only)."""
    return {"dataset": label, "dim": bm.dim, "times": np.asarray(bm.times).tolist(),
            "grid_points_per_axis": len(bm.axis), "extent": float(bm.axis[-1]),
            "misrouted_mass": np.asarray(bm.misrouted_mass).tolist(), "grid_mass": bm.grid_mass,
            "ot_max_relative_mass_error": bm.ot_max_relative_mass_error,
            "flow_success": np.asarray(bm.flow_success).tolist()}


def basin_figure(basins, out: Path, name: str = "basins.png") -> str:
    """One row per data set: the OT map's Laguerre cells, then the flow's basins at each time (misrouted in red)."""
    from jaxotdm import plotting

    k = len(basins[0][1].times)
    ratios = [1.0 if bm.dim == 2 else 0.35 for _, bm in basins]
    fig, axes = plotting.subplots(len(basins), 1 + k, figsize=(3.4 * (1 + k), 3.4 * sum(ratios) + 0.3),
                                  gridspec_kw={"height_ratios": ratios})
    axes = np.asarray(axes, dtype=object).reshape(len(basins), 1 + k)
    for row, (label, bm) in zip(axes, basins, strict=True):
        plotting.basin_map(bm, axes=row, label=label)
    fig.suptitle("Where the probability flow and the OT map disagree (OU; grid of the prior's standard coordinates)",
                 fontsize=9)
    return _write(fig, out, name)


def control_summary(c, seconds) -> dict:
    r = c.result
    return {
        "num_points": len(c.points), "spacing": float(c.points[1, 0] - c.points[0, 0]),
        "weights_min": float(c.weights.min()), "weights_max": float(c.weights.max()),
        "num_samples": int(r.settings["num_samples"]), "eps": r.settings["eps"],
        "times": r.termination_times.tolist(), "alpha": c.alpha.tolist(),
        "misrouted": r.mismatch_fraction.tolist(), "misrouted_se": r.mismatch_se.tolist(),
        "count": c.misrouted_count.tolist(), "upper95": c.upper95.tolist(), "slope": c.slope,
        "slope_ci": list(c.slope_ci), "zero_within_resolution": c.zero_within_resolution,
        "readout_error": r.ot_resolution.get("readout_error"), "cost": _cost(r.cost),
        "floor_distinguishable": r.floor_distinguishable, "seconds": seconds,
    }


def prior_summary(name, rows, oc, seconds) -> dict:
    out = []
    for r in rows:
        b = r.bracket
        row = {"T": float(r.T), "alpha": float(r.alpha), "w2": float(b.w2), "lower": float(b.lower),
               "upper": float(b.upper), "upper_se": float(b.upper_se)}
        if r.end is not None:
            e = r.end
            row.update(end_w2=float(e.w2), end_null_upper=float(e.null_upper), end_positive=bool(e.positive),
                       ratio_lower=float(e.ratio_lower), ratio_upper=float(e.ratio_upper))
        out.append(row)
    lo = np.array([r["lower"] for r in out])
    al = np.array([r["alpha"] for r in out])

    def slope(sel):
        return float(np.polyfit(np.log(al[sel]), np.log(lo[sel]), 1)[0]) if np.all(lo[sel] > 0) and len(lo[sel]) > 1 \
            else None

    return {
        "dataset": name, "schedule": "ou", "rows": out, "slope_log_lower_vs_log_alpha": slope(slice(None)),
        "slope_tail": slope(slice(-3, None)), "tail_times": [r["T"] for r in out[-3:]],
        "ot_correction": {
            "T": float(oc.T), "num_points": int(oc.num_points), "tolerances": np.asarray(oc.tolerances).tolist(),
            "solver_w2": np.asarray(oc.solver_w2).tolist(), "certificates": np.asarray(oc.certificates).tolist(),
            "solver_w2_floor_upper": float(oc.solver_w2_floor_upper), "taus": np.asarray(oc.taus).tolist(),
            "effective_taus": np.asarray(oc.effective_taus).tolist(), "tau_w2": np.asarray(oc.tau_w2).tolist(),
            "tau_w2_floor_upper": float(oc.tau_w2_floor_upper), "uncorrected_w2": float(oc.uncorrected.bracket.w2),
            "uncorrected_bracket": [float(oc.uncorrected.bracket.lower), float(oc.uncorrected.bracket.upper)],
        },
        "seconds": seconds,
    }


def environment(seed, load_start, load_end) -> dict:
    import importlib.metadata as md

    import jax
    import jax.numpy as jnp

    def version(p):
        try:
            return md.version(p)
        except md.PackageNotFoundError:
            return "not installed"

    dev = jax.devices()[0]
    return {
        "versions": {p: version(p) for p in ("jaxotdm", "jax", "jaxlib", "ott-jax", "diffrax", "numpy", "scipy")},
        "python": platform.python_version(), "platform": platform.platform(),
        "device": f"{dev.platform}: {getattr(dev, 'device_kind', str(dev))} x {jax.device_count()}",
        "cpu_count": os.cpu_count(), "dtype": str(jnp.zeros(()).dtype), "seed": seed,
        "load_average_start": list(load_start), "load_average_end": list(load_end),
    }


# ------------------------------------------------------------------------------------------ Thm 3.11
def thm311(report) -> dict:
    """The computable part of Thm 3.11's right side against the measured forward distance.

    ``||grad u - M^{T,s}|| <= K {(I(T) / I(s)) W2(p_inf, p_T)}^{2/15}``: ``W2(p_inf, p_T0)`` is bracketed by the
    prior-error tools (``p_inf = q_T = N(0, I)`` for OU); ``K`` and ``I`` are not defined in the material
    available to us. Under the reading ``I(t) = 1 / alpha(t)`` (the OU contraction ``W2(p_s, p_inf) <=
    (alpha(s) / alpha(T)) W2(p_T, p_inf)``), ``K_needed(s) = measured(s) / {...}^{2/15}`` is the smallest ``K``
    the measurement allows; a bounded ``K`` needs the measured distance to go to 0.
    """
    if not report.get("forward"):
        return {"evaluated": False, "reason": "no forward measurement (needs a 2-D --toy set)"}
    f = report["forward"][0]
    prior = report.get("prior", {})
    rows = {r["T"]: r for r in prior.get("rows", [])}
    T0 = f["settings"]["T0"]
    s = np.asarray(f["times"])
    out = {"evaluated": False, "T0": T0, "times": s.tolist(), "exponent": 2 / 15,
           "unknown": "the constant K and the function I(t) (its definition is not in the material available to "
                      "us); we evaluate the I(t) = 1/alpha(t) reading (the OU contraction of W2(p_s, p_inf))"}
    if prior.get("dataset") != f["dataset"] or T0 not in rows:
        out["reason"] = "W2(p_T0, N(0, I)) not bracketed for this dataset and T0"
        return out
    lo, up = rows[T0]["lower"], rows[T0]["upper"]
    factor = np.exp(-(s - T0) / 2)  # alpha(s) / alpha(T0) for OU
    rhs_up = (factor * up) ** (2 / 15)
    rhs_lo = (factor * lo) ** (2 / 15)
    measured = np.asarray(f["l2_to_ot"])
    check = [{"s": t, "w2_lower": rows[t]["lower"], "contraction_bound": float(np.exp(-(t - T0) / 2) * up)}
             for t in s.tolist() if t in rows]
    out.update(evaluated=True, w2_T0_bracket=[lo, up], contraction_factor=factor.tolist(),
               rhs_over_K_upper=rhs_up.tolist(), rhs_over_K_lower=rhs_lo.tolist(),
               K_needed=(measured / rhs_up).tolist(), contraction_check=check,
               contraction_consistent=all(c["w2_lower"] <= c["contraction_bound"] * (1 + 1e-6) for c in check))
    return out


# ------------------------------------------------------------------------------------------ verdicts
def _ci(x, se, p=3) -> str:
    if x is None or not np.isfinite(x):
        return "-"
    return f"{x:.{p}g} [{x - Z95 * se:.{p}g}, {x + Z95 * se:.{p}g}]"


def _dataset_verdict(dname, rows) -> dict:
    ou = next((r for r in rows if r["schedule"] == "ou"), rows[0])
    c = ou["cost"]
    dist = [r["floor_distinguishable"] for r in rows]
    mis, mis_se = ou["mismatch_fraction"][-1], ou["mismatch_se"][-1]
    gap, gap_se = c["gap"][-1], c["gap_se"][-1]
    numbers = (f"{ou['schedule']} at s = {ou['times'][-1]:g}: misrouted mass {_ci(mis, mis_se)}; L2 floor "
               f"{_ci(ou['floor'], ou['floor_se'])}; cost gap {_ci(gap, gap_se)} (Fenchel-Young part "
               f"{_ci(c['misrouting'][-1], c['misrouting_se'][-1])}, push-forward mass error "
               f"{c['mass_error'][-1]:.3g} vs Monte Carlo {c['mass_error_null'][-1]:.3g}); floor distinguishable "
               f"for {sum(dist)}/{len(dist)} schedules")
    verdict = "not supported" if all(dist) else "supported" if not any(dist) else "inconclusive"
    res = ou["ot_resolution"]
    resolution = res.get("mass_total_variation", 0.0) + (res.get("readout_error") or 0.0)
    lo, hi = mis - Z95 * mis_se, mis + Z95 * mis_se
    n = ou["settings"]["num_samples"]
    if verdict == "not supported":
        change = (f"only a resolution coarser than the misrouted mass's lower bound {lo:.3g} (now {resolution:.3g}: OT "
                  f"mass total variation + landing read-off error, {lo / max(resolution, 1e-12):.0f}x finer than "
                  "needed), or a floor vanishing at larger s; more samples or a tighter OT tolerance cannot change it")
    else:
        change = (f"a floor below {max(hi, resolution):.3g} is not resolved: it needs the OT mass error and read-off "
                  f"error below it and about {math.ceil(9 / max(hi, 1e-12)):,} draws (now {n:,})")
    return {"claim": "the flow's limit map is the semi-discrete OT map (no floor)", "dataset": dname,
            "measured": "misrouted mass, L2 floor and transport-cost gap at the largest s", "verdict": verdict,
            "numbers": numbers, "misrouted": [mis, mis_se], "floor": [ou["floor"], ou["floor_se"]],
            "cost_gap": [gap, gap_se], "interval": f"misrouted mass {_ci(mis, mis_se)} ({ou['schedule']}, s = "
            f"{ou['times'][-1]:g}) against the resolution {resolution:.3g}", "to_change": change}


def _self_convergence_verdict(dname, rows) -> dict:
    ok = [r["fit_self_time"]["rate_ci"][0] > 0 for r in rows]
    rates = ", ".join(f"{r['schedule']} {r['fit_self_log_snr']['rate']:.2g}" for r in rows)
    # the schedule closest to changing the verdict: the smallest lower bound relative to the CI's half-width
    def margin(r):
        lo, hi = r["fit_self_time"]["rate_ci"]
        return lo / max((hi - lo) / 2, 1e-300) if math.isfinite(lo) else -math.inf
    w = min(rows, key=margin)
    lo, hi = w["fit_self_time"]["rate_ci"]
    m = margin(w)
    change = (f"{w['schedule']}'s interval would reach 0 only if its half-width grew {1 + m:.1f}x (fewer decaying "
              "times or noisier curves)" if m > 0 else
              f"{w['schedule']}'s interval reaches 0: more termination times in the decaying range (or more draws) "
              "would be needed to exclude it")
    return {"claim": "the flow map converges exponentially as the termination time grows", "dataset": dname,
            "measured": "self-convergence rate (95% CI excludes 0)",
            "verdict": "supported" if all(ok) else "not supported" if not any(ok) else "inconclusive",
            "numbers": f"rate CI > 0 for {sum(ok)}/{len(ok)} schedules; per unit -log-SNR: {rates}",
            "interval": f"rate per unit time, {w['schedule']} (the narrowest margin): {w['fit_self_time']['rate']:.3g} "
                        f"[{lo:.3g}, {hi:.3g}]", "to_change": change}


def verdicts(report) -> list[dict]:
    out = []
    by_ds: dict = {}
    for r in report["convergence"]:
        by_ds.setdefault(r["dataset"], []).append(r)
    for dname, rows in by_ds.items():
        out += [_self_convergence_verdict(dname, rows), _dataset_verdict(dname, rows)]
    c = report.get("control_1d")
    if c:
        ok = c["zero_within_resolution"] and not c["floor_distinguishable"]
        lin = math.isfinite(c["slope"]) and 0.7 <= c["slope"] <= 1.2
        u = c["upper95"][-1]
        out.append({"claim": "the limit is the monotone rearrangement = the OT map (d = 1 control)",
                    "dataset": f"1-D control ({c['num_points']} points)",
                    "measured": "misrouted mass vs alpha(s), zero at large s",
                    "verdict": "supported" if ok and lin else "not supported" if not ok else "inconclusive",
                    "numbers": f"misrouted {c['count'][-1]}/{c['num_samples']} at s = {c['times'][-1]:g} (95% upper "
                               f"{u:.2g}); slope vs alpha {c['slope']:.3g} "
                               f"[{c['slope_ci'][0]:.3g}, {c['slope_ci'][1]:.3g}]",
                    "interval": f"misrouted mass at s = {c['times'][-1]:g} in [0, {u:.2g}] (exact binomial); slope "
                                f"[{c['slope_ci'][0]:.3g}, {c['slope_ci'][1]:.3g}] against [0.7, 1.2]",
                    "to_change": f"a limit floor below {u:.2g} is not excluded: resolving one of size f needs about "
                                 f"9/f draws (now {c['num_samples']:,}) and a read-off error below f (now "
                                 f"{c['readout_error'] or 0:.2g})"})
    out += _forward_verdicts(report)
    out += _prior_verdicts(report.get("prior", {}))
    return out


def thm311_verdict_row(study: dict, source: str) -> dict:
    """The Thm 3.11 verdict row from a :func:`thm311_summary` (``source`` says which run measured it)."""
    f = study["fit"]
    lo, hi = f["limit_ci"]
    floors = ", ".join(f"n = {n}: {_ci(x, se)}" for n, x, se in zip(study["ns"], study["floors"], study["floor_ses"],
                                                                   strict=True))
    numbers = (f"{source}; floor at s = {study['times'][-1]:g} vs n: {floors}; fitted {f['model']}: limit "
               f"{f['limit']:.3g} [{lo:.3g}, {hi:.3g}], c = {f['coefficient']:.3g}, chi2 {f['chi2']:.3g} on {f['dof']} "
               f"dof; free log-log slope {f['loglog_slope']:.3g} (-1/d for a pure discretisation artefact, 0 for a "
               "floor independent of n)")
    g = study.get("fit_log")
    if g:
        glo, ghi = g["limit_ci"]
        numbers += (f"; with the sqrt(log n) factor of the 2-D rate ({g['model']}): limit {g['limit']:.3g} "
                    f"[{glo:.3g}, {ghi:.3g}], chi2 {g['chi2']:.3g} on {g['dof']} dof")
    if study["verdict"] == "supported":
        change = (f"an interval bounded away from 0: the upper end {hi:.3g} is what a floor must exceed; resolving one of "
                  f"size {max(hi, 1e-6):.3g} needs the interval's half-width below it (more n, or more draws per n)")
    elif study["verdict"] == "not supported":
        change = (f"an interval reaching 0: the lower end {lo:.3g} would have to move down by {lo:.3g}, i.e. a "
                  "discretisation term that follows neither n^(-1/d) nor sqrt(log n) n^(-1/d), or a systematic error "
                  "of the Brenier estimate of that size")
    else:
        need = []
        if study["n_needed"]:
            need.append(f"n >= {study['n_needed']:,}")
        if study["mc_samples_factor"] > 1:
            need.append(f"{study['mc_samples_factor']:.2g}x more Monte Carlo draws per Laguerre cell")
        change = f"{' and '.join(need) or 'more resolution'} ({study['reason']})"
    return {"claim": "Thm 3.11 (forward): ||Brenier(p_T0 -> N(0,I)) - M^{T0,s}|| -> 0 as s grows",
            "dataset": study["dataset"], "measured": "floor at the largest s against the Brenier estimate's "
            "resolution n, extrapolated to n -> infinity", "verdict": study["verdict"], "numbers": numbers,
            "interval": f"extrapolated floor {f['limit']:.3g} [{lo:.3g}, {hi:.3g}] (95%)", "to_change": change}


def _forward_verdicts(report) -> list[dict]:
    out = []
    if report.get("thm311_study"):
        row = thm311_verdict_row(report["thm311_study"], "main job")
        if row["verdict"] == "inconclusive" and not report.get("thm311_full"):
            row["to_change"] += ("; `jaxotdm verify --study thm311` with the same --out (about 6 minutes on 2 cores: n "
                                 "up to 131,072 in float64 with the exact planar OT) adds its decision to this report")
        t = report.get("thm_3_11", {})
        if t.get("evaluated"):
            kn = t["K_needed"]
            row["numbers"] += (f"; K the measurement needs: {kn[0]:.3g} at s = {t['times'][0]:g}, {kn[-1]:.3g} at "
                               f"s = {t['times'][-1]:g}")
        out.append(row)
    full = report.get("thm311_full")
    if full:
        out += [thm311_verdict_row(st, f"`verify --study thm311` ({full['file']}, seed {full['seed']})")
                for st in full["studies"]]
    return out


def _prior_verdicts(prior) -> list[dict]:
    if "rows" not in prior:
        return []
    out = []
    sl, tail = prior["slope_log_lower_vs_log_alpha"], prior["slope_tail"]
    ds = prior["dataset"]
    band = (f"the lower bounds at T = {', '.join(f'{t:g}' for t in prior['tail_times'])} are deterministic (Gelbrich, "
            "from moments of the set): the slope has no Monte Carlo interval; the verdict uses the band [0.85, 1.15]")
    out.append({"claim": "prior error W2(p_T, q_T) decays like alpha(T) (non-centred data)", "dataset": ds,
                "interval": f"slope {tail:.3g} against [0.85, 1.15]; {band}" if tail is not None else "-",
                "to_change": "a slope outside the band: larger T (where the alpha^2 term is smaller) moves it toward 1",
                "measured": "slope of log(Gelbrich lower bound) vs log alpha(T) at the largest T",
                "verdict": "supported" if tail is not None and abs(tail - 1) < 0.15 else "not supported",
                "numbers": f"slope {tail:.3g} over T = {', '.join(f'{t:g}' for t in prior['tail_times'])} ({sl:.3g} over "
                           "all T, where the alpha^2 term still counts)" if tail is not None else "-"})
    r0 = prior["rows"][0]
    if "end_w2" in r0:
        out.append({"claim": "Thm 3.2: the exact-score flow from q_T keeps an error (a better score cannot remove it)",
                    "dataset": ds,
                    "interval": f"W2(p_eps, q_eps) = {r0['end_w2']:.3g} against the null's 95% level "
                                f"{r0['end_null_upper']:.3g}",
                    "to_change": f"the null level would exceed {r0['end_w2']:.3g} only with about "
                                 f"{(r0['end_null_upper'] / max(r0['end_w2'], 1e-300)) ** 2:.2g}x the samples used "
                                 "(the null shrinks like 1/sqrt(samples))"
                                 if r0["end_positive"] else
                                 f"the error must exceed the null level {r0['end_null_upper']:.3g}: about "
                                 f"{(r0['end_null_upper'] / max(r0['end_w2'], 1e-300)) ** 2:.2g}x more samples",
                    "measured": "W2(p_eps, q_eps) against its Monte Carlo null",
                    "verdict": "supported" if r0["end_positive"] else "inconclusive",
                    "numbers": f"T = {r0['T']:g}: {r0['end_w2']:.3g} vs null 95% {r0['end_null_upper']:.3g}; ratio to "
                               f"the prior error in [{r0['ratio_lower']:.3g}, {r0['ratio_upper']:.3g}]"})
    oc = prior["ot_correction"]
    w = oc["solver_w2"]
    ok = w[-1] <= 1.5 * oc["solver_w2_floor_upper"] and w[0] > w[-1]
    out.append({"claim": "Lemma 3.5: the OT map's push-forward is the diffused set (error -> 0 as the solver converges)",
                "dataset": ds,
                "interval": f"W2 {w[-1]:.3g} at tol {oc['tolerances'][-1]:g} against 1.5 x the Monte Carlo floor's 95% "
                            f"level {oc['solver_w2_floor_upper']:.3g}",
                "to_change": f"a final W2 above {1.5 * oc['solver_w2_floor_upper']:.3g}: a coarser solver tolerance than "
                             f"{oc['tolerances'][-1]:g}; more samples lower the floor and test it more finely",
                "measured": "W2(grad u_h # N(0, I), set) against its Monte Carlo floor",
                "verdict": "supported" if ok else "not supported",
                "numbers": f"{w[0]:.3g} (initial) -> {w[-1]:.3g} at tol {oc['tolerances'][-1]:g}; floor (95%) "
                           f"{oc['solver_w2_floor_upper']:.3g}"})
    tw = oc["tau_w2"]
    out.append({"claim": "Table 2: smoothing (tau > 0) reintroduces a prior error", "dataset": ds,
                "interval": f"W2 {tw[-1]:.3g} at the largest tau against the estimator floor's 95% level "
                            f"{oc['tau_w2_floor_upper']:.3g}",
                "to_change": f"the estimator floor would exceed {tw[-1]:.3g} only with about "
                             f"{(oc['tau_w2_floor_upper'] / max(tw[-1], 1e-300)) ** 2:.2g}x the samples used",
                "measured": "W2 of the smoothed map's push-forward vs tau",
                "verdict": "supported" if tw[-1] > oc["tau_w2_floor_upper"] and tw[-1] > tw[0] else "inconclusive",
                "numbers": f"{tw[0]:.3g} at tau 0 -> {tw[-1]:.3g} at tau {oc['effective_taus'][-1]:g}; estimator floor "
                           f"{oc['tau_w2_floor_upper']:.3g}"})
    return out


# ------------------------------------------------------------------------------------------ figures
def save_figure(fig, path: Path) -> None:
    """Writes a PNG atomically (:func:`jaxotdm.cli._common.save_figure`, the figure's own bounding box)."""
    from jaxotdm.cli._common import save_figure as _save

    _save(fig, path, bbox_inches=None)


def _as_result(r) -> SimpleNamespace:
    def fit(f):
        return SimpleNamespace(rate=f["rate"], intercept=f["intercept"], mask=np.asarray(f["mask"], bool))

    return SimpleNamespace(
        termination_times=np.asarray(r["times"]), log_snr=np.asarray(r["log_snr"]), l2_to_ot=np.asarray(r["l2_to_ot"]),
        l2_to_ot_se=np.asarray(r["l2_to_ot_se"]), self_convergence=np.asarray(r["self_convergence"]),
        self_convergence_se=np.asarray(r["self_convergence_se"]), fit_log_snr=fit(r["fit_self_log_snr"]),
        fit_time=fit(r["fit_self_time"]), fit_to_ot=fit(r["fit_to_ot"]),
    )


def figures(report, out: Path, basins=()) -> list[str]:
    from jaxotdm import plotting

    names = []
    if basins:
        _each(names, "basins.png", lambda: basin_figure(basins, out))
    by_ds: dict = {}
    for r in report["convergence"]:
        by_ds.setdefault(r["dataset"], []).append(r)
    def convergence(dname, rows):
        fig, axes = plotting.subplots(2, 2, figsize=(11, 7.5))
        for r in rows:
            plotting.convergence_panels(_as_result(r), axes=axes[0], label=r["schedule"])
            lam = -np.asarray(r["log_snr"])
            c = r["cost"]
            plotting.convergence_curve(lam, c["gap"], c["gap_se"], ax=axes[1, 0], logy=False, label=r["schedule"],
                                       xlabel="-log-SNR at the termination time",
                                       ylabel="(C_flow - C_OT) / C_OT", title="transport-cost gap (95% CI)")
            plotting.convergence_curve(lam, r["mismatch_fraction"], r["mismatch_se"], ax=axes[1, 1], logy=False,
                                       label=r["schedule"], xlabel="-log-SNR at the termination time",
                                       ylabel="fraction of mass", title="mass sent to a different point than OT")
        axes[1, 0].axhline(0.0, color="k", lw=0.8)
        fig.suptitle(f"{dname}: probability-flow map vs semi-discrete OT map", fontsize=10)
        return _write(fig, out, f"convergence_{safe_name(dname)}.png")  # a --dataset path is no file name

    for dname, rows in by_ds.items():
        _each(names, f"convergence_{safe_name(dname)}.png", lambda d=dname, r=rows: convergence(d, r))
    if report.get("control_1d"):
        _each(names, "control_1d.png", lambda: _control_figure(report["control_1d"], out))
    if report.get("forward"):
        _each(names, "forward figure", lambda: _forward_figure(report, out))
    if "rows" in report.get("prior", {}):
        _each(names, "prior_error_and_tau.png", lambda: _prior_figure(report["prior"], out))
    return names


def _each(names: list, what: str, draw) -> None:
    """Draws one figure; a failure prints a warning and the other figures are still drawn."""
    from jaxotdm.cli._common import figure_or_warning

    figure_or_warning("verify", what, lambda: names.append(draw()))


def _write(fig, out, name) -> str:
    save_figure(fig, out / name)
    return name


def _control_figure(c, out) -> str:
    from jaxotdm import plotting

    fig, ax = plotting.subplots(figsize=(5.5, 4))
    al = np.asarray(c["alpha"])
    mis = np.asarray(c["misrouted"])
    ax.errorbar(al, np.maximum(mis, 1e-6), yerr=Z95 * np.asarray(c["misrouted_se"]), fmt="o", ms=4,
                label="misrouted mass (95% CI)")
    ax.plot(al, c["upper95"], "v", ms=4, color="gray", label="95% upper bound")
    k = int(np.argmax(np.asarray(c["count"]) < 50)) if np.any(np.asarray(c["count"]) < 50) else len(al) - 1
    ax.plot(al, mis[max(k - 1, 0)] * al / al[max(k - 1, 0)], "k--", lw=0.8, label="proportional to alpha(s)")
    ax.set(xscale="log", yscale="log", xlabel="alpha(s) (OU)", ylabel="fraction of mass",
           title=f"1-D control: {c['num_points']} points {c['spacing']:.2g} apart, Dirichlet weights")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return _write(fig, out, "control_1d.png")


def _forward_figure(report, out) -> str:
    from jaxotdm import plotting

    study = report.get("thm311_study")
    fig, axes = plotting.subplots(1, 2 if study else 1, figsize=(11, 4.2) if study else (6, 4.2))
    ax = axes[0] if study else axes
    if study:
        floor_vs_n_panel(study, axes[1])
    for f in report["forward"]:
        n = f["ot_resolution"]["ot_points"]
        plotting.convergence_curve(f["times"], f["l2_to_ot"], f["l2_to_ot_se"], ax=ax,
                                   label=f"to Brenier estimate, n = {n}")
    f = report["forward"][0]
    t = np.asarray(f["times"])
    ax.plot(t[:-1], np.maximum(np.asarray(f["self_convergence"])[:-1], 1e-12), "s:", ms=3, label="self-convergence")
    res = f["ot_resolution"]
    ax.axhline(3 * max(res["barycentre_mc_se"], res["discretisation_scale_n^(-1/d)"]), color="gray", lw=0.8,
               label="3 x Brenier-estimate resolution")
    th = report.get("thm_3_11", {})
    if th.get("evaluated"):
        rhs = np.asarray(th["rhs_over_K_upper"])
        ax.plot(t, rhs * f["l2_to_ot"][0] / rhs[0], "k--", lw=0.8, label="Thm 3.11 right side (shape; K unknown)")
    ax.set(xlabel="s (OU time)", ylabel="L2 distance", title=f"forward direction (Thm 3.11), {f['dataset']}")
    ax.legend(fontsize=7)
    return _write(fig, out, f"forward_{safe_name(f['dataset'])}.png")


def floor_vs_n_panel(st, ax) -> None:
    """The floor against n^(-1/d) with 95% bars, the fitted line and its extrapolation to n -> infinity."""
    d = st["settings"]["dim"]
    ns = np.asarray(st["ns"], np.float64)
    x = ns ** (-1.0 / d)
    ax.errorbar(x, st["floors"], yerr=Z95 * np.asarray(st["floor_ses"]), fmt="o", ms=4, label="floor (95%)")
    f = st["fit"]
    xx = np.linspace(0.0, x.max() * 1.05, 50)
    ax.plot(xx, f["limit"] + f["coefficient"] * xx, "k--", lw=0.8, label=f"fit {f['model']}")
    lo, hi = f["limit_ci"]
    ax.errorbar([0.0], [f["limit"]], yerr=[[f["limit"] - lo], [hi - f["limit"]]], fmt="s", color="r", ms=5,
                label=f"n -> infinity: {f['limit']:.3g} [{lo:.3g}, {hi:.3g}]")
    g = st.get("fit_log")
    if g:  # the same floors under the sqrt(log n)-corrected rate
        xg = np.linspace(x.min() * 0.02, x.max() * 1.05, 80)
        ax.plot(xg, g["limit"] + g["coefficient"] * xg * np.sqrt(-d * np.log(xg)), ":", color="tab:green", lw=0.9,
                label=f"fit {g['model']}")
        glo, ghi = g["limit_ci"]
        ax.errorbar([0.0], [g["limit"]], yerr=[[g["limit"] - glo], [ghi - g["limit"]]], fmt="D", color="tab:green",
                    ms=4, label=f"n -> infinity (log rate): {g['limit']:.3g} [{glo:.3g}, {ghi:.3g}]")
    ax.axhline(0.0, color="gray", lw=0.6)
    for xi, n in zip(x, ns, strict=True):
        ax.annotate(f"n={int(n)}", (xi, 0), textcoords="offset points", xytext=(0, 4), fontsize=6, ha="center")
    ax.set(xlabel=f"n^(-1/{d})", ylabel="floor (L2 at the largest s)",
           title=f"{st['dataset']}: floor vs resolution, verdict: {st['verdict']}")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)


def thm311_figures(record, out: Path) -> list[str]:
    """``--study thm311``: the floor against n^(-1/d) per set, with the fit and its extrapolation."""
    from jaxotdm import plotting

    names: list[str] = []

    def draw():
        k = len(record["studies"])
        fig, axes = plotting.subplots(1, k, figsize=(5.5 * k, 4.2))
        for st, ax in zip(record["studies"], np.ravel(np.asarray(axes, dtype=object)), strict=True):
            floor_vs_n_panel(st, ax)
        return _write(fig, out, "thm311_floor_vs_n.png")

    _each(names, "thm311_floor_vs_n.png", draw)
    return names


def _prior_figure(prior, out) -> str:
    from jaxotdm import plotting

    fig, axes = plotting.subplots(1, 2, figsize=(10, 3.8))
    rows = prior["rows"]
    plotting.prior_error_brackets([r["T"] for r in rows], [r["lower"] for r in rows], [r["upper"] for r in rows],
                                  [r["w2"] for r in rows], reference=[r["alpha"] for r in rows], ax=axes[0])
    axes[0].set_title(f"prior error, {prior['dataset']} (OU)")
    oc = prior["ot_correction"]
    ax = axes[1]
    ax.plot(oc["effective_taus"], oc["tau_w2"], "o-", ms=3, label="W2(smoothed OT push-forward, diffused set)")
    ax.axhline(oc["tau_w2_floor_upper"], color="gray", lw=0.8, label="Monte Carlo floor (95%)")
    ax.axhline(oc["uncorrected_w2"], color="r", lw=0.8, ls="--", label="uncorrected prior error")
    ax.set(xlabel="tau (effective)", ylabel="W2", title=f"OT correction and smoothing (T = {oc['T']:g})")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _write(fig, out, "prior_error_and_tau.png")
