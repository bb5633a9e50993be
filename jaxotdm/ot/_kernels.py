"""Streaming kernels over targets: top-1/top-2 of ``<z, x_i> + h_i`` and the smoothed (softmax) map.

Every function here processes one block of queries ``z`` (batch axis first) against all targets by
scanning over chunks of targets, like :func:`jaxotdm.scores._stream_block`: each chunk costs one
``(queries x chunk x dims)`` matmul, memory is ``O(queries x chunk + queries x dims)``, and no
``(queries, targets, dims)`` array is ever formed. Padded targets get height ``-inf`` and are never
selected.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxotdm.scores import _pad_to_multiple


def _chunked(targets, heights, chunk):
    n, d = targets.shape
    chunk = min(chunk, n)
    y = _pad_to_multiple(targets, chunk, 0.0).reshape(-1, chunk, d)
    h = _pad_to_multiple(heights, chunk, -jnp.inf).reshape(-1, chunk)
    idx = jnp.arange(y.shape[0] * chunk, dtype=jnp.int32).reshape(-1, chunk)
    return y, h, idx


def _chunked_aug(z, targets, heights, chunk):
    """``[z, 1]`` and the augmented targets ``[x, h]`` padded to whole chunks, ``(chunks, chunk, d + 1)``,
    with each chunk's global target indices as floats (exact below ``2^24`` targets)."""
    n, d = targets.shape
    chunk = min(chunk, n)
    za = jnp.concatenate([z, jnp.ones((z.shape[0], 1), z.dtype)], axis=1)
    y = _pad_to_multiple(targets.astype(z.dtype), chunk, 0.0)
    h = _pad_to_multiple(heights.astype(z.dtype), chunk, -jnp.inf)
    ya = jnp.concatenate([y, h[:, None]], axis=1).reshape(-1, chunk, d + 1)
    idx = jnp.arange(ya.shape[0] * chunk, dtype=z.dtype).reshape(-1, chunk)
    return za, ya, idx


def _best(s, ic):
    """Row max of ``s`` and the (largest) index attaining it: a max-reduction over a masked float iota,
    much faster than ``argmax``/``top_k`` (variadic reductions) on XLA:CPU."""
    b = jnp.max(s, axis=-1)
    a = jnp.max(jnp.where(s >= b[:, None], ic[None, :], -1.0), axis=-1)
    return b, a


def top1(z, targets, heights, chunk):
    """``(max_i <z, x_i> + h_i, argmax_i)`` for a block ``z`` of shape ``(q, d)``."""
    za, ya, idx = _chunked_aug(z, targets, heights, chunk)
    q = z.shape[0]

    def body(carry, blk):
        v, i = carry
        yc, ic = blk
        b, a = _best(za @ yc.T, ic)
        better = b > v
        return (jnp.where(better, b, v), jnp.where(better, a, i)), None

    init = (jnp.full((q,), -jnp.inf, z.dtype), jnp.zeros((q,), z.dtype))
    (v, i), _ = jax.lax.scan(body, init, (ya, idx))
    return v, i.astype(jnp.int32)


def _augment(z, targets, heights):
    """``[z, 1]`` and ``[x, h]``: the scores ``<z, x_i> + h_i`` as one matmul (XLA:CPU fuses a plain dot with
    the reductions below far better than a dot followed by a broadcast add)."""
    za = jnp.concatenate([z, jnp.ones((z.shape[0], 1), z.dtype)], axis=1)
    ya = jnp.concatenate([targets, heights[:, None].astype(targets.dtype)], axis=1)
    return za, ya


def counts(z, targets, heights, chunk):
    """Per-target counts of the queries whose best score is that target's, and ``sum_q max_i s_qi``.

    The hot path of every solver pass. No ``argmax`` and no scatter: with one chunk, the counts are the
    column sums of the mask ``s == max_i s`` (a query tied between two targets counts for both, which
    has probability zero for continuous sources). With several chunks, a first scan finds each query's
    best score and the first chunk attaining it; a second scan recomputes the scores and counts the mask
    only in that chunk, so every query is counted in exactly one chunk.
    Padded targets (height ``-inf``) are never counted.
    """
    n, d = targets.shape
    q = z.shape[0]
    za, ya = _augment(z, targets, heights)
    if n <= chunk:
        s = za @ ya.T
        m = jnp.max(s, axis=-1)
        c = jnp.sum(jnp.where(s >= m[:, None], 1.0, 0.0).astype(z.dtype), axis=0)
        return c, jnp.sum(m)
    yp = _pad_to_multiple(ya[:, :d], chunk, 0.0)
    hp = _pad_to_multiple(ya[:, d], chunk, -jnp.inf)
    yc = jnp.concatenate([yp, hp[:, None]], axis=1).reshape(-1, chunk, d + 1)
    nc = yc.shape[0]

    def best(carry, blk):
        v, j = carry
        yk, k = blk
        b = jnp.max(za @ yk.T, axis=-1)
        better = b > v
        return (jnp.where(better, b, v), jnp.where(better, k, j)), None

    init = (jnp.full((q,), -jnp.inf, z.dtype), jnp.zeros((q,), jnp.int32))
    (v, j), _ = jax.lax.scan(best, init, (yc, jnp.arange(nc, dtype=jnp.int32)))

    def count(_, blk):
        yk, k = blk
        s = za @ yk.T
        m = jnp.max(s, axis=-1)
        own = (j == k)[:, None]
        return None, jnp.sum(jnp.where(own & (s >= m[:, None]), 1.0, 0.0).astype(z.dtype), axis=0)

    _, c = jax.lax.scan(count, None, (yc, jnp.arange(nc, dtype=jnp.int32)))
    return c.reshape(-1)[:n], jnp.sum(v)


def top2(z, targets, heights, chunk):
    """Best and second-best scores and indices ``(v1, i1, v2, i2)`` for a block ``z``."""
    za, ya, idx = _chunked_aug(z, targets, heights, chunk)
    q = z.shape[0]

    def body(carry, blk):
        v1, i1, v2, i2 = carry
        yc, ic = blk
        s = za @ yc.T
        b1, j1 = _best(s, ic)
        b2, j2 = _best(jnp.where(ic[None, :] == j1[:, None], -jnp.inf, s), ic)
        new_first = b1 > v1
        n1 = jnp.where(new_first, b1, v1)
        m1 = jnp.where(new_first, j1, i1)
        # second best: the larger of (loser of the two bests) and (the second of the winner's side)
        loser_v = jnp.where(new_first, v1, b1)
        loser_i = jnp.where(new_first, i1, j1)
        side_v = jnp.where(new_first, b2, v2)
        side_i = jnp.where(new_first, j2, i2)
        take_loser = loser_v >= side_v
        n2 = jnp.where(take_loser, loser_v, side_v)
        m2 = jnp.where(take_loser, loser_i, side_i)
        return (n1, m1, n2, m2), None

    ninf = jnp.full((q,), -jnp.inf, z.dtype)
    zero = jnp.zeros((q,), z.dtype)
    (v1, i1, v2, i2), _ = jax.lax.scan(body, (ninf, zero, ninf, zero), (ya, idx))
    i2 = jnp.where(jnp.isfinite(v2), i2, i1)  # one target: no second best
    return v1, i1.astype(jnp.int32), v2, i2.astype(jnp.int32)


def soft(z, targets, heights, tau, chunk):
    """Smoothed potential and map for a block ``z``.

    Returns ``(tau * logsumexp_i((<z, x_i> + h_i) / tau), sum_i p_i x_i)`` with
    ``p = softmax((<z, x_i> + h_i) / tau)``, streamed as an online log-sum-exp over target chunks.
    """
    y, h, _ = _chunked(targets, heights, chunk)
    q, d = z.shape
    inv = 1.0 / tau

    @jax.checkpoint
    def body(carry, blk):
        m, l, acc = carry
        yc, hc = blk
        logits = (z @ yc.T + hc[None, :]) * inv
        m_new = jnp.maximum(m, jnp.max(logits, axis=-1))
        scale = jnp.exp(m - m_new)
        p = jnp.exp(logits - m_new[:, None])
        l = l * scale + jnp.sum(p, axis=-1)
        acc = acc * scale[:, None] + p @ yc
        return (m_new, l, acc), None

    init = (jnp.full((q,), -jnp.inf, z.dtype), jnp.zeros((q,), z.dtype), jnp.zeros((q, d), z.dtype))
    (m, l, acc), _ = jax.lax.scan(body, init, (y, h))
    return tau * (m + jnp.log(l)), acc / l[:, None]


def map_queries(fn, z, block):
    """Applies ``fn`` (a ``(b, d)`` block -> pytree of per-query outputs) over ``z`` (``(q, d)``) in blocks."""
    q = z.shape[0]
    if q <= block:
        return fn(z)
    zp = _pad_to_multiple(z, block, 0.0).reshape(-1, block, z.shape[1])
    out = jax.lax.map(fn, zp)
    return jax.tree_util.tree_map(lambda a: a.reshape((-1,) + a.shape[2:])[:q], out)
