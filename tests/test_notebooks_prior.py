"""Executes notebooks/prior_error_and_ot_correction.ipynb headless at small size (its last cell asserts)."""

import pathlib

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

from _notebook import execute, stream_text  # noqa: E402

NOTEBOOK = pathlib.Path(__file__).resolve().parents[1] / "notebooks" / "prior_error_and_ot_correction.ipynb"


@pytest.mark.slow
def test_prior_notebook_executes_and_its_assertions_hold(monkeypatch):
    nb = execute(NOTEBOOK, monkeypatch, timeout=1800)
    out = stream_text(nb.cells[-1:])
    assert "all assertions hold" in out, out
