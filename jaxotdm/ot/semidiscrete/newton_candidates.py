"""Damped Newton on a fixed, nested Monte Carlo sample, iterated on stored candidates (selectable; not the default).

Measured faster than :class:`~jaxotdm.ot.NewtonSolver` at d = 64 (digits-1797 at tol 0.1: solve 3.3-3.9x its
certificate against 6.4x), but it fails to converge on some 2-D problems (1,000 or 2,048 points of a diffused
2-D set at tol 0.1: 100 iterations at certificate 1.0, where NewtonSolver converges in 28), so it is not the
default.


The cost of a semi-discrete solve is the number of source samples scored against all ``n`` targets. Fitting
heights on a sample of ``N`` points leaves a true max relative error of about ``z_n sqrt(1 / (N min nu))``
(``z_n = sqrt(2 log 2n)``), so the final sample must be about ``(z_n / tol)^2 / min nu`` points anyway, of
the order of the certificate's own sample; the solve can afford about one pass over it. So:

* **One nested sample.** Stage ``s`` uses the first ``N_s`` points of one stream of batches (``N_s`` grows by
  ``growth`` up to ``N_final = (z_n / (noise_fraction tol))^2 / min nu``); every row of every batch can be
  regenerated on its own from its key (:meth:`~SemidiscreteProblem.rows`).
* **Each sample is scored once.** When a batch enters the sample, one pass scores it at the current heights
  and stores, per sample, its ``K = candidates`` best targets (index, score without the height) and a bound
  ``U`` on every other target's score (:func:`jaxotdm._streaming.topk`), with the batch's reference heights
  ``h_b``: ``N x K x 8`` bytes plus ``n`` floats per batch.
* **Newton iterations on the candidates.** At trial heights ``h``, a sample's best target is provably a stored
  candidate when its best candidate score exceeds ``U + max_j (h_j - h_b,j)``; masses, energy and the
  Hessian's top-2 gaps then cost ``O(N K)`` instead of ``O(N n r)``. The few samples that fail the bound are
  regenerated and rescored exactly (at the price of those rows); a batch with more than ``recompute_rows``
  failures is rescored whole and its candidates and reference renewed at ``h``.
* **Newton direction** ``(L + lambda) delta = nu - m`` with ``L`` the kernel estimate of ``-Hess E`` (the
  facet integrals of the density over ``|x_i - x_j|``, from each sample's top-2 cells and distance to their
  facet, bandwidth ``bandwidth`` times its median), a Levenberg-Marquardt ridge ``lambda`` (x10 after a
  rejected step, /4 after a full one); dense solve for ``n <= dense_max``, Jacobi-CG on the edge list above.
* **Globalisation**: a trial step is accepted if the sample energy rises (Armijo) or the L1 residual drops
  by ``alpha / 4``, and no cell shrinks below half the smallest current or target mass
  (Kitagawa-Merigot-Thibert); else ``alpha`` halves, up to ``max_backtracks`` times.
* **Stages end** when the in-sample max relative error is below ``max(insample_fraction tol, stage_fraction
  z_n / sqrt(N_s min nu))``. **Early stop**: a stage's new batches were never used to fit the heights, so
  entering a stage measures a fresh error on them; if it plus ``check_fraction`` times their noise level is
  at most ``tol``, the solve stops.
* **Warm start** (:func:`warm_start`): the best of a one-parameter family of Gaussian-metric heights.

Cost: about one top-``K`` pass over ``N_final`` samples (``N_final x n x (r + 1)`` multiply-adds, ``r =
min(n, d)``; the top-``K`` pass costs about 2-2.5 top-1 passes on CPUs, measured) plus ``O(N K)`` and the rescored rows
per iteration.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from jaxotdm import _streaming as S
from jaxotdm._pytree import pytree_dataclass, static_field
from jaxotdm._types import Array
from jaxotdm.ot.semidiscrete import _newton_common as C
from jaxotdm.ot.semidiscrete import _passes as P
from jaxotdm.ot.semidiscrete.driver import SemidiscreteSolver
from jaxotdm.ot.semidiscrete.problem import SemidiscreteProblem


@pytree_dataclass
class CandidateSchedule:
    """Per-stage batch counts, in-sample tolerances and noise levels (padded to ``MAX_STAGES``)."""

    num_batches: Array
    tolerances: Array
    last: Array
    check: Array  # ``tol``
    noise: Array  # per stage: ``check_fraction z_n max_i sqrt(nu_i (1 - nu_i) / N_new) / nu_i`` of its new batches


@pytree_dataclass
class Candidates:
    """Per sample (rows of the nested sample): the ``K`` candidate targets, their scores without heights, and a
    bound on every other target's score at its batch's reference heights."""

    index: Array  # (N, K) int32, -1 for none
    base: Array  # (N, K) <z, y_j>
    bound: Array  # (N,) >= <z, y_j> + h_b,j for every non-candidate j
    h_ref: Array  # (batches, n) reference heights h_b of each batch


@pytree_dataclass
class CandidateNewtonState(C.NewtonState):
    """The shared Newton state (:class:`~jaxotdm.ot.NewtonState`) plus the candidate store."""

    store: Candidates


@pytree_dataclass
class _Eval:
    masses: Array
    energy: Array
    hess: Any
    store: Candidates
    evaluations: Array  # samples scored exactly (new batches, rescored rows, renewed batches)
    fresh: Array  # masses of the batches that entered the sample in this evaluation


@pytree_dataclass
class CandidateNewtonSolver(SemidiscreteSolver):
    """Damped Newton on a nested Monte Carlo sample, iterated on stored candidates (ours; selectable).

    See :mod:`jaxotdm.ot.semidiscrete.newton` for the method. Run it through :func:`~jaxotdm.semidiscrete_ot`,
    or drive ``init``/``step`` yourself.

    Attributes:
        growth: sample growth factor per stage. noise_fraction: the final sample resolves every relative
            mass to ``noise_fraction * tol`` at the ``z_n`` level. insample_fraction, stage_fraction,
            check_fraction: stage ends and early stop (module docstring).
        min_samples_per_cell: expected samples in the smallest cell at the first stage.
        final_samples: overrides ``N_final``. max_samples: cap on ``N_final``.
        candidates: ``K``, targets stored per sample. per_chunk: candidates extracted per group of 512 targets.
        recompute_rows: most failing rows per batch rescored on their own (more: the whole batch, renewed).
        hessian_samples: samples whose top-2 gaps build the Hessian (``None``: ``max(1024 n, 4 batches)`` for
            the dense solve, ``max(256 n, 4 batches)`` for the edge list).
        bandwidth: kernel bandwidth as a fraction of the median distance to the nearest facet.
        dense_max: largest ``n`` for the dense solve; Jacobi-CG with edge matvecs above.
        max_iterations: total iterations (Newton steps and stage changes). max_backtracks: per step.
        warm_start: start from :func:`warm_start`'s heights instead of
            :meth:`~SemidiscreteProblem.voronoi_init` (unless ``init_heights`` is given).
    """

    growth: int = static_field(8)
    noise_fraction: float = static_field(0.85)
    insample_fraction: float = static_field(0.3)
    stage_fraction: float = static_field(0.5)
    check_fraction: float = static_field(1.0)
    min_samples_per_cell: int = static_field(32)
    final_samples: int | None = static_field(None)
    max_samples: int = static_field(2**27)
    candidates: int = static_field(8)
    per_chunk: int = static_field(2)
    recompute_rows: int = static_field(512)
    hessian_samples: int | None = static_field(None)
    bandwidth: float = static_field(0.15)
    dense_max: int = static_field(2048)
    cg_iterations: int = static_field(100)
    max_iterations: int = static_field(100)
    max_backtracks: int = static_field(6)
    warm_start: bool = static_field(True)

    name = "newton-candidates"

    def __post_init__(self):
        C.check_newton_settings(self, ints={"candidates": 1, "per_chunk": 1, "recompute_rows": 0}, bools=("warm_start",))

    # ---------------------------------------------------------------------------------------- planning
    def schedule(self, prob: SemidiscreteProblem, tol: float) -> CandidateSchedule:
        """The stage schedule for ``tol`` (host-side; needs concrete weights)."""
        nbs, tols, pad, zn, _ = C.stages(self, prob, tol)
        nb_final, B = nbs[-1], prob.batch_size
        wmin = prob.min_weight(type(self).__name__)
        dtype = prob.points.dtype
        se = math.sqrt((1.0 - wmin) / wmin)  # max_i sqrt(nu_i (1 - nu_i)) / nu_i, at the smallest weight
        new = [nbs[0]] + [b - a for a, b in zip(nbs[:-1], nbs[1:], strict=True)]
        return CandidateSchedule(
            jnp.asarray(nbs + [nb_final] * pad, jnp.int32),
            jnp.asarray(tols + [tols[-1]] * pad, dtype),
            jnp.asarray(len(nbs) - 1, jnp.int32),
            jnp.asarray(tol, dtype),
            jnp.asarray([self.check_fraction * zn * se / math.sqrt(max(m, 1) * B) for m in new + [1] * pad], dtype),
        )

    def _groups(self, prob):
        return -(-prob.num_targets // S.topk_group(prob.streaming))

    def _per_chunk(self, prob):
        """Candidates extracted per group of points: at least enough for a top-2 (the Hessian needs it)."""
        return max(self.per_chunk, -(-min(2, prob.num_targets) // self._groups(prob)))

    def _k(self, prob):
        """Candidates stored per sample: at most ``candidates`` and the number extracted."""
        return max(1, min(self.candidates, prob.num_targets, self._groups(prob) * self._per_chunk(prob)))

    def init(self, prob: SemidiscreteProblem, *, tol: float, key, init_heights=None) -> CandidateNewtonState:
        """State before the first stage (``stage = -1``); the first ``step`` scores stage 0's sample.
        Plans the stages on the host (:meth:`schedule`, needs concrete weights)."""
        sched = self.schedule(prob, tol)
        if init_heights is not None:
            h = init_heights - jnp.mean(init_heights)
        elif self.warm_start:
            wmin = prob.min_weight(type(self).__name__)
            nb = max(1, math.ceil(8.0 / wmin / prob.batch_size))  # 8 samples per cell
            h = _jit_warm_start(prob, jax.random.fold_in(key, 2**31 - 1), nb)
        else:
            h = prob.voronoi_init()
        dtype = h.dtype
        n = prob.num_targets
        nbf = int(sched.num_batches[int(sched.last)])
        N = nbf * prob.batch_size
        k = self._k(prob)
        store = Candidates(jnp.full((N, k), -1, jnp.int32), jnp.zeros((N, k), dtype), jnp.full((N,), jnp.inf, dtype),
                           jnp.zeros((nbf, n), dtype))
        return CandidateNewtonState(**C.initial_state(self, prob, h, key, sched), store=store)

    # ---------------------------------------------------------------------------------------- passes
    def _hessian(self, prob, edges, nh):
        """Kernel estimate of ``-Hess E`` from the edges (``i, j``, facet distance ``u``, ``|x_i - x_j|``): dense
        ``(n, n)`` for ``n <= dense_max``, else the weighted edge list. The bandwidth is ``bandwidth`` times the
        median facet distance of the first batch."""
        n, B = prob.num_targets, prob.batch_size
        i, j, u, dx = edges
        med = jnp.median(u[:B])  # invalid rows are +inf
        bw = self.bandwidth * jnp.maximum(jnp.where(jnp.isfinite(med), med, 1.0), 1e-30)
        w = jnp.where(jnp.isfinite(u), P.edge_weights(u, bw) / dx, 0.0)
        w = w / (jnp.maximum(nh, 1) * B).astype(w.dtype)
        if n > self.dense_max:
            return i, j, w
        # dense weighted Laplacian in one scatter: L_ij -= w, L_ji -= w, L_ii += w, L_jj += w
        flat = jnp.concatenate([i * n + j, j * n + i, i * n + i, j * n + j])
        return jax.ops.segment_sum(jnp.concatenate([-w, -w, w, w]), flat, n * n).reshape(n, n)

    def _scored(self, prob, key, h, b, k):
        """Top-``K`` candidates of batch ``b`` at ``h``: ``(top-2 row data, new store rows)``."""
        B = prob.batch_size
        v, i, u = S.topk(prob.batch(key, b), prob.points, h, k, per_chunk=self._per_chunk(prob),
                         streaming=prob.streaming)
        if k > 1:
            v2, i2 = v[:, 1], jnp.where(i[:, 1] >= 0, i[:, 1], i[:, 0])
        else:
            v2, i2 = jnp.full((B,), -jnp.inf, h.dtype), i[:, 0]
        base = v - jnp.where(i >= 0, h[jnp.maximum(i, 0)], 0.0)
        # the top-2 is exact when the second candidate beats the bound on the rest
        return (v[:, 0], i[:, 0], v2, i2, v2 >= u), (i, base, u, h)

    def _evaluate(self, prob, h, key, nb, nb_ready, store: Candidates) -> _Eval:
        """Masses, energy and Hessian of ``h`` on batches ``[0, nb)``.

        Batches from ``nb_ready`` on enter the sample: they are scored once (top-``K`` candidates at ``h``,
        stored with reference ``h``) and their masses are returned apart as ``fresh``. The others are evaluated
        from their candidates; a batch with more than ``recompute_rows`` uncertified rows is scored whole and
        renewed, and the uncertified rows of the other batches are collected across batches, regenerated and
        rescored exactly in one large block, which then corrects the counts, the energy and the edges.
        """
        B, k, n = prob.batch_size, store.index.shape[1], prob.num_targets
        N = store.bound.shape[0]
        F = min(self.recompute_rows, B)
        R = min(N, max(B, N // 32))  # rows collected for the exact rescoring
        dtype = h.dtype
        nh_max = C.n_hess_batches(self, prob)
        nh = jnp.minimum(nb, nh_max)
        E = (nh_max + 1) * B  # the last slot is scratch for batches past nh
        ones = jnp.ones((B,), dtype)

        def per_batch(b, carry):
            store, counts, esum, fresh, edges, buf, nbuf, evals = carry
            row = (b * B, 0 * b)
            old = (jax.lax.dynamic_slice(store.index, row, (B, k)), jax.lax.dynamic_slice(store.base, row, (B, k)),
                   jax.lax.dynamic_slice(store.bound, (b * B,), (B,)),
                   jax.lax.dynamic_slice(store.h_ref, (b, 0 * b), (1, n))[0])
            idx, base, bound, href = old
            ub = bound + jnp.max(h - href)
            sc = jnp.where(idx >= 0, base + h[jnp.maximum(idx, 0)], -jnp.inf)
            cand = _candidate_top2(sc, idx, ub)
            bad = ~(cand[0] > ub)
            cnt = jnp.sum(bad)
            whole = (b >= nb_ready) | (cnt > F) | (nbuf + cnt > R)
            # only per-batch arrays cross the branches; the store is written after
            (v1, i1, v2, i2, ok2), new = jax.lax.cond(whole, lambda: self._scored(prob, key, h, b, k), lambda: (cand, old))
            store = Candidates(jax.lax.dynamic_update_slice(store.index, new[0], row),
                               jax.lax.dynamic_update_slice(store.base, new[1], row),
                               jax.lax.dynamic_update_slice(store.bound, new[2], (b * B,)),
                               jax.lax.dynamic_update_slice(store.h_ref, new[3][None, :], (b, 0 * b)))
            c = jax.ops.segment_sum(ones, i1, n)
            counts, esum = counts + c, esum + jnp.sum(v1)
            fresh = fresh + jnp.where(b >= nb_ready, c, 0.0)
            u, dx = _facet(prob.points, v1, i1, v2, i2, ok2)
            start = (jnp.minimum(b, nh_max) * B,)
            edges = tuple(jax.lax.dynamic_update_slice(a, o, start) for a, o in zip(edges, (i1, i2, u, dx), strict=True))
            # uncertified rows of a candidate-evaluated batch: queued (flat index and the candidate answer)
            take = bad & ~whole
            pos = jnp.where(take, nbuf + jnp.cumsum(take) - 1, R)  # R: dropped
            buf = (buf[0].at[pos].set(b * B + jnp.arange(B, dtype=jnp.int32), mode="drop"),
                   buf[1].at[pos].set(v1, mode="drop"), buf[2].at[pos].set(i1, mode="drop"))
            nbuf = nbuf + jnp.sum(take).astype(jnp.int32)
            return store, counts, esum, fresh, edges, buf, nbuf, evals + jnp.where(whole, B, 0).astype(dtype)

        zn = jnp.zeros((n,), dtype)
        edges0 = (jnp.zeros((E,), jnp.int32), jnp.zeros((E,), jnp.int32), jnp.full((E,), jnp.inf, dtype),
                  jnp.ones((E,), dtype))
        buf0 = (jnp.zeros((R,), jnp.int32), jnp.zeros((R,), dtype), jnp.zeros((R,), jnp.int32))
        carry = (store, zn, jnp.zeros((), dtype), zn, edges0, buf0, jnp.asarray(0, jnp.int32), jnp.zeros((), dtype))
        store, counts, esum, fresh, edges, buf, nbuf, evals = jax.lax.fori_loop(0, nb, per_batch, carry)

        # the queued rows, regenerated from their own keys and rescored exactly; only ``nbuf`` rows are paid for
        def rescore(size):
            return lambda args: _rescore(prob, key, h, buf, nbuf, size, nh_max * B, E, *args)

        sizes = sorted({max(1, R // 64), max(1, R // 8), R})
        branch = jnp.where(nbuf == 0, 0, 1 + jnp.searchsorted(jnp.asarray(sizes), nbuf))
        counts, esum, edges = jax.lax.switch(
            branch, [lambda a: a] + [rescore(m) for m in sizes], (counts, esum, edges))
        evals = evals + nbuf.astype(dtype)

        total = (nb * B).astype(dtype)
        masses = counts / total
        energy = jnp.dot(prob.weights, h) - esum / total
        fresh = fresh / jnp.maximum((nb - nb_ready) * B, 1).astype(dtype)
        hess = self._hessian(prob, tuple(a[: nh_max * B] for a in edges), nh)
        return _Eval(masses, energy, hess, store, evals, fresh)

    # ---------------------------------------------------------------------------------------- iteration
    def step(self, prob: SemidiscreteProblem, state: CandidateNewtonState) -> CandidateNewtonState:
        """One iteration: entering the next stage (its new batches scored at the current heights) once the
        current stage's tolerance is met, or a damped Newton step evaluated on the candidates."""
        s = state
        sched = s.plan
        dtype = s.heights.dtype
        B = prob.batch_size
        cur = jnp.maximum(s.stage, 0)
        stage_ok = (s.stage < 0) | (s.error <= sched.tolerances[cur])
        at_last = s.stage >= sched.last
        finished = stage_ok & at_last
        advance = stage_ok & ~at_last
        stage = jnp.where(advance, s.stage + 1, s.stage)
        nb = sched.num_batches[jnp.maximum(stage, 0)]
        nb_old = jnp.where(s.stage < 0, 0, sched.num_batches[cur])
        key = s.key

        # entering a stage evaluates the current heights once (its new batches scored for the first time);
        # a Newton step evaluates trial heights until one is accepted
        r = prob.weights - s.masses
        delta = jax.lax.cond(advance | finished, lambda: jnp.zeros_like(s.heights),
                             lambda: C.direction(self, prob, s, r, cholesky=False))
        r1 = jnp.sum(jnp.abs(r))
        slope = jnp.dot(r, delta)
        min_mass = 0.5 * jnp.minimum(jnp.min(s.masses), jnp.min(prob.weights))
        nb_ready = jnp.where(advance, nb_old, nb)

        def cond(c):
            _, k, ok, _ = c
            return ~ok & (k <= self.max_backtracks)

        def body(c):
            alpha, k, _, e_prev = c
            e = self._evaluate(prob, s.heights + alpha * delta, key, nb, nb_ready, e_prev.store)
            ok = C.accepts(prob, s, e.masses, e.energy, alpha, slope, r1, min_mass, advance)
            # evaluations accumulate over the trials; the store keeps every renewal
            e = e.replace(evaluations=e.evaluations + e_prev.evaluations)
            return jnp.where(ok, alpha, alpha / 2.0), k + 1, ok, e

        e0 = _Eval(s.masses, s.energy, s.hess, s.store, jnp.zeros((), dtype), jnp.zeros_like(s.masses))
        alpha, _, accepted, e = jax.lax.while_loop(cond, body, (jnp.ones((), dtype), jnp.asarray(0), finished, e0))
        rejected = ~accepted  # (also when finished: nothing evaluated)
        alpha = jnp.where(rejected | advance, 0.0, alpha)
        keep = lambda a, b: jnp.where(rejected, a, b)
        e = e.replace(masses=keep(s.masses, e.masses), energy=keep(s.energy, e.energy),
                       hess=jax.tree_util.tree_map(keep, s.hess, e.hess))
        ridge = C.new_ridge(s.ridge, rejected & ~finished, alpha)
        h = s.heights + alpha * delta
        h = h - jnp.mean(h)
        err = jnp.where(finished, s.error, P.max_rel(e.masses, prob.weights))
        fresh = jnp.where(advance & (nb > nb_old), P.max_rel(e.fresh, prob.weights), jnp.inf)
        fresh_ok = advance & (s.stage >= 0) & (fresh + sched.noise[jnp.maximum(stage, 0)] <= sched.check)
        hist = jax.lax.cond(
            finished, lambda: s.history,
            lambda: s.history.record(s.iteration, err, e.energy, nb * B, jnp.where(advance, 0.0, alpha)),
        )
        it = jnp.where(finished, s.iteration, s.iteration + 1)
        done = finished | fresh_ok
        return s.replace(
            heights=h, stage=stage, iteration=it, masses=e.masses, energy=e.energy, hess=e.hess, error=err,
            ridge=ridge, done=done | (it >= self.max_iterations), converged=done, history=hist,
            num_samples=(nb * B).astype(jnp.int32), evaluations=s.evaluations + e.evaluations, store=e.store,
        )


def _facet(points, v1, i1, v2, i2, ok):
    """Distance to the facet between the top-2 cells (``inf`` where not known exactly) and ``|x_i1 - x_i2|``."""
    dx = jnp.linalg.norm(points[i1] - points[i2], axis=-1)
    return jnp.where(ok & (i1 != i2) & jnp.isfinite(v2), (v1 - v2) / jnp.maximum(dx, 1e-30), jnp.inf), dx


def _candidate_top2(sc, idx, ub):
    """Top-2 ``(v1, i1, v2, i2, exact)`` of the ``K`` candidate scores ``sc`` (``(B, K)``, targets ``idx``);
    ``exact``: the second beats the bound ``ub`` on every other target."""
    B, k = sc.shape
    if k == 1:
        return sc[:, 0], idx[:, 0], jnp.full((B,), -jnp.inf, sc.dtype), idx[:, 0], jnp.zeros((B,), bool)
    # masked reductions (lax.top_k here defeats XLA:CPU's fusion of the loop body: 10x slower)
    col = jnp.arange(k)
    c1 = jnp.max(sc, axis=1)
    p1 = jnp.minimum(jnp.min(jnp.where(sc >= c1[:, None], col, k), axis=1), k - 1)
    rest = jnp.where(col == p1[:, None], -jnp.inf, sc)
    c2 = jnp.max(rest, axis=1)
    p2 = jnp.minimum(jnp.min(jnp.where(rest >= c2[:, None], col, k), axis=1), k - 1)
    j1 = jnp.take_along_axis(idx, p1[:, None], axis=1)[:, 0]
    j2 = jnp.take_along_axis(idx, p2[:, None], axis=1)[:, 0]
    return c1, j1, c2, jnp.where(j2 >= 0, j2, j1), c2 > ub


def _rescore(prob, key, h, buf, nbuf, size, hess_rows, E, counts, esum, edges):
    """The first ``size`` queued rows (``nbuf`` of them valid), regenerated from their keys and scored exactly:
    counts, energy sum and edges corrected from the candidate answers to the exact ones."""
    B, n, dtype = prob.batch_size, prob.num_targets, h.dtype
    flat, v1c, i1c = (a[:size] for a in buf)
    valid = jnp.arange(size) < nbuf
    z = jax.vmap(lambda f: prob.rows(key, f // B, (f % B)[None])[0])(flat)
    e1, j1, e2, j2 = S.top2(z, prob.points, h, streaming=prob.streaming)
    wv = valid.astype(dtype)
    counts = counts + jax.ops.segment_sum(wv, j1, n) - jax.ops.segment_sum(wv, i1c, n)
    esum = esum + jnp.sum(jnp.where(valid, e1 - v1c, 0.0))
    u, dx = _facet(prob.points, e1, j1, e2, j2, jnp.ones((size,), bool))
    at = jnp.where(valid & (flat < hess_rows), flat, E)  # E: dropped
    edges = tuple(a.at[at].set(o, mode="drop") for a, o in zip(edges, (j1, j2, u, dx), strict=True))
    return counts, esum, edges


def warm_start(prob: SemidiscreteProblem, key, num_batches: int, evaluations: int = 12):
    """Initial heights ``h_i = -c q_i``, ``q_i = y_i^T C^{-1/4} y_i / mean`` (``C`` the weighted covariance of the
    centred targets): the Laguerre cells of a Gaussian-to-Gaussian-like potential whose metric is between the
    Voronoi one (``C^0``) and the Gaussian Brenier map's (``C^{-1/2}``). The scale ``c`` minimises the L1 mass
    error on one small sample (``num_batches`` batches, the same for every trial) by a golden-section
    search over ``log c`` in ``[log c0 - 6, log c0 + 2]`` around the Voronoi scale ``c0``. On noised digits
    (``n = 1797``, ``d = 64``) this starts Newton at a max relative mass error of about 1.5 instead of 40.
    """
    y, w = prob.points, prob.weights
    cov = (y * w[:, None]).T @ y
    ev, vec = jnp.linalg.eigh(cov)
    ev = jnp.maximum(ev, 1e-6 * jnp.maximum(ev[-1], 1e-30))
    q = jnp.einsum("ij,jk,ik->i", y, (vec * ev**-0.25) @ vec.T, y)
    q = q / jnp.maximum(jnp.sum(w * q), 1e-30)
    y2 = jnp.sum(y * y, axis=-1)
    c0 = jnp.sum(w * y2) / (2.0 * jnp.maximum(jnp.sqrt(jnp.sum(w * y2)) / prob.source_scale(), 1e-30))
    nb = num_batches

    def l1(logc):
        h = -jnp.exp(logc) * q
        m = P.sample_pass(prob, h - jnp.mean(h), key, jnp.asarray(nb)).masses
        return jnp.sum(jnp.abs(m - w))

    g = (math.sqrt(5.0) - 1.0) / 2.0
    lo, hi = jnp.log(c0) - 6.0, jnp.log(c0) + 2.0
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = l1(a), l1(b)

    def body(_, c):
        lo, hi, a, b, fa, fb = c
        left = fa <= fb  # minimum in [lo, b]
        lo2, hi2 = jnp.where(left, lo, a), jnp.where(left, b, hi)
        a2 = jnp.where(left, hi2 - g * (hi2 - lo2), b)
        b2 = jnp.where(left, a, lo2 + g * (hi2 - lo2))
        new = l1(jnp.where(left, a2, b2))
        fa2, fb2 = jnp.where(left, new, fb), jnp.where(left, fa, new)
        return lo2, hi2, a2, b2, fa2, fb2

    lo, hi, a, b, fa, fb = jax.lax.fori_loop(0, max(evaluations - 2, 0), body, (lo, hi, a, b, fa, fb))
    h = -jnp.exp(jnp.where(fa <= fb, a, b)) * q
    return h - jnp.mean(h)


_jit_warm_start = jax.jit(warm_start, static_argnums=(2, 3))
