"""The Sinkhorn divergence as a sample-quality metric (scale-free ``epsilon``, with diagnostics) and the
``W2`` estimate ``sqrt(S_eps)`` between point clouds.

:func:`sinkhorn_estimate` is a thin wrapper of the package's one implementation of the debiased Sinkhorn
divergence (:mod:`jaxotdm.ot.entropic`; :func:`jaxotdm.ot.sinkhorn_divergence` is the same quantity with
an absolute ``epsilon``, returned as a scalar).
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxotdm import _validation as V
from jaxotdm._pytree import pytree_dataclass
from jaxotdm._types import Array, ArrayLike, Bool, Float, Int
from jaxotdm.metrics._common import _pair
from jaxotdm.ot.entropic import divergence_with_diagnostics

__all__ = ["SinkhornResult", "sinkhorn_estimate", "wasserstein2"]


@pytree_dataclass
class SinkhornResult:
    """Debiased Sinkhorn divergence with its solver diagnostics.

    Attributes:
        divergence: ``S_eps`` (squared-Euclidean cost, so comparable to ``W2^2``).
        epsilon: the regularisation used.
        converged: all three Sinkhorn solves converged.
        iterations: iterations of the ``x``-``y`` solve.
    """

    divergence: Float[Array, ""]
    epsilon: Float[Array, ""]
    converged: Bool[Array, ""]
    iterations: Int[Array, ""]


def sinkhorn_estimate(
    x: Float[ArrayLike, "n d"],
    y: Float[ArrayLike, "m d"],
    *,
    epsilon: float = 0.05,
    relative_epsilon: bool = True,
    a: Float[ArrayLike, " n"] | None = None,
    b: Float[ArrayLike, " m"] | None = None,
    threshold: float = 1e-4,
    max_iterations: int = 5000,
) -> SinkhornResult:
    """Debiased Sinkhorn divergence between two weighted point clouds, as a sample-quality metric.

    The quantity of :func:`jaxotdm.ot.sinkhorn_divergence` (cost ``|x - y|^2``, ott-jax, one
    implementation), with ``epsilon`` relative to the clouds' mean squared distance by default (so the
    metric is scale-free) and the solver's diagnostics in the result.

    Args:
        x: ``(n, d)`` and ``(m, d)`` samples (e.g. generated samples and held-out data).
        y: see ``x``.
        epsilon: entropic regularisation; with ``relative_epsilon`` (default) it is a multiple of
            the mean squared distance between the clouds, which makes it scale-free.
        a: weights (uniform by default).
        b: see ``a``.
        threshold: Sinkhorn stopping rule (marginal error) and budget.
        max_iterations: see ``threshold``.

    Returns:
        A :class:`SinkhornResult`; check ``converged``.

    Example:
        >>> import jax
        >>> from jaxotdm.metrics import sinkhorn_estimate
        >>> x = jax.random.normal(jax.random.key(0), (64, 2))
        >>> float(sinkhorn_estimate(x, x).divergence) < 1e-6
        True
    """
    x, y = _pair(x, y, "x", "y")
    epsilon = V.positive_scalar(epsilon, "epsilon")
    threshold = V.positive_scalar(threshold, "threshold")
    relative_epsilon = V.check_bool(relative_epsilon, "relative_epsilon")
    max_iterations = V.check_positive_int(max_iterations, "max_iterations")
    a = V.weights(a, x.shape[0], "a", dtype=x.dtype)
    b = V.weights(b, y.shape[0], "b", dtype=x.dtype)
    div, eps, converged, iterations = divergence_with_diagnostics(
        x, y, a, b, epsilon=jnp.asarray(epsilon, x.dtype), relative_epsilon=jnp.asarray(bool(relative_epsilon)),
        threshold=jnp.asarray(threshold, x.dtype), max_iterations=max_iterations,
    )
    return SinkhornResult(div, eps, converged, iterations)


def wasserstein2(
    x: Float[ArrayLike, "n d"],
    y: Float[ArrayLike, "m d"],
    *,
    epsilon: float = 3e-3,
    a: Float[ArrayLike, " n"] | None = None,
    b: Float[ArrayLike, " m"] | None = None,
    threshold: float = 1e-5,
    max_iterations: int = 20_000,
) -> Float[Array, ""]:
    """``W2`` between two empirical measures, estimated as ``sqrt(S_eps)`` at a small relative ``epsilon``.

    ``epsilon`` is relative to the mean squared distance between the clouds; the debiased divergence
    approaches ``W2^2`` as ``epsilon -> 0`` (tested against an exact assignment: about 0.1% low at the
    default on 30 points in 2-D). Smaller ``epsilon`` needs more Sinkhorn iterations; use
    :func:`sinkhorn_estimate` to see ``converged``. For a held-out comparison, ``x`` are samples and
    ``y`` held-out data.

    Example:
        >>> import jax.numpy as jnp
        >>> from jaxotdm.metrics import wasserstein2
        >>> round(float(wasserstein2(jnp.array([[0.0], [1.0]]), jnp.array([[2.0], [3.0]]))), 3)
        2.0
    """
    res = sinkhorn_estimate(
        x, y, epsilon=epsilon, relative_epsilon=True, a=a, b=b, threshold=threshold, max_iterations=max_iterations
    )
    return jnp.sqrt(jnp.maximum(res.divergence, 0.0))
