"""Executes notebooks/bring_your_own_model.ipynb headless at its small size and checks its conclusion.

The notebook trains a flax NNX network (2-D moons) and an equinox network (digits) with a plain optax loop on
jaxotdm's DSM loss, wraps them with ``as_network`` and samples with two samplers and the OT prior. Its last cell
asserts that the learned 2-D samples are far closer to held-out data than the Gaussian prior draws (Sinkhorn
divergence: each run closes more than half of the gap between the prior draws and the training set's own
distance to the held-out set) and prints the numbers, which are checked again here. Also checks that the committed notebook
carries outputs (the docs render them; they are never executed at build time).
"""

import json
import pathlib
import re

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

from _notebook import execute, stream_text  # noqa: E402

NOTEBOOK = pathlib.Path(__file__).resolve().parents[1] / "notebooks" / "bring_your_own_model.ipynb"


def test_committed_notebook_has_outputs_and_uses_the_public_api_only():
    nb = json.loads(NOTEBOOK.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(c.get("outputs") for c in code), "every code cell of the committed notebook must carry its outputs"
    assert any("image/png" in o.get("data", {}) for c in code for o in c["outputs"]), "no stored figure"
    text = "".join("".join(o.get("text", "")) for o in code[-1]["outputs"])  # JSON stores lines as a list
    assert "all assertions hold" in text
    source = "".join("".join(c["source"]) for c in code)
    assert "jaxotdm.cli" not in source and not re.search(r"jaxotdm\.\w+\._|from jaxotdm\S* import _", source)
    assert "as_network" in source and "nnx" in source and "eqx" in source


@pytest.mark.slow
def test_byom_notebook_executes_and_its_conclusion_holds(monkeypatch):
    nb = execute(NOTEBOOK, monkeypatch, timeout=1800)
    out = stream_text(nb.cells[-1:])
    assert "all assertions hold" in out, out
    numbers = dict(re.findall(r"(\S+)=([0-9.]+)", out.split("BYOM_RESULT", 1)[1].splitlines()[0]))
    prior, floor = float(numbers.pop("2d_prior")), float(numbers.pop("2d_floor"))
    assert floor < prior and len(numbers) == 3, (prior, floor, numbers)  # DPM-Solver++, Euler-Maruyama, OT prior
    # each learned run closes more than half of the gap between the prior draws and the training set's floor
    assert all((prior - float(v)) / (prior - floor) > 0.5 for v in numbers.values()), (prior, floor, numbers)
