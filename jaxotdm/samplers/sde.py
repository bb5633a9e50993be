"""Stochastic samplers of the reverse SDE ``dx = [f(t) x - g(t)^2 score(x, t)] dt + g(t) dW-bar``.

Same init/step design as :mod:`jaxotdm.samplers.ode`; ``noise(i)`` supplies the step's standard normal
draws (``jax.random.fold_in`` of the key by step and draw index, so runs are reproducible and no key
is reused).

* :class:`AncestralDDPM` (Ho et al. 2020, in continuous time): samples the Gaussian posterior
  ``q(x_s | x_t, x_0 = D(x_t, t))`` of the forward process; 1 NFE per step. Writing
  ``c = 1 - exp(lambda_t - lambda_s)`` (``lambda`` the log-SNR), the posterior is
  ``N((alpha_t sigma_s^2 / (alpha_s sigma_t^2)) x_t + alpha_s c D, c sigma_s^2)``.
* :class:`EulerMaruyama`: Euler-Maruyama on the reverse SDE; 1 NFE per step.
* :class:`PredictorCorrector` (Song et al. 2021): ``num_corrector_steps`` Langevin corrector steps at
  ``t`` then one Euler-Maruyama predictor step ``t -> s``; ``1 + num_corrector_steps`` NFE per step.
  The Langevin step size is ``corrector_scale * g(t)^2 (t - s)`` by default, which keeps the scheme a
  consistent discretisation of a reverse SDE with the same marginals (so it converges as the grid is
  refined); with ``snr`` set it is Song et al.'s rule (their Algorithms 4 and 5)
  ``2 a_i (snr |z| / |score|)^2`` per sample (norms over the last axis), with their ``a_i = 1 - beta_i``
  for VP-type schedules written for the continuous step ``t -> s`` as ``a_i = alpha(t)^2 / alpha(s)^2``
  (exactly 1 for VE and EDM, whose ``alpha`` is 1). This rule does not vanish as the grid is refined.

The default Langevin step is capped at ``sigma_t^2`` (``min(corrector_scale g(t)^2 (t - s), sigma_t^2)``):
near the data the score's Lipschitz constant is about ``1 / sigma_t^2``, and longer Langevin steps
overshoot (with 5 steps they left the data scale by up to 10^4 x); as the grid is refined the cap stops
acting, so the scheme stays consistent.

Default grid (``grid=None``): equal steps in the log-SNR for every method (see
:mod:`jaxotdm.samplers.ode`); equal steps in ``t`` diverge with few steps on most schedules.

All three have weak order 1 (for smooth test functions, the error in the law of the output is O(h)).
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxotdm import _validation as V
from jaxotdm._pytree import pytree_dataclass, static_field
from jaxotdm.samplers._grid import UniformLogSNR
from jaxotdm.samplers.ode import _denoise

__all__ = [
    "AncestralDDPM",
    "EulerMaruyama",
    "PredictorCorrector",
]


class _Stochastic:
    evals_per_step = 1
    stochastic = True
    order = 1  # weak order

    def default_grid(self, schedule):
        """Equal steps in the log-SNR (the safe default for every method; see :mod:`jaxotdm.samplers.ode`)."""
        return UniformLogSNR()

    def init(self, x):
        return x

    def points(self, state):
        return state


def _em_step(score, schedule, x, t, s, z):
    h = t - s
    g2 = schedule.diffusion2(t)
    drift = schedule.drift(t) * x - g2 * score(x, t)
    return x - h * drift + jnp.sqrt(g2 * h) * z


@pytree_dataclass
class AncestralDDPM(_Stochastic):
    """Ancestral sampling from the forward posterior with the denoiser plugged in (weak order 1, 1 NFE/step)."""

    def step(self, score, schedule, x, t, s, noise):
        c = jnp.maximum(-jnp.expm1(schedule.log_snr(t) - schedule.log_snr(s)), 0.0)
        log_coef = schedule.log_alpha(t) - schedule.log_alpha(s) + jnp.log(schedule.sigma2(s) / schedule.sigma2(t))
        x0 = _denoise(score, schedule, x, t)
        mean = jnp.exp(log_coef) * x + schedule.alpha(s) * c * x0
        return mean + jnp.sqrt(c * schedule.sigma2(s)) * noise(0)


@pytree_dataclass
class EulerMaruyama(_Stochastic):
    """Euler-Maruyama on the reverse SDE (weak order 1, 1 NFE per step)."""

    def step(self, score, schedule, x, t, s, noise):
        return _em_step(score, schedule, x, t, s, noise(0))


@pytree_dataclass
class PredictorCorrector(_Stochastic):
    """Langevin corrector(s) at ``t`` then an Euler-Maruyama predictor to ``s`` (Song et al. 2021).

    Attributes:
        num_corrector_steps: Langevin steps per grid step (static).
        corrector_scale: Langevin step ``= min(corrector_scale * g(t)^2 (t - s), sigma_t^2)`` (when ``snr`` is None).
        snr: if set, Song et al.'s signal-to-noise step rule instead (static choice).
    """

    num_corrector_steps: int = static_field(1)
    corrector_scale: float = 1.0
    snr: float | None = None

    def __post_init__(self):
        V.check_positive_int(self.num_corrector_steps, "num_corrector_steps")
        if V.is_concrete(self.corrector_scale):
            V.positive_scalar(self.corrector_scale, "corrector_scale")
        if self.snr is not None and V.is_concrete(self.snr):
            V.positive_scalar(self.snr, "snr")

    @property
    def evals_per_step(self) -> int:
        return 1 + self.num_corrector_steps

    def step(self, score, schedule, x, t, s, noise):
        for j in range(self.num_corrector_steps):
            grad = score(x, t)
            z = noise(j)
            if self.snr is None:  # capped at sigma_t^2: longer Langevin steps overshoot (module docstring)
                eps = jnp.minimum(self.corrector_scale * schedule.diffusion2(t) * (t - s), schedule.sigma2(t))
            else:
                ratio = jnp.linalg.norm(z, axis=-1, keepdims=True) / jnp.linalg.norm(grad, axis=-1, keepdims=True)
                a_i = jnp.exp(2.0 * (schedule.log_alpha(t) - schedule.log_alpha(s)))  # Song's 1 - beta_i
                eps = 2.0 * a_i * jnp.square(self.snr * ratio)
            x = x + eps * grad + jnp.sqrt(2.0 * eps) * z
        return _em_step(score, schedule, x, t, s, noise(self.num_corrector_steps))
