"""``jaxotdm generate``: draw samples from a trained model folder (``jaxotdm train``) and write them in the
data's own units.

Writes ``--out FILE.npy`` (``(N, d)`` float32, e.g. digits pixels in 0-16, MNIST in 0-255), a PNG grid
(images) or scatter plot (2-D points) beside it (``FILE.png``) and ``FILE.json`` (the settings, the NFE and
the wall time). With ``--ot-prior`` the samples come from the paper's Algorithm 2: one semi-discrete OT
step from ``N(0, I)`` onto the training split diffused to ``--t-prime``, then ``--nfe`` steps of the sampler
from ``T'`` (Euler-Maruyama by default); with ``--class`` too, the OT map of that class's training points
and the class-conditional chain (guided with ``--guidance``). The training split is rebuilt from the model
folder offline. ``--ot-max-points N`` takes a random subset of ``N`` training points (drawn from ``--seed``) as
the OT targets (cost grows with the number of targets); the JSON records the subset. The solved OT prior is
saved in the model folder (``ot_priors/<key>.npz``, keyed by the OT problem: the targets, the schedule, T', the
tolerance and the seed) and later calls with the same problem reuse it instead of solving again
(``--no-ot-cache``: solve anyway, and save nothing).

Example::

    jaxotdm generate --checkpoint runs/digits --num-samples 1000 --out samples.npy
    jaxotdm generate --checkpoint runs/digits-cond --class 3 --guidance 1 --out threes.npy
    jaxotdm generate --checkpoint runs/digits --ot-prior --t-prime 0.05 --nfe 50 --out ot.npy
    jaxotdm generate --checkpoint runs/mnist --ot-prior --ot-max-points 2000 --out ot2k.npy
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

SAMPLERS = ("dpmpp2m", "ddim", "heun", "euler", "dpm2", "dpm3", "ddpm", "em")
GRIDS = ("log_snr", "uniform", "edm", "ddpm")
DEFAULT_GRID = {"dpmpp2m": "log_snr", "ddim": "log_snr", "dpm2": "log_snr", "dpm3": "log_snr", "heun": "edm",
                "euler": "log_snr", "ddpm": "uniform", "em": "uniform"}


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "generate",
        help="draw samples from a trained model folder (optionally with the OT prior of Algorithm 2)",
        description=__doc__.split("\n\n")[0] + " " + __doc__.split("\n\n")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--checkpoint", required=True,
                   help="a model folder written by `jaxotdm train` (the folder, not a file inside it)")
    p.add_argument("--sampler", choices=SAMPLERS, default=None,
                   help="sampler (default: dpmpp2m; em with --ot-prior, the paper's chain)")
    p.add_argument("--nfe", type=int, default=50, help="score evaluations per sample")
    p.add_argument("--grid", choices=GRIDS, default=None, help="time grid (default: the sampler's own)")
    p.add_argument("--num-samples", type=int, default=64, help="number of samples")
    p.add_argument("--out", required=True, help="output .npy file (a .png and a .json are written beside it)")
    p.add_argument("--seed", type=int, default=0, help="PRNG seed")
    p.add_argument("--class", dest="label", type=int, default=None,
                   help="class to generate (conditional models; default: unconditional)")
    p.add_argument("--guidance", type=float, default=None,
                   help="classifier-free guidance scale w (needs --class; default: 0, no guidance)")
    p.add_argument("--T", dest="t_start", metavar="T", type=float, default=None,
                   help="start time of the chain without --ot-prior (default: the schedule's usual: ou 8, edm 80, 1 "
                        "for an unbounded schedule, else 0.99 t_max)")
    p.add_argument("--t-end", type=float, default=1e-3, help="end time of the chain")
    p.add_argument("--ot-prior", action="store_true",
                   help="Algorithm 2: OT step to --t-prime, then the chain from T' (not from --T)")
    p.add_argument("--t-prime", type=float, default=None,
                   help="OT time T' (default: 0.05 for vp/subvp models, = DDPM step 50 of 1000; required otherwise)")
    p.add_argument("--tau", type=float, default=None, help="OT smoothing (0 = hard map; default: 0)")
    p.add_argument("--ot-tol", type=float, default=0.1, help="OT max relative cell-mass error")
    p.add_argument("--ot-max-points", type=int, default=None,
                   help="with --ot-prior: OT onto a random subset of this many training points (drawn from --seed; "
                        "default: all of them)")
    p.add_argument("--no-ot-cache", action="store_true",
                   help="with --ot-prior: solve the OT problem even if the model folder holds its solution, and "
                        "save nothing")
    p.add_argument("--clip", action="store_true", help="clip samples to the data's range (e.g. 0-16)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--no-progress", action="store_true",
                   help="print no progress (phases and the OT solve's iterations on stderr); the result line stays")
    p.set_defaults(func=run)


def _finite(v, flag):
    if v is not None and not math.isfinite(v):
        raise ValueError(f"`{flag}` must be a finite number, got {v}.")


def check(args):
    """Validates every option (and the model folder) before any sampling; returns the loaded model and the
    resolved settings."""
    from jaxotdm.networks import load_model

    out = Path(args.out)
    if out.suffix.lower() != ".npy":
        raise ValueError(f"`--out` must be a .npy file, got {args.out!r}.")
    siblings = [out, out.with_suffix(".png"), out.with_suffix(".json")]
    if not args.overwrite:
        for f in siblings:
            if f.exists():
                raise ValueError(f"`--out`: {str(f)!r} exists; pass --overwrite to replace it.")
    if out.parent != Path("") and out.parent.exists() and not out.parent.is_dir():
        raise ValueError(f"`--out`: {str(out.parent)!r} is not a folder.")
    if args.nfe < 1:
        raise ValueError(f"`--nfe` must be an integer >= 1, got {args.nfe}.")
    if args.num_samples < 1:
        raise ValueError(f"`--num-samples` must be an integer >= 1, got {args.num_samples}.")
    for v, flag in ((args.guidance, "--guidance"), (args.t_start, "--T"), (args.t_end, "--t-end"),
                    (args.t_prime, "--t-prime"), (args.tau, "--tau"), (args.ot_tol, "--ot-tol")):
        _finite(v, flag)
    if args.guidance is not None and args.guidance < 0:
        raise ValueError(f"`--guidance` must be >= 0, got {args.guidance}.")
    if args.guidance is not None and args.label is None:
        raise ValueError("`--guidance` needs `--class` (guidance steers towards a class).")
    if not args.ot_prior:
        for v, flag in ((args.t_prime, "--t-prime"), (args.tau, "--tau"), (args.ot_max_points, "--ot-max-points")):
            if v is not None:
                raise ValueError(f"`{flag}` applies with `--ot-prior` only.")
        if args.no_ot_cache:
            raise ValueError("`--no-ot-cache` applies with `--ot-prior` only.")
    if args.ot_max_points is not None and args.ot_max_points < 2:
        raise ValueError(f"`--ot-max-points` must be an integer >= 2, got {args.ot_max_points}.")
    if args.tau is not None and args.tau < 0:
        raise ValueError(f"`--tau` must be >= 0, got {args.tau}.")
    if not args.ot_tol > 0:
        raise ValueError(f"`--ot-tol` must be > 0, got {args.ot_tol}.")
    if not args.t_end > 0:
        raise ValueError(f"`--t-end` must be > 0, got {args.t_end}.")
    try:
        saved = load_model(args.checkpoint)
    except ValueError as exc:
        raise ValueError(f"`--checkpoint`: {exc}") from None
    schedule = saved.model.schedule
    num_classes = saved.model.num_classes
    if args.label is not None:
        if num_classes is None:
            raise ValueError("`--class`: the model in --checkpoint is not class-conditional (train it with "
                             "--class-conditional).")
        if not 0 <= args.label < num_classes:
            raise ValueError(f"`--class` must be in [0, {num_classes}) for this model, got {args.label}.")
    sampler = args.sampler or ("em" if args.ot_prior else "dpmpp2m")
    from jaxotdm.cli.sample import method
    from jaxotdm.studies.table3 import default_start_time

    m = method(sampler)
    if args.nfe % m.evals_per_step:
        raise ValueError(f"`--nfe` must be a multiple of {m.evals_per_step} for --sampler {sampler}, got {args.nfe}.")
    t_start = default_start_time(schedule) if args.t_start is None else args.t_start
    if not (0 < t_start < schedule.t_max):
        raise ValueError(f"`--T` must be in (0, {schedule.t_max}) for the model's schedule, got {t_start}.")
    t_prime = None
    if args.ot_prior:
        if args.t_prime is None:
            if not math.isinf(schedule.t_max) or type(schedule).__name__ not in ("VPLinear", "SubVP"):
                raise ValueError("`--t-prime` is required with `--ot-prior` for this model's schedule.")
            t_prime = 0.05
        else:
            t_prime = args.t_prime
        if not (args.t_end < t_prime < t_start):
            raise ValueError(f"`--t-prime` must be in (--t-end, --T) = ({args.t_end}, {t_start}), got {t_prime}.")
        if saved.data.get("source") is None:
            raise ValueError("`--ot-prior` needs the training data, but --checkpoint does not record it.")
    elif not args.t_end < t_start:
        raise ValueError(f"`--t-end` must be < --T ({t_start}), got {args.t_end}.")
    grid = args.grid or DEFAULT_GRID[sampler]
    return saved, {"sampler": sampler, "method": m, "grid": grid, "t_start": t_start, "t_prime": t_prime,
                   "tau": 0.0 if args.tau is None else args.tau}


def _reporter(args):
    """``(say, ot_progress)``: the CLI's progress output on stderr (phase lines, and an OT solve bar updated
    at every solver iteration); both silent with ``--no-progress`` (then ``ot_progress`` is ``None``)."""
    if args.no_progress:
        return (lambda _msg: None), None

    def say(msg):
        print(f"jaxotdm generate: {msg}", file=sys.stderr, flush=True)

    def ot_progress(p):
        print(f"jaxotdm generate: OT solve ({p.solver}) iteration {p.iteration}: max relative cell-mass error "
              f"{p.error:.3g} (target {args.ot_tol:g}), {p.num_samples} samples", file=sys.stderr, flush=True)

    return say, ot_progress


def generate(saved, s, args):
    """The samples (model space, ``(N, d)``) and the NFE, per the resolved settings ``s``."""
    import jax
    import jax.numpy as jnp

    from jaxotdm import samplers as SM
    from jaxotdm.networks import load_split

    key = jax.random.key(args.seed)
    d = int(saved.data["dim"])
    model, params = saved.model, saved.params
    label = args.label
    guidance = 0.0 if args.guidance is None else args.guidance
    score = model.bind(params, labels=label, guidance=guidance if label is not None else 0.0)
    say, ot_progress = _reporter(args)
    if not args.ot_prior:
        say(f"sampling {args.num_samples} x {d} with {s['sampler']}, {args.nfe} NFE from T={s['t_start']:g} ...")
        out = SM.sample(s["method"], score, model.schedule, t_start=s["t_start"], t_end=args.t_end, nfe=args.nfe,
                        grid=s["grid"], key=key, shape=jax.ShapeDtypeStruct((args.num_samples, d), jnp.float32),
                        throw=False)  # as before: a diverged run warns and its samples are still written
        return np.asarray(out.points), int(out.nfe), {}
    split = load_split(args.checkpoint)
    points = split.train
    if label is not None:
        if split.train_labels is None:
            raise ValueError("`--class` with `--ot-prior` needs a labelled training split.")
        points = points[np.asarray(split.train_labels) == label]
        if len(points) == 0:
            raise ValueError(f"`--class` {label} has no training points.")
    k_prep, k_sample = jax.random.split(key)
    available = len(points)
    if args.ot_max_points is not None and args.ot_max_points < available:
        pick = jax.random.permutation(jax.random.fold_in(key, SUBSET_STREAM), available)[: args.ot_max_points]
        points = points[np.sort(np.asarray(pick))]
    extra = {"ot_max_points": args.ot_max_points, "ot_training_points": int(available), "ot_targets": int(len(points)),
             "ot_subset": (f"random subset of {len(points)} of the {available} training points (seed {args.seed})"
                           if len(points) < available else f"all {available} training points")}
    cache = None if args.no_ot_cache else _cache_path(args.checkpoint, model.schedule, points, s["t_prime"],
                                                      args.ot_tol, args.seed)
    prior = None if cache is None else _load_prior(cache, model.schedule)
    reused = prior is not None
    if reused:
        say(f"OT prior: reusing the solution saved in {cache} (same targets, T'={s['t_prime']:g}, tolerance "
            f"{args.ot_tol:g}, seed {args.seed})")
    else:
        say(f"OT prior: semi-discrete OT from N(0, I) onto {extra['ot_subset']} diffused to T'={s['t_prime']:g} "
            f"(tolerance {args.ot_tol:g}); this can take minutes ...")
        t0 = time.perf_counter()
        prior = SM.prepare_ot_prior(model.schedule, points, key=k_prep, t_prime=s["t_prime"], ot_tol=args.ot_tol,
                                    progress=ot_progress)
        say(f"OT solved in {time.perf_counter() - t0:.1f} s")
        if cache is not None:
            try:
                _save_prior(cache, prior)
            except (OSError, ValueError) as exc:  # a read-only or busy model folder costs the reuse, not the run
                print(f"jaxotdm generate: warning: the OT prior was not saved in {cache.parent} ({exc}); the next "
                      "call will solve again", file=sys.stderr, flush=True)
                cache = None
    say(f"sampling {args.num_samples} x {d} with {s['sampler']}, {args.nfe} NFE from T'={s['t_prime']:g} ...")
    out = prior.sample(score, key=k_sample, num_samples=args.num_samples, t_end=args.t_end, sampler=s["method"],
                       nfe=args.nfe, tau=s["tau"], grid=s["grid"])
    cert = prior.certificate
    extra.update(ot_certificate_max_relative_error=None if cert is None else float(cert.max_relative_error),
                 ot_prior_reused=reused,
                 ot_prior_file=None if cache is None else str(cache))
    return np.asarray(out.points), int(out.nfe), extra


# ------------------------------------------------------------------------------------------------------
# The OT prior saved in the model folder, keyed by its problem.
# ------------------------------------------------------------------------------------------------------
SUBSET_STREAM = 0x0715  # fold_in stream of the --ot-max-points subset (independent of the solve's keys)
CACHE_FOLDER = "ot_priors"
CACHE_FORMAT = "jaxotdm-ot-prior-1"


def _cache_path(checkpoint, schedule, points, t_prime, tol, seed) -> Path:
    """``<checkpoint>/ot_priors/<key>.npz``: the key hashes the OT problem (the targets' bytes, the schedule,
    T', the tolerance, the seed and the default solver), so any change gives another file."""
    import hashlib
    import json

    from jaxotdm.ot import HybridNewtonSolver

    h = hashlib.sha256()
    h.update(json.dumps({"format": CACHE_FORMAT, "schedule": repr(schedule), "t_prime": float(t_prime),
                         "tol": float(tol), "seed": int(seed), "solver": repr(HybridNewtonSolver()),
                         "shape": list(np.shape(points))}, sort_keys=True).encode())
    h.update(np.ascontiguousarray(np.asarray(points, np.float32)).tobytes())
    return Path(checkpoint) / CACHE_FOLDER / f"{h.hexdigest()[:24]}.npz"


def _save_prior(path: Path, prior) -> None:
    """Writes the prior's arrays (targets, heights, certificate, diagnostics) as one manifest-checked set."""
    import io

    from jaxotdm._io import Transaction

    m, c, g = prior.ot_map, prior.ot_map.certificate, prior.ot_map.diagnostics
    arrays = {"format": np.asarray(CACHE_FORMAT), "diffused": prior.diffused, "source_index": prior.source_index,
              "t_prime": prior.t_prime, "weights": m.weights, "heights": m.heights, "solver": np.asarray(g.solver),
              **{f"diag_{k}": getattr(g, k) for k in ("iterations", "converged", "insample_error", "final_samples",
                                                       "status", "evaluations")},
              **{f"hist_{k}": getattr(g.history, k) for k in ("max_relative_error", "energy", "num_samples",
                                                               "step_size")}}
    if c is not None:
        arrays.update({f"cert_{k}": getattr(c, k) for k in ("max_relative_error", "standard_error", "noise_floor",
                                                             "num_samples", "masses")})
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    path.parent.mkdir(exist_ok=True)
    with Transaction(path.parent, path.stem, option="--checkpoint") as txn:
        txn.write_bytes(path.name, buf.getvalue())
        txn.commit()


def _load_prior(path: Path, schedule):
    """The saved prior at ``path`` (``None`` if there is none); a damaged file is an error naming it."""
    import jax.numpy as jnp

    from jaxotdm._io import CheckpointError, verify_set
    from jaxotdm.ot import (
        SemidiscreteCertificate,
        SemidiscreteDiagnostics,
        SemidiscreteHistory,
        SemidiscreteMap,
    )
    from jaxotdm.samplers import OTPrior

    if not path.is_file():
        return None
    try:
        verify_set(path.parent, path.stem, what="saved OT prior")
        with np.load(path) as z:
            a = {k: z[k] for k in z.files}
    except (CheckpointError, OSError, ValueError) as exc:
        raise ValueError(f"`--checkpoint`: the saved OT prior {str(path)!r} cannot be read ({exc}); delete it or "
                         "pass --no-ot-cache.") from None
    if str(a.get("format")) != CACHE_FORMAT:
        raise ValueError(f"`--checkpoint`: {str(path)!r} is not a {CACHE_FORMAT} file; delete it or pass "
                         "--no-ot-cache.")
    j = {k: jnp.asarray(v) for k, v in a.items() if k not in ("format", "solver")}
    hist = SemidiscreteHistory(j["hist_max_relative_error"], j["hist_energy"], j["hist_num_samples"],
                               j["hist_step_size"])
    diag = SemidiscreteDiagnostics(j["diag_iterations"], j["diag_converged"], j["diag_insample_error"],
                                   j["diag_final_samples"], hist, str(a["solver"]), j["diag_status"],
                                   j["diag_evaluations"])
    cert = None
    if "cert_masses" in j:
        cert = SemidiscreteCertificate(j["cert_max_relative_error"], j["cert_standard_error"], j["cert_noise_floor"],
                                       j["cert_num_samples"], j["cert_masses"])
    smap = SemidiscreteMap(j["diffused"], j["weights"], j["heights"], cert, diag)
    return OTPrior(smap, j["diffused"], j["source_index"], j["t_prime"], schedule)


def run(args) -> int:
    import contextlib

    from jaxotdm._io import locked

    out = Path(args.out)
    # the sample set <stem>.npy/.json/.png is written as one transaction under the lock of <stem> in its folder
    lock = (locked(out.parent, out.stem, option="--out") if out.suffix.lower() == ".npy"
            else contextlib.nullcontext())  # a bad --out is refused by check()
    from jaxotdm.cli._common import Interrupts

    with lock, Interrupts("stop", "generate"):
        return _run(args, out)


def _run(args, out: Path) -> int:
    from jaxotdm._io import Transaction, check_free_space
    from jaxotdm.cli._common import figure_or_warning, json_text

    saved, s = check(args)
    check_free_space(out.parent, 2 * 4 * args.num_samples * int(saved.data["dim"]), option="--out")
    t0 = time.perf_counter()
    points, nfe, extra = generate(saved, s, args)
    seconds = time.perf_counter() - t0
    x = saved.to_data_units(points)
    scale = saved.data.get("scale")
    if args.clip and scale is not None:
        x = np.clip(x, *scale)
    x = x.astype(np.float32)
    what = f"{s['sampler']}, {nfe} NFE" + (f", OT prior T'={s['t_prime']:g} tau={s['tau']:g}" if args.ot_prior else "")
    if args.label is not None:
        what += f", class {args.label}" + (f", guidance {args.guidance:g}" if args.guidance else "")
    from jaxotdm.cli._model_figures import samples_png

    meta = {"checkpoint": str(Path(args.checkpoint).resolve()), "num_samples": int(len(x)), "dim": int(x.shape[1]),
            "units": "data" if scale is not None else "model", "scale": scale, "clipped": bool(args.clip),
            "sampler": s["sampler"], "grid": s["grid"], "nfe": nfe,
            "t_start": s["t_prime"] if args.ot_prior else s["t_start"], "t_end": args.t_end,
            "seed": args.seed, "class": args.label, "guidance": args.guidance, "ot_prior": bool(args.ot_prior),
            "t_prime": s["t_prime"], "tau": s["tau"] if args.ot_prior else None, "wall_seconds": seconds, **extra}
    png = out.with_suffix(".png")
    with Transaction(out.parent, out.stem, option="--out") as txn:
        import io

        buf = io.BytesIO()
        np.save(buf, x)
        txn.write_bytes(out.name, buf.getvalue())
        txn.write_text(out.with_suffix(".json").name, json_text(meta))
        txn.commit()  # the samples and their record first; the figure after
        if figure_or_warning("generate", png.name, lambda: samples_png(txn.path(png.name), x, saved, what)):
            txn.commit()
    print(f"wrote {out} ({x.shape[0]} x {x.shape[1]}, {what}, {seconds:.1f} s), {png}")
    return 0
