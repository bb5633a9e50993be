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

import math

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec

from jaxotdm import _validation as V
from jaxotdm._pytree import pytree_dataclass, static_field
from jaxotdm._types import Array, ArrayLike, Float
from jaxotdm.measures import EmpiricalMeasure, GaussianMeasure
from jaxotdm.schedules import Schedule
from jaxotdm.sharding import PointSharding, check_sharding, merge_lse, pick_best, vary_like

__all__ = ["ExactScore", "exact_score"]

DEFAULT_POINT_CHUNK = 2048
DEFAULT_QUERY_CHUNK = 4096


def _pad_to_multiple(a: Array, size: int, fill) -> Array:
    n = a.shape[0]
    pad = (-n) % size
    if pad == 0:
        return a
    return jnp.concatenate([a, jnp.full((pad,) + a.shape[1:], fill, a.dtype)], axis=0)


def _stream_partial(x, a, s2, points, log_w, chunk):
    """Online log-sum-exp over point chunks for one block of queries, before normalisation.

    Args:
        x: (q, d) queries, already shifted by ``alpha * center``.
        a, s2: (q,) alpha and sigma^2 per query.
        points: (n, d) centred points; log_w: (n,) log weights (``-inf`` for padding).
    Returns:
        ``(m, l, acc)``: per query the max ``m`` (q,) of the logits without the ``-|x|^2 / (2 s2)`` term,
        ``l = sum_i exp(logit_i - m)`` (q,) and ``acc = sum_i exp(logit_i - m) y_i`` (q, d). If every
        point has weight zero (a shard of padding): ``m = -inf, l = 0, acc = 0``.
    """
    n, d = points.shape
    chunk = min(chunk, n)
    y = _pad_to_multiple(points, chunk, 0.0).reshape(-1, chunk, d)
    lw = _pad_to_multiple(log_w, chunk, -jnp.inf).reshape(-1, chunk)
    q = x.shape[0]
    inv_s2 = 1.0 / s2

    @jax.checkpoint
    def body(carry, blk):
        m, l, acc = carry
        yc, lwc = blk
        y2 = jnp.sum(yc * yc, axis=-1)
        logits = lwc[None, :] + ((a * inv_s2)[:, None] * (x @ yc.T) - (0.5 * a * a * inv_s2)[:, None] * y2[None, :])
        m_new = jnp.maximum(m, jnp.max(logits, axis=-1))
        shift = jnp.where(jnp.isneginf(m_new), 0.0, m_new)  # all -inf so far: keep l = acc = 0, no NaN
        scale = jnp.exp(m - shift)
        p = jnp.exp(logits - shift[:, None])
        l = l * scale + jnp.sum(p, axis=-1)
        acc = acc * scale[:, None] + p @ yc
        return (m_new, l, acc), None

    init = (
        jnp.full((q,), -jnp.inf, x.dtype),
        jnp.zeros((q,), x.dtype),
        jnp.zeros((q, d), x.dtype),
    )
    (m, l, acc), _ = jax.lax.scan(body, vary_like(init, y), (y, lw))
    return m, l, acc


def _stream_block(x, a, s2, points, log_w, chunk):
    """(q,) log-sum-exp of the logits without the ``-|x|^2 / (2 s2)`` term, and (q, d) posterior mean of
    the centred points, for one block of queries (see :func:`_stream_partial`)."""
    m, l, acc = _stream_partial(x, a, s2, points, log_w, chunk)
    return m + jnp.log(l), acc / l[:, None]


def _partial_stats(xs, a, s2, points, log_w, chunk, qchunk):
    """:func:`_stream_partial` over all queries ``xs`` (q, d), in blocks of ``qchunk`` queries."""
    q, d = xs.shape
    if q <= qchunk:
        return _stream_partial(xs, a, s2, points, log_w, chunk)
    # blocks of queries; padding rows use harmless values and are sliced off
    blocks = (
        _pad_to_multiple(xs, qchunk, 0.0).reshape(-1, qchunk, d),
        _pad_to_multiple(a, qchunk, 1.0).reshape(-1, qchunk),
        _pad_to_multiple(s2, qchunk, 1.0).reshape(-1, qchunk),
    )
    m, l, acc = jax.lax.map(lambda b: _stream_partial(*b, points, log_w, chunk), blocks)
    return m.reshape(-1)[:q], l.reshape(-1)[:q], acc.reshape(-1, d)[:q]


def _sharded_partial_stats(xs, a, s2, points, log_w, chunk, qchunk, sharding: PointSharding):
    """:func:`_partial_stats` with the points split over ``sharding``: each device streams over its own
    block of points, then the partials are merged across devices (``pmax``/``psum``)."""
    points = sharding.pad(points, 0.0)
    log_w = sharding.pad(log_w, -jnp.inf)

    def local(xs, a, s2, points, log_w):
        return merge_lse(sharding, *_partial_stats(xs, a, s2, points, log_w, chunk, qchunk))

    rep = PartitionSpec()
    f = sharding.shard_map(local, in_specs=(rep, rep, rep, sharding.spec, sharding.spec), out_specs=rep)
    return f(xs, a, s2, points, log_w)


def _mixture_stats(measure: EmpiricalMeasure, x, t, schedule: Schedule, chunk_size=None, query_chunk_size=None,
                   sharding: PointSharding | None = None):
    """(log p_t(x), E[Y | X_t = x]) for an empirical measure; x of shape (..., d), t broadcastable to x[..., 0].

    With ``sharding``, the points are split over its mesh axis (see :mod:`jaxotdm.sharding`)."""
    chunk = DEFAULT_POINT_CHUNK if chunk_size is None else chunk_size
    qchunk = DEFAULT_QUERY_CHUNK if query_chunk_size is None else query_chunk_size
    points, w = measure.points, measure.weights
    dtype = jnp.result_type(x.dtype, points.dtype)
    x = x.astype(dtype)
    batch, d = x.shape[:-1], x.shape[-1]
    t = jnp.broadcast_to(jnp.asarray(t, dtype), batch).reshape(-1)
    xf = x.reshape(-1, d)
    center = jax.lax.stop_gradient(w) @ points
    yc = (points - center).astype(dtype)
    log_w = jnp.log(w).astype(dtype)
    a = schedule.alpha(t).astype(dtype)
    s2 = schedule.sigma2(t).astype(dtype)
    xs = xf - a[:, None] * center
    if sharding is None:
        m, l, acc = _partial_stats(xs, a, s2, yc, log_w, chunk, qchunk)
    else:
        m, l, acc = _sharded_partial_stats(xs, a, s2, yc, log_w, chunk, qchunk, sharding)
    log_p = m + jnp.log(l) - 0.5 * jnp.sum(xs * xs, axis=-1) / s2 - 0.5 * d * jnp.log(2 * math.pi * s2)
    mean_c = acc / l[:, None]
    return log_p.reshape(batch), (mean_c + center).reshape(batch + (d,))


def _argmax_partial(xs, a, s2, points, log_w, chunk):
    """Running ``(max, argmax)`` over point chunks of ``log w_i + (a <x, y_i> - a^2 |y_i|^2 / 2) / s2``;
    ``xs`` (q, d) shifted queries, ``a``, ``s2`` scalars. Ties go to the lowest index."""
    n, d = points.shape
    chunk = min(chunk, n)
    y = _pad_to_multiple(points, chunk, 0.0).reshape(-1, chunk, d)
    lw = _pad_to_multiple(log_w, chunk, -jnp.inf).reshape(-1, chunk)
    offsets = jnp.arange(y.shape[0], dtype=jnp.int32) * chunk

    def body(carry, blk):
        best, arg = carry
        yc, lwc, off = blk
        logits = lwc[None, :] + (a * (xs @ yc.T) - 0.5 * a * a * jnp.sum(yc * yc, -1)[None, :]) / s2
        m, i = jnp.max(logits, -1), jnp.argmax(logits, -1)
        better = m > best
        return (jnp.where(better, m, best), jnp.where(better, (i + off).astype(arg.dtype), arg)), None

    init = (jnp.full((xs.shape[0],), -jnp.inf, xs.dtype), jnp.zeros((xs.shape[0],), jnp.int32))
    (best, arg), _ = jax.lax.scan(body, vary_like(init, y), (y, lw, offsets))
    return best, arg


def _mixture_argmax(measure: EmpiricalMeasure, x, t, schedule: Schedule, chunk_size=None,
                    sharding: PointSharding | None = None):
    """Index of the largest posterior weight ``argmax_i log w_i - |x - alpha_t y_i|^2 / (2 sigma_t^2)``.

    Streams over point chunks with a running (max, argmax); x of shape (..., d), t a scalar. With
    ``sharding``, each device finds its best point and the global best is picked with ``pmax``/``pmin``
    (ties go to the lowest index, as without sharding).
    """
    chunk = DEFAULT_POINT_CHUNK if chunk_size is None else chunk_size
    points, w = measure.points, measure.weights
    dtype = jnp.result_type(x.dtype, points.dtype)
    batch, d = x.shape[:-1], x.shape[-1]
    xf = x.astype(dtype).reshape(-1, d)
    center = w @ points
    a = schedule.alpha(jnp.asarray(t, dtype))
    s2 = schedule.sigma2(jnp.asarray(t, dtype))
    xs = xf - a * center
    yc = (points - center).astype(dtype)
    log_w = jnp.log(w).astype(dtype)
    if sharding is None:
        return _argmax_partial(xs, a, s2, yc, log_w, chunk)[1].reshape(batch)
    n_local = sharding.shard_size(yc.shape[0])

    def local(xs, a, s2, yc, log_w):
        best, arg = _argmax_partial(xs, a, s2, yc, log_w, chunk)
        return pick_best(sharding, best, arg + sharding.shard_offset(n_local))[1]

    rep = PartitionSpec()
    f = sharding.shard_map(local, in_specs=(rep, rep, rep, sharding.spec, sharding.spec), out_specs=rep)
    return f(xs, a, s2, sharding.pad(yc, 0.0), sharding.pad(log_w, -jnp.inf)).reshape(batch)


# Jitted entry points (chunk sizes static): eager calls compile once per shape instead of retracing
# the streaming scan on every call.
_mixture_stats_jit = jax.jit(_mixture_stats, static_argnums=(4, 5, 6))
_mixture_argmax_jit = jax.jit(_mixture_argmax, static_argnums=(4, 5))


@pytree_dataclass
class ExactScore:
    """The exact score ``grad_x log p_t(x)`` of a known initial measure under a schedule.

    Call it as ``score(x, t)`` with ``x`` of shape ``(..., d)`` and ``t`` a scalar or an array
    broadcastable to ``x.shape[:-1]``. Also exposes :meth:`denoiser` and :meth:`log_density`. It is a
    PyTree, so it can be passed into jitted functions, and it is differentiable in ``x`` and in the
    measure's points.

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
        V.check_time(t, "t", t_max=self.schedule.t_max)
        return x

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
        x = self._check(x, t)
        return self._stats(x, t)[0]

    def denoiser(self, x: Float[ArrayLike, "... d"], t: ArrayLike) -> Float[Array, "... d"]:
        """The posterior mean ``E[X_0 | X_t = x]``."""
        x = self._check(x, t)
        return self._stats(x, t)[1]

    def posterior_mode(self, x: Float[ArrayLike, "... d"], t: ArrayLike):
        """Index of the data point with the largest posterior weight given ``X_t = x`` (empirical
        measures only; ``t`` a scalar). At small ``t`` this is the point a sample has landed on."""
        x = self._check(x, t)
        if not isinstance(self.measure, EmpiricalMeasure):
            raise ValueError("`measure` must be an EmpiricalMeasure for posterior_mode.")
        return _mixture_argmax_jit(self.measure, x, t, self.schedule, self.chunk_size, self.sharding)

    def __call__(self, x: Float[ArrayLike, "... d"], t: ArrayLike) -> Float[Array, "... d"]:
        """The score ``(alpha_t E[X_0 | X_t = x] - x) / sigma_t^2``."""
        x = self._check(x, t)
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
