"""Semi-discrete OT kernels over targets, in the paper's convention: scores ``<z, x_i> + h_i``.

Thin, jitted adapters over the package's one streaming layer (:mod:`jaxotdm._streaming`): the targets are
the points, the heights the per-point bias. Signatures (``z``: ``(q, d)`` queries; ``targets``: ``(n, d)``;
``heights``: ``(n,)``; ``chunk``: targets per streamed chunk, a Python int)::

    counts(z, targets, heights, chunk, *, sharding=None) -> (c (n,), sum_q max_i s_qi)
    top1(z, targets, heights, chunk, *, sharding=None)   -> (v (q,), i (q,) int32)
    top2(z, targets, heights, chunk, *, sharding=None)   -> (v1, i1, v2, i2)
    soft(z, targets, heights, tau, chunk, *, sharding=None) -> (tau * lse (q,), softmax mean (q, d))
    map_queries(fn, z, block)                             -> fn over blocks of queries

With ``sharding=PointSharding(mesh, axis)`` the targets and heights are split over the devices of ``axis``
(padded with height ``-inf``), queries are replicated, and per-query results are combined with
collectives (top-k: best value, ties to the lowest device; soft: the online log-sum-exp partials merged;
counts: one global top-1, then the bins). Indices are global; values and gradients equal the
single-device ones up to rounding. All work eagerly, inside ``jit``/``lax.map``, under ``vmap`` and
``grad``; ``tau`` may be traced. ``chunk`` and ``sharding`` are static, so eager callers compile each
kernel once per shape; inside a caller's ``jit`` they are inlined.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxotdm import _streaming as S
from jaxotdm._streaming import map_queries
from jaxotdm.sharding import PointSharding

__all__ = ["counts", "map_queries", "soft", "top1", "top2"]


def _settings(chunk: int, sharding: PointSharding | None) -> S.Streaming:
    return S.Streaming(chunk_size=chunk, sharding=sharding)


def _top1(z, targets, heights, chunk, *, sharding: PointSharding | None = None):
    """``(max_i <z, x_i> + h_i, argmax_i)`` for a block ``z`` of shape ``(q, d)`` (ties: lowest index)."""
    return S.top1(z, targets.astype(z.dtype), heights, streaming=_settings(chunk, sharding))


def _top2(z, targets, heights, chunk, *, sharding: PointSharding | None = None):
    """Best and second-best scores and indices ``(v1, i1, v2, i2)`` for a block ``z``."""
    return S.top2(z, targets.astype(z.dtype), heights, streaming=_settings(chunk, sharding))


def _counts(z, targets, heights, chunk, *, sharding: PointSharding | None = None):
    """Per-target counts of the queries whose best score is that target's, and ``sum_q max_i s_qi``."""
    return S.counts(z, targets.astype(z.dtype), heights, streaming=_settings(chunk, sharding))


def _soft_logits(qs, yc, hc):
    z, inv_tau = qs
    return (z @ yc.T + hc[None, :]) * inv_tau[:, None]


def _soft(z, targets, heights, tau, chunk, *, sharding: PointSharding | None = None):
    """``(tau * logsumexp_i((<z, x_i> + h_i) / tau), sum_i p_i x_i)`` with ``p = softmax((<z, x_i> + h_i) /
    tau)``, streamed as an online log-sum-exp over target chunks."""
    tau = jnp.asarray(tau, z.dtype)
    inv = jnp.broadcast_to(1.0 / tau, z.shape[:1])
    t = targets.astype(z.dtype)
    m, l, acc = S.lse(_soft_logits, (z, inv), t, jnp.zeros(t.shape[:1], z.dtype), (heights.astype(z.dtype),),
                      streaming=_settings(chunk, sharding))
    return tau * (m + jnp.log(l)), acc / l[:, None]


top1 = jax.jit(_top1, static_argnames=("chunk", "sharding"))
top2 = jax.jit(_top2, static_argnames=("chunk", "sharding"))
soft = jax.jit(_soft, static_argnames=("chunk", "sharding"))
counts = jax.jit(_counts, static_argnames=("chunk", "sharding"))
