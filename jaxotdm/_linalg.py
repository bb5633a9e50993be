"""Small dense linear algebra of Gaussians, written once: PSD square roots, Bures-Wasserstein, Brenier maps.

Pure ``jnp`` functions on already validated matrices (validate with :func:`jaxotdm._validation.covariance`
first: these functions symmetrise their inputs and clip eigenvalues that rounding pushed below zero, which
is only right for matrices already known to be symmetric positive semi-definite). They work under
``jit``/``vmap``/``grad`` (gradients of square roots are infinite at zero eigenvalues).

Used by :mod:`jaxotdm.measures` (Gaussian sampling), :mod:`jaxotdm.ot.w2` (``bures_w2``,
``gaussian_ot_map``) and meant for every other Gaussian closed form of the package (e.g. the Frechet
distance of :mod:`jaxotdm.metrics`, which is :func:`bures_squared`).
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxotdm._types import Array

__all__ = ["symmetrize", "psd_eigh", "psd_sqrt", "psd_inv_sqrt", "sqrt_trace_product", "bures_squared",
           "bures", "gaussian_ot_map"]


def symmetrize(c: Array) -> Array:
    """``(C + C^T) / 2``."""
    return 0.5 * (c + jnp.swapaxes(c, -1, -2))


def psd_eigh(c: Array) -> tuple[Array, Array]:
    """Eigenvalues (clipped at zero) and eigenvectors of a symmetric PSD matrix."""
    w, v = jnp.linalg.eigh(symmetrize(c))
    return jnp.maximum(w, 0.0), v


def psd_sqrt(c: Array) -> Array:
    """The symmetric square root ``C^{1/2}`` of a PSD matrix."""
    w, v = psd_eigh(c)
    return (v * jnp.sqrt(w)[..., None, :]) @ jnp.swapaxes(v, -1, -2)


def psd_inv_sqrt(c: Array) -> Array:
    """``C^{-1/2}`` of a positive definite matrix."""
    w, v = jnp.linalg.eigh(symmetrize(c))
    return (v / jnp.sqrt(w)[..., None, :]) @ jnp.swapaxes(v, -1, -2)


def sqrt_trace_product(s1: Array, s2: Array) -> Array:
    """``tr (S1^{1/2} S2 S1^{1/2})^{1/2}`` (the cross term of the Bures distance), from the eigenvalues of
    the symmetric PSD matrix ``S1^{1/2} S2 S1^{1/2}``."""
    r1 = psd_sqrt(s1)
    w = jnp.linalg.eigvalsh(symmetrize(r1 @ s2 @ r1))
    return jnp.sum(jnp.sqrt(jnp.maximum(w, 0.0)), axis=-1)


def bures_squared(m1: Array, s1: Array, m2: Array, s2: Array) -> Array:
    """``W2(N(m1, S1), N(m2, S2))^2 = |m1 - m2|^2 + tr S1 + tr S2 - 2 tr (S1^{1/2} S2 S1^{1/2})^{1/2}``
    (the Frechet distance of FID).

    Evaluated without cancellation as an orthogonal Procrustes residual,
    ``min_U |S1^{1/2} - S2^{1/2} U|_F^2`` with ``U = P Q^T`` from the SVD ``S2^{1/2} S1^{1/2} = P Sigma Q^T``:
    a sum of squares of differences, so nearly equal covariances (``W2 ~ 1e-8`` next to traces of 1) keep
    their relative accuracy, where the trace formula loses every digit.
    """
    a, b = psd_sqrt(s1), psd_sqrt(s2)
    p, _, qt = jnp.linalg.svd(jnp.swapaxes(b, -1, -2) @ a)
    diff = a - b @ (p @ qt)
    return jnp.sum((m1 - m2) ** 2, axis=-1) + jnp.sum(diff * diff, axis=(-2, -1))


def bures(m1: Array, s1: Array, m2: Array, s2: Array) -> Array:
    """``W2(N(m1, S1), N(m2, S2))``."""
    return jnp.sqrt(bures_squared(m1, s1, m2, s2))


def gaussian_ot_map(m1: Array, s1: Array, m2: Array, s2: Array) -> tuple[Array, Array]:
    """The Brenier map ``x -> A x + b`` from ``N(m1, S1)`` (``S1`` positive definite) to ``N(m2, S2)``:
    ``A = S1^{-1/2} (S1^{1/2} S2 S1^{1/2})^{1/2} S1^{-1/2}`` (symmetric PSD), ``b = m2 - A m1``."""
    w, v = jnp.linalg.eigh(symmetrize(s1))
    vt = jnp.swapaxes(v, -1, -2)
    r1 = (v * jnp.sqrt(w)[..., None, :]) @ vt
    r1i = (v / jnp.sqrt(w)[..., None, :]) @ vt
    a = symmetrize(r1i @ psd_sqrt(r1 @ s2 @ r1) @ r1i)
    return a, m2 - (a @ m1[..., None])[..., 0]
