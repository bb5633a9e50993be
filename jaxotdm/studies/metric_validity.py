"""Which sample-quality metric may decide a verdict at a given sample size: known-defect control rows, scored
against fresh held-out data with paired repetitions.

A metric is *valid at n* when, at that sample size, it ranks real held-out data better than every
known-defect sample set it is meant to see, each by a paired ``z >= 2`` over the repetitions. The control
rows are built from the data split itself, so no generator is involved and the right answer is known:

* ``held-out A`` (the ideal: fresh data of the law) and, where the split is large enough, a second
  held-out draw (a null row: it should tie with the ideal);
* ``training + noise 0.01`` (memorisation: a distribution metric is *not* meant to see it; the near-copy
  column of a Table 3 is);
* held-out A shrunk toward the training mean by 0.9 and 0.8 (contraction: the defect that plug-in
  transport distances prefer at small ``n``);
* held-out A pulled 40% toward the mean of its 5 nearest training images (local averaging, a mild
  memorisation-and-blur defect);
* blurred held-out A (images only), a Gaussian fitted to the training split, training images of half of
  the classes (labelled data only), held-out A plus Gaussian noise at two levels.

Every repetition draws a fresh halving of the held-out split, ``A`` (the rows' source) and ``B`` (the
reference every row is measured against), so differences to the ideal row are paired through ``B``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxotdm import _validation as V
from jaxotdm import metrics as M
from jaxotdm._pytree import pytree_dataclass, static_field
from jaxotdm.studies.paired import PairedInterval, paired_interval

__all__ = ["QualityMetric", "default_quality_metrics", "ControlSettings", "control_rows", "MetricValidity",
           "metric_validity", "IDEAL", "SECOND_DRAW", "MEMORISATION", "validity_markdown", "shrink_name",
           "noise_name"]

IDEAL = "held-out A (ideal)"
SECOND_DRAW = "held-out A' (second draw)"
MEMORISATION = "training + noise (memorisation)"
_NOT_DEFECTS = (IDEAL, SECOND_DRAW, MEMORISATION)
Z_VALID = 2.0


@pytree_dataclass
class QualityMetric:
    """A sample-quality metric ``function(samples, reference) -> float`` and its direction.

    Attributes:
        name: the column name.
        function: ``(samples (n, d), reference (m, d)) -> scalar``.
        higher_is_better: True for precision and recall, False for distances and divergences.
    """

    name: str = static_field()
    function: Callable = static_field()
    higher_is_better: bool = static_field(default=False)

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"`name` must be a non-empty string, got {self.name!r}.")
        if not callable(self.function):
            raise TypeError(f"`function` must be callable as function(samples, reference), got "
                            f"{type(self.function).__name__}.")
        if not isinstance(self.higher_is_better, bool):
            raise TypeError(f"`higher_is_better` must be a bool, got {self.higher_is_better!r}.")

    def __call__(self, samples, reference) -> float:
        return float(self.function(samples, reference))


def default_quality_metrics(classifier: M.Classifier | None = None, *, include_w2: bool = False
                            ) -> tuple[QualityMetric, ...]:
    """The package's distribution metrics, in the order a verdict prefers them: KID in the classifier's
    features (when a classifier is given), KID in raw coordinates, the Sinkhorn divergence, the classifier
    Frechet distance, k-NN precision and recall (k = 3), and optionally the ``W2`` estimate (slow: a small
    epsilon Sinkhorn solve per call)."""
    if classifier is not None and not isinstance(classifier, M.Classifier):
        raise TypeError(f"`classifier` must be a metrics.Classifier or None, got {type(classifier).__name__}.")
    out = []
    if classifier is not None:
        out.append(QualityMetric("KID (classifier features)", lambda s, r: M.kid(s, r, features=classifier).value))
    out.append(QualityMetric("KID (raw)", lambda s, r: M.kid(s, r).value))
    out.append(QualityMetric("Sinkhorn", lambda s, r: M.sinkhorn_estimate(s, r).divergence))
    if include_w2:
        out.append(QualityMetric("W2", M.wasserstein2))
    if classifier is not None:
        out.append(QualityMetric("classifier Frechet", lambda s, r: M.classifier_frechet_distance(classifier, s, r)))
    out.append(QualityMetric("precision", lambda s, r: M.precision_recall(s, r, k=3).precision, True))
    out.append(QualityMetric("recall", lambda s, r: M.precision_recall(s, r, k=3).recall, True))
    return tuple(out)


@pytree_dataclass
class ControlSettings:
    """The strengths of the known-defect control rows.

    Attributes:
        shrinks: factors of the contraction toward the training mean.
        local_k: number of nearest training images of the local-averaging row.
        local_pull: fraction of the way toward their mean.
        noise_levels: standard deviations of the noise rows (data units).
        memorisation_noise: standard deviation added to the training images of the memorisation row.
        blur_sigma: Gaussian blur in pixels (images only).
    """

    shrinks: tuple = static_field(default=(0.9, 0.8))
    local_k: int = static_field(default=5)
    local_pull: float = static_field(default=0.4)
    noise_levels: tuple = static_field(default=(0.1, 0.2))
    memorisation_noise: float = static_field(default=0.01)
    blur_sigma: float = static_field(default=0.8)

    def __post_init__(self):
        for s in self.shrinks:
            if not (isinstance(s, (int, float)) and 0 < s < 1):
                raise ValueError(f"`shrinks` must be numbers in (0, 1), got {self.shrinks!r}.")
        V.check_positive_int(self.local_k, "local_k")
        if not (isinstance(self.local_pull, (int, float)) and 0 < self.local_pull <= 1):
            raise ValueError(f"`local_pull` must be in (0, 1], got {self.local_pull!r}.")
        for s in self.noise_levels:
            V.positive_scalar(s, "noise_levels")
        V.positive_scalar(self.memorisation_noise, "memorisation_noise")
        V.positive_scalar(self.blur_sigma, "blur_sigma")


def shrink_name(s: float) -> str:
    return f"shrink x{s:g} toward the mean"


def noise_name(s: float) -> str:
    return f"held-out + noise {s:g}"


def _nearest_mean(a: np.ndarray, train: np.ndarray, k: int) -> np.ndarray:
    """Mean of the ``k`` nearest training points of each row of ``a`` (matmul distances, O(n x N))."""
    d2 = (a * a).sum(1)[:, None] - 2.0 * a @ train.T + (train * train).sum(1)[None, :]
    idx = np.argpartition(d2, k - 1, axis=1)[:, :k]
    return train[idx].mean(axis=1)


def control_rows(ideal, train, *, key, settings: ControlSettings | None = None, second=None,
                 train_labels=None, image_shape: Sequence[int] | None = None) -> dict[str, np.ndarray]:
    """The control rows built from held-out ``ideal`` (``(n, d)``) and the training split: the ideal itself,
    the second held-out draw (when given), memorisation and every known defect, each ``(n, d)`` (host arrays).

    Example:
        >>> import jax, numpy as np
        >>> from jaxotdm.studies import control_rows
        >>> rng = np.random.default_rng(0)
        >>> rows = control_rows(rng.normal(size=(20, 2)), rng.normal(size=(50, 2)), key=jax.random.key(0))
        >>> sorted(rows)[:3]
        ['Gaussian fit to training', 'held-out + noise 0.1', 'held-out + noise 0.2']
    """
    ideal = np.asarray(ideal, np.float64)
    train = np.asarray(train, np.float64)
    if ideal.ndim != 2 or train.ndim != 2 or ideal.shape[1] != train.shape[1]:
        raise ValueError(f"`ideal` and `train` must be (n, d) and (N, d), got {ideal.shape} and {train.shape}.")
    n, d = ideal.shape
    settings = ControlSettings() if settings is None else settings
    if train.shape[0] < max(n, settings.local_k):
        raise ValueError(f"`train` needs at least {max(n, settings.local_k)} points (as many as `ideal`), got "
                         f"{train.shape[0]}.")
    V.check_key(key)
    keys = jax.random.split(key, 6)
    mean = train.mean(0)
    rows = {IDEAL: ideal}
    if second is not None:
        rows[SECOND_DRAW] = np.asarray(second, np.float64)
    pick = np.asarray(jax.random.choice(keys[0], train.shape[0], (n,), replace=False))
    rows[MEMORISATION] = train[pick] + settings.memorisation_noise * np.asarray(
        jax.random.normal(keys[1], (n, d)), np.float64)
    for s in settings.shrinks:
        rows[shrink_name(s)] = mean + s * (ideal - mean)
    rows[f"pulled {settings.local_pull:.0%} toward {settings.local_k} nearest training"] = (
        ideal + settings.local_pull * (_nearest_mean(ideal, train, settings.local_k) - ideal))
    if image_shape is not None:
        from scipy.ndimage import gaussian_filter

        h, w = int(image_shape[0]), int(image_shape[1])
        c = d // (h * w)
        if h * w * c != d:
            raise ValueError(f"`image_shape` {tuple(image_shape)} does not match dimension {d}.")
        img = ideal.reshape(n, h, w, c)
        rows[f"blurred (sigma {settings.blur_sigma:g} px)"] = gaussian_filter(
            img, sigma=(0, settings.blur_sigma, settings.blur_sigma, 0), mode="nearest").reshape(n, d)
    lam, vec = np.linalg.eigh(np.cov(train, rowvar=False).reshape(d, d))  # PSD square root (singular is fine)
    root = vec * np.sqrt(np.clip(lam, 0.0, None))
    rows["Gaussian fit to training"] = mean + np.asarray(jax.random.normal(keys[2], (n, d)), np.float64) @ root.T
    if train_labels is not None:
        labels = np.asarray(train_labels)
        classes = np.unique(labels)
        if classes.size >= 2:
            kept = classes[: classes.size // 2]
            pool = np.nonzero(np.isin(labels, kept))[0]
            if pool.size >= n:
                sel = pool[np.asarray(jax.random.choice(keys[3], pool.size, (n,), replace=False))]
                rows[f"{kept.size} of {classes.size} classes"] = train[sel]
    for i, s in enumerate(settings.noise_levels):
        rows[noise_name(s)] = ideal + s * np.asarray(jax.random.normal(jax.random.fold_in(keys[4], i), (n, d)),
                                                     np.float64)
    return rows


@pytree_dataclass
class MetricValidity:
    """Paired ``z`` of every metric on every control row against the ideal row, at one sample size.

    Attributes:
        rows: the control rows' names (the first is the ideal).
        metrics: the metrics' names.
        higher_is_better: per metric.
        values: ``(K, rows, metrics)`` measured values (against held-out B of each repetition).
        num_samples: points per row.
    """

    rows: tuple = static_field()
    metrics: tuple = static_field()
    higher_is_better: tuple = static_field()
    values: np.ndarray
    num_samples: int = static_field()

    @property
    def repetitions(self) -> int:
        return int(self.values.shape[0])

    def interval(self, row: str, metric: str) -> PairedInterval:
        """The paired interval of ``row`` minus the ideal row, oriented so that positive means the control
        row scores *worse* than real data (what a valid metric must show for a defect)."""
        i, j = self.rows.index(row), self.metrics.index(metric)
        d = self.values[:, i, j] - self.values[:, 0, j]
        return paired_interval(-d if self.higher_is_better[j] else d)

    def z(self, row: str, metric: str) -> float:
        return self.interval(row, metric).z

    @property
    def defects(self) -> tuple:
        """The rows a distribution metric is meant to see (all but the ideal, second draw, memorisation)."""
        return tuple(r for r in self.rows if r not in _NOT_DEFECTS)

    def failures(self, metric: str) -> tuple:
        """The defect rows ``metric`` does not rank below the ideal by ``z >= 2``."""
        return tuple(r for r in self.defects if not self.z(r, metric) >= Z_VALID)

    def is_valid(self, metric: str) -> bool:
        return not self.failures(metric)

    @property
    def valid_metrics(self) -> tuple:
        return tuple(m for m in self.metrics if self.is_valid(m))

    @property
    def deciding_metric(self) -> str | None:
        """The first valid metric in the order given (None: no metric may decide at this size)."""
        return next(iter(self.valid_metrics), None)


def halves(heldout: np.ndarray, n: int, key) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """A fresh random halving of ``heldout``: ``A`` and ``B`` of ``n`` points each, and a second draw ``A'``
    of ``n`` more when the split holds ``3 n`` points (else None)."""
    perm = np.asarray(jax.random.permutation(key, heldout.shape[0]))
    second = heldout[perm[2 * n : 3 * n]] if heldout.shape[0] >= 3 * n else None
    return heldout[perm[:n]], heldout[perm[n : 2 * n]], second


def check_split(heldout, n: int) -> int:
    """``n`` points per row, checked against the held-out split (two halves of ``n`` are needed)."""
    size = int(np.shape(heldout)[0])
    if n is None:
        n = size // 2
    n = V.check_positive_int(n, "num_samples", minimum=4)
    if 2 * n > size:
        raise ValueError(f"`num_samples`={n} needs a held-out split of at least {2 * n} points (two halves), got "
                         f"{size}: use a larger held-out fraction (e.g. `--test-fraction`) or fewer samples.")
    return n


def metric_validity(
    heldout,
    train,
    *,
    key,
    num_samples: int | None = None,
    repetitions: int = 24,
    metrics: Sequence[QualityMetric] | None = None,
    settings: ControlSettings | None = None,
    train_labels=None,
    image_shape: Sequence[int] | None = None,
) -> MetricValidity:
    """Scores every metric on every control row against fresh held-out data, ``repetitions`` times.

    Args:
        heldout: ``(H, d)`` held-out split (never seen in training); needs ``2 * num_samples`` points.
        train: ``(N, d)`` training split (the memorisation, local-averaging, Gaussian and class rows).
        key: PRNG key (halvings and the random control rows).
        num_samples: points per row (default: half the held-out split).
        repetitions: ``K >= 2`` paired repetitions (24 by default).
        metrics: default :func:`default_quality_metrics` without a classifier.
        settings: the control rows' strengths (default :class:`ControlSettings`).
        train_labels: enables the half-the-classes row.
        image_shape: ``(H, W[, C])`` enables the blur row.

    Returns:
        :class:`MetricValidity`.

    Example:
        >>> import jax, numpy as np
        >>> from jaxotdm.studies import metric_validity
        >>> from jaxotdm.studies.metric_validity import shrink_name
        >>> rng = np.random.default_rng(0)
        >>> v = metric_validity(rng.normal(size=(200, 2)), rng.normal(size=(400, 2)), key=jax.random.key(0),
        ...                     repetitions=6)
        >>> v.z(shrink_name(0.8), "KID (raw)") > 2
        True
    """
    V.check_key(key)
    heldout = np.asarray(V.points(heldout, "heldout"), np.float64)
    train = np.asarray(V.points(train, "train"), np.float64)
    if heldout.shape[1] != train.shape[1]:
        raise ValueError(f"`heldout` and `train` must have the same dimension, got {heldout.shape[1]} and "
                         f"{train.shape[1]}.")
    n = check_split(heldout, num_samples)
    repetitions = V.check_positive_int(repetitions, "repetitions", minimum=2)
    metrics = default_quality_metrics() if metrics is None else tuple(metrics)
    if not metrics or not all(isinstance(m, QualityMetric) for m in metrics):
        raise ValueError("`metrics` must be a non-empty sequence of QualityMetric.")
    values, names = [], None
    for r in range(repetitions):
        kr = jax.random.fold_in(key, r)
        a, b, second = halves(heldout, n, jax.random.fold_in(kr, 0))
        rows = control_rows(a, train, key=jax.random.fold_in(kr, 1), settings=settings, second=second,
                            train_labels=train_labels, image_shape=image_shape)
        names = tuple(rows)
        values.append([[m(jnp.asarray(x), jnp.asarray(b)) for m in metrics] for x in rows.values()])
    return MetricValidity(names, tuple(m.name for m in metrics), tuple(m.higher_is_better for m in metrics),
                          np.asarray(values, np.float64), n)


def validity_markdown(v: MetricValidity) -> str:
    """The validity table: paired ``z`` of each control row against the ideal (positive: the row scores worse
    than real data), a verdict per metric, and the deciding metric."""
    if not isinstance(v, MetricValidity):
        raise TypeError(f"`v` must be a MetricValidity (see metric_validity), got {type(v).__name__}.")

    def cell(row, metric):
        z = v.z(row, metric)
        zs = "inf" if math.isinf(z) else f"{z:.1f}"
        if row in _NOT_DEFECTS:
            return zs
        return zs + ("" if z >= Z_VALID else (" **fooled**" if z < 0 else " blind"))

    head = f"| control row (n = {v.num_samples}, K = {v.repetitions}) | " + " | ".join(v.metrics) + " |"
    lines = [head, "|" + "---|" * (len(v.metrics) + 1)]
    for row in v.rows[1:]:
        lines.append(f"| {row} | " + " | ".join(cell(row, m) for m in v.metrics) + " |")
    lines.append("| **valid at this n** | " + " | ".join("yes" if v.is_valid(m) else "no" for m in v.metrics)
                 + " |")
    dec = v.deciding_metric
    lines += ["", "Paired z of each row against the ideal row over the repetitions (positive: the row scores worse "
              "than real held-out data). A metric may decide a verdict only if z >= 2 on every defect row "
              "(memorisation and the second held-out draw aside). "
              + (f"Deciding metric: **{dec}**." if dec else "**No metric is valid at this sample size: every "
                 "verdict is 'not resolvable'.**")]
    return "\n".join(lines)
