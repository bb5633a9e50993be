"""The one streaming layer: sums and maxima over many points, never a ``(queries, points, dims)`` array.

Everything in jaxotdm that reduces over a large set of points (the exact score's posterior, the
semi-discrete OT map, its cell masses and certificate) is one of three reductions over the scores of a
block of queries against chunks of points:

* an **online log-sum-exp with softmax moments** (:func:`lse_partial`, merged across devices by
  :func:`jaxotdm.sharding.merge_lse`): per query ``m = max_j logit_j``, ``l = sum_j exp(logit_j - m)``,
  ``acc = sum_j exp(logit_j - m) y_j``, like flash attention;
* a **streamed top-1 / top-2 / top-k** of linear scores ``s_qj = <z_q, y_j> + b_j`` (:func:`top1`,
  :func:`top2`, :func:`topk`) and the per-point **counts** of queries whose best point it is
  (:func:`counts`);
* the **query blocker** :func:`map_queries`, which applies a per-block kernel over all queries.

Each chunk of points costs one ``(block x chunk x dims)`` matmul; memory is ``O(block x chunk + block x
dims)``. The linear scores are computed as one augmented product ``[z, 1] @ [y, b]^T`` (XLA:CPU fuses a
plain dot with the reductions that follow far better than a dot plus a broadcast add). Padded points get
bias ``-inf`` and are never selected or counted.

Settings live in one object, :class:`Streaming` (points per chunk, queries per block, and an optional
:class:`~jaxotdm.PointSharding` that splits the points over devices: each device streams its own
contiguous block, queries are replicated, and the tiny per-query results are combined with collectives;
see :mod:`jaxotdm.sharding`). Block sizes are the main performance lever on CPUs: a ``(block x chunk)``
score tile that stays in the L2 cache runs the top-1 pass at 0.6-1.0 of the machine's square-matmul
rate, against 0.25 for one ``(4096 x 2048)`` tile (``python -m benchmarks.bench_semidiscrete --kernel``).

This module is private: the public entry points (``exact_score``, ``semidiscrete_ot``,
``SemidiscreteMap``) validate their inputs and call it. :class:`Streaming` is public, as ``jaxotdm.Streaming``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec

from jaxotdm import _validation as V
from jaxotdm._pytree import pytree_dataclass, static_field
from jaxotdm.sharding import PointSharding, check_sharding, merge_lse, pick_best, vary_like

__all__ = [
    "Streaming",
    "counts",
    "lse_partial",
    "map_queries",
    "on_shards",
    "pad_rows",
    "top1",
    "top2",
    "topk",
]

REP = PartitionSpec()


def _default_sizes() -> tuple[int, int]:
    """``(chunk, block)`` per backend: small L2-resident tiles on CPUs, large tiles on accelerators."""
    try:
        platform = jax.default_backend()
    except RuntimeError:  # pragma: no cover - no backend
        platform = "cpu"
    return (512, 1024) if platform == "cpu" else (4096, 8192)


@pytree_dataclass
class Streaming:
    """How a reduction over many points is streamed (a PyTree with static fields only).

    Memory is ``O(query_block x chunk_size)`` per device: never a ``(queries, points, dims)`` array. The sizes
    change the speed, not the results (up to floating-point summation order).

    Attributes:
        chunk_size: points per chunk (``None``: 512 on CPUs, 4096 on accelerators).
        query_block: queries per block (``None``: 1024 on CPUs, 8192 on accelerators).
        sharding: ``None``, or a :class:`~jaxotdm.PointSharding` splitting the points over devices.

    Example:
        >>> import jax, jax.numpy as jnp, jaxotdm as jo
        >>> x = jnp.array([[-1.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
        >>> smap = jo.semidiscrete_ot(x, key=jax.random.key(0), tol=0.2, streaming=jo.Streaming(chunk_size=2))
        >>> smap.chunk_size
        2
        >>> jo.Streaming(chunk_size=0)
        Traceback (most recent call last):
        ...
        ValueError: `chunk_size` must be an integer >= 1, got 0.
    """

    chunk_size: int | None = static_field(None)
    query_block: int | None = static_field(None)
    sharding: PointSharding | None = static_field(None)

    def __post_init__(self):
        for name in ("chunk_size", "query_block"):
            if getattr(self, name) is not None:
                V.check_positive_int(getattr(self, name), name)
        check_sharding(self.sharding)

    @property
    def chunk(self) -> int:
        return self.chunk_size if self.chunk_size is not None else _default_sizes()[0]

    @property
    def block(self) -> int:
        return self.query_block if self.query_block is not None else _default_sizes()[1]


def pad_rows(a: jax.Array, size: int, fill) -> jax.Array:
    """``a`` padded along its leading axis with ``fill`` to a multiple of ``size``."""
    n = a.shape[0]
    pad = (-n) % size
    if pad == 0:
        return a
    return jnp.concatenate([a, jnp.full((pad,) + a.shape[1:], fill, a.dtype)], axis=0)


# ------------------------------------------------------------------------------------------------------
# Query blocking and sharding.
# ------------------------------------------------------------------------------------------------------


def _pad_like_first(a, size):
    """Pads the leading axis with copies of row 0 (harmless values for any per-query leaf)."""
    pad = (-a.shape[0]) % size
    if pad == 0:
        return a
    return jnp.concatenate([a, jnp.broadcast_to(a[:1], (pad,) + a.shape[1:])], axis=0)


def map_queries(fn, queries, block: int):
    """Applies ``fn`` (a block of queries -> pytree of per-query outputs) over all ``queries`` in blocks.

    ``queries`` is an array or a pytree of arrays sharing their leading (query) axis; the last block is
    padded with copies of the first query and the padding sliced off. Traced (inside ``jit``/``vmap``/
    ``grad``), the blocks run under one ``lax.map``. Eager (concrete queries and outputs), they run in a
    Python loop instead: ``fn`` is usually a fresh closure over a jitted kernel, and an eager ``lax.map``
    of a fresh closure is retraced and recompiled on every call, while the loop reuses the kernel's
    compiled code (one compile per block shape).
    """
    leaves = jax.tree_util.tree_leaves(queries)
    q = leaves[0].shape[0]
    if q <= block:
        return fn(queries)
    padded = jax.tree_util.tree_map(lambda a: _pad_like_first(a, block), queries)
    blocks = jax.tree_util.tree_map(lambda a: a.reshape((-1, block) + a.shape[1:]), padded)
    nb = -(-q // block)
    if not any(isinstance(a, jax.core.Tracer) for a in leaves):
        first = fn(jax.tree_util.tree_map(lambda a: a[0], blocks))
        if not any(isinstance(a, jax.core.Tracer) for a in jax.tree_util.tree_leaves(first)):
            outs = [first] + [fn(jax.tree_util.tree_map(lambda a, k=k: a[k], blocks)) for k in range(1, nb)]
            return jax.tree_util.tree_map(lambda *a: jnp.concatenate(a, axis=0)[:q], *outs)
    out = jax.lax.map(fn, blocks)
    return jax.tree_util.tree_map(lambda a: a.reshape((-1,) + a.shape[2:])[:q], out)


def on_shards(sharding: PointSharding, local, replicated: tuple, sharded: tuple, fills: tuple, *, out_specs):
    """Runs ``local(*replicated, *sharded_blocks, offset)`` on every device of ``sharding``.

    ``replicated`` arguments go to every device; each of ``sharded`` (leading axis = points) is padded with
    its ``fills`` entry to a multiple of the device count and split in contiguous blocks; ``offset`` is the
    global index of the device's first point.
    """
    n_local = sharding.shard_size(sharded[0].shape[0])
    padded = tuple(sharding.pad(a, f) for a, f in zip(sharded, fills, strict=True))
    k = len(replicated)

    def f(*args):
        return local(*args, sharding.shard_offset(n_local))

    in_specs = (REP,) * k + (sharding.spec,) * len(padded)
    return sharding.shard_map(f, in_specs=in_specs, out_specs=out_specs)(*replicated, *padded)


# ------------------------------------------------------------------------------------------------------
# Online log-sum-exp with softmax moments.
# ------------------------------------------------------------------------------------------------------


def lse_partial(logits_fn, queries, points, bias, extras=(), *, chunk: int):
    """Online log-sum-exp partials over point chunks for one block of queries.

    The logits of query ``q`` and point ``j`` are ``logits_fn(queries, y_chunk, *extra_chunks)[q, j] +
    bias[j]``: ``queries`` is any pytree of per-query arrays, ``points`` ``(n, d)``, ``bias`` ``(n,)`` (e.g. log
    weights; padding gets ``-inf``) and ``extras`` a tuple of further ``(n,)`` per-point arrays (padding 0).

    Returns ``(m, l, acc)``: per query the running max ``m`` ``(q,)``, ``l = sum_j exp(logit_j - m)`` ``(q,)`` and
    ``acc = sum_j exp(logit_j - m) y_j`` ``(q, d)``; all-padding input gives ``-inf, 0, 0``. Merge partials of
    disjoint point sets with :func:`jaxotdm.sharding.merge_lse` (devices) or the same update (chunks).
    The chunk body is rematerialised under differentiation (memory stays per chunk).
    """
    n, d = points.shape
    chunk = min(chunk, n)
    y = pad_rows(points, chunk, 0.0).reshape(-1, chunk, d)
    b = pad_rows(bias, chunk, -jnp.inf).reshape(-1, chunk)
    ex = tuple(pad_rows(e, chunk, 0.0).reshape(-1, chunk) for e in extras)
    q = jax.tree_util.tree_leaves(queries)[0].shape[0]
    dtype = points.dtype

    @jax.checkpoint
    def body(carry, blk):
        m, l, acc = carry
        yc, bc, exc = blk
        logits = logits_fn(queries, yc, *exc) + bc[None, :]
        m_new = jnp.maximum(m, jnp.max(logits, axis=-1))
        shift = jnp.where(jnp.isneginf(m_new), 0.0, m_new)  # all -inf so far: keep l = acc = 0, no NaN
        scale = jnp.exp(m - shift)
        p = jnp.exp(logits - shift[:, None])
        l = l * scale + jnp.sum(p, axis=-1)
        acc = acc * scale[:, None] + p @ yc
        return (m_new, l, acc), None

    init = (jnp.full((q,), -jnp.inf, dtype), jnp.zeros((q,), dtype), jnp.zeros((q, d), dtype))
    (m, l, acc), _ = jax.lax.scan(body, vary_like(init, y), (y, b, ex))
    return m, l, acc


def lse(logits_fn, queries, points, bias, extras=(), *, streaming: Streaming):
    """:func:`lse_partial` over all queries (blocks of ``streaming.block``), merged over devices when
    ``streaming.sharding`` is set. Returns ``(m, l, acc)`` for every query."""
    chunk, block, sh = streaming.chunk, streaming.block, streaming.sharding

    def partial(qs, pts, b, *ex):
        return map_queries(lambda qb: lse_partial(logits_fn, qb, pts, b, ex, chunk=chunk), qs, block)

    if sh is None:
        return partial(queries, points, bias, *extras)

    def local(qs, pts, b, *rest):
        *ex, _offset = rest
        return merge_lse(sh, *partial(qs, pts, b, *ex))

    fills = (0.0, -jnp.inf) + (0.0,) * len(extras)
    return on_shards(sh, local, (queries,), (points, bias) + tuple(extras), fills, out_specs=(REP,) * 3)


# ------------------------------------------------------------------------------------------------------
# Streamed top-1 / top-2 / top-k and counts of linear scores <z, y_j> + b_j.
# ------------------------------------------------------------------------------------------------------


def _augmented(z, points, bias, chunk):
    """``[z, 1]`` ``(q, d+1)``, the chunks of ``[y, b]`` ``(chunks, chunk, d+1)`` (padding: ``y = 0, b = -inf``) and
    each chunk's global point indices ``(chunks, chunk)`` int32."""
    n, d = points.shape
    chunk = min(chunk, n)
    za = jnp.concatenate([z, jnp.ones((z.shape[0], 1), z.dtype)], axis=1)
    y = pad_rows(points.astype(z.dtype), chunk, 0.0)
    b = pad_rows(bias.astype(z.dtype), chunk, -jnp.inf)
    ya = jnp.concatenate([y, b[:, None]], axis=1).reshape(-1, chunk, d + 1)
    idx = jnp.arange(ya.shape[0] * chunk, dtype=jnp.int32).reshape(-1, chunk)
    return za, ya, idx


_NONE = jnp.iinfo(jnp.int32).max


def _best(s, ic):
    """Row max of ``s`` and the lowest index attaining it (a min-reduction over a masked iota: much
    faster than ``argmax``, a variadic reduction, on XLA:CPU). Rows of NaN give ``(NaN, _NONE)``."""
    b = jnp.max(s, axis=-1)
    a = jnp.min(jnp.where(s >= b[:, None], ic[None, :], _NONE), axis=-1)
    return b, a


def _top1_block(za, ya, idx):
    q = za.shape[0]

    def body(carry, blk):
        v, i = carry
        yc, ic = blk
        b, a = _best(za @ yc.T, ic)
        better = b > v
        return (jnp.where(better, b, v), jnp.where(better, a, i)), None

    init = (jnp.full((q,), -jnp.inf, za.dtype), jnp.zeros((q,), jnp.int32))
    (v, i), _ = jax.lax.scan(body, vary_like(init, ya), (ya, idx))
    return v, i


def _top1_local(z, points, bias, chunk, block):
    za, ya, idx = _augmented(z, points, bias, chunk)
    return map_queries(lambda zb: _top1_block(zb, ya, idx), za, block)


def top1(z, points, bias, *, streaming: Streaming):
    """``(max_j s_qj, argmax_j s_qj)`` of ``s_qj = <z_q, y_j> + b_j`` for queries ``z`` ``(q, d)``.

    Ties go to the lowest index. With ``streaming.sharding`` the points are split over devices and the
    devices' bests merged (differentiable in the value). Non-finite queries are not special-cased here
    (callers mask them): their index is meaningless.
    """
    chunk, block, sh = streaming.chunk, streaming.block, streaming.sharding
    if sh is None:
        return _top1_local(z, points, bias, chunk, block)

    def local(z, y, b, off):
        v, i = _top1_local(z, y, b, chunk, block)
        return pick_best(sh, v, i + off)[:2]

    return on_shards(sh, local, (z,), (points, bias), (0.0, -jnp.inf), out_specs=(REP, REP))


def _top2_block(za, ya, idx):
    q = za.shape[0]

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
        return (n1, m1, jnp.where(take_loser, loser_v, side_v), jnp.where(take_loser, loser_i, side_i)), None

    ninf = jnp.full((q,), -jnp.inf, za.dtype)
    zero = jnp.zeros((q,), jnp.int32)
    (v1, i1, v2, i2), _ = jax.lax.scan(body, vary_like((ninf, zero, ninf, zero), ya), (ya, idx))
    return v1, i1, v2, i2


def _top2_local(z, points, bias, chunk, block):
    za, ya, idx = _augmented(z, points, bias, chunk)
    v1, i1, v2, i2 = map_queries(lambda zb: _top2_block(zb, ya, idx), za, block)
    return v1, i1, v2, jnp.where(jnp.isfinite(v2), i2, i1)  # one point: no second best


def top2(z, points, bias, *, streaming: Streaming):
    """Best and second-best scores and indices ``(v1, i1, v2, i2)``; with sharding, the owner of the best
    offers its second best, every other device its best, and the second best is the best of the offers."""
    chunk, block, sh = streaming.chunk, streaming.block, streaming.sharding
    if sh is None:
        return _top2_local(z, points, bias, chunk, block)

    def local(z, y, b, off):
        v1, i1, v2, i2 = _top2_local(z, y, b, chunk, block)
        b1, j1, own = pick_best(sh, v1, i1 + off)
        b2, j2, _ = pick_best(sh, jnp.where(own, v2, v1), jnp.where(own, i2, i1) + off)
        return b1, j1, b2, jnp.where(jnp.isfinite(b2), j2, j1)

    return on_shards(sh, local, (z,), (points, bias), (0.0, -jnp.inf), out_specs=(REP,) * 4)


GROUP = 512


def topk_group(streaming: Streaming) -> int:
    """Points per extraction group of :func:`topk`: ``min(512, chunk)``, the same with and without sharding.
    (Smaller groups find more candidates but cost more: at d = 64 on CPUs, groups of 64 made the pass 2x slower.)"""
    return max(1, min(GROUP, streaming.chunk))


def _topk_block(za, ya, idx, k, per_group, group):
    """Top-``k`` candidates of one block of queries and a bound on every other point's score.

    Each chunk is split in groups of ``group`` consecutive points (global indices ``[g G, (g + 1) G)``); per group,
    the ``per_group`` best points are extracted by repeated masked reductions (no sort) and the group's remaining
    maximum bounds the points left in it; the extracted points of all groups are merged once, at the end (one
    ``lax.top_k`` per query; the best dropped value bounds the dropped points). Returns ``(values (q, k)``
    descending, ``indices (q, k)``, ``bound (q,))`` with ``bound >=`` the score of every point not among the
    candidates (``-inf`` if none). The result depends only on the groups, not on the chunking or the sharding.
    """
    q = za.shape[0]
    ng = ya.shape[1] // group

    def body(_, blk):
        yc, ic = blk
        s = (za @ yc.T).reshape(q, ng, group)
        icg = ic.reshape(1, ng, group)
        bs, js = [], []
        taken = None
        for _ in range(per_group):
            masked = s if taken is None else jnp.where(taken, -jnp.inf, s)
            b = jnp.max(masked, axis=-1)
            a = jnp.min(jnp.where(masked >= b[..., None], icg, _NONE), axis=-1)
            bs.append(b)
            js.append(a)
            hit = icg == a[..., None]
            taken = hit if taken is None else taken | hit
        rest = jnp.max(jnp.where(taken, -jnp.inf, s), axis=(-2, -1))
        return None, (jnp.stack(bs, axis=-1).reshape(q, -1), jnp.stack(js, axis=-1).reshape(q, -1), rest)

    _, (v, i, rest) = jax.lax.scan(body, None, (ya, idx))  # (chunks, q, ng * per_group), (chunks, q)
    v = jnp.moveaxis(v, 0, 1).reshape(q, -1)
    i = jnp.moveaxis(i, 0, 1).reshape(q, -1)
    m = v.shape[1]
    kk = min(k + 1, m)
    nv, pos = jax.lax.top_k(v, kk)
    ni = jnp.take_along_axis(i, pos, axis=1)
    dropped = nv[:, k] if kk > k else jnp.full((q,), -jnp.inf, v.dtype)
    if kk < k:  # fewer extracted values than k: pad
        nv = jnp.concatenate([nv, jnp.full((q, k - kk), -jnp.inf, v.dtype)], axis=1)
        ni = jnp.concatenate([ni, jnp.full((q, k - kk), -1, ni.dtype)], axis=1)
    u = jnp.maximum(jnp.max(rest, axis=0), dropped)
    v, i = nv[:, :k], ni[:, :k]
    return v, jnp.where(jnp.isfinite(v), i, -1), u


def _topk_local(z, points, bias, k, per_group, group, chunk, block):
    # pad the points to whole groups (padding scores -inf), chunks to whole numbers of groups
    points = pad_rows(points, group, 0.0)
    bias = pad_rows(bias, group, -jnp.inf)
    n = points.shape[0]
    chunk = -(-min(chunk, n) // group) * group
    za, ya, idx = _augmented(z, points, bias, chunk)
    per_group = max(1, min(per_group, group))
    return map_queries(lambda zb: _topk_block(zb, ya, idx, k, per_group, group), za, block)


def _gather_columns(sh, a):
    """``(q, k)`` per device -> ``(q, devices x k)``, identical on every device: each device writes its block
    into zeros and a ``psum`` adds them (exact; unlike ``all_gather``, its result is replicated by type)."""
    q, k = a.shape
    mine = jnp.arange(sh.num_shards) == sh.shard_index()
    full = jnp.where(mine[None, :, None], a[:, None, :], jnp.zeros((), a.dtype))
    return jax.lax.psum(full, sh.axis).reshape(q, -1)


def topk(z, points, bias, k: int, *, per_chunk: int = 2, streaming: Streaming):
    """Candidate top ``k`` of ``s_qj = <z_q, y_j> + b_j`` with a certificate for the rest.

    Returns ``(values (q, k), indices (q, k), bound (q,))``: ``values`` are the scores of ``indices``
    (descending; ``-inf``/``-1`` past the number of points) and every point not listed scores at most
    ``bound``. The points are scanned in groups of :func:`topk_group` consecutive indices and the ``per_chunk``
    best of each group are candidates, so the listed points are the exact top ``k`` when each group holds at
    most ``per_chunk`` of them; in any case, a query whose best listed score exceeds ``bound`` has its exact
    best among them. After a change ``delta`` of the biases, the best point is still a listed one whenever
    ``max_c (values_c + delta_c) > bound + max_j delta_j``: one pass gives exact top-1s for many nearby
    biases (the semi-discrete Newton solver evaluates its iterations this way). With sharding, the points are
    padded to whole groups per device, the devices' lists are gathered and merged and the bound is the
    largest of theirs and the dropped values: the result equals the single-device one (ties aside).
    """
    chunk, block, sh = streaming.chunk, streaming.block, streaming.sharding
    group = topk_group(streaming)
    if sh is None:
        return _topk_local(z, points, bias, k, per_chunk, group, chunk, block)
    # whole groups on every device, so that the devices' groups are the single-device groups
    points = pad_rows(points, group * sh.num_shards, 0.0)
    bias = pad_rows(bias, group * sh.num_shards, -jnp.inf)

    def local(z, y, b, off):
        v, i, u = _topk_local(z, y, b, k, per_chunk, group, chunk, block)
        i = jnp.where(i >= 0, i + off, -1)
        av, ai = _gather_columns(sh, v), _gather_columns(sh, i)
        av = jnp.concatenate([av, jnp.full((av.shape[0], 1), -jnp.inf, av.dtype)], axis=1)  # (k + 1 columns)
        ai = jnp.concatenate([ai, jnp.full((ai.shape[0], 1), -1, ai.dtype)], axis=1)
        nv, pos = jax.lax.top_k(av, k + 1)
        ni = jnp.take_along_axis(ai, pos[:, :k], axis=1)
        return nv[:, :k], jnp.where(jnp.isfinite(nv[:, :k]), ni, -1), jnp.maximum(jax.lax.pmax(u, sh.axis), nv[:, k])

    return on_shards(sh, local, (z,), (points, bias), (0.0, -jnp.inf), out_specs=(REP, REP, REP))


def counts(z, points, bias, *, streaming: Streaming):
    """Per-point counts of the queries whose best score is that point's, and ``sum_q max_j s_qj``.

    One streamed top-1 pass, then a scatter-add of ones into the ``n`` bins (queries whose index is out of
    range, e.g. NaN queries, are counted nowhere). Returns ``(counts (n,), total)``.
    """
    v, i = top1(z, points, bias, streaming=streaming)
    c = jax.ops.segment_sum(jnp.ones(v.shape, z.dtype), i, points.shape[0])
    return c, jnp.sum(v)
