"""The Table 3 study's verdict logic (on hand-built measurements, where the right answer is known) and an
end-to-end run: an untrained score network is never called "better" than the long chain."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxotdm as jo
from jaxotdm import data as D
from jaxotdm.networks import MLP, DataSplit, ScoreModel
from jaxotdm.samplers import DDIM, AncestralDDPM
from jaxotdm.studies import (
    Baseline,
    Table3Result,
    Table3Row,
    Table3Settings,
    run_table3,
    table3_from_json,
    table3_json,
)
from jaxotdm.studies.metric_validity import IDEAL, MEMORISATION, shrink_name

K = 12
CONTROLS = (IDEAL, MEMORISATION, shrink_name(0.8), "held-out + noise 0.1")


def _result(kid, near=None):
    """A Table3Result with one metric (KID) whose per-repetition values are ``kid[row]`` + small noise; rows:
    the controls, DDPM 1000 and one OT row."""
    rng = np.random.default_rng(0)
    rows = tuple(Table3Row(c, "control") for c in CONTROLS) + (
        Table3Row("DDPM", "baseline", 1000), Table3Row("OT + EulerMaruyama", "ot", 50, 0.05, 0.0))
    values = np.stack([[[kid[r.method if r.kind == "control" else r.kind] + 0.01 * rng.normal()] for r in rows]
                       for _ in range(K)])
    near = near or {MEMORISATION: 1.0}
    memo = np.stack([[[1.0, near.get(r.method if r.kind == "control" else r.kind, 0.0)] for r in rows]
                     for _ in range(K)])
    nan = np.full((K, len(rows)), np.nan)
    return Table3Result(rows, ("KID",), (False,), values, memo, nan, nan, np.full(len(rows), np.nan), 100, {})


GOOD = {IDEAL: 0.0, MEMORISATION: 0.0, shrink_name(0.8): 0.3, "held-out + noise 0.1": 0.5}


def test_a_clearly_better_ot_row_is_better_and_the_headline_says_so():
    r = _result({**GOOD, "baseline": 0.2, "ot": 0.05})
    assert r.deciding_metric == "KID" and r.sane
    ot, ddpm = r.rows[-1], r.rows[-2]
    assert r.verdict(ot, ddpm) == "better"
    assert "the OT row is better" in r.headline()
    doc = table3_json(r)
    assert doc["rows"][-1]["verdict_vs_long_chain"] == "better"
    back = table3_from_json(json.loads(json.dumps(doc)))  # a committed table re-reads to the same verdicts
    np.testing.assert_array_equal(back.values, r.values)
    np.testing.assert_array_equal(back.memorisation, r.memorisation)
    assert back.rows == r.rows and back.headline() == r.headline() and back.sanity() == r.sanity()


def test_equal_rows_are_not_resolvable_and_worse_is_worse():
    r = _result({**GOOD, "baseline": 0.1, "ot": 0.1})
    wiggle = 0.01 * np.where(np.arange(K) % 2 == 0, 1.0, -1.0)  # paired differences with mean exactly 0
    values = r.values.copy()
    values[:, -1, 0] = values[:, -2, 0] + wiggle
    r = r.replace(values=values)
    assert r.verdict(r.rows[-1], r.rows[-2]) == "not resolvable at this size"
    r = _result({**GOOD, "baseline": 0.1, "ot": 0.3})
    assert r.verdict(r.rows[-1], r.rows[-2]) == "worse"


def test_a_sampler_beating_real_data_blocks_every_verdict():
    r = _result({**GOOD, "baseline": -0.2, "ot": 0.05})  # the long chain "beats" held-out data: metric broken
    checks = dict((c, ok) for c, ok, _ in r.sanity())
    assert not checks["no sampler beats held-out data beyond its interval"]
    assert r.verdict(r.rows[-1], r.rows[-2]) == "not resolvable at this size"
    assert "not resolvable" in r.headline()


def test_an_invalid_metric_or_unflagged_memorisation_blocks_every_verdict():
    r = _result({**GOOD, shrink_name(0.8): -0.1, "baseline": 0.2, "ot": 0.05})  # fooled by contraction
    assert r.deciding_metric is None
    assert r.verdict(r.rows[-1], r.rows[-2]) == "not resolvable at this size"
    assert "not resolvable at n = 100" in r.headline()
    r = _result({**GOOD, "baseline": 0.2, "ot": 0.05}, near={MEMORISATION: 0.1})
    assert not r.sane and "not resolvable" in r.headline()


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::jaxotdm._status.ConvergenceWarning")
def test_an_untrained_network_is_never_better():
    x, y = D.load_digits(return_labels=True)
    xtr, xte, ytr, yte = D.train_test_split(x, y, test_fraction=0.2, seed=0)
    xtr, ytr = xtr[:200], ytr[:200]  # a small OT problem: the test is about the verdicts, not the solve
    model = ScoreModel(MLP(features=16, depth=1), jo.VPLinear())
    params = model.init(jax.random.key(0), jnp.zeros((1, 64)))
    settings = Table3Settings(baselines=(Baseline("DDPM", AncestralDDPM(), 40, "uniform"),
                                         Baseline("DDIM", DDIM(), 10, "log_snr")),
                              t_primes=(0.1,), taus=(0.0,), ot_nfe=(10,), ot_tol=0.3, repetitions=4, num_samples=60,
                              t_start=1.0)
    res = run_table3(model.bind(params), DataSplit(xtr, ytr, xte, yte), key=jax.random.key(1), settings=settings,
                     image_shape=(8, 8))
    assert res.repetitions == 4 and res.values.shape[:2] == (4, len(res.rows))
    assert [r.kind for r in res.rows].count("control") >= 9
    for row in res.samplers:
        long = res.long_chain(row.conditional)
        if row != long:
            assert res.verdict(row, long) != "better"
        assert res.verdict(row, IDEAL) != "better"  # nothing untrained beats real data
    assert "is better" not in res.headline()
    assert np.isnan(res.ot_certificates[0]) and np.isfinite(res.ot_certificates[-1])


def test_ot_targets_are_a_stratified_subset_and_the_count_is_stated():
    from jaxotdm.studies.table3 import ot_target_indices

    labels = np.repeat(np.arange(4), [10, 20, 30, 40])
    idx = ot_target_indices(labels, 100, 50, jax.random.key(0))
    assert idx.size == 50 and np.all(np.diff(idx) > 0)  # sorted, no repeats
    assert [int(np.sum(labels[idx] == c)) for c in range(4)] == [5, 10, 15, 20]  # every class keeps its share
    assert ot_target_indices(labels, 100, 3, jax.random.key(0)).size == 4  # at least one point per class
    assert np.array_equal(ot_target_indices(None, 100, None, jax.random.key(0)), np.arange(100))
    assert np.array_equal(ot_target_indices(None, 100, 500, jax.random.key(0)), np.arange(100))
    plain = ot_target_indices(None, 100, 30, jax.random.key(1))
    assert plain.size == 30 and not np.array_equal(plain, ot_target_indices(None, 100, 30, jax.random.key(2)))
    with pytest.raises(ValueError, match="ot_max_points"):
        Table3Settings(ot_max_points=1)
    with pytest.raises((TypeError, ValueError), match="ot_max_points"):
        Table3Settings(ot_max_points=2.5)
    res = _result({**GOOD, "baseline": 0.1, "ot": 0.1})
    res = Table3Result(res.rows, res.metrics, res.higher_is_better, res.values, res.memorisation,
                       res.class_accuracy, res.mode_mixture, res.ot_certificates, res.num_samples, {}, ot_targets=321)
    doc = json.loads(json.dumps(table3_json(res)))
    assert doc["ot_targets"] == 321 and table3_from_json(doc).ot_targets == 321
    from jaxotdm.studies import table3_markdown

    assert "solved onto 321 training points" in table3_markdown(res)
