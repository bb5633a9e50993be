"""The quality of a generator's samples, judged against the training split's own, and the quality bar of a
learned score (one implementation for the tests, the benchmark, the notebook and the CLI).

:func:`sample_quality` measures one set of samples against held-out data: Sinkhorn divergence and ``W2``,
k-NN precision and recall, the Frechet distance in a small classifier's features, mode mixture, class
accuracy of requested labels, and memorisation. Memorisation is measured on the scale of held-out data:
``d_ref`` is the median distance from a held-out image to its nearest training image (how far a fresh
draw of the data law lies from the training set), the *memorisation ratio* is the samples' median
nearest-training distance over ``d_ref`` (1 for held-out data, 0 for copies) and a *near copy* is a
sample closer than ``d_ref / 3`` to a training image. (Dividing by the nearest *held-out* distance
instead is biased when the training split is larger than the held-out one.)

:func:`quality_report` draws samples from a score with DPM-Solver++(2M) at 50 NFE, measures them and a
same-size subset of the training split with :func:`sample_quality`, and checks :data:`QUALITY_BAR`, a bar
that a memorising model cannot pass: the held-out denoising loss against the Bayes denoiser of all the data,
KID against fresh held-out data (paired over halvings of the held-out split), recall against the training
split's own, and the near-copy fraction (plus, for a class-conditional model, the class accuracy of guided
samples). The old criterion "relative error against the exact score of the training split" rewarded
memorisation: that exact score snaps noisy held-out images onto training images.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxotdm import _validation as V
from jaxotdm._pytree import pytree_dataclass
from jaxotdm.metrics._common import _cloud, _pair
from jaxotdm.metrics.classifier import (
    Classifier,
    classifier_frechet_distance,
    mode_mixture_ratio,
    train_classifier,
)
from jaxotdm.metrics.neighbours import _kth_sq, precision_recall
from jaxotdm.metrics.sinkhorn import sinkhorn_estimate, wasserstein2

__all__ = ["SampleQuality", "QualityReport", "QualitySettings", "QUALITY_BAR", "sample_quality", "quality_report"]

QUALITY_BAR = {
    "denoising_loss": ("<=", 1.1),
    "kid": ("<=", 0.0),
    "recall": (">=", 0.8),
    "near_copy_fraction": ("<=", 0.02),
    "class_accuracy": (">=", 0.9),
}
"""The bar a learned score must meet:

* ``denoising_loss``: the worst ratio, over log-SNR in ``[0, 3]``, of the score's held-out denoising loss
  ``E|D(x_t, t) - x_0|^2`` to that of the exact posterior mean of train + held-out (the Bayes denoiser of all
  the data, which has seen the image): at most 1.1;
* ``kid``: the lower end of the paired 95% interval of ``KID(samples, B) - KID(A, B)`` over halvings ``A, B``
  of the held-out split: at most 0 (the samples are not significantly worse than fresh data);
* ``recall``: k-NN recall over the training split's own (same size, same held-out reference): at least 0.8;
* ``near_copy_fraction``: samples closer than a third of the held-out split's median nearest-training
  distance to a training image: at most 2%;
* ``class_accuracy``: class accuracy of guided samples of a class-conditional model: at least 0.9."""


@pytree_dataclass
class SampleQuality:
    """Metrics of one set of samples against held-out data (host floats; ``None`` where not measured).

    Attributes:
        sinkhorn: debiased Sinkhorn divergence to the held-out data (relative epsilon 0.05).
        w2: ``W2`` estimate to the held-out data.
        precision, recall: k-NN precision and recall (k = 3) against the held-out data.
        classifier_frechet: Frechet distance of classifier features to the held-out data's.
        mode_mixture: fraction of samples given probability >= 0.2 by two or more classes.
        class_accuracy: fraction of samples classified as their requested label.
        memorisation_ratio: median nearest-training distance over ``d_ref`` (see the module docstring).
        near_copy_fraction: fraction of samples closer than ``d_ref / 3`` to a training point.
        out_of_range_fraction: fraction of coordinates outside ``value_range`` (before any clipping).
        num_samples: number of samples.
    """

    sinkhorn: float
    w2: float
    precision: float
    recall: float
    classifier_frechet: float | None
    mode_mixture: float | None
    class_accuracy: float | None
    memorisation_ratio: float
    near_copy_fraction: float
    out_of_range_fraction: float | None
    num_samples: int


@pytree_dataclass
class QualityReport:
    """The quality bar of a learned score.

    Attributes:
        samples: :class:`SampleQuality` of the generated samples.
        reference: :class:`SampleQuality` of a same-size subset of the training split (the yardstick).
        ratios: samples / reference for ``sinkhorn``, ``classifier_frechet``, ``precision``, ``recall``.
        denoising_losses: ``{log_snr: (score's held-out denoising loss, the Bayes denoiser's)}``.
        kid: ``(mean, low, high)`` of the paired KID difference samples - held-out data (95% interval).
        class_accuracy: class accuracy of guided class-conditional samples (None if unconditional).
        values: the value of every measured criterion of :data:`QUALITY_BAR`.
        passed: ``{criterion: bool}`` for every criterion of :data:`QUALITY_BAR` that was measured.
        nfe: score evaluations per sample.
    """

    samples: SampleQuality
    reference: SampleQuality
    ratios: dict
    denoising_losses: dict
    kid: tuple
    class_accuracy: float | None
    values: dict
    passed: dict
    nfe: int

    @property
    def all_passed(self) -> bool:
        return all(self.passed.values())

    def summary(self) -> str:
        """One line per criterion: value, bar, pass/fail."""
        rows = []
        for name, (op, bound) in QUALITY_BAR.items():
            if name in self.passed:
                rows.append(f"{name}: {self.values[name]:.4g} (bar {op} {bound:g}) "
                            f"{'ok' if self.passed[name] else 'FAILED'}")
        return "\n".join(rows)


def _check_range(value_range):
    if value_range is None:
        return None
    lo, hi = (float(v) for v in value_range)
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"`value_range` must be (lo, hi) with finite lo < hi, got {value_range!r}.")
    return lo, hi


def sample_quality(
    samples,
    train,
    heldout,
    *,
    classifier: Classifier | None = None,
    requested_labels=None,
    value_range: tuple[float, float] | None = None,
    k: int = 3,
    memorisation_reference=None,
) -> SampleQuality:
    """Every metric of :class:`SampleQuality` for ``samples`` (``(m, d)``) against ``heldout``, with
    memorisation measured against ``train`` on the held-out scale (module docstring).

    Args:
        samples: point clouds ``(m, d)``, ``(n, d)``, ``(p, d)``.
        train: see ``samples``.
        heldout: see ``samples``.
        classifier: a :class:`Classifier` (for the Frechet distance, mode mixture and class accuracy).
        requested_labels: ``(m,)`` labels the samples were asked to have (class accuracy; needs ``classifier``).
        value_range: ``(lo, hi)`` valid coordinate range; samples are clipped to it before measuring and the
            fraction of coordinates outside it is reported (generated images are stored as pixels).
        k: neighbour rank of precision/recall.
        memorisation_reference: held-out points whose nearest-training distances set ``d_ref`` (default
            ``heldout``).

    Example:
        >>> import jax
        >>> from jaxotdm.metrics import sample_quality
        >>> tr = jax.random.normal(jax.random.key(0), (200, 2)); te = jax.random.normal(jax.random.key(1), (100, 2))
        >>> round(sample_quality(tr[:100], tr, te).memorisation_ratio, 3)  # copies of training points
        0.0
    """
    samples, heldout = _pair(samples, heldout, "samples", "heldout")
    _, train = _pair(samples, train, "samples", "train")
    mref = heldout if memorisation_reference is None else _pair(samples, memorisation_reference, "samples",
                                                                  "memorisation_reference")[1]
    k = V.check_positive_int(k, "k")
    rng = _check_range(value_range)
    oob = None
    if rng is not None:
        oob = float(jnp.mean((samples < rng[0]) | (samples > rng[1])))
        samples = jnp.clip(samples, *rng)
    if requested_labels is not None:
        if classifier is None:
            raise ValueError("`requested_labels` needs a `classifier`.")
        requested_labels = np.asarray(requested_labels)
        if requested_labels.shape != (samples.shape[0],) or not np.issubdtype(requested_labels.dtype, np.integer):
            raise ValueError(f"`requested_labels` must be integers of shape ({samples.shape[0]},), got "
                             f"{requested_labels.dtype} {requested_labels.shape}.")
    pr = precision_recall(samples, heldout, k=min(k, samples.shape[0] - 1, heldout.shape[0] - 1))
    d_train = jnp.sqrt(_kth_sq(samples, train, k=1, exclude_self=False, chunk_size=1024))
    d_ref = float(jnp.median(jnp.sqrt(_kth_sq(mref, train, k=1, exclude_self=False, chunk_size=1024))))
    clf = {}
    if classifier is not None:
        probs = classifier.probabilities(samples)
        clf["classifier_frechet"] = float(classifier_frechet_distance(classifier, samples, heldout))
        clf["mode_mixture"] = float(mode_mixture_ratio(probs))
        if requested_labels is not None:
            clf["class_accuracy"] = float(jnp.mean(jnp.argmax(probs, -1) == jnp.asarray(requested_labels)))
    return SampleQuality(
        sinkhorn=float(sinkhorn_estimate(samples, heldout).divergence),
        w2=float(wasserstein2(samples, heldout)),
        precision=float(pr.precision),
        recall=float(pr.recall),
        classifier_frechet=clf.get("classifier_frechet"),
        mode_mixture=clf.get("mode_mixture"),
        class_accuracy=clf.get("class_accuracy"),
        memorisation_ratio=float(jnp.median(d_train)) / d_ref if d_ref > 0 else math.nan,
        near_copy_fraction=float(jnp.mean(d_train < d_ref / 3.0)),
        out_of_range_fraction=oob,
        num_samples=int(samples.shape[0]),
    )


def _met(value, op, bound) -> bool:
    return bool(value <= bound) if op == "<=" else bool(value >= bound)


@dataclasses.dataclass(frozen=True)
class QualitySettings:
    """How :func:`quality_report` measures: the sampling run and the sizes of its criteria.

    Args:
        num_samples: samples drawn (DPM-Solver++(2M) on the log-SNR grid) and training points in the reference.
        nfe: score evaluations per sample.
        t_start: start time of the sampling run (default: 1 for VP-type schedules, where the prior is
            ``N(0, I)``; ``0.999 t_max`` otherwise).
        t_end: end time of the sampling run.
        value_range: valid coordinate range (samples are clipped to it; the model space of the built-in image
            sets is ``[-1, 1]``); None to measure unclipped samples.
        log_snrs: log-SNRs at which the held-out denoising loss is measured.
        repetitions: held-out halvings of the KID criterion (``>= 2``).

    Example:
        >>> from jaxotdm.metrics import QualitySettings
        >>> QualitySettings(num_samples=200, value_range=None).nfe
        50
    """

    num_samples: int = 1000
    nfe: int = 50
    t_start: float | None = None
    t_end: float = 1e-3
    value_range: tuple[float, float] | None = (-1.0, 1.0)
    log_snrs: tuple = (0.0, 1.0, 2.0, 3.0)
    repetitions: int = 10

    def __post_init__(self):
        V.check_positive_int(self.num_samples, "num_samples", minimum=4)
        V.check_positive_int(self.nfe, "nfe")
        V.check_positive_int(self.repetitions, "repetitions", minimum=2)
        if self.t_start is not None:
            V.positive_scalar(self.t_start, "t_start")
        V.positive_scalar(self.t_end, "t_end")


def quality_report(
    score,
    train,
    heldout,
    *,
    key,
    train_labels=None,
    classifier: Classifier | None = None,
    class_score=None,
    guidance: float = 1.0,
    settings: QualitySettings | None = None,
) -> QualityReport:
    """Checks a learned score against :data:`QUALITY_BAR`.

    Draws ``settings.num_samples`` samples with DPM-Solver++(2M) at ``settings.nfe`` score evaluations on the
    log-SNR grid from ``settings.t_start`` to ``settings.t_end``, and compares :func:`sample_quality` of the
    samples with that of as many training points (drawn without replacement, the generator's ideal) -- both
    against ``heldout``. The KID criterion halves the held-out split ``settings.repetitions`` times (``A``,
    ``B``) and compares ``KID(samples, B)`` (a fresh subset of the samples of ``A``'s size each time) with
    ``KID(A, B)``, in the classifier's features when there is a classifier.

    Args:
        score: the learned score (a :class:`~jaxotdm.networks.LearnedScore`, or any score with a ``schedule``).
        train: the training split (whose exact score is the reference for the score error) and the
            held-out split, in the score's space.
        heldout: see ``train``.
        key: PRNG key.
        train_labels: labels of ``train``; needed for the classifier-based metrics (a classifier is trained
            on the training split unless ``classifier`` is given).
        classifier: a trained :class:`Classifier` (otherwise trained here from ``train_labels``).
        class_score: for a class-conditional model, ``class_score(label, guidance) -> score``
            (e.g. :meth:`~jaxotdm.samplers.LearnedClassScores.for_class`); guided samples of every class are
            drawn (``num_samples`` in all) and their class accuracy is checked.
        guidance: the guidance scale passed to ``class_score``.
        settings: a :class:`QualitySettings` (default ``QualitySettings()``).

    Returns:
        A :class:`QualityReport`.
    """
    from jaxotdm._stats import paired_interval
    from jaxotdm.measures import EmpiricalMeasure
    from jaxotdm.metrics.kid import kid
    from jaxotdm.samplers import DPMSolverPP2M, sample
    from jaxotdm.scores import exact_score

    settings = QualitySettings() if settings is None else settings
    if not isinstance(settings, QualitySettings):
        raise ValueError(f"`settings` must be a QualitySettings, got {type(settings).__name__}.")
    num_samples, nfe, t_start, t_end = settings.num_samples, settings.nfe, settings.t_start, settings.t_end
    value_range, log_snrs, repetitions = settings.value_range, settings.log_snrs, settings.repetitions
    V.check_key(key)
    train = _cloud(train, "train")
    heldout = _cloud(heldout, "heldout")
    if heldout.shape[0] < 8:
        raise ValueError(f"`heldout` needs at least 8 points (two halves for KID), got {heldout.shape[0]}.")
    schedule = getattr(score, "schedule", None)
    if schedule is None or not callable(score):
        raise ValueError("`score` must be a callable score(x, t) with a `schedule` attribute (e.g. a LearnedScore).")
    if num_samples > train.shape[0]:
        raise ValueError(f"`num_samples` ({num_samples}) must be <= the training split's size ({train.shape[0]}) "
                         "so that the reference is a same-size subset of it.")
    if class_score is not None and train_labels is None:
        raise ValueError("`class_score` needs `train_labels`.")
    t_start = (1.0 if math.isinf(schedule.t_max) else 0.999 * schedule.t_max) if t_start is None else t_start
    k_clf, k_ref, k_sample, k_err, k_cond = jax.random.split(key, 5)
    if classifier is None and train_labels is not None:
        classifier = train_classifier(train, train_labels, key=k_clf, num_steps=2000)
    d = train.shape[1]
    # throw=False: a diverged run still gets its report (and warns; the report carries no status)
    out = sample(DPMSolverPP2M(), score, schedule, t_start=t_start, t_end=t_end, nfe=nfe, grid="log_snr",
                 key=k_sample, shape=jax.ShapeDtypeStruct((num_samples, d), train.dtype), throw=False)
    ref = train[jax.random.permutation(k_ref, train.shape[0])[:num_samples]]
    q = sample_quality(out.points, train, heldout, classifier=classifier, value_range=value_range)
    r = sample_quality(ref, train, heldout, classifier=classifier, value_range=value_range)
    ratios = {"sinkhorn": q.sinkhorn / r.sinkhorn, "precision": q.precision / r.precision,
              "recall": q.recall / r.recall}
    if classifier is not None:
        ratios["classifier_frechet"] = q.classifier_frechet / r.classifier_frechet
    # the held-out denoising loss against the Bayes denoiser of all the data (Tweedie for both scores)
    bayes = exact_score(EmpiricalMeasure(jnp.concatenate([train, heldout])), schedule)
    losses = {}
    for i, lam in enumerate(log_snrs):
        t = schedule.t_from_log_snr(jnp.asarray(float(lam), train.dtype))
        a, s = schedule.alpha(t), schedule.sigma(t)
        xt = a * heldout + s * jax.random.normal(jax.random.fold_in(k_err, i), heldout.shape, heldout.dtype)
        losses[float(lam)] = tuple(float(jnp.mean(jnp.sum(jnp.square((xt + s * s * f(xt, t)) / a - heldout), -1)))
                                   for f in (score, bayes))
    # KID against fresh held-out data, paired over halvings of the held-out split
    samples = jnp.clip(out.points, *value_range) if value_range is not None else out.points
    half = heldout.shape[0] // 2
    diffs = []
    for rep in range(repetitions):
        kr = jax.random.fold_in(k_ref, 1000 + rep)
        perm = jax.random.permutation(kr, heldout.shape[0])
        a_half, b_half = heldout[perm[:half]], heldout[perm[half : 2 * half]]
        sub = samples[jax.random.permutation(jax.random.fold_in(kr, 1), num_samples)[: min(half, num_samples)]]
        diffs.append(float(kid(sub, b_half, features=classifier).value) - float(kid(a_half, b_half, features=classifier).value))
    kiv = paired_interval(diffs)
    class_acc = None
    if class_score is not None:
        classes = np.unique(np.asarray(train_labels))
        per = max(1, num_samples // len(classes))
        pts = [sample(DPMSolverPP2M(), class_score(int(c), guidance), schedule, t_start=t_start, t_end=t_end,
                      nfe=nfe, grid="log_snr", key=jax.random.fold_in(k_cond, int(c)),
                      shape=jax.ShapeDtypeStruct((per, d), train.dtype), throw=False).points for c in classes]
        requested = np.repeat(classes, per)
        qc = sample_quality(jnp.concatenate(pts), train, heldout, classifier=classifier, requested_labels=requested,
                            value_range=value_range)
        class_acc = qc.class_accuracy
    values = {"denoising_loss": max(mine / ref for mine, ref in losses.values()) if losses else None,
              "kid": kiv.low, "recall": ratios["recall"], "near_copy_fraction": q.near_copy_fraction,
              "class_accuracy": class_acc}
    values = {k: v for k, v in values.items() if v is not None}
    passed = {name: _met(values[name], op, bound) for name, (op, bound) in QUALITY_BAR.items() if name in values}
    return QualityReport(q, r, ratios, losses, (kiv.mean, kiv.low, kiv.high), class_acc, values, passed,
                         int(out.nfe))
