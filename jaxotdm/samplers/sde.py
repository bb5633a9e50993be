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
  refined); with ``snr`` set it is Song et al.'s rule ``2 (snr |z| / |score|)^2`` per sample (norms
  over the last axis), which does not vanish as the grid is refined.

All three have weak order 1 (for smooth test functions, the error in the law of the output is O(h)).
"""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp

from jaxotdm._pytree import pytree_dataclass, static_field
from jaxotdm._types import Array, ArrayLike, Float
from jaxotdm.samplers._core import SampleResult, make_sampler_function, sample
from jaxotdm.samplers.ode import _denoise
from jaxotdm.schedules import Schedule

__all__ = [
    "AncestralDDPM",
    "EulerMaruyama",
    "PredictorCorrector",
    "ddpm",
    "euler_maruyama",
    "predictor_corrector",
]


class _Stochastic:
    evals_per_step = 1
    stochastic = True
    order = 1  # weak order

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
        corrector_scale: Langevin step ``= corrector_scale * g(t)^2 (t - s)`` (used when ``snr`` is None).
        snr: if set, Song et al.'s signal-to-noise step rule instead (static choice).
    """

    num_corrector_steps: int = static_field(1)
    corrector_scale: float = 1.0
    snr: float | None = None

    @property
    def evals_per_step(self) -> int:
        return 1 + self.num_corrector_steps

    def step(self, score, schedule, x, t, s, noise):
        for j in range(self.num_corrector_steps):
            grad = score(x, t)
            z = noise(j)
            if self.snr is None:
                eps = self.corrector_scale * schedule.diffusion2(t) * (t - s)
            else:
                ratio = jnp.linalg.norm(z, axis=-1, keepdims=True) / jnp.linalg.norm(grad, axis=-1, keepdims=True)
                eps = 2.0 * jnp.square(self.snr * ratio)
            x = x + eps * grad + jnp.sqrt(2.0 * eps) * z
        return _em_step(score, schedule, x, t, s, noise(self.num_corrector_steps))


def _sampler_signature_doc(name, cls, extra=""):
    return f"""Runs :class:`{cls.__name__}` with :func:`~jaxotdm.samplers.sample` (weak order 1).{extra}

    Starts from ``x`` at ``t_start`` or from ``shape`` prior draws, stops at ``t_end``; ``key`` is
    required. See :func:`~jaxotdm.samplers.sample` for the common arguments.

    Example:
        >>> import jax, jax.numpy as jnp, jaxotdm as jo
        >>> from jaxotdm.samplers import {name}
        >>> mu = jo.GaussianMeasure(jnp.zeros(2), jnp.eye(2))
        >>> sched = jo.VPLinear()
        >>> out = {name}(jo.exact_score(mu, sched), sched, t_start=1.0, t_end=1e-3, num_steps=10,
        ...              key=jax.random.key(0), shape=(4, 2))
        >>> out.points.shape
        (4, 2)
    """


def _common(method, score, schedule, x, t_start, t_end, num_steps, nfe, grid, key, shape, dtype):
    return sample(
        method, score, schedule, x, t_start=t_start, t_end=t_end, num_steps=num_steps, nfe=nfe, grid=grid,
        key=key, shape=shape, dtype=dtype,
    )


ddpm = make_sampler_function(AncestralDDPM, "ddpm", "Ancestral DDPM sampling on the reverse SDE (weak order 1, 1 NFE per step).")


euler_maruyama = make_sampler_function(EulerMaruyama, "euler_maruyama", "Euler-Maruyama on the reverse SDE (weak order 1, 1 NFE per step).")


def predictor_corrector(
    score: Callable[[Array, Array], Array],
    schedule: Schedule,
    x: Float[ArrayLike, "... d"] | None = None,
    *,
    t_start: ArrayLike,
    t_end: ArrayLike,
    num_steps: int | None = None,
    nfe: int | None = None,
    grid="uniform",
    key=None,
    shape: tuple[int, ...] | None = None,
    dtype=None,
    num_corrector_steps: int = 1,
    corrector_scale: float = 1.0,
    snr: float | None = None,
) -> SampleResult:
    from jaxotdm import _validation as V

    V.check_positive_int(num_corrector_steps, "num_corrector_steps")
    if not corrector_scale > 0:
        raise ValueError(f"`corrector_scale` must be > 0, got {corrector_scale}.")
    if snr is not None and not snr > 0:
        raise ValueError(f"`snr` must be > 0 or None, got {snr}.")
    method = PredictorCorrector(num_corrector_steps, corrector_scale, snr)
    return _common(method, score, schedule, x, t_start, t_end, num_steps, nfe, grid, key, shape, dtype)


ddpm.__doc__ = _sampler_signature_doc("ddpm", AncestralDDPM, " Use ``grid='ddpm'`` for the discrete 1000-step grid.")
euler_maruyama.__doc__ = _sampler_signature_doc("euler_maruyama", EulerMaruyama)
predictor_corrector.__doc__ = _sampler_signature_doc(
    "predictor_corrector",
    PredictorCorrector,
    " ``1 + num_corrector_steps`` NFE per step; Langevin step ``corrector_scale g^2 h`` or Song's ``snr`` rule.",
)
