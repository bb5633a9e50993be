"""The streamed Gaussian-mixture statistics of a discrete measure diffused to time ``t``: ``log p_t(x)``,
``E[Y | X_t = x]`` and the most likely source point (the formulas of :mod:`jaxotdm.scores`).

One private home for the machinery that both :class:`~jaxotdm.measures.EmpiricalMeasure` (its
``marginal_stats``) and :class:`~jaxotdm.scores.ExactScore` use, so that neither module imports the other.
The measure is duck-typed (``points``, ``weights``).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxotdm import _streaming as S
from jaxotdm.schedules import Schedule
from jaxotdm.sharding import PointSharding

DEFAULT_POINT_CHUNK = 2048
DEFAULT_QUERY_CHUNK = 4096


def _score_logits(qs, yc, y2c):
    """Logits without ``log w`` and the ``-|x|^2 / (2 s2)`` term: ``(a/s2) <x, y> - (a^2 / (2 s2)) |y|^2``."""
    x, c1, c2 = qs
    return c1[:, None] * (x @ yc.T) - c2[:, None] * y2c[None, :]


def _partial_stats(xs, a, s2, points, log_w, streaming: S.Streaming):
    """Online log-sum-exp partials ``(m, l, acc)`` over the points for all queries ``xs`` (q, d) (already
    shifted by ``alpha * center``), with per-query ``a``, ``s2``: ``m`` the max of the logits without the
    ``-|x|^2 / (2 s2)`` term, ``l = sum_i exp(logit_i - m)``, ``acc = sum_i exp(logit_i - m) y_i``; with
    ``streaming.sharding``, merged across devices."""
    inv_s2 = 1.0 / s2
    y2 = jnp.sum(points * points, axis=-1)
    return S.lse(_score_logits, (xs, a * inv_s2, 0.5 * a * a * inv_s2), points, log_w, (y2,), streaming=streaming)


def _mixture_stats(measure, x, t, schedule: Schedule, chunk_size=None, query_chunk_size=None,
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
    m, l, acc = _partial_stats(xs, a, s2, yc, log_w, S.Streaming(chunk, qchunk, sharding))
    log_p = m + jnp.log(l) - 0.5 * jnp.sum(xs * xs, axis=-1) / s2 - 0.5 * d * jnp.log(2 * math.pi * s2)
    mean_c = acc / l[:, None]
    return log_p.reshape(batch), (mean_c + center).reshape(batch + (d,))


def _mixture_argmax(measure, x, t, schedule: Schedule, chunk_size=None,
                    sharding: PointSharding | None = None):
    """Index of the largest posterior weight ``argmax_i log w_i - |x - alpha_t y_i|^2 / (2 sigma_t^2)``.

    Streams over point chunks with a running (max, argmax) (:func:`jaxotdm._streaming.top1`); x of shape
    (..., d), t a scalar. With ``sharding``, each device finds its best point and the global best is picked
    with ``pmax``/``pmin`` (ties go to the lowest index, as without sharding).
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
    # log w_i + (a <x, y_i> - a^2 |y_i|^2 / 2) / s2 as one linear score <x, (a/s2) y_i> + b_i
    bias = log_w - 0.5 * a * a / s2 * jnp.sum(yc * yc, axis=-1)
    return S.top1(xs, yc * (a / s2), bias, streaming=S.Streaming(chunk, None, sharding))[1].reshape(batch)


# Jitted entry points (chunk sizes static): eager calls compile once per shape instead of retracing
# the streaming scan on every call.
_mixture_stats_jit = jax.jit(_mixture_stats, static_argnums=(4, 5, 6))
_mixture_argmax_jit = jax.jit(_mixture_argmax, static_argnums=(4, 5))
