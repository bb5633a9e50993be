"""Probability-flow maps ``M^{t0, t1}`` solved with diffrax.

The probability-flow ODE ``dx/dt = f(t) x - g(t)^2 score(x, t) / 2`` transports ``p_{t0}`` to
``p_{t1}`` exactly, in either direction of time. :func:`flow_map` integrates it for a batch of points
with an adaptive (default) or fixed-step diffrax solver, set by one :class:`ODESettings` (solver, tolerances or
step-size controller, fixed steps, step budget), and reports the exact number of score evaluations.

The batch is integrated as one ODE state, so all points share the step sizes chosen from the RMS
error over the batch; ``vmap`` over ``x`` for per-point adaptivity.
"""

from __future__ import annotations

from collections.abc import Callable

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp

from jaxotdm import _validation as V
from jaxotdm._pytree import pytree_dataclass, static_field
from jaxotdm._status import Status, report
from jaxotdm._types import Array, ArrayLike, Bool, Float, Int
from jaxotdm.schedules import Schedule

__all__ = ["FlowResult", "ODESettings", "flow_map", "probability_flow_velocity", "SOLVERS"]

SOLVERS: dict[str, Callable[[], diffrax.AbstractSolver]] = {
    "euler": diffrax.Euler,
    "heun": diffrax.Heun,
    "midpoint": diffrax.Midpoint,
    "ralston": diffrax.Ralston,
    "bosh3": diffrax.Bosh3,
    "tsit5": diffrax.Tsit5,
    "dopri5": diffrax.Dopri5,
    "dopri8": diffrax.Dopri8,
}
"""Convenience names for diffrax solvers; any ``diffrax.AbstractSolver`` instance is accepted too."""


@pytree_dataclass
class FlowResult:
    """Result of :func:`flow_map`.

    Attributes:
        points: the mapped points, same shape as the input.
        nfe: exact number of score (vector-field) evaluations.
        num_steps: attempted steps; ``num_accepted_steps`` / ``num_rejected_steps`` split them.
        success: True when the solve succeeded (``status == Status.SUCCESS``).
        status: an ``int32`` :class:`~jaxotdm._status.Status` code: ``SUCCESS``, ``MAX_ITERATIONS`` (``max_steps``
            ran out), ``SOLVER_FAILED`` (diffrax reported another failure) or ``NONFINITE`` (NaN/inf points).
    """

    points: Float[Array, "... d"]
    nfe: Int[Array, ""]
    num_steps: Int[Array, ""]
    num_accepted_steps: Int[Array, ""]
    num_rejected_steps: Int[Array, ""]
    success: Bool[Array, ""]
    status: Int[Array, ""]


def probability_flow_velocity(score: Callable, schedule: Schedule, x: Array, t: ArrayLike) -> Array:
    """The probability-flow velocity ``f(t) x - g(t)^2 score(x, t) / 2``."""
    return schedule.drift(t) * x - 0.5 * schedule.diffusion2(t) * score(x, t)


def _evaluations(solver: diffrax.AbstractSolver) -> tuple[int, int]:
    """(fixed overhead, evaluations per attempted step) for diffrax's explicit solvers.

    Runge-Kutta: ``stages`` per step, or ``stages - 1`` plus one at initialisation when first-same-as-
    last. The adaptive solve is always given an explicit first step, so diffrax's initial-step
    heuristic (whose evaluations XLA may or may not merge with the first step's) never runs and the
    count is exact. Verified against a run-time evaluation counter in the tests.
    """
    tableau = getattr(solver, "tableau", None)
    if tableau is not None:
        stages = len(tableau.c) + 1
        fsal = bool(tableau.fsal)
        per_step, init = (stages - 1, 1) if fsal else (stages, 0)
    elif isinstance(solver, diffrax.Euler):
        per_step, init = 1, 0
    else:
        raise ValueError(
            f"`solver` {type(solver).__name__} is not supported: use an explicit Runge-Kutta solver or Euler."
        )
    return init, per_step


@eqx.filter_jit
def _solve(score, schedule, x, t0, t1, solver, controller, dt0, max_steps, adjoint, overhead, per_step):
    term = diffrax.ODETerm(lambda t, y, args: probability_flow_velocity(score, schedule, y, t))
    sol = diffrax.diffeqsolve(
        term,
        solver,
        t0=t0,
        t1=t1,
        dt0=dt0,
        y0=x,
        stepsize_controller=controller,
        max_steps=max_steps,
        adjoint=adjoint,
        saveat=diffrax.SaveAt(t1=True),
        throw=False,
    )
    stats = sol.stats
    num_steps = stats["num_steps"]
    points = sol.ys[0]
    status = jnp.where(
        sol.result == diffrax.RESULTS.successful,
        Status.SUCCESS,
        jnp.where(sol.result == diffrax.RESULTS.max_steps_reached, Status.MAX_ITERATIONS, Status.SOLVER_FAILED),
    )
    status = jnp.where((status == Status.SUCCESS) & ~jnp.all(jnp.isfinite(points)), Status.NONFINITE, status)
    status = status.astype(jnp.int32)
    return FlowResult(
        points=points,
        nfe=overhead + per_step * num_steps,
        num_steps=num_steps,
        num_accepted_steps=stats["num_accepted_steps"],
        num_rejected_steps=stats["num_rejected_steps"],
        success=status == Status.SUCCESS,
        status=status,
    )


_MESSAGES = [f"flow_map: {s.message}" for s in Status]


def _checked(result: FlowResult) -> FlowResult:
    """Inside a trace: ties an ``equinox`` run-time check to the points, so using them raises on failure."""
    bad = result.status != Status.SUCCESS
    idx = jnp.clip(result.status, 0, len(_MESSAGES) - 1)
    return result.replace(points=eqx.branched_error_if(result.points, bad, idx, _MESSAGES))


DEFAULT_RTOL = 1e-6
DEFAULT_ATOL = 1e-6
DEFAULT_PCOEFF = 0.3
DEFAULT_ICOEFF = 0.4
FIRST_STEP_FRACTION = 1.0 / 64
"""An adaptive solve's first step, as a fraction of ``t1 - t0`` (the controller adapts it at once)."""


@pytree_dataclass
class ODESettings:
    """How :func:`flow_map` integrates the probability-flow ODE: the solver and its step-size control.

    A PyTree with static fields only (it can be closed over or passed through ``jax.jit``). Every field is
    checked when the object is made, so a bad value fails before any work.

    Attributes:
        solver: a name in :data:`SOLVERS` or a diffrax solver instance (an explicit Runge-Kutta solver or
            Euler); default ``"tsit5"``.
        rtol: tolerance of the default adaptive controller, ``diffrax.PIDController(rtol, atol, pcoeff=0.3,
            icoeff=0.4)``; ``None``: ``1e-6``; finite and ``> 0``. This PI controller takes fewer steps than
            diffrax's plain integral controller (``pcoeff=0, icoeff=1``) on probability flows, whose stiffness
            grows sharply near ``t -> 0``: its step sizes oscillate less, so fewer steps are rejected.
        atol: see ``rtol``.
        stepsize_controller: any diffrax step-size controller instead of the default one (e.g.
            ``diffrax.PIDController(rtol=1e-5, atol=1e-5, pcoeff=0.0, icoeff=1.0, dtmax=0.1)``,
            ``diffrax.ConstantStepSize()`` with ``num_steps``, or ``diffrax.StepTo(ts)``); its knobs are set
            on it. Do not combine it with ``rtol``/``atol``. An adaptive solve's first step is ``(t1 - t0) / 64``.
        num_steps: if given, this many equal steps instead of adaptive stepping.
        max_steps: step budget (at least ``num_steps``).

    Example:
        >>> import jaxotdm as jo
        >>> jo.ODESettings(rtol=1e-8, atol=1e-8).rtol
        1e-08
        >>> jo.ODESettings(solver="euler", num_steps=100).num_steps
        100
        >>> jo.ODESettings(rtol=-1.0)
        Traceback (most recent call last):
        ...
        ValueError: `rtol` must be > 0, got -1.0.
    """

    solver: str | diffrax.AbstractSolver = static_field("tsit5")
    rtol: float | None = static_field(None)
    atol: float | None = static_field(None)
    stepsize_controller: diffrax.AbstractStepSizeController | None = static_field(None)
    num_steps: int | None = static_field(None)
    max_steps: int = static_field(16_384)

    def __post_init__(self):
        solver = self.diffrax_solver  # a known name or a solver instance
        _evaluations(solver)  # a solver whose evaluation count is known
        V.check_positive_int(self.max_steps, "max_steps")
        if self.num_steps is not None:
            V.check_positive_int(self.num_steps, "num_steps")
        for name in ("rtol", "atol"):
            if getattr(self, name) is not None:
                V.positive_scalar(getattr(self, name), name)
        controller = self.stepsize_controller
        if controller is None:
            if self.num_steps is None and not isinstance(solver, diffrax.AbstractAdaptiveSolver):
                raise ValueError(f"`solver` {type(solver).__name__} has no error estimate: pass `num_steps`.")
            return
        if not isinstance(controller, diffrax.AbstractStepSizeController):
            raise V.ArgumentTypeError(
                "`stepsize_controller` must be a diffrax step-size controller (e.g. diffrax.PIDController(rtol=..., "
                f"atol=...)), got {type(controller).__name__}."
            )
        given = [n for n in ("rtol", "atol") if getattr(self, n) is not None]
        if given:
            raise ValueError(
                f"pass either `stepsize_controller` or the shortcuts {given}, not both: set them on the controller."
            )
        if isinstance(controller, diffrax.ConstantStepSize):
            if self.num_steps is None:
                raise ValueError("`stepsize_controller` ConstantStepSize needs `num_steps` (the number of equal steps).")
            return
        if self.num_steps is not None:
            raise ValueError("`num_steps` fixes equal steps: do not combine it with an adaptive `stepsize_controller`.")
        if isinstance(controller, diffrax.StepTo):
            return
        for name in ("rtol", "atol"):
            v = getattr(controller, name, None)
            if v is not None and V.is_concrete(v):
                V.positive_scalar(v, f"stepsize_controller.{name}")
        if not isinstance(solver, diffrax.AbstractAdaptiveSolver):
            raise ValueError(f"`solver` {type(solver).__name__} has no error estimate for an adaptive controller.")

    @property
    def diffrax_solver(self) -> diffrax.AbstractSolver:
        """The diffrax solver instance (a fresh one for a name)."""
        solver = self.solver
        if isinstance(solver, str):
            if solver not in SOLVERS:
                raise ValueError(f"`solver` must be one of {sorted(SOLVERS)} or a diffrax solver, got {solver!r}.")
            return SOLVERS[solver]()
        if not isinstance(solver, diffrax.AbstractSolver):
            raise V.ArgumentTypeError(
                f"`solver` must be a name or a diffrax.AbstractSolver, got {type(solver).__name__}."
            )
        return solver

    def controller(self, t0, t1):
        """``(controller, dt0, max_steps)`` for a solve from ``t0`` to ``t1`` (the fields already checked)."""
        controller, num_steps = self.stepsize_controller, self.num_steps
        if num_steps is not None:
            controller = diffrax.ConstantStepSize() if controller is None else controller
            return controller, (t1 - t0) / num_steps, max(self.max_steps, num_steps)
        if isinstance(controller, diffrax.StepTo):
            return controller, None, self.max_steps
        if controller is None:
            rtol = DEFAULT_RTOL if self.rtol is None else self.rtol
            atol = DEFAULT_ATOL if self.atol is None else self.atol
            controller = diffrax.PIDController(rtol=rtol, atol=atol, pcoeff=DEFAULT_PCOEFF, icoeff=DEFAULT_ICOEFF)
        return controller, (t1 - t0) * FIRST_STEP_FRACTION, self.max_steps


def flow_map(
    score: Callable[[Array, Array], Array],
    schedule: Schedule,
    x: Float[ArrayLike, "... d"],
    t0: ArrayLike,
    t1: ArrayLike,
    *,
    ode: ODESettings | None = None,
    adjoint: diffrax.AbstractAdjoint | None = None,
    throw: bool = True,
) -> FlowResult:
    """Maps ``x`` (samples at time ``t0``) along the probability flow to time ``t1``.

    Args:
        score: ``score(x, t)`` for ``x`` of shape ``(..., d)`` (an :class:`~jaxotdm.ExactScore`, a
            trained network wrapped as a function, ...).
        schedule: the forward schedule the score belongs to.
        x: points at time ``t0``, shape ``(..., d)``.
        t0: start and end times, both ``> 0``, different; ``t1 < t0`` integrates backward
            (generation), ``t1 > t0`` forward (encoding).
        t1: see ``t0``.
        ode: an :class:`ODESettings` (solver, tolerances or step-size controller, fixed steps, step budget);
            default ``ODESettings()``: Tsit5 with an adaptive PI controller at ``rtol = atol = 1e-6``.
        adjoint: diffrax adjoint for gradients (default: recursive checkpointing, reverse mode;
            pass ``diffrax.ForwardMode()`` for ``jax.jacfwd``/``jvp``).
        throw: as in diffrax: if the solve fails (``max_steps`` ran out, diffrax reported a failure, or
            the points are not finite) raise a ``RuntimeError`` (eagerly; inside ``jit`` through an
            ``equinox`` run-time check attached to ``points``). With ``throw=False`` the result is returned
            and ``success``/``status`` say what happened (eagerly a failure also warns, ``ConvergenceWarning``).

    Returns:
        A :class:`FlowResult` with ``points``, exact ``nfe``, step diagnostics and a ``status``.

    Example:
        >>> import jax, jax.numpy as jnp, jaxotdm as jo
        >>> mu = jo.EmpiricalMeasure(jnp.array([[-1.0], [1.0]]))
        >>> sched = jo.OU()
        >>> z = jax.random.normal(jax.random.key(0), (4, 1))
        >>> out = jo.flow_map(jo.exact_score(mu, sched), sched, z, 8.0, 1e-3)
        >>> out.points.shape, bool(out.success)
        ((4, 1), True)
    """
    if not callable(score):
        raise V.ArgumentTypeError(f"`score` must be callable as score(x, t), got {type(score).__name__}.")
    if not isinstance(schedule, Schedule):
        raise V.ArgumentTypeError(f"`schedule` must be a jaxotdm Schedule, got {type(schedule).__name__}.")
    x = V.as_float_array(x, "x")
    if x.ndim < 1 or x.shape[-1] < 1:
        raise ValueError(f"`x` must have shape (..., d), got {tuple(x.shape)}.")
    dim = getattr(score, "dim", None)
    if isinstance(dim, int) and x.shape[-1] != dim:
        raise ValueError(f"`x` must have last dimension {dim} to match `score`, got shape {tuple(x.shape)}.")
    V.check_finite(x, "x")
    for name, t in (("t0", t0), ("t1", t1)):
        if V.is_concrete(t):
            V.real_scalar(t, name)  # a real number (not a string or a bool), a scalar, finite
        elif jnp.ndim(t) != 0:
            raise ValueError(f"`{name}` must be a scalar, got shape {jnp.shape(t)}.")
        V.check_time(t, name, schedule=schedule, dtype=x.dtype)
    if V.is_concrete(t0) and V.is_concrete(t1) and float(t0) == float(t1):
        raise ValueError(f"`t0` and `t1` must differ, both are {float(t0)}.")
    if ode is None:
        ode = ODESettings()
    elif not isinstance(ode, ODESettings):
        raise V.ArgumentTypeError(f"`ode` must be a jaxotdm.ODESettings, got {type(ode).__name__}.")
    solver = ode.diffrax_solver
    throw = V.check_bool(throw, "throw")
    if adjoint is not None and not isinstance(adjoint, diffrax.AbstractAdjoint):
        raise V.ArgumentTypeError(f"`adjoint` must be a diffrax adjoint, got {type(adjoint).__name__}.")
    overhead, per_step = _evaluations(solver)
    t0 = jnp.asarray(t0, x.dtype)
    t1 = jnp.asarray(t1, x.dtype)
    controller, dt0, max_steps = ode.controller(t0, t1)
    adjoint = diffrax.RecursiveCheckpointAdjoint() if adjoint is None else adjoint
    try:
        out = _solve(score, schedule, x, t0, t1, solver, controller, dt0, max_steps, adjoint, overhead, per_step)
    except TypeError as exc:
        if "forward-mode" not in str(exc) or "custom_vjp" not in str(exc):
            raise
        raise TypeError(
            f"flow_map: forward-mode differentiation (jax.jacfwd, jax.jvp) through the solve needs "
            f"`adjoint=diffrax.ForwardMode()`; the adjoint in use ({type(adjoint).__name__}) supports reverse mode "
            "(jax.grad, jax.jacrev, jax.vjp) only."
        ) from None
    if isinstance(out.status, jax.core.Tracer):  # under jit: the status travels in the result (and the check)
        return _checked(out) if throw else out
    # eagerly: raise (throw=True) or warn (throw=False), the status contract's rule 2
    report(out.status, what="flow_map", throw=throw, warn=True, detail=_failure_advice(out, max_steps, throw))
    return out


def _failure_advice(out: FlowResult, max_steps: int, throw: bool = True) -> str:
    if Status(int(out.status)) == Status.SUCCESS:
        return ""
    code = Status(int(out.status))
    tail = " (or pass throw=False to get the result with its status)" if throw else ""
    if code == Status.MAX_ITERATIONS:
        return (f"all max_steps={max_steps} steps used; raise ODESettings `max_steps` or loosen `rtol`/`atol`"
                + tail)
    if code == Status.NONFINITE:
        return "the score returned NaN or inf along the way; check the score and the times"
    return "see the result's status" + tail
