"""``jaxotdm train``: train a score network on a toy set, digits, the MNIST subset or a local file.

Writes to ``--out``: ``checkpoint.msgpack`` (resumable bit-for-bit with ``--resume``), ``loss.png`` (the
loss curve and the periodic evaluations), and ``metrics.json``. Periodic evaluation reports the relative
L2 error of the EMA score against the exact score of the training set at three noise levels
(log-SNR 2, 0 and -2) and the denoising loss on the held-out split.

Example::

    jaxotdm train --data eight_gaussians --steps 2000 --out runs/8g
    jaxotdm train --data digits --network unet --steps 5000 --out runs/digits
    jaxotdm train --data runs/8g --resume ...      # continue a run up to a larger --steps
"""

from __future__ import annotations

import functools
import json
import math
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

SCHEDULES = ("ou", "vp", "subvp", "cosine", "ve", "edm")
PARAMETRISATIONS = ("noise", "data", "v", "score", "edm")
WEIGHTINGS = ("noise", "likelihood", "edm", "min-snr", "native")
EVAL_LOG_SNRS = (2.0, 0.0, -2.0)


def register(subparsers) -> None:
    from jaxotdm.data import TOY_2D

    p = subparsers.add_parser(
        "train",
        help="train a score network (denoising score matching)",
        description="Train a score network with denoising score matching; writes a checkpoint, loss.png "
        "and metrics.json to --out.",
    )
    d = p.add_argument_group("data")
    d.add_argument("--data", required=True, help=f"one of {', '.join(TOY_2D)}, digits, mnist, or a .npy/.npz/.csv file")
    d.add_argument("--num-points", type=int, default=2000, help="points of a toy 2-D set (default 2000)")
    d.add_argument("--key", default=None, help="array name inside an .npz file")
    d.add_argument("--labels-key", default=None, help="label array inside an .npz file (class conditioning)")
    d.add_argument("--scale", default=None, metavar="LO,HI", help="map values in [LO, HI] to [-1, 1] (local files)")
    d.add_argument("--image-shape", default=None, metavar="H,W,C", help="image shape for the U-Net (local files)")
    d.add_argument("--test-fraction", type=float, default=0.2, help="held-out fraction (default 0.2)")
    d.add_argument("--max-train", type=int, default=None, help="use at most this many training points")

    m = p.add_argument_group("model")
    m.add_argument("--schedule", choices=SCHEDULES, default="ou")
    m.add_argument("--network", choices=("mlp", "unet"), default="mlp")
    m.add_argument("--parametrisation", choices=PARAMETRISATIONS, default="noise")
    m.add_argument("--features", type=int, default=128, help="MLP width")
    m.add_argument("--depth", type=int, default=3, help="MLP residual blocks")
    m.add_argument("--channels", type=int, default=32, help="U-Net base channels")
    m.add_argument("--channel-mult", default=None, help="U-Net per-level multipliers, e.g. 1,2,2")
    m.add_argument("--attention", default="", help="U-Net resolutions with self-attention, e.g. 14,7")
    m.add_argument("--class-conditional", action="store_true", help="condition on labels (null label for CFG)")
    m.add_argument("--label-dropout", type=float, default=0.1)

    t = p.add_argument_group("training")
    t.add_argument("--weighting", choices=WEIGHTINGS, default="noise")
    t.add_argument("--t-min", type=float, default=1e-3, help="smallest training time")
    t.add_argument("--t-max", type=float, default=None, help="largest training time (default per schedule)")
    t.add_argument("--steps", type=int, default=2000)
    t.add_argument("--batch-size", type=int, default=256)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--ema-decay", type=float, default=0.999)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--float64", action="store_true", help="train in float64")

    o = p.add_argument_group("output")
    o.add_argument("--out", required=True, help="output folder")
    o.add_argument("--checkpoint-every", type=int, default=500)
    o.add_argument("--eval-every", type=int, default=500)
    o.add_argument("--eval-samples", type=int, default=1024)
    o.add_argument("--resume", action="store_true", help="continue from --out/checkpoint.msgpack")
    o.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _schedule(name: str):
    import jaxotdm.schedules as S

    return {"ou": S.OU(), "vp": S.VPLinear(), "subvp": S.SubVP(), "cosine": S.Cosine(), "ve": S.VE(), "edm": S.EDM()}[name]


def _default_t_max(name: str) -> float:
    return {"ou": 8.0, "vp": 1.0, "subvp": 1.0, "cosine": 0.999, "ve": 1.0, "edm": 80.0}[name]


def _ints(text: str, name: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ValueError(f"`{name}` must be comma-separated integers, got {text!r}.") from None
    return vals


def _load(args):
    from jaxotdm import data as D

    labels = None
    image_shape = None
    if args.data in D.TOY_2D:
        x = D.toy_2d(args.data, args.num_points, seed=args.seed)
    elif args.data == "digits":
        x, labels = D.load_digits(return_labels=True)
        image_shape = (8, 8, 1)
    elif args.data == "mnist":
        x, labels = D.load_mnist_subset(return_labels=True)
        image_shape = (28, 28, 1)
    else:
        path = Path(args.data)
        if path.suffix.lower() not in (".npy", ".npz", ".csv"):
            raise ValueError(
                f"`--data` must be a toy set ({', '.join(D.TOY_2D)}), digits, mnist or a .npy/.npz/.csv file, "
                f"got {args.data!r}."
            )
        x = D.load_points(path, key=args.key)
        if args.labels_key is not None:
            labels = D.load_labels(path, key=args.labels_key, num_points=x.shape[0])
        if args.scale:
            try:
                lo, hi = (float(v) for v in args.scale.split(","))
            except ValueError:
                raise ValueError(f"`--scale` must be LO,HI, got {args.scale!r}.") from None
            if not hi > lo:
                raise ValueError(f"`--scale` needs HI > LO, got {args.scale!r}.")
            x = D.to_unit_interval(x, lo, hi)
        image_shape = D.image_shape_for(x.shape[1])
    if args.image_shape:
        image_shape = _ints(args.image_shape, "--image-shape")
        if len(image_shape) != 3 or math.prod(image_shape) != x.shape[1]:
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
    return x_tr, x_te, y_tr, y_te, image_shape


def _build(args, x_tr, y_tr, image_shape):
    from jaxotdm import networks as N
    from jaxotdm import training as T

    schedule = _schedule(args.schedule)
    sigma_data = float(np.std(x_tr))
    num_classes = int(y_tr.max()) + 1 if (args.class_conditional and y_tr is not None) else None
    if args.network == "mlp":
        net = N.MLP(features=args.features, depth=args.depth, num_classes=num_classes)
    else:
        if image_shape is None:
            raise ValueError(f"`--network unet` needs image data; pass --image-shape H,W,C (data dim {x_tr.shape[1]}).")
        mult = _ints(args.channel_mult, "--channel-mult") if args.channel_mult else (
            (1, 2) if image_shape[0] <= 8 else (1, 2, 2) if image_shape[0] % 4 else (1, 2, 2, 2)
        )
        net = N.UNet(
            image_shape=tuple(image_shape),
            channels=args.channels,
            channel_mult=mult,
            attention_resolutions=_ints(args.attention, "--attention"),
            num_classes=num_classes,
        )
    param = {
        "noise": N.NoisePrediction(),
        "data": N.DataPrediction(),
        "v": N.VPrediction(),
        "score": N.ScorePrediction(),
        "edm": N.EDMPreconditioning(sigma_data=sigma_data),
    }[args.parametrisation]
    weighting = {
        "noise": T.NoiseMSE(),
        "likelihood": T.LikelihoodWeighting(),
        "edm": T.EDMWeighting(sigma_data=sigma_data),
        "min-snr": T.MinSNRWeighting(),
        "native": T.NativeMSE(),
    }[args.weighting]
    t_max = args.t_max if args.t_max is not None else _default_t_max(args.schedule)
    times = T.UniformTime(args.t_min, t_max) if args.weighting == "likelihood" else T.UniformLogSNR.between(
        schedule, args.t_min, t_max
    )
    model = N.ScoreModel(net, schedule, param, sigma_data=sigma_data)
    return T.DSMObjective(model, weighting, times, label_dropout=args.label_dropout), num_classes


@functools.partial(jax.jit, static_argnums=(1,))
def _val_loss(params, objective, x_te, key, y_te):
    return objective.loss(params, x_te, key, y_te)[0]


@functools.partial(jax.jit, static_argnums=(1, 4, 5))
def _score_errors(params, model, exact, x_tr, times, num_samples):
    from jaxotdm import training as T

    score = model.bind(params)
    return [
        T.score_relative_error(score, exact, x_tr, t, model.schedule, key=jax.random.key(7), num_samples=num_samples)
        for t in times
    ]


def _make_eval(objective, x_tr, x_te, y_te, args):
    """Held-out denoising loss and relative score errors of the EMA parameters (compiled once per process
    for a given objective and data shape, so a resumed run in the same process reuses them)."""
    import jaxotdm as jo

    model = objective.model
    schedule = model.schedule
    dtype = jnp.float64 if args.float64 else jnp.float32
    exact = jo.exact_score(jo.EmpiricalMeasure(jnp.asarray(x_tr, dtype)), schedule)
    times = tuple(
        float(schedule.t_from_log_snr(jnp.asarray(lam, jnp.float64 if jax.config.x64_enabled else jnp.float32)))
        for lam in EVAL_LOG_SNRS
    )
    xte = jnp.asarray(x_te, dtype)
    yte = None if y_te is None or getattr(model.network, "num_classes", None) is None else jnp.asarray(y_te)
    val_key = jax.random.key(args.seed + 1)
    xtr = jnp.asarray(x_tr, dtype)

    def evaluate(state):
        out = {"val_loss": float(_val_loss(state.ema_params, objective, xte, val_key, yte))}
        errs = _score_errors(state.ema_params, model, exact, xtr, times, args.eval_samples)
        for lam, err in zip(EVAL_LOG_SNRS, errs, strict=True):
            out[f"score_rel_err@logsnr={lam:g}"] = float(err)
        return out

    return evaluate


def _plot(path: Path, losses: np.ndarray, evaluations: list[dict], title: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.6))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 2, 1)
    steps = np.arange(1, len(losses) + 1)
    ax.plot(steps, losses, lw=0.5, alpha=0.4, label="loss")
    if len(losses) >= 10:
        w = max(1, len(losses) // 50)
        smooth = np.convolve(losses, np.ones(w) / w, mode="valid")
        ax.plot(steps[w - 1 :], smooth, lw=1.5, label=f"moving average ({w})")
    if evaluations:
        ax.plot([e["step"] for e in evaluations], [e["val_loss"] for e in evaluations], "o-", label="held-out (EMA)")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    ax2 = fig.add_subplot(1, 2, 2)
    keys = [k for k in (evaluations[0] if evaluations else {}) if k.startswith("score_rel_err")]
    for k in keys:
        ax2.plot([e["step"] for e in evaluations], [e[k] for e in evaluations], "o-", label=k.split("@")[1])
    ax2.set_yscale("log")
    ax2.set_xlabel("step")
    ax2.set_title("relative L2 error vs exact score (EMA)", fontsize=9)
    if keys:
        ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def run(args) -> int:
    from tqdm import tqdm

    from jaxotdm import training as T

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"`--out` {str(out)!r} exists and is not a folder.")
    if not args.resume and (out / T.CHECKPOINT_NAME).exists():
        raise ValueError(f"`--out` {str(out)!r} already holds a checkpoint; pass --resume or choose another folder.")
    if args.float64:
        jax.config.update("jax_enable_x64", True)
    x_tr, x_te, y_tr, y_te, image_shape = _load(args)
    dtype = np.float64 if args.float64 else np.float32
    x_tr, x_te = x_tr.astype(dtype), x_te.astype(dtype)
    objective, num_classes = _build(args, x_tr, y_tr, image_shape)
    evaluate = _make_eval(objective, x_tr, x_te, y_te, args)
    out.mkdir(parents=True, exist_ok=True)
    cli_config = {k: v for k, v in vars(args).items() if k not in ("func", "command", "steps", "resume", "no_progress",
                                                                    "out", "checkpoint_every", "eval_every")}
    bar = tqdm(total=args.steps, disable=args.no_progress, desc="train", file=sys.stderr, dynamic_ncols=True)

    def callback(step, metrics):
        if bar.n == 0 and step > 1:
            bar.update(step - 1)
        bar.update(1)
        if step % 10 == 0:
            bar.set_postfix(loss=f"{metrics['loss']:.4g}")

    status = 0
    message = "finished"
    try:
        res = T.fit(
            objective,
            x_tr,
            steps=args.steps,
            batch_size=min(args.batch_size, len(x_tr)),
            learning_rate=args.lr,
            seed=args.seed,
            labels=y_tr if num_classes is not None else None,
            ema_decay=args.ema_decay,
            checkpoint_dir=out,
            checkpoint_every=args.checkpoint_every,
            resume=args.resume,
            eval_every=args.eval_every,
            eval_fn=evaluate,
            callback=callback,
            config={"cli": cli_config},
        )
        losses, evaluations, final_step = res.losses, res.evaluations, int(res.state.step)
    except T.NonFiniteLossError as exc:
        bar.close()
        print(f"jaxotdm train: {exc}", file=sys.stderr)
        status, message = 1, str(exc)
        if exc.checkpoint is None:
            return status
        _, _, history = T.load_checkpoint(exc.checkpoint, exc.state)
        losses, evaluations, final_step = np.asarray(history["losses"]), history["evaluations"], exc.step
    bar.close()
    title = f"{args.data}: {args.network}, {args.schedule}, {args.parametrisation}/{args.weighting}"
    _plot(out / "loss.png", np.asarray(losses), evaluations, title)
    summary = {
        "status": message,
        "steps": final_step,
        "final_loss_mean_last_100": float(np.mean(losses[-100:])) if len(losses) else None,
        "evaluations": evaluations,
        "train_points": int(len(x_tr)),
        "test_points": int(len(x_te)),
        "config": cli_config,
    }
    (out / "metrics.json").write_text(json.dumps(summary, indent=2))
    if status == 0 and evaluations:
        last = evaluations[-1]
        errs = ", ".join(f"{k.split('@')[1]}: {v:.3g}" for k, v in last.items() if k.startswith("score_rel_err"))
        print(f"step {final_step}: held-out loss {last['val_loss']:.4g}; score relative error ({errs})")
        print(f"wrote {out / T.CHECKPOINT_NAME}, {out / 'loss.png'}, {out / 'metrics.json'}")
    return status
