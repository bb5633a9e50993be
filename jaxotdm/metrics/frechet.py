"""Frechet (squared Bures-Wasserstein) distance between Gaussians."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxotdm import _validation as V
from jaxotdm._types import Array, ArrayLike, Float

__all__ = ["frechet_distance"]


def _sqrtm_psd(c):
    w, v = jnp.linalg.eigh(0.5 * (c + c.T))
    return (v * jnp.sqrt(jnp.maximum(w, 0.0))) @ v.T


@jax.jit
def _frechet(m1, c1, m2, c2):
    r1 = _sqrtm_psd(c1)
    mid = r1 @ c2 @ r1
    w = jnp.linalg.eigvalsh(0.5 * (mid + mid.T))
    tr_sqrt = jnp.sum(jnp.sqrt(jnp.maximum(w, 0.0)))
    diff = m1 - m2
    return jnp.dot(diff, diff) + jnp.trace(c1) + jnp.trace(c2) - 2.0 * tr_sqrt


def frechet_distance(
    mean1: Float[ArrayLike, " d"], cov1: Float[ArrayLike, "d d"], mean2: Float[ArrayLike, " d"], cov2: Float[ArrayLike, "d d"]
) -> Float[Array, ""]:
    """Frechet (squared Bures-Wasserstein) distance between ``N(mean1, cov1)`` and ``N(mean2, cov2)``.

    ``|m1 - m2|^2 + tr(S1 + S2 - 2 (S1^{1/2} S2 S1^{1/2})^{1/2})``, computed with symmetric
    eigendecompositions (no non-symmetric ``sqrtm``). This is the squared ``W2`` between the Gaussians.

    Example:
        >>> import jax.numpy as jnp
        >>> from jaxotdm.metrics import frechet_distance
        >>> float(frechet_distance(jnp.zeros(2), jnp.eye(2), jnp.ones(2), 4 * jnp.eye(2)))
        4.0
    """
    m1 = V.as_float_array(mean1, "mean1")
    V.check_ndim(m1, 1, "mean1", "(d,)")
    d = m1.shape[0]
    out = [m1]
    for name, arr, shape in (("cov1", cov1, (d, d)), ("mean2", mean2, (d,)), ("cov2", cov2, (d, d))):
        arr = V.as_float_array(arr, name, dtype=m1.dtype)
        if arr.shape != shape:
            raise ValueError(f"`{name}` must have shape {shape}, got {tuple(arr.shape)}.")
        V.check_finite(arr, name)
        if arr.ndim == 2:
            _check_covariance(arr, name)
        out.append(arr)
    V.check_finite(m1, "mean1")
    return _frechet(*out)


def _check_covariance(c, name: str, rtol: float = 1e-6) -> None:
    """A covariance must be symmetric and positive semi-definite (up to ``rtol`` of its largest entry)."""
    if not V.is_concrete(c):
        return
    c = np.asarray(c, np.float64)
    scale = max(float(np.max(np.abs(c))), np.finfo(np.float64).tiny)
    if float(np.max(np.abs(c - c.T))) > rtol * scale * 10:
        raise ValueError(f"`{name}` must be a symmetric covariance matrix (|C - C^T| up to "
                         f"{float(np.max(np.abs(c - c.T))):.3g}).")
    low = float(np.min(np.linalg.eigvalsh(0.5 * (c + c.T))))
    if low < -rtol * scale * c.shape[0]:
        raise ValueError(f"`{name}` must be positive semi-definite (smallest eigenvalue {low:.3g}).")


def _moments(f):
    m = jnp.mean(f, axis=0)
    c = (f - m).T @ (f - m) / (f.shape[0] - 1)
    return m, c
