"""The training driver :func:`fit`: device-side step loops, atomic checkpoints, evaluation, safe stops.

Steps run in chunks of :func:`~jaxotdm.training.train_steps` (one ``lax.scan`` each, data and losses on
device); the host synchronises only at the chunk ends, which are the logging, evaluation and
checkpoint points. A non-finite loss stops the run at once; a periodic checkpoint is written only when
the parameters are finite and the loss has not diverged, so the checkpoint left behind after a failure is
a good one to resume from, with a lower learning rate if need be.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import math
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxotdm import _validation as V
from jaxotdm._io import locked
from jaxotdm._pytree import pytree_dataclass
from jaxotdm._types import ArrayLike, Float
from jaxotdm.training.checkpoint import (
    CHECKPOINT_NAME,
    CheckpointError,
    TrainingHistory,
    load_checkpoint,
    save_checkpoint,
)
from jaxotdm.training.objective import DSMObjective
from jaxotdm.training.state import AdamConfig, TrainState, init_train_state, train_steps

__all__ = ["Checkpointing", "FitResult", "Monitoring", "NonFiniteLossError", "TrainingInterrupted", "fit"]

_CHECKPOINT_SET = "model"  # the lock of a checkpoint folder is the model folder's (``jaxotdm train`` shares it)


class NonFiniteLossError(RuntimeError):
    """Training hit a non-finite (or diverged) loss; ``state`` holds the last finite parameters (at ``step``,
    the failing step), ``checkpoint`` the last good checkpoint written (or None)."""

    def __init__(self, message: str, *, state: TrainState, step: int, checkpoint: Path | None):
        super().__init__(message)
        self.state, self.step, self.checkpoint = state, step, checkpoint


class TrainingInterrupted(RuntimeError):
    """``Monitoring.should_stop()`` asked :func:`fit` to stop: the chunk in progress was finished and (with a
    :class:`Checkpointing`) checkpointed. ``state`` and ``step`` are where it stopped, ``checkpoint`` the last
    checkpoint written (or None) and ``checkpoint_step`` its step."""

    def __init__(self, message: str, *, state: TrainState, step: int, checkpoint: Path | None, checkpoint_step: int):
        super().__init__(message)
        self.state, self.step, self.checkpoint, self.checkpoint_step = state, step, checkpoint, checkpoint_step


@dataclasses.dataclass(frozen=True)
class Checkpointing:
    """Where and when :func:`fit` writes its checkpoint (``checkpoint.msgpack`` in ``directory``).

    A checkpoint is written every ``every`` steps (if given) and at the end, each time only if the
    parameters are finite and the loss has not diverged. The folder is locked for the run (an exclusive
    ``flock``, see :mod:`jaxotdm._io`): a second process training into it is refused at once.

    Args:
        directory: the checkpoint folder.
        every: also write a checkpoint every ``every`` steps (default: at the end only).
        resume: continue from the checkpoint in ``directory`` (error if absent or mismatched).
        overwrite: start afresh even if ``directory`` holds a checkpoint (otherwise that is an error).
        config: extra JSON-able settings recorded in the checkpoint and required to match on resume (e.g.
            the optimiser's hyper-parameters when a custom ``optimizer`` is passed).

    Example:
        >>> from jaxotdm.training import Checkpointing
        >>> Checkpointing("runs/moons", every=500).every
        500
    """

    directory: str | Path
    every: int | None = None
    resume: bool = False
    overwrite: bool = False
    config: dict | None = None

    def __post_init__(self):
        if not isinstance(self.directory, (str, Path)) or not str(self.directory):
            raise ValueError(f"`directory` must be a folder path, got {self.directory!r}.")
        if self.every is not None:
            V.check_positive_int(self.every, "every")
        V.check_bool(self.resume, "resume")
        V.check_bool(self.overwrite, "overwrite")
        if self.resume and self.overwrite:
            raise ValueError("pass at most one of `resume=True` and `overwrite=True`.")
        if self.config is not None and not isinstance(self.config, dict):
            raise ValueError(f"`config` must be a dict of JSON-able settings, got {type(self.config).__name__}.")


@dataclasses.dataclass(frozen=True)
class Monitoring:
    """What :func:`fit` reports while it runs, and how it is asked to stop (progress bars live here).

    Args:
        callback: ``callback(step, metrics)`` at every host synchronisation (every ``log_every`` steps and at
            evaluation/checkpoint points), with the mean ``loss``/``eps_mse`` of the steps since the last
            call and the last ``grad_norm``.
        log_every: steps per device-side chunk (the host synchronises once per chunk).
        eval_fn: ``eval_fn(state) -> dict``, called every ``eval_every`` steps and at the end (before the
            checkpoint of that step is written, so that the checkpoint records it: a kill never separates the
            final checkpoint from the final evaluation; if the evaluation raises, the checkpoint of that step
            is written without it before the error propagates).
        eval_every: see ``eval_fn`` (default: at the end only).
        should_stop: asked after every chunk; when it returns True the run writes a checkpoint (with a
            :class:`Checkpointing`) and raises :class:`TrainingInterrupted` (the CLI's Ctrl-C).

    Example:
        >>> from jaxotdm.training import Monitoring
        >>> Monitoring(log_every=50, callback=lambda step, metrics: None).log_every
        50
    """

    callback: Callable[[int, dict], None] | None = None
    log_every: int = 100
    eval_fn: Callable[[TrainState], dict] | None = None
    eval_every: int | None = None
    should_stop: Callable[[], bool] | None = None

    def __post_init__(self):
        V.check_positive_int(self.log_every, "log_every")
        if self.eval_every is not None:
            V.check_positive_int(self.eval_every, "eval_every")
        for name in ("callback", "eval_fn", "should_stop"):
            value = getattr(self, name)
            if value is not None and not callable(value):
                raise ValueError(f"`{name}` must be callable, got {value!r}.")


class _Run(NamedTuple):
    """The optimisation settings of one :func:`fit` call, checked."""

    steps: int
    batch_size: int
    optimizer: object
    learning_rate: float
    seed: int
    ema_decay: float
    divergence_factor: float


@pytree_dataclass
class FitResult:
    """Result of :func:`fit`.

    Attributes:
        state: the final :class:`~jaxotdm.training.TrainState`.
        losses: per-step training loss for steps ``0 .. state.step - 1`` (float64 NumPy array).
        evaluations: ``[{"step": k, **eval_fn(state)}, ...]``.
        checkpoint: path of the last checkpoint written (or None).
        resumed_from: the step a resumed run started from (0 for a fresh run).
        history: the run's :class:`~jaxotdm.training.TrainingHistory` as stored in the checkpoint (losses,
            evaluations, learning rates used, checkpoints skipped).
    """

    state: TrainState
    losses: np.ndarray
    evaluations: list
    checkpoint: Path | None
    resumed_from: int
    history: TrainingHistory


def _fingerprint(x: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest()[:16]


def _resolve_optimizer(optimizer, learning_rate):
    """``(optax transformation, config entry, learning rate or None)``."""
    if optimizer is None:
        optimizer = AdamConfig(learning_rate)
    if isinstance(optimizer, AdamConfig):
        fields = {k: v for k, v in vars(optimizer).items() if k != "learning_rate"}
        return optimizer.build(), {"adam": fields}, optimizer.learning_rate
    if not isinstance(optimizer, optax.GradientTransformation):
        raise ValueError(f"`optimizer` must be an AdamConfig or an optax GradientTransformation, got {optimizer!r}.")
    return optimizer, "custom", None


def _check_fit_args(objective, data, labels, run: _Run, checkpoint: Checkpointing | None, monitor: Monitoring):
    if not isinstance(objective, DSMObjective):
        raise ValueError(f"`objective` must be a DSMObjective, got {type(objective).__name__}.")
    x = np.asarray(V.as_float_array(data, "data"))
    V.check_ndim(x, 2, "data", "(n, d)")
    V.check_finite(x, "data")
    n = x.shape[0]
    if n < 1 or x.shape[1] < 1:
        raise ValueError(f"`data` must hold at least one point of dimension >= 1, got shape {x.shape}.")
    V.check_positive_int(run.steps, "steps")
    V.check_positive_int(run.batch_size, "batch_size")
    if run.batch_size > n:
        raise ValueError(f"`batch_size` ({run.batch_size}) must be <= the number of training points in `data` ({n}).")
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"`labels` must be integers of shape ({n},), got {labels.dtype} {labels.shape}.")
        k = objective.model.num_classes
        if k is None:
            raise ValueError("`labels` were given but the model's network has no class conditioning.")
        if labels.min() < 0 or labels.max() >= k:
            raise ValueError(f"`labels` must be in [0, {k}) for the network's {k} classes, got "
                             f"[{int(labels.min())}, {int(labels.max())}].")
        labels = labels.astype(np.int32)
    V.ema_decay(run.ema_decay)
    if not (isinstance(run.divergence_factor, (int, float)) and run.divergence_factor > 1):
        raise ValueError(f"`divergence_factor` must be a number > 1, got {run.divergence_factor!r}.")
    if checkpoint is not None and not isinstance(checkpoint, Checkpointing):
        raise ValueError(f"`checkpoint` must be a Checkpointing (or None), got {type(checkpoint).__name__}.")
    if not isinstance(monitor, Monitoring):
        raise ValueError(f"`monitor` must be a Monitoring (or None), got {type(monitor).__name__}.")
    if (checkpoint is not None and not checkpoint.resume and not checkpoint.overwrite
            and (Path(checkpoint.directory) / CHECKPOINT_NAME).exists()):
        raise ValueError(f"`checkpoint` folder {str(checkpoint.directory)!r} already holds a checkpoint: pass "
                         "Checkpointing(..., resume=True) to continue it or overwrite=True to start over.")
    try:
        hash(objective)
    except TypeError as exc:
        raise ValueError(
            "`objective` must be hashable for fit (its compiled step is cached): give schedules, weightings and "
            f"time distributions Python floats, not arrays ({exc})."
        ) from None
    return x, labels


def _finite_params(state) -> bool:
    return bool(jax.tree.reduce(lambda a, b: a & b, jax.tree.map(lambda p: jnp.all(jnp.isfinite(p)), state.params)))


def fit(
    objective: DSMObjective,
    data: Float[ArrayLike, "n d"],
    *,
    steps: int,
    batch_size: int,
    optimizer: AdamConfig | optax.GradientTransformation | None = None,
    learning_rate: float = 1e-3,
    seed: int = 0,
    labels: ArrayLike | None = None,
    ema_decay: float = 0.999,
    checkpoint: Checkpointing | None = None,
    monitor: Monitoring | None = None,
    divergence_factor: float = 10.0,
) -> FitResult:
    """Trains ``objective.model`` on ``data`` for ``steps`` total steps.

    Args:
        objective: the :class:`~jaxotdm.training.DSMObjective`.
        data: training points ``(n, d)``; ``labels`` optional integer labels ``(n,)``.
        steps: total number of steps (a resumed run continues up to this count).
        batch_size: examples per step (``<= n``); epochs drop the remainder.
        optimizer: an :class:`~jaxotdm.training.AdamConfig` (default ``AdamConfig(learning_rate)``) or any
            optax transformation.
        learning_rate: the step size of the default optimiser. It may differ on resume (e.g. lower after a
            non-finite loss); the history records the rate used from each step on.
        seed: everything random (initialisation, step keys, data order) derives from it.
        ema_decay: EMA decay (with warm-up).
        checkpoint: a :class:`Checkpointing` (folder, how often, resume or overwrite); ``None``: no
            checkpoint is written.
        monitor: a :class:`Monitoring` (progress callback and its cadence, evaluation, a stop request);
            default ``Monitoring()``.
        divergence_factor: a chunk whose mean loss exceeds this multiple of the best earlier chunk mean has
            diverged: no checkpoint is written from it.

    Raises:
        NonFiniteLossError: on a non-finite loss (at once), or when the loss has diverged at the last
            step; the last good checkpoint is left untouched.
        TrainingInterrupted: when ``should_stop()`` returned True.

    Example:
        >>> import jax, jaxotdm as jo
        >>> from jaxotdm.networks import MLP, ScoreModel
        >>> from jaxotdm.training import DSMObjective, fit
        >>> from jaxotdm.data import toy_2d
        >>> obj = DSMObjective(ScoreModel(MLP(features=32, depth=1), jo.OU()))
        >>> res = fit(obj, toy_2d("moons", 128), steps=5, batch_size=32)
        >>> res.losses.shape
        (5,)
    """
    monitor = Monitoring() if monitor is None else monitor
    run = _Run(steps, batch_size, optimizer, learning_rate, V.check_int(seed, "seed"), ema_decay, divergence_factor)
    x, labels = _check_fit_args(objective, data, labels, run, checkpoint, monitor)
    lock = contextlib.nullcontext() if checkpoint is None else locked(checkpoint.directory, _CHECKPOINT_SET)
    with lock:
        return _fit(objective, x, labels, run, checkpoint, monitor)


def _fit(objective, x, labels, run: _Run, ckpt: Checkpointing | None, mon: Monitoring) -> FitResult:
    steps, batch_size, seed, ema_decay = run.steps, run.batch_size, run.seed, run.ema_decay
    log_every, eval_every, eval_fn = mon.log_every, mon.eval_every, mon.eval_fn
    checkpoint_every = None if ckpt is None else ckpt.every
    opt, opt_entry, lr = _resolve_optimizer(run.optimizer, run.learning_rate)
    run_config = _run_config(objective, x, labels, run, opt_entry, None if ckpt is None else ckpt.config)
    base = jax.random.key(seed)
    data_key = jax.random.fold_in(base, 2)
    xd = jnp.asarray(x)
    ld = None if labels is None else jnp.asarray(labels)
    state = init_train_state(objective.model, opt, xd[:1], key=base, labels_example=None if ld is None else ld[:1])
    book = _Book(None if ckpt is None else Path(ckpt.directory) / CHECKPOINT_NAME, run_config, run.divergence_factor)
    if ckpt is not None and ckpt.resume:
        state = book.resume(state)
    start = int(state.step)
    if start > steps:
        raise ValueError(f"`steps` ({steps}) is below the checkpoint's step ({start}); nothing to resume.")
    book.record_learning_rate(start, lr)
    length = min(log_every, steps)
    k = start
    while k < steps:
        stop = min(steps, *((k // e + 1) * e for e in (log_every, eval_every, checkpoint_every) if e))
        state, log = train_steps(state, xd, ld, data_key, jnp.asarray(stop - k, jnp.int32), length=length,
                                 objective=objective, optimizer=opt, batch_size=batch_size, ema_decay=ema_decay)
        chunk = book.take(jax.device_get(log), state, k)
        k = stop
        if mon.callback is not None:
            mon.callback(k, chunk)
        stop = k < steps and mon.should_stop is not None and bool(mon.should_stop())
        save = book.path is not None and (_at(k, checkpoint_every) or k == steps or stop)
        if eval_fn is not None and (_at(k, eval_every) or k == steps):
            try:  # first, so that the checkpoint of step k records it (one write: a kill cannot part them)
                book.evaluate(eval_fn, state, k)
            except BaseException:
                if save:  # a failing evaluation never costs the state of step k
                    book.checkpoint(state, k, final=k == steps)
                raise
        if save:
            book.checkpoint(state, k, final=k == steps)
        if stop:
            raise TrainingInterrupted(f"training stopped on request at step {k}", state=state, step=k,
                                      checkpoint=book.last_path, checkpoint_step=book.last_step)
    last = book.path if (book.path is not None and start == steps) else book.last_path
    history = TrainingHistory.from_json(book.history)
    return FitResult(state, history.losses, history.evaluations, last, start, history)


def _at(k: int, every: int | None) -> bool:
    return bool(every) and k % every == 0


def _run_config(objective, x, labels, run: _Run, opt_entry, config) -> dict:
    """The settings a resumed run must share with the checkpoint (not the learning rate)."""
    return {
        "model": repr(objective.model),
        "weighting": repr(objective.weighting),
        "time_distribution": repr(objective.time_distribution),
        "label_dropout": objective.label_dropout,
        "data_shape": list(x.shape),
        "data_dtype": str(x.dtype),
        "data_sha256": _fingerprint(x),
        "labels_sha256": None if labels is None else _fingerprint(labels),
        "batch_size": run.batch_size,
        "seed": run.seed,
        "ema_decay": run.ema_decay,
        "optimizer": opt_entry,
        **(config or {}),
    }


class _Book:
    """The host-side record of a :func:`fit` run: losses, evaluations, learning rates, checkpoints written or
    skipped, and the divergence test that decides whether a checkpoint may be written."""

    def __init__(self, path, run_config, divergence_factor):
        self.path, self.run_config, self.factor = path, run_config, divergence_factor
        self.history = {"losses": [], "evaluations": [], "learning_rates": [], "skipped_checkpoints": []}
        self.last_path, self.last_step = None, -1
        self.best_chunk, self.since_ckpt, self.diverged = math.inf, [], False

    def resume(self, state):
        state, _, saved = load_checkpoint(self.path, state, config=self.run_config)
        self.history.update({k: list(v) for k, v in saved.to_json().items()})
        self.last_path, self.last_step = self.path, int(state.step)
        if len(self.history["losses"]) != int(state.step):
            raise CheckpointError(f"checkpoint {str(self.path)!r} is inconsistent: {len(self.history['losses'])} "
                                  f"losses for step {int(state.step)}.")
        return state

    def record_learning_rate(self, step, lr):
        rates = self.history["learning_rates"]
        if lr is not None and (not rates or rates[-1][1] != lr):
            rates.append([step, lr])

    def fail(self, message, state, k, detail=""):
        where = (f"the last good checkpoint (step {self.last_step}) is kept at {str(self.last_path)!r}; resume from "
                 "it with a lower learning rate (fit(..., checkpoint=Checkpointing(..., resume=True), learning_rate=...); CLI: --resume --lr)"
                 if self.last_path is not None else "no checkpoint had been written; lower the learning rate")
        raise NonFiniteLossError(f"training stopped: {message} at step {k}{detail}; {where}, or check the data.",
                                 state=state, step=k, checkpoint=self.last_path)

    def take(self, log, state, k) -> dict:
        """Books one chunk's per-step records; stops on a non-finite step. Returns the callback's metrics."""
        done = np.asarray(log.done)
        chunk = np.asarray(log.loss, np.float64)[done]
        self.history["losses"].extend(chunk.tolist())
        self.since_ckpt.extend(chunk.tolist())
        if not np.all(log.finite):
            bad = k + int(np.argmin(log.finite))
            self.fail("non-finite loss or update", state, bad, f" (loss = {float(np.asarray(log.loss)[bad - k])})")
        mean = float(chunk.mean())
        self.diverged = mean > self.factor * self.best_chunk
        self.best_chunk = min(self.best_chunk, mean)
        return {"loss": mean, "eps_mse": float(np.asarray(log.eps_mse)[done].mean()),
                "grad_norm": float(np.asarray(log.grad_norm)[done][-1])}

    def checkpoint(self, state, k, *, final: bool):
        """Writes the checkpoint unless the parameters are not finite or the loss has diverged."""
        recent = float(np.mean(self.since_ckpt))
        self.since_ckpt = []
        if self.diverged or recent > self.factor * self.best_chunk or not _finite_params(state):
            self.history["skipped_checkpoints"].append([k, recent])
            if final:
                self.fail("the loss diverged", state, k, f" (mean {recent:.4g} since the last checkpoint, best "
                          f"chunk mean {self.best_chunk:.4g})")
            return
        save_checkpoint(self.path, state, config=self.run_config, history=self.history)
        self.last_path, self.last_step = self.path, k

    def evaluate(self, eval_fn, state, k):
        """Records ``eval_fn(state)``; it runs before the checkpoint of step ``k``, which then holds it."""
        self.history["evaluations"].append({"step": k, **{n: float(v) for n, v in eval_fn(state).items()}})
