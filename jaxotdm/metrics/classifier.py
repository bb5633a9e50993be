"""A small classifier trained by the package, and the metrics that use it: mode-mixture ratio and the
Frechet distance in its features (the analogue of FID; *not* FID, which needs Inception features)."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxotdm import _validation as V
from jaxotdm._pytree import pytree_dataclass
from jaxotdm._types import Array, ArrayLike, Float, Int
from jaxotdm.metrics._common import _cloud, _pair
from jaxotdm.metrics.frechet import _frechet, _moments

__all__ = ["Classifier", "train_classifier", "mode_mixture_ratio", "classifier_frechet_distance"]


@pytree_dataclass
class Classifier:
    """A small MLP classifier (ReLU hidden layers, softmax output) on standardised inputs.

    Trained by :func:`train_classifier`. ``features`` are the last hidden layer's activations (the
    standardised inputs when there is no hidden layer, i.e. logistic regression). Methods act on a
    batch ``(n, d)``.

    Attributes:
        weights, biases: per layer.
        shift, scale: input standardisation ``(x - shift) / scale``.
    """

    weights: tuple
    biases: tuple
    shift: Array
    scale: Array

    @property
    def num_classes(self) -> int:
        return self.weights[-1].shape[1]

    def features(self, x: Float[ArrayLike, "n d"]) -> Float[Array, "n h"]:
        h = (jnp.asarray(x) - self.shift) / self.scale
        for w, b in zip(self.weights[:-1], self.biases[:-1], strict=True):
            h = jax.nn.relu(h @ w + b)
        return h

    def logits(self, x: Float[ArrayLike, "n d"]) -> Float[Array, "n c"]:
        return self.features(x) @ self.weights[-1] + self.biases[-1]

    def probabilities(self, x: Float[ArrayLike, "n d"]) -> Float[Array, "n c"]:
        return jax.nn.softmax(self.logits(x), axis=-1)

    def predict(self, x: Float[ArrayLike, "n d"]) -> Int[Array, " n"]:
        return jnp.argmax(self.logits(x), axis=-1)

    def accuracy(self, x: Float[ArrayLike, "n d"], labels: Int[ArrayLike, " n"]) -> Float[Array, ""]:
        return jnp.mean(self.predict(x) == jnp.asarray(labels))

    def mode_mixture_ratio(self, x: Float[ArrayLike, "n d"], *, threshold: float = 0.2) -> Float[Array, ""]:
        """:func:`mode_mixture_ratio` of this classifier's probabilities on ``x``."""
        return mode_mixture_ratio(self.probabilities(x), threshold=threshold)


def _init_mlp(key, sizes, dtype):
    weights, biases = [], []
    for i, (m, n) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        w = jax.random.normal(jax.random.fold_in(key, i), (m, n), dtype) * jnp.sqrt(2.0 / m).astype(dtype)
        weights.append(w)
        biases.append(jnp.zeros((n,), dtype))
    return tuple(weights), tuple(biases)


@jax.jit(static_argnames=("num_steps", "batch_size", "sizes", "learning_rate", "weight_decay"))
def _train(key, x, labels, shift, scale, *, sizes, num_steps, batch_size, learning_rate, weight_decay):
    k_init, k_batch = jax.random.split(key)
    weights, biases = _init_mlp(k_init, sizes, x.dtype)
    params = (weights, biases)
    opt = optax.adamw(learning_rate, weight_decay=weight_decay)
    state = opt.init(params)
    n = x.shape[0]

    def loss(params, xb, yb):
        clf = Classifier(params[0], params[1], shift, scale)
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(clf.logits(xb), yb))

    def step(carry, i):
        params, state = carry
        idx = jax.random.randint(jax.random.fold_in(k_batch, i), (batch_size,), 0, n)
        value, grads = jax.value_and_grad(loss)(params, x[idx], labels[idx])
        updates, state = opt.update(grads, state, params)
        return (optax.apply_updates(params, updates), state), value

    (params, _), losses = jax.lax.scan(step, (params, state), jnp.arange(num_steps))
    return Classifier(params[0], params[1], shift, scale), losses


def train_classifier(
    x: Float[ArrayLike, "n d"],
    labels: Int[ArrayLike, " n"],
    *,
    key,
    num_classes: int | None = None,
    hidden: Sequence[int] = (128,),
    num_steps: int = 2000,
    batch_size: int = 128,
    learning_rate: float = 1e-3,
    weight_decay: float = 1e-4,
    scale_floor: float = 0.1,
) -> Classifier:
    """Trains a small MLP classifier with AdamW on minibatches (deterministic given ``key``).

    Args:
        x: ``(n, d)`` training inputs (e.g. flattened images); standardised per feature internally.
        labels: ``(n,)`` integer labels in ``[0, num_classes)``.
        key: PRNG key (initialisation and minibatch draws).
        num_classes: default ``max(labels) + 1``.
        hidden: hidden layer widths; ``()`` gives multinomial logistic regression.
        num_steps: optimisation settings.
        batch_size: see ``num_steps``.
        learning_rate: see ``num_steps``.
        weight_decay: see ``num_steps``.
        scale_floor: inputs are standardised per feature, each feature's scale floored at ``scale_floor``
            times the root-mean-square of the feature scales. Without the floor a near-constant input
            (an image's border pixel, std 0.003 on digits) is amplified hundreds of times, and the
            classifier's features -- hence :func:`classifier_frechet_distance` -- are dominated by invisible
            noise in pixels that carry no class information. ``0`` gives plain per-feature standardisation.

    Returns:
        A :class:`Classifier`.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from jaxotdm.metrics import train_classifier
        >>> x = jnp.concatenate([jnp.zeros((20, 2)) - 2, jnp.zeros((20, 2)) + 2])
        >>> y = jnp.repeat(jnp.arange(2), 20)
        >>> clf = train_classifier(x, y, key=jax.random.key(0), num_steps=200)
        >>> float(clf.accuracy(x, y))
        1.0
    """
    x = _cloud(x, "x")
    V.check_key(key)
    lab = np.asarray(labels)
    if lab.shape != (x.shape[0],) or not np.issubdtype(lab.dtype, np.integer):
        raise ValueError(f"`labels` must be an integer array of shape ({x.shape[0]},), got {lab.dtype} {lab.shape}.")
    if lab.min() < 0:
        raise ValueError("`labels` must be >= 0.")
    if num_classes is None:
        num_classes = int(lab.max()) + 1
    num_classes = V.check_positive_int(num_classes, "num_classes", minimum=2)
    if lab.max() >= num_classes:
        raise ValueError(f"`labels` must be < num_classes={num_classes}, got a label {int(lab.max())}.")
    hidden = tuple(V.check_positive_int(h, "hidden") for h in hidden)
    num_steps = V.check_positive_int(num_steps, "num_steps")
    batch_size = V.check_positive_int(batch_size, "batch_size")
    V.positive_scalar(learning_rate, "learning_rate")
    V.nonnegative_scalar(weight_decay, "weight_decay")
    if not (isinstance(scale_floor, (int, float)) and 0.0 <= scale_floor <= 1.0):
        raise ValueError(f"`scale_floor` must be a number in [0, 1], got {scale_floor!r}.")
    shift = jnp.mean(x, axis=0)
    scale = jnp.std(x, axis=0)
    floor = scale_floor * jnp.sqrt(jnp.mean(jnp.square(scale)))
    scale = jnp.maximum(scale, floor)
    scale = jnp.where(scale > 0, scale, 1.0)
    sizes = (x.shape[1], *hidden, num_classes)
    clf, _ = _train(
        key, x, jnp.asarray(lab, jnp.int32), shift, scale, sizes=sizes, num_steps=num_steps, batch_size=batch_size,
        learning_rate=float(learning_rate), weight_decay=float(weight_decay),
    )
    return clf


def mode_mixture_ratio(probabilities: Float[ArrayLike, "n c"], *, threshold: float = 0.2) -> Float[Array, ""]:
    """Fraction of samples given probability ``>= threshold`` for at least two classes (the paper's
    mode-mixture ratio; ``threshold = 0.2``).

    Example:
        >>> import jax.numpy as jnp
        >>> from jaxotdm.metrics import mode_mixture_ratio
        >>> float(mode_mixture_ratio(jnp.array([[0.5, 0.5, 0.0], [0.9, 0.05, 0.05]])))
        0.5
    """
    p = V.as_float_array(probabilities, "probabilities")
    V.check_ndim(p, 2, "probabilities", "(n, num_classes)")
    if not (isinstance(threshold, (int, float)) and 0 < threshold <= 0.5):
        raise ValueError(f"`threshold` must be in (0, 0.5], got {threshold}.")
    if V.is_concrete(p):
        pn = np.asarray(p, np.float64)
        tol = 1e-3 if p.dtype == jnp.float32 else 1e-9
        if not np.all(np.isfinite(pn)) or np.any(pn < -tol) or np.any(pn > 1 + tol):
            raise ValueError("`probabilities` must be finite numbers in [0, 1].")
        if pn.size and float(np.max(np.abs(pn.sum(-1) - 1.0))) > tol * max(1, pn.shape[1]):
            raise ValueError(f"`probabilities` rows must sum to 1 (worst row sums to "
                             f"{float(pn.sum(-1)[np.argmax(np.abs(pn.sum(-1) - 1.0))]):.6g}).")
    return jnp.mean((jnp.sum(p >= threshold, axis=-1) >= 2).astype(p.dtype))


def classifier_frechet_distance(
    classifier: Classifier, samples: Float[ArrayLike, "m d"], reference: Float[ArrayLike, "n d"]
) -> Float[Array, ""]:
    """Frechet distance between Gaussians fitted to ``classifier.features`` of two sets.

    The analogue of FID with the package's own small classifier in place of Inception; the numbers are
    not comparable to FID. Covariances are unbiased sample covariances (``n - 1``).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from jaxotdm.metrics import train_classifier, classifier_frechet_distance
        >>> x = jax.random.normal(jax.random.key(0), (100, 2)); y = (x[:, 0] > 0).astype(int)
        >>> clf = train_classifier(x, y, key=jax.random.key(1), hidden=(8,), num_steps=50)
        >>> float(classifier_frechet_distance(clf, x, x)) < 1e-3
        True
    """
    if not isinstance(classifier, Classifier):
        raise ValueError(f"`classifier` must be a Classifier (see train_classifier), got {type(classifier).__name__}.")
    samples, reference = _pair(samples, reference, "samples", "reference")
    d_in = classifier.weights[0].shape[0]
    if samples.shape[1] != d_in:
        raise ValueError(f"`samples` must have dimension {d_in} to match the classifier, got {samples.shape[1]}.")
    for name, a in (("samples", samples), ("reference", reference)):
        if a.shape[0] < 2:
            raise ValueError(f"`{name}` needs at least 2 points for a covariance, got {a.shape[0]}.")
    m1, c1 = _moments(classifier.features(samples))
    m2, c2 = _moments(classifier.features(reference))
    return _frechet(m1, c1, m2, c2)
