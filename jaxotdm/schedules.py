"""Noise schedules of linear forward SDEs ``dx = f(t) x dt + g(t) dW``.

Marginals are ``x_t = alpha(t) x_0 + sigma(t) eps``. Each schedule is an immutable PyTree
(a frozen dataclass) that defines only ``log_alpha(t)`` and ``sigma2(t)`` (written with
``expm1``/``log1p`` so they stay accurate as ``t -> 0``), the inverse of the log-SNR in closed form,
its domain ``t_max`` and its prior. Everything else (``alpha``, ``sigma``, ``log_snr``, the drift
``f = d log(alpha)/dt`` and the squared diffusion ``g^2 = d(sigma^2)/dt - 2 f sigma^2``) is derived
once, on the base class, with forward-mode autodiff, so it is exact to rounding.

All methods act elementwise on ``t`` (any shape) and work under ``jit``, ``vmap`` and ``grad``.

Parameters are validated when a schedule is constructed with concrete values (``OU(beta=-1)`` or
``VE(sigma_min=0)`` raise a ``ValueError`` naming the parameter); traced parameters (a schedule built
inside ``jit`` or differentiated through) are not checked.

Example:
    >>> import jaxotdm as jo
    >>> s = jo.OU(beta=1.0)
    >>> float(s.sigma(1e-8) ** 2)  # doctest: +ELLIPSIS
    9.99999...e-09
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxotdm import _validation as V
from jaxotdm._pytree import pytree_dataclass
from jaxotdm._types import Array, ArrayLike

__all__ = ["Schedule", "OU", "VPLinear", "SubVP", "Cosine", "VE", "EDM"]


def _t(t: ArrayLike, name: str = "t") -> Array:
    if t is None or isinstance(t, (str, bytes)):
        raise V.ArgumentTypeError(f"`{name}` must be a number or an array of numbers, got {t!r}.")
    t = jnp.asarray(t)
    return t if jnp.issubdtype(t.dtype, jnp.floating) else t.astype(float)


def _param(obj, name: str, *, lower: float = 0.0, strict: bool = True):
    """Validates the concrete parameter ``name`` of schedule ``obj``: finite and ``> lower`` (``>=`` if not
    ``strict``). Returns it as float64 NumPy, or ``None`` when it is traced (nothing to check)."""
    value = getattr(obj, name)
    if not V.is_concrete(value):
        return None
    if isinstance(value, (bool, np.bool_)):
        raise V.ArgumentTypeError(f"`{name}` of {type(obj).__name__} must be a real number, got {value!r}.")
    arr = V.np_real(value, name).astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"`{name}` of {type(obj).__name__} must be finite, got {value!r}.")
    ok = arr > lower if strict else arr >= lower
    if not np.all(ok):
        raise ValueError(f"`{name}` of {type(obj).__name__} must be {'>' if strict else '>='} {lower:g}, got {value!r}.")
    return arr


def _check_shape(shape) -> tuple[int, ...]:
    """A sample shape: a non-empty tuple of positive integers."""
    try:
        shape = tuple(shape)
    except TypeError as exc:
        raise V.ArgumentTypeError(f"`shape` must be a tuple of positive integers, got {shape!r}.") from exc
    if len(shape) < 1:
        raise ValueError("`shape` must have at least one axis (the dimension).")
    for n in shape:
        V.check_int(n, "shape", minimum=1)
    return tuple(int(n) for n in shape)


def _elementwise_derivative(fn, t: Array) -> Array:
    """d fn / dt for an elementwise ``fn`` (one JVP with a tangent of ones)."""
    return jax.jvp(fn, (t,), (jnp.ones_like(t),))[1]


@pytree_dataclass
class Schedule:
    """Base class: subclasses define ``log_alpha``, ``sigma2``, ``t_from_log_snr`` and ``prior_std``."""

    # Upper end of the open time domain (0, t_max). ``math.inf`` when the schedule goes on for ever.
    @property
    def t_max(self) -> float:
        return math.inf

    # --- defined per schedule -------------------------------------------------------------
    def log_alpha(self, t: ArrayLike) -> Array:  # pragma: no cover - abstract
        raise NotImplementedError

    def sigma2(self, t: ArrayLike) -> Array:  # pragma: no cover - abstract
        raise NotImplementedError

    def t_from_log_snr(self, log_snr: ArrayLike) -> Array:  # pragma: no cover - abstract
        """Inverse of :meth:`log_snr`."""
        raise NotImplementedError

    def prior_std(self, T: ArrayLike) -> Array:  # pragma: no cover - abstract
        """Standard deviation of the isotropic Gaussian prior ``q_T`` the reverse process starts from."""
        raise NotImplementedError

    # --- derived once ----------------------------------------------------------------------
    # The derived coefficients check concrete times eagerly (real, not NaN, in [0, t_max]: a negative time or
    # one past t_max has no coefficient); traced times are the callers' to check.
    def _time(self, t: ArrayLike) -> Array:
        V.domain_time(t, "t", t_max=self.t_max)
        return _t(t)

    def alpha(self, t: ArrayLike) -> Array:
        return jnp.exp(self.log_alpha(self._time(t)))

    def sigma(self, t: ArrayLike) -> Array:
        return jnp.sqrt(self.sigma2(self._time(t)))

    def log_snr(self, t: ArrayLike) -> Array:
        """``lambda(t) = log(alpha^2 / sigma^2)``, decreasing in ``t``."""
        t = self._time(t)
        return 2.0 * self.log_alpha(t) - jnp.log(self.sigma2(t))

    def drift(self, t: ArrayLike) -> Array:
        """``f(t) = d log(alpha) / dt``."""
        return _elementwise_derivative(self.log_alpha, self._time(t))

    def diffusion2(self, t: ArrayLike) -> Array:
        """``g(t)^2 = d(sigma^2)/dt - 2 f(t) sigma(t)^2``."""
        t = self._time(t)
        return _elementwise_derivative(self.sigma2, t) - 2.0 * self.drift(t) * self.sigma2(t)

    def marginal(self, t: ArrayLike) -> tuple[Array, Array]:
        """``(alpha(t), sigma(t))``."""
        return self.alpha(t), self.sigma(t)

    def sample_prior(self, key, T: ArrayLike, shape: tuple[int, ...]) -> Array:
        """Draws ``shape`` samples (last axis: dimension) from the prior ``q_T = N(0, prior_std(T)^2 I)``."""
        V.check_key(key)
        V.check_time(T, "T", schedule=self, dtype=_t(T).dtype if hasattr(T, "dtype") else None)
        if jnp.ndim(T) != 0:
            raise ValueError(f"`T` must be a scalar, got shape {jnp.shape(T)}.")
        shape = _check_shape(shape)
        return self.prior_std(T) * jax.random.normal(key, shape, dtype=_t(T).dtype)


def _vp_sigma2(integral_beta: Array) -> Array:
    return -jnp.expm1(-integral_beta)


def _vp_inverse_integral(log_snr: Array) -> Array:
    """For VP schedules ``log_snr = -log(expm1(B))``, so ``B = log1p(exp(-log_snr))``."""
    return jax.nn.softplus(-log_snr)


@pytree_dataclass
class OU(Schedule):
    """Constant-beta variance-preserving (Ornstein-Uhlenbeck) schedule: ``alpha = exp(-beta t / 2)``.

    The natural clock for "the termination time grows": defined for all ``t > 0``; prior ``N(0, I)``.
    """

    beta: float = 1.0

    def __post_init__(self):
        _param(self, "beta")

    def log_alpha(self, t):
        return -0.5 * self.beta * _t(t)

    def sigma2(self, t):
        return _vp_sigma2(self.beta * _t(t))

    def t_from_log_snr(self, log_snr):
        return _vp_inverse_integral(_t(log_snr, "log_snr")) / self.beta

    def prior_std(self, T):
        return jnp.ones_like(_t(T))


@pytree_dataclass
class VPLinear(Schedule):
    """VP SDE with linear ``beta(t) = beta_min + t (beta_max - beta_min)`` (DDPM's continuous limit).

    Defined for all ``t > 0`` (the linear ramp simply continues past ``t = 1``); prior ``N(0, I)``.
    """

    beta_min: float = 0.1
    beta_max: float = 20.0

    def __post_init__(self):
        lo = _param(self, "beta_min", strict=False)
        hi = _param(self, "beta_max")
        if lo is not None and hi is not None and np.any(hi < lo):
            raise ValueError(
                f"`beta_max` of {type(self).__name__} must be >= `beta_min` (beta(t) must stay positive), got "
                f"beta_min={self.beta_min!r}, beta_max={self.beta_max!r}."
            )

    def integral_beta(self, t):
        t = _t(t)
        return self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t * t

    def log_alpha(self, t):
        return -0.5 * self.integral_beta(t)

    def sigma2(self, t):
        return _vp_sigma2(self.integral_beta(t))

    def _t_from_integral(self, B):
        # Stable root of 0.5 (bmax - bmin) t^2 + bmin t - B = 0.
        a = self.beta_max - self.beta_min
        return 2.0 * B / (self.beta_min + jnp.sqrt(self.beta_min**2 + 2.0 * a * B))

    def t_from_log_snr(self, log_snr):
        return self._t_from_integral(_vp_inverse_integral(_t(log_snr, "log_snr")))

    def prior_std(self, T):
        return jnp.ones_like(_t(T))


@pytree_dataclass
class SubVP(VPLinear):
    """Sub-VP SDE (Song et al. 2021): VP's ``alpha`` with ``sigma^2 = (1 - exp(-B(t)))^2``; prior ``N(0, I)``."""

    def sigma2(self, t):
        return jnp.square(jnp.expm1(-self.integral_beta(t)))

    def sigma(self, t):
        return -jnp.expm1(-self.integral_beta(self._time(t)))

    def t_from_log_snr(self, log_snr):
        # log_snr = -B - 2 log(1 - e^{-B}); with u = e^{-B}: c u^2 - (2c + 1) u + c = 0, c = e^{lambda}.
        log_snr = _t(log_snr, "log_snr")
        c = jnp.exp(log_snr)
        u = 2.0 * c / ((2.0 * c + 1.0) + jnp.sqrt(4.0 * c + 1.0))
        return self._t_from_integral(-jnp.log(u))


@pytree_dataclass
class Cosine(Schedule):
    """Cosine schedule (Nichol & Dhariwal 2021): ``alpha^2 = cos^2(a(t)) / cos^2(a(0))``,
    ``a(t) = (t + s) / (1 + s) * pi / 2``, on ``0 < t < 1``; prior ``N(0, I)``.

    ``sigma^2 = 1 - alpha^2`` is evaluated as ``sin(a(t) - a(0)) sin(a(t) + a(0)) / cos^2(a(0))``,
    which has no cancellation near ``t = 0``.
    """

    s: float = 0.008

    def __post_init__(self):
        _param(self, "s", strict=False)

    @property
    def t_max(self) -> float:
        return 1.0

    def _angle(self, t):
        return (_t(t) + self.s) / (1.0 + self.s) * (0.5 * math.pi)

    def _angle0(self):
        return self.s / (1.0 + self.s) * (0.5 * math.pi)

    def log_alpha(self, t):
        return jnp.log(jnp.cos(self._angle(t))) - jnp.log(jnp.cos(self._angle0()))

    def sigma2(self, t):
        a, a0 = self._angle(t), self._angle0()
        return jnp.sin(a - a0) * jnp.sin(a + a0) / jnp.cos(a0) ** 2

    def t_from_log_snr(self, log_snr):
        alpha2 = jax.nn.sigmoid(_t(log_snr, "log_snr"))
        a = jnp.arccos(jnp.cos(self._angle0()) * jnp.sqrt(alpha2))
        return a / (0.5 * math.pi) * (1.0 + self.s) - self.s

    def prior_std(self, T):
        return jnp.ones_like(_t(T))


@pytree_dataclass
class VE(Schedule):
    """Variance-exploding SDE: ``alpha = 1``, ``sigma = sigma_min (sigma_max / sigma_min)^t``;
    prior ``N(0, sigma(T)^2 I)``. Note ``sigma(0) = sigma_min``, as in Song et al. (2021)."""

    sigma_min: float = 0.01
    sigma_max: float = 50.0

    def __post_init__(self):
        lo = _param(self, "sigma_min")
        hi = _param(self, "sigma_max")
        if lo is not None and hi is not None and np.any(hi <= lo):
            raise ValueError(
                f"`sigma_max` of VE must be > `sigma_min`, got sigma_min={self.sigma_min!r}, "
                f"sigma_max={self.sigma_max!r}."
            )

    def log_alpha(self, t):
        return jnp.zeros_like(_t(t))

    def sigma2(self, t):
        t = _t(t)
        log_min = jnp.log(jnp.asarray(self.sigma_min, t.dtype))
        log_ratio = jnp.log(jnp.asarray(self.sigma_max, t.dtype)) - log_min
        return jnp.exp(2.0 * (log_min + t * log_ratio))

    def t_from_log_snr(self, log_snr):
        log_sigma = -0.5 * _t(log_snr, "log_snr")
        log_min = jnp.log(jnp.asarray(self.sigma_min, log_sigma.dtype))
        return (log_sigma - log_min) / (jnp.log(jnp.asarray(self.sigma_max, log_sigma.dtype)) - log_min)

    def prior_std(self, T):
        return self.sigma(T)


@pytree_dataclass
class EDM(Schedule):
    """EDM (Karras et al. 2022): ``alpha = 1``, ``sigma = t``; prior ``N(0, T^2 I)``."""

    def log_alpha(self, t):
        return jnp.zeros_like(_t(t))

    def sigma2(self, t):
        return jnp.square(_t(t))

    def sigma(self, t):
        return jnp.abs(self._time(t))

    def t_from_log_snr(self, log_snr):
        return jnp.exp(-0.5 * _t(log_snr, "log_snr"))

    def prior_std(self, T):
        return self.sigma(T)
