"""The analogue of the paper's Table 3 for any score, with verdicts a statistician would sign: long chains
against one OT step plus a short chain (Algorithm 2), repeated, paired and checked.

:func:`run_table3` is the one implementation (``jaxotdm sample``, the benchmark and the notebooks render it).
Protocol, for ``K`` repetitions:

1. a fresh halving of the held-out split into ``A`` (the *ideal* row: real data never seen in training)
   and ``B`` (the reference every row of this repetition is measured against);
2. the known-defect control rows built from ``A`` and the training split
   (:func:`~jaxotdm.studies.control_rows`: shrunk, locally averaged, blurred, Gaussian, half the classes,
   noisy, and training images + tiny noise for memorisation);
3. ``n`` fresh samples of every sampler row (each row draws ``K n`` samples with fresh seeds in one call);
4. every metric of :func:`~jaxotdm.studies.default_quality_metrics` of every row against ``B``, and the
   memorisation columns against the training split.

Then: the validity table decides which metric may rank rows at this ``n`` (the first metric that scores
every defect row worse than real data by a paired ``z >= 2``); three sanity checks must pass (no sampler
row beats held-out data beyond its interval, the shrink-0.8 control is significantly worse than held-out
data, the memorisation row is flagged by the near-copy column; the first is family-wise, Bonferroni over the
sampler rows); and each sampler row gets paired 95%
t-intervals against the long chain and against held-out data, with the verdict "better", "worse" or "not
resolvable at this size". The headline (does any OT row beat the long chain?) uses Bonferroni-adjusted
intervals over the OT rows, since it picks the best of several. No valid metric or a failed sanity check
turns every verdict into "not resolvable".

The OT map of each ``T'`` is solved once per table (its forward-noise draw is shared by the repetitions).
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
from jaxotdm.studies.metric_validity import (
    IDEAL,
    MEMORISATION,
    ControlSettings,
    MetricValidity,
    check_split,
    control_rows,
    default_quality_metrics,
    halves,
    shrink_name,
    validity_markdown,
)
from jaxotdm.studies.paired import NOT_RESOLVABLE, PairedInterval, paired_interval, verdict

__all__ = ["Baseline", "default_baselines", "Table3Settings", "Table3Row", "Table3Result", "run_table3",
           "table3_markdown", "table3_json", "table3_from_json", "plot_table3"]

NEAR_COPY_FLAG = 0.5  # the memorisation row must have at least this near-copy fraction ...
NEAR_COPY_IDEAL = 0.1  # ... and the ideal row at most this one


@pytree_dataclass
class Baseline:
    """A baseline chain from the prior: ``method`` (a sampler method object) with ``nfe`` score evaluations on
    ``grid``, shown as ``name``."""

    name: str = static_field()
    method: object = static_field()
    nfe: int = static_field()
    grid: object = static_field(default=None)

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"`name` must be a non-empty string, got {self.name!r}.")
        if not hasattr(self.method, "evals_per_step"):
            raise TypeError(f"`method` must be a sampler method object (e.g. samplers.DDIM()), got "
                            f"{type(self.method).__name__}.")
        V.check_positive_int(self.nfe, "nfe")


def default_baselines() -> tuple[Baseline, ...]:
    """Ancestral DDPM with 1000 steps (the long chain), and DDIM, DPM-Solver++(2M) and Heun at 10, 20 and 50 NFE
    (log-SNR grids; Karras' grid for Heun)."""
    from jaxotdm.samplers import DDIM, AncestralDDPM, DPMSolverPP2M, Heun

    rows = [Baseline("DDPM", AncestralDDPM(), 1000, "uniform")]
    for name, m, grid in (("DDIM", DDIM(), "log_snr"), ("DPM-Solver++(2M)", DPMSolverPP2M(), "log_snr"),
                          ("Heun", Heun(), "edm")):
        rows += [Baseline(name, m, n, grid) for n in (10, 20, 50)]
    return tuple(rows)


@pytree_dataclass
class Table3Settings:
    """What :func:`run_table3` runs.

    Attributes:
        baselines: the chains from the prior (default :func:`default_baselines`); the one with the most NFE
            is the *long chain* every verdict compares against.
        t_primes: the OT rows' times ``T'``.
        taus: the OT rows' smoothing values (0 = the hard OT map).
        ot_nfe: the OT rows' reverse-chain budgets.
        ot_sampler: the chain after the OT step (default Euler-Maruyama, the paper's), on a uniform grid.
        ot_tol: the OT solves' tolerance (max relative cell-mass error).
        t_start: the baselines' start time (default: the schedule's usual one).
        t_end: every chain's end time.
        guidance: classifier-free guidance of the conditional rows.
        repetitions: ``K >= 2`` paired repetitions (10 or more for a table to be believed).
        num_samples: points per row and repetition (default: half the held-out split).
        controls: the control rows' strengths.
        ot_max_points: at most this many training points are the OT rows' targets (a random subset, stratified
            over the classes of labelled data; the same subset for every ``T'``); ``None``: the whole training
            split. The OT solve's cost grows with the number of targets (a user's knob for large splits).
    """

    baselines: tuple = static_field(default=None)
    t_primes: tuple = static_field(default=(0.02, 0.05, 0.1))
    taus: tuple = static_field(default=(0.0, 0.02))
    ot_nfe: tuple = static_field(default=(50,))
    ot_sampler: object = static_field(default=None)
    ot_tol: float = static_field(default=0.1)
    t_start: float | None = static_field(default=None)
    t_end: float = static_field(default=1e-3)
    guidance: float = static_field(default=1.0)
    repetitions: int = static_field(default=10)
    num_samples: int | None = static_field(default=None)
    controls: ControlSettings = static_field(default=ControlSettings())
    ot_max_points: int | None = static_field(default=None)

    def __post_init__(self):
        from jaxotdm.samplers import EulerMaruyama

        if self.baselines is None:
            object.__setattr__(self, "baselines", default_baselines())
        object.__setattr__(self, "baselines", tuple(self.baselines))
        if not self.baselines or not all(isinstance(b, Baseline) for b in self.baselines):
            raise ValueError("`baselines` must be a non-empty sequence of Baseline.")
        if self.ot_sampler is None:
            object.__setattr__(self, "ot_sampler", EulerMaruyama())
        for name in ("t_primes", "taus", "ot_nfe"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        for v in self.t_primes:
            V.positive_scalar(v, "t_primes")
        for v in self.taus:
            V.nonnegative_scalar(v, "taus")
        for v in self.ot_nfe:
            V.check_positive_int(v, "ot_nfe")
        V.positive_scalar(self.ot_tol, "ot_tol")
        V.positive_scalar(self.t_end, "t_end")
        V.nonnegative_scalar(self.guidance, "guidance")
        V.check_positive_int(self.repetitions, "repetitions", minimum=2)
        if self.t_start is not None:
            V.positive_scalar(self.t_start, "t_start")
            if not self.t_start > self.t_end:
                raise ValueError(f"`t_start` must be > `t_end` ({self.t_end}), got {self.t_start}.")
        bad = [tp for tp in self.t_primes if not tp > self.t_end]
        if bad:
            raise ValueError(f"`t_primes` must be > `t_end` ({self.t_end}), got {bad}.")
        if self.num_samples is not None:
            V.check_positive_int(self.num_samples, "num_samples", minimum=4)
        if self.ot_max_points is not None:
            V.check_positive_int(self.ot_max_points, "ot_max_points", minimum=2)

    @property
    def long_chain(self) -> Baseline:
        return max(self.baselines, key=lambda b: b.nfe)


@pytree_dataclass
class Table3Row:
    """One row's configuration: ``kind`` is "control", "baseline" or "ot"."""

    method: str = static_field()
    kind: str = static_field()
    nfe: int | None = static_field(default=None)
    t_prime: float | None = static_field(default=None)
    tau: float | None = static_field(default=None)
    conditional: bool = static_field(default=False)

    @property
    def label(self) -> str:
        s = self.method
        if self.nfe is not None:
            s += f", {self.nfe} NFE"
        if self.t_prime is not None:
            s += f", T'={self.t_prime:g}, tau={self.tau:g}"
        return s + (" (cond.)" if self.conditional else "")

    @property
    def file_name(self) -> str:
        """A file-name-safe name of the row."""
        keep = "".join(c if c.isalnum() or c in "-." else "_" for c in self.label)
        return "_".join(p for p in keep.split("_") if p)


@pytree_dataclass
class Table3Result:
    """Every measurement of a :func:`run_table3` run (host arrays), and the verdicts read from them.

    Attributes:
        rows: the rows (controls first, then baselines, OT rows, conditional rows).
        metrics: the metrics' names, in order of preference for deciding.
        higher_is_better: per metric.
        values: ``(K, rows, metrics)`` each metric of each row against held-out B of each repetition.
        memorisation: ``(K, rows, 2)``: median nearest-training distance over ``d_ref`` (the held-out
            split's own median; 1 = as novel as fresh data) and the near-copy fraction (closer than
            ``d_ref / 3``).
        class_accuracy: ``(K, rows)`` fraction classified as requested (conditional rows; NaN elsewhere).
        mode_mixture: ``(K, rows)`` the paper's mode-mixture ratio (NaN without a classifier).
        ot_certificates: ``(rows,)`` the OT solve's certified max relative cell-mass error (NaN for non-OT
            rows).
        num_samples: points per row and repetition (conditional rows: the largest multiple of the number of
            classes not above it).
        examples: the first repetition's samples of every row, by :attr:`Table3Row.file_name`.
        ot_targets: the number of training points the OT rows were solved onto (``None``: not recorded, a
            table written before the subset option existed).
    """

    rows: tuple = static_field()
    metrics: tuple = static_field()
    higher_is_better: tuple = static_field()
    values: np.ndarray
    memorisation: np.ndarray
    class_accuracy: np.ndarray
    mode_mixture: np.ndarray
    ot_certificates: np.ndarray
    num_samples: int = static_field()
    examples: dict
    ot_targets: int | None = static_field(default=None)

    @property
    def repetitions(self) -> int:
        return int(self.values.shape[0])

    def index(self, row: Table3Row | str) -> int:
        if isinstance(row, str):
            return next(i for i, r in enumerate(self.rows) if r.method == row and r.kind == "control")
        return self.rows.index(row)

    @property
    def validity(self) -> MetricValidity:
        ctrl = [i for i, r in enumerate(self.rows) if r.kind == "control"]
        return MetricValidity(tuple(self.rows[i].method for i in ctrl), self.metrics, self.higher_is_better,
                              self.values[:, ctrl, :], self.num_samples)

    @property
    def deciding_metric(self) -> str | None:
        return self.validity.deciding_metric

    def interval(self, row, against, metric: str | None = None, *, level: float = 0.95) -> PairedInterval:
        """Paired interval of ``row`` minus ``against`` on ``metric`` (default: the deciding one), oriented so
        that negative means ``row`` is better."""
        metric = metric or self.deciding_metric or self.metrics[0]
        j = self.metrics.index(metric)
        d = self.values[:, self.index(row), j] - self.values[:, self.index(against), j]
        return paired_interval(-d if self.higher_is_better[j] else d, level=level)

    def long_chain(self, conditional: bool = False) -> Table3Row | None:
        base = [r for r in self.rows if r.kind == "baseline" and r.conditional == conditional]
        return max(base, key=lambda r: r.nfe) if base else None

    @property
    def samplers(self) -> tuple:
        return tuple(r for r in self.rows if r.kind != "control")

    def sanity(self) -> tuple:
        """``((check, passed, detail), ...)``: the three rows that must pass before any verdict is printed."""
        metric = self.deciding_metric
        if metric is None:
            return (("a valid metric at this sample size", False, "no metric ranks real data above every defect"),)
        level = 1 - 0.05 / max(1, len(self.samplers))  # family-wise over the sampler rows (Bonferroni)
        beat = [r.label for r in self.samplers if self.interval(r, IDEAL, level=level).high < 0]
        shrink = shrink_name(0.8)
        names = [r.method for r in self.rows if r.kind == "control"]
        out = [("no sampler beats held-out data beyond its interval", not beat,
                ("beaten by " + ", ".join(beat) if beat else "every sampler's interval against held-out data "
                 "reaches 0 or above") + f" ({metric}, {100 * level:.1f}% intervals, Bonferroni over "
                                          f"{len(self.samplers)} rows)")]
        if shrink in names:
            iv = self.interval(shrink, IDEAL)
            out.append(("the shrink-0.8 control is significantly worse than held-out data", iv.low > 0,
                        f"{metric} difference {iv.mean:.3g} [{iv.low:.3g}, {iv.high:.3g}]"))
        else:
            out.append(("the shrink-0.8 control is significantly worse than held-out data", False,
                        "no shrink-0.8 row (ControlSettings.shrinks must contain 0.8)"))
        mem = float(np.mean(self.memorisation[:, self.index(MEMORISATION), 1]))
        ideal = float(np.mean(self.memorisation[:, self.index(IDEAL), 1]))
        out.append(("the memorisation row is flagged by the near-copy column",
                    mem >= NEAR_COPY_FLAG and ideal <= NEAR_COPY_IDEAL,
                    f"near copies: memorisation row {100 * mem:.0f}%, held-out data {100 * ideal:.0f}%"))
        return tuple(out)

    @property
    def sane(self) -> bool:
        return all(ok for _, ok, _ in self.sanity())

    def verdict(self, row: Table3Row, against) -> str:
        """"better", "worse" or "not resolvable at this size" (deciding metric, paired 95% interval); "not
        resolvable" whenever no metric is valid or a sanity check failed."""
        if against is None or not self.sane:
            return NOT_RESOLVABLE
        return verdict(self.interval(row, against))

    def headline(self, conditional: bool = False) -> str:
        """The table's conclusion in words (Bonferroni over the OT rows for 'any OT row beats the long chain')."""
        what = "Class-conditional" if conditional else "Unconditional"
        ot = [r for r in self.rows if r.kind == "ot" and r.conditional == conditional]
        long = self.long_chain(conditional)
        if not ot or long is None:
            return f"{what}: no OT rows or no long chain in the table."
        metric = self.deciding_metric
        if metric is None:
            return (f"{what}: not resolvable at n = {self.num_samples}: no metric ranks real held-out data above "
                    "every known-defect control row at this sample size (see the validity table).")
        failed = [c for c, ok, _ in self.sanity() if not ok]
        if failed:
            return f"{what}: not resolvable: sanity check failed ({'; '.join(failed)})."
        level = 1 - 0.05 / len(ot)
        ivs = {r: self.interval(r, long, level=level) for r in ot}
        best = min(ot, key=lambda r: ivs[r].mean)
        iv = ivs[best]
        word = verdict(iv)
        mem = self.memorisation[:, self.index(best), 1].mean()
        mem_long = self.memorisation[:, self.index(long), 1].mean()
        text = (f"{what}, decided by {metric} at n = {self.num_samples} with K = {self.repetitions} paired "
                f"repetitions: the best OT row ({best.label}) against {long.label}: difference {iv.mean:.3g}, "
                f"{100 * level:.1f}% interval [{iv.low:.3g}, {iv.high:.3g}] (Bonferroni over {len(ot)} OT rows): ")
        text += {"better": "the OT row is better.", "worse": "the OT row is worse.",
                 NOT_RESOLVABLE: "not resolvable at this size."}[word]
        text += (f" Near copies of training images: {100 * mem:.0f}% of the OT row's samples against "
                 f"{100 * mem_long:.0f}% for the long chain.")
        return text


def ot_target_indices(labels, n: int, max_points: int | None, key) -> np.ndarray:
    """Sorted indices of the OT rows' targets among ``n`` training points: all of them, or at most
    ``max_points`` drawn at random (with ``labels``: every class keeps its share, at least one point)."""
    if max_points is None or max_points >= n:
        return np.arange(n)
    order = np.asarray(jax.random.permutation(key, n))
    if labels is None:
        return np.sort(order[:max_points])
    lab = np.asarray(labels)[order]
    keep = [order[lab == c][: max(1, (max_points * int(np.sum(lab == c))) // n)] for c in np.unique(lab)]
    return np.sort(np.concatenate(keep))


def _draw_rows(score, schedule, split, class_scores, settings, n, cond_per, key, say):
    """Every sampler row's ``(row, samples, certificate)``: ``K n`` samples, or for a conditional row
    ``cond_per`` samples of every class per repetition (``K cond_per C``, blocked by repetition)."""
    from jaxotdm.samplers import prepare_conditional_ot_prior, prepare_ot_prior, sample

    train, labels = split
    K = settings.repetitions
    total = K * n
    keep = ot_target_indices(labels, train.shape[0], settings.ot_max_points, jax.random.fold_in(key, 999))
    ot_train, ot_labels = train[keep], (None if labels is None else labels[keep])
    d = train.shape[1]
    t_start = settings.t_start if settings.t_start is not None else default_start_time(schedule)
    out = []
    for i, b in enumerate(settings.baselines):
        res = sample(b.method, score, schedule, t_start=t_start, t_end=settings.t_end, nfe=b.nfe, grid=b.grid,
                     key=jax.random.fold_in(key, i), shape=jax.ShapeDtypeStruct((total, d), train.dtype),
                     throw=False)  # a diverged baseline warns; its row is still measured
        out.append((Table3Row(b.name, "baseline", int(res.nfe)), np.asarray(res.points), math.nan))
        say(out[-1][0].label)
    for j, tp in enumerate(settings.t_primes):
        prior = prepare_ot_prior(schedule, ot_train, key=jax.random.fold_in(key, 1000 + j), t_prime=float(tp),
                                 ot_tol=settings.ot_tol)
        cert = float(prior.certificate.max_relative_error) if prior.certificate is not None else math.nan
        for tau in settings.taus:
            for nfe in settings.ot_nfe:
                res = prior.sample(score, key=jax.random.fold_in(key, 2000 + 100 * j + nfe), num_samples=total,
                                   t_end=settings.t_end, sampler=settings.ot_sampler, nfe=int(nfe), tau=float(tau),
                                   grid="uniform", throw=False)  # a failed part warns; the row keeps its cert
                name = f"OT + {type(settings.ot_sampler).__name__}"
                out.append((Table3Row(name, "ot", int(res.nfe), float(tp), float(tau)), np.asarray(res.points), cert))
                say(out[-1][0].label)
    if class_scores is None:
        return out
    classes = [int(c) for c in np.unique(labels)]
    long = settings.long_chain
    per = K * cond_per  # samples per class over all repetitions
    pts = [sample(long.method, class_scores.for_class(c, settings.guidance), schedule, t_start=t_start,
                  t_end=settings.t_end, nfe=long.nfe, grid=long.grid, key=jax.random.fold_in(key, 3000 + c),
                  shape=jax.ShapeDtypeStruct((per, d), train.dtype), throw=False).points for c in classes]
    out.append((Table3Row(long.name, "baseline", long.nfe, conditional=True), _class_blocked(pts, K, cond_per),
                math.nan))
    say(out[-1][0].label)
    for j, tp in enumerate(settings.t_primes):
        cprior = prepare_conditional_ot_prior(schedule, ot_train, ot_labels, key=jax.random.fold_in(key, 4000 + j),
                                              t_prime=float(tp), ot_tol=settings.ot_tol)
        certs = [float(p.certificate.max_relative_error) for p in cprior.priors if p.certificate is not None]
        for tau in settings.taus:
            for nfe in settings.ot_nfe:
                pts = [cprior.sample(class_scores, label=c, guidance=settings.guidance,
                                     key=jax.random.fold_in(key, 5000 + 100 * j + c), num_samples=per,
                                     t_end=settings.t_end, sampler=settings.ot_sampler, nfe=int(nfe),
                                     tau=float(tau), grid="uniform", throw=False).points for c in classes]
                name = f"OT + {type(settings.ot_sampler).__name__}"
                out.append((Table3Row(name, "ot", int(nfe), float(tp), float(tau), conditional=True),
                            _class_blocked(pts, K, cond_per), max(certs) if certs else math.nan))
                say(out[-1][0].label)
    return out


def _class_blocked(per_class, reps: int, per: int) -> np.ndarray:
    """Repetition r gets ``per`` samples of every class, in class order: ``(reps * per * C, d)``."""
    blocks = [np.asarray(p).reshape(reps, per, -1) for p in per_class]
    return np.concatenate(blocks, axis=1).reshape(reps * per * len(per_class), -1)


def default_start_time(schedule) -> float:
    """The usual start time of a chain from the prior: 8 for OU, 80 for EDM, 1 for an unbounded clock, else
    0.99 ``t_max`` (the one rule of ``jaxotdm sample`` and ``jaxotdm generate``)."""
    from jaxotdm import schedules as S

    if isinstance(schedule, S.OU):
        return 8.0
    if isinstance(schedule, S.EDM):
        return 80.0
    if math.isinf(schedule.t_max):
        return 1.0
    return 0.99 * schedule.t_max


def run_table3(
    score,
    split,
    *,
    key,
    settings: Table3Settings | None = None,
    class_scores=None,
    classifier: M.Classifier | None = None,
    image_shape: Sequence[int] | None = None,
    progress: Callable[[str], None] | None = None,
) -> Table3Result:
    """Runs the Table 3 analogue (protocol in the module docstring).

    Args:
        score: the unconditional score, with a ``schedule`` attribute (an exact or a learned score).
        split: the data, in the score's space: an object with ``train``, ``heldout``, ``train_labels`` and
            ``heldout_labels`` (e.g. :class:`~jaxotdm.networks.DataSplit`; labels may be None).
        key: PRNG key.
        settings: the rows, repetitions and sample size (default :class:`Table3Settings`).
        class_scores: ``class_scores.for_class(label, guidance)`` (ExactClassScores, LearnedClassScores): adds
            the conditional rows (the guided long chain and conditional OT); needs ``split.train_labels``.
        classifier: features for KID and the Frechet distance, mode mixture and class accuracy (default:
            trained on the labelled training split; none for unlabelled data).
        image_shape: ``(H, W[, C])`` adds the blurred control row.
        progress: called with each finished row's label.

    Returns:
        :class:`Table3Result`.
    """
    V.check_key(key)
    settings = Table3Settings() if settings is None else settings
    if not isinstance(settings, Table3Settings):
        raise TypeError(f"`settings` must be a Table3Settings, got {type(settings).__name__}.")
    train = np.asarray(V.points(split.train, "split.train"))
    heldout = np.asarray(V.points(split.heldout, "split.heldout"), train.dtype)
    if heldout.shape[1] != train.shape[1]:
        raise ValueError(f"`split.heldout` has dimension {heldout.shape[1]}, `split.train` {train.shape[1]}.")
    schedule = getattr(score, "schedule", None)
    if schedule is None or not callable(score):
        raise ValueError("`score` must be callable as score(x, t) and have a `schedule` attribute.")
    labels = None if split.train_labels is None else np.asarray(split.train_labels)
    if class_scores is not None and labels is None:
        raise ValueError("`class_scores` needs labelled data (`split.train_labels`).")
    n = check_split(heldout, settings.num_samples)
    K = settings.repetitions
    say = progress or (lambda _m: None)
    k_clf, k_draw, k_rep = jax.random.split(key, 3)
    if classifier is None and labels is not None and np.unique(labels).size >= 2:
        classifier = M.train_classifier(train, labels, key=k_clf, num_steps=2000)
        say("classifier")
    metrics = default_quality_metrics(classifier)
    classes = [] if labels is None else [int(c) for c in np.unique(labels)]
    cond_per = n // len(classes) if class_scores is not None else 0
    drawn = _draw_rows(score, schedule, (train, labels), class_scores, settings, n, cond_per, k_draw, say)
    d_ref = float(np.median(np.asarray(M.nearest_neighbour_distance(heldout, train))))
    values, memo, acc, mix, examples, control_names = [], [], [], [], {}, None
    requested = np.repeat(classes, cond_per) if cond_per else None
    for r in range(K):
        kr = jax.random.fold_in(k_rep, r)
        a, b, second = halves(heldout, n, jax.random.fold_in(kr, 0))
        ctrl = control_rows(a, train, key=jax.random.fold_in(kr, 1), settings=settings.controls, second=second,
                            train_labels=labels, image_shape=image_shape)
        control_names = tuple(ctrl)
        sets = list(ctrl.values())
        for row, pts, _ in drawn:
            m = cond_per * len(classes) if row.conditional else n
            sets.append(pts[r * m : (r + 1) * m])
        ref = jnp.asarray(b, train.dtype)
        vr, mr, ar, xr = [], [], [], []
        for i, x in enumerate(sets):
            x = jnp.asarray(x, train.dtype)
            finite = bool(jnp.all(jnp.isfinite(x)))
            vr.append([m(x, ref) if finite else math.nan for m in metrics])
            dt = np.asarray(M.nearest_neighbour_distance(x, train)) if finite else np.full(x.shape[0], np.nan)
            mr.append([float(np.median(dt)) / d_ref, float(np.mean(dt < d_ref / 3))])
            cond = i >= len(sets) - len(drawn) and drawn[i - len(ctrl)][0].conditional
            if classifier is not None and finite:
                probs = classifier.probabilities(x)
                xr.append(float(M.mode_mixture_ratio(probs)))
                ar.append(float(jnp.mean(jnp.argmax(probs, -1) == jnp.asarray(requested))) if cond else math.nan)
            else:
                xr.append(math.nan)
                ar.append(math.nan)
        values.append(vr)
        memo.append(mr)
        acc.append(ar)
        mix.append(xr)
        say(f"repetition {r + 1}/{K}")
        if r == 0:
            rows0 = [Table3Row(name, "control") for name in control_names] + [row for row, _, _ in drawn]
            examples = {row.file_name: np.asarray(s)[:64] for row, s in zip(rows0, sets, strict=True)}
    rows = tuple(Table3Row(name, "control") for name in control_names) + tuple(row for row, _, _ in drawn)
    certs = np.asarray([math.nan] * len(control_names) + [c for _, _, c in drawn])
    return Table3Result(rows, tuple(m.name for m in metrics), tuple(m.higher_is_better for m in metrics),
                        np.asarray(values, np.float64), np.asarray(memo, np.float64), np.asarray(acc, np.float64),
                        np.asarray(mix, np.float64), certs, n, examples,
                        ot_targets=int(ot_target_indices(labels, train.shape[0], settings.ot_max_points,
                                                         jax.random.fold_in(k_draw, 999)).size))


# ------------------------------------------------------------------------------------------------- render
def _fmt(v: float) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3g}"


def _interval_cell(iv: PairedInterval | None) -> str:
    return "-" if iv is None else f"{iv.mean:+.3g} [{iv.low:.3g}, {iv.high:.3g}]"


def _check_result(result) -> None:
    if not isinstance(result, Table3Result):
        raise TypeError(f"`result` must be a Table3Result (see run_table3), got {type(result).__name__}.")


def table3_markdown(result: Table3Result, *, title: str = "Table 3 analogue") -> str:
    """The whole report: conclusion, sanity checks, the table with paired intervals and verdicts, and the
    validity table."""
    _check_result(result)
    metric = result.deciding_metric
    conds = sorted({r.conditional for r in result.samplers})
    lines = [f"# {title}", "", "## Conclusion", ""]
    lines += [result.headline(c) for c in conds] + [""]
    lines += ["## Sanity checks (all must pass before any verdict)", ""]
    lines += [f"- {'PASS' if ok else 'FAIL'}: {c} ({detail})" for c, ok, detail in result.sanity()] + [""]
    lines += ["## Table", "",
              f"{result.num_samples} samples per row and repetition, K = {result.repetitions} repetitions (fresh "
              "sampler seeds and a fresh halving of the held-out split each time; every row is measured against "
              "half B, half A is the ideal row). Cells: mean over repetitions. 'vs long chain' and 'vs held-out' "
              f"are paired differences in {metric or 'the first metric'} with 95% t-intervals (negative: the row "
              "is better); the verdict column reads each row's own interval, not adjusted for the number of rows "
              "(the conclusion above is: Bonferroni over the OT rows). Near copies: closer than a third of the held-out split's median nearest-training "
              "distance; NN ratio: median nearest-training distance over that median (1 = as novel as fresh data)."
              + ("" if result.ot_targets is None else
                 f" The OT rows' maps were solved onto {result.ot_targets} training points."),
              ""]
    cols = list(result.metrics)
    head = ["row", *cols, "NN ratio", "near copies", "class acc", "mode mix", "vs long chain", "vs held-out",
            "verdict vs long chain"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, r in enumerate(result.rows):
        vals = [_fmt(float(np.mean(result.values[:, i, j]))) for j in range(len(cols))]
        mem = [_fmt(float(np.mean(result.memorisation[:, i, k]))) for k in range(2)]
        extra = [_fmt(float(np.mean(result.class_accuracy[:, i]))), _fmt(float(np.mean(result.mode_mixture[:, i])))]
        if r.kind == "control":
            long_iv, held_iv, word = None, (None if r.method == IDEAL else result.interval(r.method, IDEAL)), ""
        else:
            long = result.long_chain(r.conditional)
            long_iv = None if long is None or long == r else result.interval(r, long)
            held_iv = result.interval(r, IDEAL)
            word = "-" if long_iv is None else result.verdict(r, long)
        lines.append("| " + " | ".join([r.label, *vals, *mem, *extra, _interval_cell(long_iv),
                                        _interval_cell(held_iv), word]) + " |")
    lines += ["", "## Metric validity at this sample size", "", validity_markdown(result.validity), ""]
    return "\n".join(lines)


def _iv_json(iv: PairedInterval | None):
    return None if iv is None else {"mean": iv.mean, "low": iv.low, "high": iv.high, "z": iv.z, "level": iv.level}


def _nan_none(v: float):
    return None if math.isnan(v) else float(v)


def table3_json(result: Table3Result) -> dict:
    """Everything a reader needs to re-derive the verdicts: per row the means and the per-repetition values of
    every metric, memorisation, the paired intervals and the verdict; the sanity checks; the validity table
    (paired z of every metric on every control row); the headlines."""
    _check_result(result)
    v = result.validity
    rows = []
    for i, r in enumerate(result.rows):
        entry = {"label": r.label, "method": r.method, "kind": r.kind, "nfe": r.nfe, "T_prime": r.t_prime,
                 "tau": r.tau, "conditional": r.conditional,
                 "metrics": {m: {"mean": _nan_none(float(np.mean(result.values[:, i, j]))),
                                 "per_repetition": [_nan_none(float(x)) for x in result.values[:, i, j]]}
                             for j, m in enumerate(result.metrics)},
                 "nn_ratio": _nan_none(float(np.mean(result.memorisation[:, i, 0]))),
                 "near_copy_fraction": _nan_none(float(np.mean(result.memorisation[:, i, 1]))),
                 "memorisation_per_repetition": [[_nan_none(float(v)) for v in m] for m in result.memorisation[:, i]],
                 "class_accuracy": _nan_none(float(np.mean(result.class_accuracy[:, i]))),
                 "mode_mixture": _nan_none(float(np.mean(result.mode_mixture[:, i]))),
                 "ot_certificate": _nan_none(float(result.ot_certificates[i]))}
        if r.kind != "control":
            long = result.long_chain(r.conditional)
            entry["vs_long_chain"] = None if long is None or long == r else _iv_json(result.interval(r, long))
            entry["vs_heldout"] = _iv_json(result.interval(r, IDEAL))
            entry["verdict_vs_long_chain"] = None if long is None or long == r else result.verdict(r, long)
        elif r.method != IDEAL:
            entry["vs_heldout"] = _iv_json(result.interval(r.method, IDEAL))
        rows.append(entry)
    return {
        "num_samples": result.num_samples, "repetitions": result.repetitions, "deciding_metric": result.deciding_metric,
        "ot_targets": result.ot_targets,
        "sanity": [{"check": c, "passed": ok, "detail": d} for c, ok, d in result.sanity()],
        "headlines": {("conditional" if c else "unconditional"): result.headline(c)
                      for c in sorted({r.conditional for r in result.samplers})},
        "validity": {"valid": {m: v.is_valid(m) for m in v.metrics},
                     "z": {row: {m: v.z(row, m) for m in v.metrics} for row in v.rows[1:]}},
        "metric_directions": {m: ("higher" if h else "lower") + " is better"
                              for m, h in zip(result.metrics, result.higher_is_better, strict=True)},
        "rows": rows,
    }


def table3_from_json(doc: dict) -> Table3Result:
    """The :class:`Table3Result` of a ``table3.json`` (:func:`table3_json`), to re-render or re-read a committed
    table with the current verdict code. Per-repetition memorisation, class accuracy and mode mixture of tables
    written before they were stored per repetition are their means, repeated (the verdicts use only means of
    them); the sample examples are not stored in the JSON."""
    if not isinstance(doc, dict) or "rows" not in doc or "repetitions" not in doc:
        raise ValueError("`doc` must be the dictionary of a table3.json written by table3_json.")
    K = int(doc["repetitions"])
    metrics = tuple(doc["rows"][0]["metrics"])
    directions = doc.get("metric_directions", {})
    higher = tuple(directions.get(m, "higher" if m in ("precision", "recall") else "lower").startswith("higher")
                   for m in metrics)
    rows, values, memo, acc, mix, certs = [], [], [], [], [], []

    def num(v):
        return math.nan if v is None else float(v)

    for r in doc["rows"]:
        rows.append(Table3Row(r["method"], r["kind"], r["nfe"], r["T_prime"], r["tau"], bool(r["conditional"])))
        values.append([[num(v) for v in r["metrics"][m]["per_repetition"]] for m in metrics])
        per = r.get("memorisation_per_repetition")
        memo.append([[num(a), num(b)] for a, b in per] if per else [[num(r["nn_ratio"]), num(r["near_copy_fraction"])]] * K)
        acc.append([num(r["class_accuracy"])] * K)
        mix.append([num(r["mode_mixture"])] * K)
        certs.append(num(r["ot_certificate"]))
    return Table3Result(tuple(rows), metrics, higher, np.asarray(values, np.float64).transpose(2, 0, 1),
                        np.asarray(memo, np.float64).transpose(1, 0, 2), np.asarray(acc).T, np.asarray(mix).T,
                        np.asarray(certs), int(doc["num_samples"]), {},
                        ot_targets=None if doc.get("ot_targets") is None else int(doc["ot_targets"]))


def plot_table3(result: Table3Result, path, *, title: str = "") -> None:
    """The deciding metric against NFE (mean and 95% interval half-width over repetitions): one line per
    baseline sampler, markers for the OT rows, held-out data and the controls as horizontal bands; and the
    near-copy fraction of every row."""
    _check_result(result)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = result.deciding_metric or result.metrics[0]
    j = result.metrics.index(metric)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    ax = axes[0]
    K = result.repetitions

    def stat(i):
        v = result.values[:, i, j]
        return float(np.mean(v)), 1.96 * float(np.std(v, ddof=1)) / math.sqrt(K)

    for cond, style in ((False, "-"), (True, ":")):
        lines = {}
        for i, r in enumerate(result.rows):
            if r.kind == "baseline" and r.conditional == cond:
                lines.setdefault(r.method, []).append((r.nfe, *stat(i)))
        for name, pts in lines.items():
            pts.sort()
            x, m, h = zip(*pts, strict=True)
            ax.errorbar(x, m, yerr=h, fmt=style + "o", ms=4, capsize=2, label=name + (" (cond.)" if cond else ""))
        ots = [i for i, r in enumerate(result.rows) if r.kind == "ot" and r.conditional == cond]
        for k, i in enumerate(ots):  # spread apart at equal NFE
            r = result.rows[i]
            m, h = stat(i)
            ax.errorbar([r.nfe * (1 + 0.06 * (k - (len(ots) - 1) / 2))], [m], yerr=[h], fmt="*" if r.tau == 0 else "D",
                        ms=8, capsize=2, label=f"OT T'={r.t_prime:g} tau={r.tau:g}" + (" (cond.)" if cond else ""))
    for name, color in ((IDEAL, "tab:green"), (shrink_name(0.8), "tab:red"), (MEMORISATION, "tab:gray")):
        if any(r.method == name and r.kind == "control" for r in result.rows):
            m, h = stat(result.index(name))
            ax.axhspan(m - h, m + h, color=color, alpha=0.2)
            ax.axhline(m, color=color, ls="--", lw=1, label=name)
    ax.set_xscale("log")
    shrink = [i for i, r in enumerate(result.rows) if r.kind == "control" and r.method == shrink_name(0.8)]
    scale = abs(stat(shrink[0])[0] - stat(result.index(IDEAL))[0]) if shrink else 0.0
    ax.set_yscale("symlog", linthresh=max(0.1 * scale, 1e-6))  # a diverged row must not flatten the rest
    ax.set_xlabel("NFE (score evaluations per sample)")
    ax.set_ylabel(f"{metric} (mean, 95% CI, symlog)")
    ax.legend(fontsize=6, ncol=2)
    ax = axes[1]
    idx = [i for i, r in enumerate(result.rows) if r.kind != "control" or r.method in (IDEAL, MEMORISATION)]
    labels = [result.rows[i].label for i in idx]
    ax.barh(range(len(idx)), [float(np.mean(result.memorisation[:, i, 1])) for i in idx], color="tab:purple")
    ax.set_yticks(range(len(idx)), labels, fontsize=6)
    ax.invert_yaxis()
    ax.set_xlabel("near-copy fraction (closer than d_ref / 3 to a training image)")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
