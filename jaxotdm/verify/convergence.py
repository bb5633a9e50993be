r"""Does the probability flow converge to the Monge-Ampere gradient (the Brenier map) as T grows?

The claim under test (arXiv 2410.13431 v1 abstract; v2 Thm 3.11, reported): as the termination
time grows, the probability-flow map converges exponentially to the gradient of the solution of
the Monge-Ampere equation. Lavenant & Santambrogio (2022) show the Fokker-Planck flow map is in
general *not* an optimal map, so nothing here assumes the limit is the OT map: we measure

- ``l2_to_ot``: the L2 distance between the flow map and the OT map, per termination time;
- ``self_convergence``: the L2 distance between the flow map at each time and at the largest one
  (this part decays exponentially: the velocity at large t is O(alpha_t));
- a fitted exponential rate with a 95% confidence interval, in time and in log-SNR;
- the floor: the distance that does not decay, and whether it is distinguishable from zero at the
  Monte Carlo resolution used.

Directions (science.md section 4):

- ``"backward"``: push the prior ``N(0, prior_std(s)^2 I)`` from time ``s`` down to ``eps`` with the
  exact flow and compare with the semi-discrete OT map ``N(0, I) -> mu``. The flowed sample is read
  off through the exact denoiser at ``eps`` (which is, up to ``exp(-gap^2 / sigma_eps^2)``, the data
  point it landed on), so the ``eps`` blur does not enter the distance. Also reported: the fraction of
  Gaussian mass sent to a different data point than the OT map sends it.
- ``"forward"`` (Thm 3.11): from a fixed ``T0``, the flow map ``p_T0 -> p_s`` (rescaled by
  ``prior_std(s)``) against the Brenier map ``p_T0 -> N(0, I)``. For a dataset the Brenier map is
  computed from a semi-discrete OT map ``N(0, I) -> {x_j}`` onto ``n`` samples ``x_j ~ p_T0``: the
  inverse map sends ``x_j`` to the barycentre of its Laguerre cell (estimated by Monte Carlo). Its
  accuracy is limited by the discretisation (``~ n^{-1/d}``) and the barycentre MC error, both
  reported.

For :class:`~jaxotdm.GaussianMeasure` data everything is affine and the OT maps are closed-form
(Bures); there we also report ``l2_to_own_ot``: the distance between the flow map and the Brenier
map between the flow's *own* source and target laws (zero iff the flow map is optimal).
"""

from __future__ import annotations

import math
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats
from scipy.linalg import sqrtm

from jaxotdm import _validation as V
from jaxotdm.flow import flow_map
from jaxotdm.measures import EmpiricalMeasure, GaussianMeasure
from jaxotdm.schedules import Schedule
from jaxotdm.scores import exact_score

__all__ = ["ConvergenceResult", "ExponentialFit", "convergence_to_brenier", "fit_exponential"]


class ExponentialFit(NamedTuple):
    """``log(value) = intercept - rate * x`` fitted by least squares on the points in ``mask``."""

    rate: float
    rate_ci: tuple[float, float]
    intercept: float
    r2: float
    num_points: int
    mask: np.ndarray


def fit_exponential(x, values, mask=None, *, level: float = 0.95) -> ExponentialFit:
    """Least-squares fit of ``log(values)`` against ``x`` with a t-distribution confidence interval.

    Points with non-positive or non-finite values are excluded. Fewer than 3 points give NaNs.
    """
    x = np.asarray(x, np.float64)
    v = np.asarray(values, np.float64)
    m = np.isfinite(v) & (v > 0) & np.isfinite(x)
    if mask is not None:
        m &= np.asarray(mask, bool)
    k = int(m.sum())
    if k < 3:
        return ExponentialFit(math.nan, (math.nan, math.nan), math.nan, math.nan, k, m)
    xs, ys = x[m], np.log(v[m])
    slope, intercept, r, _, se = stats.linregress(xs, ys)
    q = stats.t.ppf(0.5 + level / 2, k - 2)
    rate = -slope
    return ExponentialFit(float(rate), (float(rate - q * se), float(rate + q * se)), float(intercept), float(r * r), k, m)


class ConvergenceResult(NamedTuple):
    """Measured convergence of the probability-flow map to the OT map (all arrays over times).

    Attributes:
        direction: "backward" or "forward".
        termination_times: the times ``s`` (ascending); ``log_snr``: ``lambda(s)``.
        l2_to_ot, l2_to_ot_se: L2 distance to the OT map and its Monte Carlo standard error.
        mismatch_fraction, mismatch_se: backward, datasets: fraction of Gaussian mass landing on a
            different data point than the OT map's (NaN otherwise).
        l2_to_own_ot: Gaussian data: distance to the Brenier map between the flow's own marginals.
        self_convergence, self_convergence_se: L2 distance to the flow map at the largest time.
        fit_time, fit_log_snr: exponential fits of ``self_convergence`` against ``s`` and ``-lambda(s)``.
        fit_to_ot: exponential fit of ``l2_to_ot - floor`` (or ``l2_to_ot`` if the floor is not
            distinguishable from zero) over its resolvable decaying range.
        floor, floor_se, floor_distinguishable: the non-decaying part and whether it exceeds zero by
            more than 3 standard errors and the OT map's own resolution (backward: more misrouted mass
            than the OT map's measured mass error, and at least 5 samples; forward: more than 3x the
            Brenier estimate's barycentre MC error and discretisation scale ``n^(-1/d)``).
        ot_resolution: accuracy of the OT map used (certificate or MC error), see ``settings``.
        nfe: score evaluations per flow solve.
        settings: everything that was used, including timings.
    """

    direction: str
    termination_times: np.ndarray
    log_snr: np.ndarray
    l2_to_ot: np.ndarray
    l2_to_ot_se: np.ndarray
    mismatch_fraction: np.ndarray
    mismatch_se: np.ndarray
    l2_to_own_ot: np.ndarray
    self_convergence: np.ndarray
    self_convergence_se: np.ndarray
    fit_time: ExponentialFit
    fit_log_snr: ExponentialFit
    fit_to_ot: ExponentialFit
    floor: float
    floor_se: float
    floor_distinguishable: bool
    ot_resolution: dict
    nfe: np.ndarray
    settings: dict


def _l2_and_se(sq: np.ndarray) -> tuple[float, float]:
    """sqrt(mean(sq)) and its delta-method standard error."""
    sq = np.asarray(sq, np.float64)
    m = float(sq.mean())
    se_m = float(sq.std(ddof=1) / math.sqrt(len(sq))) if len(sq) > 1 else math.nan
    l2 = math.sqrt(max(m, 0.0))
    return l2, (se_m / (2 * l2) if l2 > 0 else math.sqrt(se_m) if se_m > 0 else 0.0)


def _psd_sqrt(c):
    w, v = np.linalg.eigh(0.5 * (c + c.T))
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def _affine_fit(x: np.ndarray, y: np.ndarray):
    """Least-squares affine map y ~ A x + b (exact for affine maps up to solver error)."""
    X = np.concatenate([x, np.ones((len(x), 1))], 1)
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    return coef[:-1].T, coef[-1]


def _optimality_gap(A: np.ndarray, c0: np.ndarray) -> float:
    """L2(N(., c0)) distance between x -> A x and the Brenier map onto the law of A x.

    The Brenier map N(0, C0) -> N(0, A C0 A^T) is G = C0^-1/2 (C0^1/2 A C0 A^T C0^1/2)^1/2 C0^-1/2;
    the distance is sqrt(tr((A - G) C0 (A - G)^T)).
    """
    r = _psd_sqrt(c0)
    ri = np.linalg.inv(r)
    g = ri @ np.real(sqrtm(r @ A @ c0 @ A.T @ r)) @ ri
    e = A - g
    return float(math.sqrt(max(np.trace(e @ c0 @ e.T), 0.0)))


def _validate(measure, schedule, times, num_samples, eps, direction, T0):
    if not isinstance(measure, (EmpiricalMeasure, GaussianMeasure)):
        raise ValueError(f"`measure` must be an EmpiricalMeasure or GaussianMeasure, got {type(measure).__name__}.")
    if not isinstance(schedule, Schedule):
        raise ValueError(f"`schedule` must be a jaxotdm Schedule, got {type(schedule).__name__}.")
    if direction not in ("backward", "forward"):
        raise ValueError(f"`direction` must be 'backward' or 'forward', got {direction!r}.")
    times = np.asarray(times, np.float64)
    if times.ndim != 1 or len(times) < 2:
        raise ValueError(f"`termination_times` must be a 1-D sequence of at least 2 times, got shape {times.shape}.")
    V.check_time(times, "termination_times", t_max=schedule.t_max)
    if np.any(np.diff(times) <= 0):
        raise ValueError("`termination_times` must be strictly increasing.")
    V.check_positive_int(num_samples, "num_samples", minimum=2)
    V.check_time(eps, "eps", t_max=schedule.t_max)
    if direction == "backward" and not eps < times[0]:
        raise ValueError(f"`eps` must be below every termination time, got eps = {eps}, min time {times[0]}.")
    if direction == "forward":
        V.check_time(T0, "T0", t_max=schedule.t_max)
        if not T0 < times[0]:
            raise ValueError(f"`T0` must be below every termination time, got T0 = {T0}, min time {times[0]}.")
    return times


def convergence_to_brenier(
    measure: EmpiricalMeasure | GaussianMeasure,
    schedule: Schedule,
    termination_times,
    *,
    key,
    num_samples: int = 4096,
    direction: str = "backward",
    eps: float = 1e-3,
    T0: float | None = None,
    ot_tol: float = 0.02,
    ot_points: int = 2048,
    ot_mc_per_point: int = 256,
    rtol: float = 1e-6,
    ot_map=None,
    progress=None,
) -> ConvergenceResult:
    """Measures the distance between the probability-flow map and the OT map as ``T`` grows.

    Args:
        measure: the data (an :class:`~jaxotdm.EmpiricalMeasure`, or a Gaussian for the exact case).
        schedule: the forward schedule.
        termination_times: increasing times ``s`` at which the flow starts (backward) or ends (forward).
        key: PRNG key (split for the Gaussian samples, the OT solve and its certificate).
        num_samples: Monte Carlo samples (the same ones at every time: common random numbers).
        direction: ``"backward"`` (prior at ``s`` -> data) or ``"forward"`` (``p_T0 -> p_s``, Thm 3.11).
        eps: end time of the backward flow.
        T0: start time of the forward flow (default: half the smallest termination time).
        ot_tol: max relative cell-mass error requested from the semi-discrete solver.
        ot_points, ot_mc_per_point: forward direction on data: samples of ``p_T0`` used for the Brenier
            map and Monte Carlo samples per Laguerre cell for its barycentres.
        rtol: flow solver tolerance (``atol`` equal).
        ot_map: a precomputed :class:`~jaxotdm.ot.SemidiscreteMap` ``N(0, I) -> measure`` (backward).
        progress: optional callback ``progress(i, total, message)`` (the CLI passes a progress bar).

    Returns:
        A :class:`ConvergenceResult`.

    Example:
        >>> import jax, numpy as np, jaxotdm as jo
        >>> from jaxotdm.verify import convergence_to_brenier
        >>> mu = jo.EmpiricalMeasure(np.array([[-1.0, 0.0], [1.0, 0.0]]), np.array([0.7, 0.3]))
        >>> res = convergence_to_brenier(mu, jo.OU(), [1.0, 2.0, 4.0], key=jax.random.key(0), num_samples=256)
        >>> res.l2_to_ot.shape
        (3,)
    """
    if T0 is None and direction == "forward":
        T0 = float(np.min(termination_times)) / 2
    V.check_key(key)
    times = _validate(measure, schedule, termination_times, num_samples, eps, direction, T0)
    t_start = time.perf_counter()
    dtype = measure.points.dtype if isinstance(measure, EmpiricalMeasure) else measure.mean.dtype
    d = measure.dim
    k_z, k_ot, k_b = jax.random.split(key, 3)
    score = exact_score(measure, schedule)
    is_gauss = isinstance(measure, GaussianMeasure)
    k = len(times)
    out = {n: np.full(k, np.nan) for n in ("l2", "l2se", "mis", "misse", "own", "nfe")}
    finals = []
    ot_res: dict = {}
    progress = progress or (lambda i, n, msg: None)

    if direction == "backward":
        z = jax.random.normal(k_z, (num_samples, d), dtype)
        if is_gauss:
            c_eps = np.asarray(measure.marginal_cov(eps, schedule), np.float64)
            a_eps = float(schedule.alpha(eps))
            target = a_eps * np.asarray(measure.mean) + np.asarray(z, np.float64) @ _psd_sqrt(c_eps)
            ot_res = {"kind": "closed form (Bures): N(0, I) -> p_eps", "max_relative_mass_error": 0.0}
        else:
            from jaxotdm.ot import semidiscrete_ot

            smap = ot_map if ot_map is not None else semidiscrete_ot(measure.points, measure.weights, key=k_ot, tol=ot_tol)
            target = np.asarray(smap.transport(z), np.float64)
            idx_ot = np.asarray(smap.assign(z))
            ot_res = {"kind": "semi-discrete OT N(0, I) -> data", **_certificate_summary(smap)}
        for i, s in enumerate(times):
            progress(i, k, f"backward flow from s = {s:g}")
            x_s = schedule.prior_std(jnp.asarray(s, dtype)) * z
            res = flow_map(score, schedule, x_s, s, eps, rtol=rtol, atol=rtol)
            y = np.asarray(res.points, np.float64)
            out["nfe"][i] = int(res.nfe)
            if is_gauss:
                sq = ((y - target) ** 2).sum(1)
                A, _ = _affine_fit(np.asarray(z, np.float64), y)
                out["own"][i] = _optimality_gap(A, np.eye(d))
            else:
                landed = np.asarray(score.denoiser(res.points, eps), np.float64)
                sq = ((landed - target) ** 2).sum(1)
                mis = np.asarray(score.posterior_mode(res.points, eps)) != idx_ot
                out["mis"][i] = float(mis.mean())
                out["misse"][i] = float(math.sqrt(max(mis.mean() * (1 - mis.mean()), 0.0) / num_samples))
            out["l2"][i], out["l2se"][i] = _l2_and_se(sq)
            finals.append(y)
    else:
        a0 = float(schedule.alpha(T0))
        if is_gauss:
            x0 = measure.sample_marginal(k_z, T0, schedule, num_samples)
            c0 = np.asarray(measure.marginal_cov(T0, schedule), np.float64)
            m0 = a0 * np.asarray(measure.mean, np.float64)
            x0n = np.asarray(x0, np.float64)
            brenier = (x0n - m0) @ np.linalg.inv(_psd_sqrt(c0))  # p_T0 -> N(0, I), symmetric
            ot_res = {"kind": "closed form (Bures): p_T0 -> N(0, I)", "barycentre_mc_se": 0.0}
        else:
            from jaxotdm.ot import semidiscrete_ot

            x0 = measure.sample_marginal(k_z, T0, schedule, ot_points)
            smap = semidiscrete_ot(x0, key=k_ot, tol=ot_tol)
            bary, counts, mc_se = _cell_barycentres(smap, k_b, ot_points * ot_mc_per_point, d, dtype)
            brenier = bary
            x0n = np.asarray(x0, np.float64)
            ot_res = {
                "kind": "inverse of the semi-discrete map N(0, I) -> n samples of p_T0 (Laguerre-cell barycentres)",
                "ot_points": ot_points,
                **_certificate_summary(smap),
                "barycentre_mc_se": mc_se,
                "min_cell_count": int(counts.min()),
                "discretisation_scale_n^(-1/d)": float(ot_points ** (-1.0 / d)),
            }
        for i, s in enumerate(times):
            progress(i, k, f"forward flow to s = {s:g}")
            res = flow_map(score, schedule, x0, T0, s, rtol=rtol, atol=rtol)
            y = np.asarray(res.points, np.float64) / float(schedule.prior_std(s))
            out["nfe"][i] = int(res.nfe)
            sq = ((y - brenier) ** 2).sum(1)
            out["l2"][i], out["l2se"][i] = _l2_and_se(sq)
            if is_gauss:
                A, _ = _affine_fit(x0n, y)
                out["own"][i] = _optimality_gap(A, c0)  # flow map vs Brenier onto its own image law
            finals.append(y)

    self_conv = np.zeros(k)
    self_se = np.zeros(k)
    for i in range(k):
        self_conv[i], self_se[i] = _l2_and_se(((finals[i] - finals[-1]) ** 2).sum(1))
    scale = math.sqrt(float(np.mean((finals[-1] ** 2).sum(1))))
    noise = 10 * rtol * max(scale, 1.0)  # below this the differences are solver noise
    decaying = (self_conv > noise) & (np.arange(k) < k - 1)
    lam = np.asarray(schedule.log_snr(jnp.asarray(times)), np.float64)
    fit_t = fit_exponential(times, self_conv, decaying)
    fit_l = fit_exponential(-lam, self_conv, decaying)

    floor, floor_se = float(out["l2"][-1]), float(out["l2se"][-1])
    if direction == "backward" and not is_gauss:
        # A floor counts only if more mass is misrouted than the OT map's own measured mass error
        # (total variation between its cell masses and the weights) could explain, and by >= 5 samples.
        ot_tv = ot_res.get("mass_total_variation", 0.0)
        mis_floor, mis_se = out["mis"][-1], out["misse"][-1]
        enough = bool(mis_floor * num_samples >= 5 and mis_floor - 3 * mis_se > ot_tv)
    elif direction == "forward" and not is_gauss:
        # beyond the Brenier estimate's resolution: its barycentre MC error and its discretisation scale
        resolution = max(ot_res["barycentre_mc_se"], ot_res["discretisation_scale_n^(-1/d)"])
        enough = bool(floor > 3 * resolution)
    else:
        enough = True
    distinguishable = bool(floor > 3 * floor_se and floor_se > 0 and enough)
    if is_gauss:
        distinguishable = bool(floor > max(3 * floor_se, 1e-6 * max(scale, 1.0)) and floor_se > 0)
    excess = out["l2"] - (floor if distinguishable else 0.0)
    resolvable = excess > 3 * np.sqrt(out["l2se"] ** 2 + (floor_se**2 if distinguishable else 0.0))
    if direction == "backward" and not is_gauss:
        resolvable &= out["mis"] * num_samples >= 5
    fit_ot = fit_exponential(times, excess, resolvable & (np.arange(k) < k - 1) if distinguishable else resolvable)

    settings = {
        "schedule": type(schedule).__name__,
        "num_samples": num_samples,
        "eps": eps,
        "T0": T0,
        "ot_tol": ot_tol,
        "rtol": rtol,
        "measure": type(measure).__name__,
        "num_points": int(measure.num_points) if not is_gauss else None,
        "dim": d,
        "self_convergence_noise_level": noise,
        "seconds": time.perf_counter() - t_start,
    }
    return ConvergenceResult(
        direction=direction,
        termination_times=times,
        log_snr=lam,
        l2_to_ot=out["l2"],
        l2_to_ot_se=out["l2se"],
        mismatch_fraction=out["mis"],
        mismatch_se=out["misse"],
        l2_to_own_ot=out["own"],
        self_convergence=self_conv,
        self_convergence_se=self_se,
        fit_time=fit_t,
        fit_log_snr=fit_l,
        fit_to_ot=fit_ot,
        floor=floor,
        floor_se=floor_se,
        floor_distinguishable=distinguishable,
        ot_resolution=ot_res,
        nfe=out["nfe"],
        settings=settings,
    )


def _certificate_summary(smap) -> dict:
    cert = smap.certificate
    if cert is None:
        return {"max_relative_mass_error": None, "mass_total_variation": 0.0, "note": "map given without certificate"}
    masses = np.asarray(cert.masses, np.float64)
    return {
        "max_relative_mass_error": float(cert.max_relative_error),
        "max_relative_mass_error_se": float(cert.standard_error),
        "certificate_noise_floor": float(cert.noise_floor),
        "certificate_samples": int(cert.num_samples),
        "mass_total_variation": float(0.5 * np.abs(masses - np.asarray(smap.weights, np.float64)).sum()),
    }


def _cell_barycentres(smap, key, total: int, d: int, dtype, batch: int = 65_536):
    """Monte Carlo barycentres E[z | z in Laguerre cell j] of N(0, I) (segment sums over batches)."""
    n = smap.num_targets
    nb = max(1, -(-total // batch))

    @jax.jit
    def one(k):
        z = jax.random.normal(k, (batch, d), dtype)
        j = smap.assign(z)
        return (
            jax.ops.segment_sum(z, j, n),
            jax.ops.segment_sum(jnp.sum(z * z, -1), j, n),
            jax.ops.segment_sum(jnp.ones((batch,), dtype), j, n),
        )

    sums = np.zeros((n, d))
    sq = np.zeros(n)
    cnt = np.zeros(n)
    for kk in jax.random.split(key, nb):
        a, b, c = one(kk)
        sums += np.asarray(a, np.float64)
        sq += np.asarray(b, np.float64)
        cnt += np.asarray(c, np.float64)
    safe = np.maximum(cnt, 1.0)
    bary = sums / safe[:, None]
    var = np.maximum(sq / safe - (bary**2).sum(1), 0.0)  # total within-cell variance
    mc_se = float(math.sqrt(np.mean(var / safe)))  # RMS standard error of the barycentres
    return bary, cnt, mc_se
