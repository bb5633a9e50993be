"""Sample-quality and memorisation metrics computed with tools the package ships.

* :func:`sinkhorn_estimate` and :func:`wasserstein2` (:mod:`~jaxotdm.metrics.sinkhorn`): the debiased
  Sinkhorn divergence ``S_eps(x, y) = OT_eps(x, y) - (OT_eps(x, x) + OT_eps(y, y)) / 2`` with
  squared-Euclidean cost (the computation of :func:`jaxotdm.ot.sinkhorn_divergence`) at an ``eps`` relative
  to the clouds' scale, with its diagnostics; and ``sqrt(S_eps)`` at a small relative ``eps`` as an estimate
  of ``W2`` between the empirical measures (``S_eps -> W2^2`` as ``eps -> 0``).
* :func:`precision_recall` (:mod:`~jaxotdm.metrics.neighbours`): k-NN precision and recall (Kynkaanniemi
  et al., NeurIPS 2019); :func:`memorisation`: distance of each sample to its nearest training point,
  relative to its nearest held-out point, and the fraction of near-copies.
* :func:`train_classifier` -> :class:`Classifier` (:mod:`~jaxotdm.metrics.classifier`; a small MLP trained
  with optax, deterministic given its key), :func:`mode_mixture_ratio` (the paper's fraction of samples
  given probability >= 0.2 for at least two classes) and :func:`classifier_frechet_distance` (a Frechet
  distance between Gaussians fitted to the classifier's penultimate features; *not* FID, which needs
  Inception features).
* :func:`kid` (:mod:`~jaxotdm.metrics.kid`): the unbiased Kernel Inception Distance (MMD^2, cubic
  polynomial kernel) in a given feature map (the package's classifier features for images, raw
  coordinates otherwise) with its standard error: unbiased at every sample size, so no sample set beats
  fresh data on average (Sinkhorn divergence and ``W2`` between empirical measures are biased toward
  contracted samples at small ``n``; see :mod:`jaxotdm.studies.metric_validity`).
* :func:`frechet_distance` (:mod:`~jaxotdm.metrics.frechet`):
  ``|m1 - m2|^2 + tr(S1 + S2 - 2 (S1^{1/2} S2 S1^{1/2})^{1/2})``.
* :func:`sample_quality` and :func:`quality_report` (:mod:`~jaxotdm.metrics.quality`): every metric above
  for a set of samples, next to the same metrics of the training split (the reference a generator is
  judged against), and the package's quality bar for learned scores.

Point clouds are ``(n, d)`` arrays, batch axis first.
"""

from jaxotdm.metrics._common import DEFAULT_CHUNK
from jaxotdm.metrics.classifier import (
    Classifier,
    classifier_frechet_distance,
    mode_mixture_ratio,
    train_classifier,
)
from jaxotdm.metrics.frechet import frechet_distance
from jaxotdm.metrics.kid import KIDResult, kid
from jaxotdm.metrics.neighbours import (
    MemorisationResult,
    PrecisionRecall,
    kth_neighbour_distance,
    memorisation,
    nearest_neighbour_distance,
    precision_recall,
)
from jaxotdm.metrics.quality import (
    QUALITY_BAR,
    QualityReport,
    QualitySettings,
    SampleQuality,
    quality_report,
    sample_quality,
)
from jaxotdm.metrics.sinkhorn import (
    SinkhornResult,
    sinkhorn_estimate,
    wasserstein2,
)

__all__ = [
    "SinkhornResult",
    "KIDResult",
    "PrecisionRecall",
    "MemorisationResult",
    "Classifier",
    "SampleQuality",
    "QualityReport",
    "QUALITY_BAR",
    "sinkhorn_estimate",
    "wasserstein2",
    "kid",
    "precision_recall",
    "memorisation",
    "nearest_neighbour_distance",
    "kth_neighbour_distance",
    "train_classifier",
    "mode_mixture_ratio",
    "frechet_distance",
    "classifier_frechet_distance",
    "sample_quality",
    "quality_report",
    "QualitySettings",
    "DEFAULT_CHUNK",
]
