"""Passes over Monte Carlo samples of the source: hard cell masses, the energy, and the kernel Hessian.

A *pass* scores every sample of ``nb`` batches (regenerated from ``fold_in(key, b)``, so the same key gives
the same sample) against all targets with the streaming layer (:mod:`jaxotdm._streaming`): counts for the
cell masses, top-2 for the Hessian. Memory is ``O(batch x chunk)``; nothing of size (samples x targets) is
kept.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from jaxotdm import _streaming as S
from jaxotdm._pytree import pytree_dataclass
from jaxotdm._types import Array
from jaxotdm.ot.semidiscrete.problem import SemidiscreteProblem


@pytree_dataclass
class Pass:
    masses: Array  # (n,) hard cell masses on the sample
    energy: Array  # sum nu h - mean max score
    hess: Any  # dense (n, n) kernel Laplacian, or edges (i, j, w) of the first samples, or None
    median_gap: Array  # median top-2 score gap on the first batch


def edge_weights(gap, bandwidth):
    x = gap / bandwidth
    return jax.nn.sigmoid(x) * jax.nn.sigmoid(-x) / bandwidth


def sample_pass(prob: SemidiscreteProblem, h, key, nb) -> Pass:
    """Hard cell masses and sample energy of ``h`` on ``nb`` batches regenerated from ``key`` (same key -> same
    sample), and the median top-2 score gap of the first batch; no Hessian."""
    return _pass(prob, h, key, nb, None, 1, 0.5)


def dense_hessian_pass(prob: SemidiscreteProblem, h, key, nb, n_hess_batches: int, bandwidth: float) -> Pass:
    """:func:`sample_pass` plus the dense ``(n, n)`` kernel estimate ``L`` of ``-Hess E`` from the first
    ``min(nb, n_hess_batches)`` batches: the weighted Laplacian of the cell-adjacency graph, built from each
    sample's top-2 cells and its distance to their facet, ``gap / |x_i - x_j|``, with a kernel of bandwidth
    ``bandwidth`` times the median distance on the first batch."""
    return _pass(prob, h, key, nb, _dense_hessian, n_hess_batches, bandwidth)


def edge_hessian_pass(prob: SemidiscreteProblem, h, key, nb, n_hess_batches: int, bandwidth: float) -> Pass:
    """:func:`dense_hessian_pass`'s estimate as the weighted edge list ``(i, j, w)`` of those batches (for
    matrix-free CG when ``n`` is large)."""
    return _pass(prob, h, key, nb, _edge_hessian, n_hess_batches, bandwidth)


def _pass(prob: SemidiscreteProblem, h, key, nb, hessian, n_hess_batches, bandwidth) -> Pass:
    """The one streamed pass behind the three above (``hessian``: ``None``, :func:`_dense_hessian` or
    :func:`_edge_hessian`)."""
    n = prob.num_targets
    B = prob.batch_size
    dtype = prob.points.dtype
    ones = jnp.ones((B,), dtype)
    st = prob.streaming

    def sample(b):
        return prob.batch(key, b)

    v1, i1, v2, i2 = S.top2(sample(0), prob.points, h, streaming=st)

    def facet_distance(gap, i, j):
        """Distance to the facet between cells ``i`` and ``j`` (``gap / |x_i - x_j|``) and ``|x_i - x_j|``."""
        dx = jnp.linalg.norm(prob.points[i] - prob.points[j], axis=-1)
        dx = jnp.where(i == j, jnp.inf, dx)  # one target: no second cell
        return gap / jnp.maximum(dx, 1e-30), dx

    gap0 = v1 - v2
    med = jnp.median(jnp.where(jnp.isfinite(gap0), gap0, jnp.inf))
    u0, _ = facet_distance(gap0, i1, i2)
    bw = bandwidth * jnp.maximum(jnp.median(jnp.where(jnp.isfinite(u0), u0, jnp.inf)), 1e-30)

    def weights(gap, i, j):
        # density of the distance to the facet at 0 (kernel of bandwidth ``bw``), over |x_i - x_j|:
        # the facet integral of the source density divided by |x_i - x_j|, i.e. -d m_i / d h_j
        u, dx = facet_distance(gap, i, j)
        return jnp.where(jnp.isfinite(u) & jnp.isfinite(dx), edge_weights(u, bw) / dx, 0.0)

    counts = jax.ops.segment_sum(ones, i1, n)
    esum = jnp.sum(v1)
    nh = jnp.minimum(nb, n_hess_batches)
    out = None
    start = jnp.asarray(1)
    if hessian is not None:
        counts, esum, out, start = hessian(prob, h, sample, weights, (v1, i1, v2, i2), (nb, nh, int(n_hess_batches)),
                                           (counts, esum))

    def body(b, carry):
        counts, esum = carry
        c, e = S.counts(sample(b), prob.points, h, streaming=st)
        return counts + c, esum + e

    counts, esum = jax.lax.fori_loop(start, jnp.maximum(nb, start), body, (counts, esum))
    total = (nb * B).astype(dtype)
    masses = counts / total
    energy = jnp.dot(prob.weights, h) - esum / total
    return Pass(masses, energy, out, med)


def _dense_hessian(prob, h, sample, weights, first, batches, totals):
    """:func:`dense_hessian_pass`'s dense kernel Laplacian: batches ``[1, nh)`` add their top-2 edges (and counts) to
    those of batch 0 (``first``); ``batches = (nb, nh, n_edge_batches)``, ``totals = (counts, esum)`` so far;
    returns ``(counts, esum, L, next batch)``."""
    nb, nh, _ = batches
    counts, esum = totals
    n, B, dtype, st = prob.num_targets, prob.batch_size, prob.points.dtype, prob.streaming
    ones = jnp.ones((B,), dtype)
    v1, i1, v2, i2 = first

    def add_edges(L, i, j, w):
        return L.at[i, j].add(-w).at[j, i].add(-w).at[i, i].add(w).at[j, j].add(w)

    def hess_body(b, carry):
        counts, esum, L = carry
        v1, i1, v2, i2 = S.top2(sample(b), prob.points, h, streaming=st)
        return counts + jax.ops.segment_sum(ones, i1, n), esum + jnp.sum(v1), add_edges(L, i1, i2, weights(v1 - v2, i1, i2))

    L0 = add_edges(jnp.zeros((n, n), dtype), i1, i2, weights(v1 - v2, i1, i2))
    counts, esum, L = jax.lax.fori_loop(1, jnp.maximum(nh, 1), hess_body, (counts, esum, L0))
    return counts, esum, L / (jnp.maximum(nh, 1) * B).astype(dtype), jnp.maximum(nh, 1)


def _edge_hessian(prob, h, sample, weights, first, batches, totals):
    """:func:`edge_hessian_pass`'s weighted edge list: the top-2 edges of batch 0 (``first``) and of batches
    ``[1, n_edge_batches)`` (zero weight past ``nb``); ``batches = (nb, nh, n_edge_batches)`` (the last a Python
    int), ``totals = (counts, esum)`` so far; returns ``(counts, esum, (i, j, w), next batch)``."""
    nb, nh, n_edge_batches = batches
    counts, esum = totals
    n, B, dtype, st = prob.num_targets, prob.batch_size, prob.points.dtype, prob.streaming
    ones = jnp.ones((B,), dtype)
    v1, i1, v2, i2 = first

    def hess_batch(b):
        def live(_):
            v1, i1, v2, i2 = S.top2(sample(b), prob.points, h, streaming=st)
            return jax.ops.segment_sum(ones, i1, n), jnp.sum(v1), i1, i2, weights(v1 - v2, i1, i2)

        def dead(_):
            zi = jnp.zeros((B,), jnp.int32)
            return jnp.zeros((n,), dtype), jnp.zeros((), dtype), zi, zi, jnp.zeros((B,), dtype)

        return jax.lax.cond(b < nb, live, dead, None)

    hi, hj, hw = i1, i2, weights(v1 - v2, i1, i2)
    if n_edge_batches > 1:
        c, e, bi, bj, bw_ = jax.lax.map(hess_batch, jnp.arange(1, n_edge_batches))
        counts = counts + jnp.sum(c, axis=0)
        esum = esum + jnp.sum(e)
        hi = jnp.concatenate([hi, bi.reshape(-1)])
        hj = jnp.concatenate([hj, bj.reshape(-1)])
        hw = jnp.concatenate([hw, bw_.reshape(-1)])
    return counts, esum, (hi, hj, hw / (nh * B).astype(dtype)), jnp.asarray(n_edge_batches)


def max_rel(masses, weights):
    """``max_i |m_i - nu_i| / nu_i``."""
    return jnp.max(jnp.abs(masses - weights) / weights)


def masses(prob: SemidiscreteProblem, h, key, nb):
    """Hard cell masses of ``h`` on ``nb`` batches of ``key``'s sample stream; NaN if ``h`` is not finite."""
    m = sample_pass(prob, h, key, nb).masses
    return jnp.where(jnp.all(jnp.isfinite(h)), m, jnp.nan)


jit_masses = jax.jit(masses)


def noise_floor(weights, num_samples):
    """``z_n max_i sqrt(nu_i (1 - nu_i) / M) / nu_i``: the max relative error Monte Carlo noise alone gives."""
    n = weights.shape[0]
    return math.sqrt(2.0 * math.log(2.0 * n)) * jnp.max(jnp.sqrt(weights * (1 - weights) / num_samples) / weights)
