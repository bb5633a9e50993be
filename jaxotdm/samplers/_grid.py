"""Time grids ``t_start = t_0 > t_1 > ... > t_K = t_end`` for fixed-step samplers.

A grid is an immutable PyTree with one method, ``times(schedule, t_start, t_end, num_steps)``,
returning the ``num_steps + 1`` decreasing times (endpoints exact). The four standard choices:

* :class:`UniformTime`: equal steps in ``t``.
* :class:`UniformLogSNR`: equal steps in the log-SNR ``lambda(t) = log(alpha^2 / sigma^2)`` (the
  natural variable of DDIM and DPM-Solver).
* :class:`EDMGrid`: Karras et al. (2022), eq. 5: ``s_i = (s_max^(1/rho) + i/K (s_min^(1/rho) -
  s_max^(1/rho)))^rho`` in the noise-to-signal ratio ``s = sigma / alpha = exp(-lambda / 2)``
  (``s = sigma = t`` for EDM), mapped back to ``t`` with the schedule's inverse log-SNR.
* :class:`DDPMGrid`: the discrete DDPM timesteps ``t_i = i t_max / N`` (``N = 1000``), sub-sampled evenly
  in index as in DDIM; the interior times are snapped to the discrete grid. With
  :class:`~jaxotdm.VPLinear` (``beta_min = 0.1``, ``beta_max = 20``) these are the *times* of Ho et al.'s
  1000 training steps, but the chain is not exactly theirs: the continuous schedule's
  ``alpha_i^2 / alpha_{i-1}^2 = exp(-int beta)`` differs from DDPM's discrete ``1 - beta_i`` at second
  order in ``beta_i`` (up to about ``1e-3`` in the cumulative ``alpha``), and the samplers integrate the
  continuous process.

Each sampler method has a *default* grid (``method.default_grid(schedule)``, used when ``grid=None``):
equal steps in the log-SNR for every method, the variable the exponential integrators (DDIM,
DPM-Solver, ancestral DDPM) are derived in and the only standard grid that kept every method within
the data scale with 10 NFE on every schedule in our measurements (see :mod:`jaxotdm.samplers.ode`).
Equal steps in ``t`` (``"uniform"``) are *not* a safe choice: with few steps they diverge on schedules
whose log-SNR changes quickly near ``t_end`` (most of them).

``GRIDS`` maps short names (``"uniform"``, ``"log_snr"``, ``"edm"``, ``"ddpm"``) to default instances,
as a convenience; an explicit array of times is accepted by every sampler too.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from jaxotdm import _validation as V
from jaxotdm._pytree import pytree_dataclass, static_field
from jaxotdm._types import Array, ArrayLike, Float
from jaxotdm.schedules import Schedule

__all__ = ["UniformTime", "UniformLogSNR", "EDMGrid", "DDPMGrid", "GRIDS", "time_grid", "LOG_SNR_FLOOR"]


def _pin(times: Array, t_start, t_end) -> Array:
    """Replaces the endpoints by the exact requested times (the inverse maps round)."""
    return times.at[0].set(t_start).at[-1].set(t_end)


@pytree_dataclass
class UniformTime:
    """Equal steps in ``t``."""

    def times(self, schedule: Schedule, t_start, t_end, num_steps: int) -> Array:
        return jnp.linspace(t_start, t_end, num_steps + 1)


LOG_SNR_FLOOR = -30.0
"""Below this log-SNR (``alpha / sigma < 3e-7``) the marginal is the prior to within any sampler's
accuracy; :class:`UniformLogSNR` crosses that stretch in one step instead of spending steps on it."""


@pytree_dataclass
class UniformLogSNR:
    """Equal steps in the log-SNR ``lambda(t)``.

    When ``t_start`` lies beyond the log-SNR ``floor`` (default :data:`LOG_SNR_FLOOR`, e.g. OU from
    ``t > 30`` or VPLinear from ``t > 1.7``), the first step goes straight to the floor and the other
    ``num_steps - 1`` are equal in the log-SNR from there: spread from ``lambda(t_start) = -249``
    (VPLinear, ``t = 5``), equal steps would leave almost none where the data is resolved.
    """

    floor: float = static_field(LOG_SNR_FLOOR)

    def times(self, schedule: Schedule, t_start, t_end, num_steps: int) -> Array:
        lam0, lam1 = schedule.log_snr(t_start), schedule.log_snr(t_end)
        if num_steps == 1:
            return jnp.stack([jnp.asarray(t_start, lam0.dtype), jnp.asarray(t_end, lam0.dtype)])
        u = jnp.linspace(0.0, 1.0, num_steps + 1, dtype=lam0.dtype)
        plain = lam0 + u * (lam1 - lam0)
        floor = jnp.asarray(self.floor, lam0.dtype)
        floored = jnp.concatenate([lam0[None], floor + jnp.linspace(0.0, 1.0, num_steps, dtype=lam0.dtype)
                                   * (lam1 - floor)])
        lam = jnp.where((lam0 < floor) & (lam1 > floor), floored, plain)
        return _pin(schedule.t_from_log_snr(lam), t_start, t_end)


@pytree_dataclass
class EDMGrid:
    """Karras et al. (2022) polynomial grid in the noise-to-signal ratio, exponent ``rho`` (7)."""

    rho: float = 7.0

    def __post_init__(self):
        if V.is_concrete(self.rho):
            V.positive_scalar(self.rho, "rho")

    def times(self, schedule: Schedule, t_start, t_end, num_steps: int) -> Array:
        s_max = jnp.exp(-0.5 * schedule.log_snr(t_start))
        s_min = jnp.exp(-0.5 * schedule.log_snr(t_end))
        u = jnp.linspace(0.0, 1.0, num_steps + 1, dtype=s_max.dtype)
        inv = 1.0 / self.rho
        s = (s_max**inv + u * (s_min**inv - s_max**inv)) ** self.rho
        return _pin(schedule.t_from_log_snr(-2.0 * jnp.log(s)), t_start, t_end)


@pytree_dataclass
class DDPMGrid:
    """The discrete DDPM grid ``t_i = i t_max / num_train_steps``, evenly sub-sampled in index."""

    num_train_steps: int = static_field(1000)
    t_max: float = static_field(1.0)

    def __post_init__(self):
        V.check_positive_int(self.num_train_steps, "num_train_steps")
        V.positive_scalar(self.t_max, "t_max")

    def times(self, schedule: Schedule, t_start, t_end, num_steps: int) -> Array:
        n = self.num_train_steps / self.t_max
        idx = jnp.round(jnp.linspace(t_start * n, t_end * n, num_steps + 1))
        return _pin(idx / n, t_start, t_end)


GRIDS = {"uniform": UniformTime(), "log_snr": UniformLogSNR(), "edm": EDMGrid(), "ddpm": DDPMGrid()}
"""Convenience names for the default grids; any object with a ``times`` method is accepted too."""


def check_times(schedule: Schedule, t_start, t_end, *, dtype=None) -> None:
    """``t_start``, ``t_end``: real scalars, representable in ``dtype``, inside the schedule's domain, with
    ``t_end < t_start`` (samplers run backward in time)."""
    for name, t in (("t_start", t_start), ("t_end", t_end)):
        if V.is_concrete(t):
            V.real_scalar(t, name)
        elif jnp.ndim(t) != 0:
            raise ValueError(f"`{name}` must be a scalar, got shape {jnp.shape(t)}.")
        V.check_time(t, name, schedule=schedule, dtype=dtype)
    if V.is_concrete(t_start) and V.is_concrete(t_end) and not float(t_end) < float(t_start):
        raise ValueError(
            f"`t_end` must be < `t_start` (samplers run backward in time), got t_start={float(t_start)}, "
            f"t_end={float(t_end)}."
        )


def time_grid(
    schedule: Schedule,
    t_start: ArrayLike,
    t_end: ArrayLike,
    num_steps: int,
    grid="uniform",
    *,
    dtype=None,
) -> Float[Array, " steps"]:
    """The ``num_steps + 1`` decreasing times of a sampler run, validated.

    Args:
        schedule: the forward schedule.
        t_start: first and last time, ``0 < t_end < t_start < schedule.t_max``.
        t_end: see ``t_start``.
        num_steps: number of steps ``K >= 1``.
        grid: a name in :data:`GRIDS`, a grid object (``.times(schedule, t_start, t_end, K)``) or an
            explicit array of ``K + 1`` strictly decreasing times from ``t_start`` to ``t_end``.
        dtype: floating dtype of the returned times (default: the default float).

    Returns:
        The times ``t_0 = t_start > ... > t_K = t_end``, all inside ``(0, schedule.t_max)``.

    Example:
        >>> import jaxotdm as jo
        >>> from jaxotdm.samplers import time_grid
        >>> time_grid(jo.EDM(), 80.0, 0.002, 4, "edm").shape
        (5,)
    """
    if not isinstance(schedule, Schedule):
        raise V.ArgumentTypeError(f"`schedule` must be a jaxotdm Schedule, got {type(schedule).__name__}.")
    num_steps = V.check_positive_int(num_steps, "num_steps")
    if dtype is None:
        dtype = jnp.result_type(float)
    elif not np.issubdtype(np.dtype(dtype), np.floating):
        raise V.ArgumentTypeError(f"`dtype` must be a floating dtype, got {dtype!r}.")
    check_times(schedule, t_start, t_end, dtype=dtype)
    if isinstance(grid, str):
        if grid not in GRIDS:
            raise ValueError(f"`grid` must be one of {sorted(GRIDS)}, a grid object or an array, got {grid!r}.")
        grid = GRIDS[grid]
    if hasattr(grid, "times"):
        times = jnp.asarray(grid.times(schedule, jnp.asarray(t_start, dtype), jnp.asarray(t_end, dtype), num_steps), dtype)
    else:
        times = V.as_float_array(grid, "grid", dtype=dtype)
        if times.shape != (num_steps + 1,):
            raise ValueError(f"`grid` as an array must have shape ({num_steps + 1},), got {tuple(times.shape)}.")
        if V.is_concrete(times) and V.is_concrete(t_start) and V.is_concrete(t_end):
            ends = np.asarray(times)[[0, -1]]
            if not np.allclose(ends, [float(t_start), float(t_end)], rtol=1e-6, atol=0):
                raise ValueError(f"`grid` must start at t_start={float(t_start)} and end at t_end={float(t_end)}, got {ends}.")
    if V.is_concrete(times):
        tn = np.asarray(times)
        if not np.all(np.isfinite(tn)) or not np.all(np.diff(tn) < 0):
            raise ValueError(
                "`grid` produced times that are not finite and strictly decreasing "
                f"(too many steps for a discrete grid, or steps below the dtype's resolution?): {tn}."
            )
        if not (tn[-1] > 0 and tn[0] < schedule.t_max):
            raise ValueError(f"`grid` produced times outside the schedule's domain (0, {schedule.t_max}): {tn}.")
    return times
