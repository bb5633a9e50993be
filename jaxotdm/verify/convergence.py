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

Directions (both are measured; the paper states the forward one):

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

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from jaxotdm import _validation as V
from jaxotdm._pytree import pytree_dataclass, static_field
from jaxotdm.measures import EmpiricalMeasure, GaussianMeasure
from jaxotdm.schedules import Schedule
from jaxotdm.verify import _measure as M
from jaxotdm.verify.cost import TransportCost

__all__ = ["ConvergenceResult", "ExponentialFit", "OTResolution", "convergence_to_brenier", "fit_exponential"]


@pytree_dataclass
class ExponentialFit:
    """``log(value) = intercept - rate * x`` fitted by least squares on the points in ``mask``."""

    rate: float
    rate_ci: tuple[float, float]
    intercept: float
    r2: float
    num_points: int
    mask: np.ndarray


def fit_exponential(x, values, mask=None, *, level: float = 0.95) -> ExponentialFit:
    """Least-squares fit of ``log(values)`` against ``x`` with a t-distribution confidence interval.

    ``values`` are distances, so they must be ``>= 0``: a negative value raises. Zeros (e.g. the last
    point of a self-convergence curve), NaNs and points outside ``mask`` are left out of the fit. Fewer
    than 3 points give NaNs.

    Example:
        >>> import numpy as np
        >>> from jaxotdm.verify import fit_exponential
        >>> x = np.arange(5.0)
        >>> round(fit_exponential(x, 2.0 * np.exp(-0.5 * x)).rate, 6)
        0.5
    """
    x = np.asarray(x, np.float64)
    v = np.asarray(values, np.float64)
    if x.ndim != 1 or v.shape != x.shape:
        raise ValueError(f"`x` and `values` must be 1-D of the same length, got shapes {x.shape} and {v.shape}.")
    if np.any(v[np.isfinite(v)] < 0):
        raise ValueError("`values` must be >= 0 (an exponential fit of distances; zeros and NaNs are skipped), "
                         f"got a minimum of {np.nanmin(v):.3g}.")
    V.fraction(level, "level")
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


@pytree_dataclass
class ConvergenceResult:
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
            than the OT map's measured mass error plus the landing read-off's error rate on exact samples of
            ``p_eps`` (``ot_resolution["readout_error"]``), and at least 5 samples; forward: more than 3x the
            Brenier estimate's barycentre MC error and discretisation scale ``n^(-1/d)``).
        ot_resolution: accuracy of the OT map used (certificate or MC error), see ``settings``.
        nfe: score evaluations per flow solve.
        settings: everything that was used (no wall times: time the call yourself).
        cost: backward direction: the :class:`~jaxotdm.verify.TransportCost` of the flow's map against
            the OT map on the same draws, with arrays over times (``None`` for the forward direction).
        flow_success: ``(k,)`` whether each flow solve succeeded (a failed solve also warns).
    """

    direction: str = static_field()
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
    cost: TransportCost | None = None
    flow_success: np.ndarray | None = None


@pytree_dataclass
class OTResolution:
    """How finely :func:`convergence_to_brenier` resolves the OT (Brenier) map it measures against (a PyTree,
    static fields only).

    Attributes:
        tol: max relative cell-mass error requested from the semi-discrete solver, in ``(0, 1)``.
        points: forward direction on data: samples of ``p_T0`` used as the targets of the Brenier map
            (at least 2).
        mc_per_point: forward direction on data: Monte Carlo samples per Laguerre cell for its barycentres.

    Example:
        >>> from jaxotdm.verify import OTResolution
        >>> OTResolution(tol=0.05).points
        2048
        >>> OTResolution(tol=1.5)
        Traceback (most recent call last):
        ...
        ValueError: `tol` must be in (0, 1), got 1.5.
    """

    tol: float = static_field(0.02)
    points: int = static_field(2048)
    mc_per_point: int = static_field(256)

    def __post_init__(self):
        V.fraction(self.tol, "tol")
        V.check_positive_int(self.points, "points", minimum=2)
        V.check_positive_int(self.mc_per_point, "mc_per_point")


def _validate(measure, schedule, times, num_samples, eps, direction, T0, ot, rtol, ot_map, progress):
    if not isinstance(measure, (EmpiricalMeasure, GaussianMeasure)):
        raise ValueError(f"`measure` must be an EmpiricalMeasure or GaussianMeasure, got {type(measure).__name__}.")
    if not isinstance(schedule, Schedule):
        raise ValueError(f"`schedule` must be a jaxotdm Schedule, got {type(schedule).__name__}.")
    if direction not in ("backward", "forward"):
        raise ValueError(f"`direction` must be 'backward' or 'forward', got {direction!r}.")
    try:
        times = np.asarray(times, np.float64)
    except (TypeError, ValueError) as exc:
        raise V.ArgumentTypeError(f"`termination_times` must be a sequence of numbers, got {times!r}.") from exc
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
    if not isinstance(ot, OTResolution):
        raise V.ArgumentTypeError(f"`ot` must be a jaxotdm.verify.OTResolution, got {type(ot).__name__}.")
    V.positive_scalar(rtol, "rtol")
    if ot_map is not None:
        from jaxotdm.ot import SemidiscreteMap

        if not isinstance(ot_map, SemidiscreteMap):
            raise ValueError(f"`ot_map` must be a SemidiscreteMap, got {type(ot_map).__name__}.")
        if not isinstance(measure, EmpiricalMeasure) or ot_map.targets.shape != measure.points.shape:
            raise ValueError("`ot_map` must map N(0, I) onto the measure's points (same shape as `measure.points`).")
    if progress is not None and not callable(progress):
        raise ValueError(f"`progress` must be a callable progress(i, total, message), got {type(progress).__name__}.")
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
    ot: OTResolution | None = None,
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
        ot: how finely the OT map is resolved, an :class:`OTResolution` (solver tolerance; forward on data, the
            ``p_T0`` sample size and Monte Carlo samples per cell); default ``OTResolution()``.
        rtol: flow solver tolerance (``atol`` equal).
        ot_map: a precomputed :class:`~jaxotdm.ot.SemidiscreteMap` ``N(0, I) -> measure`` (backward).
        progress: optional callback ``progress(i, total, message)`` (the CLI passes a progress bar).

    Returns:
        A :class:`ConvergenceResult`; in the backward direction its ``cost`` holds the transport-cost gap
        of the flow's map to the OT map (:func:`~jaxotdm.verify.transport_cost_gap`) at every time.

    Example:
        >>> import jax, numpy as np, jaxotdm as jo
        >>> from jaxotdm.verify import convergence_to_brenier
        >>> mu = jo.EmpiricalMeasure(np.array([[-1.0, 0.0], [1.0, 0.0]]), np.array([0.7, 0.3]))
        >>> res = convergence_to_brenier(mu, jo.OU(), [1.0, 2.0, 4.0], key=jax.random.key(0), num_samples=256)
        >>> res.l2_to_ot.shape, res.cost.gap.shape
        ((3,), (3,))
    """
    if T0 is None and direction == "forward":
        T0 = float(np.min(termination_times)) / 2
    V.check_key(key)
    ot = OTResolution() if ot is None else ot
    times = _validate(measure, schedule, termination_times, num_samples, eps, direction, T0, ot, rtol, ot_map,
                      progress)
    is_gauss = isinstance(measure, GaussianMeasure)
    dtype = measure.mean.dtype if is_gauss else measure.points.dtype
    m = _measure(measure, schedule, times, key, direction, num_samples, eps, T0, ot, rtol, ot_map,
                 progress or (lambda i, n, msg: None))
    if not np.all(m.success):
        import warnings

        from jaxotdm._status import ConvergenceWarning

        bad = [float(t) for t, ok in zip(times, m.success, strict=True) if not ok]
        warnings.warn(f"convergence_to_brenier: the flow solver failed at s = {bad} (raise max_steps or rtol); "
                      "those rows are unreliable.", ConvergenceWarning, stacklevel=2)
    settings = {
        "schedule": type(schedule).__name__, "num_samples": num_samples, "eps": eps, "T0": T0, "ot_tol": ot.tol,
        "rtol": rtol, "measure": type(measure).__name__, "dim": measure.dim,
        "num_points": None if is_gauss else int(measure.num_points), "dtype": str(jnp.dtype(dtype)),
    }
    return _summarise(direction, times, schedule, m, settings, rtol, num_samples, is_gauss)


def _measure(measure, schedule, times, key, direction, num_samples, eps, T0, ot: OTResolution, rtol, ot_map,
             progress) -> M.Measured:
    """Dispatches to the backward/forward x dataset/Gaussian measurement."""
    is_gauss = isinstance(measure, GaussianMeasure)
    dtype = measure.mean.dtype if is_gauss else measure.points.dtype
    k_z, k_ot, k_b = jax.random.split(key, 3)
    if direction == "forward":
        if is_gauss:
            return M.forward_gaussian(measure, schedule, times, key=k_z, T0=T0, num_samples=num_samples, rtol=rtol,
                                      progress=progress)
        return M.forward_dataset(measure, schedule, times, keys=(k_z, k_ot, k_b), T0=T0, ot_points=ot.points,
                                 ot_mc_per_point=ot.mc_per_point, ot_tol=ot.tol, rtol=rtol, progress=progress)
    z = jax.random.normal(k_z, (num_samples, measure.dim), dtype)
    if is_gauss:
        return M.backward_gaussian(measure, schedule, times, z=z, eps=eps, rtol=rtol, progress=progress)
    if ot_map is None:
        from jaxotdm.ot import semidiscrete_ot

        progress(0, len(times), f"OT solve N(0, I) -> {measure.num_points} points")
        ot_map = semidiscrete_ot(measure.points, measure.weights, key=k_ot, tol=ot.tol, throw=False)  # warns
    return M.backward_dataset(measure, schedule, times, z=z, eps=eps, rtol=rtol, smap=ot_map, key=k_b,
                              progress=progress)


def _summarise(direction, times, schedule, m: M.Measured, settings, rtol, num_samples, is_gauss):
    """Self-convergence, exponential fits and the floor from the per-time measurements."""
    k = len(times)
    sc = np.array([M.l2_and_se(((f - m.finals[-1]) ** 2).sum(1)) for f in m.finals])
    self_conv, self_se = sc[:, 0], sc[:, 1]
    scale = math.sqrt(float(np.mean((m.finals[-1] ** 2).sum(1))))
    noise = 10 * rtol * max(scale, 1.0)  # below this the differences are solver noise
    decaying = (self_conv > noise) & (np.arange(k) < k - 1)
    lam = np.asarray(schedule.log_snr(jnp.asarray(times)), np.float64)
    floor, floor_se = float(m.l2[-1]), float(m.l2_se[-1])
    distinguishable = _floor_distinguishable(direction, m, floor, floor_se, num_samples, scale, is_gauss)
    excess = m.l2 - (floor if distinguishable else 0.0)
    resolvable = excess > 3 * np.sqrt(m.l2_se**2 + (floor_se**2 if distinguishable else 0.0))
    if direction == "backward" and not is_gauss:
        resolvable &= m.mismatch * num_samples >= 5
    use = resolvable & (np.arange(k) < k - 1) if distinguishable else resolvable
    fit_ot = fit_exponential(times, np.where(use, excess, np.nan), use)
    return ConvergenceResult(
        direction=direction, termination_times=times, log_snr=lam, l2_to_ot=m.l2, l2_to_ot_se=m.l2_se,
        mismatch_fraction=m.mismatch, mismatch_se=m.mismatch_se, l2_to_own_ot=m.own, self_convergence=self_conv,
        self_convergence_se=self_se, fit_time=fit_exponential(times, self_conv, decaying),
        fit_log_snr=fit_exponential(-lam, self_conv, decaying), fit_to_ot=fit_ot, floor=floor, floor_se=floor_se,
        floor_distinguishable=distinguishable, ot_resolution=m.ot_resolution, nfe=m.nfe,
        settings={**settings, "self_convergence_noise_level": noise}, cost=m.cost, flow_success=m.success,
    )


def _floor_distinguishable(direction, m: M.Measured, floor, floor_se, num_samples, scale, is_gauss) -> bool:
    if is_gauss:
        return bool(floor > max(3 * floor_se, 1e-6 * max(scale, 1.0)) and floor_se > 0)
    if direction == "backward":
        # A floor counts only if more mass is misrouted than the OT map's own measured mass error
        # (total variation between its cell masses and the weights) plus the landing read-off's own error
        # rate could explain, and by >= 5 samples.
        ot_tv = m.ot_resolution.get("mass_total_variation", 0.0) + m.ot_resolution.get("readout_error", 0.0)
        mis_floor, mis_se = m.mismatch[-1], m.mismatch_se[-1]
        enough = bool(mis_floor * num_samples >= 5 and mis_floor - 3 * mis_se > ot_tv)
    else:
        # beyond the Brenier estimate's resolution: its barycentre MC error and its discretisation scale
        res = m.ot_resolution
        enough = bool(floor > 3 * max(res["barycentre_mc_se"], res["discretisation_scale_n^(-1/d)"]))
    return bool(floor > 3 * floor_se and floor_se > 0 and enough)
