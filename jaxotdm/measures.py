"""Initial distributions of the diffusion: a weighted point cloud (a dataset) and a Gaussian.

Both are immutable PyTrees. Constructing one with concrete arrays validates it eagerly (shapes,
finiteness, weights non-negative and summing to one, covariance symmetric positive semi-definite);
inside ``jit`` the constructor is bypassed by PyTree unflattening, so no check ever runs on tracers.

Each measure knows the closed forms of its forward marginals ``p_t = Law(alpha_t X_0 + sigma_t eps)``
under a schedule: ``log_density(x, t, schedule)`` and ``denoiser(x, t, schedule) = E[X_0 | X_t = x]``.
The score then follows from Tweedie's formula (see :mod:`jaxotdm.scores`).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxotdm import _validation as V
from jaxotdm._types import Array, ArrayLike, Float

__all__ = ["EmpiricalMeasure", "GaussianMeasure"]


class _Frozen:
    """Minimal immutable PyTree base: fields are children; unflattening bypasses ``__init__``."""

    __slots__ = ()
    _fields: tuple[str, ...] = ()

    def __setattr__(self, name, value):
        raise AttributeError(f"{type(self).__name__} is immutable; use .replace(...) instead.")

    def _set(self, **kw):
        for k, v in kw.items():
            object.__setattr__(self, k, v)

    def replace(self, **changes):
        return type(self)(**{f: changes.get(f, getattr(self, f)) for f in self._fields})

    def __repr__(self):
        parts = ", ".join(f"{f}=<{jnp.shape(getattr(self, f))} {getattr(self, f).dtype}>" for f in self._fields)
        return f"{type(self).__name__}({parts})"

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)

        def flatten(obj):
            return tuple(getattr(obj, f) for f in cls._fields), None

        def unflatten(_, children):
            obj = object.__new__(cls)
            obj._set(**dict(zip(cls._fields, children, strict=True)))
            return obj

        jax.tree_util.register_pytree_node(cls, flatten, unflatten)


class EmpiricalMeasure(_Frozen):
    """The discrete measure ``sum_i w_i delta_{y_i}``.

    Args:
        points: ``(n, d)`` support points ``y_i`` (batch axis first).
        weights: ``(n,)`` non-negative weights summing to one; uniform ``1/n`` when omitted.

    Example:
        >>> import jaxotdm as jo, jax.numpy as jnp
        >>> mu = jo.EmpiricalMeasure(jnp.array([[-1.0], [1.0]]))
        >>> mu.weights
        Array([0.5, 0.5], dtype=float32)
    """

    __slots__ = ("points", "weights")
    _fields = ("points", "weights")
    points: Float[Array, "n d"]
    weights: Float[Array, " n"]

    def __init__(self, points: ArrayLike, weights: ArrayLike | None = None):
        points = V.as_float_array(points, "points")
        V.check_ndim(points, 2, "points", "(n, d)")
        n = points.shape[0]
        if n < 1 or points.shape[1] < 1:
            raise ValueError(f"`points` must have at least one point and one dimension, got {points.shape}.")
        V.check_finite(points, "points")
        if weights is None:
            weights = jnp.full((n,), 1.0 / n, dtype=points.dtype)
        else:
            weights = V.as_float_array(weights, "weights", dtype=points.dtype)
            if weights.shape != (n,):
                raise ValueError(f"`weights` must have shape ({n},) to match `points`, got {weights.shape}.")
            V.check_finite(weights, "weights")
            if V.is_concrete(weights):
                w = np.asarray(weights, dtype=np.float64)
                if np.any(w < 0):
                    raise ValueError(f"`weights` must be non-negative; min is {w.min():.3g}.")
                tol = 1e-10 * n if weights.dtype == jnp.float64 else 1e-5
                if abs(w.sum() - 1.0) > max(tol, 1e-12):
                    raise ValueError(
                        f"`weights` must sum to one, got sum {w.sum():.10g}; normalise them first."
                    )
        self._set(points=points, weights=weights)

    @property
    def num_points(self) -> int:
        return self.points.shape[0]

    @property
    def dim(self) -> int:
        return self.points.shape[1]

    @property
    def log_weights(self) -> Array:
        return jnp.log(self.weights)

    def mean(self) -> Array:
        return self.weights @ self.points

    def covariance(self) -> Array:
        c = self.points - self.mean()
        return (c * self.weights[:, None]).T @ c

    def sample(self, key, num_samples: int) -> Array:
        """``num_samples`` i.i.d. draws (``(num_samples, d)``)."""
        idx = jax.random.choice(key, self.num_points, (num_samples,), p=self.weights)
        return self.points[idx]

    def sample_marginal(self, key, t: ArrayLike, schedule, num_samples: int) -> Array:
        """Samples of the forward marginal ``p_t``: ``alpha_t Y + sigma_t eps``."""
        k1, k2 = jax.random.split(key)
        y = self.sample(k1, num_samples)
        return schedule.alpha(t) * y + schedule.sigma(t) * jax.random.normal(k2, y.shape, y.dtype)

    def marginal_stats(self, x, t, schedule, *, chunk_size=None, query_chunk_size=None):
        """``(log p_t(x), E[X_0 | X_t = x])`` of the mixture ``p_t``; streamed over point chunks.

        The formulas live in :mod:`jaxotdm.scores` (never a (queries, points, dims) array).
        """
        from jaxotdm.scores import _mixture_stats_jit

        return _mixture_stats_jit(self, x, t, schedule, chunk_size, query_chunk_size)


class GaussianMeasure(_Frozen):
    """The Gaussian ``N(mean, cov)``; the exact sanity case (affine probability flow, Bures OT).

    Args:
        mean: ``(d,)`` mean.
        cov: ``(d, d)`` symmetric positive semi-definite covariance.
    """

    __slots__ = ("mean", "cov")
    _fields = ("mean", "cov")

    def __init__(self, mean: ArrayLike, cov: ArrayLike):
        mean = V.as_float_array(mean, "mean")
        V.check_ndim(mean, 1, "mean", "(d,)")
        d = mean.shape[0]
        cov = V.as_float_array(cov, "cov", dtype=mean.dtype)
        if cov.shape != (d, d):
            raise ValueError(f"`cov` must have shape ({d}, {d}) to match `mean`, got {cov.shape}.")
        V.check_finite(mean, "mean")
        V.check_finite(cov, "cov")
        if V.is_concrete(cov):
            c = np.asarray(cov, dtype=np.float64)
            scale = max(1.0, float(np.abs(c).max()))
            if not np.allclose(c, c.T, atol=1e-6 * scale):
                raise ValueError("`cov` must be symmetric.")
            if np.linalg.eigvalsh(0.5 * (c + c.T)).min() < -1e-6 * scale:
                raise ValueError("`cov` must be positive semi-definite.")
        self._set(mean=mean, cov=cov)

    @property
    def dim(self) -> int:
        return self.mean.shape[0]

    def sample(self, key, num_samples: int) -> Array:
        eps = jax.random.normal(key, (num_samples, self.dim), self.mean.dtype)
        return self.mean + eps @ _psd_sqrt(self.cov)

    def marginal_cov(self, t, schedule) -> Array:
        """Covariance ``alpha_t^2 S + sigma_t^2 I`` of ``p_t``."""
        a, s2 = schedule.alpha(t), schedule.sigma2(t)
        return a * a * self.cov + s2 * jnp.eye(self.dim, dtype=self.cov.dtype)

    def sample_marginal(self, key, t, schedule, num_samples: int) -> Array:
        return GaussianMeasure._unchecked(schedule.alpha(t) * self.mean, self.marginal_cov(t, schedule)).sample(
            key, num_samples
        )

    @classmethod
    def _unchecked(cls, mean, cov):
        obj = object.__new__(cls)
        obj._set(mean=mean, cov=cov)
        return obj

    def marginal_stats(self, x, t, schedule, *, chunk_size=None, query_chunk_size=None):
        """``(log p_t(x), E[X_0 | X_t = x])`` in closed form (``t`` a scalar)."""
        del chunk_size, query_chunk_size
        return self._log_density(x, t, schedule), self._denoiser(x, t, schedule)

    def _log_density(self, x, t, schedule):
        a = schedule.alpha(t)
        c = self.marginal_cov(t, schedule)
        chol = jnp.linalg.cholesky(c)
        r = (x - a * self.mean).reshape(-1, self.dim)
        z = jax.scipy.linalg.solve_triangular(chol, r.T, lower=True).T.reshape(x.shape)
        logdet = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol)))
        return -0.5 * jnp.sum(z * z, axis=-1) - 0.5 * logdet - 0.5 * self.dim * math.log(2 * math.pi)

    def _denoiser(self, x, t, schedule):
        """``E[X_0 | X_t = x] = m + alpha_t S C_t^{-1} (x - alpha_t m)``."""
        a = schedule.alpha(t)
        c = self.marginal_cov(t, schedule)
        r = (x - a * self.mean).reshape(-1, self.dim)
        sol = jax.scipy.linalg.solve(c, r.T, assume_a="pos").T.reshape(x.shape)
        return self.mean + a * sol @ self.cov.T


def _psd_sqrt(c: Array) -> Array:
    """Symmetric square root of a PSD matrix (eigendecomposition, negative rounding clipped to 0)."""
    w, v = jnp.linalg.eigh(0.5 * (c + c.T))
    return (v * jnp.sqrt(jnp.maximum(w, 0.0))) @ v.T
