"""Executes notebooks/learned_table3.ipynb headless at its small default size (a short training run on 200
digits); the notebook ends with assertions on its results (control rows bracket memorisation, the OT step costs
no NFE, quality and memorisation side by side, class accuracy of the conditional rows; the quality bar itself
is asserted in the full run, JAXOTDM_FULL=1, whose outputs are stored in the notebook)."""

import os
from pathlib import Path

import pytest
from _notebook import execute  # noqa: E402

NB = Path(__file__).resolve().parents[1] / "notebooks" / "learned_table3.ipynb"


@pytest.mark.slow
def test_learned_table3_notebook_runs_and_asserts(monkeypatch, tmp_path):
    nb = execute(NB, monkeypatch, timeout=1200, cwd=tmp_path)
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "assertions passed" in outputs
    assert os.environ["JAXOTDM_FULL"] == "0"
