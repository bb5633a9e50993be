"""Metrics against independent numpy/scipy references; memorisation flags a copying sampler."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist
from scipy.special import logsumexp

import jaxotdm as jo
from jaxotdm import metrics as M
from jaxotdm import samplers as S


def rng(seed=0):
    return np.random.default_rng(seed)


# ------------------------------------------------------------------------------ nearest neighbours
def test_kth_neighbour_distance_matches_cdist():
    r = rng(0)
    q, p = r.normal(size=(37, 5)) + 3.0, r.normal(size=(53, 5)) + 3.0
    d = cdist(q, p)
    for k in (1, 4):
        np.testing.assert_allclose(M.kth_neighbour_distance(q, p, k, chunk_size=8), np.sort(d, 1)[:, k - 1], rtol=1e-10)
    dpp = cdist(p, p)
    np.testing.assert_allclose(
        M.kth_neighbour_distance(p, p, 3, exclude_self=True, chunk_size=16), np.sort(dpp, 1)[:, 3], rtol=1e-10
    )
    np.testing.assert_allclose(M.nearest_neighbour_distance(q, p, chunk_size=1000), d.min(1), rtol=1e-10)


def reference_precision_recall(gen, real, k):
    """Kynkaanniemi et al. (2019), brute force: k-NN radii within each set (self excluded)."""
    r_real = np.sort(cdist(real, real), 1)[:, k]
    r_gen = np.sort(cdist(gen, gen), 1)[:, k]
    precision = np.mean(np.any(cdist(gen, real) <= r_real[None, :], axis=1))
    recall = np.mean(np.any(cdist(real, gen) <= r_gen[None, :], axis=1))
    return precision, recall


@pytest.mark.parametrize("shift", [0.0, 0.7, 2.0])
def test_precision_recall_matches_reference(shift):
    r = rng(1)
    real = r.normal(size=(120, 3))
    gen = 0.6 * r.normal(size=(90, 3)) + shift  # narrower: high precision, lower recall
    for k in (1, 3, 5):
        pr = M.precision_recall(gen, real, k=k, chunk_size=32)
        p_ref, r_ref = reference_precision_recall(gen, real, k)
        assert float(pr.precision) == pytest.approx(p_ref, abs=1e-12)
        assert float(pr.recall) == pytest.approx(r_ref, abs=1e-12)
    if shift == 0.0:
        assert float(pr.precision) > float(pr.recall)


# ------------------------------------------------------------------------------------ memorisation
def test_memorisation_matches_reference():
    r = rng(2)
    s, tr, ho = r.normal(size=(40, 4)), r.normal(size=(70, 4)), r.normal(size=(60, 4))
    res = M.memorisation(s, tr, ho, chunk_size=16)
    dt, dh = cdist(s, tr).min(1), cdist(s, ho).min(1)
    np.testing.assert_allclose(res.train_distance, dt, rtol=1e-10)
    np.testing.assert_allclose(res.heldout_distance, dh, rtol=1e-10)
    np.testing.assert_allclose(res.ratio, dt / dh, rtol=1e-10)
    assert float(res.median_ratio) == pytest.approx(np.median(dt / dh))
    assert float(res.near_copy_fraction) == pytest.approx(np.mean(dt / dh < 1 / 3))


def test_memorisation_flags_a_sampler_that_returns_training_points():
    """The exact score of the empirical training measure drives DDIM onto the training points (the
    paper's caveat); samples from the data law itself are not flagged."""
    law = jo.GaussianMeasure(jnp.zeros(2), jnp.eye(2))
    train = law.sample(jax.random.key(0), 60)
    heldout = law.sample(jax.random.key(1), 60)
    sched = jo.OU()
    score = jo.exact_score(jo.EmpiricalMeasure(train), sched)
    copying = S.sample(S.DDIM(), score, sched, t_start=8.0, t_end=1e-5, num_steps=20, grid="log_snr", key=jax.random.key(2), shape=(200, 2))
    flagged = M.memorisation(copying.points, train, heldout)
    fresh = M.memorisation(law.sample(jax.random.key(3), 200), train, heldout)
    assert float(flagged.near_copy_fraction) >= 0.95
    assert float(flagged.median_ratio) < 0.1
    assert float(fresh.near_copy_fraction) <= 0.2
    assert 0.5 < float(fresh.median_ratio) < 2.0


# ---------------------------------------------------------------------------------------- Sinkhorn
def reference_sinkhorn_cost(x, y, eps, iters=20_000):
    """Balanced entropic OT (cost |x-y|^2, uniform weights), log-domain Sinkhorn; dual objective."""
    c = cdist(x, y, "sqeuclidean")
    la, lb = np.full(len(x), -np.log(len(x))), np.full(len(y), -np.log(len(y)))
    f, g = np.zeros(len(x)), np.zeros(len(y))
    if y is x:  # symmetric problem: averaged fixed-point updates (Feydy et al. 2019, eq. 25)
        for _ in range(iters):
            f_new = 0.5 * (f - eps * logsumexp((f[None, :] - c) / eps + la[None, :], axis=1))
            if np.max(np.abs(f_new - f)) < 1e-14:
                break
            f = f_new
        return 2 * np.exp(la) @ f_new
    for _ in range(iters):
        f = -eps * logsumexp((g[None, :] - c) / eps + lb[None, :], axis=1)
        g = -eps * logsumexp((f[:, None] - c) / eps + la[:, None], axis=0)
        rows = np.exp(logsumexp((f[:, None] + g[None, :] - c) / eps + la[:, None] + lb[None, :], axis=1))
        if np.max(np.abs(rows - np.exp(la))) < 1e-13:  # marginal error (columns are exact after g)
            break
    return np.exp(la) @ f + np.exp(lb) @ g


def test_sinkhorn_divergence_matches_numpy_reference():
    r = rng(3)
    x, y = r.normal(size=(30, 2)), r.normal(size=(30, 2)) * 1.3 + 0.5
    # max_iterations as in wasserstein2, so that the compiled solver is shared (test time).
    res = M.sinkhorn_estimate(x, y, epsilon=0.5, relative_epsilon=False, threshold=1e-9, max_iterations=20_000)
    assert bool(res.converged)
    ref = reference_sinkhorn_cost(x, y, 0.5) - 0.5 * (reference_sinkhorn_cost(x, x, 0.5) + reference_sinkhorn_cost(y, y, 0.5))
    assert float(res.divergence) == pytest.approx(ref, rel=1e-5)
    # Relative epsilon: a multiple of the mean squared distance; the divergence is scale-covariant.
    a = M.sinkhorn_estimate(x, y, epsilon=0.05, threshold=1e-8, max_iterations=20_000)
    b = M.sinkhorn_estimate(3 * x, 3 * y, epsilon=0.05, threshold=1e-8, max_iterations=20_000)
    assert float(b.divergence) == pytest.approx(9 * float(a.divergence), rel=1e-5)
    assert float(a.epsilon) == pytest.approx(0.05 * cdist(x, y, "sqeuclidean").mean(), rel=1e-10)


def test_wasserstein2_matches_exact_assignment():
    r = rng(4)
    x, y = r.normal(size=(30, 2)), r.normal(size=(30, 2)) + np.array([1.0, 0.0])
    c = cdist(x, y, "sqeuclidean")
    i, j = linear_sum_assignment(c)
    w2 = np.sqrt(c[i, j].mean())
    assert float(M.wasserstein2(x, y)) == pytest.approx(w2, rel=1e-2)
    assert float(M.wasserstein2(x, x)) < 1e-3 * w2


def test_metrics_jit_match_eager():
    r = rng(5)
    s, tr, ho = (jnp.asarray(r.normal(size=(n, 3))) for n in (20, 30, 25))
    eager = M.memorisation(s, tr, ho, chunk_size=8)
    jitted = jax.jit(lambda s, tr, ho: M.memorisation(s, tr, ho, chunk_size=8))(s, tr, ho)
    for a, b in zip(jax.tree.leaves(eager), jax.tree.leaves(jitted), strict=True):  # every field
        np.testing.assert_allclose(b, a, rtol=1e-12)


# ---------------------------------------------------------------------------------------- Frechet
def scipy_frechet(m1, c1, m2, c2):
    covmean = scipy.linalg.sqrtm(c1 @ c2).real
    return float(np.sum((m1 - m2) ** 2) + np.trace(c1 + c2 - 2 * covmean))


def test_frechet_distance_matches_scipy_sqrtm():
    r = rng(6)
    for d in (1, 3, 8):
        a, b = r.normal(size=(d, d)), r.normal(size=(d, 2 * d))
        c1, c2 = a @ a.T + 0.1 * np.eye(d), b @ b.T / (2 * d)
        m1, m2 = r.normal(size=d), r.normal(size=d)
        assert float(M.frechet_distance(m1, c1, m2, c2)) == pytest.approx(scipy_frechet(m1, c1, m2, c2), rel=1e-8)
    assert float(jax.jit(M.frechet_distance)(m1, c1, m2, c2)) == pytest.approx(scipy_frechet(m1, c1, m2, c2), rel=1e-8)


# ------------------------------------------------------------------------------------- classifier
@pytest.fixture(scope="module")
def blobs():
    r = rng(7)
    centres = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]])
    labels = np.repeat(np.arange(3), 100)
    x = centres[labels] + 0.5 * r.normal(size=(300, 2))
    clf = M.train_classifier(x, labels, key=jax.random.key(0), hidden=(32,), num_steps=600, learning_rate=3e-3)
    return centres, x, labels, clf


def test_classifier_is_accurate_and_deterministic(blobs):
    centres, x, labels, clf = blobs
    assert float(clf.accuracy(x, labels)) > 0.97
    again = M.train_classifier(x, labels, key=jax.random.key(0), hidden=(32,), num_steps=600, learning_rate=3e-3)
    for a, b in zip(jax.tree.leaves(clf), jax.tree.leaves(again), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(jnp.sum(clf.probabilities(x), -1), 1.0, rtol=1e-12)


def test_mode_mixture_ratio(blobs):
    centres, x, labels, clf = blobs
    p = rng(8).dirichlet(np.full(4, 0.3), size=500)
    assert float(M.mode_mixture_ratio(p)) == pytest.approx(np.mean(np.sum(p >= 0.2, 1) >= 2))
    assert float(M.mode_mixture_ratio(p, threshold=0.4)) == pytest.approx(np.mean(np.sum(p >= 0.4, 1) >= 2))
    # Samples on the modes are not mixed; samples half-way between two modes are.
    assert float(clf.mode_mixture_ratio(x)) < 0.05
    # Along the segment between two modes the classifier hands over from one class to the other:
    # some points are mixed, and only between those two classes.
    seg = centres[0] + np.linspace(0, 1, 401)[:, None] * (centres[1] - centres[0])
    p = np.asarray(clf.probabilities(seg))
    mixed = np.sum(p >= 0.2, 1) >= 2
    assert float(clf.mode_mixture_ratio(seg)) == pytest.approx(mixed.mean())
    assert 0 < mixed.mean() < 0.5
    assert np.all(np.sort(np.argsort(p[mixed], 1)[:, -2:], 1) == [0, 1])


def test_classifier_frechet_distance(blobs):
    centres, x, labels, clf = blobs
    y = centres[labels] + 0.5 * rng(10).normal(size=(300, 2))
    f1, f2 = np.asarray(clf.features(x)), np.asarray(clf.features(y))
    ref = scipy_frechet(f1.mean(0), np.cov(f1.T), f2.mean(0), np.cov(f2.T))
    got = float(M.classifier_frechet_distance(clf, x, y))
    assert got == pytest.approx(ref, rel=1e-6, abs=1e-9)
    # Missing a mode costs far more than resampling the same law.
    assert float(M.classifier_frechet_distance(clf, x[labels != 2], y)) > 10 * got


# ------------------------------------------------------------------------------------ validation
def test_bad_input_names_the_argument(blobs):
    centres, x, labels, clf = blobs
    a, b = np.zeros((10, 2)), np.zeros((10, 3))
    with pytest.raises(ValueError, match="`samples` and `reference`"):
        M.precision_recall(a, b)
    with pytest.raises(ValueError, match="`samples`"):
        M.precision_recall(np.zeros((3, 2)), a, k=3)
    with pytest.raises(ValueError, match="`k`"):
        M.kth_neighbour_distance(a, a, 0)
    with pytest.raises(ValueError, match="`k`"):
        M.kth_neighbour_distance(a, a, 10, exclude_self=True)
    with pytest.raises(ValueError, match="`heldout`"):
        M.memorisation(a, a, b)
    with pytest.raises(ValueError, match="`samples`"):
        M.memorisation(np.zeros(5), a, a)
    with pytest.raises(ValueError, match="`y`"):
        M.sinkhorn_estimate(a, np.full((3, 2), np.nan))
    with pytest.raises(ValueError, match="`b`"):
        M.sinkhorn_estimate(a, a, b=np.full(10, 0.5))
    with pytest.raises(ValueError, match="`epsilon`"):
        M.sinkhorn_estimate(a, a, epsilon=0.0)
    with pytest.raises(ValueError, match="`cov2`"):
        M.frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.eye(3))
    with pytest.raises(ValueError, match="`labels`"):
        M.train_classifier(x, labels[:-1], key=jax.random.key(0))
    with pytest.raises(ValueError, match="`labels`"):  # unknown class label
        M.train_classifier(x, labels, key=jax.random.key(0), num_classes=2)
    with pytest.raises(ValueError, match="`labels`"):
        M.train_classifier(x, labels.astype(float), key=jax.random.key(0))
    with pytest.raises(ValueError, match="`key`"):
        M.train_classifier(x, labels, key=None)
    with pytest.raises(ValueError, match="`probabilities`"):
        M.mode_mixture_ratio(np.zeros(3))
    with pytest.raises(ValueError, match="`threshold`"):
        M.mode_mixture_ratio(np.zeros((3, 3)), threshold=0.7)
    with pytest.raises(ValueError, match="`samples`"):
        M.classifier_frechet_distance(clf, np.zeros((5, 3)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="`classifier`"):
        M.classifier_frechet_distance(None, a, a)


# --------------------------------------------------------------------- invalid inputs (issue 13)
def test_frechet_rejects_invalid_covariances():
    with pytest.raises(ValueError, match="`cov1` must be a symmetric"):
        M.frechet_distance(np.zeros(2), np.array([[1.0, 0.5], [0.0, 1.0]]), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="`cov2` must be positive semi-definite"):
        M.frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.diag([1.0, -0.5]))
    with pytest.raises(ValueError, match="`mean2`"):
        M.frechet_distance(np.zeros(2), np.eye(2), np.array([0.0, np.nan]), np.eye(2))
    # a PSD matrix with rounding asymmetry and a zero eigenvalue is accepted
    c = np.array([[1.0, 1.0], [1.0, 1.0 + 1e-15]])
    assert float(M.frechet_distance(np.zeros(2), c, np.zeros(2), c)) == pytest.approx(0.0, abs=1e-6)


def test_mode_mixture_rejects_invalid_probabilities():
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        M.mode_mixture_ratio(np.array([[1.5, -0.5]]))
    with pytest.raises(ValueError, match="sum to 1"):
        M.mode_mixture_ratio(np.array([[0.3, 0.3]]))
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        M.mode_mixture_ratio(np.array([[np.nan, 1.0]]))


def test_classifier_scale_floor_ignores_near_constant_inputs():
    """A near-constant input (an image's border pixel) must not dominate the classifier's features."""
    r = rng(11)
    labels = np.repeat(np.arange(2), 200)
    x = np.concatenate([labels[:, None] * 3.0 + r.normal(size=(400, 1)), 1e-3 * r.normal(size=(400, 1))], 1)
    floored = M.train_classifier(x, labels, key=jax.random.key(0), num_steps=300)
    plain = M.train_classifier(x, labels, key=jax.random.key(0), num_steps=300, scale_floor=0.0)
    assert float(floored.scale[1]) >= 0.1 * float(jnp.sqrt(jnp.mean(jnp.square(jnp.std(x, 0))))) - 1e-6
    assert float(plain.scale[1]) < 2e-3
    noisy = x.copy()
    noisy[:, 1] += 0.05 * r.normal(size=400)  # invisible noise on the near-constant coordinate
    assert float(M.classifier_frechet_distance(floored, noisy, x)) < 0.1 * float(
        M.classifier_frechet_distance(plain, noisy, x))
    with pytest.raises(ValueError, match="`scale_floor`"):
        M.train_classifier(x, labels, key=jax.random.key(0), scale_floor=2.0)


# ---------------------------------------------------------------------- quality of a set of samples
def test_sample_quality_memorisation_on_the_held_out_scale():
    r = rng(12)
    train, held, fresh = r.normal(size=(300, 3)), r.normal(size=(150, 3)), r.normal(size=(150, 3))
    copies = M.sample_quality(train[:150], train, held)
    assert copies.memorisation_ratio == 0.0 and copies.near_copy_fraction == 1.0
    new = M.sample_quality(fresh, train, held)
    assert 0.7 < new.memorisation_ratio < 1.4 and new.near_copy_fraction < 0.1
    assert new.sinkhorn >= 0 and 0 <= new.precision <= 1 and new.classifier_frechet is None
    clipped = M.sample_quality(fresh, train, held, value_range=(-1.0, 1.0))
    assert clipped.out_of_range_fraction == pytest.approx(np.mean(np.abs(fresh) > 1.0))
    with pytest.raises(ValueError, match="`value_range`"):
        M.sample_quality(fresh, train, held, value_range=(1.0, -1.0))
    with pytest.raises(ValueError, match="`requested_labels` needs"):
        M.sample_quality(fresh, train, held, requested_labels=np.zeros(150, int))


def test_quality_report_of_the_exact_score_copies_and_fails_the_bar():
    """The exact score of the training split: its samples are (near) training points, and the quality bar of
    issue 20 says so (near copies), where the old score-error criterion passed it (that criterion is gone: it
    rewarded memorisation). Its held-out denoising loss is worse than the Bayes denoiser of all the data."""
    import jaxotdm as jo

    r = rng(13)
    centres = np.array([[-2.0, 0.0], [2.0, 0.0], [0.0, 2.5]])
    lab = np.repeat(np.arange(3), 100)
    x = (centres[lab] + 0.3 * r.normal(size=(300, 2))).astype(np.float32)
    train, held, ytr = x[::2], x[1::2], lab[::2]
    score = jo.exact_score(jo.EmpiricalMeasure(jnp.asarray(train)), jo.VPLinear())
    rep = M.quality_report(score, train, held, key=jax.random.key(0), train_labels=ytr,
                           settings=M.QualitySettings(num_samples=100, value_range=None))
    assert rep.samples.memorisation_ratio < 0.3  # copies, as the exact score of a finite set must produce
    assert rep.values["near_copy_fraction"] > 0.5 and not rep.passed["near_copy_fraction"]
    assert not rep.all_passed
    assert set(rep.denoising_losses) == {0.0, 1.0, 2.0, 3.0}
    mine, bayes = rep.denoising_losses[3.0]
    assert mine > bayes > 0  # snapping held-out images onto training images is a poor denoiser of fresh data
    assert set(rep.ratios) == {"sinkhorn", "precision", "recall", "classifier_frechet"}
    assert rep.nfe == 50 and rep.reference.num_samples == 100
    assert rep.kid[1] <= rep.kid[0] <= rep.kid[2]
    assert "near_copy_fraction" in rep.summary() and "score_error" not in rep.summary()
    with pytest.raises(ValueError, match="`num_samples`"):
        M.quality_report(score, train, held, key=jax.random.key(0), settings=M.QualitySettings(num_samples=1000))
    with pytest.raises(ValueError, match="`repetitions`"):
        M.QualitySettings(num_samples=100, repetitions=1)


def test_metrics_sinkhorn_estimate_is_the_ot_functions_quantity():
    """``metrics.sinkhorn_divergence`` (the earlier name of ``sinkhorn_estimate``) is gone: one name, one
    signature. The metric is the OT function's quantity: with an absolute epsilon it equals
    ``jaxotdm.ot.sinkhorn_divergence``."""
    r = rng(5)
    x, y = r.normal(size=(20, 2)), r.normal(size=(25, 2)) + 0.3
    assert not hasattr(M, "sinkhorn_divergence")
    assert "sinkhorn_divergence" not in M.__all__
    absolute = M.sinkhorn_estimate(x, y, epsilon=0.5, relative_epsilon=False)
    assert float(absolute.divergence) == pytest.approx(float(jo.ot.sinkhorn_divergence(x, y, epsilon=0.5)), rel=1e-10)
