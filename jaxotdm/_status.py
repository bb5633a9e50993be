"""The status contract: one outcome enumeration for every iterative routine (as diffrax's ``RESULTS``).

The contract, followed by every iterative result of the library:

1. **A ``status`` field.** Every result of an iterative routine (``FlowResult``, ``SampleResult``,
   ``SemidiscreteDiagnostics``, ``EntropicResult``, ``OTSampleResult``, ...) carries ``status``: an ``int32``
   scalar array holding a :class:`Status` code (an array, so results can be built and returned inside
   ``jit``). Read it with ``Status(int(result.status))`` and ``Status(...).message``.
2. **``throw=True`` by default raises outside ``jit``.** An entry point that takes ``throw`` raises a
   ``RuntimeError`` naming itself and the status message when it is called eagerly and the status is not
   ``SUCCESS``; with ``throw=False`` it returns the result and warns (:class:`ConvergenceWarning`), so an
   eager failure is never silent.
3. **Under ``jit`` the status travels in the result.** Compiled code cannot raise or warn on a value it
   has not computed yet, so a traced status is returned untouched: the caller reads ``result.status``.
4. **A composed result keeps its parts' statuses.** Its ``status`` is the first failure among them (the
   parts in the order they ran), and each part's own status stays readable: ``OTSampleResult`` has
   ``ot_status`` (the OT solve) and ``chain_status`` (the reverse chain) beside ``status``.

:func:`report_result` is rule 2 and 3 in one call (an entry point ends with it); :func:`combine` is rule 4.
:func:`report` acts on a bare status (and, where a caller asks for it, raises inside a trace through an
``equinox`` run-time check).

Codes are stable (they are stored in results and checkpoints); add new ones at the end.
"""

from __future__ import annotations

import enum
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["Status", "report", "report_result", "combine", "status_array", "ConvergenceWarning"]


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


def combine(*statuses) -> jax.Array:
    """The status of a composed result: the first of ``statuses`` (in the order the parts ran) that is not
    ``SUCCESS``, else ``SUCCESS``; ``None`` entries (a part that reports none) are skipped. Jittable."""
    out = status_array(Status.SUCCESS)
    for s in reversed([s for s in statuses if s is not None]):
        s = jnp.asarray(s, jnp.int32)
        out = jnp.where(s != Status.SUCCESS, s, out)
    return out


def report_result(result, *, what: str, throw: bool = True, detail: str = ""):
    """The contract at an entry point: eagerly, raise (``throw=True``) or warn (``throw=False``) when
    ``result.status`` is not ``SUCCESS``; inside a trace, return ``result`` untouched (its status travels in it).

    Example:
        >>> import jax.numpy as jnp
        >>> from jaxotdm._status import Status, report_result, status_array
        >>> from jaxotdm.samplers import SampleResult
        >>> bad = SampleResult(jnp.zeros((1, 1)), 0, 0, jnp.zeros(1), status_array(Status.DIVERGED), jnp.ones(()))
        >>> report_result(bad, what="demo")
        Traceback (most recent call last):
        ...
        RuntimeError: demo: the iterates left a generous multiple of the data/prior scale (divergence).
    """
    status = result.status
    if not isinstance(status, jax.core.Tracer):
        report(status, what=what, throw=throw, warn=True, detail=detail)
    return result
