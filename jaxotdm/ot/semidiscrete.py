r"""Semi-discrete optimal transport from a source density (default ``N(0, I)``) to weighted points.

Convention (the paper's, see ``science.md`` section 3): the Brenier potential is

    u_h(z) = max_i (<z, x_i> + h_i),

its gradient sends the Laguerre cell ``W_i(h) = {z : <z, x_i> + h_i >= <z, x_j> + h_j for all j}`` to
``x_i``, and the optimal heights maximise the concave energy ``E(h) = sum_i nu_i h_i - E_z[u_h(z)]`` whose
gradient is ``nu_i - m_i(h)`` with ``m_i(h) = P(z in W_i(h))`` the cell masses. Heights are unique up to
an additive constant; we return them with mean zero.

Conversion to ott-jax / POT (cost ``|x - y|^2`` without the 1/2, dual vector ``g``):
``h_j = (g_j - |y_j|^2) / 2`` (and ``g_j = 2 h_j + |y_j|^2``), entropic ``tau = epsilon / 2``.

Solvers (pass one as ``method``; the default is :class:`NewtonSolver`, the fastest in our benchmark):

* :class:`NewtonSolver` (ours): damped Newton on the energy of a fixed Monte Carlo sample, with the
  sample grown geometrically (``growth``x per stage) until its resolution matches ``tol`` (or a fresh
  sample certifies the heights earlier). The Hessian
  of ``E`` is minus the weighted Laplacian of the cell-adjacency graph (facet integrals of the density);
  we estimate it by a kernel density estimate on the gap between the best and second-best score of each
  sample (a sample at gap ``g`` from the facet between its top-2 cells contributes
  ``sigma(g / b) sigma(-g / b) / b`` to that edge). Dense solve for ``n <= dense_max``, Jacobi-CG with
  edge matvecs above.
* :class:`AdamSolver`: the paper's Algorithm 1 (Adam with beta1 = 0.9, beta2 = 0.5 on ``h``, fresh Monte
  Carlo cell masses each step, the sample size doubled when the energy stagnates).
* :class:`OTTSolver`: ott-jax 0.6's ``SemidiscreteSolver`` with ``epsilon = 0`` (hard map), SGD with a
  decreasing step and an exponential moving average of the iterates.

With the default Gaussian source, the solvers work in the span of the centred targets: for
``z ~ N(0, I_d)``, ``<z, x_i - c>`` has the law of ``<g, y_i>`` with ``g ~ N(0, I_r)``, ``r = min(n, d)``
and ``y`` the targets' coordinates in an orthonormal basis of their span. This is exact, not an
approximation, and saves a factor ``d / n`` when ``d > n``.

Everything over targets is streamed in chunks (online top-2 / log-sum-exp, never a
``(samples, targets, dims)`` array) and everything over samples in batches regenerated from keys, so
memory is ``O(batch x chunk + n x d)`` (plus ``n^2`` for the dense Newton solve when ``n <= dense_max``).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxotdm import _validation as V
from jaxotdm._pytree import pytree_dataclass, static_field
from jaxotdm._types import Array, ArrayLike, Float, Int
from jaxotdm.measures import GaussianMeasure
from jaxotdm.ot import _kernels as K
from jaxotdm.sharding import PointSharding, check_sharding

__all__ = [
    "AdamSolver",
    "NewtonSolver",
    "OTTSolver",
    "SemidiscreteCertificate",
    "SemidiscreteDiagnostics",
    "SemidiscreteMap",
    "SemidiscreteProblem",
    "cell_masses",
    "semidiscrete_ot",
]

DEFAULT_CHUNK = 2048
DEFAULT_BATCH = 4096


# ----------------------------------------------------------------------------------------------------
# Problem: the reduced, centred targets and the source sampler.
# ----------------------------------------------------------------------------------------------------


@pytree_dataclass
class SemidiscreteProblem:
    """The semi-discrete problem as the solvers see it (a PyTree).

    Attributes:
        points: ``(n, r)`` targets, centred on their weighted mean and (Gaussian source) expressed in an
            orthonormal basis of their span. Heights are invariant under both changes.
        weights: ``(n,)`` target weights ``nu`` (positive, summing to one).
        sampler: ``None`` for the standard Gaussian in ``r`` dimensions, else a callable
            ``sampler(key, num) -> (num, r)``.
        batch_size: source samples per batch. chunk_size: targets per streamed chunk.
        sharding: optional :class:`~jaxotdm.PointSharding`: the targets axis is split across its mesh axis
            (every pass streams each device's block of targets; results equal the single-device ones).
        antithetic: standard Gaussian source only: each batch is ``[z, -z]`` for ``batch_size / 2`` draws
            ``z`` (unbiased, half the random numbers; the solvers use it, certificates do not, since the
            cell around the origin can hold both ``z`` and ``-z`` and its variance is then not ``m(1-m)/N``).
    """

    points: Float[Array, "n r"]
    weights: Float[Array, " n"]
    sampler: Callable | None = static_field(None)
    batch_size: int = static_field(DEFAULT_BATCH)
    chunk_size: int = static_field(DEFAULT_CHUNK)
    antithetic: bool = static_field(False)
    sharding: PointSharding | None = static_field(None)

    @property
    def num_targets(self) -> int:
        return self.points.shape[0]

    def sample(self, key, num: int) -> Array:
        if self.sampler is None:
            r = self.points.shape[1]
            if self.antithetic and num % 2 == 0:
                z = jax.random.normal(key, (num // 2, r), self.points.dtype)
                return jnp.concatenate([z, -z], axis=0)
            return jax.random.normal(key, (num, r), self.points.dtype)
        return self.sampler(key, num).astype(self.points.dtype)

    def source_scale(self) -> Array:
        """RMS norm of a centred source sample (``sqrt(r)`` for the standard Gaussian)."""
        if self.sampler is None:
            return jnp.sqrt(jnp.asarray(self.points.shape[1], self.points.dtype))
        z = self.sample(jax.random.key(12345), 4096)
        return jnp.sqrt(jnp.mean(jnp.sum((z - z.mean(0)) ** 2, axis=-1)))

    def voronoi_init(self) -> Array:
        """Heights ``-|y_i|^2 / (2 s)`` whose cells are the Voronoi cells of the targets seen at ``s z``,
        with ``s`` matching the source spread to the targets' spread; every cell starts non-empty."""
        y2 = jnp.sum(self.points**2, axis=-1)
        s = jnp.sqrt(jnp.sum(self.weights * y2)) / self.source_scale()
        h = -y2 / (2.0 * jnp.maximum(s, 1e-30))
        return h - h.mean()


class _Pass(NamedTuple):
    masses: Array  # (n,) hard cell masses on the sample
    energy: Array  # sum nu h - mean max score
    hess: Any  # dense (n, n) kernel Laplacian, or edges (i, j, w) of the first samples, or None
    median_gap: Array  # median top-2 score gap on the first batch


def _edge_weights(gap, bandwidth):
    x = gap / bandwidth
    return jax.nn.sigmoid(x) * jax.nn.sigmoid(-x) / bandwidth


def _hard_pass(prob: SemidiscreteProblem, h, key, nb, hess: str | None = None, n_hess_batches=1,
               bandwidth: float = 0.5) -> _Pass:
    """Hard cell masses of ``h`` on ``nb`` batches regenerated from ``key`` (same key -> same sample).

    With ``hess`` set, the first ``min(nb, n_hess_batches)`` batches also give the kernel estimate ``L`` of
    ``-Hess E`` (the weighted Laplacian of the cell-adjacency graph, built from each sample's top-2 cells
    and score gap): ``hess="dense"`` accumulates the ``(n, n)`` matrix batch by batch, ``hess="edges"``
    returns the weighted edge list of those batches (for matrix-free CG when ``n`` is large). The kernel
    acts on the distance to the facet, ``gap / |x_i - x_j|``, with bandwidth ``bandwidth`` times its median
    on the first batch.
    """
    n = prob.num_targets
    B = prob.batch_size
    dtype = prob.points.dtype
    ones = jnp.ones((B,), dtype)

    def sample(b):
        return prob.sample(jax.random.fold_in(key, b), B)

    v1, i1, v2, i2 = K.top2(sample(0), prob.points, h, prob.chunk_size, sharding=prob.sharding)

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
        return jnp.where(jnp.isfinite(u) & jnp.isfinite(dx), _edge_weights(u, bw) / dx, 0.0)

    counts = jax.ops.segment_sum(ones, i1, n)
    esum = jnp.sum(v1)
    nh = jnp.minimum(nb, n_hess_batches)
    out = None
    start = jnp.asarray(1)
    if hess == "dense":

        def add_edges(L, i, j, w):
            return L.at[i, j].add(-w).at[j, i].add(-w).at[i, i].add(w).at[j, j].add(w)

        def hess_body(b, carry):
            counts, esum, L = carry
            v1, i1, v2, i2 = K.top2(sample(b), prob.points, h, prob.chunk_size, sharding=prob.sharding)
            return counts + jax.ops.segment_sum(ones, i1, n), esum + jnp.sum(v1), add_edges(L, i1, i2, weights(v1 - v2, i1, i2))

        L0 = add_edges(jnp.zeros((n, n), dtype), i1, i2, weights(v1 - v2, i1, i2))
        counts, esum, L = jax.lax.fori_loop(1, jnp.maximum(nh, 1), hess_body, (counts, esum, L0))
        out = L / (jnp.maximum(nh, 1) * B).astype(dtype)
        start = jnp.maximum(nh, 1)
    elif hess == "edges":
        n_edge_batches = int(n_hess_batches)

        def hess_batch(b):
            def live(_):
                v1, i1, v2, i2 = K.top2(sample(b), prob.points, h, prob.chunk_size, sharding=prob.sharding)
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
        out = (hi, hj, hw / (nh * B).astype(dtype))
        start = jnp.asarray(n_edge_batches)

    def body(b, carry):
        counts, esum = carry
        c, e = K.counts(sample(b), prob.points, h, prob.chunk_size, sharding=prob.sharding)
        return counts + c, esum + e

    counts, esum = jax.lax.fori_loop(start, jnp.maximum(nb, start), body, (counts, esum))
    total = (nb * B).astype(dtype)
    masses = counts / total
    energy = jnp.dot(prob.weights, h) - esum / total
    return _Pass(masses, energy, out, med)


def _max_rel(masses, weights):
    return jnp.max(jnp.abs(masses - weights) / weights)


def _history(max_iterations, dtype):
    return {
        "max_relative_error": jnp.full((max_iterations,), jnp.nan, dtype),
        "energy": jnp.full((max_iterations,), jnp.nan, dtype),
        "num_samples": jnp.zeros((max_iterations,), jnp.int32),
        "step_size": jnp.full((max_iterations,), jnp.nan, dtype),
    }


def _record(hist, it, err, energy, num_samples, step):
    i = jnp.minimum(it, hist["energy"].shape[0] - 1)
    return {
        "max_relative_error": hist["max_relative_error"].at[i].set(err),
        "energy": hist["energy"].at[i].set(energy),
        "num_samples": hist["num_samples"].at[i].set(num_samples.astype(jnp.int32)),
        "step_size": hist["step_size"].at[i].set(step),
    }


def _zscore(n: int) -> float:
    """A typical maximum of ``n`` standard normal deviations, ``sqrt(2 log 2n)``."""
    return math.sqrt(2.0 * math.log(2.0 * n))


def required_samples(weights_min: float, n: int, tol: float, noise_fraction: float) -> int:
    """Samples for which the Monte Carlo noise of the worst cell's relative mass is ``noise_fraction*tol``
    at the ``sqrt(2 log 2n)`` level: ``(z / (noise_fraction tol))^2 / min nu``."""
    return int(math.ceil((_zscore(n) / (noise_fraction * tol)) ** 2 / weights_min))


# ----------------------------------------------------------------------------------------------------
# Our solver: damped Newton with a kernel Hessian and geometric sample growth.
# ----------------------------------------------------------------------------------------------------


MAX_STAGES = 24
MIN_RIDGE = 1e-3


class NewtonSchedule(NamedTuple):
    """Per-stage batch counts and in-sample tolerances (padded to ``MAX_STAGES``), and the last stage."""

    num_batches: Array
    tolerances: Array
    last: Array
    check: Array  # ``tol``: stop at a stage change whose fresh pass certifies it (see ``NewtonSolver``)
    noise: Array  # per stage: ``check_fraction z_n max_i sqrt(nu_i (1 - nu_i) / N_s) / nu_i``
    single: Array  # per stage: fresh errors below this take one Newton step and move to the next stage


class NewtonState(NamedTuple):
    heights: Array
    key: Array
    stage: Array
    iteration: Array
    masses: Array
    energy: Array
    hess: Any  # dense kernel Laplacian (n <= dense_max) or weighted edges, at the current heights
    error: Array  # in-sample max relative error of the current heights
    ridge: Array  # Levenberg-Marquardt ridge, relative to the mean Hessian diagonal
    done: Array
    converged: Array
    history: dict


@pytree_dataclass
class NewtonSolver:
    """Damped Newton on the Monte Carlo semi-dual with a kernel Hessian and sample growth (ours).

    Stage ``s`` uses a fixed sample of ``N_s`` source points (regenerated from one key per stage; antithetic
    pairs for the standard Gaussian), ``N_s`` growing by ``growth`` up to
    ``N_final = (z_n / (noise_fraction tol))^2 / min(nu)`` so that the final sample resolves every cell mass
    to ``noise_fraction * tol`` (``z_n = sqrt(2 log 2n)``).

    * Newton direction: ``(L + lambda) delta = nu - m`` with ``L`` the kernel estimate of ``-Hess E`` (facet
      integrals of the density over ``|x_i - x_j|``, from each sample's top-2 cells and its distance to
      their facet; bandwidth ``bandwidth`` times the median distance) and a Levenberg-Marquardt ridge
      ``lambda`` (raised 10x after a rejected step, lowered after full steps).
    * Globalisation: a trial step is accepted if the sample energy rises (Armijo) or the L1 residual
      drops by ``alpha / 4``, and no cell shrinks below half the smallest current or target mass
      (Kitagawa-Merigot-Thibert); else ``alpha`` halves, up to ``max_backtracks`` times.
    * A stage ends when the in-sample max relative error is below ``max(insample_fraction tol,
      stage_fraction z_n / sqrt(N_s min nu))`` (fitting a sample beyond its resolution is wasted work).
    * Noise regime: when the error is within ``single_step_ratio`` times the stage's noise level, one full
      Newton step is taken and evaluated on the next stage's fresh sample (one pass per stage). The last
      stage always iterates (``single_step_last=False``): unevaluated final steps were measurably less
      accurate in 2-D.
    * Early stop: the first pass of a stage evaluates heights on a sample they were not fitted to; if
      that fresh error plus ``check_fraction`` times the noise level ``z_n max_i sqrt(nu_i (1-nu_i)/N)/nu_i``
      is at most ``tol``, the solve stops (an upper confidence bound).

    Run it through :func:`semidiscrete_ot`, or drive ``init``/``step`` yourself (``schedule`` first).

    Attributes:
        growth: sample growth factor per stage. noise_fraction, insample_fraction, stage_fraction,
            check_fraction, single_step_ratio, single_step_last: see above.
        min_samples_per_cell: expected samples in the smallest cell at the first stage.
        final_samples: overrides ``N_final``. max_samples: cap on ``N_final``.
        hessian_samples: samples whose top-2 gaps build the Hessian (``None``: ``max(1024 n, 4 batches)`` for
            the dense solve, ``max(256 n, 4 batches)`` for the edge list).
        bandwidth: kernel bandwidth as a fraction of the median distance to the nearest facet.
        dense_max: largest ``n`` for the dense solve; Jacobi-CG with edge matvecs above.
        max_iterations: total iterations (Newton steps plus stage changes). max_backtracks: per step.
    """

    growth: int = static_field(4)
    noise_fraction: float = static_field(0.6)
    insample_fraction: float = static_field(0.3)
    stage_fraction: float = static_field(0.5)
    check_fraction: float = static_field(1.0)
    single_step_ratio: float = static_field(3.0)
    single_step_last: bool = static_field(False)
    min_samples_per_cell: int = static_field(32)
    final_samples: int | None = static_field(None)
    max_samples: int = static_field(2**27)
    hessian_samples: int | None = static_field(None)
    bandwidth: float = static_field(0.15)
    dense_max: int = static_field(2048)
    cg_iterations: int = static_field(100)
    max_iterations: int = static_field(100)
    max_backtracks: int = static_field(6)

    name = "newton"

    def schedule(self, prob: SemidiscreteProblem, tol: float) -> NewtonSchedule:
        """The stage schedule for ``tol`` (host-side; needs concrete weights)."""
        if not V.is_concrete(prob.weights):
            raise ValueError("NewtonSolver needs concrete `weights` to plan its sample schedule.")
        wmin = float(np.min(np.asarray(prob.weights)))
        n, B = prob.num_targets, prob.batch_size
        if self.final_samples is not None:
            n_final = self.final_samples
        else:
            n_final = min(required_samples(wmin, n, tol, self.noise_fraction), self.max_samples)
        nb_final = max(1, math.ceil(n_final / B))
        nb0 = max(1, math.ceil(self.min_samples_per_cell / wmin / B))
        nbs = [nb_final]
        while nbs[-1] // self.growth >= nb0 and len(nbs) < MAX_STAGES:
            nbs.append(nbs[-1] // self.growth)
        nbs = nbs[::-1]
        zn = _zscore(n)
        tols = [max(self.insample_fraction * tol, self.stage_fraction * zn / math.sqrt(nb * B * wmin))
                for nb in nbs[:-1]]
        tols.append(self.insample_fraction * tol)
        pad = MAX_STAGES - len(nbs)
        dtype = prob.points.dtype
        return NewtonSchedule(
            jnp.asarray(nbs + [nb_final] * pad, jnp.int32),
            jnp.asarray(tols + [tols[-1]] * pad, dtype),
            jnp.asarray(len(nbs) - 1, jnp.int32),
            jnp.asarray(tol, dtype),
            jnp.asarray([self.check_fraction * zn * math.sqrt((1 - wmin) / (nb * B * wmin))
                         for nb in nbs + [nb_final] * pad], dtype),
            jnp.asarray([self.single_step_ratio * zn * math.sqrt((1 - wmin) / (nb * B * wmin))
                         for nb in nbs + [nb_final] * pad], dtype),
        )

    def _n_hess_batches(self, prob):
        n, B = prob.num_targets, prob.batch_size
        default = (1024 if n <= self.dense_max else 256) * n
        hs = self.hessian_samples if self.hessian_samples is not None else max(default, 4 * B)
        return max(1, math.ceil(hs / B))

    def init(self, prob: SemidiscreteProblem, sched: NewtonSchedule, *, key, init_heights=None) -> NewtonState:
        """State before the first stage (``stage = -1``); the first ``step`` draws stage 0's sample."""
        h = prob.voronoi_init() if init_heights is None else init_heights - jnp.mean(init_heights)
        dtype = h.dtype
        n = prob.num_targets
        if n <= self.dense_max:
            hess = jnp.zeros((n, n), dtype)
        else:
            e = self._n_hess_batches(prob) * prob.batch_size
            hess = (jnp.zeros((e,), jnp.int32), jnp.zeros((e,), jnp.int32), jnp.zeros((e,), dtype))
        return NewtonState(
            h, key, jnp.asarray(-1, jnp.int32), jnp.asarray(0, jnp.int32), jnp.zeros((n,), dtype),
            jnp.asarray(-jnp.inf, dtype), hess, jnp.asarray(jnp.inf, dtype), jnp.asarray(MIN_RIDGE, dtype),
            jnp.asarray(False), jnp.asarray(False), _history(self.max_iterations, dtype),
        )

    def _pass(self, prob, h, key, nb):
        mode = "dense" if prob.num_targets <= self.dense_max else "edges"
        return _hard_pass(prob, h, key, nb, mode, self._n_hess_batches(prob), self.bandwidth)

    def step(self, prob: SemidiscreteProblem, sched: NewtonSchedule, state: NewtonState) -> NewtonState:
        """One iteration, one of:

        * a stage change (a pass of the current heights on the next, larger sample) once the current
          stage's tolerance is met;
        * a single step: when the error is within ``single_step_ratio`` times the stage's noise level,
          further iterations on this sample would mostly fit its noise, so one full Newton step is taken
          and evaluated directly on the next stage's fresh sample (at the last stage the step ends the
          solve, unevaluated: the certificate checks it on an independent sample);
        * otherwise a damped Newton step on the current sample (passes at trial heights until the L1
          residual drops by ``alpha / 4`` or ``max_backtracks`` is reached).
        """
        s = state
        dtype = s.heights.dtype
        cur = jnp.maximum(s.stage, 0)
        stage_ok = (s.stage < 0) | (s.error <= sched.tolerances[cur])
        at_last = s.stage >= sched.last
        single = (s.stage >= 0) & ~stage_ok & (s.error <= sched.single[cur]) & (~at_last | self.single_step_last)
        finished = stage_ok & at_last
        last_single = single & at_last
        advance = (stage_ok & ~at_last) | (single & ~at_last)
        stage = jnp.where(advance, s.stage + 1, s.stage)
        nb = sched.num_batches[jnp.maximum(stage, 0)]
        key = jax.random.fold_in(s.key, stage)
        r = prob.weights - s.masses
        delta = jax.lax.cond(stage_ok, lambda: jnp.zeros_like(s.heights), lambda: self._direction(prob, s, r))
        r1 = jnp.sum(jnp.abs(r))

        slope = jnp.dot(r, delta)  # directional derivative of the sample energy along delta
        min_mass = 0.5 * jnp.minimum(jnp.min(s.masses), jnp.min(prob.weights))

        def cond(c):
            _, k, ok, _ = c
            return ~ok & (k <= self.max_backtracks)

        def body(c):
            alpha, k, _, _ = c
            p = self._pass(prob, s.heights + alpha * delta, key, nb)
            ascent = p.energy >= s.energy + 0.25 * alpha * slope
            decrease = jnp.sum(jnp.abs(prob.weights - p.masses)) <= (1.0 - alpha / 4.0) * r1
            # Kitagawa-Merigot-Thibert: no cell may shrink below half the smallest current (or target) mass,
            # so no cell is emptied (an empty cell has no facets, hence no curvature to steer it back)
            keeps_cells = jnp.min(p.masses) >= min_mass
            ok = advance | ((ascent | decrease) & keeps_cells)
            return jnp.where(ok, alpha, alpha / 2.0), k + 1, ok, p

        p0 = _Pass(s.masses, s.energy, s.hess, jnp.zeros((), dtype))
        one = jnp.ones((), dtype)
        stop = finished | last_single
        alpha, _, accepted, p = jax.lax.while_loop(cond, body, (one, jnp.asarray(0), stop, p0))
        # no acceptable step: stay, keep the current sample's pass, and raise the ridge (towards a
        # scaled gradient step); a full step lowers it again
        rejected = ~accepted
        alpha = jnp.where(rejected, 0.0, alpha)
        p = jax.tree_util.tree_map(lambda a, b: jnp.where(rejected, a, b), p0, p)
        ridge = jnp.where(rejected, s.ridge * 10.0,
                          jnp.where(alpha >= 1.0, jnp.maximum(s.ridge / 4.0, MIN_RIDGE), s.ridge))
        h_new = s.heights + alpha * delta
        h_new = h_new - jnp.mean(h_new)
        err = jnp.where(stop, s.error, _max_rel(p.masses, prob.weights))
        # a stage change evaluates the heights on a sample never used for them: a fresh check
        # (an upper confidence bound: the fresh error plus the sample's noise level)
        fresh_ok = advance & (s.stage >= 0) & (err + sched.noise[stage] <= sched.check)
        hist = jax.lax.cond(
            finished, lambda: s.history,
            lambda: _record(s.history, s.iteration, err, p.energy, nb * prob.batch_size,
                            jnp.where(advance & ~single, 0.0, alpha)),
        )
        it = jnp.where(finished, s.iteration, s.iteration + 1)
        done = stop | fresh_ok
        return NewtonState(
            h_new, s.key, stage, it, p.masses, p.energy, p.hess, err, ridge,
            done | (it >= self.max_iterations), done, hist,
        )

    def _direction(self, prob, s: NewtonState, r):
        """Solves ``(L + diag(lambda)) delta = r`` with ``L`` the kernel estimate of ``-Hess E``."""
        n = prob.num_targets
        if n <= self.dense_max:
            L = s.hess
            diag = jnp.diagonal(L)
        else:
            i, j, w = s.hess
            diag = jax.ops.segment_sum(w, i, n) + jax.ops.segment_sum(w, j, n)
        mean_diag = jnp.maximum(jnp.mean(diag), 1e-30)
        # ridge; cells with (almost) no boundary samples fall back to a scaled gradient step
        lam = s.ridge * mean_diag + jnp.where(diag < 1e-3 * mean_diag, mean_diag, 0.0)
        if n <= self.dense_max:
            delta = jax.scipy.linalg.solve(L + jnp.diag(lam), r, assume_a="pos")
        else:

            def matvec(v):
                e = w * (v[i] - v[j])
                return jax.ops.segment_sum(e, i, n) - jax.ops.segment_sum(e, j, n) + lam * v

            pre = 1.0 / (diag + lam)
            delta, _ = jax.scipy.sparse.linalg.cg(
                matvec, r, M=lambda v: pre * v, maxiter=self.cg_iterations, tol=1e-4
            )
        return delta - jnp.mean(delta)

    def solve(self, prob: SemidiscreteProblem, *, tol: float, key, init_heights=None):
        """Runs ``init`` then ``step`` in a ``lax.while_loop``; returns ``(heights, diagnostics)``."""
        return _jit_newton(self, prob, self.schedule(prob, tol), key, init_heights)


def _newton_run(solver, prob, sched, key, init_heights):
    state = solver.init(prob, sched, key=key, init_heights=init_heights)
    state = jax.lax.while_loop(lambda s: ~s.done, lambda s: solver.step(prob, sched, s), state)
    diag = SemidiscreteDiagnostics(
        iterations=state.iteration,
        converged=state.converged,
        insample_error=state.error,
        final_samples=sched.num_batches[jnp.maximum(state.stage, 0)] * prob.batch_size,
        history=state.history,
        solver=solver.name,
    )
    return state.heights, diag


_jit_newton = jax.jit(_newton_run, static_argnums=(0,))


# ----------------------------------------------------------------------------------------------------
# The paper's Algorithm 1: Adam (beta2 = 0.5) on Monte Carlo cell masses with sample doubling.
# ----------------------------------------------------------------------------------------------------


class AdamState(NamedTuple):
    heights: Array
    opt_state: Any
    key: Array
    iteration: Array
    num_batches: Array
    best_energy: Array
    stall: Array
    lr_scale: Array
    error: Array
    done: Array
    converged: Array
    history: dict


@pytree_dataclass
class AdamSolver:
    """The paper's Algorithm 1 (AE-OT lineage), as reported in ``science.md`` section 3.

    Each step draws a fresh Monte Carlo sample of the current size, computes the hard cell masses and the
    energy, and takes an Adam step (``beta1 = 0.9``, ``beta2 = 0.5``) on ``-E``; when the energy has not
    improved (by ``stall_rtol`` relative) for ``patience`` steps the sample size doubles. Our additions,
    both documented: the learning rate is scaled by the median top-2 gap of the first sample
    (``learning_rate`` is relative), and it can be multiplied by ``lr_decay`` at every doubling (the default
    ``lr_decay=1.0`` is the literal algorithm; ``0.5`` converges faster at tight tolerances). Stops when the in-sample max relative error is below
    ``insample_fraction * tol`` on a sample of at least ``(z_n/(noise_fraction tol))^2/min nu`` points,
    or after ``max_iterations``.
    """

    learning_rate: float = static_field(0.05)
    beta1: float = static_field(0.9)
    beta2: float = static_field(0.5)
    initial_samples_per_cell: int = static_field(8)
    patience: int = static_field(10)
    stall_rtol: float = static_field(1e-4)
    lr_decay: float = static_field(1.0)
    noise_fraction: float = static_field(0.6)
    insample_fraction: float = static_field(0.5)
    max_samples: int = static_field(2**27)
    max_iterations: int = static_field(2000)

    name = "adam"

    def _sizes(self, prob, tol, wmin):
        B = prob.batch_size
        nb0 = max(1, math.ceil(self.initial_samples_per_cell / wmin / B))
        nb_final = max(1, math.ceil(min(required_samples(wmin, prob.num_targets, tol, self.noise_fraction),
                                         self.max_samples) / B))
        return nb0, max(nb0, nb_final)

    def _optimizer(self):
        return optax.scale_by_adam(b1=self.beta1, b2=self.beta2)

    def init(self, prob, *, tol, key, init_heights=None):
        nb0, _ = self._sizes(prob, tol, float(np.min(np.asarray(prob.weights))))
        return self._init(prob, key, init_heights, nb0)

    def _init(self, prob, key, init_heights, nb0):
        h = prob.voronoi_init() if init_heights is None else init_heights - jnp.mean(init_heights)
        k_init, key = jax.random.split(key)
        gap = _hard_pass(prob, h, k_init, jnp.asarray(nb0)).median_gap
        dtype = h.dtype
        return AdamState(
            h, self._optimizer().init(h), key, jnp.asarray(0), jnp.asarray(nb0),
            jnp.asarray(-jnp.inf, dtype), jnp.asarray(0), self.learning_rate * gap, jnp.asarray(jnp.inf, dtype),
            jnp.asarray(False), jnp.asarray(False), _history(self.max_iterations, dtype),
        )

    def step(self, prob, state, *, tol):
        _, nbf = self._sizes(prob, tol, float(np.min(np.asarray(prob.weights))))
        return self._step(prob, state, tol, nbf)

    def _step(self, prob, s: AdamState, tol, nb_final):
        p = _hard_pass(prob, s.heights, jax.random.fold_in(s.key, s.iteration), s.num_batches)
        grad = p.masses - prob.weights  # gradient of -E
        upd, opt_state = self._optimizer().update(grad, s.opt_state, s.heights)
        h = s.heights - s.lr_scale * upd
        h = h - jnp.mean(h)
        err = _max_rel(p.masses, prob.weights)
        improved = p.energy > s.best_energy + self.stall_rtol * jnp.abs(s.best_energy)
        stall = jnp.where(improved, 0, s.stall + 1)
        best = jnp.maximum(s.best_energy, p.energy)
        double = (stall >= self.patience) & (s.num_batches < nb_final)
        nb = jnp.where(double, jnp.minimum(2 * s.num_batches, nb_final), s.num_batches)
        lr = jnp.where(double, s.lr_scale * self.lr_decay, s.lr_scale)
        stall = jnp.where(double, 0, stall)
        best = jnp.where(double, -jnp.inf, best)
        conv = (err <= self.insample_fraction * tol) & (s.num_batches >= nb_final)
        hist = _record(s.history, s.iteration, err, p.energy, s.num_batches * prob.batch_size, lr)
        it = s.iteration + 1
        # on convergence keep the heights the sample was evaluated at
        h = jnp.where(conv, s.heights, h)
        return AdamState(h, opt_state, s.key, it, nb, best, stall, lr, err,
                         conv | (it >= self.max_iterations), conv, hist)

    def solve(self, prob, *, tol, key, init_heights=None):
        nb0, nbf = self._sizes(prob, tol, float(np.min(np.asarray(prob.weights))))
        return _jit_adam(self, prob, key, init_heights, tol, nb0, nbf)


def _adam_run(solver, prob, key, init_heights, tol, nb0, nbf):
    state = solver._init(prob, key, init_heights, nb0)
    state = jax.lax.while_loop(lambda s: ~s.done, lambda s: solver._step(prob, s, tol, nbf), state)
    diag = SemidiscreteDiagnostics(
        iterations=state.iteration, converged=state.converged, insample_error=state.error,
        final_samples=state.num_batches * prob.batch_size, history=state.history, solver=solver.name,
    )
    return state.heights, diag


_jit_adam = jax.jit(_adam_run, static_argnums=(0, 4, 5, 6))


# ----------------------------------------------------------------------------------------------------
# ott-jax's SemidiscreteSolver.
# ----------------------------------------------------------------------------------------------------


@pytree_dataclass
class OTTSolver:
    """ott-jax 0.6 ``SemidiscreteSolver`` with settings that converge for the hard (``epsilon=0``) map.

    SGD on ott's dual ``g`` with step ``lr0 / (1 + t / decay_steps)^(2/3)`` (``lr0 = learning_rate * n *``
    the median top-2 gap in ``g`` units, since ott's gradient entries are ``O(1/n)``) and ott's exponential
    moving average of the iterates (``potential_ema``). Stops on ott's chi-square marginal error
    ``<= (tol / (2 z_n))^2``, evaluated every ``error_eval_every`` steps. Heights are converted by
    ``h_j = (g_j - |y_j|^2) / 2``.
    """

    num_iterations: int = static_field(20000)
    batch_size: int = static_field(1024)
    learning_rate: float = static_field(1.0)
    decay_steps: float = static_field(100.0)
    potential_ema: float = static_field(0.99)
    error_eval_every: int = static_field(500)
    error_batch_size: int = static_field(16384)
    error_num_repeats: int = static_field(4)
    threshold: float | None = static_field(None)

    name = "ott"

    def solve(self, prob: SemidiscreteProblem, *, tol: float, key, init_heights=None):
        return _jit_ott(self, prob, key, init_heights, tol)


def _ott_run(solver: OTTSolver, prob, key, init_heights, tol):
    with warnings.catch_warnings():  # ott imports the deprecated jaxopt
        warnings.simplefilter("ignore", DeprecationWarning)
        from ott.geometry import semidiscrete_pointcloud as sdpc
        from ott.problems.linear import semidiscrete_linear_problem as sdlp
        from ott.solvers.linear import semidiscrete as sd

    y = prob.points
    n = prob.num_targets
    y2 = jnp.sum(y * y, axis=-1)
    h0 = prob.voronoi_init() if init_heights is None else init_heights
    g0 = 2.0 * h0 + y2
    k_gap, key = jax.random.split(key)
    gap = _hard_pass(prob, h0, k_gap, jnp.asarray(1)).median_gap
    lr0 = solver.learning_rate * n * 2.0 * gap
    sched = lambda t: lr0 / (1.0 + t / solver.decay_steps) ** (2.0 / 3.0)
    if prob.sampler is None:
        sampler = lambda k, shape, dtype: jax.random.normal(k, shape, dtype)
    else:
        sampler = lambda k, shape, dtype: prob.sampler(k, shape[0]).astype(dtype)
    geom = sdpc.SemidiscretePointCloud(sampler, y, epsilon=0.0)
    ot_prob = sdlp.SemidiscreteLinearProblem(geom, b=prob.weights)
    thr = solver.threshold if solver.threshold is not None else (tol / (2.0 * _zscore(n))) ** 2
    s = sd.SemidiscreteSolver(
        num_iterations=solver.num_iterations, batch_size=solver.batch_size, optimizer=optax.sgd(sched),
        error_eval_every=solver.error_eval_every, error_batch_size=solver.error_batch_size,
        error_num_repeats=solver.error_num_repeats, threshold=thr, potential_ema=solver.potential_ema,
    )
    out = s(key, ot_prob, g_init=g0)
    h = 0.5 * (out.g - y2)
    h = h - jnp.mean(h)
    hist = _history(1, y.dtype)
    err = out.errors[jnp.maximum(out.it // solver.error_eval_every - 1, 0)]
    diag = SemidiscreteDiagnostics(
        iterations=out.it, converged=out.converged, insample_error=err,
        final_samples=out.it * solver.batch_size, history=hist | {"chi2_error": out.errors}, solver=solver.name,
    )
    return h, diag


_jit_ott = jax.jit(_ott_run, static_argnums=(0, 4))


# ----------------------------------------------------------------------------------------------------
# Results.
# ----------------------------------------------------------------------------------------------------


@pytree_dataclass
class SemidiscreteDiagnostics:
    """Solver diagnostics (no wall times). ``history`` holds per-iteration arrays (``max_relative_error``
    in-sample, ``energy``, ``num_samples``, ``step_size``; NaN/0 past ``iterations``)."""

    iterations: Int[Array, ""]
    converged: Array
    insample_error: Float[Array, ""]
    final_samples: Int[Array, ""]
    history: dict
    solver: str = static_field("")


class SemidiscreteCertificate(NamedTuple):
    """Accuracy certificate measured on a fresh sample, independent of the solve.

    Attributes:
        max_relative_error: ``max_i |m_i - nu_i| / nu_i`` with ``m_i`` the Monte Carlo cell masses.
        standard_error: binomial standard error of that relative error (for the worst cell).
        noise_floor: ``sqrt(2 log 2n) * max_i sqrt(nu_i (1 - nu_i) / M) / nu_i``, the max relative error
            Monte Carlo noise alone produces for a perfect solution; a certificate cannot resolve errors
            below it (for large ``n`` this is what limits what can be certified).
        num_samples: the certificate's sample size ``M``.
        masses: ``(n,)`` the measured cell masses (the pushforward's weights).
    """

    max_relative_error: Float[Array, ""]
    standard_error: Float[Array, ""]
    noise_floor: Float[Array, ""]
    num_samples: Int[Array, ""]
    masses: Float[Array, " n"]


@pytree_dataclass
class SemidiscreteMap:
    """The semi-discrete OT map ``grad u_h`` from the source to ``sum_i nu_i delta_{x_i}`` (a PyTree).

    ``u_h(z) = max_i (<z, x_i> + h_i)`` with ``heights`` of mean zero. Query methods accept ``z`` of shape
    ``(..., d)``, stream over target chunks, and work inside ``jit``.
    """

    targets: Float[Array, "n d"]
    weights: Float[Array, " n"]
    heights: Float[Array, " n"]
    certificate: SemidiscreteCertificate | None = None
    diagnostics: SemidiscreteDiagnostics | None = None
    chunk_size: int = static_field(DEFAULT_CHUNK)
    query_chunk_size: int = static_field(DEFAULT_BATCH)
    sharding: PointSharding | None = static_field(None)

    @property
    def num_targets(self) -> int:
        return self.targets.shape[0]

    @property
    def dim(self) -> int:
        return self.targets.shape[1]

    def _prep(self, z):
        z = V.as_float_array(z, "z")
        if z.ndim < 1 or z.shape[-1] != self.dim:
            raise ValueError(f"`z` must have shape (..., {self.dim}), got {tuple(z.shape)}.")
        dtype = jnp.result_type(z.dtype, self.targets.dtype)
        z = z.astype(dtype)
        c = self.weights.astype(dtype) @ self.targets.astype(dtype)
        return z.reshape(-1, self.dim), z.shape[:-1], (self.targets.astype(dtype) - c), c, dtype

    def potential(self, z: Float[ArrayLike, "... d"], tau: float = 0.0) -> Float[Array, "..."]:
        """``u_h(z)``, or for ``tau > 0`` the smoothed ``tau log sum_i exp((<z,x_i>+h_i)/tau) - tau log n``,
        which satisfies ``u_h - tau log n <= u_tau <= u_h``."""
        tau = _check_tau(tau)
        zf, batch, xc, c, dtype = self._prep(z)
        h = self.heights.astype(dtype)
        if _is_zero(tau):
            out = K.map_queries(lambda q: K.top1(q, xc, h, self.chunk_size, sharding=self.sharding)[0], zf, self.query_chunk_size)
        else:
            lse = K.map_queries(lambda q: K.soft(q, xc, h, tau, self.chunk_size, sharding=self.sharding)[0], zf, self.query_chunk_size)
            out = lse - tau * math.log(self.num_targets)
        return (out + zf @ c).reshape(batch)

    def assign(self, z: Float[ArrayLike, "... d"]) -> Int[Array, "..."]:
        """Index of the Laguerre cell containing ``z``."""
        zf, batch, xc, _, dtype = self._prep(z)
        h = self.heights.astype(dtype)
        return K.map_queries(lambda q: K.top1(q, xc, h, self.chunk_size, sharding=self.sharding)[1], zf, self.query_chunk_size).reshape(
            batch
        )

    def transport(self, z: Float[ArrayLike, "... d"], tau: float = 0.0) -> Float[Array, "... d"]:
        """The hard map ``x_{assign(z)}`` (``tau = 0``) or the smoothed map ``sum_i softmax_i x_i``."""
        tau = _check_tau(tau)
        zf, batch, xc, c, dtype = self._prep(z)
        if _is_zero(tau):
            return self.targets.astype(dtype)[self.assign(zf)].reshape(batch + (self.dim,))
        h = self.heights.astype(dtype)
        y = K.map_queries(lambda q: K.soft(q, xc, h, tau, self.chunk_size, sharding=self.sharding)[1], zf, self.query_chunk_size)
        return (y + c).reshape(batch + (self.dim,))

    def cell_masses(self, *, key, num_samples: int, source=None) -> Array:
        """Monte Carlo cell masses ``m_i`` of the source (default ``N(0, I)``) under this map."""
        return cell_masses(self.targets, self.heights, weights=self.weights, key=key,
                           num_samples=num_samples, source=source, chunk_size=self.chunk_size,
                           sharding=self.sharding)


def _is_zero(tau) -> bool:
    return V.is_concrete(tau) and float(tau) == 0.0


def _check_tau(tau):
    if V.is_concrete(tau):
        t = float(np.asarray(tau))
        if not np.isfinite(t) or t < 0:
            raise ValueError(f"`tau` must be a finite number >= 0, got {tau!r}.")
        return t
    return tau


# ----------------------------------------------------------------------------------------------------
# Validation, problem construction, public entry points.
# ----------------------------------------------------------------------------------------------------


def _check_targets(targets, weights):
    x = V.as_float_array(targets, "targets")
    V.check_ndim(x, 2, "targets", "(n, d)")
    n, d = x.shape
    if n < 1 or d < 1:
        raise ValueError(f"`targets` must have at least one point and one dimension, got {x.shape}.")
    V.check_finite(x, "targets")
    xn = np.asarray(x, dtype=np.float64)
    # duplicates: sort by a random projection, then compare exact rows among equal projections
    proj = xn @ np.random.default_rng(0).standard_normal(d)
    order = np.argsort(proj, kind="stable")
    same = np.nonzero(np.diff(proj[order]) == 0)[0]
    for k in same:
        a, b = order[k], order[k + 1]
        if np.array_equal(xn[a], xn[b]):
            raise ValueError(
                f"`targets` has duplicate points (rows {min(a, b)} and {max(a, b)}); merge them and add "
                "their weights (semi-discrete OT needs distinct targets)."
            )
    if weights is None:
        w = jnp.full((n,), 1.0 / n, x.dtype)
    else:
        w = V.as_float_array(weights, "weights", dtype=x.dtype)
        if w.shape != (n,):
            raise ValueError(f"`weights` must have shape ({n},) to match `targets`, got {w.shape}.")
        V.check_finite(w, "weights")
        wn = np.asarray(w, dtype=np.float64)
        if np.any(wn < 0):
            raise ValueError(f"`weights` must be positive; min is {wn.min():.3g}.")
        if np.any(wn == 0):
            raise ValueError(
                f"`weights` has {int(np.sum(wn == 0))} zero entries: empty cells requested. Drop those targets."
            )
        tol = 1e-9 if x.dtype == jnp.float64 else 1e-5
        if abs(wn.sum() - 1.0) > tol:
            raise ValueError(f"`weights` must sum to one, got {wn.sum():.10g}; normalise them first.")
    return x, w


def _make_sampler(source, d, dtype, key):
    """``None`` (standard Gaussian), a GaussianMeasure, or ``sampler(key, num) -> (num, d)``."""
    if source is None:
        return None
    if isinstance(source, GaussianMeasure):
        if source.dim != d:
            raise ValueError(f"`source` has dimension {source.dim} but `targets` have dimension {d}.")
        g = source
        return lambda k, num: g.sample(k, num)
    if not callable(source):
        raise ValueError("`source` must be None (standard Gaussian), a GaussianMeasure or a callable "
                         f"sampler(key, num_samples) -> (num_samples, d); got {type(source).__name__}.")
    try:
        shape = jax.eval_shape(lambda k: source(k, 4), key)
    except Exception as exc:
        raise ValueError(f"`source` could not be called as sampler(key, num_samples): {exc}") from exc
    if tuple(shape.shape) != (4, d):
        raise ValueError(
            f"`source` sampler returns shape {tuple(shape.shape)} for 4 samples; the targets' dimension "
            f"requires (4, {d})."
        )
    return source


def _make_problem(x, w, sampler, batch_size, chunk_size, sharding=None) -> SemidiscreteProblem:
    c = w @ x
    xc = x - c
    n, d = x.shape
    if sampler is None and d > n:
        # <z, xc_i> = <Q^T z, R[:, i]> with xc^T = Q R; Q^T z ~ N(0, I_n) exactly
        _, r = jnp.linalg.qr(xc.T)
        pts = r.T
    else:
        pts = xc
    return SemidiscreteProblem(pts, w, sampler, batch_size, chunk_size, sharding=sharding)


def cell_masses(targets, heights, *, key, num_samples: int, weights=None, source=None,
                chunk_size: int = DEFAULT_CHUNK, batch_size: int = DEFAULT_BATCH,
                sharding: PointSharding | None = None) -> Array:
    """Monte Carlo masses ``P(z in W_i(h))`` of the Laguerre cells, ``z`` from ``source`` (default ``N(0,I)``).

    Uses ``ceil(num_samples / batch_size) * batch_size`` samples, streamed in batches.
    """
    V.check_key(key)
    x, w = _check_targets(targets, weights)
    h = V.as_float_array(heights, "heights", dtype=x.dtype)
    if h.shape != (x.shape[0],):
        raise ValueError(f"`heights` must have shape ({x.shape[0]},), got {h.shape}.")
    V.check_positive_int(num_samples, "num_samples")
    sampler = _make_sampler(source, x.shape[1], x.dtype, key)
    prob = _make_problem(x, w, sampler, batch_size, chunk_size, check_sharding(sharding))
    nb = max(1, math.ceil(num_samples / batch_size))
    return _jit_masses(prob, h, key, nb)


@jax.jit
def _jit_masses(prob, h, key, nb):
    return _hard_pass(prob, h, key, nb).masses


def _certificate(prob, h, key, num_samples) -> SemidiscreteCertificate:
    nb = max(1, math.ceil(num_samples / prob.batch_size))
    M = nb * prob.batch_size
    m = _jit_masses(prob, h, key, nb)
    nu = prob.weights
    rel = jnp.abs(m - nu) / nu
    k = jnp.argmax(rel)
    se = jnp.sqrt(nu * (1 - nu) / M) / nu
    floor = _zscore(prob.num_targets) * jnp.max(se)
    return SemidiscreteCertificate(rel[k], se[k], floor, jnp.asarray(M), m)


def semidiscrete_ot(
    targets: Float[ArrayLike, "n d"],
    weights: Float[ArrayLike, " n"] | None = None,
    *,
    key,
    tol: float = 0.05,
    method: NewtonSolver | AdamSolver | OTTSolver | None = None,
    source=None,
    init_heights: Float[ArrayLike, " n"] | None = None,
    certificate_samples: int | None = None,
    batch_size: int = DEFAULT_BATCH,
    chunk_size: int = DEFAULT_CHUNK,
    sharding: PointSharding | None = None,
) -> SemidiscreteMap:
    r"""Semi-discrete OT from ``source`` (default ``N(0, I_d)``) to ``sum_i nu_i delta_{x_i}``.

    Args:
        targets: ``(n, d)`` distinct target points ``x_i``.
        weights: ``(n,)`` positive weights summing to one (uniform if omitted).
        key: PRNG key (split internally: one part for the solve, an independent one for the certificate).
        tol: requested max relative cell-mass error ``max_i |m_i - nu_i| / nu_i``.
        method: a solver object: :class:`NewtonSolver` (default), :class:`AdamSolver` (the paper's
            Algorithm 1) or :class:`OTTSolver` (ott-jax).
        source: ``None`` (standard Gaussian), a :class:`~jaxotdm.GaussianMeasure`, or a jit-traceable
            ``sampler(key, num_samples) -> (num_samples, d)``.
        init_heights: optional warm start (paper convention).
        certificate_samples: fresh samples for the certificate (default: the solver's final sample size,
            at least ``2^18``); ``0`` skips it.
        batch_size: source samples per streamed batch. chunk_size: targets per streamed chunk.
        sharding: optional :class:`~jaxotdm.PointSharding` splitting the targets across devices (for the
            solve, the certificate and the returned map); results equal the single-device ones.

    Returns:
        A :class:`SemidiscreteMap` with mean-zero ``heights``, a :class:`SemidiscreteCertificate` and
        :class:`SemidiscreteDiagnostics`.

    Example:
        >>> import jax, jax.numpy as jnp, jaxotdm as jo
        >>> x = jnp.array([[-1.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
        >>> smap = jo.semidiscrete_ot(x, key=jax.random.key(0), tol=0.1)
        >>> smap.transport(jnp.zeros((5, 2))).shape
        (5, 2)
    """
    V.check_key(key)
    x, w = _check_targets(targets, weights)
    tol = float(tol)
    if not (0.0 < tol < 1.0):
        raise ValueError(f"`tol` must be in (0, 1), got {tol}.")
    method = NewtonSolver() if method is None else method
    if not isinstance(method, (NewtonSolver, AdamSolver, OTTSolver)):
        raise ValueError(
            "`method` must be a solver object: NewtonSolver(), AdamSolver() or OTTSolver(); "
            f"got {method!r}."
        )
    V.check_positive_int(batch_size, "batch_size")
    V.check_positive_int(chunk_size, "chunk_size")
    sharding = check_sharding(sharding)
    k_solve, k_cert = jax.random.split(key)
    sampler = _make_sampler(source, x.shape[1], x.dtype, k_cert)
    prob = _make_problem(x, w, sampler, batch_size, chunk_size, sharding)
    h0 = None
    if init_heights is not None:
        h0 = V.as_float_array(init_heights, "init_heights", dtype=x.dtype)
        if h0.shape != (x.shape[0],):
            raise ValueError(f"`init_heights` must have shape ({x.shape[0]},), got {h0.shape}.")
        V.check_finite(h0, "init_heights")
    if x.shape[0] == 1:
        h = jnp.zeros((1,), x.dtype)
        diag = SemidiscreteDiagnostics(jnp.asarray(0), jnp.asarray(True), jnp.zeros((), x.dtype),
                                       jnp.asarray(0), _history(1, x.dtype), method.name)
    else:
        h, diag = method.solve(dataclasses.replace(prob, antithetic=True), tol=tol, key=k_solve, init_heights=h0)
    cert = None
    if certificate_samples is None:
        certificate_samples = max(int(diag.final_samples), 2**18)
    if certificate_samples:
        cert = _certificate(prob, h, k_cert, int(certificate_samples))
    return SemidiscreteMap(x, w, h, cert, diag, chunk_size, batch_size, sharding)
