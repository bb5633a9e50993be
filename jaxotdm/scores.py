"""Exact scores of the forward marginals of a known initial distribution.

For a discrete measure ``mu = sum_i w_i delta_{y_i}`` the marginal ``p_t`` is the Gaussian mixture
``sum_i w_i N(alpha_t y_i, sigma_t^2 I)``, so

    log p_t(x) = logsumexp_i(log w_i - |x - alpha_t y_i|^2 / (2 sigma_t^2)) - d/2 log(2 pi sigma_t^2)
    m(x, t)    = E[Y | X_t = x] = sum_i pi_i y_i,   pi = softmax_i(log w_i - |x - alpha_t y_i|^2 / 2 sigma_t^2)
    score      = (alpha_t m(x, t) - x) / sigma_t^2                                     (Tweedie)

The sums over points are evaluated as an online (streaming) log-sum-exp over chunks of points, like
flash attention: each chunk costs two matmuls of shape (queries x chunk x dims) and memory stays
O(queries x chunk + queries x dims). No (queries, points, dims) array is ever formed. Queries are
processed in blocks as well. The points are centred on their weighted mean internally, which keeps
the expanded squared distances accurate.

Scale-out: ``exact_score(..., sharding=PointSharding(mesh, axis))`` splits the data points over a mesh
axis (:mod:`jaxotdm.sharding`). Each device runs the same stream over its own points and returns its
partial ``(max, sum of exponentials, weighted sum)`` per query; these are merged across devices with
``pmax``/``psum`` exactly like two chunks of the online log-sum-exp. Points are padded to a multiple of
the device count with log-weight ``-inf``.

Precision note: logits are computed from inner products, so their absolute rounding error is about
``eps * |x - alpha_t c|^2 / sigma_t^2`` (``c`` the data mean). In float32 and for very small ``sigma_t``
relative to the data's scale, use float64 (``jax.config.update("jax_enable_x64", True)``).
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxotdm import _validation as V
from jaxotdm._mixture import DEFAULT_POINT_CHUNK, DEFAULT_QUERY_CHUNK, _mixture_argmax_jit, _mixture_stats_jit
from jaxotdm._pytree import pytree_dataclass, static_field
from jaxotdm._types import Array, ArrayLike, Float
from jaxotdm.measures import EmpiricalMeasure, GaussianMeasure
from jaxotdm.schedules import Schedule
from jaxotdm.sharding import PointSharding, check_sharding

__all__ = ["ExactScore", "exact_score"]

@pytree_dataclass
class ExactScore:
    """The exact score ``grad_x log p_t(x)`` of a known initial measure under a schedule.

    Call it as ``score(x, t)`` with ``x`` of shape ``(..., d)`` and ``t`` a scalar or an array
    broadcastable to ``x.shape[:-1]``. Also exposes :meth:`denoiser` and :meth:`log_density`. It is a
    PyTree, so it can be passed into jitted functions, and it is differentiable in ``x`` and in the
    measure's points. A time outside ``(0, schedule.t_max)`` (or NaN) raises a ValueError eagerly and, inside
    a user's ``jit``, an equinox runtime error naming ``t`` (``eqx.error_if``); other checks (``x`` finite)
    apply to concrete inputs only.

    Attributes:
        measure: an :class:`EmpiricalMeasure` or :class:`GaussianMeasure`.
        schedule: a :class:`~jaxotdm.schedules.Schedule`.
        chunk_size: points per streaming chunk (empirical measures).
        query_chunk_size: queries processed at once.
        sharding: ``None``, or a :class:`~jaxotdm.PointSharding` splitting the data points over devices.
    """

    measure: EmpiricalMeasure | GaussianMeasure
    schedule: Schedule
    chunk_size: int = static_field(DEFAULT_POINT_CHUNK)
    query_chunk_size: int = static_field(DEFAULT_QUERY_CHUNK)
    sharding: PointSharding | None = static_field(None)

    @property
    def dim(self) -> int:
        return self.measure.dim

    def _check(self, x, t) -> Array:
        x = V.as_float_array(x, "x")
        if x.ndim < 1 or x.shape[-1] != self.dim:
            raise ValueError(f"`x` must have shape (..., {self.dim}), got {tuple(x.shape)}.")
        V.check_finite(x, "x")
        return x, V.checked_time(t, "t", t_max=self.schedule.t_max)

    def _stats(self, x, t):
        if self.sharding is not None:  # empirical measures only (checked in exact_score)
            return _mixture_stats_jit(
                self.measure, x, t, self.schedule, self.chunk_size, self.query_chunk_size, self.sharding
            )
        return self.measure.marginal_stats(
            x, t, self.schedule, chunk_size=self.chunk_size, query_chunk_size=self.query_chunk_size
        )

    def log_density(self, x: Float[ArrayLike, "... d"], t: ArrayLike) -> Float[Array, "..."]:
        """``log p_t(x)``."""
        x, t = self._check(x, t)
        return self._stats(x, t)[0]

    def denoiser(self, x: Float[ArrayLike, "... d"], t: ArrayLike) -> Float[Array, "... d"]:
        """The posterior mean ``E[X_0 | X_t = x]``."""
        x, t = self._check(x, t)
        return self._stats(x, t)[1]

    def posterior_mode(self, x: Float[ArrayLike, "... d"], t: ArrayLike):
        """Index of the data point with the largest posterior weight given ``X_t = x`` (empirical
        measures only; ``t`` a scalar). At small ``t`` this is the point a sample has landed on."""
        x, t = self._check(x, t)
        if not isinstance(self.measure, EmpiricalMeasure):
            raise ValueError("`measure` must be an EmpiricalMeasure for posterior_mode.")
        return _mixture_argmax_jit(self.measure, x, t, self.schedule, self.chunk_size, self.sharding)

    def __call__(self, x: Float[ArrayLike, "... d"], t: ArrayLike) -> Float[Array, "... d"]:
        """The score ``(alpha_t E[X_0 | X_t = x] - x) / sigma_t^2``."""
        x, t = self._check(x, t)
        m = self._stats(x, t)[1]
        t = jnp.asarray(t, x.dtype)[..., None]
        return (self.schedule.alpha(t) * m - x) / self.schedule.sigma2(t)


def exact_score(
    measure: EmpiricalMeasure | GaussianMeasure,
    schedule: Schedule,
    *,
    chunk_size: int = DEFAULT_POINT_CHUNK,
    query_chunk_size: int = DEFAULT_QUERY_CHUNK,
    sharding: PointSharding | None = None,
) -> ExactScore:
    """The exact score function of ``measure`` diffused by ``schedule``.

    Args:
        measure: the initial distribution (a dataset as :class:`EmpiricalMeasure`, or a Gaussian).
        schedule: the forward noise schedule.
        chunk_size: points per streaming chunk; memory is O(queries x chunk_size).
        query_chunk_size: queries per block.
        sharding: ``None`` (one device), or a :class:`~jaxotdm.PointSharding` ``(mesh, axis)``: the data
            points are split over the mesh axis, each device streams over its own points and the partial
            log-sum-exps are merged with ``pmax``/``psum`` (same results up to rounding). Empirical
            measures only. See :mod:`jaxotdm.sharding`.

    Returns:
        An :class:`ExactScore`: ``score(x, t)``, ``score.denoiser(x, t)``, ``score.log_density(x, t)``.

    Example:
        >>> import jax.numpy as jnp, jaxotdm as jo
        >>> mu = jo.EmpiricalMeasure(jnp.array([[-1.0, 0.0], [1.0, 0.0]]))
        >>> score = jo.exact_score(mu, jo.OU())
        >>> score(jnp.zeros((3, 2)), 0.5).shape
        (3, 2)
    """
    if not isinstance(measure, (EmpiricalMeasure, GaussianMeasure)):
        raise ValueError(f"`measure` must be an EmpiricalMeasure or GaussianMeasure, got {type(measure).__name__}.")
    if not isinstance(schedule, Schedule):
        raise ValueError(f"`schedule` must be a jaxotdm Schedule, got {type(schedule).__name__}.")
    V.check_positive_int(chunk_size, "chunk_size")
    V.check_positive_int(query_chunk_size, "query_chunk_size")
    check_sharding(sharding)
    if sharding is not None and not isinstance(measure, EmpiricalMeasure):
        raise ValueError("`sharding` splits the points of an EmpiricalMeasure; a GaussianMeasure has none.")
    return ExactScore(measure, schedule, chunk_size, query_chunk_size, sharding)
