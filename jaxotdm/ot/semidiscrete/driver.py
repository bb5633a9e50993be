"""One protocol for every semi-discrete solver, one driver loop, one diagnostics type.

A solver is an immutable object with a ``name`` and two methods::

    state = solver.init(problem, tol=tol, key=key, init_heights=None)   # eager: may plan on the host
    state = solver.step(problem, state)                                  # pure, jittable

Every state carries (as attributes) ``heights`` (mean zero), ``iteration``, ``num_samples`` (the sample size
of the current iterate's masses), ``error`` (the solver's current estimate of the max relative cell-mass
error), ``done``, ``converged``, ``evaluations`` (source samples scored against all targets so far) and a
:class:`SemidiscreteHistory`. :func:`run` drives ``step`` inside one ``lax.while_loop`` (no host round trip
per iteration), optionally reporting progress through a host callback, and :func:`diagnostics` turns the
final state into :class:`SemidiscreteDiagnostics`. Users can drive ``init``/``step`` from their own loop.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable
from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from jaxotdm._pytree import pytree_dataclass, static_field
from jaxotdm._status import Status, status_array
from jaxotdm._types import Array, Float, Int

__all__ = ["Progress", "SemidiscreteDiagnostics", "SemidiscreteHistory", "SemidiscreteSolver", "diagnostics", "run"]


class SemidiscreteSolver(abc.ABC):
    """The base of every semi-discrete solver: a ``name`` and the ``init``/``step`` pair (module docstring).

    :func:`~jaxotdm.semidiscrete_ot` accepts any instance of a subclass; a new solver subclasses this (as a
    ``pytree_dataclass`` with static settings) and implements both methods.
    """

    name: ClassVar[str]

    @abc.abstractmethod
    def init(self, problem, *, tol: float, key, init_heights=None) -> Any:
        """The state before the first iteration (eager: may plan on the host)."""

    @abc.abstractmethod
    def step(self, problem, state) -> Any:
        """One iteration (pure, jittable)."""


@pytree_dataclass
class SemidiscreteHistory:
    """Per-iteration records (NaN / 0 past ``iterations``). Indexable by name (``history["energy"]``).

    Attributes:
        max_relative_error: the solver's error estimate after each iteration.
        energy: the sample energy ``sum nu h - mean max_i score`` (NaN where a solver does not compute it).
        num_samples: sample size of each iteration's masses.
        step_size: accepted step length (Newton: the line-search ``alpha``; Adam: the learning rate).
        chi2_error: ott-jax's marginal chi-square error estimate (``OTTSolver`` only).
    """

    max_relative_error: Float[Array, " k"]
    energy: Float[Array, " k"]
    num_samples: Int[Array, " k"]
    step_size: Float[Array, " k"]
    chi2_error: Float[Array, " k"] | None = None

    def __getitem__(self, name: str) -> Array:
        if name not in self.keys():
            raise KeyError(name)
        return getattr(self, name)

    def keys(self):
        base = ("max_relative_error", "energy", "num_samples", "step_size")
        return base if self.chi2_error is None else base + ("chi2_error",)

    @staticmethod
    def empty(length: int, dtype) -> SemidiscreteHistory:
        nan = jnp.full((length,), jnp.nan, dtype)
        return SemidiscreteHistory(nan, nan, jnp.zeros((length,), jnp.int32), nan)

    def record(self, it, err, energy, num_samples, step) -> SemidiscreteHistory:
        i = jnp.minimum(it, self.energy.shape[0] - 1)
        return self.replace(
            max_relative_error=self.max_relative_error.at[i].set(err), energy=self.energy.at[i].set(energy),
            num_samples=self.num_samples.at[i].set(jnp.asarray(num_samples).astype(jnp.int32)),
            step_size=self.step_size.at[i].set(step),
        )


@pytree_dataclass
class SemidiscreteDiagnostics:
    """What a solve did (values, counts and a status; no wall times).

    Attributes:
        iterations: steps taken.
        converged: the solver's own stopping criterion was met (before the iteration budget ran out).
        status: an ``int32`` :class:`~jaxotdm.Status` code: ``SUCCESS``; ``MAX_ITERATIONS`` (not converged);
            ``NONFINITE`` (NaN/inf heights, e.g. from a bad source sampler); ``TOLERANCE_NOT_CERTIFIED`` (set by
            :func:`~jaxotdm.semidiscrete_ot` when the independent certificate exceeds ``tol`` by more than its
            noise floor); ``SOLVER_FAILED`` (ott-jax reported a non-finite loss). Read it with
            ``Status(int(diagnostics.status))``.
        insample_error: the solver's last max relative error estimate (on its own sample).
        final_samples: sample size of the final iterate's masses.
        evaluations: source samples scored against all targets during the solve (``evaluations x n x (r + 1)``
            multiply-adds is the solve's arithmetic, ``r = min(n, d)``).
        history: a :class:`SemidiscreteHistory`.
        solver: the solver's name.
    """

    iterations: Int[Array, ""]
    converged: Array
    insample_error: Float[Array, ""]
    final_samples: Int[Array, ""]
    history: SemidiscreteHistory
    solver: str = static_field("")
    status: Int[Array, ""] = None
    evaluations: Float[Array, ""] = None


@pytree_dataclass
class Progress:
    """One progress report, passed to ``semidiscrete_ot(..., progress=fn)`` after every iteration.

    Attributes: iteration, num_samples (sample size of the current masses), error (the solver's current
    max relative error estimate), evaluations (samples scored so far), solver (its name).
    """

    iteration: int
    num_samples: int
    error: float
    evaluations: float
    solver: str = static_field()


# A host-side progress function is never part of a compiled program (a new closure would recompile the
# solve on every call): the compiled loop calls ``_dispatch``, which forwards to the active function.
# (A plain global, not thread-local: JAX runs host callbacks on its own threads.)
_ACTIVE: list = [None]
_LOCK = threading.Lock()


def _dispatch(name, iteration, num_samples, error, evaluations):
    fn = _ACTIVE[0]
    if fn is not None:
        fn(Progress(int(iteration), int(num_samples), float(error), float(evaluations), name))


def _run(solver, problem, state, report: bool):
    def body(s):
        new = solver.step(problem, s)
        if report:  # one report per iteration (a final no-op step that only sets ``done`` is not one)
            jax.debug.callback(lambda changed, *a: _dispatch(solver.name, *a) if changed else None,
                               new.iteration != s.iteration, new.iteration, new.num_samples, new.error,
                               new.evaluations, ordered=True)
        return new

    return jax.lax.while_loop(lambda s: ~s.done, body, state)


_jit_run = jax.jit(_run, static_argnums=(0, 3))


def run(solver, problem, state, *, progress: Callable[[Progress], Any] | None = None):
    """Runs ``solver.step`` from ``state`` until ``state.done`` in one compiled ``lax.while_loop``.

    ``progress`` (optional) is called on the host after every iteration with a :class:`Progress`.
    """
    if progress is None:
        return _jit_run(solver, problem, state, False)
    if isinstance(state.heights, jax.core.Tracer):
        raise ValueError("`progress` reports from eager calls only: under jax.jit pass progress=None (the solve "
                         "still runs; read its diagnostics in the result).")
    with _LOCK:  # one reporting solve at a time (the callback target is global)
        _ACTIVE[0] = progress
        try:
            out = _jit_run(solver, problem, state, True)
            jax.block_until_ready(out)
            jax.effects_barrier()
        finally:
            _ACTIVE[0] = None
    return out


def diagnostics(solver, state, *, failed=None) -> SemidiscreteDiagnostics:
    """:class:`SemidiscreteDiagnostics` of a final ``state`` (``failed``: an optional solver-failure flag)."""
    finite = jnp.all(jnp.isfinite(state.heights))
    status = jnp.where(state.converged, Status.SUCCESS, Status.MAX_ITERATIONS)
    if failed is not None:
        status = jnp.where(failed, Status.SOLVER_FAILED, status)
    status = jnp.where(finite, status, Status.NONFINITE)
    return SemidiscreteDiagnostics(
        iterations=state.iteration, converged=state.converged & finite, insample_error=state.error,
        final_samples=jnp.asarray(state.num_samples).astype(jnp.int32), history=state.history,
        solver=solver.name, status=status_array(status), evaluations=state.evaluations,
    )
