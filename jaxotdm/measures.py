"""Initial distributions of the diffusion: a weighted point cloud (a dataset) and a Gaussian.

Both are immutable PyTrees. Constructing one with concrete arrays validates it eagerly (shapes,
finiteness, weights non-negative and summing to one, covariance symmetric positive semi-definite);
inside ``jit`` the constructor is bypassed by PyTree unflattening, so no check ever runs on tracers.

Each measure knows the closed forms of its forward marginals ``p_t = Law(alpha_t X_0 + sigma_t eps)``
under a schedule: ``log_density(x, t, schedule)`` and ``denoiser(x, t, schedule) = E[X_0 | X_t = x]``.
The score then follows from Tweedie's formula (see :mod:`jaxotdm.scores`).

One protocol for both measures, so callers never dispatch on the type: ``dim``, ``mean`` (an array
attribute), ``cov`` (the covariance, an array attribute), ``radius`` (a radius holding the measure, used to
detect diverging samplers) and ``sample(key, num_samples)``.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxotdm import _linalg as L
from jaxotdm import _validation as V
from jaxotdm._mixture import _mixture_stats_jit
from jaxotdm._pytree import pytree_dataclass
from jaxotdm._types import Array, ArrayLike, Float

__all__ = ["EmpiricalMeasure", "GaussianMeasure"]


def _repr(self) -> str:
    """Shapes and dtypes, not values (a measure may hold millions of points)."""
    parts = ", ".join(f"{f.name}=<{jnp.shape(getattr(self, f.name))} {getattr(self, f.name).dtype}>"
                      for f in dataclasses.fields(self))
    return f"{type(self).__name__}({parts})"


# Both measures are ``pytree_dataclass``es: frozen (assignment raises), fields are the PyTree children, and
# unflattening (inside jit/vmap) bypasses ``__init__``, so validation in ``__post_init__`` never sees tracers.
# Equality and hashing stay by identity (field-wise ``==`` on arrays has no truth value).


@pytree_dataclass
class EmpiricalMeasure:
    """The discrete measure ``sum_i w_i delta_{y_i}``.

    Args:
        points: ``(n, d)`` support points ``y_i`` (batch axis first).
        weights: ``(n,)`` non-negative weights summing to one; uniform ``1/n`` when omitted.

    Example:
        >>> import jaxotdm as jo, jax.numpy as jnp
        >>> mu = jo.EmpiricalMeasure(jnp.array([[-1.0], [1.0]]))
        >>> mu.weights.tolist()
        [0.5, 0.5]
    """

    points: Float[ArrayLike, "n d"]
    weights: Float[ArrayLike, " n"] | None = None

    __repr__ = _repr
    __eq__ = object.__eq__
    __hash__ = object.__hash__

    def __post_init__(self):
        points = V.points(self.points, "points")  # a JAX array of a floating dtype is used as is (no copy)
        weights = V.weights(self.weights, points.shape[0], "weights", dtype=points.dtype)
        object.__setattr__(self, "points", points)
        object.__setattr__(self, "weights", weights)

    @property
    def num_points(self) -> int:
        return self.points.shape[0]

    @property
    def dim(self) -> int:
        return self.points.shape[1]

    @property
    def log_weights(self) -> Array:
        return jnp.log(self.weights)

    @property
    def mean(self) -> Array:
        """The weighted mean ``sum_i w_i y_i`` (``(d,)``), an attribute as for :class:`GaussianMeasure`."""
        return self.weights @ self.points

    @property
    def cov(self) -> Array:
        """The weighted covariance ``sum_i w_i (y_i - m)(y_i - m)^T`` (``(d, d)``)."""
        c = self.points - self.mean
        return (c * self.weights[:, None]).T @ c

    @property
    def radius(self) -> Array:
        """``max_i |y_i|``: every point lies in this ball around the origin."""
        return jnp.max(jnp.linalg.norm(self.points, axis=-1))

    def sample(self, key, num_samples: int) -> Array:
        """``num_samples`` i.i.d. draws (``(num_samples, d)``)."""
        V.check_key(key)
        num_samples = V.check_positive_int(num_samples, "num_samples")
        idx = jax.random.choice(key, self.num_points, (num_samples,), p=self.weights)
        return self.points[idx]

    def sample_marginal(self, key, t: ArrayLike, schedule, num_samples: int) -> Array:
        """Samples of the forward marginal ``p_t``: ``alpha_t Y + sigma_t eps``."""
        V.check_time(t, "t", schedule=schedule, dtype=self.points.dtype)
        V.check_key(key)
        k1, k2 = jax.random.split(key)
        y = self.sample(k1, num_samples)
        return schedule.alpha(t) * y + schedule.sigma(t) * jax.random.normal(k2, y.shape, y.dtype)

    def marginal_stats(self, x, t, schedule, *, chunk_size=None, query_chunk_size=None):
        """``(log p_t(x), E[X_0 | X_t = x])`` of the mixture ``p_t``; streamed over point chunks.

        The formulas live in :mod:`jaxotdm.scores` (streamed by ``jaxotdm._mixture``; never a (queries, points,
        dims) array).
        """
        _check_time_shape(x, t)
        return _mixture_stats_jit(self, x, t, schedule, chunk_size, query_chunk_size)


@pytree_dataclass
class GaussianMeasure:
    """The Gaussian ``N(mean, cov)``; the exact sanity case (affine probability flow, Bures OT).

    Args:
        mean: ``(d,)`` mean.
        cov: ``(d, d)`` symmetric positive semi-definite covariance.
    """

    mean: Float[ArrayLike, " d"]
    cov: Float[ArrayLike, "d d"]

    __repr__ = _repr
    __eq__ = object.__eq__
    __hash__ = object.__hash__

    def __post_init__(self):
        mean = V.as_float_array(self.mean, "mean")
        V.check_ndim(mean, 1, "mean", "(d,)")
        if mean.shape[0] < 1:
            raise ValueError("`mean` must have at least one entry.")
        V.check_finite(mean, "mean")
        cov = V.covariance(self.cov, "cov", mean.shape[0], dtype=mean.dtype)
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "cov", cov)

    @property
    def dim(self) -> int:
        return self.mean.shape[0]

    @property
    def radius(self) -> Array:
        """``|m| + sqrt(tr S) + 4 sqrt(lambda_max(S))``: holds all but a negligible part of the mass."""
        lam = jnp.linalg.eigvalsh(L.symmetrize(self.cov))
        return (jnp.linalg.norm(self.mean) + jnp.sqrt(jnp.maximum(jnp.sum(lam), 0.0))
                + 4.0 * jnp.sqrt(jnp.maximum(lam[-1], 0.0)))

    def sample(self, key, num_samples: int) -> Array:
        """``num_samples`` i.i.d. draws (``(num_samples, d)``)."""
        V.check_key(key)
        num_samples = V.check_positive_int(num_samples, "num_samples")
        eps = jax.random.normal(key, (num_samples, self.dim), self.mean.dtype)
        return self.mean + eps @ L.psd_sqrt(self.cov)

    def marginal_cov(self, t, schedule) -> Array:
        """Covariance ``alpha_t^2 S + sigma_t^2 I`` of ``p_t`` (``t`` a scalar)."""
        if jnp.ndim(t) != 0:
            raise ValueError(f"`t` must be a scalar for marginal_cov, got shape {jnp.shape(t)}.")
        a, s2 = schedule.alpha(t), schedule.sigma2(t)
        return a * a * self.cov + s2 * jnp.eye(self.dim, dtype=self.cov.dtype)

    def sample_marginal(self, key, t, schedule, num_samples: int) -> Array:
        V.check_time(t, "t", schedule=schedule, dtype=self.mean.dtype)
        return GaussianMeasure._unchecked(schedule.alpha(t) * self.mean, self.marginal_cov(t, schedule)).sample(
            key, num_samples
        )

    @classmethod
    def _unchecked(cls, mean, cov):
        obj = object.__new__(cls)
        object.__setattr__(obj, "mean", mean)
        object.__setattr__(obj, "cov", cov)
        return obj

    def marginal_stats(self, x, t, schedule, *, chunk_size=None, query_chunk_size=None):
        """``(log p_t(x), E[X_0 | X_t = x])`` in closed form; ``t`` a scalar or broadcastable to
        ``x.shape[:-1]`` (one time per query).

        In the eigenbasis ``S = V diag(lam) V^T`` the marginal covariance is diagonal,
        ``alpha_t^2 lam + sigma_t^2``, so every query gets its own time at the cost of one ``eigh``.
        """
        del chunk_size, query_chunk_size
        _check_time_shape(x, t)
        dtype = jnp.result_type(x, self.mean)
        x = jnp.asarray(x, dtype)
        t = jnp.asarray(t, dtype)[..., None]
        a, s2 = schedule.alpha(t), schedule.sigma2(t)
        lam, v = L.psd_eigh(self.cov.astype(dtype))
        mean = self.mean.astype(dtype)
        r = (x - a * mean) @ v  # coordinates of x - alpha m in the eigenbasis
        var = a * a * lam + s2  # (..., d): the marginal covariance's eigenvalues, per query
        log_p = -0.5 * jnp.sum(r * r / var + jnp.log(var), axis=-1) - 0.5 * self.dim * math.log(2 * math.pi)
        denoised = mean + ((a * lam / var) * r) @ v.T
        return log_p, denoised

    def _log_density(self, x, t, schedule):
        return self.marginal_stats(x, t, schedule)[0]

    def _denoiser(self, x, t, schedule):
        """``E[X_0 | X_t = x] = m + alpha_t S C_t^{-1} (x - alpha_t m)``."""
        return self.marginal_stats(x, t, schedule)[1]


def _check_time_shape(x, t) -> None:
    """``t`` must be a scalar or broadcast to the query batch ``x.shape[:-1]``."""
    batch = tuple(jnp.shape(x)[:-1])
    try:
        ok = np.broadcast_shapes(tuple(jnp.shape(t)), batch) == batch
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(
            f"`t` must be a scalar or broadcastable to the query batch shape {batch} (x.shape[:-1]), "
            f"got shape {tuple(jnp.shape(t))}."
        )
