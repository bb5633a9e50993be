"""Streaming kernels over targets: top-1/top-2 of ``<z, x_i> + h_i`` and the smoothed (softmax) map.

Every function here processes one block of queries ``z`` (batch axis first) against all targets by
scanning over chunks of targets, like :func:`jaxotdm.scores._stream_block`: each chunk costs one
``(queries x chunk x dims)`` matmul, memory is ``O(queries x chunk + queries x dims)``, and no
``(queries, targets, dims)`` array is ever formed. Padded targets get height ``-inf`` and are never
selected.

Kernel signatures (``z``: ``(q, d)`` block of queries; ``targets``: ``(n, d)``; ``heights``: ``(n,)``;
``chunk``: targets per streaming chunk, a Python int)::

    counts(z, targets, heights, chunk, *, sharding=None) -> (c (n,), sum_q max_i s_qi)
    top1(z, targets, heights, chunk, *, sharding=None)   -> (v (q,), i (q,) int32)
    top2(z, targets, heights, chunk, *, sharding=None)   -> (v1, i1, v2, i2)
    soft(z, targets, heights, tau, chunk, *, sharding=None) -> (tau * lse (q,), softmax mean (q, d))

Scale-out over devices: pass ``sharding=PointSharding(mesh, axis)`` (:mod:`jaxotdm.sharding`) and the
targets and heights are split into ``num_shards`` contiguous blocks along ``axis`` (padded with height
``-inf`` to a multiple of the device count), while the queries ``z`` are replicated. Each device runs the
single-device kernel on its block (``chunk`` then applies per device) and the tiny per-query results are
combined with collectives: ``top1``/``top2`` take ``pmax`` of the candidates and ``pmin`` of the device
index to break ties (the lowest device wins), ``soft`` merges the online log-sum-exp partials with
``pmax``/``psum``, and ``counts`` finds the global per-query best with ``pmax``, gives each query to the
lowest device attaining it, and lets each device count only its own queries against its own targets, so
every query is counted exactly once. Returned indices are global target indices, values and gradients
equal the single-device ones up to rounding (ties aside). All four work eagerly, inside ``jit``/``lax.map``
(e.g. under :func:`map_queries`), under ``vmap`` and ``grad``; ``tau`` may be traced.

The four are jitted with ``chunk`` and ``sharding`` static, so eager callers (``SemidiscreteMap.assign``,
``transport``, ``potential``) compile each once per shape; inside a caller's ``jit`` they are inlined.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec

from jaxotdm.scores import _pad_to_multiple
from jaxotdm.sharding import PointSharding, merge_lse, pick_best, vary_like

_REP = PartitionSpec()


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


def _on_shards(sharding: PointSharding, local, z, targets, heights, *extra, out_specs):
    """Runs ``local(z, targets_block, heights_block, offset, *extra)`` on every device of ``sharding``:
    ``z`` and ``extra`` replicated, targets/heights split in contiguous blocks (padded with height
    ``-inf``), ``offset`` the global index of the block's first target."""
    n_local = sharding.shard_size(targets.shape[0])
    tp = sharding.pad(targets, 0.0)
    hp = sharding.pad(heights.astype(targets.dtype), -jnp.inf)

    def f(z, t, h, *extra):
        return local(z, t, h, sharding.shard_offset(n_local), *extra)

    in_specs = (_REP, sharding.spec, sharding.spec) + (_REP,) * len(extra)
    return sharding.shard_map(f, in_specs=in_specs, out_specs=out_specs)(z, tp, hp, *extra)


def _top1(z, targets, heights, chunk, *, sharding: PointSharding | None = None):
    """``(max_i <z, x_i> + h_i, argmax_i)`` for a block ``z`` of shape ``(q, d)``; with ``sharding``,
    the targets are split over devices (see the module docstring)."""
    if sharding is not None:
        def local(z, t, h, off):
            v, i = _top1(z, t, h, chunk)
            return pick_best(sharding, v, i + off)[:2]

        return _on_shards(sharding, local, z, targets, heights, out_specs=(_REP, _REP))
    za, ya, idx = _chunked_aug(z, targets, heights, chunk)
    q = z.shape[0]

    def body(carry, blk):
        v, i = carry
        yc, ic = blk
        b, a = _best(za @ yc.T, ic)
        better = b > v
        return (jnp.where(better, b, v), jnp.where(better, a, i)), None

    init = (jnp.full((q,), -jnp.inf, z.dtype), jnp.zeros((q,), z.dtype))
    (v, i), _ = jax.lax.scan(body, vary_like(init, ya), (ya, idx))
    return v, i.astype(jnp.int32)


def _augment(z, targets, heights):
    """``[z, 1]`` and ``[x, h]``: the scores ``<z, x_i> + h_i`` as one matmul (XLA:CPU fuses a plain dot with
    the reductions below far better than a dot followed by a broadcast add)."""
    za = jnp.concatenate([z, jnp.ones((z.shape[0], 1), z.dtype)], axis=1)
    ya = jnp.concatenate([targets, heights[:, None].astype(targets.dtype)], axis=1)
    return za, ya


def _counts_entry(z, targets, heights, chunk, *, sharding: PointSharding | None = None):
    """Per-target counts of the queries whose best score is that target's, and ``sum_q max_i s_qi``.

    The hot path of every solver pass. No ``argmax`` and no scatter: with one chunk, the counts are the
    column sums of the mask ``s == max_i s`` (a query tied between two targets counts for both, which
    has probability zero for continuous sources). With several chunks, a first scan finds each query's
    best score and the first chunk attaining it; a second scan recomputes the scores and counts the mask
    only in that chunk, so every query is counted in exactly one chunk.
    Padded targets (height ``-inf``) are never counted.

    With ``sharding``, the targets are split over devices: the global per-query best is a ``pmax`` of the
    devices' bests, each query belongs to the lowest device attaining it, and each device counts only its
    own queries (the ``(n,)`` counts come back in target order).
    """
    if sharding is not None:
        def local(z, t, h, off):
            del off

            def owns(v):
                value, _, mine = pick_best(sharding, v, jnp.zeros(v.shape, jnp.int32))
                return mine, value

            c, best = _counts_local(z, t, h, chunk, owns)
            return c, jnp.sum(best)

        c, total = _on_shards(sharding, local, z, targets, heights, out_specs=(sharding.spec, _REP))
        return c[: targets.shape[0]], total
    c, v = _counts_local(z, targets, heights, chunk, None)
    return c, jnp.sum(v)


def _counts_local(z, targets, heights, chunk, owns):
    """:func:`counts` on one device: ``(counts (n,), per-query best (q,))``. ``owns`` (or ``None``: count
    every query) maps this device's per-query best ``v`` to ``(mask of the queries this device counts,
    global per-query best)``; the global best is then returned instead of ``v``."""
    n, d = targets.shape
    q = z.shape[0]
    za, ya = _augment(z, targets, heights)
    if n <= chunk:
        s = za @ ya.T
        m = jnp.max(s, axis=-1)
        hit = s >= m[:, None]
        if owns is not None:
            mine, m = owns(m)
            hit = hit & mine[:, None]
        return jnp.sum(jnp.where(hit, 1.0, 0.0).astype(z.dtype), axis=0), m
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
    (v, j), _ = jax.lax.scan(best, vary_like(init, yc), (yc, jnp.arange(nc, dtype=jnp.int32)))
    if owns is not None:
        mine, v = owns(v)
        j = jnp.where(mine, j, -1)  # queries owned by another device are counted nowhere here

    def count(_, blk):
        yk, k = blk
        s = za @ yk.T
        m = jnp.max(s, axis=-1)
        own = (j == k)[:, None]
        return None, jnp.sum(jnp.where(own & (s >= m[:, None]), 1.0, 0.0).astype(z.dtype), axis=0)

    _, c = jax.lax.scan(count, None, (yc, jnp.arange(nc, dtype=jnp.int32)))
    return c.reshape(-1)[:n], v


def _top2(z, targets, heights, chunk, *, sharding: PointSharding | None = None):
    """Best and second-best scores and indices ``(v1, i1, v2, i2)`` for a block ``z``; with ``sharding``,
    the targets are split over devices (the owner of the best offers its second best, every other
    device its best, and the second best is the best of those offers)."""
    if sharding is not None:
        def local(z, t, h, off):
            v1, i1, v2, i2 = _top2(z, t, h, chunk)
            b1, j1, own = pick_best(sharding, v1, i1 + off)
            b2, j2, _ = pick_best(sharding, jnp.where(own, v2, v1), jnp.where(own, i2, i1) + off)
            return b1, j1, b2, jnp.where(jnp.isfinite(b2), j2, j1)

        return _on_shards(sharding, local, z, targets, heights, out_specs=(_REP,) * 4)
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
    (v1, i1, v2, i2), _ = jax.lax.scan(body, vary_like((ninf, zero, ninf, zero), ya), (ya, idx))
    i2 = jnp.where(jnp.isfinite(v2), i2, i1)  # one target: no second best
    return v1, i1.astype(jnp.int32), v2, i2.astype(jnp.int32)


def _soft(z, targets, heights, tau, chunk, *, sharding: PointSharding | None = None):
    """Smoothed potential and map for a block ``z``.

    Returns ``(tau * logsumexp_i((<z, x_i> + h_i) / tau), sum_i p_i x_i)`` with
    ``p = softmax((<z, x_i> + h_i) / tau)``, streamed as an online log-sum-exp over target chunks. With
    ``sharding``, the targets are split over devices and the partial log-sum-exps merged (``pmax``/``psum``).
    """
    tau = jnp.asarray(tau, z.dtype)
    if sharding is not None:
        def local(z, t, h, off, tau):
            del off
            return merge_lse(sharding, *_soft_partial(z, t, h, tau, chunk))

        m, l, acc = _on_shards(sharding, local, z, targets, heights, tau, out_specs=(_REP,) * 3)
    else:
        m, l, acc = _soft_partial(z, targets, heights, tau, chunk)
    return tau * (m + jnp.log(l)), acc / l[:, None]


def _soft_partial(z, targets, heights, tau, chunk):
    """Online log-sum-exp partials ``(m, l, acc)`` of the logits ``(<z, x_i> + h_i) / tau`` (as in
    :func:`jaxotdm.scores._stream_partial`; all-padding blocks give ``-inf, 0, 0``)."""
    y, h, _ = _chunked(targets, heights, chunk)
    q, d = z.shape
    inv = 1.0 / tau

    @jax.checkpoint
    def body(carry, blk):
        m, l, acc = carry
        yc, hc = blk
        logits = (z @ yc.T + hc[None, :]) * inv
        m_new = jnp.maximum(m, jnp.max(logits, axis=-1))
        shift = jnp.where(jnp.isneginf(m_new), 0.0, m_new)
        scale = jnp.exp(m - shift)
        p = jnp.exp(logits - shift[:, None])
        l = l * scale + jnp.sum(p, axis=-1)
        acc = acc * scale[:, None] + p @ yc
        return (m_new, l, acc), None

    init = (jnp.full((q,), -jnp.inf, z.dtype), jnp.zeros((q,), z.dtype), jnp.zeros((q, d), z.dtype))
    (m, l, acc), _ = jax.lax.scan(body, vary_like(init, y), (y, h))
    return m, l, acc


def map_queries(fn, z, block):
    """Applies ``fn`` (a ``(b, d)`` block -> pytree of per-query outputs) over ``z`` (``(q, d)``) in blocks.

    Traced (inside ``jit``/``vmap``/``grad``), the blocks run under one ``lax.map``. Eager (``z`` and
    ``fn``'s outputs concrete), they run in a Python loop instead: ``fn`` is usually a fresh closure over a
    jitted kernel, and an eager ``lax.map`` of a fresh closure is retraced and recompiled on every call,
    while the loop reuses the kernel's compiled code (one compile per block shape).
    """
    q = z.shape[0]
    if q <= block:
        return fn(z)
    zp = _pad_to_multiple(z, block, 0.0).reshape(-1, block, z.shape[1])
    if not isinstance(z, jax.core.Tracer):
        first = fn(zp[0])
        if not any(isinstance(a, jax.core.Tracer) for a in jax.tree_util.tree_leaves(first)):
            outs = [first] + [fn(zp[k]) for k in range(1, zp.shape[0])]
            return jax.tree_util.tree_map(lambda *a: jnp.concatenate(a, axis=0)[:q], *outs)
    out = jax.lax.map(fn, zp)
    return jax.tree_util.tree_map(lambda a: a.reshape((-1,) + a.shape[2:])[:q], out)


# Jitted entry points (``chunk`` and ``sharding`` static): eager callers (e.g. SemidiscreteMap.assign)
# compile each kernel once per shape instead of retracing its scan on every call; inside ``jit`` they inline.
top1 = jax.jit(_top1, static_argnames=("chunk", "sharding"))
top2 = jax.jit(_top2, static_argnames=("chunk", "sharding"))
soft = jax.jit(_soft, static_argnames=("chunk", "sharding"))
counts = jax.jit(_counts_entry, static_argnames=("chunk", "sharding"))
