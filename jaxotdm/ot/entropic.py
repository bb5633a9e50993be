"""Entropic OT between point clouds (Sinkhorn, through ott-jax) and the Sinkhorn divergence.

Cost convention: squared Euclidean ``|x - y|^2`` (no 1/2), so ``sinkhorn(...).primal_cost`` estimates
``W2^2`` as ``epsilon -> 0``. ``epsilon`` is absolute (in units of the cost).

:func:`divergence_with_diagnostics` is the one implementation of the debiased Sinkhorn divergence in the
package: :func:`sinkhorn_divergence` (absolute ``epsilon``, a scalar) and
:func:`jaxotdm.metrics.sinkhorn_estimate` (``epsilon`` relative to the clouds' mean squared distance by
default, a result with the solver's diagnostics) both call it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxotdm import _validation as V
from jaxotdm._ott import ott
from jaxotdm._pytree import pytree_dataclass
from jaxotdm._status import Status, report_result, status_array
from jaxotdm._types import Array, ArrayLike, Float, Int

__all__ = ["EntropicResult", "sinkhorn", "sinkhorn_divergence"]


@pytree_dataclass
class EntropicResult:
    """Output of :func:`sinkhorn`.

    Attributes:
        reg_ot_cost: the entropic OT cost ``<P, C> + epsilon KL(P | a b^T)`` (ott-jax's ``reg_ot_cost``).
        primal_cost: the transport cost ``<P, C>`` of the entropic plan ``P = exp((f + g - C) / epsilon)``
            (ott-jax's ``primal_cost``, computed in one streamed pass over the cost).
        f, g: dual potentials. converged: ott's flag. iterations: Sinkhorn iterations.
        matrix: the ``(n, m)`` plan (materialised; use ``return_matrix=False`` for large clouds).
        status: ``int32`` :class:`~jaxotdm.Status`: ``SUCCESS``; ``MAX_ITERATIONS`` (the marginal error is
            still above ``threshold`` after ``max_iterations``); ``NONFINITE`` (NaN/inf costs or potentials).
    """

    reg_ot_cost: Float[Array, ""]
    primal_cost: Float[Array, ""]
    f: Float[Array, " n"]
    g: Float[Array, " m"]
    converged: Array
    iterations: Array
    matrix: Array | None
    status: Int[Array, ""]


def _check_values(v, name: str) -> None:
    """Finiteness checked in numpy, only on concrete inputs: never touches ``jnp`` (which is traced under a
    user's ``jit`` even for concrete arrays), so the public functions work eagerly and inside ``jit``."""
    if not V.is_concrete(v):
        return
    arr = np.asarray(v)
    bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
    if bad:
        raise ValueError(f"`{name}` has {bad} non-finite (NaN or inf) entries.")


def _clouds(x, y, a, b):
    x_in, y_in = x, y  # checked as given: numpy on concrete inputs, nothing on tracers
    x = V.as_float_array(x, "x")
    y = V.as_float_array(y, "y", dtype=x.dtype)
    V.check_ndim(x, 2, "x", "(n, d)")
    V.check_ndim(y, 2, "y", "(m, d)")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"`x` and `y` must have the same dimension, got {x.shape[1]} and {y.shape[1]}.")
    for arr, name in ((x, "x"), (y, "y")):
        if arr.shape[0] == 0:
            raise ValueError(f"`{name}` must hold at least one point, got shape {tuple(arr.shape)}.")
    _check_values(x_in, "x")
    _check_values(y_in, "y")
    out = []
    for w, name, k in ((a, "a", x.shape[0]), (b, "b", y.shape[0])):
        if w is None:
            out.append(jnp.full((k,), 1.0 / k, x.dtype))
            continue
        w_in, w = w, V.as_float_array(w, name, dtype=x.dtype)
        if w.shape != (k,):
            raise ValueError(f"`{name}` must have shape ({k},), got {w.shape}.")
        if V.is_concrete(w_in):  # numpy only (see _check_values); the package's one tolerance policy
            V.np_weights(np.asarray(w_in), k, name)
        out.append(w)
    return x, y, out[0], out[1]


def _check_eps(epsilon):
    V.positive_scalar(epsilon, "epsilon")


def _check_settings(x, y, threshold):
    """The stopping threshold is a finite number > 0 (the clouds are checked by ``_clouds``)."""
    del x, y
    V.positive_scalar(threshold, "threshold")


def sinkhorn(
    x: Float[ArrayLike, "n d"],
    y: Float[ArrayLike, "m d"],
    a: Float[ArrayLike, " n"] | None = None,
    b: Float[ArrayLike, " m"] | None = None,
    *,
    epsilon: float,
    threshold: float = 1e-4,
    max_iterations: int = 5000,
    return_matrix: bool = True,
    throw: bool = True,
) -> EntropicResult:
    """Entropic OT between two weighted point clouds with ott-jax's Sinkhorn (log domain).

    Inputs are validated eagerly when concrete; the function can also be called inside a user's
    ``jax.jit`` (traced clouds, weights or ``epsilon`` skip the value checks). ``threshold`` bounds the
    L1 marginal error at stopping. The status contract (:mod:`jaxotdm._status`): called eagerly with
    ``throw=True`` (the default), a run that did not converge raises; ``throw=False`` warns; under ``jit``
    the result's ``status`` says what happened.

    Example:
        >>> import jax, jaxotdm.ot as jot
        >>> x = jax.random.normal(jax.random.key(0), (64, 2)); y = x + 1.0
        >>> out = jot.sinkhorn(x, y, epsilon=0.05)
        >>> bool(out.converged)
        True
    """
    x, y, a, b = _clouds(x, y, a, b)
    _check_eps(epsilon)
    _check_settings(x, y, threshold)
    V.check_positive_int(max_iterations, "max_iterations")
    V.check_bool(throw, "throw")
    out = _sinkhorn_jit(x, y, a, b, epsilon, threshold, max_iterations, return_matrix)
    return report_result(out, what="sinkhorn", throw=throw,
                         detail=f"epsilon {epsilon}, threshold {threshold:g}, max_iterations {max_iterations}")


_BLOCK_ELEMENTS = 1 << 20  # entries of the plan held at once by the streamed transport cost


def _transport_cost(x, y, f, g, epsilon):
    """``<P, C> = sum_ij exp((f_i + g_j - C_ij) / epsilon) C_ij`` for ``C_ij = |x_i - y_j|^2``, streamed
    over blocks of rows so that at most ``_BLOCK_ELEMENTS`` entries of ``P`` and ``C`` exist at once.

    The plan is ott-jax's ``transport_from_potentials`` and the cost is formed as ott forms it
    (``|x|^2 + |y|^2 - 2 x.y``); this is ``SinkhornOutput.primal_cost`` computed in one pass over the
    cost instead of ott's ``d + 2`` log-domain applications of the plan.
    """
    ny = jnp.sum(y * y, axis=-1)

    def row(xi_fi):
        xi, fi = xi_fi
        c = jnp.sum(xi * xi) + ny - 2.0 * (y @ xi)
        return jnp.sum(jnp.exp((fi + g - c) / epsilon) * c)

    rows = max(1, min(x.shape[0], _BLOCK_ELEMENTS // max(1, y.shape[0])))
    return jnp.sum(jax.lax.map(row, (x, f), batch_size=rows))


def _sinkhorn_impl(x, y, a, b, epsilon, threshold, max_iterations, return_matrix):
    o = ott()
    geom = o.geometry.pointcloud.PointCloud(x, y, epsilon=epsilon)
    prob = o.problems.linear.linear_problem.LinearProblem(geom, a=a, b=b)
    out = o.solvers.linear.sinkhorn.Sinkhorn(threshold=threshold, max_iterations=max_iterations)(prob)
    primal = _transport_cost(x, y, out.f, out.g, geom.epsilon)
    finite = jnp.isfinite(out.reg_ot_cost) & jnp.isfinite(primal) & jnp.all(jnp.isfinite(out.f))
    status = jnp.where(finite, jnp.where(out.converged, Status.SUCCESS, Status.MAX_ITERATIONS), Status.NONFINITE)
    return EntropicResult(
        out.reg_ot_cost, primal, out.f, out.g, out.converged, out.n_iters, out.matrix if return_matrix else None,
        status_array(status),
    )


_sinkhorn_jit = jax.jit(_sinkhorn_impl, static_argnums=(6, 7))


def sinkhorn_divergence(
    x: Float[ArrayLike, "n d"],
    y: Float[ArrayLike, "m d"],
    a: Float[ArrayLike, " n"] | None = None,
    b: Float[ArrayLike, " m"] | None = None,
    *,
    epsilon: float,
    threshold: float = 1e-4,
    max_iterations: int = 5000,
) -> Float[Array, ""]:
    """The debiased Sinkhorn divergence ``S_eps(a, b) = OT_eps(a, b) - (OT_eps(a, a) + OT_eps(b, b)) / 2``
    for the cost ``|x - y|^2`` (ott-jax), with an absolute ``epsilon``. It is non-negative, zero iff the
    measures agree, and tends to ``W2^2`` as ``epsilon -> 0``.

    For a sample-quality metric with a scale-free ``epsilon`` and the solver's diagnostics, use
    :func:`jaxotdm.metrics.sinkhorn_estimate` (same computation).

    Example:
        >>> import jax, jaxotdm.ot as jot
        >>> x = jax.random.normal(jax.random.key(0), (64, 2))
        >>> float(jot.sinkhorn_divergence(x, x + 1.0, epsilon=0.05)) > 0.9
        True
    """
    x, y, a, b = _clouds(x, y, a, b)
    _check_eps(epsilon)
    _check_settings(x, y, threshold)
    V.check_positive_int(max_iterations, "max_iterations")
    return divergence_with_diagnostics(x, y, a, b, epsilon=epsilon, relative_epsilon=False, threshold=threshold,
                                       max_iterations=max_iterations)[0]


def divergence_with_diagnostics(x, y, a, b, *, epsilon, relative_epsilon, threshold, max_iterations: int):
    """The debiased Sinkhorn divergence and its diagnostics, for inputs the caller has validated.

    The one implementation behind :func:`sinkhorn_divergence` and :func:`jaxotdm.metrics.sinkhorn_estimate`
    (not exported from :mod:`jaxotdm.ot`). The clouds are centred on ``mean(y)`` first (the cost is
    translation invariant; ott forms it as ``|x|^2 + |y|^2 - 2 x.y``, which loses digits far from the origin).

    Args:
        x, y: ``(n, d)`` and ``(m, d)`` clouds; ``a``, ``b``: their weights (arrays).
        epsilon: the regularisation, absolute or (``relative_epsilon``) a multiple of the mean squared
            distance between the clouds. ``relative_epsilon`` may be a traced boolean.
        threshold, max_iterations: the Sinkhorn stopping rule (``max_iterations`` static).

    Returns:
        ``(divergence, epsilon_used, converged, iterations)``: ``converged`` is true when all three Sinkhorn
        solves converged, ``iterations`` those of the ``x``-``y`` solve.
    """
    return _divergence_jit(x, y, a, b, epsilon, relative_epsilon, threshold, max_iterations=int(max_iterations))


@jax.jit(static_argnames=("max_iterations",))
def _divergence_jit(x, y, a, b, epsilon, relative, threshold, *, max_iterations):
    c = jnp.mean(y, axis=0)
    x, y = x - c, y - c
    mean_cost = jnp.mean(jnp.sum(x * x, 1)) + jnp.mean(jnp.sum(y * y, 1)) - 2.0 * jnp.dot(jnp.mean(x, 0), jnp.mean(y, 0))
    eps = jnp.where(relative, epsilon * mean_cost, epsilon)
    o = ott()
    div, out = o.tools.sinkhorn_divergence.sinkhorn_divergence(
        o.geometry.pointcloud.PointCloud, x, y, a=a, b=b, epsilon=eps,
        solve_kwargs={"threshold": threshold, "max_iterations": max_iterations},
    )
    converged = jnp.all(jnp.asarray([jnp.asarray(cv) for cv in out.converged if cv is not None]))
    return div, eps, converged, jnp.asarray(out.n_iters[0])
