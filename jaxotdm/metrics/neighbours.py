"""Nearest-neighbour metrics: k-th neighbour distances, k-NN precision/recall, memorisation.

Nearest-neighbour searches are chunked over the queries and use the matmul form ``|x|^2 - 2 x.y + |y|^2``
on data centred at the reference mean, so memory is ``O(chunk_size x n)`` and no ``(queries, points,
dims)`` array is ever formed.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxotdm import _validation as V
from jaxotdm._pytree import pytree_dataclass
from jaxotdm._types import Array, ArrayLike, Float
from jaxotdm.metrics._common import DEFAULT_CHUNK, _pair

__all__ = ["PrecisionRecall", "MemorisationResult", "kth_neighbour_distance", "nearest_neighbour_distance",
           "precision_recall", "memorisation"]


def _sq_dists_to(points: Array, p2: Array):
    """Returns ``q -> |q - points|^2`` (n,) for one query, in matmul form (batched by ``lax.map``)."""

    def f(q):
        return jnp.maximum(jnp.dot(q, q) - 2.0 * (points @ q) + p2, 0.0)

    return f


def _map_queries(fn, queries: Array, chunk_size: int):
    """``fn`` over the rows of ``queries``, vmapped in chunks of ``chunk_size``."""
    return jax.lax.map(fn, queries, batch_size=min(chunk_size, queries.shape[0]))


@jax.jit(static_argnames=("k", "exclude_self", "chunk_size"))
def _kth_sq(queries, points, *, k: int, exclude_self: bool, chunk_size: int):
    c = jnp.mean(points, axis=0)
    q, p = queries - c, points - c
    p2 = jnp.sum(p * p, axis=-1)
    dist = _sq_dists_to(p, p2)
    kk = k + 1 if exclude_self else k
    return _map_queries(lambda x: -jax.lax.top_k(-dist(x), kk)[0][-1], q, chunk_size)


def kth_neighbour_distance(
    queries: Float[ArrayLike, "q d"],
    points: Float[ArrayLike, "n d"],
    k: int = 1,
    *,
    exclude_self: bool = False,
    chunk_size: int = DEFAULT_CHUNK,
) -> Float[Array, " q"]:
    """Euclidean distance from each query to its ``k``-th nearest point.

    Args:
        queries: ``(q, d)`` and ``(n, d)`` point clouds.
        points: see ``queries``.
        k: neighbour rank (1 = nearest).
        exclude_self: ``queries`` is ``points`` and each point's zero distance to itself is skipped (the
            ``(k + 1)``-th smallest distance is returned; duplicates still count).
        chunk_size: queries per chunk; memory ``O(chunk_size x n)``.

    Example:
        >>> import jax.numpy as jnp
        >>> from jaxotdm.metrics import kth_neighbour_distance
        >>> kth_neighbour_distance(jnp.array([[0.0]]), jnp.array([[1.0], [3.0]]), k=2).tolist()
        [3.0]
    """
    queries, points = _pair(queries, points, "queries", "points")
    k = V.check_positive_int(k, "k")
    V.check_positive_int(chunk_size, "chunk_size")
    if exclude_self and queries.shape[0] != points.shape[0]:
        raise ValueError("`exclude_self=True` needs `queries` to be `points`.")
    if k + int(exclude_self) > points.shape[0]:
        raise ValueError(f"`k` must be <= {points.shape[0] - int(exclude_self)} for {points.shape[0]} points, got {k}.")
    return jnp.sqrt(_kth_sq(queries, points, k=k, exclude_self=bool(exclude_self), chunk_size=chunk_size))


def nearest_neighbour_distance(
    queries: Float[ArrayLike, "q d"], points: Float[ArrayLike, "n d"], *, chunk_size: int = DEFAULT_CHUNK
) -> Float[Array, " q"]:
    """Euclidean distance from each query to the nearest of ``points`` (chunked matmul form)."""
    return kth_neighbour_distance(queries, points, 1, chunk_size=chunk_size)


@jax.jit(static_argnames=("chunk_size",))
def _covered(queries, centres, radii2, *, chunk_size: int):
    """For each query: is it inside at least one ball ``|q - centre_i|^2 <= radius_i^2``?"""
    c = jnp.mean(centres, axis=0)
    q, p = queries - c, centres - c
    p2 = jnp.sum(p * p, axis=-1)
    dist = _sq_dists_to(p, p2)
    return _map_queries(lambda x: jnp.any(dist(x) <= radii2), q, chunk_size)


# ----------------------------------------------------------------------------------- precision / recall
@pytree_dataclass
class PrecisionRecall:
    """k-NN precision (fraction of samples inside the reference manifold estimate) and recall
    (fraction of reference points inside the samples' manifold estimate)."""

    precision: Float[Array, ""]
    recall: Float[Array, ""]


def precision_recall(
    samples: Float[ArrayLike, "m d"],
    reference: Float[ArrayLike, "n d"],
    *,
    k: int = 3,
    chunk_size: int = DEFAULT_CHUNK,
) -> PrecisionRecall:
    """Improved precision and recall (Kynkaanniemi et al. 2019) with k-NN balls.

    The manifold of a set is the union of balls centred at its points with radius the distance to
    the point's ``k``-th nearest neighbour in the same set. Precision: fraction of ``samples`` inside
    the reference manifold; recall: fraction of ``reference`` inside the samples' manifold. Boundaries
    count as inside. Apply it to features (e.g. :meth:`Classifier.features`) for images.

    Example:
        >>> import jax
        >>> from jaxotdm.metrics import precision_recall
        >>> x = jax.random.normal(jax.random.key(0), (200, 2))
        >>> pr = precision_recall(x, x, k=3)
        >>> float(pr.precision), float(pr.recall)
        (1.0, 1.0)
    """
    samples, reference = _pair(samples, reference, "samples", "reference")
    k = V.check_positive_int(k, "k")
    V.check_positive_int(chunk_size, "chunk_size")
    for name, a in (("samples", samples), ("reference", reference)):
        if a.shape[0] <= k:
            raise ValueError(f"`{name}` must have more than k={k} points, got {a.shape[0]}.")
    r_ref = _kth_sq(reference, reference, k=k, exclude_self=True, chunk_size=chunk_size)
    r_gen = _kth_sq(samples, samples, k=k, exclude_self=True, chunk_size=chunk_size)
    precision = jnp.mean(_covered(samples, reference, r_ref, chunk_size=chunk_size).astype(samples.dtype))
    recall = jnp.mean(_covered(reference, samples, r_gen, chunk_size=chunk_size).astype(samples.dtype))
    return PrecisionRecall(precision, recall)


# --------------------------------------------------------------------------------------- memorisation
@pytree_dataclass
class MemorisationResult:
    """Nearest-neighbour memorisation diagnostics, one entry per sample where shaped ``(m,)``.

    Attributes:
        train_distance: distance to the nearest training point.
        heldout_distance: distance to the nearest held-out point.
        ratio: ``train_distance / heldout_distance`` (about 1 for a generator that has not memorised,
            when both sets are equally large; 0 for an exact copy of a training point).
        median_ratio: median of ``ratio``.
        near_copy_fraction: fraction of samples with ``ratio < ratio_threshold``.
    """

    train_distance: Float[Array, " m"]
    heldout_distance: Float[Array, " m"]
    ratio: Float[Array, " m"]
    median_ratio: Float[Array, ""]
    near_copy_fraction: Float[Array, ""]


def memorisation(
    samples: Float[ArrayLike, "m d"],
    train: Float[ArrayLike, "n d"],
    heldout: Float[ArrayLike, "p d"],
    *,
    ratio_threshold: float = 1.0 / 3.0,
    chunk_size: int = DEFAULT_CHUNK,
) -> MemorisationResult:
    """How close samples are to the training set, measured against held-out data from the same law.

    A sample is a near-copy when it is ``ratio_threshold`` (1/3) times closer to its nearest training
    point than to its nearest held-out point. Compare sets of equal size: with more training than
    held-out points the ratio is biased below 1 even without memorisation. When both distances are
    0 the ratio is set to 1.

    Example:
        >>> import jax
        >>> from jaxotdm.metrics import memorisation
        >>> train = jax.random.normal(jax.random.key(0), (100, 2))
        >>> held = jax.random.normal(jax.random.key(1), (100, 2))
        >>> float(memorisation(train[:10], train, held).near_copy_fraction)  # copies of training points
        1.0
    """
    samples, train = _pair(samples, train, "samples", "train")
    _, heldout = _pair(samples, heldout, "samples", "heldout")
    V.positive_scalar(ratio_threshold, "ratio_threshold")
    V.check_positive_int(chunk_size, "chunk_size")
    dt = jnp.sqrt(_kth_sq(samples, train, k=1, exclude_self=False, chunk_size=chunk_size))
    dh = jnp.sqrt(_kth_sq(samples, heldout, k=1, exclude_self=False, chunk_size=chunk_size))
    ratio = jnp.where(dh > 0, dt / jnp.where(dh > 0, dh, 1.0), jnp.where(dt > 0, jnp.inf, 1.0))
    near = jnp.mean((ratio < ratio_threshold).astype(samples.dtype))
    return MemorisationResult(dt, dh, ratio, jnp.median(ratio), near)
