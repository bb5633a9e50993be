"""Table 3 of arXiv 2410.13431 with a *learned* score: OT step + short chain vs long chains, with memorisation.

Trains the default models of ``jaxotdm train`` (unconditional and class-conditional; reused when the model
folders exist) and runs ``jaxotdm sample --checkpoint`` on each: DDPM with 1000 steps, DDIM, DPM-Solver++(2M)
and Heun at 10/20/50 NFE, OT + Euler-Maruyama at T' in {0.02, 0.05, 0.1} with tau in {0, 0.02}, the
class-conditional rows, and the two control rows (held-out images; training images + tiny noise). The
tables, plots and sample grids go to ``results/<machine>/table3_<dataset>[_cond]/``; the headline gives the
best OT row's paired difference to the 1000-step DDPM chain in the metric the table's validity check chose,
with its interval, verdict and near-copy fraction.

Run: ``python -m benchmarks.bench_table3 [--dataset digits|mnist] [--quick] [--models DIR]``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jaxotdm.cli as cli
from benchmarks import _harness as H


def _train(folder: Path, dataset: str, conditional: bool, extra: list[str]) -> float:
    if (folder / "model.json").exists():
        print(f"reusing {folder}")
        return 0.0
    t0 = time.perf_counter()
    argv = ["train", "--dataset", dataset, "--out", str(folder), "--no-progress", *extra]
    if conditional:
        argv.append("--class-conditional")
    if cli.main(argv) != 0:
        raise RuntimeError(f"training failed: {' '.join(argv)}")
    return time.perf_counter() - t0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="digits", choices=("digits", "mnist"))
    ap.add_argument("--quick", action="store_true", help="short training and a small table")
    ap.add_argument("--models", default=None, help="folder of the model folders (default: results/.../models)")
    ap.add_argument("--train-args", default="", help="extra `jaxotdm train` options (e.g. the MNIST reduction)")
    ap.add_argument("--sample-args", default="", help="extra `jaxotdm sample` options")
    args = ap.parse_args(argv)
    machine_dir = H.RESULTS / H.machine_name()
    suffix = "_quick" if args.quick else ""
    models = Path(args.models) if args.models else machine_dir / f"models_{args.dataset}{suffix}"
    extra = (["--quick"] if args.quick else []) + args.train_args.split()
    rows, heads = [], []
    for conditional in (False, True):
        tag = f"{args.dataset}{'_cond' if conditional else ''}"
        folder = models / tag
        train_s = _train(folder, args.dataset, conditional, extra)
        out = machine_dir / f"table3_{tag}{suffix}"
        sargv = ["sample", "--checkpoint", str(folder), "--out", str(out), "--overwrite", "--no-progress",
                 *(["--quick"] if args.quick else []), *args.sample_args.split()]
        if not conditional:
            sargv += ["--conditional", "off"]
        t0 = time.perf_counter()
        if cli.main(sargv) != 0:
            raise RuntimeError(f"sampling failed: {' '.join(sargv)}")
        table_s = time.perf_counter() - t0
        doc = json.loads((out / "table3.json").read_text())
        metric = doc["deciding_metric"]
        sel = [r for r in doc["rows"] if r["kind"] != "control" and bool(r["conditional"]) == conditional]
        long = max((r for r in sel if r["kind"] == "baseline"), key=lambda r: r["nfe"])
        ot = [r for r in sel if r["kind"] == "ot"]
        best = min(ot, key=lambda r: r["vs_long_chain"]["mean"] if r["vs_long_chain"] else float("inf"))
        metrics = json.loads((folder / "metrics.json").read_text())
        rows.append({"table": tag, "train_s": train_s or metrics.get("wall_seconds_this_run"), "table_s": table_s,
                     "deciding_metric": metric, "repetitions": doc["repetitions"], "n": doc["num_samples"],
                     "sane": all(c["passed"] for c in doc["sanity"]), "long_chain": long["label"],
                     "best_ot": best["label"], "best_ot_vs_long": best["vs_long_chain"],
                     "verdict": best["verdict_vs_long_chain"], "best_ot_near_copy": best["near_copy_fraction"],
                     "long_near_copy": long["near_copy_fraction"], "class_accuracy_best_ot": best["class_accuracy"]})
        iv = best["vs_long_chain"]
        heads.append(H.headline(
            f"Table 3 ({tag}, learned score): best OT + short chain vs {long['label']}, paired {metric} difference",
            ratio=None, target=None, peer=long["label"],
            note=(f"{best['label']}: {iv['mean']:+.3g} [{iv['low']:.3g}, {iv['high']:.3g}] -> {best['verdict_vs_long_chain']}"
                  if iv and metric else "no valid metric at this size: not resolvable")
                 + f"; near copies {100 * best['near_copy_fraction']:.0f}% (long chain "
                   f"{100 * long['near_copy_fraction']:.0f}%); table in {out.name}/table3.md"))
    cols = list(rows[0])
    notes = ["Tables with every row, the conclusion in words, the quality-vs-NFE plot and sample grids: "
             "table3_<dataset>[_cond]/. Times on a shared 2-core CPU."]
    path = H.write_results(f"bench_table3_{args.dataset}{suffix}", rows, notes=notes, columns=cols, headline=heads)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
