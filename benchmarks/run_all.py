"""Runs every benchmark in this folder, one subprocess each, and writes a summary table.

    python benchmarks/run_all.py            # full sizes (long: tens of minutes on 2 CPU cores)
    python benchmarks/run_all.py --quick    # small sizes
    python benchmarks/run_all.py --only score,samplers

Each benchmark writes results/<machine>/<name>.json and .md itself (via _harness.write_results);
this script collects the markdown tables into results/<machine>/SUMMARY.md.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = ["score", "semidiscrete", "sinkhorn", "samplers", "training"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default=None, help=f"comma-separated subset of {','.join(BENCHMARKS)}")
    args = ap.parse_args(argv)
    names = BENCHMARKS if args.only is None else [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        ap.error(f"--only: unknown benchmarks {unknown}; choose from {BENCHMARKS}")
    sys.path.insert(0, str(HERE))
    from _harness import RESULTS, machine_name

    status = {}
    for name in names:
        cmd = [sys.executable, str(HERE / f"bench_{name}.py")] + (["--quick"] if args.quick else [])
        print(f"[bench] {' '.join(cmd[1:])}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call(cmd)
        status[name] = (rc, time.perf_counter() - t0)
    out = RESULTS / machine_name()
    out.mkdir(parents=True, exist_ok=True)
    lines = [f"# Benchmark summary ({machine_name()})", "", "| benchmark | exit code | seconds |", "|---|---|---|"]
    lines += [f"| {n} | {rc} | {s:.0f} |" for n, (rc, s) in status.items()]
    lines += ["", "Tables (each benchmark's own file):", ""]
    lines += [f"- [{p.stem}]({p.name})" for p in sorted(out.glob("*.md")) if p.name != "SUMMARY.md"]
    (out / "SUMMARY.md").write_text("\n".join(lines) + "\n")
    print((out / "SUMMARY.md").read_text())
    return max((rc for rc, _ in status.values()), default=0)


if __name__ == "__main__":
    sys.exit(main())
