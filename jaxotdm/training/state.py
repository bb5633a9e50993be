"""Training state, the default optimiser, one optimiser step, and a device-side loop of steps.

:class:`TrainState` is an immutable PyTree holding the step, parameters, EMA parameters, optimiser state
and the base PRNG key. Randomness is derived from the step alone: the step's key is
``fold_in(train_key, step)`` and the data order of epoch ``e`` is ``permutation(fold_in(data_key, e))``,
so a resumed run is bit-for-bit the uninterrupted one.

:func:`train_step` is pure and jittable, for users' own optax loops. :func:`train_steps` runs up to a
fixed number of steps inside one ``lax.scan`` with the data on device and the per-step losses kept on
device, so a driver synchronises with the host only where it logs, evaluates or saves.

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

import contextlib
import functools
import math
from typing import Any

import flax.errors
import jax
import jax.numpy as jnp
import optax

from jaxotdm import _validation as V
from jaxotdm._pytree import pytree_dataclass
from jaxotdm._types import Array, ArrayLike, Bool, Float
from jaxotdm.networks import ScoreModel
from jaxotdm.training.objective import DSMObjective

__all__ = ["TrainState", "AdamConfig", "default_optimizer_for", "init_train_state", "train_step",
           "epoch_batch_indices", "StepLog", "train_steps"]


@pytree_dataclass
class TrainState:
    """Immutable training state (a PyTree).

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


# ------------------------------------------------------------------------------------------- optimiser
@pytree_dataclass
class AdamConfig:
    """The default optimiser as a value: Adam after global-norm clipping, with a linear warm-up and an
    optional inverse-square-root decay (Karras et al. 2024, EDM2): the step size is

        learning_rate * min(1, step / warmup_steps) / sqrt(max(1, step / decay_start)).

    The schedule depends on the step only (never on the run's total length), so a run extended with
    ``resume`` continues exactly as an uninterrupted longer run would. :meth:`build` returns the optax
    transformation (cached, so equal settings share one compiled training step).
    """

    learning_rate: float = 1e-3
    warmup_steps: int = 0
    decay_start: int | None = None
    clip_norm: float = 1.0
    b1: float = 0.9
    b2: float = 0.999

    def __post_init__(self):
        lr = self.learning_rate
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (math.isfinite(lr) and lr > 0):
            raise ValueError(f"`learning_rate` must be a finite number > 0, got {lr!r}.")
        V.check_positive_int(self.warmup_steps, "warmup_steps", minimum=0)
        if self.decay_start is not None:
            V.check_positive_int(self.decay_start, "decay_start")
        if not (math.isfinite(self.clip_norm) and self.clip_norm > 0):
            raise ValueError(f"`clip_norm` must be a finite number > 0, got {self.clip_norm!r}.")
        for name in ("b1", "b2"):
            v = getattr(self, name)
            if not 0.0 <= v < 1.0:
                raise ValueError(f"`{name}` must be in [0, 1), got {v!r}.")

    def schedule(self, count):
        """The step size at optimiser step ``count`` (jittable)."""
        c = jnp.asarray(count, jnp.float32)
        lr = jnp.asarray(self.learning_rate, jnp.float32)
        if self.warmup_steps:
            lr = lr * jnp.minimum(1.0, (c + 1.0) / self.warmup_steps)
        if self.decay_start is not None:
            lr = lr * jax.lax.rsqrt(jnp.maximum(1.0, c / self.decay_start))
        return lr

    def build(self) -> optax.GradientTransformation:
        return _build_adam(self)


@functools.lru_cache(maxsize=64)
def _build_adam(cfg: AdamConfig) -> optax.GradientTransformation:
    lr = cfg.learning_rate if not (cfg.warmup_steps or cfg.decay_start) else cfg.schedule
    return optax.chain(optax.clip_by_global_norm(cfg.clip_norm), optax.adam(lr, b1=cfg.b1, b2=cfg.b2))


def default_optimizer_for(learning_rate: float) -> optax.GradientTransformation:
    """``adam(learning_rate)`` after global-norm clipping at 1 (cached: ``AdamConfig(learning_rate).build()``)."""
    return AdamConfig(V.positive_scalar(learning_rate, "learning_rate")).build()


# ------------------------------------------------------------------------------------------------ init
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
    if not isinstance(model, ScoreModel):
        raise TypeError(f"`model` must be a ScoreModel, got {type(model).__name__}.")
    if not callable(getattr(optimizer, "init", None)):
        raise TypeError(f"`optimizer` must be an optax GradientTransformation, got {type(optimizer).__name__}.")
    V.check_key(key)
    kd = _key_data(key)
    base = jax.random.wrap_key_data(kd)
    x_example = V.as_float_array(x_example, "x_example")
    if x_example.ndim < 2 or 0 in x_example.shape:
        raise ValueError(f"`x_example` must be a batch of shape (b, d) with b, d >= 1, got {tuple(x_example.shape)}.")
    if labels_example is None and model.num_classes is not None:
        labels_example = jnp.zeros(x_example.shape[:-1], jnp.int32)
    with _names_the_argument("x_example", x_example):
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


@contextlib.contextmanager
def _names_the_argument(name: str, x, what: str = "the model's network"):
    """A shape or type error raised inside the network (flax, jax) becomes a ValueError naming ``name``; the
    package's own messages (which start with a backquoted name) pass unchanged."""
    try:
        yield
    except (TypeError, ValueError, flax.errors.FlaxError) as exc:
        if str(exc).startswith("`"):
            raise
        raise ValueError(f"`{name}` of shape {tuple(jnp.shape(x))} does not fit {what}: {type(exc).__name__}: "
                         f"{str(exc).splitlines()[0][:300]}") from exc


# ------------------------------------------------------------------------------------------------ step
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
    ``metrics["finite"]`` is False: the caller decides to stop (as :func:`~jaxotdm.training.fit` does).

    Returns:
        ``(new_state, metrics)`` with ``loss``, ``eps_mse``, ``grad_norm`` and ``finite``.
    """
    if not isinstance(state, TrainState):
        raise TypeError(f"`state` must be a TrainState (from init_train_state), got {type(state).__name__}.")
    if not isinstance(objective, DSMObjective):
        raise TypeError(f"`objective` must be a DSMObjective, got {type(objective).__name__}.")
    if not callable(getattr(optimizer, "update", None)):
        raise TypeError(f"`optimizer` must be an optax GradientTransformation, got {type(optimizer).__name__}.")
    V.ema_decay(ema_decay)
    x0 = V.as_float_array(x0, "x0")
    if x0.ndim < 2 or 0 in x0.shape:
        raise ValueError(f"`x0` must be a batch of shape (b, d) with b, d >= 1, got {tuple(x0.shape)}.")
    V.check_finite(x0, "x0")
    if labels is not None and jnp.shape(labels) != x0.shape[:-1]:
        raise ValueError(f"`labels` must have shape {x0.shape[:-1]} (one per row of `x0`), got {jnp.shape(labels)}.")
    key = jax.random.fold_in(state.train_key, state.step)
    with _names_the_argument("x0", x0, "the parameters in `state`"):
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
    num_examples = V.check_int(num_examples, "num_examples", minimum=1)
    batch_size = V.check_int(batch_size, "batch_size", minimum=1, maximum=num_examples)
    per_epoch = num_examples // batch_size
    step = jnp.asarray(step, jnp.int32)
    epoch, i = step // per_epoch, step % per_epoch
    perm = jax.random.permutation(jax.random.fold_in(data_key, epoch), num_examples)
    return jax.lax.dynamic_slice_in_dim(perm, i * batch_size, batch_size)


# ------------------------------------------------------------------------------------- device-side loop
@pytree_dataclass
class StepLog:
    """Per-step records of :func:`train_steps` (arrays of the loop's length, kept on device).

    ``done`` marks the steps that ran: a step runs while fewer than ``num_steps`` have run and every
    earlier step was finite. ``finite[i]`` is False at the first failing step (which did not change the
    state) and True elsewhere.
    """

    loss: Float[Array, " k"]
    eps_mse: Float[Array, " k"]
    grad_norm: Float[Array, " k"]
    finite: Bool[Array, " k"]
    done: Bool[Array, " k"]


def train_steps(
    state: TrainState,
    x: Float[Array, "n d"],
    labels,
    data_key,
    num_steps,
    *,
    length: int,
    objective: DSMObjective,
    optimizer: optax.GradientTransformation,
    batch_size: int,
    ema_decay: float = 0.999,
) -> tuple[TrainState, StepLog]:
    """Up to ``num_steps`` (traced, ``<= length``) steps of :func:`train_step` in one ``lax.scan`` of ``length``.

    Batches are drawn on device with :func:`epoch_batch_indices` from ``x`` (and ``labels``, or None). The
    loop stops advancing at the first non-finite step: the returned state is the one before it, with
    ``state.step`` the failing step's index. One compilation serves every ``num_steps <= length``.
    ``state`` is donated. The static arguments are checked before tracing.

    Returns:
        ``(state, log)`` with ``log`` a :class:`StepLog`.
    """
    n = jnp.shape(x)[0] if jnp.ndim(x) == 2 else None
    if n is None:
        raise ValueError(f"`x` must be a 2-D array (n, d), got shape {jnp.shape(x)}.")
    batch_size = V.check_int(batch_size, "batch_size", minimum=1, maximum=n)
    length = V.check_int(length, "length", minimum=1)
    V.ema_decay(ema_decay)
    if not isinstance(state, TrainState):
        raise TypeError(f"`state` must be a TrainState (from init_train_state), got {type(state).__name__}.")
    if not isinstance(objective, DSMObjective):
        raise TypeError(f"`objective` must be a DSMObjective, got {type(objective).__name__}.")
    if labels is not None and jnp.shape(labels)[:1] != (n,):
        raise ValueError(f"`labels` must have shape ({n},), got {jnp.shape(labels)}.")
    return _train_steps(state, x, labels, data_key, num_steps, length=length, objective=objective,
                        optimizer=optimizer, batch_size=batch_size, ema_decay=ema_decay)


@functools.partial(jax.jit, static_argnames=("length", "objective", "optimizer", "batch_size", "ema_decay"),
                   donate_argnums=0)
def _train_steps(
    state: TrainState,
    x: Float[Array, "n d"],
    labels,
    data_key,
    num_steps,
    *,
    length: int,
    objective: DSMObjective,
    optimizer: optax.GradientTransformation,
    batch_size: int,
    ema_decay: float = 0.999,
) -> tuple[TrainState, StepLog]:
    """The jitted body of :func:`train_steps` (arguments already checked there)."""

    def one(state):
        idx = epoch_batch_indices(data_key, state.step, x.shape[0], batch_size)
        lab = None if labels is None else labels[idx]
        new, m = train_step(state, x[idx], lab, objective=objective, optimizer=optimizer, ema_decay=ema_decay)
        new = jax.tree.map(lambda n, o: jnp.where(m["finite"], n, o), new, state)
        # One record dtype per field whatever the parameters' dtype (both cond branches must agree).
        return new, (m["loss"].astype(x.dtype), m["eps_mse"].astype(x.dtype), m["grad_norm"].astype(jnp.float32),
                     m["finite"])

    def skip(state):
        nan = jnp.full((), jnp.nan, x.dtype)
        return state, (nan, nan, jnp.full((), jnp.nan, jnp.float32), jnp.ones((), bool))

    def body(carry, i):
        state, ok = carry
        run = ok & (i < num_steps)
        state, (loss, eps_mse, gnorm, finite) = jax.lax.cond(run, one, skip, state)
        return (state, ok & finite), (loss, eps_mse, gnorm, finite, run & finite)

    (state, _), rec = jax.lax.scan(body, (state, jnp.ones((), bool)), jnp.arange(length))
    return state, StepLog(*rec)
