"""Denoising score matching: a pure loss, an optax ``train_step``, EMA, and a resumable training driver.

The objective for a :class:`~jaxotdm.networks.ScoreModel` with parametrisation ``P`` is

    L(theta) = E_{t ~ q} E_{x0, eps} [ w(t) |eps_hat_theta(x_t, t) - eps|^2 / d ],   x_t = alpha_t x0 + sigma_t eps,

written in *noise* units and evaluated in the network's own output space: the squared output error is
divided by ``P.eps_scale2(alpha, sigma)`` (the exact factor between output and noise errors), so no
ill-conditioned conversion enters the loss. Weightings (``w``) and time distributions (``q``) are
small immutable objects:

- :class:`NoiseMSE` (``w = 1``; Song's ``lambda = sigma^2``, DDPM's "simple" loss),
- :class:`LikelihoodWeighting` (``w = g^2 / sigma^2``, Song et al. 2021's ``lambda = g^2``; note
  ``g^2 / sigma^2 = -d lambda / dt`` for every schedule, so with :class:`UniformTime` it equals
  :class:`NoiseMSE` under :class:`UniformLogSNR` up to a constant, the lower-variance VDM form),
- :class:`EDMWeighting` (Karras et al.'s ``1 / c_out^2`` in data units),
- :class:`MinSNRWeighting` (Hang et al. 2023),
- :class:`NativeMSE` (plain MSE of the raw output, whatever the parametrisation).

``train_step(state, batch, ...)`` is pure and jittable, for users' own optax loops; :class:`TrainState`
is an immutable PyTree holding the step, parameters, EMA parameters, optimiser state and the base PRNG
key. Randomness is derived from the step alone: the step's key is ``fold_in(train_key, step)`` and the
data order of epoch ``e`` is ``permutation(fold_in(data_key, e))``, so a resumed run is bit-for-bit the
uninterrupted one. :func:`fit` drives training with atomic, checksummed checkpoints, periodic
evaluation and a stop on non-finite loss that keeps the last good checkpoint.

Example:
    >>> import jax, jax.numpy as jnp, optax, jaxotdm as jo
    >>> from jaxotdm.networks import MLP, ScoreModel
    >>> from jaxotdm.training import DSMObjective, init_train_state, train_step
    >>> model = ScoreModel(MLP(features=32, depth=1), jo.OU())
    >>> objective = DSMObjective(model)
    >>> opt = optax.adam(1e-3)
    >>> data = jax.random.normal(jax.random.key(1), (64, 2))
    >>> state = init_train_state(model, opt, data[:1], key=jax.random.key(0))
    >>> step = jax.jit(lambda s, b: train_step(s, b, objective=objective, optimizer=opt))
    >>> state, metrics = step(state, data)
    >>> int(state.step)
    1
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import flax.serialization
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxotdm import _validation as V
from jaxotdm._pytree import pytree_dataclass, static_field
from jaxotdm._types import Array, ArrayLike, Float
from jaxotdm.networks import Parametrisation, ScoreModel
from jaxotdm.schedules import Schedule

__all__ = [
    "Weighting",
    "NoiseMSE",
    "NativeMSE",
    "LikelihoodWeighting",
    "EDMWeighting",
    "MinSNRWeighting",
    "UniformTime",
    "UniformLogSNR",
    "LogNormalSigma",
    "DSMObjective",
    "TrainState",
    "init_train_state",
    "train_step",
    "epoch_batch_indices",
    "score_relative_error",
    "save_checkpoint",
    "load_checkpoint",
    "CheckpointError",
    "NonFiniteLossError",
    "FitResult",
    "fit",
]


# ----------------------------------------------------------------------------------------------------
# Weightings
# ----------------------------------------------------------------------------------------------------


@pytree_dataclass
class Weighting:
    """Base class: ``eps_weight(t, schedule)`` is ``w(t)`` on the noise-space squared error."""

    def eps_weight(self, t: Array, schedule: Schedule) -> Array:  # pragma: no cover - abstract
        raise NotImplementedError

    def output_weight(self, t, schedule: Schedule, parametrisation: Parametrisation, alpha, sigma) -> Array:
        """Weight on the squared error of the raw output: ``w(t) / eps_scale2``."""
        return self.eps_weight(t, schedule) / parametrisation.eps_scale2(alpha, sigma)


@pytree_dataclass
class NoiseMSE(Weighting):
    """``w = 1``: mean squared error of the predicted noise (``lambda(t) = sigma_t^2`` on the score)."""

    def eps_weight(self, t, schedule):
        return jnp.ones_like(t)


@pytree_dataclass
class NativeMSE(Weighting):
    """Plain mean squared error of the raw network output, whatever its parametrisation."""

    def eps_weight(self, t, schedule):  # pragma: no cover - output_weight is overridden
        raise NotImplementedError

    def output_weight(self, t, schedule, parametrisation, alpha, sigma):
        return jnp.ones_like(t)


@pytree_dataclass
class LikelihoodWeighting(Weighting):
    """``w = g(t)^2 / sigma_t^2`` (Song, Durkan, Murray & Ermon 2021: ``lambda(t) = g(t)^2`` on the score).

    With :class:`UniformTime` the loss is (up to constants) the negative ELBO bound on the likelihood.
    """

    def eps_weight(self, t, schedule):
        return schedule.diffusion2(t) / schedule.sigma2(t)


@pytree_dataclass
class EDMWeighting(Weighting):
    """EDM's weight ``(sigma_e^2 + sigma_data^2) / (sigma_e sigma_data)^2`` on the data error,
    ``sigma_e = sigma / alpha``; in noise units ``w = (sigma^2 + alpha^2 sigma_data^2) / (alpha sigma_data)^2``.
    With :class:`~jaxotdm.networks.EDMPreconditioning` of the same ``sigma_data`` it is a plain MSE on ``F``."""

    sigma_data: float = 0.5

    def eps_weight(self, t, schedule):
        a2, s2 = jnp.square(schedule.alpha(t)), schedule.sigma2(t)
        return (s2 + a2 * self.sigma_data**2) / (a2 * self.sigma_data**2)


@pytree_dataclass
class MinSNRWeighting(Weighting):
    """Min-SNR-gamma (Hang et al. 2023): ``w = min(SNR, gamma) / SNR`` in noise units."""

    gamma: float = 5.0

    def eps_weight(self, t, schedule):
        snr = jnp.exp(schedule.log_snr(t))
        return jnp.minimum(snr, self.gamma) / snr


# ----------------------------------------------------------------------------------------------------
# Time distributions
# ----------------------------------------------------------------------------------------------------


@pytree_dataclass
class UniformTime:
    """``t ~ U(t_min, t_max)``."""

    t_min: float = 1e-3
    t_max: float = 1.0

    def sample(self, key, shape, schedule: Schedule, dtype) -> Array:
        return jax.random.uniform(key, shape, dtype, self.t_min, self.t_max)

    def check(self, schedule: Schedule) -> None:
        _check_time_range(self.t_min, self.t_max, schedule, "time_distribution")


@pytree_dataclass
class UniformLogSNR:
    """``lambda ~ U(log_snr_min, log_snr_max)``, mapped to ``t = schedule.t_from_log_snr(lambda)``.

    Use :meth:`between` to cover a time interval ``[t_min, t_max]`` of a given schedule.
    """

    log_snr_min: float = -10.0
    log_snr_max: float = 10.0

    @classmethod
    def between(cls, schedule: Schedule, t_min: float, t_max: float) -> UniformLogSNR:
        _check_time_range(t_min, t_max, schedule, "t_min/t_max")
        lo, hi = (float(schedule.log_snr(jnp.asarray(t, jnp.float64 if jax.config.x64_enabled else jnp.float32)))
                  for t in (t_max, t_min))
        return cls(lo, hi)

    def sample(self, key, shape, schedule: Schedule, dtype) -> Array:
        lam = jax.random.uniform(key, shape, dtype, self.log_snr_min, self.log_snr_max)
        return schedule.t_from_log_snr(lam)

    def check(self, schedule: Schedule) -> None:
        if not (math.isfinite(self.log_snr_min) and math.isfinite(self.log_snr_max)) or not (
            self.log_snr_min < self.log_snr_max
        ):
            raise ValueError(
                f"`time_distribution` needs finite log_snr_min < log_snr_max, got "
                f"({self.log_snr_min}, {self.log_snr_max})."
            )


@pytree_dataclass
class LogNormalSigma:
    """EDM's ``log(sigma / alpha) ~ N(p_mean, p_std^2)`` (Karras et al. 2022), mapped to ``t`` via the log-SNR."""

    p_mean: float = -1.2
    p_std: float = 1.2

    def sample(self, key, shape, schedule: Schedule, dtype) -> Array:
        log_sigma = self.p_mean + self.p_std * jax.random.normal(key, shape, dtype)
        return schedule.t_from_log_snr(-2.0 * log_sigma)

    def check(self, schedule: Schedule) -> None:
        if not self.p_std > 0:
            raise ValueError(f"`time_distribution.p_std` must be > 0, got {self.p_std}.")


def _check_time_range(t_min, t_max, schedule, name):
    if not (0.0 < t_min < t_max):
        raise ValueError(f"`{name}` needs 0 < t_min < t_max, got ({t_min}, {t_max}).")
    if not t_max < schedule.t_max:
        raise ValueError(f"`{name}`: t_max must be < {schedule.t_max} for {type(schedule).__name__}, got {t_max}.")


# ----------------------------------------------------------------------------------------------------
# Objective
# ----------------------------------------------------------------------------------------------------


@pytree_dataclass
class DSMObjective:
    """Denoising score-matching objective: model + weighting + time distribution (+ label dropout).

    Attributes:
        model: the :class:`~jaxotdm.networks.ScoreModel`.
        weighting: a :class:`Weighting` (default :class:`NoiseMSE`).
        time_distribution: :class:`UniformLogSNR` (default), :class:`UniformTime` or :class:`LogNormalSigma`.
        label_dropout: probability of replacing a label by the null label (classifier-free guidance).
    """

    model: ScoreModel
    weighting: Weighting = NoiseMSE()
    time_distribution: Any = UniformLogSNR()
    label_dropout: float = static_field(0.1)

    def __post_init__(self):
        if not isinstance(self.model, ScoreModel):
            raise ValueError(f"`model` must be a ScoreModel, got {type(self.model).__name__}.")
        if not isinstance(self.weighting, Weighting):
            raise ValueError(f"`weighting` must be a Weighting (e.g. NoiseMSE()), got {self.weighting!r}.")
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
        num_classes = getattr(model.network, "num_classes", None)
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


# ----------------------------------------------------------------------------------------------------
# Train state and step
# ----------------------------------------------------------------------------------------------------


class TrainState(flax.struct.PyTreeNode):
    """Immutable training state.

    Attributes:
        step: number of completed steps (int32 scalar).
        params: model parameters.
        ema_params: exponential moving average of ``params`` (use these for sampling).
        opt_state: the optax state.
        key: raw ``uint32`` base key data; step ``k`` uses ``fold_in(key, k)``.
    """

    step: Array
    params: Any
    ema_params: Any
    opt_state: Any
    key: Array

    @property
    def train_key(self):
        return jax.random.wrap_key_data(self.key)


def _key_data(key) -> Array:
    V.check_key(key)
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return jax.random.key_data(key)
    return jnp.asarray(key, jnp.uint32)


def init_train_state(
    model: ScoreModel, optimizer: optax.GradientTransformation, x_example: ArrayLike, *, key, labels_example=None
) -> TrainState:
    """A fresh :class:`TrainState`: parameters from ``fold_in(key, 0)``, step keys from ``fold_in(key, 1)``.

    ``x_example`` (shape ``(b, d)``, values ignored) fixes the input shape and dtype.
    """
    kd = _key_data(key)
    base = jax.random.wrap_key_data(kd)
    x_example = jnp.asarray(x_example)
    if labels_example is None and getattr(model.network, "num_classes", None) is not None:
        labels_example = jnp.zeros(x_example.shape[:-1], jnp.int32)

    params = model.init(jax.random.fold_in(base, 0), x_example, labels_example)
    return _init_state(optimizer, base, params, x_example.dtype)


@functools.partial(jax.jit, static_argnums=(0, 3))
def _init_state(optimizer, base, params, dtype):
    params = jax.tree.map(lambda p: p.astype(dtype), params)
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        ema_params=params,
        opt_state=optimizer.init(params),
        key=jax.random.key_data(jax.random.fold_in(base, 1)),
    )


def train_step(
    state: TrainState,
    x0: Float[Array, "b d"],
    labels: ArrayLike | None = None,
    *,
    objective: DSMObjective,
    optimizer: optax.GradientTransformation,
    ema_decay: float = 0.999,
) -> tuple[TrainState, dict[str, Array]]:
    """One optimiser step on the batch ``x0``; pure, jit it with the keyword arguments bound.

    The step's key is ``fold_in(state.train_key, state.step)``. EMA uses the warm-up decay
    ``min(ema_decay, (1 + step) / (10 + step))``. If the loss, the gradients or the update are not finite, the
    parameters, EMA and optimiser state are left unchanged (the step counter still advances) and
    ``metrics["finite"]`` is False: the caller decides to stop (as :func:`fit` does).

    Returns:
        ``(new_state, metrics)`` with ``loss``, ``eps_mse``, ``grad_norm`` and ``finite``.
    """
    key = jax.random.fold_in(state.train_key, state.step)
    (loss, aux), grads = jax.value_and_grad(objective.loss, has_aux=True)(state.params, x0, key, labels)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    stepf = state.step.astype(jnp.float32)
    decay = jnp.minimum(ema_decay, (1.0 + stepf) / (10.0 + stepf))
    ema = jax.tree.map(lambda e, p: (decay * e + (1.0 - decay) * p).astype(p.dtype), state.ema_params, params)
    grad_norm = optax.tree.norm(grads)
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm) & jnp.isfinite(optax.tree.norm(updates))

    def keep(new, old):
        return jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)

    new_state = state.replace(
        step=state.step + 1,
        params=keep(params, state.params),
        ema_params=keep(ema, state.ema_params),
        opt_state=keep(opt_state, state.opt_state),
    )
    return new_state, {"loss": loss, "eps_mse": aux["eps_mse"], "grad_norm": grad_norm, "finite": finite}


def epoch_batch_indices(data_key, step: ArrayLike, num_examples: int, batch_size: int) -> Array:
    """Indices of the batch used at ``step``: epochs of ``num_examples // batch_size`` batches, each epoch a
    fresh permutation ``permutation(fold_in(data_key, epoch), num_examples)``; jittable, a pure function of
    the step (the remainder of each epoch is dropped)."""
    per_epoch = num_examples // batch_size
    step = jnp.asarray(step, jnp.int32)
    epoch, i = step // per_epoch, step % per_epoch
    perm = jax.random.permutation(jax.random.fold_in(data_key, epoch), num_examples)
    return jax.lax.dynamic_slice_in_dim(perm, i * batch_size, batch_size)


# ----------------------------------------------------------------------------------------------------
# Quality against the exact score
# ----------------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------------
# Checkpoints
# ----------------------------------------------------------------------------------------------------

_MAGIC = b"JAXOTDM-CKPT-1\n"


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, or belongs to a different configuration."""


class NonFiniteLossError(RuntimeError):
    """Training hit a non-finite loss or update; ``state`` holds the last finite parameters (at ``step``, the
    failing step), ``checkpoint`` the last checkpoint written (or None)."""

    def __init__(self, message: str, *, state: TrainState, step: int, checkpoint: Path | None):
        super().__init__(message)
        self.state, self.step, self.checkpoint = state, step, checkpoint


def save_checkpoint(path: str | Path, state: TrainState, *, config: dict | None = None, history: dict | None = None) -> Path:
    """Writes ``state`` (+ JSON-able ``config`` and ``history``) to ``path`` atomically.

    Format: a magic line, the SHA-256 of the payload, then a msgpack payload (flax.serialization). The
    file is written to a temporary name in the same folder, fsynced and renamed, so a crash never leaves a
    half-written checkpoint under ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = flax.serialization.msgpack_serialize(
        {
            "config": json.dumps(config or {}, sort_keys=True),
            "history": json.dumps(history or {}, sort_keys=True),
            "state": flax.serialization.to_state_dict(jax.device_get(state)),
        }
    )
    blob = _MAGIC + hashlib.sha256(payload).digest() + payload
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load_checkpoint(
    path: str | Path, target: TrainState, *, config: dict | None = None
) -> tuple[TrainState, dict, dict]:
    """Reads a checkpoint written by :func:`save_checkpoint` into the structure of ``target``.

    Raises :class:`CheckpointError` (a ``ValueError``) if the file is missing, corrupt (bad magic,
    checksum or msgpack), if its arrays do not match ``target``'s structure, shapes or dtypes, or, when
    ``config`` is given, if the saved configuration differs (the differing keys are named).

    Returns:
        ``(state, saved_config, history)``.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist.")
    blob = path.read_bytes()
    head = len(_MAGIC)
    if not blob.startswith(_MAGIC) or len(blob) < head + 32:
        raise CheckpointError(f"checkpoint {str(path)!r} is corrupt or not a jaxotdm checkpoint (bad header).")
    digest, payload = blob[head : head + 32], blob[head + 32 :]
    if hashlib.sha256(payload).digest() != digest:
        raise CheckpointError(f"checkpoint {str(path)!r} is corrupt: checksum mismatch (truncated or modified file).")
    try:
        raw = flax.serialization.msgpack_restore(payload)
        saved_config = json.loads(raw["config"])
        history = json.loads(raw["history"])
        state_dict = raw["state"]
    except Exception as exc:
        raise CheckpointError(f"checkpoint {str(path)!r} is corrupt: {exc}") from exc
    if config is not None:
        want = json.loads(json.dumps(config, sort_keys=True))
        diff = sorted(k for k in set(want) | set(saved_config) if want.get(k) != saved_config.get(k))
        if diff:
            details = "; ".join(f"{k}: saved {saved_config.get(k)!r}, now {want.get(k)!r}" for k in diff)
            raise CheckpointError(f"checkpoint {str(path)!r} was written for a different configuration ({details}).")
    try:
        state = flax.serialization.from_state_dict(target, state_dict)
    except Exception as exc:
        raise CheckpointError(f"checkpoint {str(path)!r} does not match the model/optimiser: {exc}") from exc
    mism = []
    for (kp, a), b in zip(jax.tree_util.tree_leaves_with_path(target), jax.tree.leaves(state), strict=True):
        if np.shape(a) != np.shape(b) or np.asarray(a).dtype != np.asarray(b).dtype:
            mism.append(f"{jax.tree_util.keystr(kp)}: expected {np.shape(a)} {np.asarray(a).dtype}, "
                        f"found {np.shape(b)} {np.asarray(b).dtype}")
    if mism:
        raise CheckpointError(
            f"checkpoint {str(path)!r} does not match the model/optimiser: " + "; ".join(mism[:5])
            + (f" (and {len(mism) - 5} more)" if len(mism) > 5 else "")
        )
    state = jax.tree.map(jnp.asarray, state)
    return state, saved_config, history


# ----------------------------------------------------------------------------------------------------
# Driver
# ----------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=32)
def default_optimizer_for(learning_rate: float) -> optax.GradientTransformation:
    """``adam(learning_rate)`` after global-norm clipping at 1 (cached, so repeated :func:`fit` calls with
    the same settings reuse one compiled step)."""
    return optax.chain(optax.clip_by_global_norm(1.0), optax.adam(learning_rate))


@functools.partial(jax.jit, static_argnums=(4, 5, 6, 7), donate_argnums=0)
def _fit_step(state, xd, ld, data_key, objective, optimizer, batch_size, ema_decay):
    """One step of :func:`fit`; module-level so the compiled step is reused across calls with the same
    (hashable) objective, optimiser and sizes."""
    idx = epoch_batch_indices(data_key, state.step, xd.shape[0], batch_size)
    batch_labels = None if ld is None else ld[idx]
    return train_step(state, xd[idx], batch_labels, objective=objective, optimizer=optimizer, ema_decay=ema_decay)


class FitResult(NamedTuple):
    """Result of :func:`fit`.

    Attributes:
        state: the final :class:`TrainState`.
        losses: per-step training loss for steps ``0 .. state.step - 1`` (float64 NumPy array).
        evaluations: ``[{"step": k, **eval_fn(state)}, ...]``.
        checkpoint: path of the last checkpoint written (or None).
        resumed_from: the step a resumed run started from (0 for a fresh run).
    """

    state: TrainState
    losses: np.ndarray
    evaluations: list
    checkpoint: Path | None
    resumed_from: int


CHECKPOINT_NAME = "checkpoint.msgpack"


def _data_fingerprint(x: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest()[:16]


def fit(
    objective: DSMObjective,
    data: Float[ArrayLike, "n d"],
    *,
    steps: int,
    batch_size: int,
    optimizer: optax.GradientTransformation | None = None,
    learning_rate: float = 1e-3,
    seed: int = 0,
    labels: ArrayLike | None = None,
    ema_decay: float = 0.999,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    eval_every: int | None = None,
    eval_fn: Callable[[TrainState], dict] | None = None,
    callback: Callable[[int, dict], None] | None = None,
    config: dict | None = None,
) -> FitResult:
    """Trains ``objective.model`` on ``data`` for ``steps`` total steps (a driver around :func:`train_step`).

    Args:
        objective: the :class:`DSMObjective`.
        data: training points ``(n, d)``; ``labels`` optional integer labels ``(n,)``.
        steps: total number of steps (a resumed run continues up to this count).
        batch_size: examples per step (``<= n``); epochs drop the remainder.
        optimizer: an optax transformation (default ``adam(learning_rate)`` with global-norm clipping 1).
        seed: everything random (initialisation, step keys, data order) derives from it.
        ema_decay: EMA decay (with warm-up).
        checkpoint_dir: folder for ``checkpoint.msgpack``; written every ``checkpoint_every`` steps and at
            the end.
        resume: continue from the checkpoint in ``checkpoint_dir`` (error if absent or mismatched).
        eval_every, eval_fn: call ``eval_fn(state) -> dict`` every ``eval_every`` steps and at the end.
        callback: ``callback(step, metrics)`` after every step (progress bars live here).
        config: extra JSON-able settings recorded in the checkpoint and required to match on resume
            (e.g. the optimiser's hyper-parameters when a custom ``optimizer`` is passed).

    Raises:
        NonFiniteLossError: on a non-finite loss; the last periodic checkpoint is left untouched.

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
    x = np.asarray(V.as_float_array(data, "data"))
    V.check_ndim(x, 2, "data", "(n, d)")
    V.check_finite(x, "data")
    n = x.shape[0]
    V.check_positive_int(steps, "steps")
    V.check_positive_int(batch_size, "batch_size")
    if batch_size > n:
        raise ValueError(f"`batch_size` ({batch_size}) must be <= the number of training points ({n}).")
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"`labels` must be integers of shape ({n},), got {labels.dtype} {labels.shape}.")
        labels = labels.astype(np.int32)
    if not 0.0 <= ema_decay < 1.0:
        raise ValueError(f"`ema_decay` must be in [0, 1), got {ema_decay}.")
    for name, v in (("checkpoint_every", checkpoint_every), ("eval_every", eval_every)):
        if v is not None:
            V.check_positive_int(v, name)
    if resume and checkpoint_dir is None:
        raise ValueError("`resume=True` needs `checkpoint_dir`.")
    try:
        hash(objective)
    except TypeError as exc:
        raise ValueError(
            "`objective` must be hashable for fit (its compiled step is cached): give schedules, weightings and "
            f"time distributions Python floats, not arrays ({exc})."
        ) from None
    default_optimizer = optimizer is None
    if default_optimizer:
        if not learning_rate > 0:
            raise ValueError(f"`learning_rate` must be > 0, got {learning_rate}.")
        optimizer = default_optimizer_for(learning_rate)

    run_config = {
        "model": repr(objective.model),
        "weighting": repr(objective.weighting),
        "time_distribution": repr(objective.time_distribution),
        "label_dropout": objective.label_dropout,
        "data_shape": list(x.shape),
        "data_dtype": str(x.dtype),
        "data_sha256": _data_fingerprint(x),
        "labels_sha256": None if labels is None else _data_fingerprint(labels),
        "batch_size": batch_size,
        "seed": seed,
        "ema_decay": ema_decay,
        "learning_rate": learning_rate if default_optimizer else None,
        **(config or {}),
    }

    base = jax.random.key(seed)
    data_key = jax.random.fold_in(base, 2)
    xd = jnp.asarray(x)
    ld = None if labels is None else jnp.asarray(labels)
    state = init_train_state(objective.model, optimizer, xd[:1], key=base, labels_example=None if ld is None else ld[:1])

    def step_fn(state):
        return _fit_step(state, xd, ld, data_key, objective, optimizer, batch_size, ema_decay)

    ckpt = None if checkpoint_dir is None else Path(checkpoint_dir) / CHECKPOINT_NAME
    losses: list[float] = []
    evaluations: list[dict] = []
    last_ckpt: Path | None = None
    last_ckpt_step = -1
    if resume:
        state, _, history = load_checkpoint(ckpt, state, config=run_config)
        losses = list(history.get("losses", []))
        evaluations = list(history.get("evaluations", []))
        last_ckpt, last_ckpt_step = ckpt, int(state.step)
        if len(losses) != int(state.step):
            raise CheckpointError(f"checkpoint {str(ckpt)!r} is inconsistent: {len(losses)} losses for step {int(state.step)}.")
    start = int(state.step)
    if start > steps:
        raise ValueError(f"`steps` ({steps}) is below the checkpoint's step ({start}); nothing to resume.")

    def save(state):
        return save_checkpoint(ckpt, state, config=run_config, history={"losses": losses, "evaluations": evaluations})

    for k in range(start, steps):
        new_state, metrics = step_fn(state)
        loss = float(metrics["loss"])
        if not bool(metrics["finite"]):
            where = (
                f"the last good checkpoint (step {last_ckpt_step}) is kept at {str(last_ckpt)!r}"
                if last_ckpt is not None
                else "no checkpoint had been written"
            )
            raise NonFiniteLossError(
                f"training stopped: non-finite loss or update at step {k} (loss = {loss}); {where}. "
                "Lower the learning rate or check the data.",
                state=new_state.replace(step=jnp.asarray(k, jnp.int32)),  # unchanged parameters; `state` was donated
                step=k,
                checkpoint=last_ckpt,
            )
        state = new_state
        losses.append(loss)
        done = k + 1
        if callback is not None:
            callback(done, {"loss": loss, "eps_mse": float(metrics["eps_mse"]), "grad_norm": float(metrics["grad_norm"])})
        if eval_fn is not None and ((eval_every and done % eval_every == 0) or done == steps):
            evaluations.append({"step": done, **{k2: float(v) for k2, v in eval_fn(state).items()}})
        if ckpt is not None and ((checkpoint_every and done % checkpoint_every == 0) or done == steps):
            last_ckpt, last_ckpt_step = save(state), done
    if ckpt is not None and start == steps:  # nothing to do: the checkpoint is already final
        last_ckpt = ckpt
    return FitResult(state, np.asarray(losses, np.float64), evaluations, last_ckpt, start)
