r"""The semi-discrete OT map, its certificate, Monte Carlo cell masses, and conversion to/from ott-jax.

Conventions (one place for all of them). Ours (the paper's): the Brenier potential is
``u_h(z) = max_i (<z, x_i> + h_i)``, the map sends the Laguerre cell ``W_i(h)`` to ``x_i``, heights have
mean zero; the smoothed potential is ``u_tau(z) = tau log sum_i exp((<z, x_i> + h_i) / tau) - tau log n``.
ott-jax (and POT) use the cost ``c(x, y) = |x - y|^2`` (no 1/2), a dual vector ``g`` on the targets and the
source potential ``f(x) = -min``/``softmin`` of ``g_j - c(x, y_j)``, the soft version weighted by the target
masses ``b_j = nu_j``:

* hard (``epsilon = 0``): ``g_j = 2 h_j + |x_j|^2``, ``h_j = (g_j - |x_j|^2) / 2``, and
  ``f(x) = |x|^2 - 2 u_h(x)``;
* entropic (``epsilon > 0``): ``tau = epsilon / 2`` and ``g_j = 2 h_j + |x_j|^2 - epsilon log nu_j``, so that
  ott's entropic map ``x - grad f(x) / 2`` is our smoothed map ``transport(x, tau)``;
  ``f(x) = |x|^2 - 2 (u_tau(x) + tau log n)``.

Both directions are exact: :meth:`SemidiscreteMap.to_ott` / :meth:`SemidiscreteMap.from_ott` round-trip the
heights, and :meth:`SemidiscreteMap.to_dual_potentials` gives ott's ``DualPotentials``.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxotdm import _streaming as S
from jaxotdm import _validation as V
from jaxotdm._ott import ott
from jaxotdm._pytree import pytree_dataclass, static_field
from jaxotdm._types import Array, ArrayLike, Float, Int
from jaxotdm.ot.semidiscrete import _passes as P
from jaxotdm.ot.semidiscrete.driver import SemidiscreteDiagnostics
from jaxotdm.ot.semidiscrete.problem import (
    DEFAULT_BATCH,
    check_heights,
    check_source,
    check_targets,
    check_weights_type,
    make_problem,
    zscore,
)
from jaxotdm.sharding import PointSharding, check_sharding


@pytree_dataclass
class SemidiscreteCertificate:
    """Accuracy certificate measured on a fresh sample, independent of the solve.

    Attributes:
        max_relative_error: ``max_i |m_i - nu_i| / nu_i`` with ``m_i`` the Monte Carlo cell masses.
        standard_error: binomial standard error of that relative error (for the worst cell).
        noise_floor: ``sqrt(2 log 2n) * max_i sqrt(nu_i (1 - nu_i) / M) / nu_i``, the max relative error
            Monte Carlo noise alone produces for a perfect solution; a certificate cannot resolve errors
            below it (for large ``n`` this is what limits what can be certified).
        num_samples: the certificate's sample size ``M``.
        masses: ``(n,)`` the measured cell masses (the pushforward's weights).
    """

    max_relative_error: Float[Array, ""]
    standard_error: Float[Array, ""]
    noise_floor: Float[Array, ""]
    num_samples: Int[Array, ""]
    masses: Float[Array, " n"]


def certificate(prob, h, key, num_samples: int) -> SemidiscreteCertificate:
    """Cell masses of ``h`` on ``num_samples`` fresh samples (whole batches) and their max relative error."""
    nb = max(1, math.ceil(num_samples / prob.batch_size))
    M = nb * prob.batch_size
    m = P.jit_masses(prob, h, key, nb)
    nu = prob.weights
    rel = jnp.abs(m - nu) / nu
    k = jnp.argmax(rel)
    se = jnp.sqrt(nu * (1 - nu) / M) / nu
    floor = zscore(prob.num_targets) * jnp.max(se)
    return SemidiscreteCertificate(rel[k], se[k], floor, jnp.asarray(M), m)


# ------------------------------------------------------------------------------------------------------
# Query kernels: non-finite queries (or heights) give NaN values and cell -1, never a real target.
# ------------------------------------------------------------------------------------------------------


def _ok_rows(z, h):
    return jnp.all(jnp.isfinite(z), axis=-1) & jnp.all(jnp.isfinite(h))


@functools.partial(jax.jit, static_argnames=("chunk", "sharding"))
def _hard_block(z, xc, h, chunk, sharding):
    ok = _ok_rows(z, h)
    v, i = S.top1(jnp.where(ok[:, None], z, 0.0), xc, h, streaming=S.Streaming(chunk, None, sharding))
    return jnp.where(ok, v, jnp.nan), jnp.where(ok, i, -1)


@functools.partial(jax.jit, static_argnames=("chunk", "sharding"))
def _soft_block(z, xc, h, tau, chunk, sharding):
    from jaxotdm.ot._kernels import _soft

    ok = _ok_rows(z, h)
    lse, mean = _soft(jnp.where(ok[:, None], z, 0.0), xc, h, tau, chunk, sharding=sharding)
    return jnp.where(ok, lse, jnp.nan), jnp.where(ok[:, None], mean, jnp.nan)


@pytree_dataclass
class SemidiscreteMap:
    """The semi-discrete OT map ``grad u_h`` from the source to ``sum_i nu_i delta_{x_i}`` (a PyTree).

    ``u_h(z) = max_i (<z, x_i> + h_i)`` with ``heights`` of mean zero. Query methods accept ``z`` of shape
    ``(..., d)``, stream over target chunks (never a ``(queries, targets, dims)`` array), and work inside
    ``jit``. A query with a NaN or infinite coordinate has no cell: :meth:`assign` returns ``-1`` for it and
    :meth:`transport` / :meth:`potential` return NaN (eagerly and under ``jit`` alike; so do all queries of a
    map whose heights are not finite).

    Conversion to and from ott-jax: :meth:`to_dual_potentials`, :meth:`to_ott`, :meth:`from_ott` (conventions
    in :mod:`jaxotdm.ot.semidiscrete.map`).
    """

    targets: Float[Array, "n d"]
    weights: Float[Array, " n"]
    heights: Float[Array, " n"]
    certificate: SemidiscreteCertificate | None = None
    diagnostics: SemidiscreteDiagnostics | None = None
    chunk_size: int | None = static_field(None)
    query_chunk_size: int = static_field(DEFAULT_BATCH)
    sharding: PointSharding | None = static_field(None)

    def __post_init__(self):
        check_weights_type(self.weights, allow_none=False)  # types only: values may be traced

    @property
    def num_targets(self) -> int:
        return self.targets.shape[0]

    @property
    def dim(self) -> int:
        return self.targets.shape[1]

    def _prep(self, z):
        z = V.as_float_array(z, "z")
        if z.ndim < 1 or z.shape[-1] != self.dim:
            raise ValueError(f"`z` must have shape (..., {self.dim}), got {tuple(z.shape)}.")
        dtype = jnp.result_type(z.dtype, self.targets.dtype)
        z = z.astype(dtype)
        c = self.weights.astype(dtype) @ self.targets.astype(dtype)
        return z.reshape(-1, self.dim), z.shape[:-1], (self.targets.astype(dtype) - c), c, dtype

    @property
    def _chunk(self) -> int:
        return S.Streaming(self.chunk_size).chunk

    def _hard(self, zf, xc, h):
        return S.map_queries(lambda q: _hard_block(q, xc, h, self._chunk, self.sharding), zf, self.query_chunk_size)

    def _soft(self, zf, xc, h, tau):
        return S.map_queries(lambda q: _soft_block(q, xc, h, tau, self._chunk, self.sharding), zf,
                             self.query_chunk_size)

    def potential(self, z: Float[ArrayLike, "... d"], tau: float = 0.0) -> Float[Array, "..."]:
        """``u_h(z)``, or for ``tau > 0`` the smoothed ``tau log sum_i exp((<z,x_i>+h_i)/tau) - tau log n``,
        which satisfies ``u_h - tau log n <= u_tau <= u_h``."""
        tau = _check_tau(tau)
        zf, batch, xc, c, dtype = self._prep(z)
        h = self.heights.astype(dtype)
        if _is_zero(tau):
            out = self._hard(zf, xc, h)[0]
        else:
            out = self._soft(zf, xc, h, tau)[0] - tau * math.log(self.num_targets)
        return (out + zf @ c).reshape(batch)

    def assign(self, z: Float[ArrayLike, "... d"]) -> Int[Array, "..."]:
        """Index of the Laguerre cell containing ``z`` (``-1`` for a non-finite query)."""
        zf, batch, xc, _, dtype = self._prep(z)
        return self._hard(zf, xc, self.heights.astype(dtype))[1].reshape(batch)

    def transport(self, z: Float[ArrayLike, "... d"], tau: float = 0.0) -> Float[Array, "... d"]:
        """The hard map ``x_{assign(z)}`` (``tau = 0``) or the smoothed map ``sum_i softmax_i x_i`` (NaN rows for
        non-finite queries)."""
        tau = _check_tau(tau)
        zf, batch, xc, c, dtype = self._prep(z)
        h = self.heights.astype(dtype)
        if _is_zero(tau):
            i = self._hard(zf, xc, h)[1]
            x = self.targets.astype(dtype)[jnp.maximum(i, 0)]
            return jnp.where((i >= 0)[:, None], x, jnp.nan).reshape(batch + (self.dim,))
        y = self._soft(zf, xc, h, tau)[1]
        return (y + c).reshape(batch + (self.dim,))

    def cell_masses(self, *, key, num_samples: int, source=None) -> Array:
        """Monte Carlo cell masses ``m_i`` of the source (default ``N(0, I)``) under this map."""
        return cell_masses(self.targets, self.heights, weights=self.weights, key=key,
                           num_samples=num_samples, source=source, chunk_size=self.chunk_size,
                           sharding=self.sharding)

    # -------------------------------------------------------------------------------------- ott-jax
    def _ott_dual_vector(self, epsilon: float):
        y = self.targets
        g = 2.0 * self.heights + jnp.sum(y * y, axis=-1)
        if epsilon > 0:
            g = g - epsilon * jnp.log(self.weights)
        return g

    def _ott_problem(self, epsilon: float, source=None):
        if source is None:
            sampler = lambda k, shape, dtype: jax.random.normal(k, shape, dtype)
        else:
            sampler = lambda k, shape, dtype: source(k, shape[0]).astype(dtype)
        o = ott()
        geom = o.geometry.semidiscrete_pointcloud.SemidiscretePointCloud(sampler, self.targets, epsilon=float(epsilon))
        return o.problems.linear.semidiscrete_linear_problem.SemidiscreteLinearProblem(geom, b=self.weights)

    def to_dual_potentials(self, epsilon: float = 0.0):
        """ott-jax ``DualPotentials`` ``(f, g=None, SqEuclidean)`` of this map.

        ``epsilon = 0``: ``f(x) = |x|^2 - 2 u_h(x)`` and ``DualPotentials.transport`` is :meth:`transport`;
        ``epsilon > 0``: ott's entropic potential, whose transport is ``transport(x, tau=epsilon / 2)``.
        """
        eps = _check_epsilon(epsilon)
        o = ott()
        f = self._ott_problem(eps).potential_fn_from_dual_vec(self._ott_dual_vector(eps), epsilon=eps)
        return o.problems.linear.potentials.DualPotentials(f=f, g=None, cost_fn=o.geometry.costs.SqEuclidean())

    def to_ott(self, epsilon: float = 0.0, *, source=None):
        """ott-jax ``SemidiscreteOutput`` with ``g`` from these heights (``source``: a sampler
        ``(key, num) -> (num, d)`` for the problem's geometry; default ``N(0, I)``)."""
        eps = _check_epsilon(epsilon)
        sd = ott().solvers.linear.semidiscrete
        return sd.SemidiscreteOutput(g=self._ott_dual_vector(eps), prob=self._ott_problem(eps, source))

    @classmethod
    def from_ott(cls, output, *, chunk_size: int | None = None, query_chunk_size: int = DEFAULT_BATCH,
                 sharding: PointSharding | None = None) -> SemidiscreteMap:
        """The map of an ott-jax ``SemidiscreteOutput`` (squared-Euclidean cost).

        Heights ``h_j = (g_j - |y_j|^2) / 2`` (plus ``(epsilon / 2) log nu_j`` for an entropic output, so that
        ``transport(z, tau=epsilon / 2)`` is ott's entropic map), shifted to mean zero.
        """
        costs = ott().geometry.costs
        prob = getattr(output, "prob", None)
        geom = getattr(prob, "geom", None)
        if geom is None or not hasattr(output, "g"):
            raise ValueError(f"`output` must be an ott-jax SemidiscreteOutput, got {type(output).__name__}.")
        if not isinstance(geom.cost_fn, costs.SqEuclidean):
            raise ValueError(f"`output` must use ott's SqEuclidean cost, got {type(geom.cost_fn).__name__}.")
        y = V.points(geom.y, "output.prob.geom.y")
        w = V.weights(prob.b, y.shape[0], "output.prob.b", dtype=y.dtype, positive=True)
        g = check_heights(output.g, y.shape[0], y.dtype, "output.g")
        eps = float(np.asarray(geom.epsilon)) if geom.is_entropy_regularized else 0.0
        h = 0.5 * (g - jnp.sum(y * y, axis=-1))
        if eps > 0:
            h = h + 0.5 * eps * jnp.log(w)
        return cls(y, w, h - jnp.mean(h), chunk_size=chunk_size, query_chunk_size=query_chunk_size,
                   sharding=check_sharding(sharding))


def _check_epsilon(epsilon) -> float:
    e = V.nonnegative_scalar(epsilon, "epsilon")
    if not isinstance(e, float):
        raise ValueError("`epsilon` must be a concrete number (it selects ott's hard or entropic potential).")
    return e


def _is_zero(tau) -> bool:
    return V.is_concrete(tau) and float(tau) == 0.0


def _check_tau(tau):
    if V.is_concrete(tau):
        t = float(np.asarray(tau))
        if not np.isfinite(t) or t < 0:
            raise ValueError(f"`tau` must be a finite number >= 0, got {tau!r}.")
        return t
    return tau


def cell_masses(targets, heights, *, key, num_samples: int, weights=None, source=None,
                chunk_size: int | None = None, batch_size: int = DEFAULT_BATCH,
                sharding: PointSharding | None = None) -> Array:
    """Monte Carlo masses ``P(z in W_i(h))`` of the Laguerre cells, ``z`` from ``source`` (default ``N(0,I)``).

    Uses ``ceil(num_samples / batch_size) * batch_size`` samples, streamed in batches. Non-finite heights are
    a ValueError when concrete; traced (inside a caller's ``jit``) they give NaN masses.

    Example:
        >>> import jax, jax.numpy as jnp, jaxotdm as jo
        >>> x = jnp.array([[-1.0, 0.0], [1.0, 0.0]])
        >>> m = jo.ot.cell_masses(x, jnp.zeros(2), key=jax.random.key(0), num_samples=4096)
        >>> bool(abs(float(m[0]) - 0.5) < 0.05)
        True
    """
    V.check_key(key)
    x, w = check_targets(targets, weights)
    h = check_heights(heights, x.shape[0], x.dtype)
    V.check_positive_int(num_samples, "num_samples")
    V.check_positive_int(batch_size, "batch_size")
    if chunk_size is not None:
        V.check_positive_int(chunk_size, "chunk_size")
    source = check_source(source, x.shape[1], key)
    prob = make_problem(x, w, source, batch_size, chunk_size, check_sharding(sharding))
    nb = max(1, math.ceil(num_samples / batch_size))
    return P.jit_masses(prob, h, key, nb)
