"""Metric validity on digits (the issue-20 protocol): KID in classifier features ranks real held-out digits
above every known-defect control row at n = 180 and n = 500; the Sinkhorn divergence prefers contracted samples
to real data at n = 180 (a documented fact, asserted so that it cannot silently change). Also the paired
interval against scipy, and the control rows' construction."""

import jax
import numpy as np
import pytest
from scipy import stats

from jaxotdm import data as D
from jaxotdm import metrics as M
from jaxotdm.studies import (
    ControlSettings,
    control_rows,
    default_quality_metrics,
    metric_validity,
    paired_interval,
    validity_markdown,
    verdict,
)
from jaxotdm.studies.metric_validity import IDEAL, MEMORISATION, noise_name, shrink_name


def _digits(test_fraction):
    x, y = D.load_digits(return_labels=True)
    xtr, xte, ytr, _ = D.train_test_split(x, y, test_fraction=test_fraction, seed=0)
    clf = M.train_classifier(xtr, ytr, key=jax.random.key(1), num_steps=2000)
    return xtr, xte, ytr, clf


def _check_kid_valid_sinkhorn_fooled(n, test_fraction, repetitions, all_metrics):
    xtr, xte, ytr, clf = _digits(test_fraction)
    metrics = default_quality_metrics(clf)
    if not all_metrics:
        metrics = tuple(m for m in metrics if m.name in ("KID (classifier features)", "Sinkhorn"))
    v = metric_validity(xte, xtr, key=jax.random.key(2), num_samples=n, repetitions=repetitions, metrics=metrics,
                        train_labels=ytr, image_shape=(8, 8))
    assert v.num_samples == n and v.repetitions == repetitions
    assert len(v.defects) == 8  # 2 shrinks, local averaging, blur, Gaussian, half the classes, 2 noise levels
    kid = "KID (classifier features)"
    assert v.failures(kid) == (), validity_markdown(v)
    assert v.deciding_metric == kid
    for s in (0.9, 0.8):  # Sinkhorn ranks shrunk held-out data *better* than the data itself
        assert v.z(shrink_name(s), "Sinkhorn") < -2, validity_markdown(v)
    assert not v.is_valid("Sinkhorn")
    return v


def test_validity_on_digits_at_n180():
    v = _check_kid_valid_sinkhorn_fooled(180, 0.21, 10, all_metrics=False)
    md = validity_markdown(v)
    assert "**fooled**" in md and "Deciding metric: **KID (classifier features)**" in md


@pytest.mark.slow
def test_validity_on_digits_at_n500_all_metrics():
    v = _check_kid_valid_sinkhorn_fooled(500, 0.56, 12, all_metrics=True)
    assert v.valid_metrics[0] == "KID (classifier features)"
    assert not v.is_valid("precision") and not v.is_valid("recall")  # one-sided by design


def test_paired_interval_matches_scipy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=12), rng.normal(size=12) + 0.4
    iv = paired_interval(a - b)
    ref = stats.ttest_rel(a, b).confidence_interval(0.95)
    np.testing.assert_allclose([iv.low, iv.high], [ref.low, ref.high], rtol=1e-12)
    np.testing.assert_allclose(iv.z, stats.ttest_rel(a, b).statistic, rtol=1e-12)
    assert verdict(paired_interval([-1.0, -1.1, -0.9])) == "better"
    assert verdict(paired_interval([1.0, 1.1, 0.9])) == "worse"
    assert verdict(paired_interval([1.0, -1.1, 0.1])) == "not resolvable at this size"
    assert paired_interval([0.0, 0.0]).z == 0.0


@pytest.mark.parametrize(("fn", "match"), [
    (lambda: paired_interval([1.0]), "`differences`"),
    (lambda: paired_interval([1.0, np.nan]), "`differences`"),
    (lambda: paired_interval([1.0, 2.0], level=95), "`level`"),
    (lambda: verdict((1.0, 2.0)), "`interval`"),
    (lambda: ControlSettings(shrinks=(1.2,)), "`shrinks`"),
    (lambda: control_rows(np.zeros((5, 2)), np.zeros((5, 3)), key=jax.random.key(0)), "`ideal` and `train`"),
    (lambda: metric_validity(np.zeros((10, 2)), np.ones((30, 2)), key=jax.random.key(0), num_samples=6),
     "`num_samples`"),
    (lambda: metric_validity(np.zeros((10, 2)), np.ones((30, 2)), key=jax.random.key(0), repetitions=1),
     "`repetitions`"),
    (lambda: validity_markdown(None), "`v`"),
])
def test_bad_input_names_the_argument(fn, match):
    with pytest.raises((ValueError, TypeError), match=match):
        fn()


def test_control_rows_are_what_they_say():
    rng = np.random.default_rng(3)
    ideal, train = rng.normal(size=(30, 16)), rng.normal(size=(200, 16)) + 1.0
    labels = np.repeat(np.arange(4), 50)
    rows = control_rows(ideal, train, key=jax.random.key(0), train_labels=labels, image_shape=(4, 4))
    mean = train.mean(0)
    np.testing.assert_allclose(rows[shrink_name(0.8)], mean + 0.8 * (ideal - mean))
    assert rows[IDEAL] is not None and np.array_equal(rows[IDEAL], ideal)
    d = rows[MEMORISATION][:, None, :] - train[None]
    assert np.sqrt((d ** 2).sum(-1)).min(1).max() < 0.2  # each memorisation point sits on a training point
    assert 0.08 < np.std(rows[noise_name(0.1)] - ideal) < 0.12
    assert all(r.shape == ideal.shape for r in rows.values())
    assert "2 of 4 classes" in rows and "blurred (sigma 0.8 px)" in rows
