"""Our default solver: damped Newton on the Monte Carlo semi-dual with a kernel Hessian and sample growth."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxotdm._pytree import pytree_dataclass, static_field
from jaxotdm._types import Array
from jaxotdm.ot.semidiscrete import _newton_common as C
from jaxotdm.ot.semidiscrete import _passes as P
from jaxotdm.ot.semidiscrete._newton_common import NewtonState
from jaxotdm.ot.semidiscrete.driver import SemidiscreteSolver
from jaxotdm.ot.semidiscrete.problem import SemidiscreteProblem

__all__ = ["NewtonSchedule", "NewtonSolver", "NewtonState"]


@pytree_dataclass
class NewtonSchedule:
    """Per-stage batch counts and in-sample tolerances (padded to ``MAX_STAGES``), and the last stage."""

    num_batches: Array
    tolerances: Array
    last: Array
    check: Array  # ``tol``: stop at a stage change whose fresh pass certifies it (see ``NewtonSolver``)
    noise: Array  # per stage: ``check_fraction z_n max_i sqrt(nu_i (1 - nu_i) / N_s) / nu_i``
    single: Array  # per stage: fresh errors below this take one Newton step and move to the next stage


@pytree_dataclass
class NewtonSolver(SemidiscreteSolver):
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

    Run it through :func:`~jaxotdm.semidiscrete_ot`, or drive ``init``/``step`` yourself.

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

    def __post_init__(self):
        C.check_newton_settings(self, positive=("single_step_ratio",), bools=("single_step_last",))

    def schedule(self, prob: SemidiscreteProblem, tol: float) -> NewtonSchedule:
        """The stage schedule for ``tol`` (host-side; needs concrete weights)."""
        nbs, tols, pad, zn, wmin = C.stages(self, prob, tol)
        nb_final, B = nbs[-1], prob.batch_size
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

    def init(self, prob: SemidiscreteProblem, *, tol: float, key, init_heights=None) -> NewtonState:
        """State before the first stage (``stage = -1``); the first ``step`` draws stage 0's sample.
        Plans the stages on the host (:meth:`schedule`, needs concrete weights)."""
        sched = self.schedule(prob, tol)
        h = prob.voronoi_init() if init_heights is None else init_heights - jnp.mean(init_heights)
        return NewtonState(**C.initial_state(self, prob, h, key, sched))

    def _pass(self, prob, h, key, nb):
        hessian_pass = P.dense_hessian_pass if prob.num_targets <= self.dense_max else P.edge_hessian_pass
        return hessian_pass(prob, h, key, nb, C.n_hess_batches(self, prob), self.bandwidth)

    def step(self, prob: SemidiscreteProblem, state: NewtonState) -> NewtonState:
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
        sched = s.plan
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
        delta = jax.lax.cond(stage_ok, lambda: jnp.zeros_like(s.heights), lambda: C.direction(self, prob, s, r, cholesky=True))
        r1 = jnp.sum(jnp.abs(r))

        slope = jnp.dot(r, delta)  # directional derivative of the sample energy along delta
        min_mass = 0.5 * jnp.minimum(jnp.min(s.masses), jnp.min(prob.weights))

        def cond(c):
            _, k, ok, _ = c
            return ~ok & (k <= self.max_backtracks)

        def body(c):
            alpha, k, _, _ = c
            p = self._pass(prob, s.heights + alpha * delta, key, nb)
            ok = C.accepts(prob, s, p.masses, p.energy, alpha, slope, r1, min_mass, advance)
            return jnp.where(ok, alpha, alpha / 2.0), k + 1, ok, p

        p0 = P.Pass(s.masses, s.energy, s.hess, jnp.zeros((), dtype))
        one = jnp.ones((), dtype)
        stop = finished | last_single
        alpha, passes, accepted, p = jax.lax.while_loop(cond, body, (one, jnp.asarray(0), stop, p0))
        # no acceptable step: stay, keep the current sample's pass, and raise the ridge (towards a
        # scaled gradient step); a full step lowers it again
        rejected = ~accepted
        alpha = jnp.where(rejected, 0.0, alpha)
        p = jax.tree_util.tree_map(lambda a, b: jnp.where(rejected, a, b), p0, p)
        ridge = C.new_ridge(s.ridge, rejected, alpha)
        h_new = s.heights + alpha * delta
        h_new = h_new - jnp.mean(h_new)
        err = jnp.where(stop, s.error, P.max_rel(p.masses, prob.weights))
        # a stage change evaluates the heights on a sample never used for them: a fresh check
        # (an upper confidence bound: the fresh error plus the sample's noise level)
        fresh_ok = advance & (s.stage >= 0) & (err + sched.noise[stage] <= sched.check)
        hist = jax.lax.cond(
            finished, lambda: s.history,
            lambda: s.history.record(s.iteration, err, p.energy, nb * prob.batch_size,
                                     jnp.where(advance & ~single, 0.0, alpha)),
        )
        it = jnp.where(finished, s.iteration, s.iteration + 1)
        done = stop | fresh_ok
        num = jnp.where(stop, s.num_samples, nb * prob.batch_size)
        evals = s.evaluations + (passes * nb * prob.batch_size).astype(dtype)
        return s.replace(
            heights=h_new, stage=stage, iteration=it, masses=p.masses, energy=p.energy, hess=p.hess, error=err,
            ridge=ridge, done=done | (it >= self.max_iterations), converged=done, history=hist,
            num_samples=num.astype(jnp.int32), evaluations=evals,
        )
