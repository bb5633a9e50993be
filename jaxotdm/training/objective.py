"""The denoising score-matching objective, and the learned score's error against a reference score.

The objective for a :class:`~jaxotdm.networks.ScoreModel` with parametrisation ``P`` is

    L(theta) = E_{t ~ q} E_{x0, eps} [ w(t) |eps_hat_theta(x_t, t) - eps|^2 / d ],   x_t = alpha_t x0 + sigma_t eps,

written in *noise* units and evaluated in the network's own output space: the squared output error is
divided by ``P.eps_scale2(alpha, sigma)`` (the exact factor between output and noise errors), so no
ill-conditioned conversion enters the loss. ``w`` and ``q`` are the objects of
:mod:`~jaxotdm.training.weighting`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxotdm import _validation as V
from jaxotdm._pytree import pytree_dataclass, static_field
from jaxotdm._types import Array, ArrayLike, Float
from jaxotdm.networks import ScoreModel
from jaxotdm.schedules import Schedule
from jaxotdm.training.weighting import NoiseMSE, UniformLogSNRDistribution, Weighting

__all__ = ["DSMObjective", "score_relative_error"]


@pytree_dataclass
class DSMObjective:
    """Denoising score-matching objective: model + weighting + time distribution (+ label dropout).

    Attributes:
        model: the :class:`~jaxotdm.networks.ScoreModel`.
        weighting: a :class:`Weighting` (default :class:`NoiseMSE`).
        time_distribution: :class:`UniformLogSNRDistribution` (default), :class:`UniformTimeDistribution` or
            :class:`LogNormalSigma`.
        label_dropout: probability of replacing a label by the null label (classifier-free guidance).
    """

    model: ScoreModel
    weighting: Weighting = NoiseMSE()
    time_distribution: Any = UniformLogSNRDistribution()
    label_dropout: float = static_field(0.1)

    def __post_init__(self):
        if not isinstance(self.model, ScoreModel):
            raise ValueError(f"`model` must be a ScoreModel, got {type(self.model).__name__}.")
        if not isinstance(self.weighting, Weighting):
            raise ValueError(f"`weighting` must be a Weighting (e.g. NoiseMSE()), got {self.weighting!r}.")
        w_sd = getattr(self.weighting, "sigma_data", None)
        if w_sd is not None and V.is_concrete(w_sd) and V.is_concrete(self.model.sigma_data) \
                and not math.isclose(float(w_sd), float(self.model.sigma_data), rel_tol=1e-6):
            raise ValueError(
                f"`weighting` {type(self.weighting).__name__}(sigma_data={float(w_sd):g}) disagrees with the "
                f"model's sigma_data = {float(self.model.sigma_data):g}: the data's scale is one number; give "
                "both the same value.")
        if not hasattr(self.time_distribution, "sample"):
            raise ValueError(f"`time_distribution` must have a sample method, got {self.time_distribution!r}.")
        if hasattr(self.time_distribution, "check"):
            self.time_distribution.check(self.model.schedule)
        if not 0.0 <= self.label_dropout < 1.0:
            raise ValueError(f"`label_dropout` must be in [0, 1), got {self.label_dropout}.")

    def loss(
        self, params, x0: Float[Array, "b d"], key, labels: ArrayLike | None = None
    ) -> tuple[Array, dict[str, Array]]:
        """Monte Carlo estimate of the objective on a batch ``x0`` (batch axis first); pure and jittable.

        Returns ``(loss, aux)`` with ``aux["eps_mse"]`` the unweighted noise-space error.
        """
        model = self.model
        k_t, k_eps, k_drop = jax.random.split(key, 3)
        b = x0.shape[0]
        t = self.time_distribution.sample(k_t, (b,), model.schedule, x0.dtype)
        eps = jax.random.normal(k_eps, x0.shape, x0.dtype)
        a, s = model.coefficients(x0, t)
        x = a * x0 + s * eps
        num_classes = model.num_classes
        if num_classes is not None:
            if labels is None:
                labels = jnp.full((b,), num_classes, jnp.int32)
            elif self.label_dropout > 0:
                drop = jax.random.bernoulli(k_drop, self.label_dropout, (b,))
                labels = jnp.where(drop, num_classes, jnp.asarray(labels, jnp.int32))
        out = model.raw(params, x, t, labels)
        p = model.parametrisation
        target = p.from_pair(x0, eps, x, a, s)
        err2 = jnp.mean(jnp.square(out - target), axis=-1)
        w = self.weighting.output_weight(t, model.schedule, p, a[..., 0], s[..., 0])
        loss = jnp.mean(w * err2)
        eps_mse = jnp.mean(err2 / p.eps_scale2(a[..., 0], s[..., 0]))
        return loss, {"eps_mse": eps_mse}


def score_relative_error(
    score: Callable[[Array, Array], Array],
    reference: Callable[[Array, Array], Array],
    data: Float[ArrayLike, "n d"],
    t: float,
    schedule: Schedule,
    *,
    key,
    num_samples: int = 2048,
) -> Array:
    """Relative L2 error ``sqrt(E|s - s_ref|^2 / E|s_ref|^2)`` under ``x_t ~ p_t``, ``x0`` drawn from ``data``.

    ``reference`` is typically :func:`jaxotdm.exact_score` of the training set, in which case this is the
    error of the learned score against the truth it was trained to match.
    """
    V.check_key(key)
    V.check_time(t, "t", t_max=schedule.t_max)
    V.check_positive_int(num_samples, "num_samples")
    data = V.as_float_array(data, "data")
    V.check_ndim(data, 2, "data", "(n, d)")
    k1, k2 = jax.random.split(key)
    x0 = data[jax.random.randint(k1, (num_samples,), 0, data.shape[0])]
    t = jnp.asarray(t, data.dtype)
    x = schedule.alpha(t) * x0 + schedule.sigma(t) * jax.random.normal(k2, x0.shape, data.dtype)
    ref = reference(x, t)
    return jnp.sqrt(jnp.sum(jnp.square(score(x, t) - ref)) / jnp.sum(jnp.square(ref)))
