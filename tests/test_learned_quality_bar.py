"""The digits quality bar (issue 20's wording) on the default model of ``jaxotdm train --dataset digits`` (slow).

Trains the default unconditional model (about 6000 steps; 10-60 minutes on a 2-core CPU depending on the load)
unless ``JAXOTDM_QUALITY_MODEL`` names an existing model folder, then checks every criterion of
:data:`jaxotdm.metrics.QUALITY_BAR` with :func:`jaxotdm.metrics.quality_report` (1000 samples, DPM-Solver++(2M)
at 50 NFE, ratios to the training split's own, held-out split 20%). Criteria that the measured default model
does not meet are strict expected failures with the measured value in the reason (see
``benchmarks/results/learned_digits/README.md``): they turn into failures when a better default lands.
"""

import os
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

import jaxotdm.cli as cli
from jaxotdm import metrics as M
from jaxotdm import networks as N

pytestmark = pytest.mark.slow

# Measured on the default model (benchmarks/results/learned_digits/quality_digits.md): criteria not met.
NOT_MET = {
    "recall": "measured 0.66 of the training split's own (bar 0.8) after the default 6000 steps",
}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    folder = os.environ.get("JAXOTDM_QUALITY_MODEL")
    if folder is None:
        out = tmp_path_factory.mktemp("quality") / "digits"
        assert cli.main(["train", "--dataset", "digits", "--out", str(out), "--no-progress"]) == 0
        folder = str(out)
    split = N.load_split(Path(folder))
    score = N.load_score(Path(folder))
    return M.quality_report(score, jnp.asarray(split.train, jnp.float32), jnp.asarray(split.heldout, jnp.float32),
                            key=jax.random.key(0), train_labels=split.train_labels,
                            settings=M.QualitySettings(num_samples=1000))


@pytest.mark.parametrize("criterion", [
    pytest.param(c, marks=[pytest.mark.xfail(strict=True, reason=NOT_MET[c])] if c in NOT_MET else [])
    for c in ("denoising_loss", "kid", "recall", "near_copy_fraction")
])
def test_default_digits_model_meets_quality_bar(report, criterion):
    assert criterion in report.passed, f"{criterion} was not measured"
    assert report.passed[criterion], report.summary()
