"""What the two damped-Newton solvers share (:class:`~jaxotdm.ot.NewtonSolver` and
:class:`~jaxotdm.ot.CandidateNewtonSolver`): the stage plan, the state, the kernel-Hessian Newton direction,
the line-search acceptance test and the Levenberg-Marquardt ridge update."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from jaxotdm import _validation as V
from jaxotdm._pytree import pytree_dataclass
from jaxotdm._types import Array
from jaxotdm.ot.semidiscrete.driver import SemidiscreteHistory
from jaxotdm.ot.semidiscrete.problem import SemidiscreteProblem, check_settings, required_samples, zscore

MAX_STAGES = 24
MIN_RIDGE = 1e-3

# settings both solvers validate the same way (``check_settings``' arguments)
INTS = {"growth": 2, "min_samples_per_cell": 1, "final_samples?": 1, "max_samples": 1, "hessian_samples?": 1,
        "dense_max": 0, "cg_iterations": 1, "max_iterations": 1, "max_backtracks": 0}
POSITIVE = ("noise_fraction", "insample_fraction", "stage_fraction", "bandwidth")


def check_newton_settings(solver, *, ints=(), positive=(), bools=()) -> None:
    """Validates the shared settings plus a solver's own (``ints``: ``{name: minimum}``)."""
    check_settings(solver, ints={**INTS, **dict(ints)}, positive=POSITIVE + tuple(positive),
                   nonnegative=("check_fraction",), bools=tuple(bools))
    V.fraction(solver.noise_fraction, "noise_fraction")


@pytree_dataclass
class NewtonState:
    """State of :class:`~jaxotdm.ot.NewtonSolver` (:class:`~jaxotdm.ot.CandidateNewtonSolver` adds its candidate
    store); the fields every semi-discrete solver state carries are listed in :mod:`jaxotdm.ot.semidiscrete.driver`."""

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
    history: SemidiscreteHistory
    plan: Any  # the solver's stage schedule
    num_samples: Array  # sample size of the current masses
    evaluations: Array  # samples scored against all targets so far (float: may exceed 2^31)


def stages(solver, prob: SemidiscreteProblem, tol: float):
    """Host-side stage plan: ``(batches per stage, in-sample tolerances, padding, z_n, min nu)``.

    ``N_final = (z_n / (noise_fraction tol))^2 / min nu`` (or ``final_samples``, capped by ``max_samples``),
    divided by ``growth`` down to ``min_samples_per_cell / min nu``; stage tolerances ``max(insample_fraction
    tol, stage_fraction z_n / sqrt(N_s min nu))``, the last one ``insample_fraction tol``.
    """
    wmin = prob.min_weight(type(solver).__name__)
    n, B = prob.num_targets, prob.batch_size
    if solver.final_samples is not None:
        n_final = solver.final_samples
    else:
        n_final = min(required_samples(wmin, n, tol, solver.noise_fraction), solver.max_samples)
    nb_final = max(1, math.ceil(n_final / B))
    nb0 = max(1, math.ceil(solver.min_samples_per_cell / wmin / B))
    nbs = [nb_final]
    while nbs[-1] // solver.growth >= nb0 and len(nbs) < MAX_STAGES:
        nbs.append(nbs[-1] // solver.growth)
    nbs = nbs[::-1]
    zn = zscore(n)
    tols = [max(solver.insample_fraction * tol, solver.stage_fraction * zn / math.sqrt(nb * B * wmin))
            for nb in nbs[:-1]]
    tols.append(solver.insample_fraction * tol)
    return nbs, tols, MAX_STAGES - len(nbs), zn, wmin


def n_hess_batches(solver, prob: SemidiscreteProblem) -> int:
    """Batches whose top-2 gaps build the Hessian (``hessian_samples``, default ``max(1024 n, 4 batches)`` for
    the dense solve, ``max(256 n, 4 batches)`` for the edge list)."""
    n, B = prob.num_targets, prob.batch_size
    default = (1024 if n <= solver.dense_max else 256) * n
    hs = solver.hessian_samples if solver.hessian_samples is not None else max(default, 4 * B)
    return max(1, math.ceil(hs / B))


def initial_state(solver, prob: SemidiscreteProblem, h, key, sched) -> dict:
    """The fields of the state before the first stage (``stage = -1``), zero Hessian, as keywords."""
    dtype = h.dtype
    n = prob.num_targets
    if n <= solver.dense_max:
        hess = jnp.zeros((n, n), dtype)
    else:
        e = n_hess_batches(solver, prob) * prob.batch_size
        hess = (jnp.zeros((e,), jnp.int32), jnp.zeros((e,), jnp.int32), jnp.zeros((e,), dtype))
    return dict(
        heights=h, key=key, stage=jnp.asarray(-1, jnp.int32), iteration=jnp.asarray(0, jnp.int32),
        masses=jnp.zeros((n,), dtype), energy=jnp.asarray(-jnp.inf, dtype), hess=hess,
        error=jnp.asarray(jnp.inf, dtype), ridge=jnp.asarray(MIN_RIDGE, dtype), done=jnp.asarray(False),
        converged=jnp.asarray(False), history=SemidiscreteHistory.empty(solver.max_iterations, dtype), plan=sched,
        num_samples=jnp.asarray(0, jnp.int32), evaluations=jnp.zeros((), dtype),
    )


def accepts(prob, s, masses, energy, alpha, slope, r1, min_mass, advance):
    """Line-search test of a trial at step ``alpha``: the sample energy rises (Armijo) or the L1 residual drops
    by ``alpha / 4``, and no cell shrinks below ``min_mass`` (Kitagawa-Merigot-Thibert: half the smallest
    current or target mass, so no cell is emptied: an empty cell has no facets, hence no curvature to steer
    it back). A stage change (``advance``) always accepts."""
    ascent = energy >= s.energy + 0.25 * alpha * slope
    decrease = jnp.sum(jnp.abs(prob.weights - masses)) <= (1.0 - alpha / 4.0) * r1
    keeps_cells = jnp.min(masses) >= min_mass
    return advance | ((ascent | decrease) & keeps_cells)


def new_ridge(ridge, rejected, alpha):
    """Levenberg-Marquardt ridge: x10 after a rejected step (towards a scaled gradient step), /4 (at least
    ``MIN_RIDGE``) after a full one."""
    return jnp.where(rejected, ridge * 10.0, jnp.where(alpha >= 1.0, jnp.maximum(ridge / 4.0, MIN_RIDGE), ridge))


def direction(solver, prob, s, r, *, cholesky: bool):
    """Solves ``(L + diag(lambda)) delta = r`` with ``L`` the kernel estimate of ``-Hess E`` (``s.hess``): a dense
    solve for ``n <= dense_max`` (``cholesky``: ``assume_a="pos"``, else LU), Jacobi-CG on the edges above."""
    n = prob.num_targets
    if n <= solver.dense_max:
        L = s.hess
        diag = jnp.diagonal(L)
    else:
        i, j, w = s.hess
        diag = jax.ops.segment_sum(w, i, n) + jax.ops.segment_sum(w, j, n)
    mean_diag = jnp.maximum(jnp.mean(diag), 1e-30)
    # ridge; cells with (almost) no boundary samples fall back to a scaled gradient step
    lam = s.ridge * mean_diag + jnp.where(diag < 1e-3 * mean_diag, mean_diag, 0.0)
    if n <= solver.dense_max:
        if cholesky:
            delta = jax.scipy.linalg.solve(L + jnp.diag(lam), r, assume_a="pos")
        else:
            delta = jnp.linalg.solve(L + jnp.diag(lam), r)  # LU: much faster than XLA:CPU cho_solve
    else:

        def matvec(v):
            e = w * (v[i] - v[j])
            return jax.ops.segment_sum(e, i, n) - jax.ops.segment_sum(e, j, n) + lam * v

        pre = 1.0 / (diag + lam)
        delta, _ = jax.scipy.sparse.linalg.cg(matvec, r, M=lambda v: pre * v, maxiter=solver.cg_iterations, tol=1e-4)
    return delta - jnp.mean(delta)
