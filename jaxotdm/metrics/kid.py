"""Kernel Inception Distance, with the package's own feature maps: the unbiased MMD^2 with the cubic
polynomial kernel (Binkowski et al., ICLR 2018), and its standard error.

Why this metric decides sample-quality verdicts: the unbiased estimator has expectation exactly
``MMD^2(P, Q)`` at every sample size, which is zero if and only if the two laws agree (the cubic kernel
matches means, covariances and third moments of the features). So on average no sample set beats fresh
data from the reference law. Plug-in transport distances (Sinkhorn divergence, ``W2`` between empirical
measures) are biased at finite ``n``, and their bias is minimised by samples *contracted toward the mean*:
at ``n = 180`` on digits a held-out set shrunk by 0.8 scores better than the held-out set itself
(``jaxotdm.studies.metric_validity`` measures this for every metric).

The estimator, for samples ``x_1..x_m`` and reference ``y_1..y_n`` in feature space (dimension ``h``),
with ``k(a, b) = (a.b / h + 1)^3``::

    KID = sum_{i != j} k(x_i, x_j) / (m (m-1)) + sum_{i != j} k(y_i, y_j) / (n (n-1))
          - 2 sum_{i, j} k(x_i, y_j) / (m n)

Its standard error is the first-order (Hoeffding) one of a two-sample U-statistic:
``se^2 = 4 Var_i(a_i) / m + 4 Var_j(b_j) / n`` with ``a_i = mean_{j != i} k(x_i, x_j) - mean_j k(x_i, y_j)``
and ``b_j = mean_{l != j} k(y_j, y_l) - mean_i k(x_i, y_j)``. Only kernel *row sums* are needed, so the
computation streams over row blocks: memory ``O(chunk_size x (m + n))``, never an ``(m, n)`` matrix for
large clouds and never a ``(m, n, h)`` array.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxotdm import _validation as V
from jaxotdm._pytree import pytree_dataclass, static_field
from jaxotdm._types import Array, ArrayLike, Float
from jaxotdm.metrics._common import DEFAULT_CHUNK, _pair
from jaxotdm.metrics.classifier import Classifier

__all__ = ["KIDResult", "kid"]


@pytree_dataclass
class KIDResult:
    """The unbiased KID estimate and its standard error.

    Attributes:
        value: the unbiased ``MMD^2`` estimate (can be slightly negative when the laws agree).
        standard_error: its first-order standard error (see the module docstring).
        num_samples: ``m``, the number of samples.
        num_reference: ``n``, the number of reference points.
        feature_dim: ``h``, the dimension of the feature space the kernel acts on.
    """

    value: Float[Array, ""]
    standard_error: Float[Array, ""]
    num_samples: int = static_field()
    num_reference: int = static_field()
    feature_dim: int = static_field()


def _row_sums(a: Array, b: Array, h: int, chunk_size: int) -> Array:
    """``sum_j k(a_i, b_j)`` for every row ``a_i`` (blocks of ``chunk_size`` rows, one matmul each)."""

    def one(row):
        return jnp.sum((b @ row / h + 1.0) ** 3)

    return jax.lax.map(one, a, batch_size=min(chunk_size, a.shape[0]))


def _self_kernel(a: Array, h: int) -> Array:
    return (jnp.sum(a * a, axis=-1) / h + 1.0) ** 3


@jax.jit(static_argnames=("chunk_size",))
def _kid(fx: Array, fy: Array, *, chunk_size: int) -> tuple[Array, Array]:
    m, n, h = fx.shape[0], fy.shape[0], fx.shape[1]
    kxx = _row_sums(fx, fx, h, chunk_size) - _self_kernel(fx, h)  # sum_{j != i} k(x_i, x_j)
    kyy = _row_sums(fy, fy, h, chunk_size) - _self_kernel(fy, h)
    kxy = _row_sums(fx, fy, h, chunk_size)  # sum_j k(x_i, y_j)
    kyx = _row_sums(fy, fx, h, chunk_size)  # sum_i k(x_i, y_j)
    value = jnp.sum(kxx) / (m * (m - 1)) + jnp.sum(kyy) / (n * (n - 1)) - 2.0 * jnp.sum(kxy) / (m * n)
    a = kxx / (m - 1) - kxy / n
    b = kyy / (n - 1) - kyx / m
    se = jnp.sqrt(4.0 * jnp.var(a, ddof=1) / m + 4.0 * jnp.var(b, ddof=1) / n)
    return value, se


def kid(
    samples: Float[ArrayLike, "m d"],
    reference: Float[ArrayLike, "n d"],
    *,
    features: Classifier | Callable[[Array], Array] | None = None,
    chunk_size: int = DEFAULT_CHUNK,
) -> KIDResult:
    """Kernel Inception Distance between two point clouds in a feature space, with its standard error.

    The unbiased ``MMD^2`` with the cubic polynomial kernel ``k(a, b) = (a.b / h + 1)^3`` (``h`` the feature
    dimension), the estimator of Binkowski et al. (2018) with the package's features in place of Inception's.

    Args:
        samples: ``(m, d)`` generated samples (``m >= 2``; batch axis first).
        reference: ``(n, d)`` reference points, e.g. held-out data (``n >= 2``).
        features: the feature map the kernel acts on: a :class:`~jaxotdm.metrics.Classifier` (its
            ``features``, the last hidden layer: the choice for digits and MNIST), any callable mapping an
            ``(n, d)`` batch to ``(n, h)``, or ``None`` for the raw coordinates (2-D sets).
        chunk_size: rows of each streamed kernel block.

    Returns:
        :class:`KIDResult` with ``value`` and ``standard_error``. Jit-able (both clouds' sizes static).

    Example:
        >>> import jax
        >>> from jaxotdm.metrics import kid
        >>> x = jax.random.normal(jax.random.key(0), (400, 2))
        >>> y = jax.random.normal(jax.random.key(1), (400, 2))
        >>> r = kid(x, y)
        >>> abs(float(r.value)) < 3 * float(r.standard_error)
        True
        >>> float(kid(0.5 * x, y).value) > 5 * float(kid(0.5 * x, y).standard_error)  # a contraction is seen
        True
    """
    samples, reference = _pair(samples, reference, "samples", "reference")
    for name, a in (("samples", samples), ("reference", reference)):
        if a.shape[0] < 2:
            raise ValueError(f"`{name}` needs at least 2 points for the unbiased estimate, got {a.shape[0]}.")
    chunk_size = V.check_positive_int(chunk_size, "chunk_size")
    if features is None:
        fx, fy = samples, reference
    else:
        if isinstance(features, Classifier):
            d_in = features.weights[0].shape[0]
            if samples.shape[1] != d_in:
                raise ValueError(f"`samples` must have dimension {d_in} to match the classifier `features`, "
                                 f"got {samples.shape[1]}.")
            fmap = features.features
        elif callable(features):
            fmap = features
        else:
            raise TypeError(f"`features` must be a Classifier, a callable or None, got {type(features).__name__}.")
        fx, fy = jnp.asarray(fmap(samples)), jnp.asarray(fmap(reference))
        if fx.ndim != 2 or fy.ndim != 2 or fx.shape[0] != samples.shape[0] or fy.shape[0] != reference.shape[0] \
                or fx.shape[1] != fy.shape[1]:
            raise ValueError(f"`features` must map an (n, d) batch to (n, h), got {tuple(fx.shape)} for "
                             f"{tuple(samples.shape)} and {tuple(fy.shape)} for {tuple(reference.shape)}.")
        if not jnp.issubdtype(fx.dtype, jnp.floating):
            raise TypeError(f"`features` must return floating arrays, got {fx.dtype}.")
    value, se = _kid(fx, fy.astype(fx.dtype), chunk_size=chunk_size)
    return KIDResult(value, se, int(fx.shape[0]), int(fy.shape[0]), int(fx.shape[1]))
