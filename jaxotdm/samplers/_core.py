"""The fixed-step driver shared by every sampler: validation, the prior draw and one ``lax.scan``.

A sampler *method* is an immutable PyTree with an init/step pair::

    state = method.init(x)                                  # x at t_0 = t_start
    state = method.step(score, schedule, state, t, s, noise)  # one step t -> s (s < t)
    x     = method.points(state)

``noise(i)`` returns the ``i``-th standard normal draw of the step, shaped like ``x`` (``None`` for
deterministic methods). :func:`sample` runs the steps over a time grid in one ``lax.scan``. The NFE is
exact by construction: inside the scan body the score is wrapped in a counter, so the count added per
step is the number of score calls the traced step actually makes, not a declared constant.

Divergence is detected: the largest sample norm is compared with the scale the samples should have at
that time, ``ref(t) = alpha_t R + sigma_t (sqrt(d) + 4)`` (``R`` the data radius, ``score.measure.radius``
when the score exposes its measure, else ``sqrt(d)``, data in ``[-1, 1]^d``). If at ``t_end`` the ratio
exceeds :data:`DIVERGENCE_FACTOR` times its value at the start (or 1; :data:`DIVERGENCE_FACTOR_GUESSED_RADIUS`
where ``R`` is the ``sqrt(d)`` guess), the result's ``status`` is
``Status.DIVERGED`` (``NONFINITE`` for NaN/inf), and an eager call raises a ``RuntimeError`` (``throw=True``,
the default) or warns (:class:`ConvergenceWarning`, ``throw=False``): the status contract of
:mod:`jaxotdm._status`.
The largest ratio over the whole run is returned as ``scale_ratio``: coarse stochastic steps often
overshoot mid-run (by up to ~15x with 5 Euler-Maruyama steps on VE) and recover by the end, so the
status judges the samples that are returned.

Steps inside the prior regime (both ends with a log-SNR below ``LOG_SNR_FLOOR + 1 = -29``,
i.e. ``alpha / sigma < e^{-14.5}``: the data are not resolved there) are taken with the exact transition of
that regime instead of the method's formula: deterministic ``x_s = (sigma_s / sigma_t) x_t`` (the flow with
``score = -x / sigma^2``), stochastic the Gaussian posterior ``x_s ~ N(alpha_{t|s} sigma_s^2 / sigma_t^2 x_t,
sigma_s^2 sigma_{t|s}^2 / sigma_t^2)``; both leave out only the ``alpha_s E[X_0]`` term, below ``e^{-14.5}``
of the data scale. The methods' own formulas divide by ``alpha_t`` or multiply by ``e^h`` and lose every
digit there (VPLinear from ``t = 5``: ``alpha_t`` underflows to 0 in float32, and DDIM, Heun, DPM-Solver and
DDPM returned NaN, DPM-Solver-2 in float64 1e56). The method's step still runs (its NFE is counted and
spent) and is discarded on such steps; a multistep method restarts its history after them.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from jaxotdm import _validation as V
from jaxotdm._pytree import pytree_dataclass
from jaxotdm._status import Status, report_result
from jaxotdm._types import Array, ArrayLike, Float, Int
from jaxotdm.samplers._grid import LOG_SNR_FLOOR, check_times, time_grid
from jaxotdm.schedules import Schedule

__all__ = ["SampleResult", "sample", "DIVERGENCE_FACTOR", "DIVERGENCE_FACTOR_GUESSED_RADIUS"]

DIVERGENCE_FACTOR = 3.0
"""A run is flagged ``DIVERGED`` when its samples exceed this multiple of the scale they should have, where
the data radius is known (the score exposes its measure).

Measured on the exact score of a 32-point set, every sampler with its default grid from each schedule's
usual start (10 and 100 NFE, float64): converged runs end within 1.27 data radii; 5.0 let predictor-corrector
(4.2 radii) and DPM-Solver-2 (3.8) from VPLinear ``t = 5`` at 10 NFE pass as successes."""

DIVERGENCE_FACTOR_GUESSED_RADIUS = 5.0
"""The same, where the data radius is a guess (``sqrt(d)``, data in ``[-1, 1]^d``: learned or user scores):
the guess is off by a factor ~2 for data outside the unit cube, so the margin is wider."""


@pytree_dataclass
class SampleResult:
    """Result of a sampler run.

    Attributes:
        points: the samples at ``t_end``, same shape as the initial points.
        nfe: exact number of score evaluations (each evaluation is on the whole batch).
        num_steps: number of steps taken.
        times: the time grid ``t_start = t_0 > ... > t_K = t_end`` (for the adaptive flow: the two
            endpoints).
        status: ``int32`` :class:`~jaxotdm._status.Status`: ``SUCCESS``, ``DIVERGED`` (samples left
            :data:`DIVERGENCE_FACTOR` times their expected scale), ``NONFINITE``, or (adaptive flow) the
            solver's failure.
        scale_ratio: the largest ``max |x| / ref(t)`` over the run, relative to its starting value (``ref``
            in the module docstring); about 1 for an accurate run, larger when coarse steps overshoot.

    An immutable PyTree (``result.replace(points=...)`` for a modified copy); it carries no wall times.
    """

    points: Float[Array, "... d"]
    nfe: Int[Array, ""]
    num_steps: Int[Array, ""]
    times: Float[Array, " k"]
    status: Int[Array, ""]
    scale_ratio: Float[Array, ""]


class _Counted:
    """Counts the score calls made while a step is traced (each traced call runs once per step)."""

    def __init__(self, score):
        self.score = score
        self.calls = 0

    def __call__(self, x, t):
        self.calls += 1
        return self.score(x, t)


def _data_radius(score, d: int, dtype):
    """``(radius, divergence factor)``: ``score.measure.radius`` and :data:`DIVERGENCE_FACTOR` when the score
    exposes its measure, else ``sqrt(d)`` (data in [-1, 1]^d) and :data:`DIVERGENCE_FACTOR_GUESSED_RADIUS`."""
    measure = getattr(score, "measure", None)
    radius = getattr(measure, "radius", None) if measure is not None else None
    if radius is None:
        return jnp.asarray(np.sqrt(d), dtype), DIVERGENCE_FACTOR_GUESSED_RADIUS
    return jnp.asarray(radius, dtype), DIVERGENCE_FACTOR


def _scale(schedule, t, radius, d: int):
    """``ref(t) = alpha_t R + sigma_t (sqrt(d) + 4)``: where samples of ``p_t`` live."""
    return schedule.alpha(t) * radius + schedule.sigma(t) * (np.sqrt(d) + 4.0)


def _ratio(x, ref):
    return jnp.max(jnp.sqrt(jnp.sum(x * x, axis=-1))) / ref


def _divergence_status(ratio0, final_ratio, max_ratio, points, factor: float):
    """NONFINITE, DIVERGED (judged on the final samples) or SUCCESS, and the run's largest scale ratio."""
    norm = jnp.maximum(ratio0, 1.0)
    diverged = ~(final_ratio <= factor * norm)  # NaN counts as diverged
    status = jnp.where(diverged, Status.DIVERGED, Status.SUCCESS)
    status = jnp.where(jnp.all(jnp.isfinite(points)), status, Status.NONFINITE)
    return status.astype(jnp.int32), max_ratio / norm


def _in_prior_regime(schedule, t, s):
    """Both ends of the step ``t -> s`` have a log-SNR below ``LOG_SNR_FLOOR + 1`` (data unresolved)."""
    return (schedule.log_snr(t) < LOG_SNR_FLOOR + 1.0) & (schedule.log_snr(s) < LOG_SNR_FLOOR + 1.0)


def _prior_transition(schedule, x, t, s, z):
    """The exact step ``t -> s`` of the prior regime, where ``score(x, t) = -x / sigma_t^2`` (module
    docstring); ratios of ``alpha`` from ``log_alpha``, so nothing underflows."""
    sigma_t, sigma_s = schedule.sigma(t), schedule.sigma(s)
    if z is None:
        return (sigma_s / sigma_t) * x
    a_ts = jnp.exp(schedule.log_alpha(t) - schedule.log_alpha(s))  # alpha_{t|s} = alpha_t / alpha_s
    var_ts = jnp.maximum(jnp.square(sigma_t) - jnp.square(a_ts * sigma_s), 0.0)  # sigma_{t|s}^2
    mean = a_ts * jnp.square(sigma_s / sigma_t) * x
    return mean + (sigma_s / sigma_t) * jnp.sqrt(var_ts) * z


@eqx.filter_jit
def _drive(method_type, method, score, schedule, x, times, noise_key, noises):
    # ``method_type`` is static: empty flax dataclasses of different classes have equal treedefs, so
    # the class must be part of the cache key.
    del method_type
    num_steps = times.shape[0] - 1
    d = x.shape[-1]
    radius, factor = _data_radius(score, d, x.dtype)

    def body(carry, inputs):
        state, nfe, worst = carry
        k, t, s, noise_k = inputs
        if noises is not None:
            noise = lambda i: noise_k[i]
        elif noise_key is not None:
            key_k = jax.random.fold_in(noise_key, k)
            noise = lambda i: jax.random.normal(jax.random.fold_in(key_k, i), x.shape, x.dtype)
        else:
            noise = None
        counted = _Counted(score)
        new = method.step(counted, schedule, state, t, s, noise)
        # Keep the carry's dtypes (a float64 score must not promote a float32 run).
        new = jax.tree.map(lambda a, b: jnp.asarray(a).astype(b.dtype), new, state)
        in_prior = _in_prior_regime(schedule, t, s)
        x_prior = _prior_transition(schedule, method.points(state), t, s, noise(0) if method.stochastic else None)
        restart = jax.tree.map(lambda a, b: jnp.asarray(a).astype(b.dtype), method.init(x_prior), state)
        new = jax.tree.map(lambda a, b: jnp.where(in_prior, a, b), restart, new)
        r = _ratio(method.points(new), _scale(schedule, s, radius, d)).astype(worst.dtype)
        worst = jnp.where(jnp.isnan(r) | (r > worst), r, worst)  # NaN sticks
        return (new, nfe + counted.calls, worst), None

    ratio0 = _ratio(x, _scale(schedule, times[0], radius, d)).astype(x.dtype)
    init = (method.init(x), jnp.zeros((), jnp.int32), ratio0)
    ks = jnp.arange(num_steps)
    (state, nfe, worst), _ = jax.lax.scan(body, init, (ks, times[:-1], times[1:], noises))
    points = method.points(state)
    final = _ratio(points, _scale(schedule, times[-1], radius, d)).astype(x.dtype)
    status, scale_ratio = _divergence_status(ratio0, final, worst, points, factor)
    return SampleResult(points, nfe, jnp.asarray(num_steps, jnp.int32), times, status, scale_ratio)


def _report(result: SampleResult, what: str, throw: bool, advice: str) -> SampleResult:
    """The status contract at a sampler's end (:func:`~jaxotdm._status.report_result`): eagerly, a status
    other than ``SUCCESS`` raises (``throw=True``) or warns (``throw=False``), saying how far the samples went
    and ``advice``; inside ``jit`` the status travels in the result."""
    if isinstance(result.status, jax.core.Tracer):
        return result
    detail = advice
    if Status(int(result.status)) in (Status.DIVERGED, Status.NONFINITE):
        detail = f"samples reached {float(result.scale_ratio):.3g} times their expected scale; {advice}"
    if throw:
        detail += "; pass throw=False to get the result with its status"
    return report_result(result, what=what, throw=throw, detail=detail)


def _check_method(method):
    needed = ("init", "step", "points", "evals_per_step", "stochastic")
    if isinstance(method, type) or not all(hasattr(method, a) for a in needed):
        raise V.ArgumentTypeError(
            "`method` must be a sampler method object such as jaxotdm.samplers.Heun() (with init/step/points), "
            f"got {method!r}."
        )


def _prior_shape(shape):
    """``(dims, dtype)`` of the prior draw: ``shape`` is a tuple of positive ints (``dtype`` ``None``: the
    default float) or a ``jax.ShapeDtypeStruct`` with a floating dtype (canonicalised: float64 -> float32
    without x64); ``(None, None)`` for ``None``."""
    if shape is None:
        return None, None
    what = "a tuple of positive ints (..., d) or a jax.ShapeDtypeStruct with a floating dtype"
    dims, dtype = shape, None
    if isinstance(shape, jax.ShapeDtypeStruct):
        if not jnp.issubdtype(shape.dtype, jnp.floating):
            raise V.ArgumentTypeError(f"`shape` must be {what}, got {shape!r}.")
        dims, dtype = shape.shape, jax.dtypes.canonicalize_dtype(shape.dtype)
    try:
        dims = tuple(dims)
    except TypeError as exc:
        raise V.ArgumentTypeError(f"`shape` must be {what}, got {shape!r}.") from exc
    if len(dims) < 1 or not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 1
                                for n in dims):
        raise ValueError(f"`shape` must be {what}, got {shape!r}.")
    return tuple(int(n) for n in dims), dtype


def _work_dtype(x, dtype):
    """The run's floating dtype: ``dtype``, else that of a floating ``x``, else the default float."""
    if dtype is not None:
        try:
            dt = np.dtype(dtype)
        except TypeError as exc:
            raise V.ArgumentTypeError(f"`dtype` must be a floating dtype, got {dtype!r}.") from exc
        if not np.issubdtype(dt, np.floating):
            raise V.ArgumentTypeError(f"`dtype` must be a floating dtype, got {dtype!r}.")
        return jnp.dtype(jnp.zeros((), dt).dtype)  # canonical (float64 -> float32 without x64)
    xd = getattr(x, "dtype", None)
    if xd is not None and np.issubdtype(np.dtype(xd), np.floating):
        return jnp.zeros((), xd).dtype
    return jnp.result_type(float)


def _check_score_schedule(score, schedule):
    if not callable(score) or isinstance(score, type):
        raise V.ArgumentTypeError(f"`score` must be callable as score(x, t), got {score!r}.")
    if not isinstance(schedule, Schedule):
        raise V.ArgumentTypeError(f"`schedule` must be a jaxotdm Schedule instance, got {schedule!r}.")


def _check_times(schedule, t_start, t_end, dtype=None):
    check_times(schedule, t_start, t_end, dtype=dtype)


@jax.jit
def _all_finite(x):
    return jnp.all(jnp.isfinite(x))


def _initial_points(score, schedule, x, t_start, key, shape, dtype):
    """The starting points and the key left for the noise."""
    if x is None:
        if shape is None:
            raise ValueError("pass the initial points `x`, or `shape` (and `key`) to draw them from the prior.")
        shape, shape_dtype = _prior_shape(shape)
        dtype = shape_dtype if dtype is None else dtype
        V.check_key(key)
        key, k_prior = jax.random.split(key)
        dtype = jnp.result_type(float) if dtype is None else dtype
        x = schedule.sample_prior(k_prior, jnp.asarray(t_start, dtype), shape).astype(dtype)
    else:
        if shape is not None:
            raise ValueError("pass either the initial points `x` or a prior `shape`, not both.")
        if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jnp.floating):
            # Already a floating JAX array: same result as V.as_float_array without its host round trip.
            x = x if dtype is None else x.astype(dtype)
        else:
            x = V.as_float_array(x, "x", dtype=dtype)
        if x.ndim < 1:
            raise ValueError(f"`x` must have shape (..., d), got {tuple(x.shape)}.")
        if V.is_concrete(x) and not bool(_all_finite(x)):  # one fused dispatch; check_finite names the count
            V.check_finite(x, "x")
    if x.shape[-1] < 1:
        raise ValueError(f"`x` must have shape (..., d) with d >= 1, got {tuple(x.shape)}.")
    dim = getattr(score, "dim", None)
    if isinstance(dim, int) and x.shape[-1] != dim:
        raise ValueError(f"`x` (or `shape`) must have last dimension {dim} to match `score`, got {tuple(x.shape)}.")
    return x, key


def _num_steps(method, num_steps, nfe) -> int:
    per = method.evals_per_step
    if (num_steps is None) == (nfe is None):
        raise ValueError("pass exactly one of `num_steps` and `nfe`.")
    if nfe is not None:
        nfe = V.check_positive_int(nfe, "nfe")
        if nfe % per:
            raise ValueError(
                f"`nfe` must be a multiple of {per} for {type(method).__name__} ({per} score evaluations per "
                f"step), got {nfe}."
            )
        return nfe // per
    return V.check_positive_int(num_steps, "num_steps")


def sample(
    method,
    score: Callable[[Array, Array], Array],
    schedule: Schedule,
    x: Float[ArrayLike, "... d"] | None = None,
    *,
    t_start: ArrayLike,
    t_end: ArrayLike,
    num_steps: int | None = None,
    nfe: int | None = None,
    grid=None,
    key=None,
    shape: tuple[int, ...] | jax.ShapeDtypeStruct | None = None,
    throw: bool = True,
) -> SampleResult:
    """Runs a fixed-step sampler ``method`` from ``t_start`` down to ``t_end`` in one ``lax.scan``.

    Args:
        method: a sampler method object (:class:`~jaxotdm.samplers.Euler`, ``Heun``, ``DDIM``, ...).
        score: ``score(x, t)`` for ``x`` of shape ``(..., d)`` and scalar ``t`` (exact or learned).
        schedule: the forward schedule the score belongs to.
        x: initial points at ``t_start``, shape ``(..., d)``; or ``None`` to draw ``shape`` points from
            the schedule's prior ``q_{t_start}`` (needs ``key``). The run's dtype is that of ``x`` (an integer
            ``x`` becomes the default float).
        t_start: ``0 < t_end < t_start < schedule.t_max``.
        t_end: see ``t_start``.
        num_steps: exactly one: the number of steps, or the score-evaluation budget (a multiple of
            ``method.evals_per_step``).
        nfe: see ``num_steps``.
        grid: ``None`` (default) for the method's own grid, ``method.default_grid(schedule)`` (log-SNR for
            the exponential integrators, Karras ``rho = 7`` for the others); a name in
            :data:`~jaxotdm.samplers.GRIDS`, a grid object or an explicit array of times.
        key: PRNG key; required for the prior draw and for stochastic methods.
        shape: the prior draw when ``x`` is ``None``: a tuple ``(..., d)`` (in the default float), or a
            ``jax.ShapeDtypeStruct`` whose floating dtype is the run's (e.g.
            ``jax.ShapeDtypeStruct((256, 2), jnp.float32)``).
        throw: the status contract (:mod:`jaxotdm._status`): called eagerly, a diverged or non-finite run
            raises a ``RuntimeError``; with ``throw=False`` it is returned and warns
            (:class:`~jaxotdm.ConvergenceWarning`). Under ``jit`` the status travels in the result.

    Returns:
        A :class:`SampleResult` (points at ``t_end``, exact ``nfe``, ``num_steps``, ``times``, ``status``,
        ``scale_ratio``); ``status`` says whether the run diverged or went non-finite.

    Example:
        >>> import jax, jax.numpy as jnp, jaxotdm as jo
        >>> from jaxotdm.samplers import Heun, sample
        >>> mu = jo.EmpiricalMeasure(jnp.array([[-1.0], [1.0]]))
        >>> sched = jo.OU()
        >>> out = sample(Heun(), jo.exact_score(mu, sched), sched, t_start=6.0, t_end=1e-2, nfe=20,
        ...              key=jax.random.key(0), shape=(8, 1))
        >>> int(out.nfe), out.points.shape, jo.Status(int(out.status)).name
        (20, (8, 1), 'SUCCESS')
        >>> f32 = jax.ShapeDtypeStruct((8, 1), jnp.float32)  # the prior draw's shape and dtype
        >>> sample(Heun(), jo.exact_score(mu, sched), sched, t_start=6.0, t_end=1e-2, nfe=20,
        ...        key=jax.random.key(0), shape=f32).points.dtype
        dtype('float32')
    """
    _check_method(method)
    _check_score_schedule(score, schedule)
    shape, prior_dtype = _prior_shape(shape)
    throw = V.check_bool(throw, "throw")
    _check_times(schedule, t_start, t_end, dtype=_work_dtype(x, None if x is not None else prior_dtype))
    k = _num_steps(method, num_steps, nfe)
    if method.stochastic or x is None:
        V.check_key(key)
    x, key = _initial_points(score, schedule, x, t_start, key, shape, prior_dtype)
    if grid is None:
        grid = method.default_grid(schedule) if hasattr(method, "default_grid") else "log_snr"
    times = time_grid(schedule, t_start, t_end, k, grid, dtype=x.dtype)
    noise_key = key if method.stochastic else None
    out = _drive(type(method), method, score, schedule, x, times, noise_key, None)
    return _report(out, f"sample ({type(method).__name__})", throw,
                   "use more steps or the method's default grid (grid=None)")


def _sample_with_noise(method, score, schedule, x, times, noises) -> SampleResult:
    """Runs ``method`` with given standard-normal draws ``noises`` of shape ``(K, draws_per_step, *x.shape)``.

    Used for exact (affine-Gaussian) moment computations and common-random-number designs.
    """
    return _drive(type(method), method, score, schedule, x, times, None, noises)
