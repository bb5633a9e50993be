"""Denoising score matching: weightings and time distributions, the objective, state and step, checkpoints,
and a resumable training driver.

Modules (one concept each):

- :mod:`~jaxotdm.training.weighting`: loss weightings ``w(t)`` and training time distributions ``q(t)``;
- :mod:`~jaxotdm.training.objective`: :class:`DSMObjective` and :func:`score_relative_error`;
- :mod:`~jaxotdm.training.state`: :class:`TrainState`, :class:`AdamConfig`, :func:`train_step` and the
  device-side loop :func:`train_steps`;
- :mod:`~jaxotdm.training.checkpoint`: atomic, checksummed, resumable checkpoints;
- :mod:`~jaxotdm.training.fit`: the driver :func:`fit`.

Example (the driver; :mod:`~jaxotdm.training.state` shows one step in your own optax loop):
    >>> import jaxotdm as jo
    >>> from jaxotdm.data import toy_2d
    >>> from jaxotdm.networks import MLP, ScoreModel
    >>> from jaxotdm.training import DSMObjective, fit
    >>> objective = DSMObjective(ScoreModel(MLP(features=16, depth=1), jo.OU()))
    >>> result = fit(objective, toy_2d("moons", 64, seed=0), steps=5, batch_size=32)
    >>> result.losses.shape, int(result.state.step)
    ((5,), 5)
"""

from jaxotdm.training.checkpoint import (
    CHECKPOINT_NAME,
    CheckpointError,
    TrainingHistory,
    load_checkpoint,
    save_checkpoint,
)
from jaxotdm.training.fit import (
    Checkpointing,
    FitResult,
    Monitoring,
    NonFiniteLossError,
    TrainingInterrupted,
    fit,
)
from jaxotdm.training.objective import DSMObjective, score_relative_error
from jaxotdm.training.state import (
    AdamConfig,
    StepLog,
    TrainState,
    default_optimizer_for,
    epoch_batch_indices,
    init_train_state,
    train_step,
    train_steps,
)
from jaxotdm.training.weighting import (
    EDMWeighting,
    LikelihoodWeighting,
    LogNormalSigma,
    MinSNRWeighting,
    NativeMSE,
    NoiseMSE,
    UniformLogSNRDistribution,
    UniformTimeDistribution,
    Weighting,
)

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
    "DSMObjective",
    "TrainState",
    "AdamConfig",
    "default_optimizer_for",
    "init_train_state",
    "train_step",
    "train_steps",
    "StepLog",
    "epoch_batch_indices",
    "score_relative_error",
    "save_checkpoint",
    "load_checkpoint",
    "TrainingHistory",
    "CheckpointError",
    "CHECKPOINT_NAME",
    "NonFiniteLossError",
    "TrainingInterrupted",
    "FitResult",
    "fit",
    "Checkpointing",
    "Monitoring",
]
