"""Learned score networks (flax.linen): an MLP for low-dimensional data and a U-Net for images.

A network maps ``(x_in, log_snr, labels)`` to a raw output of the same shape as ``x``. What the raw
output *means* is chosen by an output parametrisation, an immutable object that converts between it
and the pair ``(x0, eps)`` of the forward model ``x_t = alpha_t x0 + sigma_t eps`` for any schedule:

- :class:`NoisePrediction`: ``eps``;
- :class:`DataPrediction`: ``x0``;
- :class:`VPrediction`: ``v = a_hat eps - s_hat x0`` with ``(a_hat, s_hat) = (alpha, sigma) / sqrt(alpha^2 +
  sigma^2)`` (Salimans & Ho's ``v`` for VP schedules, and its scale-free generalisation otherwise);
- :class:`ScorePrediction`: ``grad log p_t(x) = -eps / sigma``;
- :class:`EDMPreconditioning`: Karras et al.'s ``F`` with ``x0 = c_skip x + c_out F``, written in the
  variables of any schedule (``sigma_edm = sigma_t / alpha_t``) without dividing by a small ``alpha``.

Every parametrisation is an exact bijection for fixed ``(x, alpha, sigma)``; :func:`convert_output`
converts between any two. :class:`ScoreModel` ties a network to a schedule and a parametrisation and
always feeds the network the normalised input ``x / sqrt(sigma_t^2 + alpha_t^2 sigma_data^2)`` and the
log-SNR, so the same network works for VP, VE and EDM schedules. ``ScoreModel.bind(params)`` returns a
:class:`LearnedScore`, a PyTree callable ``score(x, t)`` that every sampler, flow map and OT tool accepts.

Networks act on a batch with the data axis last: ``x`` of shape ``(..., d)``. The U-Net reshapes the flat
``d = H * W * C`` vector to an image internally (NHWC), so images are points in ``R^d`` like everything
else in the package.

Example:
    >>> import jax, jax.numpy as jnp, jaxotdm as jo
    >>> from jaxotdm.networks import MLP, ScoreModel, NoisePrediction
    >>> model = ScoreModel(MLP(features=32, depth=2), jo.OU(), NoisePrediction())
    >>> params = model.init(jax.random.key(0), jnp.zeros((1, 2)))
    >>> score = model.bind(params)
    >>> score(jnp.ones((5, 2)), 0.5).shape
    (5, 2)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxotdm._pytree import pytree_dataclass, static_field
from jaxotdm._types import Array, ArrayLike, Float
from jaxotdm.schedules import Schedule

__all__ = [
    "SinusoidalEmbedding",
    "FourierEmbedding",
    "MLP",
    "UNet",
    "Parametrisation",
    "NoisePrediction",
    "DataPrediction",
    "VPrediction",
    "ScorePrediction",
    "EDMPreconditioning",
    "convert_output",
    "ScoreModel",
    "LearnedScore",
]


# ----------------------------------------------------------------------------------------------------
# Output parametrisations
# ----------------------------------------------------------------------------------------------------


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
        source, target: parametrisation objects.

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
    t = jnp.asarray(t, x.dtype)
    a, s = _bcast(schedule.alpha(t), x), _bcast(schedule.sigma(t), x)
    x0, eps = source.to_pair(out, x, a, s)
    return target.from_pair(x0, eps, x, a, s)


# ----------------------------------------------------------------------------------------------------
# Noise-level embeddings
# ----------------------------------------------------------------------------------------------------


class SinusoidalEmbedding(nn.Module):
    """Transformer-style sinusoidal embedding of the log-SNR with geometric frequencies.

    Frequencies run from ``min_freq`` to ``max_freq``; the defaults resolve log-SNR differences of
    about 0.1 over the range ``|log_snr| <~ 30``.
    """

    dim: int = 64
    min_freq: float = 1.0 / 32.0
    max_freq: float = 8.0

    @nn.compact
    def __call__(self, log_snr: Array) -> Array:
        half = self.dim // 2
        freqs = np.geomspace(self.min_freq, self.max_freq, half)
        arg = log_snr[..., None] * jnp.asarray(freqs, log_snr.dtype)
        return jnp.concatenate([jnp.sin(arg), jnp.cos(arg)], axis=-1)


class FourierEmbedding(nn.Module):
    """Random Fourier features of the log-SNR (Tancik et al. 2020; Song et al. 2021).

    The frequencies ``~ N(0, scale^2)`` are fixed constants drawn from ``seed`` when the module is built
    (not parameters), so ``init``/``apply`` stay pure and nothing is trained or decayed by mistake.
    """

    dim: int = 64
    scale: float = 1.0
    seed: int = 0

    @nn.compact
    def __call__(self, log_snr: Array) -> Array:
        freqs = np.random.default_rng(self.seed).standard_normal(self.dim // 2) * self.scale
        arg = 2 * math.pi * log_snr[..., None] * jnp.asarray(freqs, log_snr.dtype)
        return jnp.concatenate([jnp.sin(arg), jnp.cos(arg)], axis=-1)


class _Conditioning(nn.Module):
    """Noise embedding -> MLP, plus an optional class embedding (index ``num_classes`` is the null label)."""

    embedding: nn.Module
    dim: int
    num_classes: int | None

    @nn.compact
    def __call__(self, log_snr, labels):
        h = self.embedding(log_snr)
        h = nn.Dense(self.dim)(h)
        h = nn.Dense(self.dim)(nn.silu(h))
        if self.num_classes is None and labels is not None:
            raise ValueError("`labels` were given but the network has no class conditioning (num_classes=None).")
        if self.num_classes is not None:
            if labels is None:
                labels = jnp.full(log_snr.shape, self.num_classes, jnp.int32)
            labels = jnp.broadcast_to(jnp.asarray(labels, jnp.int32), log_snr.shape)
            h = h + nn.Embed(self.num_classes + 1, self.dim)(labels)
        return h


# ----------------------------------------------------------------------------------------------------
# MLP
# ----------------------------------------------------------------------------------------------------


class MLP(nn.Module):
    """Residual MLP score network for low-dimensional data.

    Each block is ``h + Dense(silu(Dense(silu(LayerNorm(h))) + emb))``; the output layer is zero-initialised
    so a fresh network outputs zeros in its parametrisation.

    Attributes:
        features: hidden width.
        depth: number of residual blocks.
        embedding: the log-SNR embedding module (:class:`SinusoidalEmbedding` or :class:`FourierEmbedding`).
        num_classes: if set, the network takes integer labels in ``[0, num_classes]``; ``num_classes`` (or
            ``labels=None``) is the null label used for classifier-free guidance.

    Call: ``net.apply(params, x, log_snr, labels=None)`` with ``x (..., d)`` and ``log_snr``
    broadcastable to ``x.shape[:-1]``; returns ``(..., d)``.
    """

    features: int = 128
    depth: int = 3
    embedding: nn.Module = SinusoidalEmbedding(64)
    num_classes: int | None = None

    @nn.compact
    def __call__(self, x: Array, log_snr: Array, labels: Array | None = None) -> Array:
        log_snr = jnp.broadcast_to(jnp.asarray(log_snr, x.dtype), x.shape[:-1])
        emb = _Conditioning(self.embedding, self.features, self.num_classes)(log_snr, labels)
        h = nn.Dense(self.features)(x)
        for _ in range(self.depth):
            r = nn.Dense(self.features)(nn.silu(nn.LayerNorm()(h)))
            r = nn.Dense(self.features)(nn.silu(r + nn.Dense(self.features)(nn.silu(emb))))
            h = h + r
        return nn.Dense(x.shape[-1], kernel_init=nn.initializers.zeros)(nn.silu(nn.LayerNorm()(h)))


# ----------------------------------------------------------------------------------------------------
# U-Net
# ----------------------------------------------------------------------------------------------------


class _ResBlock(nn.Module):
    channels: int
    groups: int

    @nn.compact
    def __call__(self, x, emb):
        h = nn.silu(nn.GroupNorm(num_groups=min(self.groups, x.shape[-1]))(x))
        h = nn.Conv(self.channels, (3, 3))(h)
        h = h + nn.Dense(self.channels)(nn.silu(emb))[:, None, None, :]
        h = nn.silu(nn.GroupNorm(num_groups=min(self.groups, self.channels))(h))
        h = nn.Conv(self.channels, (3, 3), kernel_init=nn.initializers.zeros)(h)
        if x.shape[-1] != self.channels:
            x = nn.Conv(self.channels, (1, 1))(x)
        return x + h


class _Attention(nn.Module):
    heads: int
    groups: int

    @nn.compact
    def __call__(self, x):
        b, hgt, wid, c = x.shape
        h = nn.GroupNorm(num_groups=min(self.groups, c))(x).reshape(b, hgt * wid, c)
        h = nn.MultiHeadDotProductAttention(num_heads=self.heads, out_kernel_init=nn.initializers.zeros)(h, h)
        return x + h.reshape(b, hgt, wid, c)


class UNet(nn.Module):
    """DDPM-style U-Net on flat image vectors ``(..., H*W*C)`` (reshaped internally to NHWC).

    Levels use ``channels * mult`` channels and ``num_res_blocks`` residual blocks (group norm, SiLU,
    noise/class embedding added after the first convolution); the resolution halves between levels.
    Self-attention is applied at the resolutions listed in ``attention_resolutions``.

    Typical settings: 8x8 digits ``channel_mult=(1, 2)``; 28x28 MNIST ``(1, 2, 2)`` (28 -> 14 -> 7);
    32x32 CIFAR ``(1, 2, 2, 2)``. Every downsampled resolution must be even.

    Attributes:
        image_shape: ``(H, W, C)``.
        channels: base channel count.
        channel_mult: per-level channel multipliers.
        num_res_blocks: residual blocks per level.
        attention_resolutions: spatial sizes (``H``) at which self-attention is applied.
        heads: attention heads.
        groups: group-norm groups (clipped to the channel count).
        embedding: the log-SNR embedding module.
        num_classes: optional class conditioning (null label ``num_classes``).
    """

    image_shape: tuple[int, int, int] = (8, 8, 1)
    channels: int = 32
    channel_mult: Sequence[int] = (1, 2)
    num_res_blocks: int = 1
    attention_resolutions: Sequence[int] = ()
    heads: int = 4
    groups: int = 8
    embedding: nn.Module = SinusoidalEmbedding(64)
    num_classes: int | None = None

    @nn.compact
    def __call__(self, x: Array, log_snr: Array, labels: Array | None = None) -> Array:
        H, W, C = self.image_shape
        if x.shape[-1] != H * W * C:
            raise ValueError(f"`x` must have last axis {H * W * C} for image_shape {self.image_shape}, got {x.shape}.")
        batch = x.shape[:-1]
        log_snr = jnp.broadcast_to(jnp.asarray(log_snr, x.dtype), batch).reshape(-1)
        if labels is not None:
            labels = jnp.broadcast_to(jnp.asarray(labels, jnp.int32), batch).reshape(-1)
        emb_dim = 4 * self.channels
        emb = _Conditioning(self.embedding, emb_dim, self.num_classes)(log_snr, labels)
        h = nn.Conv(self.channels, (3, 3))(x.reshape(-1, H, W, C))
        skips = [h]
        levels = len(self.channel_mult)
        for i, mult in enumerate(self.channel_mult):
            for _ in range(self.num_res_blocks):
                h = _ResBlock(self.channels * mult, self.groups)(h, emb)
                if h.shape[1] in self.attention_resolutions:
                    h = _Attention(self.heads, self.groups)(h)
                skips.append(h)
            if i < levels - 1:
                if h.shape[1] % 2 or h.shape[2] % 2:
                    raise ValueError(
                        f"UNet: resolution {h.shape[1:3]} at level {i} cannot be halved; use fewer levels "
                        f"in `channel_mult` (got {tuple(self.channel_mult)} for image_shape {self.image_shape})."
                    )
                h = nn.Conv(h.shape[-1], (3, 3), strides=(2, 2))(h)
                skips.append(h)
        mid = self.channels * self.channel_mult[-1]
        h = _ResBlock(mid, self.groups)(h, emb)
        h = _Attention(self.heads, self.groups)(h)
        h = _ResBlock(mid, self.groups)(h, emb)
        for i, mult in reversed(list(enumerate(self.channel_mult))):
            for _ in range(self.num_res_blocks + 1):
                h = _ResBlock(self.channels * mult, self.groups)(jnp.concatenate([h, skips.pop()], -1), emb)
                if h.shape[1] in self.attention_resolutions:
                    h = _Attention(self.heads, self.groups)(h)
            if i > 0:
                h = jnp.repeat(jnp.repeat(h, 2, axis=1), 2, axis=2)
                h = nn.Conv(h.shape[-1], (3, 3))(h)
        h = nn.silu(nn.GroupNorm(num_groups=min(self.groups, h.shape[-1]))(h))
        h = nn.Conv(C, (3, 3), kernel_init=nn.initializers.zeros)(h)
        return h.reshape(batch + (H * W * C,))


# ----------------------------------------------------------------------------------------------------
# Model = network + schedule + parametrisation
# ----------------------------------------------------------------------------------------------------


def _network_init(network, key, x, labels):
    return network.init(key, x, jnp.zeros(x.shape[:-1], x.dtype), labels)["params"]


# Cached across calls (the network is a hashable, static argument).
_network_init_compiled = jax.jit(
    _network_init, static_argnums=0, compiler_options={"xla_backend_optimization_level": 0}
)


@pytree_dataclass
class ScoreModel:
    """A network with its schedule and output parametrisation: a pure, parameter-free description.

    The network sees ``c_in x`` with ``c_in = 1 / sqrt(sigma_t^2 + alpha_t^2 sigma_data^2)`` (unit-variance
    input when the data have per-coordinate scale ``sigma_data``) and the log-SNR ``lambda(t)``.

    Attributes:
        network: a flax module called as ``network(x_in, log_snr, labels)`` (e.g. :class:`MLP`, :class:`UNet`).
        schedule: the forward schedule.
        parametrisation: what the network's raw output means.
        sigma_data: the data's per-coordinate scale, used for input normalisation.
    """

    network: nn.Module = static_field()
    schedule: Schedule
    parametrisation: Parametrisation = NoisePrediction()
    sigma_data: float = 1.0

    def init(self, key, x: Float[ArrayLike, "... d"], labels: ArrayLike | None = None):
        """Initial parameters for inputs shaped like ``x`` (values are ignored); pure.

        Called with concrete arrays, the initialiser is compiled once with XLA's backend optimisation
        level 0: it runs once, and the many inlined random initialisers otherwise take tens of seconds
        to compile on CPU for a U-Net. Inside a trace it is a plain ``network.init``.
        """
        x = jnp.asarray(x)
        labels = None if labels is None else jnp.asarray(labels)
        if any(isinstance(a, jax.core.Tracer) for a in (key, x, labels)):
            return _network_init(self.network, key, x, labels)
        return _network_init_compiled(self.network, key, x, labels)

    def coefficients(self, x: Array, t: ArrayLike) -> tuple[Array, Array]:
        """``(alpha_t, sigma_t)`` broadcast against ``x`` (shape ``x.shape[:-1] + (1,)``)."""
        t = jnp.broadcast_to(jnp.asarray(t, x.dtype), x.shape[:-1])
        return self.schedule.alpha(t)[..., None], self.schedule.sigma(t)[..., None]

    def raw(self, params, x: Array, t: ArrayLike, labels: ArrayLike | None = None) -> Array:
        """The network's raw output at ``(x, t)`` in its parametrisation."""
        t = jnp.broadcast_to(jnp.asarray(t, x.dtype), x.shape[:-1])
        a, s = self.coefficients(x, t)
        c_in = jax.lax.rsqrt(jnp.square(s) + jnp.square(a * self.sigma_data))
        return self.network.apply({"params": params}, c_in * x, self.schedule.log_snr(t), labels)

    def pair(self, params, x, t, labels=None, guidance: float = 0.0) -> tuple[Array, Array]:
        """``(x0_hat, eps_hat)``; with ``guidance = w != 0``, classifier-free guidance
        ``(1 + w) cond - w uncond`` (the unconditional branch uses the null label)."""
        a, s = self.coefficients(x, t)
        x0, eps = self.parametrisation.to_pair(self.raw(params, x, t, labels), x, a, s)
        if guidance is not None and not (isinstance(guidance, (int, float)) and guidance == 0.0):
            x0u, epsu = self.parametrisation.to_pair(self.raw(params, x, t, None), x, a, s)
            x0 = (1 + guidance) * x0 - guidance * x0u
            eps = (1 + guidance) * eps - guidance * epsu
        return x0, eps

    def score(self, params, x, t, labels=None, guidance: float = 0.0) -> Array:
        """The learned score ``grad_x log p_t(x)``."""
        _, s = self.coefficients(x, t)
        return -self.pair(params, x, t, labels, guidance)[1] / s

    def denoiser(self, params, x, t, labels=None, guidance: float = 0.0) -> Array:
        """The learned posterior mean ``E[X_0 | X_t = x]``."""
        return self.pair(params, x, t, labels, guidance)[0]

    def bind(self, params, labels: ArrayLike | None = None, guidance: float = 0.0) -> LearnedScore:
        """A :class:`LearnedScore` callable ``score(x, t)`` with ``params`` (and optional labels/guidance)."""
        return LearnedScore(self, params, None if labels is None else jnp.asarray(labels, jnp.int32), guidance)


@pytree_dataclass
class LearnedScore:
    """A trained score as a PyTree callable ``score(x, t)``, interchangeable with :class:`~jaxotdm.ExactScore`.

    ``x`` has shape ``(..., d)``; ``t`` is a scalar or broadcastable to ``x.shape[:-1]``. Also exposes
    :meth:`denoiser`. ``labels`` (broadcastable to ``x.shape[:-1]``) and ``guidance`` select
    class-conditional sampling with classifier-free guidance.
    """

    model: ScoreModel
    params: object
    labels: Array | None = None
    guidance: float = static_field(0.0)

    @property
    def schedule(self) -> Schedule:
        return self.model.schedule

    def __call__(self, x: Float[ArrayLike, "... d"], t: ArrayLike) -> Float[Array, "... d"]:
        x = jnp.asarray(x)
        return self.model.score(self.params, x, t, self.labels, self.guidance)

    def denoiser(self, x: Float[ArrayLike, "... d"], t: ArrayLike) -> Float[Array, "... d"]:
        x = jnp.asarray(x)
        return self.model.denoiser(self.params, x, t, self.labels, self.guidance)
