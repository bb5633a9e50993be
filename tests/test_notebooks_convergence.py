"""Executes the convergence notebook headless at small size; its final cell asserts the conclusions."""

from pathlib import Path

import pytest
from _notebook import execute  # noqa: E402

NB = Path(__file__).resolve().parent.parent / "notebooks" / "convergence_to_brenier.ipynb"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_convergence_notebook_runs_and_its_conclusions_hold(monkeypatch, tmp_path):
    nb = execute(NB, monkeypatch, timeout=900, cwd=tmp_path)
    last = nb.cells[-1]
    text = "".join(o.get("text", "") for o in last.get("outputs", []))
    assert "all conclusions hold" in text
