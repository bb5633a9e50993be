r"""Where the probability flow's limit map stops short of the OT map: the floor, its exact 1-D control,
and how it scales with the number of points, the dimension, the spacing and the weights.

The backward flow from ``N(0, prior_std(s)^2 I)`` at a large time ``s`` down to ``eps`` sends each Gaussian
draw to a data point; as ``s`` grows this map converges (exponentially in ``s``) to a limit map ``M``.
Nothing forces ``M`` to be the semi-discrete OT map ``T`` (Lavenant & Santambrogio 2022). Three
measurements of the gap between them, per point cloud:

* the *misrouted mass* ``P(M(z) != T(z))`` (fraction of draws sent to a different point),
* the *L2 floor* ``sqrt(E |M(z) - T(z)|^2)``,
* the *transport-cost gap* ``(C_M - C_T) / C_T`` (:func:`~jaxotdm.verify.transport_cost_gap`).

In one dimension the flow of an ODE preserves order, so ``M`` is the monotone rearrangement, which *is*
the OT map: the floor must vanish for any ``n`` and any weights, up to the prior's own shift (the flow
starts from ``N(0, I)``, not ``p_s``, which moves every cell boundary by ``O(alpha(s))``) and up to points
closer than a few ``sigma(eps)``. :func:`monotone_map_1d` gives that OT map in closed form (no solver
error) and :func:`monotone_control` measures the 1-D case. :func:`floor_study` measures a list of point
clouds (:func:`random_clouds` builds the grid of sizes, dimensions and weightings).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from jaxotdm import _validation as V
from jaxotdm._pytree import pytree_dataclass, static_field
from jaxotdm.flow import ODESettings, flow_map
from jaxotdm.measures import EmpiricalMeasure
from jaxotdm.schedules import OU, Schedule
from jaxotdm.scores import exact_score
from jaxotdm.verify._measure import readout_error
from jaxotdm.verify.convergence import ConvergenceResult, convergence_to_brenier
from jaxotdm.verify.cost import TransportCost, transport_cost_gap

__all__ = [
    "Cloud",
    "FloorRow",
    "MonotoneControl",
    "floor_study",
    "monotone_control",
    "monotone_map_1d",
    "random_clouds",
]


# ------------------------------------------------------------------------------------------- 1-D exact
def monotone_map_1d(points, weights=None):
    """The OT map ``N(0, 1) -> sum_i w_i delta_{y_i}`` in one dimension, exactly (a
    :class:`~jaxotdm.ot.SemidiscreteMap` with closed-form heights and no certificate).

    The monotone rearrangement sends ``z`` to ``y_(k)`` when ``Phi(z)`` lies in the ``k``-th block of the
    cumulative sorted weights, so the cell boundaries are ``b_k = Phi^{-1}(w_(1) + ... + w_(k))``; the heights
    follow from ``z y_(k) + h_(k) = z y_(k+1) + h_(k+1)`` at ``z = b_k``.

    Example:
        >>> import numpy as np
        >>> from jaxotdm.verify import monotone_map_1d
        >>> smap = monotone_map_1d(np.array([[1.0], [-1.0]]), np.array([0.3, 0.7]))
        >>> [int(i) for i in smap.assign(np.array([[-2.0], [0.0], [2.0]]))]
        [1, 1, 0]
    """
    from jaxotdm.ot import SemidiscreteMap

    y = V.points(points, "points", dim=1)
    n = y.shape[0]
    w = np.full(n, 1.0 / n) if weights is None else np.asarray(V.weights(weights, n, "weights", positive=True),
                                                                np.float64)
    yn = np.asarray(y, np.float64)[:, 0]
    order = np.argsort(yn, kind="stable")
    ys = yn[order]
    if np.any(np.diff(ys) == 0):
        raise ValueError("`points` must be distinct (semi-discrete OT needs distinct targets).")
    b = stats.norm.ppf(np.clip(np.cumsum(w[order])[:-1], 0.0, 1.0))
    hs = np.concatenate([[0.0], np.cumsum(b * (ys[:-1] - ys[1:]))])
    h = np.empty(n)
    h[order] = hs
    h -= h.mean()
    return SemidiscreteMap(targets=y, weights=jnp.asarray(w, y.dtype), heights=jnp.asarray(h, y.dtype))


@pytree_dataclass
class MonotoneControl:
    """The exact 1-D case (:func:`monotone_control`).

    Attributes:
        result: the :class:`~jaxotdm.verify.ConvergenceResult` against the exact monotone map.
        alpha: ``alpha(s)`` at each time.
        slope, slope_ci: fitted exponent ``p`` of ``misrouted ~ alpha(s)^p`` (over times with >= 5 misrouted
            draws and at most 20% misrouted, where the shift is small) and its 95% CI (``p = 1``: boundaries moved
            by ``O(alpha(s))``; measured values are 0.8-0.95, see the verify report).
        misrouted_count: misrouted draws at each time.
        upper95: exact (Clopper-Pearson) 95% upper bound of the misrouted mass at each time.
        zero_within_resolution: at the largest time, the misrouted count is within 3 binomial standard
            errors of the ``alpha(s)`` extrapolation from the fitted range (i.e. nothing beyond the prior's
            shift), and the upper bound is below ``10 / num_samples``.
        points, weights: the data.
    """

    result: ConvergenceResult
    alpha: np.ndarray
    slope: float
    slope_ci: tuple[float, float]
    misrouted_count: np.ndarray
    upper95: np.ndarray
    zero_within_resolution: bool
    points: np.ndarray
    weights: np.ndarray


def _clopper_pearson_upper(k: np.ndarray, n: int, level: float = 0.95) -> np.ndarray:
    k = np.asarray(k)
    return np.where(k >= n, 1.0, stats.beta.ppf(level, k + 1, np.maximum(n - k, 1)))


def monotone_control(
    *,
    key,
    num_points: int = 20,
    spacing: float = 0.3,
    times=(4.0, 6.0, 8.0, 10.0, 12.0, 16.0, 20.0),
    schedule: Schedule | None = None,
    num_samples: int = 4096,
    eps: float = 1e-3,
    dirichlet: float = 1.0,
    progress=None,
) -> MonotoneControl:
    """The 1-D control: ``num_points`` points ``spacing`` apart with Dirichlet(``dirichlet``) weights.

    The flow's limit is the monotone rearrangement, which is the OT map, so the misrouted mass must decay
    like ``alpha(s)`` (the prior's shift) and be zero within Monte Carlo resolution at a large ``s``.

    Example:
        >>> import jax
        >>> from jaxotdm.verify import monotone_control
        >>> c = monotone_control(key=jax.random.key(0), num_points=5, times=(6.0, 12.0), num_samples=512)
        >>> c.misrouted_count.shape
        (2,)
    """
    V.check_key(key)
    n = V.check_positive_int(num_points, "num_points", minimum=2)
    spacing = V.positive_scalar(spacing, "spacing")
    V.positive_scalar(dirichlet, "dirichlet")
    schedule = OU() if schedule is None else schedule
    k_w, k_run = jax.random.split(key)
    pts = (spacing * (np.arange(n) - (n - 1) / 2)).reshape(n, 1)
    w = np.asarray(jax.random.dirichlet(k_w, jnp.full((n,), float(dirichlet))), np.float64)
    w = np.maximum(w, 1e-6)
    w /= w.sum()
    mu = EmpiricalMeasure(jnp.asarray(pts, jnp.float32), jnp.asarray(w, jnp.float32))
    smap = monotone_map_1d(mu.points, mu.weights)
    res = convergence_to_brenier(mu, schedule, list(times), key=k_run, num_samples=num_samples, eps=eps,
                                 ot_map=smap, progress=progress)
    alpha = np.asarray(schedule.alpha(jnp.asarray(res.termination_times)), np.float64)
    count = np.rint(res.mismatch_fraction * num_samples).astype(int)
    fit_mask = (count >= 5) & (res.mismatch_fraction <= 0.2)  # resolvable, and in the small-shift regime
    slope, ci = math.nan, (math.nan, math.nan)
    if fit_mask.sum() >= 3:
        lr = stats.linregress(np.log(alpha[fit_mask]), np.log(res.mismatch_fraction[fit_mask]))
        q = stats.t.ppf(0.975, int(fit_mask.sum()) - 2)
        slope, ci = float(lr.slope), (float(lr.slope - q * lr.stderr), float(lr.slope + q * lr.stderr))
    upper = _clopper_pearson_upper(count, num_samples)
    # the alpha law from the last resolvable time, extrapolated to the largest one
    zero = bool(upper[-1] < 10 / num_samples)
    if fit_mask.any():
        j = int(np.nonzero(fit_mask)[0][-1])
        pred = res.mismatch_fraction[j] * alpha[-1] / alpha[j] * num_samples
        zero = zero or bool(count[-1] <= pred + 3 * math.sqrt(max(pred, 1.0)))
    return MonotoneControl(res, alpha, slope, ci, count, upper, zero, pts, w)


# ------------------------------------------------------------------------------------------ the study
@pytree_dataclass
class Cloud:
    """A point cloud of the floor study: ``label``, ``points`` ``(n, d)``, ``weights`` ``(n,)``, ``kind``
    (``"equal"``, ``"dirichlet"`` or a data-set name)."""

    label: str = static_field()
    points: np.ndarray
    weights: np.ndarray
    kind: str = static_field()


def random_clouds(
    ns=(2, 3, 5, 10, 30, 100, 300),
    ds=(1, 2, 4, 8, 16, 64),
    weightings=("equal", "dirichlet"),
    *,
    key,
    scale: float = 1.0,
    dirichlet: float = 1.0,
    min_weight: float = 0.1,
) -> list[Cloud]:
    """Random clouds ``y_i ~ N(0, scale^2 I_d)`` for every ``n`` in ``ns`` and ``d`` in ``ds``, with equal or
    Dirichlet(``dirichlet``) weights (the same points for both weightings).

    Dirichlet weights are floored at ``min_weight / n`` and renormalised: the semi-discrete solver needs
    ``(z / tol)^2 / min(w)`` samples per pass, and Dirichlet(1) draws reach ``1 / n^2`` (``n = 300``: ~1e-5).
    The floored weights still span a ratio ``max / min`` of up to about ``10 log n / min_weight``.

    Example:
        >>> import jax
        >>> from jaxotdm.verify import random_clouds
        >>> [c.label for c in random_clouds((2,), (1, 2), key=jax.random.key(0))]
        ['n=2 d=1 equal', 'n=2 d=1 dirichlet', 'n=2 d=2 equal', 'n=2 d=2 dirichlet']
    """
    V.check_key(key)
    scale = V.positive_scalar(scale, "scale")
    V.positive_scalar(dirichlet, "dirichlet")
    V.fraction(min_weight, "min_weight", low_open=False)
    for arg, values in (("ns", ns), ("ds", ds), ("weightings", weightings)):
        if isinstance(values, (str, bytes)) or not hasattr(values, "__len__") or len(values) == 0:
            raise ValueError(f"`{arg}` must be a non-empty sequence, got {values!r}.")
    for w in weightings:
        V.check_choice(w, "weightings", ("equal", "dirichlet"))
    out = []
    for n in ns:
        V.check_positive_int(n, "ns", minimum=2)
        for d in ds:
            V.check_positive_int(d, "ds")
            k = jax.random.fold_in(jax.random.fold_in(key, n), d)
            y = scale * np.asarray(jax.random.normal(k, (n, d)), np.float64)
            wd = np.asarray(jax.random.dirichlet(jax.random.fold_in(k, 1), jnp.full((n,), float(dirichlet))))
            wd = np.maximum(wd.astype(np.float64), min_weight / n)
            for kind in weightings:
                w = np.full(n, 1.0 / n) if kind == "equal" else wd / wd.sum()
                out.append(Cloud(f"n={n} d={d} {kind}", y, w, kind))
    return out


@pytree_dataclass
class FloorRow:
    """One cloud of :func:`floor_study` (floats; ``cost`` a :class:`~jaxotdm.verify.TransportCost`).

    Attributes:
        label, kind, n, d: the cloud.
        misrouted, misrouted_se: fraction of draws the flow sends to a different point than the OT map.
        l2_floor, l2_floor_se: ``sqrt(E|M(z) - T(z)|^2)``.
        cost: the transport-cost gap and its decomposition.
        readout_error: how often the landing read-off names the wrong point for exact samples of ``p_eps``
            (points closer than a few ``sigma(eps)`` cannot be told apart): the resolution of ``misrouted``.
        distinguishable: misrouted mass above 3 standard errors plus the OT map's own mass error plus the
            read-off error, and at least 5 draws.
        min_spacing, median_nn: smallest and median nearest-neighbour distance between the points.
        rel_spacing: ``median_nn / sqrt(d)`` (the spacing per coordinate, comparable across ``d``).
        weight_ratio: ``max w / min w``; weight_entropy: ``H(w) / log n`` (1 for equal weights).
        ot_mass_error: total variation between the OT map's certified cell masses and the weights
            (0 for the exact 1-D map). nfe: score evaluations of the flow; flow_success: its status.
    """

    label: str = static_field()
    kind: str = static_field()
    n: int
    d: int
    misrouted: float
    misrouted_se: float
    l2_floor: float
    l2_floor_se: float
    cost: TransportCost
    readout_error: float
    distinguishable: bool
    min_spacing: float
    median_nn: float
    rel_spacing: float
    weight_ratio: float
    weight_entropy: float
    ot_mass_error: float
    nfe: int
    flow_success: bool


def _geometry(y: np.ndarray, w: np.ndarray) -> dict:
    sq = (y**2).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * y @ y.T, 0.0)
    np.fill_diagonal(d2, np.inf)
    nn = np.sqrt(d2.min(1))
    n, d = y.shape
    ent = float(-(w * np.log(w)).sum() / math.log(n)) if n > 1 else 1.0
    return {"min_spacing": float(nn.min()), "median_nn": float(np.median(nn)),
            "rel_spacing": float(np.median(nn) / math.sqrt(d)), "weight_ratio": float(w.max() / w.min()),
            "weight_entropy": ent}


def _one_cloud(cloud: Cloud, schedule, s, eps, z, key, ot_tol, rtol) -> FloorRow:
    from jaxotdm.ot import semidiscrete_ot

    y = np.asarray(cloud.points, np.float64)
    w = np.asarray(cloud.weights, np.float64)
    n, d = y.shape
    dtype = z.dtype
    mu = EmpiricalMeasure(jnp.asarray(y, dtype), jnp.asarray(w, dtype))
    if d == 1:
        smap, ot_tv = monotone_map_1d(mu.points, mu.weights), 0.0
    else:
        smap = semidiscrete_ot(mu.points, mu.weights, key=jax.random.fold_in(key, 0), tol=ot_tol,
                               throw=False)  # warns; its mass error is recorded (ot_mass_error)
        ot_tv = float(0.5 * np.abs(np.asarray(smap.certificate.masses, np.float64) - w).sum())
    score = exact_score(mu, schedule)
    res = flow_map(score, schedule, schedule.prior_std(jnp.asarray(s, dtype)) * z, s, eps,
                   ode=ODESettings(rtol=rtol, atol=rtol))
    idx = np.asarray(score.posterior_mode(res.points, eps))
    idx_ot = np.asarray(smap.assign(z))
    yy = np.asarray(mu.points, np.float64)
    N = z.shape[0]
    mis = float(np.mean(idx != idx_ot))
    mis_se = math.sqrt(max(mis * (1 - mis), 0.0) / N)
    sq = ((yy[idx] - yy[idx_ot]) ** 2).sum(1)
    l2 = math.sqrt(float(sq.mean()))
    l2_se = float(sq.std(ddof=1) / math.sqrt(N)) / (2 * l2) if l2 > 0 else 0.0
    cost = transport_cost_gap(np.asarray(z, np.float64), yy[idx], yy[idx_ot], targets=yy,
                              weights=np.asarray(mu.weights, np.float64), heights=np.asarray(smap.heights, np.float64),
                              map_index=idx, ot_index=idx_ot)
    ro = readout_error(mu, schedule, eps, jax.random.fold_in(key, 1), N)
    return FloorRow(
        label=cloud.label, kind=cloud.kind, n=n, d=d, misrouted=mis, misrouted_se=mis_se, l2_floor=l2,
        l2_floor_se=l2_se, cost=cost, readout_error=ro, distinguishable=bool(mis * N >= 5 and mis - 3 * mis_se > ot_tv + ro),
        **_geometry(y, w), ot_mass_error=ot_tv, nfe=int(res.nfe), flow_success=bool(res.success),
    )


def floor_study(
    clouds: list[Cloud],
    *,
    key,
    schedule: Schedule | None = None,
    s: float = 16.0,
    eps: float = 1e-3,
    num_samples: int = 2048,
    ot_tol: float = 0.1,
    rtol: float = 1e-5,
    progress=None,
) -> list[FloorRow]:
    """Measures the floor of the flow's limit map against the OT map on every cloud.

    Per cloud: the OT map (exact monotone map in 1-D, else :func:`~jaxotdm.ot.semidiscrete_ot` at
    ``ot_tol``), one backward flow of ``num_samples`` Gaussian draws from ``s`` (large, so the flow map has
    reached its limit: its self-convergence is ``O(alpha(s))``) to ``eps``, read off as the data point
    each draw lands on; then the misrouted mass, the L2 floor and the cost gap, with standard errors.

    Args:
        clouds: :class:`Cloud` records (e.g. from :func:`random_clouds`, or data subsets).
        key: PRNG key (one fold per cloud).
        schedule: forward schedule (default OU); s, eps: start and end of the backward flow.
        num_samples: Gaussian draws per cloud. ot_tol: semi-discrete tolerance. rtol: flow tolerance.
        progress: optional ``progress(i, total, label)`` callback, called before each cloud.

    Returns:
        A list of :class:`FloorRow`, one per cloud.

    Example:
        >>> import jax
        >>> from jaxotdm.verify import floor_study, random_clouds
        >>> rows = floor_study(random_clouds((3,), (1,), ("equal",), key=jax.random.key(0)),
        ...                    key=jax.random.key(1), num_samples=256)
        >>> rows[0].misrouted < 0.05
        True
    """
    V.check_key(key)
    schedule = OU() if schedule is None else schedule
    if not isinstance(schedule, Schedule):
        raise ValueError(f"`schedule` must be a jaxotdm Schedule, got {type(schedule).__name__}.")
    V.check_time(s, "s", t_max=schedule.t_max)
    V.check_time(eps, "eps", t_max=schedule.t_max)
    if not eps < s:
        raise ValueError(f"`eps` must be < `s`, got eps = {eps}, s = {s}.")
    V.check_positive_int(num_samples, "num_samples", minimum=2)
    V.fraction(ot_tol, "ot_tol")
    V.positive_scalar(rtol, "rtol")
    if not isinstance(clouds, (list, tuple)) or not all(isinstance(c, Cloud) for c in clouds):
        raise ValueError("`clouds` must be a list of Cloud records (see random_clouds).")
    for c in clouds:
        V.points(c.points, f"clouds[{c.label!r}].points", min_points=2)
        V.weights(c.weights, len(c.points), f"clouds[{c.label!r}].weights", positive=True)
    progress = progress or (lambda i, n, msg: None)
    rows = []
    for i, cloud in enumerate(clouds):
        progress(i, len(clouds), cloud.label)
        k = jax.random.fold_in(key, i)
        d = np.shape(cloud.points)[1]
        z = jax.random.normal(jax.random.fold_in(k, 0), (num_samples, d))
        rows.append(_one_cloud(cloud, schedule, s, eps, z, jax.random.fold_in(k, 1), ot_tol, rtol))
    return rows
