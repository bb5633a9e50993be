"""Executes notebooks/sampling_table3.ipynb headless at its small default size; the notebook ends with
the assertions of its conclusions (OT step costs no NFE, verdicts only from a metric valid at that size and
after the sanity rows pass, conditional OT returns the requested class, memorisation reported and the
memorisation control flagged)."""

import os
import sys
from pathlib import Path

import pytest
from _notebook import execute  # noqa: E402

NB = Path(__file__).resolve().parents[1] / "notebooks" / "sampling_table3.ipynb"


@pytest.mark.slow  # 66 s; its conclusions are also pinned by test_studies_table3 and test_cli_sample in the default run
def test_sampling_table3_notebook_runs_and_asserts(monkeypatch):
    nb = execute(NB, monkeypatch, timeout=600, cwd=NB.parent)
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "assertions passed" in outputs
    assert sys.executable  # the kernel is the current environment's python3
    assert os.environ["JAXOTDM_FULL"] == "0"
