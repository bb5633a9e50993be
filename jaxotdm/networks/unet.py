"""DDPM-style U-Net on flat image vectors ``(..., H*W*C)`` (reshaped internally to NHWC)."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxotdm import _validation as V
from jaxotdm._types import Array
from jaxotdm.networks.embeddings import SinusoidalEmbedding, _Conditioning

__all__ = ["UNet"]


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

    def __post_init__(self):  # checked at construction, before any init/apply
        shape = tuple(self.image_shape) if isinstance(self.image_shape, (tuple, list)) else None
        if shape is None or len(shape) != 3:
            raise ValueError(f"`image_shape` must be (H, W, C), got {self.image_shape!r}.")
        for i, v in enumerate(shape):
            V.check_int(v, f"image_shape[{i}]", minimum=1)
        V.check_int(self.channels, "channels", minimum=1)
        if not isinstance(self.channel_mult, (tuple, list)) or not self.channel_mult:
            raise ValueError(f"`channel_mult` must be a non-empty sequence of integers, got {self.channel_mult!r}.")
        for i, m in enumerate(self.channel_mult):
            V.check_int(m, f"channel_mult[{i}]", minimum=1)
        V.check_int(self.num_res_blocks, "num_res_blocks", minimum=1)
        V.check_int(self.heads, "heads", minimum=1)
        V.check_int(self.groups, "groups", minimum=1)
        if self.num_classes is not None:
            V.check_int(self.num_classes, "num_classes", minimum=1)
        super().__post_init__()

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
