"""Runs every benchmark in this folder, one subprocess each, and writes ONE summary table of headline ratios.

    python -m benchmarks.run_all                 # full sizes (long: tens of minutes on 2 CPU cores)
    python -m benchmarks.run_all --quick         # small sizes
    python -m benchmarks.run_all --only score,flow,samplers,sinkhorn
    python -m benchmarks.run_all --summary-only  # rebuild the summary from the JSON files already there

Benchmarks, in order: score, flow, samplers, semidiscrete, sinkhorn, training, scaling (``bench_<name>.py``; a
missing script is reported, not an error). Each writes ``results/<machine>/<table>.json`` and ``.md`` itself
(``_harness.write_results``). This script then writes

- ``results/<machine>.json``: the runs (exit code, seconds) and every headline row below;
- ``results/<machine>-SUMMARY.md``: one table, columns quantity, ours, peer, ratio, target, met?,
  why-if-missed, compile seconds, source.

Headline convention: a benchmark's JSON may carry a top-level ``"headline"`` list of dicts with keys
``quantity, ours_s, peer, peer_s, ratio, target, met, note, compile_s`` (see ``_harness.headline``).
``target`` is ``"<op> <number>"`` (``>=``, ``>``, ``<=``, ``<``) or null for a reported-only ratio. The summary
lists every headline of every benchmark. The quantities the project's targets are about (:data:`EXPECTED`)
always get a row: a benchmark fulfils one when one of its headline quantities contains all of the expected
row's keywords (case-insensitive); otherwise the row says "not measured" and why (benchmark absent, not run,
failed, or ran without that headline).

Which JSON files are read: those matching the benchmark's patterns (:data:`SOURCES`), and of a table written
both full-size and ``_quick`` the newer one. For a benchmark run by this invocation only files it wrote
(modified after it started) count; otherwise the files present (their date is in the source column).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BENCHMARKS = ["score", "flow", "samplers", "semidiscrete", "sinkhorn", "training", "scaling"]

# JSON files (globs in results/<machine>/) each benchmark writes
SOURCES = {
    "score": ["exact_score*.json", "bench_score*.json"],
    "flow": ["flow_vs_scipy*.json"],
    "samplers": ["samplers_overhead*.json", "samplers_adaptive*.json"],
    "semidiscrete": ["bench_semidiscrete*.json", "semidiscrete*.json"],
    "sinkhorn": ["bench_sinkhorn*.json", "sinkhorn*.json"],
    "training": ["bench_training*.json", "training*.json"],
    "scaling": ["bench_scaling*.json", "scaling*.json"],
}

# (benchmark, quantity shown when not measured, keywords a headline quantity must contain, target)
EXPECTED = [
    ("score", "exact score: fraction of the matmul rate", ["exact score", "fraction", "matmul"], ">= 0.5"),
    ("semidiscrete", "semi-discrete OT speed-up vs best peer (n=1000, d=16)", ["semi", "best peer", "1000", "16"],
     ">= 2"),
    ("semidiscrete", "semi-discrete OT speed-up vs POT (n=1000, d=16)", ["semi", "pot", "1000", "16"], ">= 10"),
    ("flow", "probability-flow solve vs scipy at equal accuracy", ["probability-flow", "scipy"], "> 1"),
    ("samplers", "sampler loop overhead", ["sampler", "overhead"], "< 0.10"),
    ("sinkhorn", "Sinkhorn vs POT", ["sinkhorn", "pot"], None),
    ("scaling", "scaling 1 -> 8 devices", ["scaling"], None),
]


def _load(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _files(out: Path, name: str, since: float | None) -> list[Path]:
    """The benchmark's JSON files, newest first; of a table written both full-size and ``_quick``, the newer."""
    paths = {p for pat in SOURCES.get(name, [f"bench_{name}*.json"]) for p in out.glob(pat)}
    if since is not None:
        paths = {p for p in paths if p.stat().st_mtime >= since}
    newest: dict[str, Path] = {}
    for p in sorted(paths, key=lambda p: p.stat().st_mtime):
        newest[p.stem.replace("_quick", "")] = p
    return sorted(newest.values(), key=lambda p: p.stat().st_mtime, reverse=True)


def _status_text(name: str, runs: dict, have_files: bool) -> str:
    run = runs.get(name)
    if not (HERE / f"bench_{name}.py").exists() and not have_files:
        return f"not measured (benchmarks/bench_{name}.py absent)"
    if run is not None and run["exit_code"] != 0:
        return f"not measured (benchmark failed: exit code {run['exit_code']})"
    if not have_files:
        return "not measured (benchmark failed or not run)"
    return "not measured (the benchmark's JSON has no such headline)"


def collect(out: Path, runs: dict) -> list[dict]:
    """Summary rows: every headline of every benchmark, plus a row per unmet expected quantity."""
    rows = []
    for name in BENCHMARKS:
        run = runs.get(name)
        since = run["started"] if run is not None else None
        files = [] if (run is not None and run["exit_code"] != 0) else _files(out, name, since)
        seen, heads = set(), []
        for path in files:
            doc = _load(path) or {}
            date = doc.get("meta", {}).get("date", "")
            for h in doc.get("headline", []) or []:
                q = h.get("quantity")
                if q and q not in seen:  # newest file wins
                    seen.add(q)
                    heads.append({**h, "benchmark": name, "source": f"{path.name} ({date})"})
        for bench, quantity, keys, target in EXPECTED:
            if bench != name:
                continue
            if not any(all(k.lower() in h["quantity"].lower() for k in keys) for h in heads):
                rows.append({"benchmark": name, "quantity": quantity, "ours_s": None, "peer": None, "peer_s": None,
                             "ratio": None, "target": target, "met": None,
                             "status": _status_text(name, runs, bool(files)), "note": "", "compile_s": None,
                             "source": ""})
        for h in heads:
            rows.append({**h, "status": "measured"})
    return rows


def _num(v, unit="") -> str:
    if v is None or v == "":
        return ""
    if isinstance(v, (int, float)):
        return f"{v:.3g}{unit}"
    return str(v)


def _met(r) -> str:
    if r["status"] != "measured":
        return "not measured"
    if r.get("target") is None:
        return "n/a (reported)"
    if r.get("met") is None:
        return "not measured"
    return "yes" if r["met"] else "no"


def render(rows: list[dict], machine: str, runs: dict, quick: bool | None) -> str:
    lines = [f"# Benchmark summary ({machine})", ""]
    mode = "" if quick is None else (" (--quick)" if quick else " (full sizes)")
    lines += [f"Generated {time.strftime('%Y-%m-%d %H:%M:%S')} by `python -m benchmarks.run_all`{mode}. Ratios are "
              "measured in one run against a peer or the machine's ceiling; absolute times on a shared machine are "
              "noise. Headline convention and row selection: see the docstring of benchmarks/run_all.py.", ""]
    cols = ["quantity", "ours", "peer", "ratio", "target", "met?", "why-if-missed", "compile s", "source"]
    lines.append("| " + " | ".join(cols) + " |")
    lines.append("|" + "---|" * len(cols))
    for r in rows:
        met = _met(r)
        why = r["status"] if r["status"] != "measured" else (r.get("note") or "" if met == "no" else "")
        peer = r.get("peer") or ""
        if r.get("peer_s") is not None:
            peer += f" ({_num(r['peer_s'], ' s')})"
        cells = [r["quantity"], _num(r.get("ours_s"), " s"), peer, _num(r.get("ratio")), r.get("target") or "",
                 met, why, _num(r.get("compile_s")), r.get("source", "")]
        lines.append("| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |")
    notes = [r for r in rows if r["status"] == "measured" and r.get("note") and _met(r) != "no"]
    if notes:
        lines += ["", "Notes on the rows above:", ""]
        lines += [f"- {r['quantity']}: {r['note']}" for r in notes]
    if runs:
        lines += ["", "| benchmark | exit code | seconds |", "|---|---|---|"]
        lines += [f"| {n} | {r['exit_code']} | {r['seconds']:.0f} |" for n, r in runs.items()]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default=None, help=f"comma-separated subset of {','.join(BENCHMARKS)}")
    ap.add_argument("--summary-only", action="store_true", help="run nothing; summarise the JSON files present")
    args = ap.parse_args(argv)
    names = BENCHMARKS if args.only is None else [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        ap.error(f"--only: unknown benchmarks {unknown}; choose from {BENCHMARKS}")
    from benchmarks._harness import RESULTS, machine_name

    runs: dict = {}
    for name in [] if args.summary_only else names:
        script = HERE / f"bench_{name}.py"
        if not script.exists():
            print(f"[bench] {script.name} absent: skipped", flush=True)
            continue
        cmd = [sys.executable, "-m", f"benchmarks.bench_{name}"] + (["--quick"] if args.quick else [])
        print(f"[bench] {' '.join(cmd[1:])}", flush=True)
        started = time.time() - 1.0  # mtime granularity
        t0 = time.perf_counter()
        rc = subprocess.call(cmd, cwd=ROOT)  # `python -m` from the repository root: `benchmarks` is a package
        runs[name] = {"exit_code": rc, "seconds": time.perf_counter() - t0, "started": started}
    machine = machine_name()
    out = RESULTS / machine
    out.mkdir(parents=True, exist_ok=True)
    rows = collect(out, runs)
    quick = None if args.summary_only else args.quick
    doc = {"machine": machine, "date": time.strftime("%Y-%m-%d %H:%M:%S"), "quick": quick,
           "runs": {n: {k: v for k, v in r.items() if k != "started"} for n, r in runs.items()}, "headline": rows}
    (RESULTS / f"{machine}.json").write_text(json.dumps(doc, indent=2))
    summary = RESULTS / f"{machine}-SUMMARY.md"
    summary.write_text(render(rows, machine, runs, quick))
    print(summary.read_text())
    return max((r["exit_code"] for r in runs.values()), default=0)


if __name__ == "__main__":
    sys.exit(main())
