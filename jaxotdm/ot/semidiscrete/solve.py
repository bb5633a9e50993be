"""The entry point :func:`semidiscrete_ot`: validate, solve through the driver, certify, report; and its Monte Carlo
sample sizes, :class:`SemidiscreteSampling`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxotdm import _validation as V
from jaxotdm._pytree import pytree_dataclass, static_field
from jaxotdm._status import Status, report, status_array
from jaxotdm._streaming import Streaming
from jaxotdm._types import ArrayLike, Float
from jaxotdm.ot.semidiscrete.driver import (
    Progress,
    SemidiscreteDiagnostics,
    SemidiscreteHistory,
    SemidiscreteSolver,
    diagnostics,
    run,
)
from jaxotdm.ot.semidiscrete.exact import ExactNewtonSolver, has_exact_cells
from jaxotdm.ot.semidiscrete.hybrid import HybridNewtonSolver
from jaxotdm.ot.semidiscrete.map import SemidiscreteMap, certificate
from jaxotdm.ot.semidiscrete.problem import (
    DEFAULT_BATCH,
    certificate_unit,
    check_heights,
    check_source,
    check_targets,
    make_problem,
)
from jaxotdm.sharding import check_sharding

__all__ = ["SemidiscreteSampling", "semidiscrete_ot"]


@pytree_dataclass
class SemidiscreteSampling:
    """The Monte Carlo sample sizes of :func:`semidiscrete_ot` (a PyTree with static fields only).

    Attributes:
        batch_size: source samples per streamed batch (each batch is regenerated from its key; memory
            ``O(batch x chunk)``); default 4096.
        certificate_samples: fresh source samples for the certificate (``None``: the solver's final sample
            size, or the certificate unit ``16 / (tol^2 min nu)`` for an exact solver that samples nothing, at
            least ``2^18``; ``0`` skips the certificate).

    Example:
        >>> import jax, jax.numpy as jnp, jaxotdm as jo
        >>> x = jnp.array([[-1.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
        >>> smap = jo.semidiscrete_ot(x, key=jax.random.key(0), tol=0.2,
        ...                           sampling=jo.SemidiscreteSampling(certificate_samples=0))
        >>> smap.certificate is None
        True
        >>> jo.SemidiscreteSampling(batch_size=0)
        Traceback (most recent call last):
        ...
        ValueError: `batch_size` must be an integer >= 1, got 0.
    """

    batch_size: int = static_field(DEFAULT_BATCH)
    certificate_samples: int | None = static_field(None)

    def __post_init__(self):
        V.check_positive_int(self.batch_size, "batch_size")
        if self.certificate_samples is not None:
            V.check_int(self.certificate_samples, "certificate_samples", minimum=0)


def _check_solver(solver):
    """The solver object (``None``: the default, chosen once the problem is known: :func:`default_solver`)."""
    if solver is not None and not isinstance(solver, SemidiscreteSolver):
        raise ValueError(
            "`solver` must be a solver object: ExactNewtonSolver() or HybridNewtonSolver() (the defaults), "
            "NewtonSolver(), AdamSolver() or OTTSolver() (or an instance of a SemidiscreteSolver subclass); got "
            f"{solver!r:.80}."
        )
    return solver


def default_solver(prob) -> SemidiscreteSolver:
    """:class:`ExactNewtonSolver` (exact masses, nothing sampled) for the standard Gaussian source and targets on a
    line or spanning a plane; :class:`HybridNewtonSolver` otherwise."""
    return ExactNewtonSolver() if has_exact_cells(prob) else HybridNewtonSolver()


def _check_setting(value, name: str, cls):
    """``cls()`` for ``None``, else ``value`` if it is a ``cls``."""
    if value is None:
        return cls()
    if not isinstance(value, cls):
        raise V.ArgumentTypeError(f"`{name}` must be a jaxotdm.{cls.__name__}, got {type(value).__name__}.")
    return value


def semidiscrete_ot(
    targets: Float[ArrayLike, "n d"],
    weights: Float[ArrayLike, " n"] | None = None,
    *,
    key,
    tol: float = 0.05,
    solver=None,
    source=None,
    init_heights: Float[ArrayLike, " n"] | None = None,
    sampling: SemidiscreteSampling | None = None,
    streaming: Streaming | None = None,
    progress: Callable[[Progress], object] | None = None,
    throw: bool = True,
) -> SemidiscreteMap:
    r"""Semi-discrete OT from ``source`` (default ``N(0, I_d)``) to ``sum_i nu_i delta_{x_i}``.

    Finds heights ``h`` (mean zero) whose Laguerre cells ``W_i = {z : <z, x_i> + h_i >= <z, x_j> + h_j}`` have
    source masses ``m_i`` within ``tol`` of ``nu_i`` in max relative error, ``max_i |m_i - nu_i| / nu_i``.

    Cost: the unit is one *certificate pass*, ``16 / (tol^2 min nu)`` source samples (``16 n / tol^2`` for
    uniform weights) each scored against all ``n`` targets, ``n x (r + 1)`` multiply-adds per sample with
    ``r = min(n, d)``. The default :class:`HybridNewtonSolver` costs two to three such passes where its
    candidate phase converges; the certificate itself one to three. For ``n = 1797`` targets in ``d = 64`` at
    ``tol = 0.1`` that is ``2.9e6`` samples and ``0.7`` TFLOP
    per pass. On a line or in the plane (targets spanning at most two dimensions, standard Gaussian source) the
    default is :class:`ExactNewtonSolver`: exact masses, nothing sampled, milliseconds per Newton step at
    ``n = 2,048``; only the certificate samples. Memory is ``O(batch x chunk + n x d)`` (plus ``n^2`` for the dense Newton solve, ``n <= 2048``, and
    the Newton solver's stored candidates, ``8 K`` bytes per sample of its final sample: 0.26 GB in that example).

    Under ``jax.jit``: the call traces when the sizes are concrete (``targets``' shape, ``tol`` and ``sampling``:
    Python values or closed over) and the weights are ``None``
    (uniform) or concrete (closed over): the solvers plan their sample sizes on the host from ``min(weights)``,
    so traced ``weights`` raise a ``ValueError`` saying so. Traced targets, ``key`` and ``init_heights`` are
    fine. Inside ``jit`` the distinct-targets check is skipped (values unknown), ``progress`` is refused
    (host callbacks report from eager calls only), the default ``certificate_samples`` is the certificate
    unit ``16 / (tol^2 min nu)`` (at least ``2^18``) instead of the solver's final sample size, the status
    travels in ``diagnostics.status`` (no warning) and ``throw=True`` becomes an ``equinox`` run-time check
    (the compiled call raises when the status is not ``SUCCESS``; pass ``throw=False`` to read the status).

    Args:
        targets: ``(n, d)`` distinct target points ``x_i``.
        weights: ``(n,)`` positive weights summing to one (uniform if omitted).
        key: PRNG key (split internally: one part for the solve, an independent one for the certificate).
        tol: requested max relative cell-mass error, in ``(0, 1)``.
        solver: a :class:`SemidiscreteSolver`. Default (``None``): :class:`ExactNewtonSolver` (exact masses in
            the plane) for the standard Gaussian source and targets spanning a plane, else
            :class:`HybridNewtonSolver` (Newton on stored candidates, falling back to the resampling Newton when
            it stalls). Others: :class:`NewtonSolver`,
            :class:`AdamSolver` (the paper's Algorithm 1) or :class:`OTTSolver` (ott-jax); all run through the
            same driver and diagnostics.
        source: ``None`` (standard Gaussian), a :class:`~jaxotdm.GaussianMeasure`, or a jit-traceable
            ``sampler(key, num_samples) -> (num_samples, d)``.
        init_heights: optional warm start (paper convention).
        sampling: the Monte Carlo sizes, a :class:`SemidiscreteSampling` (source samples per streamed batch,
            certificate samples; default ``SemidiscreteSampling()``).
        streaming: a :class:`~jaxotdm.Streaming`: targets per streamed chunk, samples scored at once, and an
            optional :class:`~jaxotdm.PointSharding` splitting the targets across devices (for the solve, the
            certificate and the returned map; results equal the single-device ones). Default: the streaming
            layer's sizes for the backend, one device.
        progress: optional host callback, called after every solver iteration with a
            :class:`~jaxotdm.ot.semidiscrete.Progress` (iteration, sample size, current error estimate,
            samples scored so far); the solve stays one compiled loop.
        throw: the status contract (:mod:`jaxotdm._status`): called eagerly, a status other than ``SUCCESS``
            (the solver did not converge, or the certificate exceeds ``tol`` by more than its noise floor)
            raises a ``RuntimeError`` naming ``semidiscrete_ot``; with ``throw=False`` the map is returned and
            warns (:class:`~jaxotdm.ConvergenceWarning`), its status in ``diagnostics.status``.

    Returns:
        A :class:`SemidiscreteMap` with mean-zero ``heights``, a :class:`SemidiscreteCertificate` and
        :class:`SemidiscreteDiagnostics` (``converged``, ``status``).

    Example:
        >>> import jax, jax.numpy as jnp, jaxotdm as jo
        >>> x = jnp.array([[-1.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
        >>> smap = jo.semidiscrete_ot(x, key=jax.random.key(0), tol=0.1)
        >>> smap.transport(jnp.zeros((5, 2))).shape
        (5, 2)
        >>> jo.Status(int(smap.diagnostics.status)).name
        'SUCCESS'
    """
    V.check_key(key)
    x, w = check_targets(targets, weights)
    tol = V.fraction(tol, "tol")
    if not isinstance(tol, float):
        raise ValueError("`tol` must be a concrete number in (0, 1).")
    solver = _check_solver(solver)
    sampling = _check_setting(sampling, "sampling", SemidiscreteSampling)
    streaming = _check_setting(streaming, "streaming", Streaming)
    batch_size, certificate_samples = sampling.batch_size, sampling.certificate_samples
    chunk_size = streaming.chunk_size
    if progress is not None and not callable(progress):
        raise ValueError(f"`progress` must be None or a callable, got {type(progress).__name__}.")
    throw = V.check_bool(throw, "throw")
    sharding = check_sharding(streaming.sharding)
    k_solve, k_cert = jax.random.split(key)
    source = check_source(source, x.shape[1], k_cert)
    # the solvers plan sample sizes on the host from min(weights): known for uniform or concrete weights,
    # so the whole solve also runs under jax.jit (traced targets, key or init_heights)
    if weights is None:
        weights_min = 1.0 / x.shape[0]
    elif V.is_concrete(weights):  # the caller's values (under jit, ``w`` is a tracer even for closed-over weights)
        weights_min = float(np.min(np.asarray(weights, np.float64)))
    else:
        weights_min = None
    prob = make_problem(x, w, source, batch_size, chunk_size, sharding, query_block=streaming.query_block,
                        weights_min=weights_min)
    h0 = None if init_heights is None else check_heights(init_heights, x.shape[0], x.dtype, "init_heights")
    solver = default_solver(prob) if solver is None else solver
    if x.shape[0] == 1:
        h = jnp.zeros((1,), x.dtype)
        diag = SemidiscreteDiagnostics(jnp.asarray(0), jnp.asarray(True), jnp.zeros((), x.dtype), jnp.asarray(0),
                                       SemidiscreteHistory.empty(1, x.dtype), solver.name,
                                       status_array(Status.SUCCESS), jnp.zeros((), x.dtype))
    else:
        solve_prob = dataclasses.replace(prob, antithetic=True)
        state = solver.init(solve_prob, tol=tol, key=k_solve, init_heights=h0)
        state = run(solver, solve_prob, state, progress=progress)
        diag = diagnostics(solver, state, failed=getattr(state, "failed", None))
        h = state.heights
    cert = None
    if certificate_samples is None:
        if V.is_concrete(diag.final_samples) and int(diag.final_samples) > 0:
            certificate_samples = max(int(diag.final_samples), 2**18)
        else:  # traced (under jit) or 0 (an exact solver): the certificate unit
            certificate_samples = max(certificate_unit(prob.min_weight(solver.name), tol), 2**18)
    if certificate_samples:
        cert = certificate(prob, h, k_cert, int(certificate_samples))
        off = (diag.status == Status.SUCCESS) & (cert.max_relative_error > tol + cert.noise_floor)
        diag = diag.replace(status=jnp.where(off, status_array(Status.TOLERANCE_NOT_CERTIFIED), diag.status))
    if not V.is_concrete(diag.status):  # under jit: the status travels in the result (``throw`` still checks)
        diag = diag.replace(status=report(diag.status, what="semidiscrete_ot", throw=throw, warn=False))
        return SemidiscreteMap(x, w, h, cert, diag, chunk_size, batch_size, sharding)
    detail = f"tol {tol:g}, solver {solver.name}, {int(diag.iterations)} iterations"
    if cert is not None:
        detail += (f", certificate {float(cert.max_relative_error):.3g} (noise floor {float(cert.noise_floor):.3g},"
                   f" {int(cert.num_samples)} samples)")
    if solver.name == ExactNewtonSolver.name and x.dtype != jnp.float64 and int(diag.status) != Status.SUCCESS:
        detail += (f"; the exact solve's heights are rounded to {x.dtype}, whose spacing bounds the cell-mass error "
                   "attainable with many small cells: pass float64 targets (jax_enable_x64) for more")
    if throw:
        detail += "; pass throw=False to get the map with its status"
    report(diag.status, what="semidiscrete_ot", throw=throw, warn=True, detail=detail)  # report_result's rule 2
    return SemidiscreteMap(x, w, h, cert, diag, chunk_size, batch_size, sharding)
