"""Residual MLP score network for flat data ``(..., d)`` (low-dimensional points and small images)."""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from jaxotdm import _validation as V
from jaxotdm._types import Array
from jaxotdm.networks.embeddings import SinusoidalEmbedding, _Conditioning

__all__ = ["MLP"]


class MLP(nn.Module):
    """Residual MLP score network for low-dimensional data.

    Each block is ``h + Dense_W(silu(Dense_H(silu(LayerNorm(h))) + Dense_H(silu(emb))))`` with hidden width
    ``H = expansion * features`` (an inverted bottleneck for ``expansion > 1``, as in transformer MLPs); the
    output layer is zero-initialised so a fresh network outputs zeros in its parametrisation.

    Attributes:
        features: width of the residual stream.
        depth: number of residual blocks (>= 1: the noise level enters the network through them).
        expansion: hidden width of each block as a multiple of ``features``.
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
    expansion: int = 1

    def __post_init__(self):  # checked at construction, before any init/apply
        V.check_int(self.features, "features", minimum=1)
        V.check_int(self.depth, "depth", minimum=1)  # the log-SNR conditioning enters through the blocks
        V.check_int(self.expansion, "expansion", minimum=1)
        if self.num_classes is not None:
            V.check_int(self.num_classes, "num_classes", minimum=1)
        super().__post_init__()

    @nn.compact
    def __call__(self, x: Array, log_snr: Array, labels: Array | None = None) -> Array:
        log_snr = jnp.broadcast_to(jnp.asarray(log_snr, x.dtype), x.shape[:-1])
        emb = _Conditioning(self.embedding, self.features, self.num_classes)(log_snr, labels)
        hidden = self.features * self.expansion
        h = nn.Dense(self.features, name="input")(x)
        for _ in range(self.depth):
            r = nn.Dense(hidden)(nn.silu(nn.LayerNorm()(h)))
            r = nn.Dense(self.features)(nn.silu(r + nn.Dense(hidden)(nn.silu(emb))))
            h = h + r
        return nn.Dense(x.shape[-1], kernel_init=nn.initializers.zeros)(nn.silu(nn.LayerNorm()(h)))
