"""Resumable training checkpoints: the whole :class:`~jaxotdm.training.TrainState` plus JSON-able config and
history, written atomically with a checksum (see :mod:`jaxotdm._io`).

Arrays are stored by their PyTree path (``.params['input']['kernel']``, ...), so a mismatch names the
leaves that differ. The trained model itself, for sampling, lives in a model folder
(:func:`jaxotdm.networks.save_model`); a checkpoint is for resuming.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxotdm import _validation as V
from jaxotdm._io import CheckpointError, read_msgpack, write_msgpack
from jaxotdm._pytree import pytree_dataclass
from jaxotdm.training.state import TrainState

__all__ = ["CheckpointError", "TrainingHistory", "save_checkpoint", "load_checkpoint", "CHECKPOINT_NAME",
           "config_differences"]

CHECKPOINT_NAME = "checkpoint.msgpack"


@pytree_dataclass
class TrainingHistory:
    """The record of a :func:`~jaxotdm.training.fit` run, as stored in its checkpoint. Indexable by name
    (``history["losses"]``), like :class:`~jaxotdm.ot.SemidiscreteHistory`.

    Attributes:
        losses: per-step training loss, steps ``0 .. k - 1`` (float64 NumPy array).
        evaluations: ``[{"step": k, **eval_fn(state)}, ...]``.
        learning_rates: ``[[first step, rate], ...]``: the rate used from each step on (a resumed run may lower
            it).
        skipped_checkpoints: ``[[step, mean loss since the last checkpoint], ...]``: periodic checkpoints not
            written because the parameters were not finite or the loss had diverged.
    """

    losses: np.ndarray
    evaluations: list
    learning_rates: list
    skipped_checkpoints: list

    def __getitem__(self, name: str):
        if name not in self.keys():
            raise KeyError(name)
        return getattr(self, name)

    @staticmethod
    def keys() -> tuple[str, ...]:
        return ("losses", "evaluations", "learning_rates", "skipped_checkpoints")

    def to_json(self) -> dict:
        """The JSON form stored in a checkpoint."""
        return {"losses": np.asarray(self.losses, np.float64).tolist(), "evaluations": list(self.evaluations),
                "learning_rates": list(self.learning_rates), "skipped_checkpoints": list(self.skipped_checkpoints)}

    @classmethod
    def from_json(cls, record: dict) -> TrainingHistory:
        """From the JSON form (missing entries are empty; an unknown entry raises ``ValueError``)."""
        if not isinstance(record, dict):
            raise V.ArgumentTypeError(f"`history` must be a TrainingHistory or its JSON dict, got {record!r}.")
        unknown = sorted(set(record) - set(cls.keys()))
        if unknown:
            raise ValueError(f"`history` has unknown entries {unknown}; a training history has {list(cls.keys())}.")
        return cls(np.asarray(record.get("losses", []), np.float64), list(record.get("evaluations", [])),
                   [list(r) for r in record.get("learning_rates", [])],
                   [list(r) for r in record.get("skipped_checkpoints", [])])


def _by_path(state) -> dict:
    return {jax.tree_util.keystr(k): np.asarray(v) for k, v in jax.tree_util.tree_leaves_with_path(jax.device_get(state))}


def save_checkpoint(
    path: str | Path, state: TrainState, *, config: dict | None = None, history: TrainingHistory | dict | None = None
) -> Path:
    """Writes ``state`` (+ a JSON-able ``config`` and the :class:`TrainingHistory`) to ``path`` atomically.

    Format: a magic line, the SHA-256 of the payload, then a msgpack payload. The file is written to a
    temporary name in the same folder, fsynced and renamed, so a crash never leaves a half-written
    checkpoint under ``path``.
    """
    if not isinstance(path, (str, Path)) or not str(path):
        raise TypeError(f"`path` must be a file path (str or pathlib.Path), got {path!r}.")
    if not isinstance(state, TrainState):
        raise TypeError(f"`state` must be a TrainState, got {type(state).__name__}.")
    if not isinstance(history, TrainingHistory):
        history = TrainingHistory.from_json({} if history is None else history)
    return write_msgpack(path, {
        "config": json.dumps(config or {}, sort_keys=True),
        "history": json.dumps(history.to_json(), sort_keys=True),
        "state": _by_path(state),
    })


def config_differences(saved: dict, want: dict) -> list[str]:
    """The keys whose values differ between two configurations (after a JSON round trip)."""
    want = json.loads(json.dumps(want, sort_keys=True))
    return sorted(k for k in set(want) | set(saved) if want.get(k) != saved.get(k))


def load_checkpoint(
    path: str | Path, target: TrainState, *, config: dict | None = None
) -> tuple[TrainState, dict, TrainingHistory]:
    """Reads a checkpoint written by :func:`save_checkpoint` into the structure of ``target``.

    Raises :class:`CheckpointError` (a ``ValueError``) if the file is missing, corrupt (bad magic,
    checksum or msgpack), if its arrays do not match ``target``'s structure, shapes or dtypes, or, when
    ``config`` is given, if the saved configuration differs (the differing keys are named).

    Returns:
        ``(state, saved_config, history)`` with ``history`` a :class:`TrainingHistory`.
    """
    if path is None or not isinstance(path, (str, Path)) and not hasattr(path, "__fspath__"):
        raise V.ArgumentTypeError(f"`path` must be a file path, got {path!r}.")
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"`path`: checkpoint '{path}' does not exist (or is not a file).")
    raw = read_msgpack(path)
    try:
        saved_config = json.loads(raw["config"])
        history = TrainingHistory.from_json(json.loads(raw["history"]))
        arrays = raw["state"]
    except Exception as exc:
        raise CheckpointError(f"checkpoint {str(path)!r} is corrupt: {exc}") from exc
    if config is not None:
        diff = config_differences(saved_config, config)
        if diff:
            want = json.loads(json.dumps(config, sort_keys=True))
            details = "; ".join(f"{k}: saved {saved_config.get(k)!r}, now {want.get(k)!r}" for k in diff)
            raise CheckpointError(f"checkpoint {str(path)!r} was written for a different configuration ({details}).")
    leaves, treedef = jax.tree_util.tree_flatten_with_path(target)
    out, problems = [], []
    names = {jax.tree_util.keystr(k) for k, _ in leaves}
    for k, a in leaves:
        name = jax.tree_util.keystr(k)
        b = arrays.get(name) if isinstance(arrays, dict) else None
        if b is None:
            problems.append(f"{name}: missing")
            continue
        b = np.asarray(b)
        if np.shape(a) != b.shape or np.asarray(a).dtype != b.dtype:
            problems.append(f"{name}: expected {np.shape(a)} {np.asarray(a).dtype}, found {b.shape} {b.dtype}")
        out.append(b)
    extra = sorted(set(arrays) - names) if isinstance(arrays, dict) else []
    problems += [f"{n}: unexpected" for n in extra]
    if problems:
        raise CheckpointError(
            f"checkpoint {str(path)!r} does not match the model/optimiser: " + "; ".join(problems[:5])
            + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else "")
        )
    state = jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(target), [jnp.asarray(b) for b in out])
    del treedef
    return state, saved_config, history
