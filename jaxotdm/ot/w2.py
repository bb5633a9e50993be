"""Wasserstein-2 distances: exact for samples, Gaussian closed forms (Bures), Gaussian-to-discrete.

* :func:`w2_exact`: exact W2 between two weighted point clouds (host-side: scipy's assignment solver for
  equal sizes with uniform weights, otherwise an exact LP through POT's ``ot.emd2`` when installed or
  scipy's HiGHS ``linprog``). Refuses problems above ``max_points`` points per side.
* :func:`bures_w2` and :func:`gaussian_ot_map`: the closed forms between ``N(m1, S1)`` and ``N(m2, S2)``.
* :func:`w2_gaussian_to_discrete`: ``W2(N(0, I), sum nu_i delta_{x_i})^2 = E|z - T(z)|^2`` through the
  semi-discrete map ``T``, with a Monte Carlo standard error.
* :func:`pushforward_w2`: W2 between ``grad u_h # source`` (cell masses ``m_i``) and the target weights
  ``nu_i`` on the same support: the exact LP between two discrete measures on the targets; zero iff the
  masses match (Lemma 3.5 of the paper).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxotdm import _linalg as L
from jaxotdm import _validation as V
from jaxotdm._pytree import pytree_dataclass, static_field
from jaxotdm._types import Array, ArrayLike, Float

__all__ = ["W2Estimate", "bures_w2", "gaussian_ot_map", "pushforward_w2", "w2_exact", "w2_gaussian_to_discrete"]


def _np_cloud(x, name):
    return V.np_points(x, name)


def _np_weights(w, n, name):
    return V.np_weights(w, n, name)


def _exact_lp(a, b, cost):
    """Exact OT cost ``min <P, C>`` with marginals ``a, b`` (POT's network simplex, else HiGHS)."""
    try:
        import ot  # noqa: PLC0415

        return float(ot.emd2(a, b, cost, numItermax=10_000_000))
    except ImportError:
        pass
    from scipy.optimize import linprog
    from scipy.sparse import coo_matrix, vstack

    n, m = cost.shape
    rows = np.repeat(np.arange(n), m)
    cols = np.arange(n * m)
    A1 = coo_matrix((np.ones(n * m), (rows, cols)), shape=(n, n * m))
    A2 = coo_matrix((np.ones(n * m), (np.tile(np.arange(m), n), cols)), shape=(m, n * m))
    res = linprog(cost.ravel(), A_eq=vstack([A1, A2]), b_eq=np.concatenate([a, b]), bounds=(0, None),
                  method="highs")
    if not res.success:  # pragma: no cover - LP with feasible marginals always solves
        raise RuntimeError(f"exact OT LP failed: {res.message}")
    return float(res.fun)


def w2_exact(
    x: Float[ArrayLike, "n d"],
    y: Float[ArrayLike, "m d"],
    a: Float[ArrayLike, " n"] | None = None,
    b: Float[ArrayLike, " m"] | None = None,
    *,
    max_points: int = 5000,
) -> float:
    """Exact ``W2`` between ``sum a_i delta_{x_i}`` and ``sum b_j delta_{y_j}`` (host-side, float64).

    Equal sizes with uniform weights use ``scipy.optimize.linear_sum_assignment`` (an optimal plan is a
    permutation); otherwise the exact LP (POT ``ot.emd2`` if importable, else scipy HiGHS).

    Raises:
        ValueError: bad input, or more than ``max_points`` points on a side (use
            :func:`~jaxotdm.ot.sinkhorn_divergence` for large clouds).

    Example:
        >>> import numpy as np, jaxotdm.ot as jot
        >>> round(jot.w2_exact(np.zeros((3, 2)), np.ones((3, 2))), 6)
        1.414214
    """
    x = _np_cloud(x, "x")
    y = _np_cloud(y, "y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"`x` and `y` must have the same dimension, got {x.shape[1]} and {y.shape[1]}.")
    n, m = x.shape[0], y.shape[0]
    max_points = V.check_positive_int(max_points, "max_points")
    if max(n, m) > max_points:
        raise ValueError(
            f"w2_exact is limited to {max_points} points per side (got {n} and {m}): the exact solvers cost "
            "O(n^3). Subsample, raise `max_points`, or use sinkhorn_divergence."
        )
    a = _np_weights(a, n, "a")
    b = _np_weights(b, m, "b")
    cost = np.sum(x**2, 1)[:, None] + np.sum(y**2, 1)[None, :] - 2.0 * x @ y.T
    cost = np.maximum(cost, 0.0)
    uniform = (a is None or np.allclose(a, 1.0 / n)) and (b is None or np.allclose(b, 1.0 / m))
    if n == m and uniform:
        from scipy.optimize import linear_sum_assignment

        r, c = linear_sum_assignment(cost)
        return math.sqrt(max(cost[r, c].mean(), 0.0))
    a = np.full(n, 1.0 / n) if a is None else a
    b = np.full(m, 1.0 / m) if b is None else b
    return math.sqrt(max(_exact_lp(a / a.sum(), b / b.sum(), cost), 0.0))


def _gauss_args(mean1, cov1, mean2, cov2, *, definite1=False):
    """Validated ``(m1, S1, m2, S2)``: finite means of one dimension ``d``, symmetric PSD covariances (``S1``
    positive definite if ``definite1``); invalid covariances are rejected, never clipped."""
    m1 = V.as_float_array(mean1, "mean1")
    V.check_ndim(m1, 1, "mean1", "(d,)")
    dtype = m1.dtype
    d = m1.shape[0]
    if d < 1:
        raise ValueError("`mean1` must have at least one entry.")
    V.check_finite(m1, "mean1")
    m2 = V.as_float_array(mean2, "mean2", dtype=dtype)
    if m2.shape != (d,):
        raise ValueError(f"`mean2` must have shape ({d},) to match `mean1`, got shape {tuple(m2.shape)}.")
    V.check_finite(m2, "mean2")
    s1 = V.covariance(cov1, "cov1", d, dtype=dtype, definite=definite1)
    s2 = V.covariance(cov2, "cov2", d, dtype=dtype)
    return m1, s1, m2, s2


def bures_w2(
    mean1: Float[ArrayLike, " d"], cov1: Float[ArrayLike, "d d"], mean2: Float[ArrayLike, " d"],
    cov2: Float[ArrayLike, "d d"],
) -> Float[Array, ""]:
    """``W2(N(m1, S1), N(m2, S2))`` in closed form:
    ``W2^2 = |m1 - m2|^2 + tr S1 + tr S2 - 2 tr (S1^{1/2} S2 S1^{1/2})^{1/2}``.

    Covariances must be symmetric positive semi-definite (within the package's tolerance,
    :func:`jaxotdm._validation.covariance`); anything else raises a ``ValueError`` naming it.

    Example:
        >>> import jax.numpy as jnp, jaxotdm.ot as jot
        >>> float(jot.bures_w2(jnp.zeros(2), jnp.eye(2), jnp.ones(2), 4 * jnp.eye(2)) ** 2)
        4.0
    """
    m1, s1, m2, s2 = _gauss_args(mean1, cov1, mean2, cov2)
    return _bures(m1, s1, m2, s2)


_bures = jax.jit(L.bures)


def gaussian_ot_map(
    mean1: Float[ArrayLike, " d"], cov1: Float[ArrayLike, "d d"], mean2: Float[ArrayLike, " d"],
    cov2: Float[ArrayLike, "d d"],
) -> tuple[Float[Array, "d d"], Float[Array, " d"]]:
    """The Brenier map ``T(x) = A x + b`` from ``N(m1, S1)`` to ``N(m2, S2)`` (``S1`` positive definite):
    ``A = S1^{-1/2} (S1^{1/2} S2 S1^{1/2})^{1/2} S1^{-1/2}`` (symmetric PSD), ``b = m2 - A m1``.

    Example:
        >>> import jax.numpy as jnp, jaxotdm.ot as jot
        >>> A, b = jot.gaussian_ot_map(jnp.zeros(2), jnp.eye(2), jnp.ones(2), 4 * jnp.eye(2))
        >>> A.tolist(), b.tolist()
        ([[2.0, 0.0], [0.0, 2.0]], [1.0, 1.0])
    """
    m1, s1, m2, s2 = _gauss_args(mean1, cov1, mean2, cov2, definite1=True)
    return _gauss_map(m1, s1, m2, s2)


_gauss_map = jax.jit(L.gaussian_ot_map)


@pytree_dataclass
class W2Estimate:
    """A Monte Carlo W2 estimate: ``value`` (W2), ``standard_error`` (delta method), ``squared`` (W2^2),
    ``squared_standard_error`` and ``num_samples``."""

    value: Float[Array, ""]
    standard_error: Float[Array, ""]
    squared: Float[Array, ""]
    squared_standard_error: Float[Array, ""]
    num_samples: int = static_field()  # a host count, not traced


def w2_gaussian_to_discrete(
    smap_or_targets, weights=None, *, key, num_samples: int = 2**18, tol: float = 0.05, batch_size: int = 8192
) -> W2Estimate:
    """``W2(N(0, I), sum nu_i delta_{x_i})`` as ``sqrt(E|z - T(z)|^2)``, ``T`` the semi-discrete OT map.

    Pass a :class:`~jaxotdm.ot.SemidiscreteMap` (then ``weights``/``tol`` are ignored), or targets (and
    weights): the map is then solved first with :func:`~jaxotdm.ot.semidiscrete_ot` at ``tol``. The
    estimate uses a fresh sample of ``num_samples`` (rounded up to whole batches); the error of the map
    itself (its certificate) is not included in the standard error.
    """
    from jaxotdm.ot.semidiscrete import SemidiscreteMap, SemidiscreteSampling, semidiscrete_ot

    V.check_key(key)
    V.check_positive_int(num_samples, "num_samples")
    batch_size = V.check_positive_int(batch_size, "batch_size")
    k_solve, k_mc = jax.random.split(key)
    if isinstance(smap_or_targets, SemidiscreteMap):
        smap = smap_or_targets
    else:
        smap = semidiscrete_ot(smap_or_targets, weights, key=k_solve, tol=tol,  # a failed solve warns, as before
                               sampling=SemidiscreteSampling(certificate_samples=0), throw=False)
    nb = max(1, math.ceil(num_samples / batch_size))
    s1, s2 = _w2_sd_moments(smap, k_mc, nb, batch_size)
    N = nb * batch_size
    mean = s1 / N
    var = jnp.maximum(s2 / N - mean**2, 0.0) * N / (N - 1)
    se_sq = jnp.sqrt(var / N)
    w2 = jnp.sqrt(mean)
    return W2Estimate(w2, se_sq / (2.0 * jnp.maximum(w2, 1e-30)), mean, se_sq, N)


@jax.jit(static_argnums=(2, 3))
def _w2_sd_moments(smap, key, nb, batch_size):
    d = smap.dim

    def body(b, carry):
        s1, s2 = carry
        z = jax.random.normal(jax.random.fold_in(key, b), (batch_size, d), smap.targets.dtype)
        c = jnp.sum((z - smap.transport(z)) ** 2, axis=-1)
        return s1 + jnp.sum(c), s2 + jnp.sum(c * c)

    zero = jnp.zeros((), smap.targets.dtype)
    return jax.lax.fori_loop(0, nb, body, (zero, zero))


def pushforward_w2(
    points: Float[ArrayLike, "n d"], masses: Float[ArrayLike, " n"], weights: Float[ArrayLike, " n"] | None = None
) -> float:
    """Exact ``W2(sum m_i delta_{x_i}, sum nu_i delta_{x_i})`` between two discrete measures on one support.

    With ``masses`` the cell masses of ``grad u_h # N(0, I)`` (e.g. ``smap.certificate.masses`` or
    ``smap.cell_masses(...)``) this is ``W2(grad u_h # N(0,I), target)``, zero iff the heights are optimal.
    Exact LP on the support (host-side; small ``n``). ``masses`` must be a probability vector (finite,
    non-negative, summing to one within the dtype's tolerance): a vector that does not is refused, not
    renormalised.
    """
    x = _np_cloud(points, "points")
    n = x.shape[0]
    if masses is None:
        raise V.ArgumentTypeError(f"`masses` is required: the ({n},) masses of the pushed-forward measure.")
    m = V.np_weights(masses, n, "masses")  # a probability vector: summing to one, never renormalised here
    nu = np.full(n, 1.0 / n) if weights is None else _np_weights(weights, n, "weights")
    return w2_exact(x, x, m, nu)
