"""Executes the convergence notebook headless at small size; its final cell asserts the conclusions."""

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NB = Path(__file__).resolve().parent.parent / "notebooks" / "convergence_to_brenier.ipynb"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_convergence_notebook_runs_and_its_conclusions_hold(tmp_path):
    nb = nbformat.read(NB, as_version=4)
    env_before = os.environ.get("JAXOTDM_FULL")
    os.environ["JAXOTDM_FULL"] = "0"
    os.environ.setdefault("MPLBACKEND", "Agg")
    try:
        client = NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
        client.execute()
    finally:
        if env_before is None:
            os.environ.pop("JAXOTDM_FULL", None)
        else:
            os.environ["JAXOTDM_FULL"] = env_before
    last = nb.cells[-1]
    text = "".join(o.get("text", "") for o in last.get("outputs", []))
    assert "all conclusions hold" in text
