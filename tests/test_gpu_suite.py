"""The GPU suite's CPU dry run (issue 22 item 4): every step runs end to end at tiny sizes and writes one results
folder, so the suite cannot rot before a GPU is lent."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


# about 100 s on 2 cores (verify, the semi-discrete rows a-d, the score and training steps at tiny sizes, ~30 s
# each): in the default run so the suite cannot rot before a GPU is lent (issue 22)
def test_gpu_suite_dry_run_writes_one_results_folder(tmp_path):
    out = tmp_path / "suite"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    run = subprocess.run([sys.executable, "-m", "benchmarks.gpu_suite", "--dry-run", "--out", str(out)], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    doc = json.loads((out / "suite.json").read_text())
    assert doc["dry_run"] and [s["step"] for s in doc["steps"]] == ["verify", "semidiscrete", "score", "training"]
    assert all(s["rc"] == 0 and s["wall_s"] > 0 for s in doc["steps"])
    names = {p.name for p in out.iterdir()}
    assert {"suite.md", "bench_semidiscrete_kernel_dryrun.json", "exact_score_quick.json",
            "bench_training_quick.json"} <= names, names
    assert (out / "verify" / "report.json").is_file()
    rows = json.loads((out / "bench_semidiscrete_rows_dryrun_abcd.json").read_text())
    rows = rows["rows"] if isinstance(rows, dict) else rows
    assert [r["row"] for r in rows] == ["a", "b", "c", "d"] and all(r["ratio"] > 0 for r in rows)
    kernel = json.loads((out / "bench_semidiscrete_kernel_dryrun.json").read_text())
    kernel = kernel["rows"] if isinstance(kernel, dict) else kernel
    assert all(r["ceiling"] and 0 < r["fraction"] for r in kernel)
