r"""Where the probability flow and the OT map disagree: basins against Laguerre cells on a grid of the prior.

For a data set ``{x_j}`` (weights ``nu_j``) and a termination time ``s``, every point ``z`` of the prior's
standard coordinates is sent

* by the semi-discrete OT map ``N(0, I) -> mu`` to the point whose Laguerre cell contains ``z``, and
* by the probability flow, started at ``prior_std(s) z`` at time ``s`` and run down to ``eps``, to the point
  it lands on (read off as the posterior mode at ``eps``, as in
  :func:`~jaxotdm.verify.convergence_to_brenier`).

The sets of ``z`` sent to each point are the *Laguerre cells* and the flow's *basins*; where they differ
the flow misroutes mass. :func:`basin_map` evaluates both on a regular grid (``d = 1``: a segment, ``d = 2``:
a square) and reports the Gaussian mass of the misrouted region; :func:`jaxotdm.plotting.basin_map` draws
them.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from jaxotdm import _validation as V
from jaxotdm._pytree import pytree_dataclass
from jaxotdm.flow import ODESettings, flow_map
from jaxotdm.measures import EmpiricalMeasure
from jaxotdm.schedules import Schedule
from jaxotdm.scores import exact_score

__all__ = ["BasinMap", "basin_map"]


@pytree_dataclass
class BasinMap:
    """Laguerre cells and flow basins on a grid of the prior's standard coordinates.

    Attributes:
        axis: ``(g,)`` grid coordinates along each axis (the grid is ``axis`` in ``d = 1``, ``axis x axis`` in
            ``d = 2``; in ``d = 2`` index ``[i, j]`` is ``z = (axis[j], axis[i])``).
        points, weights: the data.
        times: ``(k,)`` termination times.
        ot_index: ``(g,)`` or ``(g, g)``: the OT map's target index at each grid point.
        flow_index: ``(k, g)`` or ``(k, g, g)``: the flow's landing index at each grid point and time.
        density: the ``N(0, I)`` density at the grid points, normalised to sum to one (the weight of each
            grid point in the mass below).
        misrouted_mass: ``(k,)`` fraction of the grid's Gaussian mass where ``flow_index != ot_index``.
        grid_mass: the Gaussian mass the grid covers (the box ``[-extent, extent]^d``).
        ot_max_relative_mass_error: the OT map's certificate (``NaN`` without one).
        flow_success: ``(k,)`` whether each flow solve succeeded.
    """

    axis: np.ndarray
    points: np.ndarray
    weights: np.ndarray
    times: np.ndarray
    ot_index: np.ndarray
    flow_index: np.ndarray
    density: np.ndarray
    misrouted_mass: np.ndarray
    grid_mass: float
    ot_max_relative_mass_error: float
    flow_success: np.ndarray

    @property
    def dim(self) -> int:
        """The dimension (1 or 2)."""
        return self.ot_index.ndim

    def misrouted(self, i: int) -> np.ndarray:
        """Boolean mask of the grid points the flow at ``times[i]`` sends elsewhere than the OT map."""
        return self.flow_index[i] != self.ot_index


def basin_map(
    measure: EmpiricalMeasure,
    schedule: Schedule,
    times,
    *,
    key,
    ot_map=None,
    grid_size: int = 161,
    extent: float = 3.0,
    eps: float = 1e-3,
    ot_tol: float = 0.1,
    rtol: float = 1e-6,
) -> BasinMap:
    """The OT map's Laguerre cells and the probability flow's basins on a grid of ``N(0, I)`` coordinates.

    Args:
        measure: the data, ``d = 1`` or ``d = 2``.
        schedule: the forward schedule.
        times: termination times ``s > eps`` (the flow starts at ``prior_std(s) z`` at time ``s``).
        key: PRNG key (for the OT solve when ``ot_map`` is not given).
        ot_map: a precomputed :class:`~jaxotdm.ot.SemidiscreteMap` ``N(0, I) -> measure`` (solved otherwise).
        grid_size: grid points per axis (``>= 2``); ``grid_size^d`` flows are solved per time.
        extent: the grid covers ``[-extent, extent]^d``.
        eps: end time of the flow.
        ot_tol: the semi-discrete solver's max relative mass error (when ``ot_map`` is not given).
        rtol: flow solver tolerance (``atol`` equal).

    Returns:
        A :class:`BasinMap`.

    Example:
        >>> import jax, numpy as np, jaxotdm as jo
        >>> from jaxotdm.verify import basin_map
        >>> mu = jo.EmpiricalMeasure(np.array([[-1.0, 0.0], [1.0, 0.0]]))
        >>> cells = jo.SemidiscreteMap(mu.points, mu.weights, np.zeros(2))  # equal weights: z1 < 0 and z1 > 0
        >>> bm = basin_map(mu, jo.OU(), [8.0], key=jax.random.key(0), ot_map=cells, grid_size=20)
        >>> bm.flow_index.shape, float(bm.misrouted_mass[0]) < 0.01
        ((1, 20, 20), True)
    """
    if not isinstance(measure, EmpiricalMeasure):
        raise ValueError(f"`measure` must be an EmpiricalMeasure, got {type(measure).__name__}.")
    if measure.dim not in (1, 2):
        raise ValueError(f"`measure` must be 1- or 2-dimensional (a grid of the prior), got d = {measure.dim}.")
    if not isinstance(schedule, Schedule):
        raise ValueError(f"`schedule` must be a jaxotdm Schedule, got {type(schedule).__name__}.")
    try:
        times = np.atleast_1d(np.asarray(times, np.float64))
    except (TypeError, ValueError) as exc:
        raise V.ArgumentTypeError(f"`times` must be a sequence of numbers, got {times!r}.") from exc
    if times.ndim != 1:
        raise ValueError(f"`times` must be 1-D, got shape {times.shape}.")
    V.check_time(times, "times", t_max=schedule.t_max)
    V.check_time(eps, "eps", t_max=schedule.t_max)
    if not np.all(times > eps):
        raise ValueError(f"`times` must all exceed `eps` = {eps}, got {times.tolist()}.")
    grid_size = V.check_positive_int(grid_size, "grid_size", minimum=2)
    extent = V.positive_scalar(extent, "extent")
    V.positive_scalar(rtol, "rtol")
    V.check_key(key)
    if ot_map is not None:
        from jaxotdm.ot import SemidiscreteMap

        if not isinstance(ot_map, SemidiscreteMap) or ot_map.targets.shape != measure.points.shape:
            raise ValueError("`ot_map` must be a SemidiscreteMap N(0, I) -> the measure's points (same shape).")
    else:
        from jaxotdm.ot import semidiscrete_ot

        V.fraction(ot_tol, "ot_tol")
        ot_map = semidiscrete_ot(measure.points, measure.weights, key=key, tol=ot_tol, throw=False)  # warns
    d, dtype = measure.dim, measure.points.dtype
    axis = np.linspace(-extent, extent, grid_size)
    if d == 1:
        z = axis[:, None]
        shape = (grid_size,)
    else:
        zx, zy = np.meshgrid(axis, axis)  # [i, j] = (axis[j], axis[i])
        z = np.stack([zx.ravel(), zy.ravel()], 1)
        shape = (grid_size, grid_size)
    zj = jnp.asarray(z, dtype)
    ot_index = np.asarray(ot_map.assign(zj)).reshape(shape)
    score = exact_score(measure, schedule)
    flow_index = np.empty((len(times), *shape), np.int64)
    success = np.ones(len(times), bool)
    for i, s in enumerate(times):
        res = flow_map(score, schedule, schedule.prior_std(jnp.asarray(s, dtype)) * zj, float(s), eps,
                       ode=ODESettings(rtol=rtol, atol=rtol), throw=False)
        success[i] = bool(res.success)
        flow_index[i] = np.asarray(score.posterior_mode(res.points, eps)).reshape(shape)
    dens = np.exp(-0.5 * (z**2).sum(1)).reshape(shape)
    dens = dens / dens.sum()
    misrouted = np.array([float(dens[flow_index[i] != ot_index].sum()) for i in range(len(times))])
    from scipy import stats

    grid_mass = float((stats.norm.cdf(extent) - stats.norm.cdf(-extent)) ** d)
    cert = ot_map.certificate
    ot_err = float(cert.max_relative_error) if cert is not None else float("nan")
    return BasinMap(axis, np.asarray(measure.points, np.float64), np.asarray(measure.weights, np.float64), times,
                    ot_index, flow_index, dens, misrouted, grid_mass, ot_err, success)

