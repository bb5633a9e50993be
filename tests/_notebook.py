"""Runs a notebook headless for the notebook tests: small size (``JAXOTDM_FULL=0``), the Agg backend, the
current environment's ``python3`` kernel, and the repository on the kernel's ``PYTHONPATH``."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def execute(path: Path, monkeypatch, *, timeout: int, cwd: Path | None = None):
    """Executes the notebook at ``path`` (working directory ``cwd``, default the repository) and returns it."""
    monkeypatch.setenv("JAXOTDM_FULL", "0")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("PYTHONPATH", str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    nb = nbformat.read(path, as_version=4)
    cwd = ROOT if cwd is None else cwd
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()
    return nb


def stream_text(cells) -> str:
    """The stream output (stdout/stderr text) of ``cells``."""
    return "".join(o.get("text", "") for c in cells for o in c.get("outputs", []) if o.get("output_type") == "stream")
