"""Class-conditional scores for conditional sampling: exact (of a labelled dataset) or learned (a
class-conditional network with classifier-free guidance), behind one ``for_class(label, guidance)`` method.

:class:`ExactClassScores` gives the exact score of one class's points, and with ``guidance = w != 0`` the
classifier-free-guidance combination ``(1 + w) s_c - w s`` of exact scores (:class:`GuidedScore`);
:class:`LearnedClassScores` binds a class-conditional :class:`~jaxotdm.networks.ScoreModel` to a label and a
guidance scale (the network's null label is the unconditional branch).
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np

from jaxotdm import _validation as V
from jaxotdm._pytree import pytree_dataclass, static_field
from jaxotdm._types import Array, ArrayLike, Float, Int
from jaxotdm.measures import EmpiricalMeasure
from jaxotdm.networks.model import classifier_free_guidance
from jaxotdm.schedules import Schedule
from jaxotdm.scores import exact_score

__all__ = ["GuidedScore", "ExactClassScores", "LearnedClassScores"]


@pytree_dataclass
class GuidedScore:
    """Classifier-free-guidance combination ``(1 + w) conditional - w unconditional`` of two scores."""

    conditional: Any
    unconditional: Any
    guidance: float = static_field(0.0)

    def __post_init__(self):  # construction only (PyTree unflattening does not call __init__)
        for name in ("conditional", "unconditional"):
            if not callable(getattr(self, name)):
                raise TypeError(f"`{name}` must be a score callable score(x, t), got {getattr(self, name)!r}.")
        V.real_scalar(self.guidance, "guidance")

    @property
    def dim(self):
        return getattr(self.conditional, "dim", None)

    def __call__(self, x, t):
        return classifier_free_guidance(self.conditional(x, t), self.unconditional(x, t), self.guidance)


@pytree_dataclass
class ExactClassScores:
    """Exact class-conditional scores of a labelled dataset under ``schedule``.

    ``for_class(c)`` is the exact score of the class-``c`` points, written as the full dataset with the
    other classes' weights set to zero, so that every class's score has the same shapes (one compilation
    of the sampler serves all classes). ``for_class(c, guidance=w)`` with ``w != 0`` returns
    ``(1 + w) s_c - w s`` with ``s`` the exact unconditional score of the whole dataset.

    Build with :meth:`from_data`.
    """

    points: Float[Array, "n d"]
    labels: Int[Array, " n"]
    schedule: Schedule
    classes: tuple = static_field(())

    @classmethod
    def from_data(cls, points: Float[ArrayLike, "n d"], labels: Int[ArrayLike, " n"], schedule: Schedule):
        x, lab = _check_labelled(points, labels, "points")
        if not isinstance(schedule, Schedule):
            raise ValueError(f"`schedule` must be a jaxotdm Schedule, got {type(schedule).__name__}.")
        return cls(x, jnp.asarray(lab), schedule, tuple(int(c) for c in np.unique(lab)))

    def unconditional(self):
        return exact_score(EmpiricalMeasure(self.points), self.schedule)

    def for_class(self, label, guidance: float = 0.0):
        _class_position(self.classes, label)
        mask = (np.asarray(self.labels) == int(label)).astype(np.float64)
        w = jnp.asarray(mask / mask.sum(), self.points.dtype)
        cond = exact_score(EmpiricalMeasure(self.points, w), self.schedule)
        guidance = _check_guidance(guidance)
        return cond if guidance == 0.0 else GuidedScore(cond, self.unconditional(), guidance)


@pytree_dataclass
class LearnedClassScores:
    """Class-conditional learned scores: ``model.bind(params, labels=c, guidance=w)`` (CFG with the
    network's null label as the unconditional branch). ``classes``: the labels the network knows.

    Construction checks that ``model`` is class-conditional and that every label in ``classes`` lies in
    ``[0, num_classes)`` of its network; ``for_class`` raises a ValueError for a label not in ``classes``.

    Example:
        >>> import jax, jax.numpy as jnp, jaxotdm as jo
        >>> from jaxotdm.networks import MLP, ScoreModel
        >>> from jaxotdm.samplers import LearnedClassScores
        >>> model = ScoreModel(MLP(features=8, depth=1, num_classes=2), jo.OU())
        >>> params = model.init(jax.random.key(0), jnp.zeros((1, 2)), labels=jnp.zeros((1,), jnp.int32))
        >>> cs = LearnedClassScores(model, params, classes=(0, 1))
        >>> cs.for_class(1, guidance=0.5)(jnp.ones((3, 2)), 0.5).shape
        (3, 2)
    """

    model: Any
    params: Any
    classes: tuple = static_field(())

    def __post_init__(self):  # eager checks at construction (PyTree unflattening does not call __init__)
        if not callable(getattr(self.model, "bind", None)):
            raise ValueError(f"`model` must be a ScoreModel (with a bind method), got {type(self.model).__name__}.")
        if not isinstance(self.classes, tuple) or not all(
            isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in self.classes
        ):
            raise ValueError(f"`classes` must be a tuple of int labels, got {self.classes!r}.")
        network = getattr(self.model, "network", None)
        n = getattr(network, "num_classes", None)  # MLP and UNet declare it; other networks are not checked
        if hasattr(network, "num_classes") and n is None:
            raise ValueError("`model`'s network has no class conditioning (num_classes=None).")
        if isinstance(n, int) and any(not 0 <= int(c) < n for c in self.classes):
            raise ValueError(f"`classes` must be labels in [0, {n}) known to the network, got {list(self.classes)}.")

    def for_class(self, label, guidance: float = 0.0):
        _class_position(self.classes, label)
        return self.model.bind(self.params, labels=int(label), guidance=_check_guidance(guidance))


def _check_labelled(points, labels, name: str = "data_points"):
    x = V.points(points, name)  # (n, d), n, d >= 1, finite
    if labels is None or isinstance(labels, (str, bytes)):
        raise V.ArgumentTypeError(f"`labels` must be an integer array of shape ({x.shape[0]},), got {labels!r}.")
    lab = np.asarray(labels)
    if lab.shape != (x.shape[0],) or not np.issubdtype(lab.dtype, np.integer):
        raise ValueError(
            f"`labels` must be an integer array of shape ({x.shape[0]},) matching `{name}`, got "
            f"{lab.dtype} {lab.shape}."
        )
    if np.any(lab < 0):
        raise ValueError(f"`labels` must be non-negative class labels, got a minimum of {int(lab.min())}.")
    return x, lab


def _class_position(classes: tuple, label) -> int:
    if isinstance(label, bool) or not isinstance(label, (int, np.integer)) or int(label) not in classes:
        raise ValueError(f"`label` must be one of the classes in the data {list(classes)}, got {label!r}.")
    return classes.index(int(label))


def _check_guidance(guidance) -> float:
    g = V.real_scalar(guidance, "guidance", finite=False)
    if not np.isfinite(g):
        raise ValueError(f"`guidance` must be a finite number, got {guidance!r}.")
    return g
