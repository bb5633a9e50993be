#!/usr/bin/env python3
"""Set-up and entry point for jaxotdm: creates or reuses ./.venv, installs the package, runs a command.

    python3 .ci/dev.py verify [ARGS]   # the main job (jaxotdm verify) on the embedded default data
    python3 .ci/dev.py test [ARGS]     # the test suite (pytest)
    python3 .ci/dev.py bench [ARGS]    # every benchmark (python -m benchmarks.run_all)
    python3 .ci/dev.py bench --gpu     # accelerator suite (benchmarks/gpu_suite.py; --dry-run: tiny, on the CPU)
    python3 .ci/dev.py docs [--no-strict] [ARGS]  # the documentation site into site/ (mkdocs build --strict)
    python3 .ci/dev.py jaxotdm ARGS    # any jaxotdm CLI command

Needs only python3 >= 3.11. The virtual environment is re-installed when pyproject.toml changes.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("JAXOTDM_VENV", ROOT / ".venv"))
EXTRAS = {"test": "test", "verify": "test", "jaxotdm": "test", "bench": "dev", "docs": "docs"}


def _python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def ensure_env(extra: str) -> Path:
    if sys.version_info < (3, 11):
        sys.exit(f"jaxotdm needs Python >= 3.11, this is {sys.version.split()[0]}")
    py = _python()
    if not py.exists():
        print(f"[dev] creating virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + extra.encode()).hexdigest()
    stamp = VENV / f".jaxotdm-installed-{extra}"
    if not stamp.exists() or stamp.read_text() != digest:
        print(f"[dev] installing jaxotdm[{extra}] into {VENV} (first run takes a few minutes)", flush=True)
        subprocess.check_call([str(py), "-m", "pip", "install", "-q", "--upgrade", "pip"])
        subprocess.check_call([str(py), "-m", "pip", "install", "-q", "-e", f"{ROOT}[{extra}]"])
        stamp.write_text(digest)
    return py


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in EXTRAS:
        print(__doc__)
        return 2
    cmd, rest = argv[0], argv[1:]
    py = ensure_env(EXTRAS[cmd])
    env = dict(os.environ)
    if cmd == "test":
        # Two xdist workers by default (CI has 2 cores; compilation is single-threaded); pass -n to override.
        workers = [] if any(a == "-n" or a.startswith("-n") or a.startswith("--numprocesses") for a in rest) else ["-n", "2"]
        # The 25 slowest tests are printed at the end (CI's 20-minute budget is watched from its own log).
        durations = [] if any(a.startswith("--durations") for a in rest) else ["--durations=25"]
        args = [str(py), "-m", "pytest", *workers, *durations, *rest]
    elif cmd == "bench" and "--gpu" in rest:
        # the accelerator suite (benchmarks/gpu_suite.py): verify, semi-discrete rows a-d and the certificate
        # pass's fraction of the matmul rate, the exact score at 60k x 784, training steps/s; one results folder.
        # `--gpu --dry-run`: the same steps at tiny sizes on the CPU (tests/test_gpu_suite.py, slow)
        args = [str(py), "-m", "benchmarks.gpu_suite", *[a for a in rest if a != "--gpu"]]
    elif cmd == "bench":
        args = [str(py), "-m", "benchmarks.run_all", *rest]
    elif cmd == "docs":
        # Warnings are errors (--strict) unless --no-strict is given; other arguments go to `mkdocs build`.
        strict = "--no-strict" not in rest
        rest = [a for a in rest if a not in ("--strict", "--no-strict")]
        env["NO_MKDOCS_2_WARNING"] = "1"
        args = [str(py), "-m", "mkdocs", "build", "--strict" if strict else "--no-strict",
                "--site-dir", str(ROOT / "site"), *rest]
    elif cmd == "verify":
        args = [str(py), "-m", "jaxotdm", "verify", *rest]
    else:
        args = [str(py), "-m", "jaxotdm", *rest]
    return subprocess.call(args, cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
