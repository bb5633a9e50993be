"""Training cost against the machine's ceiling, the device-side loop's speed-up, and the quality bar.

For the default model of ``jaxotdm train --dataset digits`` (and, with ``--gpu``, the MNIST default at a
larger batch) the script reports, measured in the same run:

- one training step's FLOPs (XLA's cost analysis of the compiled step) divided by its time inside the
  device-side loop :func:`jaxotdm.training.train_steps`, as a fraction of the FLOP rate of a large square
  float32 matmul (2048 x 2048; the machine's ceiling for dense work);
- the speed-up of the device-side loop (steps in one ``lax.scan``, host sync once per chunk) over a plain
  per-step loop that reads the loss and the finite flag back to the host after every step (the old driver);
- the quality bar (:func:`jaxotdm.metrics.quality_report`) of a model trained with the default settings:
  Sinkhorn divergence, classifier Frechet distance, k-NN precision/recall as ratios to the training split's
  own, the score error against the exact score of the training split at log-SNR 0..3 (full run only; the
  quick run trains a tenth of the steps and reports without a target).

Run: ``python -m benchmarks.bench_training [--quick] [--gpu]``. Writes
``results/<machine>/bench_training[_quick|_gpu].{json,md}``.

``python -m benchmarks.bench_training --model DIR [--results OUT]`` checks the quality bar of an existing
model folder (``jaxotdm train --out DIR``, unconditional or class-conditional) on the split it was trained on
and writes ``OUT/quality_<folder name>.{json,md}`` (default OUT: the model folder).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import _harness as H
from jaxotdm import data as D
from jaxotdm import metrics as M
from jaxotdm.cli.train import DATASET_DEFAULTS, build_objective
from jaxotdm.training import (
    AdamConfig,
    Monitoring,
    epoch_batch_indices,
    fit,
    init_train_state,
    train_step,
    train_steps,
)


def square_matmul_rate(n: int = 2048, repeats: int = 5) -> dict:
    """FLOP rate of an (n, n) @ (n, n) float32 matmul (the ceiling), best of ``repeats``."""
    res = H.matmul_ceiling(n, n, n, repeats=repeats)
    best = min(res["runs"])
    return {"n": n, "run_s": best, "flops_per_s": 2.0 * n**3 / best}


def step_cost(objective, x, labels, settings, *, chunk: int, rounds: int) -> dict:
    """FLOPs of one step (cost analysis), the per-step time in the device-side loop and in a per-step loop."""
    opt = AdamConfig(settings["lr"], warmup_steps=settings["warmup_steps"]).build()
    xd = jnp.asarray(x)
    ld = None if labels is None else jnp.asarray(labels)
    b = settings["batch_size"]
    state = init_train_state(objective.model, opt, xd[:1], key=jax.random.key(0),
                             labels_example=None if ld is None else ld[:1])

    def one(s, xb, lb):
        return train_step(s, xb, lb, objective=objective, optimizer=opt, ema_decay=settings["ema_decay"])

    lb = None if ld is None else ld[:b]
    t0 = time.perf_counter()
    single = jax.jit(one).lower(state, xd[:b], lb).compile()
    compile_step = time.perf_counter() - t0
    cost = single.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    flops = float(cost["flops"])
    data_key = jax.random.key(2)

    @jax.jit
    def old_step(s):  # the old fit driver's jitted step: batch indices on device, one step per dispatch
        idx = epoch_batch_indices(data_key, s.step, xd.shape[0], b)
        return one(s, xd[idx], None if ld is None else ld[idx])

    kw = dict(length=chunk, objective=objective, optimizer=opt, batch_size=b, ema_decay=settings["ema_decay"])
    t0 = time.perf_counter()
    state, log = train_steps(state, xd, ld, data_key, jnp.asarray(chunk, jnp.int32), **kw)  # compile + warm-up
    jax.block_until_ready(log.loss)
    compile_loop = time.perf_counter() - t0
    loop, per_step = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        state, log = train_steps(state, xd, ld, data_key, jnp.asarray(chunk, jnp.int32), **kw)
        np.asarray(log.loss)  # the one host sync per chunk
        loop.append((time.perf_counter() - t0) / chunk)
        # the old driver: one dispatch per step, loss and finite flag read back every step
        if not per_step:
            jax.block_until_ready(old_step(state))  # compile
        t0 = time.perf_counter()
        for _ in range(chunk):
            state, m = old_step(state)
            float(m["loss"]), bool(m["finite"])
        per_step.append((time.perf_counter() - t0) / chunk)
    # best round of each, as for the matmul ceiling (best of its repeats): on a shared machine the minimum is
    # the least disturbed measurement of both sides; the medians are reported too
    return {"flops": flops, "loop_s": min(loop), "per_step_s": min(per_step),
            "loop_median_s": statistics.median(loop), "per_step_median_s": statistics.median(per_step),
            "compile_step_s": compile_step, "compile_loop_s": compile_loop}


def run_case(name, dataset, *, quick, gpu, rows, heads, quality: bool):
    settings = dict(DATASET_DEFAULTS["points" if dataset == "eight_gaussians" else dataset])
    if gpu:
        settings["batch_size"] = 1024
    if dataset == "digits":
        x, y = D.load_digits(return_labels=True)
        image_shape = (8, 8, 1)
    elif dataset == "eight_gaussians":
        x, image_shape = D.toy_2d("eight_gaussians", 2000, seed=0), None
        y = np.zeros(len(x), np.int32)
    else:
        x, y = D.load_mnist_subset(return_labels=True)
        image_shape = (28, 28, 1)
    xtr, xte, ytr, yte = D.train_test_split(x, y, test_fraction=0.2, seed=0)
    objective, _ = build_objective(settings, xtr, ytr, image_shape)
    label = (f"{dataset}, MLP {settings['features']}x{settings['depth']}"
             + (f" (expansion {settings['expansion']})" if settings.get("expansion", 1) > 1 else "")
             + f", batch {settings['batch_size']}")
    ceiling = square_matmul_rate()
    cost = step_cost(objective, xtr, None, settings, chunk=20 if quick else 50, rounds=3 if quick else 5)
    ceiling_after = square_matmul_rate()
    rate = max(ceiling["flops_per_s"], ceiling_after["flops_per_s"])
    frac = cost["flops"] / cost["loop_s"] / rate
    speedup = cost["per_step_s"] / cost["loop_s"]
    load = os.getloadavg()[0]
    row = {"case": label, "step_gflop": cost["flops"] / 1e9, "step_ms_loop": 1e3 * cost["loop_s"],
           "step_ms_per_step_loop": 1e3 * cost["per_step_s"], "matmul_gflops": rate / 1e9,
           "fraction_of_matmul": frac, "fraction_median_step": cost["flops"] / cost["loop_median_s"] / rate,
           "loop_speedup": speedup, "compile_s": cost["compile_loop_s"],
           "load_avg": load}
    print(f"[{label}] step {cost['flops'] / 1e9:.3g} GFLOP in {1e3 * cost['loop_s']:.2f} ms = "
          f"{frac:.2f} of the {rate / 1e9:.0f} GFLOP/s matmul; per-step loop {1e3 * cost['per_step_s']:.2f} ms "
          f"({speedup:.2f}x slower); load {load:.1f}")
    heads.append(H.headline(
        f"training step: fraction of the matmul rate ({label})", ratio=frac, target=">= 0.5" if dataset != "eight_gaussians" else None,
        ours_s=cost["loop_s"], peer="square float32 matmul 2048^3 (time for the step's FLOPs at its rate)",
        peer_s=cost["flops"] / rate,
        compile_s=cost["compile_loop_s"],
        note=f"step FLOPs from XLA's cost analysis ({cost['flops'] / 1e9:.3g} GFLOP) / step time in train_steps; "
             f"matmul {rate / 1e9:.0f} GFLOP/s; load average {load:.1f}"))
    heads.append(H.headline(
        f"training loop: device-side chunks vs per-step host sync ({label})", ratio=speedup, target=">= 1",
        ours_s=cost["loop_s"], peer="one jitted step per dispatch, float(loss) and bool(finite) per step",
        peer_s=cost["per_step_s"], note="per-step time ratio (peer / ours)"))
    if quality:
        _quality(objective, settings, xtr, xte, ytr, label, quick=quick, rows=rows, heads=heads, base=row)
    rows.append(row)


def _quality(objective, settings, xtr, xte, ytr, label, *, quick, rows, heads, base):
    steps = max(100, settings["steps"] // 10) if quick else settings["steps"]
    t0 = time.perf_counter()
    res = fit(objective, xtr, steps=steps, batch_size=settings["batch_size"],
              optimizer=AdamConfig(settings["lr"], warmup_steps=settings["warmup_steps"]),
              ema_decay=settings["ema_decay"], seed=0, monitor=Monitoring(log_every=100))
    wall = time.perf_counter() - t0
    score = objective.model.bind(res.state.ema_params)
    rep = M.quality_report(score, xtr, xte, key=jax.random.key(0), train_labels=ytr,
                           settings=M.QualitySettings(num_samples=1000))
    base.update(train_steps=steps, train_wall_s=wall, **{f"ratio_{k}": v for k, v in rep.ratios.items()},
                **{f"denoise_ratio@{k:g}": a / b for k, (a, b) in rep.denoising_losses.items()},
                kid_diff=rep.kid[0], kid_low=rep.kid[1],
                memorisation_ratio=rep.samples.memorisation_ratio, near_copy=rep.samples.near_copy_fraction)
    print(f"[{label}] {steps} steps in {wall:.0f} s; quality bar:\n{rep.summary()}")
    from jaxotdm.metrics import QUALITY_BAR

    notes = {"denoising_loss": "worst held-out denoising loss / the Bayes denoiser of train + held-out, log-SNR 0..3",
             "kid": "lower end of the paired 95% interval of KID(samples) - KID(held-out data)",
             "recall": "samples / training split's own", "near_copy_fraction": "fraction of samples",
             "class_accuracy": "guided samples"}
    for k, v in rep.values.items():
        op, bound = QUALITY_BAR[k]
        heads.append(H.headline(
            f"quality bar: {k} ({label}, {steps} steps)", ratio=v, target=None if quick else f"{op} {bound}",
            ours_s=wall, note=notes[k]))


def denoiser_gap(score, xtr, xte, *, key, log_snrs=(0.0, 1.0, 2.0, 3.0)) -> list[dict]:
    """Denoiser RMS error of the network and of the training split's exact score, on training and on held-out
    images: the exact score of the training split snaps noisy held-out images to training images, so at high
    log-SNR it is a poor denoiser of fresh data and a network that generalises must differ from it."""
    import jaxotdm as jo

    schedule = score.schedule
    exact = jo.exact_score(jo.EmpiricalMeasure(xtr), schedule)
    m = min(len(xtr), len(xte))
    out = []
    for lam in log_snrs:
        t = schedule.t_from_log_snr(jnp.asarray(lam, xtr.dtype))
        a, s = schedule.alpha(t), schedule.sigma(t)
        row = {"log_snr": float(lam)}
        for name, x0 in (("train", xtr[:m]), ("heldout", xte[:m])):
            xt = a * x0 + s * jax.random.normal(key, x0.shape, x0.dtype)
            for who, f in (("net", score), ("exact", exact)):
                row[f"{who}_{name}"] = float(jnp.sqrt(jnp.mean(jnp.square(f.denoiser(xt, t) - x0))))
        out.append(row)
    return out


def _fields(x) -> dict:
    """A dataclass result as a shallow ``{field: value}`` dict (no deep copy)."""
    return {f.name: getattr(x, f.name) for f in dataclasses.fields(x)}


def model_quality(folder, *, results=None, num_samples: int = 1000, guidance: float | None = None,
                  seed: int = 0) -> dict:
    """The quality bar (:func:`jaxotdm.metrics.quality_report`) of a trained model folder on its own split."""
    import json

    from jaxotdm import networks as N
    from jaxotdm.samplers import LearnedClassScores

    folder = Path(folder)
    saved = N.load_model(folder)
    split = N.load_split(folder)
    xtr = jnp.asarray(split.train, jnp.float32)
    xte = jnp.asarray(split.heldout, jnp.float32)
    conditional = saved.model.num_classes is not None
    score = saved.score()  # the null label of a class-conditional model: its unconditional score
    class_score = None
    g = (1.0 if conditional else 0.0) if guidance is None else guidance
    if conditional:
        classes = tuple(int(c) for c in np.unique(split.train_labels))
        class_score = LearnedClassScores(saved.model, saved.params, classes=classes).for_class
    t0 = time.perf_counter()
    rep = M.quality_report(score, xtr, xte, key=jax.random.key(seed), train_labels=split.train_labels,
                           guidance=g, class_score=class_score, settings=M.QualitySettings(num_samples=num_samples))
    wall = time.perf_counter() - t0
    load = os.getloadavg()
    print(rep.summary())
    gap = denoiser_gap(score, xtr, xte, key=jax.random.key(seed + 1))
    doc = {"model": str(folder), "conditional": conditional, "guidance": g if conditional else None,
           "num_samples": num_samples, "nfe": rep.nfe, "sampler": "DPM-Solver++(2M), log-SNR grid, t 1 -> 1e-3",
           "ratios": rep.ratios, "values": rep.values, "kid_paired_difference": rep.kid,
           "denoising_losses": {f"{k:g}": v for k, v in rep.denoising_losses.items()},
           "class_accuracy": rep.class_accuracy, "passed": rep.passed, "all_passed": rep.all_passed,
           "samples": _fields(rep.samples), "reference": _fields(rep.reference),
           "denoiser_gap": gap, "training": saved.info, "eval_wall_s": wall, "load_avg_1_5_15": load}
    out = Path(results) if results else folder
    out.mkdir(parents=True, exist_ok=True)
    name = f"quality_{folder.name}"
    (out / f"{name}.json").write_text(json.dumps(doc, indent=2, default=float))
    lines = [f"# Quality bar of {folder.name} ({'class-conditional, guidance ' + format(g, 'g') if conditional else 'unconditional'})",
             "", f"{num_samples} samples, DPM-Solver++(2M) at {rep.nfe} NFE; ratios are samples / a same-size subset "
             "of the training split, both measured against the held-out split.", "",
             "| criterion | value | bar | met |", "|---|---|---|---|"]
    from jaxotdm.metrics import QUALITY_BAR

    for k, (op, bound) in QUALITY_BAR.items():
        if k in rep.passed:
            lines.append(f"| {k} | {rep.values[k]:.4g} | {op} {bound:g} | {'yes' if rep.passed[k] else 'NO'} |")
    lines += ["", "held-out denoising loss (score, Bayes denoiser of train + held-out), by log-SNR: "
              + ", ".join(f"{k:g}: {a:.3g} / {b:.3g}" for k, (a, b) in rep.denoising_losses.items()),
              f"KID(samples) - KID(held-out data), paired over halvings: {rep.kid[0]:.3g} "
              f"[{rep.kid[1]:.3g}, {rep.kid[2]:.3g}]", "",
              "| set | sinkhorn | w2 | precision | recall | classifier_frechet | mode_mixture | class_accuracy | "
              "memorisation_ratio | near_copy_fraction |", "|---|---|---|---|---|---|---|---|---|---|"]
    for label, q in (("samples", rep.samples), ("training subset (reference)", rep.reference)):
        cells = [q.sinkhorn, q.w2, q.precision, q.recall, q.classifier_frechet, q.mode_mixture, q.class_accuracy,
                 q.memorisation_ratio, q.near_copy_fraction]
        lines.append(f"| {label} | " + " | ".join("" if c is None else f"{c:.4g}" for c in cells) + " |")
    lines += ["", "Denoiser error ``rms(D(x_t) - x_0)`` per coordinate (model units) of the network and of the exact "
              "score of the training split, for x_0 from the training split and from the held-out split (same noise):",
              "", "| log-SNR | network, train x0 | exact(train), train x0 | network, held-out x0 | exact(train), "
              "held-out x0 |", "|---|---|---|---|---|"]
    for g_ in gap:
        lines.append(f"| {g_['log_snr']:g} | {g_['net_train']:.4f} | {g_['exact_train']:.4f} | {g_['net_heldout']:.4f} | "
                     f"{g_['exact_heldout']:.4f} |")
    lines += ["", f"evaluation {wall:.0f} s, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}"]
    (out / f"{name}.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out / name}.json/.md")
    return doc


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="quality bar of this model folder only (no benchmark)")
    ap.add_argument("--results", default=None, help="with --model: output folder (default: the model folder)")
    ap.add_argument("--guidance", type=float, default=None, help="with --model: CFG scale (default 1)")
    ap.add_argument("--num-samples", type=int, default=1000, help="with --model: generated samples (default 1000)")
    ap.add_argument("--quick", action="store_true", help="short runs (a tenth of the training steps)")
    ap.add_argument("--gpu", action="store_true", help="larger sizes (batch 1024, the MNIST default too)")
    ap.add_argument("--no-quality", action="store_true", help="cost only (no training run)")
    args = ap.parse_args(argv)
    if args.model:
        model_quality(args.model, results=args.results, guidance=args.guidance, num_samples=args.num_samples)
        return
    rows: list[dict] = []
    heads: list[dict] = []
    run_case("digits", "digits", quick=args.quick, gpu=args.gpu, rows=rows, heads=heads, quality=not args.no_quality)
    # a small model, where one host sync per step is a large part of the step (the device-side loop's case)
    run_case("toy", "eight_gaussians", quick=args.quick, gpu=False, rows=rows, heads=heads, quality=False)
    if args.gpu:
        run_case("mnist", "mnist", quick=args.quick, gpu=True, rows=rows, heads=heads, quality=False)
    notes = [
        "Default settings of `jaxotdm train` (jaxotdm.cli.train.DATASET_DEFAULTS): VP-linear schedule, EDM "
        "preconditioning and weighting, EDM's log-normal noise levels, Adam with warm-up, EMA 0.999.",
        "fraction_of_matmul: FLOPs of one compiled training step (XLA cost analysis: forward, backward, Adam, EMA) "
        "per second of its time inside jaxotdm.training.train_steps (best of the timed chunks), over the FLOP rate "
        "of a 2048^2 float32 matmul measured in the same run (best of its repeats before and after the step "
        "timing); fraction_median_step uses the median chunk instead.",
        "loop_speedup: per-step time of a Python loop over one jitted step that reads loss and finite flag back "
        "every step (the old fit driver) over the device-side loop's.",
        "Times on a shared 2-core CPU: the load average is recorded; ratios are measured in the same run.",
    ]
    cols = ["case", "step_gflop", "step_ms_loop", "step_ms_per_step_loop", "matmul_gflops", "fraction_of_matmul",
            "fraction_median_step",
            "loop_speedup", "compile_s", "load_avg", "train_steps", "train_wall_s", "ratio_sinkhorn",
            "ratio_classifier_frechet", "ratio_precision", "ratio_recall", "score_err@0", "score_err@1",
            "score_err@2", "score_err@3", "memorisation_ratio", "near_copy"]
    name = "bench_training" + ("_gpu" if args.gpu else "") + ("_quick" if args.quick else "")
    path = H.write_results(name, rows, notes=notes, columns=cols, headline=heads)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
