"""Self-describing model folders: everything needed to rebuild a trained score without the training code.

A model folder holds

- ``model.json``: the format tag, the network (class and every setting, nested embeddings included), the
  schedule, the output parametrisation, ``sigma_data``, and a ``data`` record: the data's dimension and
  shape, the affine scaling between the model's space and the data's own units (``scale = [lo, hi]``
  maps ``[lo, hi]`` to ``[-1, 1]``; ``null`` when the model works in the data's units), the class count,
  and how to rebuild the training split (a dataset recipe, or the file ``train_data.npz`` beside it);
- ``params.msgpack``: the EMA parameters (checksummed);
- ``model.manifest.json``: the SHA-256 of every file of the folder and the id of the run that wrote them.
  The folder is written as one transaction (:class:`jaxotdm._io.Transaction`): a kill or a full disk
  leaves the previous folder or the new one, never a mix, and :func:`load_model` rejects a file that
  differs from the manifest (an edited ``model.json`` included), naming it.

:func:`save_model` writes one, :func:`load_model` reads it back and :func:`load_score` returns the
:class:`~jaxotdm.networks.LearnedScore` directly. ``jaxotdm train`` writes such a folder (plus its resumable
training checkpoint).

Example:
    >>> import jax, jax.numpy as jnp, tempfile, jaxotdm as jo
    >>> from jaxotdm.networks import MLP, ScoreModel, save_model, load_score
    >>> model = ScoreModel(MLP(features=16, depth=1), jo.VPLinear())
    >>> params = model.init(jax.random.key(0), jnp.zeros((1, 2)))
    >>> folder = save_model(tempfile.mkdtemp(), model, params, data={"dim": 2})
    >>> load_score(folder)(jnp.ones((3, 2)), 0.5).shape
    (3, 2)
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import flax.linen as nn
import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np

from jaxotdm import schedules as _schedules
from jaxotdm._io import CheckpointError, Transaction, msgpack_bytes, read_msgpack, verify_set
from jaxotdm._pytree import pytree_dataclass
from jaxotdm.networks import embeddings as _embeddings
from jaxotdm.networks import parametrisations as _parametrisations
from jaxotdm.networks.mlp import MLP
from jaxotdm.networks.model import LearnedScore, ScoreModel
from jaxotdm.networks.unet import UNet

__all__ = ["SavedModel", "DataSplit", "model_config", "model_from_config", "save_model", "load_model", "load_score",
           "load_split", "data_fingerprint", "MODEL_FILE", "PARAMS_FILE", "SPLIT_FILE"]

FORMAT = "jaxotdm-model-1"
MODEL_FILE = "model.json"
PARAMS_FILE = "params.msgpack"
SPLIT_FILE = "train_data.npz"
MODEL_SET = "model"  # the output set of a model folder: manifest ``model.manifest.json``, lock ``.model.lock``

_NETWORKS = {"MLP": MLP, "UNet": UNet}
_EMBEDDINGS = {c: getattr(_embeddings, c) for c in _embeddings.__all__}
_PARAMETRISATIONS = {c: getattr(_parametrisations, c) for c in _parametrisations.__all__
                     if isinstance(getattr(_parametrisations, c), type) and c != "Parametrisation"}
_SCHEDULES = {c.__name__: c for c in (_schedules.OU, _schedules.VPLinear, _schedules.SubVP, _schedules.Cosine,
                                      _schedules.VE, _schedules.EDM)}


@pytree_dataclass
class SavedModel:
    """A model folder read back: the :class:`ScoreModel`, its (EMA) parameters and the ``data`` record."""

    model: ScoreModel
    params: dict
    data: dict
    info: dict

    def score(self, labels=None, guidance: float = 0.0) -> LearnedScore:
        return self.model.bind(self.params, labels=labels, guidance=guidance)

    def to_data_units(self, x) -> np.ndarray:
        """Maps points from the model's space to the data's own units (``data.scale``; identity if none)."""
        scale = self.data.get("scale")
        x = np.asarray(x, np.float64)
        if scale is None:
            return x
        lo, hi = scale
        return (x + 1.0) * 0.5 * (hi - lo) + lo


@pytree_dataclass
class DataSplit:
    """A model's training and held-out data, in the model's space (labels None when unlabelled)."""

    train: np.ndarray
    train_labels: np.ndarray | None
    heldout: np.ndarray
    heldout_labels: np.ndarray | None


def data_fingerprint(x) -> str:
    """A short SHA-256 fingerprint of an array's bytes (recorded to check a rebuilt training split)."""
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(np.asarray(x, np.float32)).tobytes()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------- config
def _plain(v):
    if isinstance(v, (tuple, list)):
        return [_plain(u) for u in v]
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    if isinstance(v, jax.Array) or isinstance(v, np.ndarray):
        return np.asarray(v).tolist()
    return v


def _object_config(obj, table: dict) -> dict:
    name = type(obj).__name__
    if table.get(name) is not type(obj):
        raise ValueError(f"cannot save a {name}: supported are {sorted(table)}.")
    out = {"type": name}
    for f in dataclasses.fields(obj):
        if f.name in ("parent", "name"):
            continue
        v = getattr(obj, f.name)
        out[f.name] = _object_config(v, _EMBEDDINGS) if isinstance(v, nn.Module) else _plain(v)
    return out


def _object_from_config(cfg: dict, table: dict, what: str):
    if not isinstance(cfg, dict) or cfg.get("type") not in table:
        raise CheckpointError(f"model.json: unknown {what} {cfg!r}; expected one of {sorted(table)}.")
    cls = table[cfg["type"]]
    names = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for k, v in cfg.items():
        if k == "type":
            continue
        if k not in names:
            raise CheckpointError(f"model.json: {cfg['type']} has no setting {k!r}.")
        if isinstance(v, dict) and "type" in v:
            v = _object_from_config(v, _EMBEDDINGS, "embedding")
        elif isinstance(v, list):
            v = tuple(v)
        kwargs[k] = v
    try:
        return cls(**kwargs)
    except Exception as exc:
        raise CheckpointError(f"model.json: cannot build {cfg['type']} from {cfg}: {exc}") from exc


def model_config(model: ScoreModel) -> dict:
    """A JSON-able description of ``model`` (network, schedule, parametrisation, ``sigma_data``)."""
    if not isinstance(model, ScoreModel):
        raise ValueError(f"`model` must be a ScoreModel, got {type(model).__name__}.")
    return {
        "network": _object_config(model.network, _NETWORKS),
        "schedule": _object_config(model.schedule, _SCHEDULES),
        "parametrisation": _object_config(model.parametrisation, _PARAMETRISATIONS),
        "sigma_data": float(model.sigma_data),
    }


def model_from_config(cfg: dict) -> ScoreModel:
    """Inverse of :func:`model_config`."""
    if not isinstance(cfg, dict):
        raise TypeError(f"`cfg` must be a dict (a model.json description), got {type(cfg).__name__}.")
    try:
        return ScoreModel(
            _object_from_config(cfg["network"], _NETWORKS, "network"),
            _object_from_config(cfg["schedule"], _SCHEDULES, "schedule"),
            _object_from_config(cfg["parametrisation"], _PARAMETRISATIONS, "parametrisation"),
            float(cfg["sigma_data"]),
        )
    except KeyError as exc:
        raise CheckpointError(f"model.json lacks the entry {exc}.") from None


# ------------------------------------------------------------------------------------------- folders
def save_model(folder: str | Path, model: ScoreModel, params, *, data: dict | None = None,
               extra: dict | None = None) -> Path:
    """Writes ``model.json`` and ``params.msgpack`` into ``folder`` (created if needed); returns the folder.

    Args:
        folder: the model folder.
        model: the :class:`ScoreModel`.
        params: its parameters (pass the EMA parameters of a training run).
        data: the ``data`` record (JSON-able): at least ``dim``; see the module docstring.
        extra: more JSON-able information (training settings, cost), stored under ``"training"``.
    """
    if not isinstance(model, ScoreModel):
        raise TypeError(f"`model` must be a ScoreModel, got {type(model).__name__}.")
    if folder is None or not isinstance(folder, (str, Path)):
        raise TypeError(f"`folder` must be a path, got {folder!r}.")
    folder = Path(folder)
    data = dict(data or {})
    leaves = jax.tree.leaves(params)
    if not leaves:
        raise ValueError("`params` is empty.")
    if "dim" not in data:
        raise ValueError("`data` must give the data dimension `dim`.")
    with Transaction(folder, MODEL_SET) as txn:
        write_model_files(txn, model, params, data=data, extra=extra)
        txn.commit()
    return folder


def write_model_files(txn: Transaction, model: ScoreModel, params, *, data: dict, extra: dict | None) -> None:
    """Writes ``params.msgpack`` and ``model.json`` into the transaction ``txn`` (not yet committed)."""
    doc = {"format": FORMAT, **model_config(model), "num_classes": model.num_classes, "data": data,
           "training": extra or {}}
    text = json.dumps(doc, indent=2, sort_keys=True, default=_plain)
    state = {"params": flax.serialization.to_state_dict(jax.device_get(params))}
    txn.write_bytes(PARAMS_FILE, msgpack_bytes(state))
    txn.write_text(MODEL_FILE, text)


def load_model(folder: str | Path) -> SavedModel:
    """Reads a model folder written by :func:`save_model` (or ``jaxotdm train``).

    Raises:
        CheckpointError: (a ``ValueError``) when the folder, ``model.json`` or ``params.msgpack`` is
            missing, corrupt, of another format, or when the parameters do not fit the described network.
    """
    if folder is None or not isinstance(folder, (str, Path)):
        raise TypeError(f"`folder` must be a path, got {folder!r}.")
    folder = Path(folder)
    if folder.is_file():
        hint = (f"; pass the folder that holds it, {str(folder.parent)!r}"
                if (folder.parent / MODEL_FILE).is_file() else "")
        raise CheckpointError(f"{str(folder)!r} is a file, not a model folder{hint}.")
    if not folder.is_dir():
        raise CheckpointError(f"model folder {str(folder)!r} does not exist or is not a folder.")
    mpath = folder / MODEL_FILE
    if not mpath.is_file():
        raise CheckpointError(f"model folder {str(folder)!r} has no {MODEL_FILE} (not a jaxotdm model folder).")
    verify_set(folder, MODEL_SET, what="model folder")
    try:
        doc = json.loads(mpath.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{str(mpath)!r} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CheckpointError(f"{str(mpath)!r} is not a {FORMAT} description (format {doc.get('format')!r}).")
    model = model_from_config(doc)
    data = doc.get("data") or {}
    dim = data.get("dim")
    if not isinstance(dim, int) or dim < 1:
        raise CheckpointError(f"{str(mpath)!r}: data.dim must be a positive integer, got {dim!r}.")
    raw = read_msgpack(folder / PARAMS_FILE, "model parameters")
    labels = None if model.num_classes is None else jnp.zeros((1,), jnp.int32)
    target = jax.eval_shape(lambda: model.network.init(jax.random.key(0), jnp.zeros((1, dim)), jnp.zeros((1,)),
                                                       labels)["params"])
    try:
        params = flax.serialization.from_state_dict(target, raw["params"])
    except Exception as exc:
        raise CheckpointError(f"{str(folder / PARAMS_FILE)!r} does not match the network in model.json: {exc}") from exc
    bad = [jax.tree_util.keystr(k) for (k, a), b in zip(jax.tree_util.tree_leaves_with_path(target),
                                                        jax.tree.leaves(params), strict=True)
           if tuple(a.shape) != tuple(np.shape(b))]
    if bad:
        raise CheckpointError(f"{str(folder / PARAMS_FILE)!r} does not match the network in model.json "
                              f"(shapes differ at {', '.join(bad[:3])}).")
    params = jax.tree.map(jnp.asarray, params)
    return SavedModel(model, params, data, doc.get("training") or {})


def load_score(folder: str | Path, *, labels=None, guidance: float = 0.0) -> LearnedScore:
    """The trained score of a model folder as a :class:`~jaxotdm.networks.LearnedScore`.

    It works in the model's own space (pixels in ``[-1, 1]`` for the built-in image sets; see ``data.scale``
    in ``model.json``) and plugs into every sampler, flow map and OT tool.

    Args:
        folder: a model folder written by ``jaxotdm train`` or :func:`save_model`.
        labels: class labels for a class-conditional model (``None``: unconditional / null label).
        guidance: classifier-free guidance scale ``w``.
    """
    return load_model(folder).score(labels=labels, guidance=guidance)


def _rebuild(source: dict):
    from jaxotdm import data as D

    kind = source.get("kind")
    if kind == "digits":
        return D.load_digits(return_labels=True)
    if kind == "mnist":
        return D.load_mnist_subset(return_labels=True)
    if kind == "toy":
        return D.toy_2d(source["name"], int(source["num_points"]), seed=int(source.get("seed", 0))), None
    raise CheckpointError(f"model.json: unknown data source {source!r}.")


def load_split(folder: str | Path) -> DataSplit:
    """The training and held-out split a model was trained on, rebuilt offline from its folder.

    Built-in datasets (digits, the MNIST subset, the toy sets) are reloaded and split again with the recorded
    seed and fraction; data from a user's file were copied into the folder (``train_data.npz``) when the
    model was trained. The rebuilt training split is checked against the recorded fingerprint.

    Raises:
        CheckpointError: when the folder does not record its data, or the rebuilt split differs.
    """
    folder = Path(folder)
    data = load_model(folder).data
    source, split = data.get("source"), data.get("split")
    if not isinstance(source, dict) or not isinstance(split, dict):
        raise CheckpointError(f"model folder {str(folder)!r} does not record its training data (data.source/split).")
    if source.get("kind") == "file":
        path = folder / SPLIT_FILE
        if not path.is_file():
            raise CheckpointError(f"model folder {str(folder)!r} lacks {SPLIT_FILE} (the copy of its training data).")
        try:
            with open(path, "rb") as f, np.load(f, allow_pickle=False) as z:
                parts = {k: z[k] for k in z.files}
        except Exception as exc:
            raise CheckpointError(f"{str(path)!r} is corrupt or unreadable: {exc}") from None
        if "train" not in parts or "heldout" not in parts:
            raise CheckpointError(f"{str(path)!r} lacks the arrays 'train' and 'heldout'.")
        out = DataSplit(parts["train"], parts.get("train_labels"), parts["heldout"], parts.get("heldout_labels"))
    else:
        from jaxotdm import data as D

        x, labels = _rebuild(source)
        if labels is not None:
            xtr, xte, ytr, yte = D.train_test_split(x, labels, test_fraction=float(split["test_fraction"]),
                                                    seed=int(split["seed"]))
        else:
            xtr, xte = D.train_test_split(x, test_fraction=float(split["test_fraction"]), seed=int(split["seed"]))
            ytr = yte = None
        if split.get("max_train") is not None:
            xtr = xtr[: int(split["max_train"])]
            ytr = None if ytr is None else ytr[: int(split["max_train"])]
        out = DataSplit(np.asarray(xtr, np.float32), ytr, np.asarray(xte, np.float32), yte)
    want = data.get("train_sha256")
    if want is not None and data_fingerprint(out.train) != want:
        raise CheckpointError(f"the training split rebuilt for {str(folder)!r} differs from the one the model was "
                              "trained on (fingerprint mismatch): the dataset changed.")
    return out
