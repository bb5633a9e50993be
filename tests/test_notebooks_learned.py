"""Executes notebooks/learned_table3.ipynb headless at its small default size (a short training run on 200
digits); the notebook ends with assertions on its results (control rows bracket memorisation, the OT step costs
no NFE, quality and memorisation side by side, class accuracy of the conditional rows; the quality bar itself
is asserted in the full run, JAXOTDM_FULL=1, whose outputs are stored in the notebook)."""

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NB = Path(__file__).resolve().parents[1] / "notebooks" / "learned_table3.ipynb"


@pytest.mark.slow
def test_learned_table3_notebook_runs_and_asserts(monkeypatch, tmp_path):
    monkeypatch.setenv("JAXOTDM_FULL", "0")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(NB, as_version=4)
    client = NotebookClient(nb, timeout=1200, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "assertions passed" in outputs
    assert os.environ["JAXOTDM_FULL"] == "0"
