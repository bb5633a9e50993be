"""The default solver: Newton on stored candidates, falling back to the resampling Newton when it stalls.

:class:`~jaxotdm.ot.CandidateNewtonSolver` is the fast one in high dimension (each source sample is scored
against all targets about once), but on some 2-D problems its Newton iterations on one fixed nested sample
stall far from the solution (1,000 points of the diffused moons at tol 0.1: 100 iterations at a max relative
error of 2-5). :class:`~jaxotdm.ot.NewtonSolver` (a fresh sample per stage) converges there. The hybrid runs
the candidate solver and watches its in-sample error: when a stage has gone ``stall_iterations`` iterations
without lowering its best error to ``stall_factor`` times the best of ``stall_iterations`` iterations before
(or when the candidate solver ends unconverged), it hands its current heights to the resampling Newton,
which starts from them (warm start) with its own stage plan and iteration budget. Problems with fewer than
``candidate_min_targets`` targets (cheap anyway) go straight to the resampling Newton. Where the candidate solver
converges, the hybrid is the candidate solver; where it stalls, the hybrid costs the stalled iterations plus a
warm-started resampling solve.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxotdm import _validation as V
from jaxotdm._pytree import pytree_dataclass, static_field
from jaxotdm._types import Array
from jaxotdm.ot.semidiscrete.driver import SemidiscreteHistory, SemidiscreteSolver
from jaxotdm.ot.semidiscrete.newton import NewtonSolver, NewtonState
from jaxotdm.ot.semidiscrete.newton_candidates import CandidateNewtonSolver, CandidateNewtonState
from jaxotdm.ot.semidiscrete.problem import SemidiscreteProblem

__all__ = ["HybridNewtonSolver", "HybridNewtonState"]


@pytree_dataclass
class HybridNewtonState:
    """State of :class:`HybridNewtonSolver`: both solvers' states, the phase and the stall detector.

    The fields every solver state carries (:mod:`jaxotdm.ot.semidiscrete.driver`) are properties read from the
    active phase (``iteration`` and ``evaluations`` add both phases, ``history`` joins them).
    """

    candidate: CandidateNewtonState | None  # None: a problem too small for the candidate phase
    fallback: NewtonState
    fell_back: Array  # True once the resampling Newton has taken over
    stage: Array  # the candidate stage the detector watches
    window: Array  # (stall_iterations + 1,) the candidate's best in-sample error per iteration of the stage
    since: Array  # iterations in the watched stage

    def _active(self, name):
        f = getattr(self.fallback, name)
        return f if self.candidate is None else jnp.where(self.fell_back, f, getattr(self.candidate, name))

    @property
    def heights(self):
        return self._active("heights")

    @property
    def iteration(self):
        return self.fallback.iteration + (0 if self.candidate is None else self.candidate.iteration)

    @property
    def num_samples(self):
        return self._active("num_samples")

    @property
    def error(self):
        return self._active("error")

    @property
    def done(self):
        if self.candidate is None:
            return self.fallback.done
        return jnp.where(self.fell_back, self.fallback.done, self.candidate.done & self.candidate.converged)

    @property
    def converged(self):
        return self._active("converged")

    @property
    def evaluations(self):
        return self.fallback.evaluations + (0 if self.candidate is None else self.candidate.evaluations)

    @property
    def history(self) -> SemidiscreteHistory:
        """Both phases' records in iteration order: the candidate's, then the fallback's (length: both budgets)."""
        if self.candidate is None:
            return self.fallback.history
        c, f = self.candidate.history, self.fallback.history
        nc, nf = c.energy.shape[0], f.energy.shape[0]
        i = jnp.arange(nc + nf)
        k = self.candidate.iteration
        from_c = i < k
        j = i - k
        valid_f = (j >= 0) & (j < self.fallback.iteration)

        def merge(a, b):
            blank = jnp.zeros((), a.dtype) if jnp.issubdtype(a.dtype, jnp.integer) else jnp.asarray(jnp.nan, a.dtype)
            return jnp.where(from_c, a[jnp.minimum(i, nc - 1)], jnp.where(valid_f, b[jnp.clip(j, 0, nf - 1)], blank))

        return SemidiscreteHistory(*(merge(getattr(c, n), getattr(f, n)) for n in c.keys()))


@pytree_dataclass
class HybridNewtonSolver(SemidiscreteSolver):
    """Candidate Newton with a detected-stall fallback to the resampling Newton (ours; the default outside the plane).

    See :mod:`jaxotdm.ot.semidiscrete.hybrid`. Run it through :func:`~jaxotdm.semidiscrete_ot`, or drive
    ``init``/``step`` yourself.

    Attributes:
        candidate: the first solver's settings (a ``CandidateNewtonSolver``; default ``noise_fraction=0.99``:
            its final sample is then about one certificate pass, ``(z_n / tol)^2 / min nu`` samples, and the
            heights' true error about ``tol``, within the certificate's own noise; measured on digits-1797 at
            d = 64, tol 0.1: 2.7-2.9x the certificate pass in CPU seconds at a fresh-sample max relative
            error of 0.10-0.12, against 4.1x and 0.095 with 0.85).
        fallback: the fallback's settings (a :class:`~jaxotdm.ot.NewtonSolver`).
        stall_iterations: iterations within one candidate stage after which the error must have dropped to
            ``stall_factor`` times its value that many iterations before.
        stall_factor: required decrease over ``stall_iterations`` iterations, in ``(0, 1)``.
        candidate_min_targets: problems with fewer targets skip the candidate phase (the resampling Newton is
            cheap there, and only one solver is compiled).
    """

    candidate: CandidateNewtonSolver = static_field(default_factory=lambda: CandidateNewtonSolver(noise_fraction=0.99))
    fallback: NewtonSolver = static_field(default_factory=NewtonSolver)
    stall_iterations: int = static_field(6)
    stall_factor: float = static_field(0.7)
    candidate_min_targets: int = static_field(256)

    name = "newton-hybrid"

    def __post_init__(self):
        if not isinstance(self.candidate, CandidateNewtonSolver):
            raise ValueError(f"`candidate` must be a CandidateNewtonSolver, got {self.candidate!r:.80}.")
        if not isinstance(self.fallback, NewtonSolver):
            raise ValueError(f"`fallback` must be a NewtonSolver, got {self.fallback!r:.80}.")
        V.check_int(self.stall_iterations, "stall_iterations", minimum=1)
        V.fraction(self.stall_factor, "stall_factor")
        V.check_int(self.candidate_min_targets, "candidate_min_targets", minimum=0)

    def init(self, prob: SemidiscreteProblem, *, tol: float, key, init_heights=None) -> HybridNewtonState:
        """Both solvers' initial states (host-side plans; needs concrete weights). The fallback's heights are
        replaced by the candidate's when it takes over."""
        k_c, k_f = jax.random.split(key)
        if prob.num_targets < self.candidate_min_targets:
            cand = None
            fb = self.fallback.init(prob, tol=tol, key=k_f, init_heights=init_heights)
        else:
            cand = self.candidate.init(prob, tol=tol, key=k_c, init_heights=init_heights)
            fb = self.fallback.init(prob, tol=tol, key=k_f, init_heights=cand.heights)
        dtype = fb.heights.dtype
        return HybridNewtonState(
            candidate=cand, fallback=fb, fell_back=jnp.asarray(cand is None), stage=jnp.asarray(-1, jnp.int32),
            window=jnp.full((self.stall_iterations + 1,), jnp.inf, dtype), since=jnp.asarray(0, jnp.int32),
        )

    def step(self, prob: SemidiscreteProblem, state: HybridNewtonState) -> HybridNewtonState:
        """One candidate iteration (then the stall test), or one fallback iteration once it has taken over."""

        def candidate_step(s: HybridNewtonState) -> HybridNewtonState:
            c = self.candidate.step(prob, s.candidate)
            new_stage = c.stage != s.stage
            # best error of this stage so far; window[k] = best error k iterations ago
            best = jnp.where(new_stage, c.error, jnp.minimum(s.window[0], c.error))
            window = jnp.where(new_stage, jnp.full_like(s.window, jnp.inf), jnp.roll(s.window, 1)).at[0].set(best)
            since = jnp.where(new_stage, 0, s.since + 1)
            stalled = (since >= self.stall_iterations) & (window[0] > self.stall_factor * window[-1])
            stalled = stalled | (c.done & ~c.converged)
            fb = s.fallback.replace(heights=c.heights)
            return s.replace(candidate=c, fallback=jax.tree_util.tree_map(lambda a, b: jnp.where(stalled, a, b), fb,
                                                                          s.fallback),
                             fell_back=stalled, stage=c.stage, window=window, since=since)

        def fallback_step(s: HybridNewtonState) -> HybridNewtonState:
            return s.replace(fallback=self.fallback.step(prob, s.fallback))

        if state.candidate is None:
            return fallback_step(state)
        return jax.lax.cond(state.fell_back, fallback_step, candidate_step, state)
