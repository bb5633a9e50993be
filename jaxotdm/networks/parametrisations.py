"""Output parametrisations: what a network's raw output means, as exact bijections with ``(x0, eps)``.

For the forward model ``x_t = alpha_t x0 + sigma_t eps`` of any schedule:

- :class:`NoisePrediction`: ``eps``;
- :class:`DataPrediction`: ``x0``;
- :class:`VPrediction`: ``v = a_hat eps - s_hat x0`` with ``(a_hat, s_hat) = (alpha, sigma) / sqrt(alpha^2 +
  sigma^2)`` (Salimans & Ho's ``v`` for VP schedules, and its scale-free generalisation otherwise);
- :class:`ScorePrediction`: ``grad log p_t(x) = -eps / sigma``;
- :class:`EDMPreconditioning`: Karras et al.'s ``F`` with ``x0 = c_skip x + c_out F``, written in the
  variables of any schedule (``sigma_edm = sigma_t / alpha_t``) without dividing by a small ``alpha``.

:func:`convert_output` converts between any two.
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxotdm import _validation as V
from jaxotdm._pytree import pytree_dataclass
from jaxotdm._types import Array, ArrayLike, Float
from jaxotdm.schedules import Schedule

__all__ = [
    "Parametrisation",
    "NoisePrediction",
    "DataPrediction",
    "VPrediction",
    "ScorePrediction",
    "EDMPreconditioning",
    "convert_output",
]


def _bcast(c: Array, x: Array) -> Array:
    """Broadcasts a per-example coefficient of shape ``x.shape[:-1]`` (or scalar) against ``x``."""
    c = jnp.asarray(c, x.dtype)
    return c[..., None] if c.ndim else c


@pytree_dataclass
class Parametrisation:
    """Base class. Subclasses define :meth:`to_pair`, :meth:`from_pair` and :meth:`eps_scale2`.

    All methods take ``alpha`` and ``sigma`` already broadcast against ``x`` (shape ``(..., 1)`` or
    scalar). Use :func:`convert_output` for the public conversion with a schedule and a time.
    """

    def to_pair(self, out, x, alpha, sigma):  # pragma: no cover - abstract
        """Raw output -> ``(x0, eps)``."""
        raise NotImplementedError

    def from_pair(self, x0, eps, x, alpha, sigma):  # pragma: no cover - abstract
        """``(x0, eps)`` -> raw output (the regression target for a clean ``x0`` and noise ``eps``)."""
        raise NotImplementedError

    def eps_scale2(self, alpha, sigma):  # pragma: no cover - abstract
        """``k`` with ``|d out|^2 = k |d eps|^2`` at fixed ``x``: converts an error in ``eps`` to this output."""
        raise NotImplementedError

    def to_score(self, out, x, alpha, sigma):
        """Raw output -> score ``(alpha x0 - x) / sigma^2 = -eps / sigma``."""
        return -self.to_pair(out, x, alpha, sigma)[1] / sigma

    def to_data(self, out, x, alpha, sigma):
        return self.to_pair(out, x, alpha, sigma)[0]


@pytree_dataclass
class NoisePrediction(Parametrisation):
    """The network predicts the noise ``eps`` (DDPM)."""

    def to_pair(self, out, x, alpha, sigma):
        return (x - sigma * out) / alpha, out

    def from_pair(self, x0, eps, x, alpha, sigma):
        return eps

    def eps_scale2(self, alpha, sigma):
        return jnp.ones_like(jnp.asarray(sigma))


@pytree_dataclass
class DataPrediction(Parametrisation):
    """The network predicts the clean data ``x0`` (the denoiser)."""

    def to_pair(self, out, x, alpha, sigma):
        return out, (x - alpha * out) / sigma

    def from_pair(self, x0, eps, x, alpha, sigma):
        return x0

    def eps_scale2(self, alpha, sigma):
        return jnp.square(sigma / alpha)


@pytree_dataclass
class VPrediction(Parametrisation):
    """The network predicts ``v = a_hat eps - s_hat x0``, ``(a_hat, s_hat) = (alpha, sigma) / r``,
    ``r = sqrt(alpha^2 + sigma^2)``; with ``x_hat = x / r``: ``x0 = a_hat x_hat - s_hat v`` and
    ``eps = s_hat x_hat + a_hat v``. For VP schedules ``r = 1`` (Salimans & Ho 2022)."""

    def _hat(self, alpha, sigma):
        r = jnp.hypot(alpha, sigma)
        return alpha / r, sigma / r, r

    def to_pair(self, out, x, alpha, sigma):
        a, s, r = self._hat(alpha, sigma)
        xh = x / r
        return a * xh - s * out, s * xh + a * out

    def from_pair(self, x0, eps, x, alpha, sigma):
        a, s, _ = self._hat(alpha, sigma)
        return a * eps - s * x0

    def eps_scale2(self, alpha, sigma):
        return (jnp.square(alpha) + jnp.square(sigma)) / jnp.square(alpha)


@pytree_dataclass
class ScorePrediction(Parametrisation):
    """The network predicts the score ``-eps / sigma`` directly (Song et al. 2021)."""

    def to_pair(self, out, x, alpha, sigma):
        eps = -sigma * out
        return (x - sigma * eps) / alpha, eps

    def from_pair(self, x0, eps, x, alpha, sigma):
        return -eps / sigma

    def to_score(self, out, x, alpha, sigma):
        return out

    def eps_scale2(self, alpha, sigma):
        return 1.0 / jnp.square(sigma)


@pytree_dataclass
class EDMPreconditioning(Parametrisation):
    """EDM preconditioning (Karras et al. 2022): ``x0 = c_skip x + c_out F`` for the network output ``F``.

    In EDM's variables ``x / alpha = x0 + sigma_e eps`` with ``sigma_e = sigma / alpha``; substituting,
    ``c_skip x = sigma_data^2 alpha x / q``, ``c_out = sigma sigma_data / sqrt(q)``, ``q = sigma^2 +
    alpha^2 sigma_data^2``, which never divides by ``alpha``. The input scaling ``c_in`` is applied by
    :class:`ScoreModel` for every parametrisation; the loss weight ``1 / c_out^2`` of EDM is
    :class:`~jaxotdm.training.EDMWeighting`.
    """

    sigma_data: float = 0.5

    def __post_init__(self):  # construction only (PyTree unflattening does not call __init__)
        V.positive_scalar(self.sigma_data, "sigma_data")

    def _c(self, alpha, sigma):
        q = jnp.square(sigma) + jnp.square(alpha * self.sigma_data)
        skip = self.sigma_data**2 * alpha / q
        out = sigma * self.sigma_data / jnp.sqrt(q)
        return skip, out

    def to_pair(self, out, x, alpha, sigma):
        skip, c_out = self._c(alpha, sigma)
        x0 = skip * x + c_out * out
        return x0, (x - alpha * x0) / sigma

    def from_pair(self, x0, eps, x, alpha, sigma):
        skip, c_out = self._c(alpha, sigma)
        return (x0 - skip * x) / c_out

    def eps_scale2(self, alpha, sigma):
        q = jnp.square(sigma) + jnp.square(alpha * self.sigma_data)
        return q / jnp.square(alpha * self.sigma_data)


def convert_output(
    out: Float[ArrayLike, "... d"],
    x: Float[ArrayLike, "... d"],
    t: ArrayLike,
    schedule: Schedule,
    *,
    source: Parametrisation,
    target: Parametrisation,
) -> Float[Array, "... d"]:
    """Converts a network output from one parametrisation to another at ``(x, t)``; exact up to rounding.

    Args:
        out: raw output in ``source``'s parametrisation, shape ``(..., d)``.
        x: the noisy input ``x_t``, same shape.
        t: time, scalar or broadcastable to ``x.shape[:-1]``.
        schedule: the forward schedule.
        source: parametrisation objects.
        target: see ``source``.

    Example:
        >>> import jax.numpy as jnp, jaxotdm as jo
        >>> from jaxotdm.networks import convert_output, NoisePrediction, VPrediction
        >>> x, eps = jnp.ones((2, 3)), jnp.zeros((2, 3))
        >>> v = convert_output(eps, x, 0.3, jo.OU(), source=NoisePrediction(), target=VPrediction())
        >>> back = convert_output(v, x, 0.3, jo.OU(), source=VPrediction(), target=NoisePrediction())
        >>> bool(jnp.allclose(back, eps, atol=1e-6))
        True
    """
    out, x = jnp.asarray(out), jnp.asarray(x)
    if out.shape != x.shape:
        raise ValueError(f"`out` must have the shape of `x` {x.shape}, got {out.shape}.")
    for name, p in (("source", source), ("target", target)):
        if not isinstance(p, Parametrisation):
            raise ValueError(f"`{name}` must be a Parametrisation (e.g. NoisePrediction()), got {p!r}.")
    V.check_time(t, "t", dtype=x.dtype)  # finite and > 0 (the conversions divide by sigma_t or alpha_t)
    t = jnp.asarray(t, x.dtype)
    a, s = _bcast(schedule.alpha(t), x), _bcast(schedule.sigma(t), x)
    x0, eps = source.to_pair(out, x, a, s)
    return target.from_pair(x0, eps, x, a, s)
