"""``jaxotdm sample``: the analogue of Table 3 of arXiv 2410.13431 (NFE vs quality, with memorisation), with
verdicts that survive a statistician.

With ``--checkpoint DIR`` (a model folder from ``jaxotdm train``) it uses the *learned* score and the split the
model was trained on; without it, the *exact* score of a training split of ``--dataset`` (no network: every
converged sampler then reproduces training points, and the memorisation columns show it). Rows: ancestral
DDPM (``--ddpm-steps``, the long chain), DDIM, DPM-Solver(++) and Heun at the requested NFEs from the prior,
and OT-accelerated sampling (one semi-discrete OT step onto the training split diffused to ``T'``, then a
short chain) over ``T'`` and ``tau``; unconditional and, for labelled data, class-conditional.

Every row is drawn ``--repetitions`` times (fresh sampler seeds and a fresh halving of the held-out split:
half A is the ideal row, half B the reference of every row), next to known-defect control rows (held-out data
shrunk, locally averaged, blurred, Gaussian-fitted, half the classes, noisy; training images + tiny noise for
memorisation). The metric that decides is the first one that ranks real held-out data above every defect at
this sample size (KID in a small classifier's features on digits); verdicts against the long chain are
"better", "worse" or "not resolvable at this size" from paired 95% t-intervals, and only after three sanity
checks pass. It writes ``table3.md`` (conclusion, sanity checks, table, validity table), ``table3.json``,
``quality_vs_nfe.png`` and one grid per row in ``grids/`` (image data).
"""

from __future__ import annotations

import argparse
import math
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
    "repetitions": (10, 10),
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
    p.add_argument("--test-fraction", type=float, default=0.2,
                   help="exact score: held-out fraction of the dataset (two halves of --num-samples are needed)")
    p.add_argument("--num-samples", type=int, default=None,
                   help="samples per row and repetition (default: half the held-out split)")
    p.add_argument("--repetitions", type=int, default=None,
                   help="paired repetitions per row (default 10; --quick 4): fresh seeds and held-out halving")
    p.add_argument("--T", type=float, default=None, help="start time of the baselines (default: exact score 1.0, VP-linear's t_max; learned: 0.99 t_max of the "
                        "model's schedule, 8 for OU, 80 for EDM)")
    p.add_argument("--t-end", type=float, default=1e-3, help="every chain's end time")
    p.add_argument("--samplers", default=None, help=f"baselines among {', '.join(BASELINES)} (default: exact score {_DEFAULTS['samplers'][0]}; learned {_DEFAULTS['samplers'][1]})")
    p.add_argument("--nfe", default="10,20,50", help="NFE list for the baselines other than DDPM")
    p.add_argument("--ddpm-steps", type=int, default=1000, help="steps of the ancestral DDPM chain (the long chain)")
    p.add_argument("--t-prime", default=None, help=f"OT times T' (VP: 0.05 = DDPM step 50 of 1000; default: exact score {_DEFAULTS['t_prime'][0]}; learned {_DEFAULTS['t_prime'][1]})")
    p.add_argument("--tau", default=None, help=f"OT smoothing list (0 = hard map; default: exact score {_DEFAULTS['tau'][0]}; learned {_DEFAULTS['tau'][1]})")
    p.add_argument("--ot-nfe", default=None, help=f"reverse-chain NFE list after the OT step (default: exact score {_DEFAULTS['ot_nfe'][0]}; learned {_DEFAULTS['ot_nfe'][1]})")
    p.add_argument("--ot-sampler", default=None, choices=OT_SAMPLERS, help=f"the chain after the OT step (default: exact score {_DEFAULTS['ot_sampler'][0]}; learned {_DEFAULTS['ot_sampler'][1]})")
    p.add_argument("--ot-max-points", type=int, default=None,
                   help="OT rows: solve onto at most N training points (a random subset, stratified over classes; "
                        "stated in table3.json as ot_targets) (default: the whole training split)")
    p.add_argument("--ot-tol", type=float, default=None, help=f"OT max relative cell-mass error (default: exact score {_DEFAULTS['ot_tol'][0]}; learned {_DEFAULTS['ot_tol'][1]})")
    p.add_argument("--conditional", default="on", choices=("on", "off"),
                   help="the class-conditional rows (labelled data; a class-conditional model for --checkpoint)")
    p.add_argument("--guidance", type=float, default=None, help=f"classifier-free guidance of the conditional rows (default: exact score {_DEFAULTS['guidance'][0]}; learned {_DEFAULTS['guidance'][1]})")
    p.add_argument("--control-noise", type=float, default=0.01,
                   help="noise std added to the training images of the memorisation row (model units)")
    p.add_argument("--classifier-steps", type=int, default=2000,
                   help="training steps of the classifier whose features KID and the Frechet distance use")
    p.add_argument("--seed", type=int, default=0, help="PRNG seed (split, classifier, samplers, halvings)")
    p.add_argument("--out", default="jaxotdm-out/sample", help="output folder (table3.md, table3.json, figures)")
    p.add_argument("--quick", action="store_true", help="a small, fast table (fewer rows and samples)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier table in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


# ------------------------------------------------------------------------------------------- validation
def resolve(args) -> dict:
    """Every option parsed and checked (before any work); mode-dependent defaults filled in."""
    learned = args.checkpoint is not None
    s = {k: (getattr(args, k) if getattr(args, k) is not None else v[int(learned)]) for k, v in _DEFAULTS.items()}
    if args.quick:
        s.update(samplers=args.samplers or "ddpm,dpmpp2m", t_prime=args.t_prime or "0.05", tau=args.tau or "0",
                 repetitions=args.repetitions or 4)
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
    if not (math.isfinite(args.test_fraction) and 0 < args.test_fraction < 1):
        raise ValueError(f"`--test-fraction` must be a number in (0, 1), got {args.test_fraction}.")
    for name, low in (("ddpm_steps", 1), ("classifier_steps", 1), ("train_size", 0), ("num_samples", 4),
                      ("max_points", 1), ("repetitions", 2), ("ot_max_points", 2)):
        v = getattr(args, name)
        if v is not None and v < low:
            raise ValueError(f"`--{name.replace('_', '-')}` must be an integer >= {low}, got {v}.")
    if not isinstance(s["repetitions"], int) or s["repetitions"] < 2:
        raise ValueError(f"`--repetitions` must be an integer >= 2, got {s['repetitions']}.")
    s["T"] = T
    return s


def _check_output(out: str, overwrite: bool):
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"`--out` {out!r} exists and is not a folder.")
    if (folder / "table3.json").exists() and not overwrite:
        raise ValueError(f"`--out` {out!r} already holds a table (table3.json); pass --overwrite or another --out.")
    return folder


# ------------------------------------------------------------------------------------------- the study
def stratified_subset(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Indices of ``per_class`` points of every class (equal class sizes keep one compiled OT solver)."""
    rng = np.random.default_rng(seed)
    idx = [rng.permutation(np.nonzero(labels == c)[0])[:per_class] for c in np.unique(labels)]
    return np.sort(np.concatenate(idx))


def settings(args, s, t_start):
    """The :class:`~jaxotdm.studies.Table3Settings` of the parsed options."""
    from jaxotdm.studies import ControlSettings
    from jaxotdm.studies.table3 import Baseline, Table3Settings

    baselines = tuple(Baseline(_NAMES[n], method(n), args.ddpm_steps if n == "ddpm" else b, _GRIDS.get(n, "log_snr"))
                      for n in s["samplers"] for b in ([args.ddpm_steps] if n == "ddpm" else s["nfe"]))
    return Table3Settings(baselines=baselines, t_primes=tuple(s["t_prime"]), taus=tuple(s["tau"]),
                          ot_nfe=tuple(s["ot_nfe"]), ot_sampler=method(s["ot_sampler"]), ot_tol=s["ot_tol"],
                          t_start=t_start, t_end=args.t_end, guidance=s["guidance"], repetitions=s["repetitions"],
                          num_samples=args.num_samples, ot_max_points=args.ot_max_points,
                          controls=ControlSettings(memorisation_noise=args.control_noise))


def _exact_problem(args):
    """The exact score of a training split of ``--dataset`` and its held-out split."""
    import jaxotdm as jo
    from jaxotdm import data as D
    from jaxotdm.networks import DataSplit
    from jaxotdm.samplers import ExactClassScores

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
        xtr, xte, ytr, yte = D.train_test_split(x, labels, test_fraction=args.test_fraction, seed=args.seed)
    else:
        xtr, xte = D.train_test_split(x, test_fraction=args.test_fraction, seed=args.seed)
        ytr = yte = None
    if args.train_size:
        if ytr is not None:
            idx = stratified_subset(ytr, max(1, args.train_size // len(np.unique(ytr))), args.seed)
            xtr, ytr = xtr[idx], ytr[idx]
        else:
            xtr = xtr[: args.train_size]
    schedule = jo.VPLinear()
    score = jo.exact_score(jo.EmpiricalMeasure(xtr), schedule)
    class_scores = None
    if ytr is not None and args.conditional == "on" and len(np.unique(ytr)) >= 2:
        class_scores = ExactClassScores.from_data(xtr, ytr, schedule)
    about = (f"{desc}: exact score of {len(xtr)} training points (VP-linear schedule); {len(xte)} held-out points")
    return score, DataSplit(xtr, ytr, xte, yte), class_scores, shape, about, 1.0


def _learned_problem(args):
    from jaxotdm.networks import load_model, load_split
    from jaxotdm.samplers import LearnedClassScores
    from jaxotdm.studies.table3 import default_start_time

    try:
        saved = load_model(args.checkpoint)
        split = load_split(args.checkpoint)
    except ValueError as exc:
        raise ValueError(f"`--checkpoint`: {exc}") from None
    class_scores = None
    if saved.model.num_classes is not None and args.conditional == "on" and split.train_labels is not None:
        classes = tuple(int(c) for c in np.unique(split.train_labels))
        class_scores = LearnedClassScores(saved.model, saved.params, classes=classes)
    shape = saved.data.get("shape")
    about = (f"{saved.data.get('dataset', 'data')}: learned score `{args.checkpoint}`; {len(split.train)} training / "
             f"{len(split.heldout)} held-out points")
    return saved.score(), split, class_scores, (tuple(shape[:2]) if shape else None), about, \
        default_start_time(saved.model.schedule)


# ------------------------------------------------------------------------------------------------- run
def _progress(args):
    if args.no_progress:
        return None, None
    from tqdm.auto import tqdm

    bar = tqdm(desc="jaxotdm sample", unit="step")
    return bar, (lambda msg: (bar.set_postfix_str(msg), bar.update(1)))


def run(args: argparse.Namespace) -> int:
    from jaxotdm._io import locked, remove_live_temporaries

    s = resolve(args)
    out = _check_output(args.out, args.overwrite)
    with locked(out, "table3", option="--out"), C.Interrupts("stop", "sample"):  # one writer per --out
        try:
            _check_output(args.out, args.overwrite)  # again, under the lock
            return _run(args, s, out)
        finally:
            remove_live_temporaries()  # what a failed run staged but did not commit


def _run(args, s, out) -> int:
    import jax

    from jaxotdm.metrics import train_classifier
    from jaxotdm.studies import table3 as T3

    timer = C.Timer()
    problem = _learned_problem if args.checkpoint is not None else _exact_problem
    score, split, class_scores, shape, about, default_start = problem(args)
    t_start = args.T if args.T is not None else default_start
    bad = [tp for tp in s["t_prime"] if not args.t_end < tp < t_start]
    if bad:
        raise ValueError(f"`--t-prime` values must lie in (--t-end, --T) = ({args.t_end}, {t_start}), got {bad}.")
    cfg = settings(args, s, t_start)
    from jaxotdm.studies.metric_validity import check_split

    check_split(split.heldout, cfg.num_samples)  # a too-small held-out split is refused before any work
    key = jax.random.key(args.seed)
    classifier = None
    if split.train_labels is not None and len(np.unique(split.train_labels)) >= 2:
        classifier = train_classifier(split.train, split.train_labels, key=jax.random.fold_in(key, 1),
                                      num_steps=args.classifier_steps)
    bar, progress = _progress(args)
    try:
        result = T3.run_table3(score, split, key=jax.random.fold_in(key, 2), settings=cfg, class_scores=class_scores,
                           classifier=classifier, image_shape=shape, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    _write(args, out, result, about, shape, timer())
    return 0


def _write(args, out, result, about, shape, seconds) -> None:
    from jaxotdm._io import Transaction
    from jaxotdm.studies import table3 as T3

    final = out
    txn = Transaction(out, "table3", option="--out")  # the table: one output set (jaxotdm._io)
    out = txn.staging()
    config = {k: v for k, v in vars(args).items() if k != "func"}
    C.write_json(out / "table3.json", {"about": about, "config": config, **T3.table3_json(result),
                                       "total_seconds": seconds})
    title = f"Table 3 analogue: {about}"
    (out / "table3.md").write_text(T3.table3_markdown(result, title=title))
    txn.commit()  # the results before any figure
    out = txn.staging()
    C.figure_or_warning("sample", "quality_vs_nfe.png",
                        lambda: T3.plot_table3(result, out / "quality_vs_nfe.png", title=title))
    if shape is not None:
        (out / "grids").mkdir(exist_ok=True)
        for name, pts in result.examples.items():
            C.figure_or_warning("sample", f"grids/{name}.png", lambda n=name, p=pts: C.image_grid(
                np.clip(p, -1, 1), tuple(shape[:2]), out / "grids" / f"{n}.png", title=n))
    txn.commit()
    print(f"wrote {final / 'table3.md'} ({len(result.rows)} rows x {result.repetitions} repetitions, "
          f"{seconds:.1f} s)")
    for conditional in sorted({r.conditional for r in result.samplers}):
        print(result.headline(conditional))
