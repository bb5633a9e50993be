"""Executes notebooks/prior_error_and_ot_correction.ipynb headless at small size (its last cell asserts)."""

import os
import pathlib

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK = pathlib.Path(__file__).resolve().parents[1] / "notebooks" / "prior_error_and_ot_correction.ipynb"


@pytest.mark.slow
def test_prior_notebook_executes_and_its_assertions_hold(monkeypatch):
    monkeypatch.setenv("JAXOTDM_FULL", "0")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    root = str(NOTEBOOK.parents[1])
    monkeypatch.setenv("PYTHONPATH", root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=1800, kernel_name="python3", resources={"metadata": {"path": root}})
    client.execute()
    out = "".join(o.get("text", "") for o in nb.cells[-1].get("outputs", []) if o.get("output_type") == "stream")
    assert "all assertions hold" in out, out
