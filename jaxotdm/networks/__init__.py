"""Learned score networks (flax.linen), their output parametrisations, and self-describing model folders.

A network maps ``(x_in, log_snr, labels)`` to a raw output of the same shape as ``x``. What the raw
output *means* is chosen by an output parametrisation (:mod:`~jaxotdm.networks.parametrisations`), an
immutable object that converts between it and the pair ``(x0, eps)`` of the forward model
``x_t = alpha_t x0 + sigma_t eps`` for any schedule. :class:`ScoreModel` ties a network to a schedule and
a parametrisation and always feeds the network the normalised input ``x / sqrt(sigma_t^2 + alpha_t^2
sigma_data^2)`` and the log-SNR, so the same network works for VP, VE and EDM schedules.
``ScoreModel.bind(params)`` returns a :class:`LearnedScore`, a PyTree callable ``score(x, t)`` that every
sampler, flow map and OT tool accepts; :func:`load_score` returns one from a model folder written by
``jaxotdm train`` or :func:`save_model`.

Modules: ``parametrisations`` (what the output means), ``embeddings`` (noise-level embeddings), ``mlp``
(residual MLP), ``unet`` (U-Net for images), ``model`` (ScoreModel, LearnedScore, guidance), ``saving``
(model folders), ``adapters`` (:func:`as_network`: flax NNX, equinox modules and plain functions as networks).

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

from jaxotdm._io import CheckpointError
from jaxotdm.networks.adapters import as_network
from jaxotdm.networks.embeddings import FourierEmbedding, SinusoidalEmbedding
from jaxotdm.networks.mlp import MLP
from jaxotdm.networks.model import LearnedScore, ScoreModel, classifier_free_guidance
from jaxotdm.networks.parametrisations import (
    DataPrediction,
    EDMPreconditioning,
    NoisePrediction,
    Parametrisation,
    ScorePrediction,
    VPrediction,
    convert_output,
)
from jaxotdm.networks.saving import (
    DataSplit,
    SavedModel,
    load_model,
    load_score,
    load_split,
    model_config,
    model_from_config,
    save_model,
)
from jaxotdm.networks.unet import UNet

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
    "as_network",
    "classifier_free_guidance",
    "SavedModel",
    "DataSplit",
    "CheckpointError",
    "model_config",
    "model_from_config",
    "save_model",
    "load_model",
    "load_score",
    "load_split",
]
