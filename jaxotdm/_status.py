"""One outcome enumeration for every iterative routine of the package (as diffrax's ``RESULTS``).

Results carry ``status``: an ``int32`` scalar array holding a :class:`Status` code (it stays an array so
results can be built and returned inside ``jit``). Read it with ``Status(int(result.status))`` and
``Status(...).message``; :func:`report` turns a failed status into an error or a warning, eagerly or,
inside a trace, through an ``equinox`` run-time check.

Codes are stable (they are stored in results and checkpoints); add new ones at the end.
"""

from __future__ import annotations

import enum
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["Status", "report", "status_array", "ConvergenceWarning"]


class Status(enum.IntEnum):
    """Outcome of an iterative routine; ``message`` says what it means for the caller."""

    SUCCESS = 0
    MAX_ITERATIONS = 1
    TOLERANCE_NOT_CERTIFIED = 2
    NONFINITE = 3
    DIVERGED = 4
    SOLVER_FAILED = 5

    @property
    def message(self) -> str:
        return _MESSAGES[self]


_MESSAGES = {
    Status.SUCCESS: "success",
    Status.MAX_ITERATIONS: "the iteration budget ran out before the requested tolerance was reached",
    Status.TOLERANCE_NOT_CERTIFIED: "the independent certificate is above the requested tolerance",
    Status.NONFINITE: "a non-finite value (NaN or inf) appeared",
    Status.DIVERGED: "the iterates left a generous multiple of the data/prior scale (divergence)",
    Status.SOLVER_FAILED: "the underlying solver reported a failure",
}


class ConvergenceWarning(UserWarning):
    """Warned when a routine returns a result that did not reach its requested accuracy."""


def status_array(code: Status | int | jax.Array) -> jax.Array:
    """``code`` as an ``int32`` scalar array (usable inside ``jit``)."""
    return jnp.asarray(code, jnp.int32)


def report(status, *, what: str, throw: bool = False, warn: bool = True, detail: str = ""):
    """Acts on a status: raises (``throw=True``), warns (``warn=True``, eager only) or does nothing.

    Eagerly (a concrete ``status``), ``throw`` raises a ``RuntimeError`` and ``warn`` a
    :class:`ConvergenceWarning`, each naming ``what`` (e.g. ``"semidiscrete_ot"``) and the status message
    (plus ``detail``). Inside a trace, ``throw`` becomes an ``equinox.branched_error_if`` check (raised when
    the compiled code runs) and ``warn`` is ignored (warnings cannot be emitted from compiled code; read the
    status in the result). Returns ``status`` (inside a trace, the checked array, which must be used for the
    check to run).
    """
    if isinstance(status, jax.core.Tracer):
        if not throw:
            return status
        msgs = [f"{what}: {s.message}" for s in Status]
        return eqx.branched_error_if(status, status != Status.SUCCESS, jnp.clip(status, 0, len(msgs) - 1), msgs)
    code = Status(int(np.asarray(status)))
    if code != Status.SUCCESS:
        text = f"{what}: {code.message}" + (f" ({detail})" if detail else "") + "."
        if throw:
            raise RuntimeError(text)
        if warn:
            warnings.warn(text, ConvergenceWarning, stacklevel=3)
    return status
