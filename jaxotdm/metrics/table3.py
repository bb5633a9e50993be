"""The analogue of the paper's Table 3 for any score: long and short reverse chains against OT-accelerated
sampling (Algorithm 2), with two control rows and memorisation beside every quality figure.

:func:`sampler_table` runs it. The held-out split is cut in two halves: every row is measured against
half A (:func:`~jaxotdm.metrics.sample_quality`), and half B is the *ideal* control row (fresh images of the
data law, never seen in training); the *memorisation* control row is as many training images plus tiny
Gaussian noise. Every row has as many samples as half B, so sample-size effects on the divergences are the
same for all rows. :func:`markdown_table`, :func:`plot_quality_vs_nfe` and :func:`table3_verdict` (the
conclusion in words: does OT + a short chain beat the long chains, and does it do so by copying?) render it.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxotdm import _validation as V
from jaxotdm.metrics._common import _cloud
from jaxotdm.metrics.classifier import Classifier, train_classifier
from jaxotdm.metrics.quality import sample_quality

__all__ = ["sampler_table", "default_baselines", "markdown_table", "plot_quality_vs_nfe", "table3_verdict",
           "TABLE3_COLUMNS"]

TABLE3_COLUMNS = [
    ("method", "method"), ("nfe", "NFE"), ("T_prime", "T'"), ("tau", "tau"), ("conditional", "cond"),
    ("sinkhorn", "Sinkhorn div"), ("w2", "W2"), ("classifier_frechet", "clf Frechet"), ("precision", "prec"),
    ("recall", "recall"), ("mode_mixture", "mode mix"), ("class_accuracy", "class acc"),
    ("memorisation_ratio", "NN-train / held-out's"), ("near_copy_fraction", "near-copy frac"),
    ("seconds", "s"),
]


def default_baselines():
    """``[(name, method, nfe, grid), ...]``: ancestral DDPM with 1000 steps, and DDIM, DPM-Solver++(2M) and
    Heun at 10, 20 and 50 NFE (log-SNR grids; Karras' grid for Heun)."""
    from jaxotdm.samplers import DDIM, AncestralDDPM, DPMSolverPP2M, Heun

    rows = [("DDPM", AncestralDDPM(), 1000, "uniform")]
    for name, m, grid in (("DDIM", DDIM(), "log_snr"), ("DPM-Solver++(2M)", DPMSolverPP2M(), "log_snr"),
                          ("Heun", Heun(), "edm")):
        rows += [(name, m, n, grid) for n in (10, 20, 50)]
    return rows


def _row(method, nfe, quality, *, conditional=False, T_prime=None, tau=None, seconds=None, **extra) -> dict:
    return {"method": method, "nfe": nfe, "T_prime": T_prime, "tau": tau, "conditional": conditional,
            **{f.name: getattr(quality, f.name) for f in dataclasses.fields(quality)}, "seconds": seconds, **extra}


def _draw(method, score, schedule, n, d, dtype, t_start, t_end, nfe, grid, key):
    from jaxotdm.samplers import sample

    t0 = time.perf_counter()
    out = sample(method, score, schedule, t_start=t_start, t_end=t_end, nfe=nfe, grid=grid, key=key, shape=(n, d),
                 dtype=dtype)
    pts = jax.block_until_ready(out.points)
    return pts, int(out.nfe), time.perf_counter() - t0


def sampler_table(
    score,
    train,
    heldout,
    *,
    key,
    train_labels=None,
    heldout_labels=None,
    class_scores=None,
    guidance: float = 1.0,
    classifier: Classifier | None = None,
    baselines=None,
    t_primes: Sequence[float] = (0.02, 0.05, 0.1),
    taus: Sequence[float] = (0.0, 0.02),
    ot_nfe: Sequence[int] = (50,),
    ot_sampler=None,
    ot_tol: float = 0.1,
    t_start: float = 1.0,
    t_end: float = 1e-3,
    control_noise: float = 0.01,
    value_range: tuple[float, float] | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[list[dict], dict]:
    """Runs the Table 3 analogue; returns ``(rows, samples_by_row_name)``.

    Args:
        score: the (unconditional) score, with a ``schedule`` attribute (e.g. a LearnedScore).
        train: the training and held-out splits in the score's space.
        heldout: see ``train``.
        key: PRNG key.
        train_labels: labels (for the classifier metrics and the conditional rows).
        heldout_labels: see ``train_labels``.
        class_scores: ``class_scores.for_class(label, guidance)`` (e.g. LearnedClassScores): adds the
            conditional rows (a guided baseline per sampler at its largest budget, and conditional OT).
        guidance: classifier-free guidance scale of the conditional rows.
        classifier: a trained :class:`Classifier` (otherwise trained on the training split when labelled).
        baselines: ``[(name, method, nfe, grid), ...]`` (default :func:`default_baselines`).
        t_primes: the OT rows: ``T'`` values, smoothing values and reverse-chain budgets.
        taus: see ``t_primes``.
        ot_nfe: see ``t_primes``.
        ot_sampler: the chain after the OT step (default Euler-Maruyama, the paper's).
        ot_tol: the OT solves' tolerance (max relative cell-mass error).
        t_start: the baselines' start time and every chain's end time.
        t_end: see ``t_start``.
        control_noise: standard deviation of the noise added to the training images of the memorisation row.
        value_range: valid coordinate range (see :func:`~jaxotdm.metrics.sample_quality`).
        progress: called with each finished row's name.
    """
    from jaxotdm.samplers import EulerMaruyama, prepare_conditional_ot_prior, prepare_ot_prior

    V.check_key(key)
    train, heldout = _cloud(train, "train"), _cloud(heldout, "heldout")
    if heldout.shape[0] < 8:
        raise ValueError(f"`heldout` needs at least 8 points (two halves), got {heldout.shape[0]}.")
    schedule = score.schedule
    baselines = default_baselines() if baselines is None else list(baselines)
    ot_sampler = EulerMaruyama() if ot_sampler is None else ot_sampler
    say = progress or (lambda _m: None)
    k_split, k_clf, k_noise, k_run = jax.random.split(key, 4)
    perm = np.asarray(jax.random.permutation(k_split, heldout.shape[0]))
    half = heldout.shape[0] // 2
    ref, ideal = heldout[perm[:half]], heldout[perm[half:]]
    n, d = ideal.shape
    if classifier is None and train_labels is not None:
        classifier = train_classifier(train, train_labels, key=k_clf, num_steps=2000)
    rows, pics = [], {}

    def record(row_args, pts, requested=None, **extra):
        q = sample_quality(pts, train, ref, classifier=classifier, requested_labels=requested,
                           value_range=value_range, memorisation_reference=heldout)
        row = _row(*row_args, q, **extra)
        rows.append(row)
        pics[row_name(row)] = np.asarray(pts)
        say(row_name(row))

    record(("held-out images (ideal)", None), ideal)
    idx = np.asarray(jax.random.permutation(k_noise, train.shape[0]))[:n]
    noisy = train[idx] + control_noise * jax.random.normal(jax.random.fold_in(k_noise, 1), (n, d), train.dtype)
    record(("training images + noise (memorisation)", None), noisy)
    for i, (name, m, nfe, grid) in enumerate(baselines):
        pts, used, sec = _draw(m, score, schedule, n, d, train.dtype, t_start, t_end, nfe, grid,
                               jax.random.fold_in(k_run, i))
        record((name, used), pts, seconds=sec)
    _ot_rows(record, score, schedule, train, n, t_primes, taus, ot_nfe, ot_sampler, ot_tol, t_end,
             jax.random.fold_in(k_run, 1000), prepare_ot_prior)
    if class_scores is not None:
        if train_labels is None:
            raise ValueError("`class_scores` needs `train_labels`.")
        _conditional_rows(record, class_scores, schedule, train, np.asarray(train_labels), n, baselines, guidance,
                          t_primes, taus, ot_nfe, ot_sampler, ot_tol, t_start, t_end,
                          jax.random.fold_in(k_run, 2000), prepare_conditional_ot_prior)
    return rows, pics


def _ot_rows(record, score, schedule, train, n, t_primes, taus, ot_nfe, sampler, ot_tol, t_end, key, prepare):
    for j, tp in enumerate(t_primes):
        t0 = time.perf_counter()
        prior = prepare(schedule, train, key=jax.random.fold_in(key, j), t_prime=float(tp), ot_tol=ot_tol)
        jax.block_until_ready(prior.ot_map.heights)
        ot_sec = time.perf_counter() - t0
        cert = float(prior.certificate.max_relative_error) if prior.certificate is not None else None
        for tau in taus:
            for b in ot_nfe:
                t0 = time.perf_counter()
                out = prior.sample(score, key=jax.random.fold_in(key, 100 * j + b), num_samples=n, t_end=t_end,
                                   sampler=sampler, nfe=int(b), tau=float(tau), grid="uniform")
                pts = jax.block_until_ready(out.points)
                record((f"OT + {type(sampler).__name__}", int(out.nfe)), pts, T_prime=float(tp), tau=float(tau),
                       seconds=time.perf_counter() - t0, ot_seconds=ot_sec, ot_certificate=cert)


def _conditional_rows(record, class_scores, schedule, train, labels, n, baselines, guidance, t_primes, taus, ot_nfe,
                      sampler, ot_tol, t_start, t_end, key, prepare):
    from jaxotdm.samplers import sample

    classes = [int(c) for c in np.unique(labels)]
    per = max(1, n // len(classes))
    requested = np.repeat(classes, per)
    d = train.shape[1]
    largest = {}
    for name, m, nfe, grid in baselines:
        largest[name] = max(largest.get(name, (0,))[0], nfe), m, grid
    for i, (name, (nfe, m, grid)) in enumerate(largest.items()):
        t0 = time.perf_counter()
        pts = [sample(m, class_scores.for_class(c, guidance), schedule, t_start=t_start, t_end=t_end, nfe=nfe,
                      grid=grid, key=jax.random.fold_in(key, 100 * i + c), shape=(per, d), dtype=train.dtype).points
               for c in classes]
        pts = jax.block_until_ready(jnp.concatenate(pts))
        record((name, nfe), pts, requested, conditional=True, guidance=guidance, seconds=time.perf_counter() - t0)
    for j, tp in enumerate(t_primes):
        t0 = time.perf_counter()
        cprior = prepare(schedule, train, labels, key=jax.random.fold_in(key, 5000 + j), t_prime=float(tp),
                         ot_tol=ot_tol)
        ot_sec = time.perf_counter() - t0
        certs = [float(p.certificate.max_relative_error) for p in cprior.priors if p.certificate is not None]
        for tau in taus:
            for b in ot_nfe:
                t0 = time.perf_counter()
                pts = [cprior.sample(class_scores, label=c, guidance=guidance, key=jax.random.fold_in(key, 7000 + c),
                                     num_samples=per, t_end=t_end, sampler=sampler, nfe=int(b), tau=float(tau),
                                     grid="uniform").points for c in classes]
                pts = jax.block_until_ready(jnp.concatenate(pts))
                record((f"OT + {type(sampler).__name__}", int(b)), pts, requested, conditional=True, T_prime=float(tp),
                       tau=float(tau), guidance=guidance, seconds=time.perf_counter() - t0, ot_seconds=ot_sec,
                       ot_certificate=max(certs) if certs else None)


def row_name(r: dict) -> str:
    """A file-name-safe name of a row."""
    s = r["method"].split(" (")[0].replace(" + ", "+").replace(" ", "-").replace("(", "").replace(")", "")
    if r.get("nfe") is not None:
        s += f"_nfe{r['nfe']}"
    if r.get("T_prime") is not None:
        s += f"_Tp{r['T_prime']:g}_tau{r['tau']:g}"
    return s + ("_cond" if r.get("conditional") else "")


def markdown_table(rows: list[dict], columns=TABLE3_COLUMNS) -> str:
    """The rows as a markdown table (``-`` where a column does not apply)."""

    def fmt(v):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "-"
        if isinstance(v, bool):
            return "yes" if v else "no"
        if isinstance(v, float):
            return f"{v:.3g}"
        return str(v)

    head = "| " + " | ".join(h for _, h in columns) + " |"
    sep = "|" + "---|" * len(columns)
    body = ["| " + " | ".join(fmt(r.get(k)) for k, _ in columns) + " |" for r in rows]
    return "\n".join([head, sep, *body])


def plot_quality_vs_nfe(rows: list[dict], path, *, title: str = "") -> None:
    """Sinkhorn divergence, classifier Frechet distance and memorisation ratio against NFE: one line per
    baseline sampler, markers for the OT rows, the control rows as horizontal lines (log NFE axis)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [("sinkhorn", "Sinkhorn divergence to held-out"), ("classifier_frechet", "classifier Frechet distance"),
               ("memorisation_ratio", "NN-train distance / held-out images'")]
    metrics = [(k, lab) for k, lab in metrics if any(r.get(k) is not None for r in rows)]
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics), 4.2))
    axes = np.atleast_1d(axes)
    for ax, (key, label) in zip(axes, metrics, strict=True):
        for cond, style in ((False, "-"), (True, ":")):
            sel = [r for r in rows if bool(r.get("conditional")) == cond and r.get(key) is not None]
            base = {}
            for r in sel:
                if r["nfe"] is not None and r.get("T_prime") is None:
                    base.setdefault(r["method"], []).append((r["nfe"], r[key]))
            for name, pts in base.items():
                pts.sort()
                ax.plot(*zip(*pts, strict=True), style, marker="o", ms=4,
                        label=name + (" (cond.)" if cond else ""))
            for r in sel:
                if r.get("T_prime") is not None:
                    ax.plot(r["nfe"], r[key], marker="*" if r["tau"] == 0 else "D", ms=9 if r["tau"] == 0 else 6,
                            ls="none", label=f"OT T'={r['T_prime']:g} tau={r['tau']:g}" + (" (cond.)" if cond else ""))
        for r, color in zip([r for r in rows if r["nfe"] is None], ("tab:green", "tab:red"), strict=False):
            if r.get(key) is not None:
                ax.axhline(r[key], color=color, ls="--", lw=1, label=r["method"])
        ax.set_xscale("log")
        values = [r[key] for r in rows if r.get(key) is not None]
        if key != "memorisation_ratio" and values and min(values) > 0:  # distances spanning decades
            ax.set_yscale("log")
        ax.set_xlabel("NFE (score evaluations per sample)")
        ax.set_ylabel(label)
    axes[0].legend(fontsize=6, ncol=2)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def table3_verdict(rows: list[dict], *, conditional: bool = False) -> str:
    """The table's conclusion in words: does the best OT + short-chain row beat the long chains (Sinkhorn
    divergence to held-out data), and does it do so by copying training images (memorisation columns
    against the two control rows)?"""
    sel = [r for r in rows if bool(r.get("conditional")) == conditional]
    ideal = next((r for r in rows if r["method"].startswith("held-out")), None)
    copy = next((r for r in rows if r["method"].startswith("training images")), None)
    ot = [r for r in sel if r.get("T_prime") is not None]
    base = [r for r in sel if r.get("T_prime") is None and r["nfe"] is not None]
    if not ot or not base or ideal is None or copy is None:
        return "Not enough rows for a verdict."
    best_ot = min(ot, key=lambda r: r["sinkhorn"])
    longest = max(base, key=lambda r: (r["nfe"], -r["sinkhorn"]))
    same = [r for r in base if r["nfe"] <= best_ot["nfe"]]
    best_same = min(same, key=lambda r: r["sinkhorn"]) if same else None
    what = "Class-conditional" if conditional else "Unconditional"
    beats_long = best_ot["sinkhorn"] < longest["sinkhorn"]
    text = [f"{what}: the best OT row (T'={best_ot['T_prime']:g}, tau={best_ot['tau']:g}, {best_ot['nfe']} NFE) has "
            f"Sinkhorn divergence {best_ot['sinkhorn']:.3g} to held-out data against {longest['sinkhorn']:.3g} for "
            f"{longest['method']} with {longest['nfe']} NFE, so it "
            + ("beats" if beats_long else "does not beat") + " the long chain"]
    if best_same is not None:
        text[-1] += (f" and {'beats' if best_ot['sinkhorn'] < best_same['sinkhorn'] else 'does not beat'} the best "
                     f"baseline at <= {best_ot['nfe']} NFE ({best_same['method']}, {best_same['sinkhorn']:.3g})")
    text[-1] += (f"; held-out images score {ideal['sinkhorn']:.3g} and training images + noise "
                 f"{copy['sinkhorn']:.3g}.")
    copying = (best_ot["near_copy_fraction"] > max(0.5, 3 * ideal["near_copy_fraction"])
               or best_ot["memorisation_ratio"] < 0.5 * ideal["memorisation_ratio"])
    text.append(f"Its samples lie at a median {best_ot['memorisation_ratio']:.2f} of held-out images' distance from "
                f"the training set (held-out images {ideal['memorisation_ratio']:.2f}, training images + noise "
                f"{copy['memorisation_ratio']:.2f}) and {100 * best_ot['near_copy_fraction']:.0f}% are near copies "
                f"(held-out images {100 * ideal['near_copy_fraction']:.0f}%; the long chain "
                f"{100 * longest['near_copy_fraction']:.0f}%): it "
                + ("does so largely by copying training images." if copying and beats_long else
                   "copies training images." if copying else "does not do so by copying training images."))
    return " ".join(text)
