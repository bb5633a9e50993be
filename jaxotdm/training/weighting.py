"""Loss weightings ``w(t)`` and training time distributions ``q(t)`` for denoising score matching.

Weightings act on the noise-space squared error ``|eps_hat - eps|^2`` (see :mod:`~jaxotdm.training.objective`):

- :class:`NoiseMSE` (``w = 1``; Song's ``lambda = sigma^2``, DDPM's "simple" loss),
- :class:`LikelihoodWeighting` (``w = g^2 / sigma^2``, Song et al. 2021's ``lambda = g^2``; note
  ``g^2 / sigma^2 = -d lambda / dt`` for every schedule, so with :class:`UniformTimeDistribution` it equals
  :class:`NoiseMSE` under :class:`UniformLogSNRDistribution` up to a constant, the lower-variance VDM form),
- :class:`EDMWeighting` (Karras et al.'s ``1 / c_out^2`` in data units),
- :class:`MinSNRWeighting` (Hang et al. 2023),
- :class:`NativeMSE` (plain MSE of the raw output, whatever the parametrisation).

Time distributions draw the training times: :class:`UniformTimeDistribution`,
:class:`UniformLogSNRDistribution` and EDM's :class:`LogNormalSigma`. (They are distributions of training
times, not the samplers' time grids of :mod:`jaxotdm.samplers`.)
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxotdm import _validation as V
from jaxotdm._pytree import pytree_dataclass
from jaxotdm._types import Array
from jaxotdm.networks import Parametrisation
from jaxotdm.schedules import Schedule

__all__ = [
    "Weighting",
    "NoiseMSE",
    "NativeMSE",
    "LikelihoodWeighting",
    "EDMWeighting",
    "MinSNRWeighting",
    "UniformTimeDistribution",
    "UniformLogSNRDistribution",
    "LogNormalSigma",
]


@pytree_dataclass
class Weighting:
    """Base class: ``eps_weight(t, schedule)`` is ``w(t)`` on the noise-space squared error."""

    def eps_weight(self, t: Array, schedule: Schedule) -> Array:  # pragma: no cover - abstract
        raise NotImplementedError

    def output_weight(self, t, schedule: Schedule, parametrisation: Parametrisation, alpha, sigma) -> Array:
        """Weight on the squared error of the raw output: ``w(t) / eps_scale2``."""
        return self.eps_weight(t, schedule) / parametrisation.eps_scale2(alpha, sigma)


@pytree_dataclass
class NoiseMSE(Weighting):
    """``w = 1``: mean squared error of the predicted noise (``lambda(t) = sigma_t^2`` on the score)."""

    def eps_weight(self, t, schedule):
        return jnp.ones_like(t)


@pytree_dataclass
class NativeMSE(Weighting):
    """Plain mean squared error of the raw network output, whatever its parametrisation."""

    def eps_weight(self, t, schedule):  # pragma: no cover - output_weight is overridden
        raise NotImplementedError

    def output_weight(self, t, schedule, parametrisation, alpha, sigma):
        return jnp.ones_like(t)


@pytree_dataclass
class LikelihoodWeighting(Weighting):
    """``w = g(t)^2 / sigma_t^2`` (Song, Durkan, Murray & Ermon 2021: ``lambda(t) = g(t)^2`` on the score).

    With :class:`UniformTimeDistribution` the loss is (up to constants) the negative ELBO bound on the likelihood.
    """

    def eps_weight(self, t, schedule):
        return schedule.diffusion2(t) / schedule.sigma2(t)


@pytree_dataclass
class EDMWeighting(Weighting):
    """EDM's weight ``(sigma_e^2 + sigma_data^2) / (sigma_e sigma_data)^2`` on the data error,
    ``sigma_e = sigma / alpha``; in noise units ``w = (sigma^2 + alpha^2 sigma_data^2) / (alpha sigma_data)^2``.
    With :class:`~jaxotdm.networks.EDMPreconditioning` of the same ``sigma_data`` it is a plain MSE on ``F``."""

    sigma_data: float = 0.5

    def __post_init__(self):  # construction only (PyTree unflattening does not call __init__)
        V.positive_scalar(self.sigma_data, "sigma_data")

    def eps_weight(self, t, schedule):
        a2, s2 = jnp.square(schedule.alpha(t)), schedule.sigma2(t)
        return (s2 + a2 * self.sigma_data**2) / (a2 * self.sigma_data**2)


@pytree_dataclass
class MinSNRWeighting(Weighting):
    """Min-SNR-gamma (Hang et al. 2023): ``w = min(SNR, gamma) / SNR`` in noise units."""

    gamma: float = 5.0

    def __post_init__(self):
        V.positive_scalar(self.gamma, "gamma")

    def eps_weight(self, t, schedule):
        snr = jnp.exp(schedule.log_snr(t))
        return jnp.minimum(snr, self.gamma) / snr


@pytree_dataclass
class UniformTimeDistribution:
    """``t ~ U(t_min, t_max)``."""

    t_min: float = 1e-3
    t_max: float = 1.0

    def __post_init__(self):
        lo = V.positive_scalar(self.t_min, "t_min")
        hi = V.positive_scalar(self.t_max, "t_max")
        if isinstance(lo, float) and isinstance(hi, float) and not lo < hi:
            raise ValueError(f"`t_max` must be > `t_min` ({lo:g}), got {hi:g}.")

    def sample(self, key, shape, schedule: Schedule, dtype) -> Array:
        return jax.random.uniform(key, shape, dtype, self.t_min, self.t_max)

    def check(self, schedule: Schedule) -> None:
        _check_time_range(self.t_min, self.t_max, schedule, "time_distribution")


@pytree_dataclass
class UniformLogSNRDistribution:
    """``lambda ~ U(log_snr_min, log_snr_max)``, mapped to ``t = schedule.t_from_log_snr(lambda)``.

    Use :meth:`between` to cover a time interval ``[t_min, t_max]`` of a given schedule.
    """

    log_snr_min: float = -10.0
    log_snr_max: float = 10.0

    def __post_init__(self):
        _check_log_snr_range(self.log_snr_min, self.log_snr_max)

    @classmethod
    def between(cls, schedule: Schedule, t_min: float, t_max: float) -> UniformLogSNRDistribution:
        _check_time_range(t_min, t_max, schedule, "t_min/t_max")
        lo, hi = (float(schedule.log_snr(jnp.asarray(t, jnp.float64 if jax.config.x64_enabled else jnp.float32)))
                  for t in (t_max, t_min))
        return cls(lo, hi)

    def sample(self, key, shape, schedule: Schedule, dtype) -> Array:
        lam = jax.random.uniform(key, shape, dtype, self.log_snr_min, self.log_snr_max)
        return schedule.t_from_log_snr(lam)

    def check(self, schedule: Schedule) -> None:
        if not (math.isfinite(self.log_snr_min) and math.isfinite(self.log_snr_max)) or not (
            self.log_snr_min < self.log_snr_max
        ):
            raise ValueError(
                f"`time_distribution` needs finite log_snr_min < log_snr_max, got "
                f"({self.log_snr_min}, {self.log_snr_max})."
            )


@pytree_dataclass
class LogNormalSigma:
    """EDM's ``log(sigma / alpha) ~ N(p_mean, p_std^2)`` (Karras et al. 2022), mapped to ``t`` via the log-SNR.

    The log-SNR ``-2 log(sigma / alpha)`` is clipped to ``[log_snr_min, log_snr_max]`` (the far tails of the
    normal would otherwise leave a bounded schedule's time domain).
    """

    p_mean: float = -1.2
    p_std: float = 1.2
    log_snr_min: float = -20.0
    log_snr_max: float = 20.0

    def __post_init__(self):
        V.real_scalar(self.p_mean, "p_mean")
        V.positive_scalar(self.p_std, "p_std")
        _check_log_snr_range(self.log_snr_min, self.log_snr_max)

    def sample(self, key, shape, schedule: Schedule, dtype) -> Array:
        log_sigma = self.p_mean + self.p_std * jax.random.normal(key, shape, dtype)
        return schedule.t_from_log_snr(jnp.clip(-2.0 * log_sigma, self.log_snr_min, self.log_snr_max))

    def check(self, schedule: Schedule) -> None:
        if not (math.isfinite(self.p_mean) and math.isfinite(self.p_std) and self.p_std > 0):
            raise ValueError(f"`time_distribution` needs a finite p_mean and p_std > 0, got ({self.p_mean}, "
                             f"{self.p_std}).")
        if not (math.isfinite(self.log_snr_min) and math.isfinite(self.log_snr_max)
                and self.log_snr_min < self.log_snr_max):
            raise ValueError(f"`time_distribution` needs finite log_snr_min < log_snr_max, got "
                             f"({self.log_snr_min}, {self.log_snr_max}).")


def _check_log_snr_range(lo, hi):
    lo = V.real_scalar(lo, "log_snr_min")
    hi = V.real_scalar(hi, "log_snr_max")
    if isinstance(lo, float) and isinstance(hi, float) and not lo < hi:
        raise ValueError(f"`log_snr_min` must be < `log_snr_max` ({hi:g}), got {lo:g}.")


def _check_time_range(t_min, t_max, schedule, name):
    if not (0.0 < t_min < t_max):
        raise ValueError(f"`{name}` needs 0 < t_min < t_max, got ({t_min}, {t_max}).")
    if not t_max < schedule.t_max:
        raise ValueError(f"`{name}`: t_max must be < {schedule.t_max} for {type(schedule).__name__}, got {t_max}.")
