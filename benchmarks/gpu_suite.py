"""The accelerator suite: every measurement issue 22 asks of a lent GPU, one command, one results folder.

    python3 .ci/dev.py bench --gpu               # on the GPU (budget: under 8 minutes on one H100/H200)
    python3 .ci/dev.py bench --gpu --dry-run     # tiny sizes on the CPU, end to end (a slow test runs it)

Steps, each a subprocess whose wall time and exit code are recorded (a failed step is reported, the others
still run):

1. ``verify``: the main job (``jaxotdm verify --quick``) with its wall time (compile included: what a user
   waits);
2. ``semidiscrete``: ``bench_semidiscrete --gpu``: rows a (digits-1797, d=64), b (10,000 Gaussian points,
   d=16), c (MNIST-5000, d=784) and d (CIFAR-shaped synthetic: 50,000 points, d=3,072) at tol 0.1, each solve
   against its own certificate pass, plus the certificate pass as a fraction of the matmul rate (ceiling named
   in the table: the float32 matmul at jax's default precision, which runs on TF32 tensor cores on NVIDIA
   Ampere/Hopper; the bf16 rate beside it);
3. ``score``: ``bench_score``: the exact score at 60,000 x 784 against its matmul ceiling;
4. ``training``: ``bench_training --gpu --no-quality``: training steps/s of the digits and MNIST default models.

Everything goes to ``benchmarks/results/<device>-gpu-suite/`` (``--out`` to choose; ``--dry-run``:
``<machine>-gpu-suite-dryrun``): each benchmark's JSON and markdown tables, and ``suite.json`` / ``suite.md``
with the steps' wall times, exit codes and the device.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def steps(dry: bool, out: Path) -> list[tuple[str, list[str]]]:
    """``(name, argv)`` of every step; ``dry``: tiny sizes on the CPU."""
    py = sys.executable
    verify = [py, "-m", "jaxotdm", "verify", "--quick", "--no-progress", "--overwrite", "--out", str(out / "verify")]
    if dry:
        verify += ["--dataset", "moons", "--max-points", "64", "--toy", "", "--schedules", "ou", "--num-samples", "256",
                   "--ot-tol", "0.3"]
    return [
        ("verify", verify),
        ("semidiscrete", [py, "-m", "benchmarks.bench_semidiscrete", *(["--dry-run", "--no-peers"] if dry
                                                                        else ["--gpu", "--no-peers"])]),
        ("score", [py, "-m", "benchmarks.bench_score", *(["--quick", "--tiny"] if dry else [])]),
        ("training", [py, "-m", "benchmarks.bench_training", "--no-quality", *(["--quick"] if dry
                                                                                else ["--gpu"])]),
    ]


def device() -> str:
    import jax

    d = jax.devices()[0]
    return f"{d.platform}: {d.device_kind} x {jax.device_count()}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU (seconds to minutes)")
    ap.add_argument("--out", default=None, help="results folder (default: benchmarks/results/<device>-gpu-suite)")
    args = ap.parse_args(argv)
    from benchmarks._harness import RESULTS, machine_name

    name = machine_name() + "-gpu-suite" + ("-dryrun" if args.dry_run else "")
    out = Path(args.out).resolve() if args.out else RESULTS / name
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "JAXOTDM_BENCH_OUT": str(out)}  # every benchmark writes its tables here
    if args.dry_run:
        env["JAX_PLATFORMS"] = "cpu"
    runs = []
    t_all = time.perf_counter()
    for step, cmd in steps(args.dry_run, out):
        print(f"[gpu-suite] {step}: {' '.join(cmd[1:])}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call(cmd, cwd=ROOT, env=env)
        runs.append({"step": step, "command": " ".join(["python", *cmd[1:]]), "rc": rc,
                     "wall_s": round(time.perf_counter() - t0, 2)})
        print(f"[gpu-suite] {step}: exit {rc} in {runs[-1]['wall_s']:.1f} s", flush=True)
    total = time.perf_counter() - t_all
    doc = {"device": device(), "dry_run": args.dry_run, "total_wall_s": round(total, 2), "steps": runs,
           "budget_s": 480, "within_budget": total <= 480}
    (out / "suite.json").write_text(json.dumps(doc, indent=2) + "\n")
    lines = [f"# GPU suite ({doc['device']}{', DRY RUN: tiny sizes' if args.dry_run else ''})", "",
             f"Total wall time {total:.1f} s (budget 480 s on one H100/H200).", "",
             "| step | exit | wall s | command |", "|---|---|---|---|"]
    lines += [f"| {r['step']} | {r['rc']} | {r['wall_s']} | `{r['command']}` |" for r in runs]
    lines += ["", "Tables of each step: the other .md/.json files of this folder."]
    (out / "suite.md").write_text("\n".join(lines) + "\n")
    print(f"[gpu-suite] wrote {out}", flush=True)
    return max((r["rc"] for r in runs), default=0)


if __name__ == "__main__":
    sys.exit(main())
