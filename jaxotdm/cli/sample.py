"""``jaxotdm sample``: the analogue of Table 3 of arXiv 2410.13431 (NFE vs quality, with memorisation).

With ``--checkpoint DIR`` (a model folder from ``jaxotdm train``) it uses the *learned* score and the split
the model was trained on: ancestral DDPM (1000 steps), DDIM, DPM-Solver++(2M) and Heun at the requested NFEs
from the prior, and OT-accelerated sampling (one semi-discrete OT step onto the training split diffused to
``T'``, then Euler-Maruyama) over ``T'`` and ``tau``, unconditional and (class-conditional models)
conditional with guidance; plus two control rows, *held-out images* (the ideal) and *training images plus
tiny noise* (pure memorisation). It writes ``table3.md`` (with the conclusion in words), ``table3.json``,
``quality_vs_nfe.png`` and one grid per row in ``grids/``.

Without ``--checkpoint`` it uses the *exact* score of a training split of ``--dataset`` (no network): every
converged sampler then reproduces training points, and the memorisation columns show how far each row has
gone that way. It writes ``table3.md``, ``table3.json`` and one PNG grid per row.

Quality columns: Sinkhorn divergence and W2 to held-out data, k-NN precision/recall, mode-mixture ratio,
classifier Frechet distance (a small classifier's features -- *not* FID) and class accuracy; memorisation
columns: nearest-training distance relative to held-out images' and the near-copy fraction.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from jaxotdm.cli import _common as C

BASELINES = ("ddpm", "ddim", "heun", "dpm2", "dpmpp2m")
OT_SAMPLERS = ("em", "ddpm", "ddim")
_NAMES = {"ddpm": "DDPM", "ddim": "DDIM", "heun": "Heun", "dpm2": "DPM-Solver-2", "dpm3": "DPM-Solver-3",
          "dpmpp2m": "DPM-Solver++(2M)", "euler": "Euler", "em": "Euler-Maruyama"}
_GRIDS = {"ddpm": "uniform", "heun": "edm", "em": "uniform"}
# mode-dependent defaults: (exact score, learned score)
_DEFAULTS = {
    "samplers": ("ddpm,ddim,heun,dpm2", "ddpm,ddim,dpmpp2m,heun"),
    "t_prime": ("0.05,0.2", "0.02,0.05,0.1"),
    "tau": ("0,0.5", "0,0.02"),
    "ot_nfe": ("10,20", "50"),
    "ot_sampler": ("ddpm", "em"),
    "ot_tol": (0.25, 0.1),
    "guidance": (0.0, 1.0),
}


def method(name: str):
    """The sampler method object for a CLI name (ddpm, ddim, heun, dpm2, dpm3, dpmpp2m, euler, em)."""
    from jaxotdm import samplers as SM

    table = {"ddpm": SM.AncestralDDPM, "ddim": SM.DDIM, "heun": SM.Heun, "dpm2": SM.DPMSolver2,
             "dpm3": SM.DPMSolver3, "dpmpp2m": SM.DPMSolverPP2M, "euler": SM.Euler, "em": SM.EulerMaruyama}
    if name not in table:
        raise ValueError(f"unknown sampler {name!r}; expected one of {sorted(table)}.")
    return table[name]()


def _floats(s: str, name: str, *, positive: bool = False) -> list[float]:
    try:
        out = [float(v) for v in s.split(",") if v.strip()]
    except ValueError as exc:
        raise ValueError(f"`{name}` must be a comma-separated list of numbers, got {s!r}.") from exc
    if not out:
        raise ValueError(f"`{name}` must not be empty.")
    if any(not math.isfinite(v) for v in out):
        raise ValueError(f"`{name}` values must be finite, got {s!r}.")
    if any(v < 0 for v in out) or (positive and any(v <= 0 for v in out)):
        raise ValueError(f"`{name}` values must be {'> 0' if positive else '>= 0'}, got {s!r}.")
    return out


def _ints(s: str, name: str) -> list[int]:
    try:
        out = [int(v) for v in s.split(",") if v.strip()]
    except ValueError as exc:
        raise ValueError(f"`{name}` must be a comma-separated list of integers, got {s!r}.") from exc
    if not out:
        raise ValueError(f"`{name}` must not be empty.")
    if any(v < 1 for v in out):
        raise ValueError(f"`{name}` values must be >= 1, got {out}.")
    return out


def register(sub) -> None:
    p = sub.add_parser("sample", help="Table 3 analogue: samplers vs OT-accelerated sampling",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=None, help="a model folder from `jaxotdm train` (learned score)")
    C.add_dataset_args(p)
    p.add_argument("--labels", default=None, help="labels file (.npy/.npz/.csv) for --dataset PATH (conditional)")
    p.add_argument("--train-size", type=int, default=300,
                   help="exact score: training points used (stratified equally over classes when labelled; 0 = all)")
    p.add_argument("--num-samples", type=int, default=None,
                   help="samples per row (default: exact score 300; learned: the held-out half's size)")
    p.add_argument("--T", type=float, default=None, help="start time of the baselines (default: the schedule's)")
    p.add_argument("--t-end", type=float, default=1e-3)
    p.add_argument("--samplers", default=None, help=f"baselines among {BASELINES}")
    p.add_argument("--nfe", default="10,20,50", help="NFE list for the baselines other than DDPM")
    p.add_argument("--ddpm-steps", type=int, default=1000)
    p.add_argument("--t-prime", default=None, help="OT times T' (VP: 0.05 = DDPM step 50 of 1000)")
    p.add_argument("--tau", default=None, help="OT smoothing list (0 = hard map)")
    p.add_argument("--ot-nfe", default=None, help="reverse-chain NFE list after the OT step")
    p.add_argument("--ot-sampler", default=None, choices=OT_SAMPLERS, help="the chain after the OT step")
    p.add_argument("--ot-tol", type=float, default=None, help="OT max relative cell-mass error")
    p.add_argument("--conditional", default="on", choices=("on", "off"))
    p.add_argument("--guidance", type=float, default=None, help="classifier-free guidance of the conditional rows")
    p.add_argument("--control-noise", type=float, default=0.01,
                   help="learned: noise std added to the training images of the memorisation row (model units)")
    p.add_argument("--classifier-steps", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="jaxotdm-out/sample")
    p.add_argument("--quick", action="store_true", help="a small, fast table (fewer rows and samples)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier table in --out")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


# ------------------------------------------------------------------------------------------- validation
def resolve(args) -> dict:
    """Every option parsed and checked (before any work); mode-dependent defaults filled in."""
    learned = args.checkpoint is not None
    s = {k: (getattr(args, k) if getattr(args, k) is not None else v[int(learned)]) for k, v in _DEFAULTS.items()}
    if args.quick and learned:
        s.update(samplers=args.samplers or "ddpm,dpmpp2m", t_prime=args.t_prime or "0.05", tau=args.tau or "0,0.02")
    s["samplers"] = [x.strip() for x in s["samplers"].split(",") if x.strip()]
    for name in s["samplers"]:
        if name not in BASELINES:
            raise ValueError(f"`--samplers` entries must be among {BASELINES}, got {name!r}.")
    s["nfe"] = _ints("10,50" if args.quick and args.nfe == "10,20,50" else args.nfe, "--nfe")
    for name in s["samplers"]:
        per = method(name).evals_per_step
        bad = [b for b in s["nfe"] if b % per] if name != "ddpm" else []
        if bad:
            raise ValueError(f"`--nfe` values must be multiples of {per} for `--samplers` {name} ({per} score "
                             f"evaluations per step), got {bad}.")
    s["t_prime"] = _floats(s["t_prime"], "--t-prime", positive=True)
    s["tau"] = _floats(s["tau"], "--tau")
    s["ot_nfe"] = _ints(s["ot_nfe"], "--ot-nfe")
    per = method(s["ot_sampler"]).evals_per_step
    if any(b % per for b in s["ot_nfe"]):
        raise ValueError(f"`--ot-nfe` values must be multiples of {per} for `--ot-sampler` {s['ot_sampler']}.")
    if not (math.isfinite(s["ot_tol"]) and s["ot_tol"] > 0):
        raise ValueError(f"`--ot-tol` must be a finite number > 0, got {s['ot_tol']}.")
    if not math.isfinite(s["guidance"]) or s["guidance"] < 0:
        raise ValueError(f"`--guidance` must be a finite number >= 0, got {s['guidance']}.")
    for v, flag in ((args.t_end, "--t-end"), (args.control_noise, "--control-noise")):
        if not (math.isfinite(v) and v > 0):
            raise ValueError(f"`{flag}` must be a finite number > 0, got {v}.")
    if args.T is not None and not (math.isfinite(args.T) and args.T > args.t_end):
        raise ValueError(f"`--T` must be a finite number > --t-end ({args.t_end}), got {args.T}.")
    T = args.T if args.T is not None else 1.0
    bad = [tp for tp in s["t_prime"] if not args.t_end < tp < T]
    if bad:
        raise ValueError(f"`--t-prime` values must lie in (--t-end, --T) = ({args.t_end}, {T}), got {bad}.")
    for name, low in (("ddpm_steps", 1), ("classifier_steps", 1), ("train_size", 0), ("num_samples", 4),
                      ("max_points", 1)):
        v = getattr(args, name)
        if v is not None and v < low:
            raise ValueError(f"`--{name.replace('_', '-')}` must be an integer >= {low}, got {v}.")
    s["T"] = T
    return s


def _check_output(out: str, overwrite: bool):
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"`--out` {out!r} exists and is not a folder.")
    if (folder / "table3.json").exists() and not overwrite:
        raise ValueError(f"`--out` {out!r} already holds a table (table3.json); pass --overwrite or another --out.")
    return folder


# ------------------------------------------------------------------------------------------- exact score
def evaluate(samples, train, heldout, *, classifier=None, requested=None) -> dict:
    """Quality (vs held-out) and memorisation (vs train) of ``samples``; host floats (exact-score table)."""
    import jax.numpy as jnp

    from jaxotdm import metrics as M

    s = jnp.asarray(samples)
    out = {}
    sd = M.sinkhorn_estimate(s, heldout)
    out["sinkhorn"] = float(sd.divergence)
    out["w2"] = float(M.wasserstein2(s, heldout))
    k = min(3, len(s) - 1, len(heldout) - 1)
    pr = M.precision_recall(s, heldout, k=k)
    out["precision"], out["recall"] = float(pr.precision), float(pr.recall)
    mem = M.memorisation(s, train, heldout)
    out["mem_median_ratio"] = float(mem.median_ratio)
    out["near_copy_fraction"] = float(mem.near_copy_fraction)
    if classifier is not None:
        probs = classifier.probabilities(s)
        out["mode_mixture"] = float(M.mode_mixture_ratio(probs))
        out["classifier_frechet"] = float(M.classifier_frechet_distance(classifier, s, heldout))
        if requested is not None:
            out["class_accuracy"] = float(jnp.mean(jnp.argmax(probs, -1) == jnp.asarray(requested)))
    return out


def stratified_subset(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Indices of ``per_class`` points of every class (equal class sizes keep one compiled OT solver)."""
    rng = np.random.default_rng(seed)
    idx = [rng.permutation(np.nonzero(labels == c)[0])[:per_class] for c in np.unique(labels)]
    return np.sort(np.concatenate(idx))


def run_table3(
    train: np.ndarray,
    heldout: np.ndarray,
    *,
    train_labels: np.ndarray | None = None,
    heldout_labels: np.ndarray | None = None,
    num_samples: int = 300,
    T: float = 1.0,
    t_end: float = 1e-3,
    samplers: Sequence[str] = ("ddpm", "ddim", "heun", "dpm2"),
    nfe: Sequence[int] = (10, 20, 50),
    ddpm_steps: int = 1000,
    t_primes: Sequence[float] = (0.05, 0.2),
    taus: Sequence[float] = (0.0, 0.5),
    ot_nfe: Sequence[int] = (10, 20),
    ot_sampler: str = "ddpm",
    ot_tol: float = 0.25,
    conditional: bool = True,
    guidance: float = 0.0,
    classifier_steps: int = 1000,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> tuple[list[dict], dict]:
    """Runs the Table 3 analogue with the exact score of ``train``; returns ``(rows, samples_by_row)``.

    Each row: ``method``, ``nfe``, ``T_prime``, ``tau``, ``conditional``, the metrics of :func:`evaluate`
    and ``seconds`` (wall time of sampling, excluding the OT preparation, reported in ``ot_seconds``).
    """
    import jax
    import jax.numpy as jnp

    import jaxotdm as jo
    from jaxotdm import metrics as M
    from jaxotdm.cli import _table3_rows as R

    for name in samplers:
        if name not in BASELINES:
            raise ValueError(f"`--samplers` entries must be among {BASELINES}, got {name!r}.")
    if ot_sampler not in OT_SAMPLERS:
        raise ValueError(f"`--ot-sampler` must be one of {OT_SAMPLERS}, got {ot_sampler!r}.")
    say = progress or (lambda _msg: None)
    schedule = jo.VPLinear()
    xtr, xte = jnp.asarray(train), jnp.asarray(heldout)
    score = jo.exact_score(jo.EmpiricalMeasure(xtr), schedule)
    key = jax.random.key(seed)
    clf = None
    if train_labels is not None and heldout_labels is not None and len(np.unique(train_labels)) >= 2:
        say("classifier")
        clf = M.train_classifier(np.concatenate([train, heldout]), np.concatenate([train_labels, heldout_labels]),
                                 key=jax.random.fold_in(key, 999), num_steps=classifier_steps)
    rows, pics = [], {}

    def record(row, pts, requested=None):
        row |= evaluate(pts, xtr, xte, classifier=clf, requested=requested)
        rows.append(row)
        pics[_row_name(row)] = np.asarray(pts)
        say(_row_name(row))

    shape = (num_samples, xtr.shape[1])
    R.baseline_rows(record, score, schedule, samplers, nfe, ddpm_steps, T, t_end, shape, key)
    chain = method(ot_sampler)
    R.ot_rows(record, score, schedule, xtr, chain, ot_sampler, t_primes, taus, ot_nfe, ot_tol, t_end, num_samples, key)
    if conditional and train_labels is not None:
        R.conditional_rows(record, xtr, train_labels, schedule, num_samples, T, t_end, nfe, t_primes, taus, ot_nfe,
                           chain, ot_sampler, ot_tol, guidance, key)
    return rows, pics


def _row_name(r: dict) -> str:
    s = f"{r['method']}_nfe{r['nfe']}"
    if r.get("T_prime") is not None:
        s += f"_Tp{r['T_prime']:g}_tau{r['tau']:g}"
    return s + ("_cond" if r.get("conditional") else "")


COLUMNS = [("method", "method"), ("nfe", "NFE"), ("T_prime", "T'"), ("tau", "tau"), ("conditional", "cond"),
           ("sinkhorn", "Sinkhorn div"), ("w2", "W2"), ("precision", "prec"), ("recall", "recall"),
           ("mode_mixture", "mode mix"), ("classifier_frechet", "clf Frechet"), ("class_accuracy", "class acc"),
           ("mem_median_ratio", "NN ratio (train/held)"), ("near_copy_fraction", "near-copy frac"),
           ("seconds", "s")]


def markdown_table(rows: list[dict]) -> str:
    from jaxotdm.metrics.table3 import markdown_table as table

    return table(rows, COLUMNS)


# ------------------------------------------------------------------------------------------------- run
def _progress(args):
    if args.no_progress:
        return None, None
    from tqdm.auto import tqdm

    bar = tqdm(desc="jaxotdm sample", unit="row")
    return bar, (lambda msg: (bar.set_postfix_str(msg), bar.update(1)))


def run(args: argparse.Namespace) -> int:
    from jaxotdm._io import locked, remove_live_temporaries

    s = resolve(args)
    out = _check_output(args.out, args.overwrite)
    with locked(out, "table3", option="--out"), C.Interrupts("stop", "sample"):  # one writer per --out
        try:
            _check_output(args.out, args.overwrite)  # again, under the lock
            if args.checkpoint is not None:
                return _run_learned(args, s, out)
            return _run_exact(args, s, out)
        finally:
            remove_live_temporaries()  # what a failed run staged but did not commit


def _run_exact(args, s, out) -> int:
    from jaxotdm import data as D

    timer = C.Timer()
    x, shape, desc = C.load_dataset(args.dataset, max_points=args.max_points, npz_key=args.npz_key)
    labels = None
    if args.dataset == "digits":
        labels = D.load_digits(return_labels=True)[1]
    elif args.dataset == "mnist":
        labels = D.load_mnist_subset(return_labels=True)[1]
    elif args.labels is not None:
        labels = D.load_labels(args.labels, num_points=None)
    if labels is not None:
        labels = np.asarray(labels)[: len(x)]
        if len(labels) != len(x):
            raise ValueError(f"`--labels` holds {len(labels)} labels for {len(x)} points.")
        xtr, xte, ytr, yte = D.train_test_split(x, labels, test_fraction=0.2, seed=args.seed)
    else:
        xtr, xte = D.train_test_split(x, test_fraction=0.2, seed=args.seed)
        ytr = yte = None
    if args.train_size:
        if ytr is not None:
            idx = stratified_subset(ytr, max(1, args.train_size // len(np.unique(ytr))), args.seed)
            xtr, ytr = xtr[idx], ytr[idx]
        else:
            xtr = xtr[: args.train_size]
    num_samples = 300 if args.num_samples is None else args.num_samples
    bar, progress = _progress(args)
    try:
        rows, pics = run_table3(
            xtr, xte, train_labels=ytr, heldout_labels=yte, num_samples=num_samples, T=s["T"], t_end=args.t_end,
            samplers=s["samplers"], nfe=s["nfe"], ddpm_steps=args.ddpm_steps, t_primes=s["t_prime"], taus=s["tau"],
            ot_nfe=s["ot_nfe"], ot_sampler=s["ot_sampler"], ot_tol=s["ot_tol"], conditional=args.conditional == "on",
            guidance=s["guidance"], classifier_steps=args.classifier_steps, seed=args.seed, progress=progress,
        )
    finally:
        if bar is not None:
            bar.close()
    from jaxotdm._io import Transaction

    txn, final = Transaction(out, "table3", option="--out"), out  # the table: one output set (jaxotdm._io)
    out = txn.staging()
    config = {k: v for k, v in vars(args).items() if k != "func"}
    C.write_json(out / "table3.json", {"dataset": desc, "train_points": len(xtr), "heldout_points": len(xte),
                                       "score": "exact score of the training split", "config": config,
                                       "rows": rows, "total_seconds": timer()})
    md = [f"# Table 3 analogue ({desc})", "",
          f"Exact score of {len(xtr)} training points; metrics against {len(xte)} held-out points; "
          f"{num_samples} samples per row; VP-linear schedule, t_end = {args.t_end}. "
          "NFE counts score evaluations (the OT step costs none). 'clf Frechet' is a Frechet distance in a "
          "small classifier's features, not FID. NN ratio = median nearest-train / nearest-held-out "
          "distance; near-copy = fraction with ratio < 1/3. With the exact score of a finite training set "
          "a converged sampler reproduces training points (NN ratio -> 0).", "", markdown_table(rows), ""]
    (out / "table3.md").write_text("\n".join(md))
    txn.commit()  # the table before any figure
    out = txn.staging()
    if shape is not None:
        for name, pts in pics.items():
            C.figure_or_warning("sample", f"{name}.png", lambda n=name, p=pts: C.image_grid(
                np.clip(p[:64], -1, 1), shape, out / f"{n}.png", title=n))
        txn.commit()
    print(f"wrote {final / 'table3.md'} ({len(rows)} rows, {timer():.1f} s)")
    return 0


def _run_learned(args, s, out) -> int:
    import jax

    from jaxotdm.metrics import table3 as T3
    from jaxotdm.networks import load_model, load_split
    from jaxotdm.samplers import LearnedClassScores

    try:
        saved = load_model(args.checkpoint)
        split = load_split(args.checkpoint)
    except ValueError as exc:
        raise ValueError(f"`--checkpoint`: {exc}") from None
    timer = C.Timer()
    schedule = saved.model.schedule
    from jaxotdm.cli.generate import _schedule_start

    t_start = args.T if args.T is not None else _schedule_start(schedule)
    bad = [tp for tp in s["t_prime"] if not args.t_end < tp < t_start]
    if bad:
        raise ValueError(f"`--t-prime` values must lie in (--t-end, --T) = ({args.t_end}, {t_start}), got {bad}.")
    conditional = saved.model.num_classes is not None and args.conditional == "on" and split.train_labels is not None
    class_scores = None
    if conditional:
        classes = tuple(int(c) for c in np.unique(split.train_labels))
        class_scores = LearnedClassScores(saved.model, saved.params, classes=classes)
    baselines = [(_NAMES[n], method(n), args.ddpm_steps if n == "ddpm" else b, _GRIDS.get(n, "log_snr"))
                 for n in s["samplers"] for b in ([args.ddpm_steps] if n == "ddpm" else s["nfe"])]
    bar, progress = _progress(args)
    try:
        rows, pics = T3.sampler_table(
            saved.score(), split.train, split.heldout, key=jax.random.key(args.seed), train_labels=split.train_labels,
            heldout_labels=split.heldout_labels, class_scores=class_scores, guidance=s["guidance"],
            baselines=baselines, t_primes=s["t_prime"], taus=s["tau"], ot_nfe=s["ot_nfe"],
            ot_sampler=method(s["ot_sampler"]), ot_tol=s["ot_tol"], t_start=t_start, t_end=args.t_end,
            control_noise=args.control_noise, progress=progress,
        )
    finally:
        if bar is not None:
            bar.close()
    _write_learned(args, s, out, saved, split, rows, pics, timer(), conditional)
    return 0


def _write_learned(args, s, out, saved, split, rows, pics, seconds, conditional) -> None:
    from jaxotdm._io import Transaction
    from jaxotdm.metrics import table3 as T3

    txn, final = Transaction(out, "table3", option="--out"), out  # the table: one output set (jaxotdm._io)
    out = txn.staging()
    (out / "grids").mkdir(exist_ok=True)
    desc = f"{saved.data.get('dataset', 'data')} ({len(split.train)} training / {len(split.heldout)} held-out points)"
    config = {k: v for k, v in vars(args).items() if k != "func"}
    C.write_json(out / "table3.json", {"dataset": desc, "checkpoint": args.checkpoint, "score": "learned",
                                       "config": config, "settings": s, "rows": rows, "total_seconds": seconds})
    txn.commit()  # the results before any figure
    out = txn.staging()
    (out / "grids").mkdir(exist_ok=True)
    C.figure_or_warning("sample", "quality_vs_nfe.png", lambda: T3.plot_quality_vs_nfe(
        rows, out / "quality_vs_nfe.png", title=f"Table 3 analogue, learned score: {desc}"))
    n = next(r["num_samples"] for r in rows)
    verdict = T3.table3_verdict(rows)
    if conditional:
        verdict += "\n\n" + T3.table3_verdict(rows, conditional=True)
    md = [f"# Table 3 analogue with a learned score: {desc}", "",
          f"Model folder `{args.checkpoint}`; {n} samples per row, measured against one half of the held-out split "
          "(the other half is the *ideal* control row); the *memorisation* control row is as many training images "
          f"plus Gaussian noise of std {args.control_noise} (model units). NFE counts score evaluations (the OT "
          "step costs none). 'clf Frechet' is a Frechet distance in a small classifier's features, not FID. "
          "'NN-train / held-out's' is the samples' median distance to the nearest training image over the same "
          "median for held-out images (1 = as novel as fresh data, 0 = copies); near-copy = closer than a third "
          f"of that. Conditional rows use guidance {s['guidance']:g}.", "", "## Conclusion", "", verdict, "",
          "## Table", "", T3.markdown_table(rows), "", "![quality vs NFE](quality_vs_nfe.png)", ""]
    (out / "table3.md").write_text("\n".join(md))
    shape = saved.data.get("shape")
    if shape is not None:
        for name, pts in pics.items():
            C.figure_or_warning("sample", f"grids/{name}.png", lambda n=name, p=pts: C.image_grid(
                np.clip(p[:64], -1, 1), tuple(shape[:2]), out / "grids" / f"{n}.png", title=n))
    txn.commit()
    print(f"wrote {final / 'table3.md'} ({len(rows)} rows, {seconds:.1f} s)\n{verdict}")
