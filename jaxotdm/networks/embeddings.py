"""Noise-level embeddings of the log-SNR and the shared conditioning block (noise level + optional class)."""

from __future__ import annotations

import math

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from jaxotdm import _validation as V
from jaxotdm._types import Array

__all__ = ["SinusoidalEmbedding", "FourierEmbedding"]


class SinusoidalEmbedding(nn.Module):
    """Transformer-style sinusoidal embedding of the log-SNR with geometric frequencies.

    Frequencies run from ``min_freq`` to ``max_freq``; the defaults resolve log-SNR differences of
    about 0.1 over the range ``|log_snr| <~ 30``.
    """

    dim: int = 64
    min_freq: float = 1.0 / 32.0
    max_freq: float = 8.0

    def __post_init__(self):  # checked at construction
        V.check_int(self.dim, "dim", minimum=2)
        if self.dim % 2:
            raise ValueError(f"`dim` must be even (sine and cosine pairs), got {self.dim}.")
        lo = V.positive_scalar(self.min_freq, "min_freq")
        V.positive_scalar(self.max_freq, "max_freq")
        if not self.max_freq >= lo:
            raise ValueError(f"`max_freq` must be >= `min_freq` ({lo:g}), got {self.max_freq!r}.")
        super().__post_init__()

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

    def __post_init__(self):  # checked at construction
        V.check_int(self.dim, "dim", minimum=2)
        if self.dim % 2:
            raise ValueError(f"`dim` must be even (sine and cosine pairs), got {self.dim}.")
        V.positive_scalar(self.scale, "scale")
        V.check_int(self.seed, "seed", minimum=0)
        super().__post_init__()

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
