"""Measures: validation of bad input, PyTree behaviour, moments."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxotdm as jo


def test_uniform_default_weights_and_moments():
    pts = jnp.array([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0], [2.0, 4.0]])
    mu = jo.EmpiricalMeasure(pts)
    np.testing.assert_allclose(mu.weights, 0.25)
    np.testing.assert_allclose(mu.mean, [1.0, 2.0])
    np.testing.assert_allclose(mu.cov, np.cov(np.asarray(pts).T, bias=True))
    assert mu.num_points == 4 and mu.dim == 2


@pytest.mark.parametrize(
    ("points", "weights", "match"),
    [
        (np.zeros(3), None, "points"),
        (np.zeros((2, 2, 2)), None, "points"),
        (np.array([[0.0, np.nan]]), None, "points"),
        (np.zeros((0, 2)), None, "points"),
        (np.array([["a", "b"]]), None, "points"),
        (np.eye(2), np.array([0.7, 0.7]), "sum to one"),
        (np.eye(2), np.array([1.5, -0.5]), "non-negative"),
        (np.eye(2), np.array([1.0]), "weights"),
        (np.eye(2), np.array([np.inf, 0.0]), "weights"),
    ],
)
def test_empirical_measure_rejects_bad_input(points, weights, match):
    with pytest.raises(ValueError, match=match):
        jo.EmpiricalMeasure(points, weights)


def test_gaussian_measure_validation():
    with pytest.raises(ValueError, match="cov"):
        jo.GaussianMeasure(np.zeros(2), np.eye(3))
    with pytest.raises(ValueError, match="symmetric"):
        jo.GaussianMeasure(np.zeros(2), np.array([[1.0, 0.5], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="positive semi-definite"):
        jo.GaussianMeasure(np.zeros(2), np.array([[1.0, 0.0], [0.0, -1.0]]))
    with pytest.raises(ValueError, match="mean"):
        jo.GaussianMeasure(np.array([np.nan, 0.0]), np.eye(2))


def test_measures_are_immutable_pytrees_usable_in_jit():
    mu = jo.EmpiricalMeasure(np.eye(3), np.array([0.2, 0.3, 0.5]))
    with pytest.raises(AttributeError):
        mu.points = jnp.zeros((3, 3))
    leaves = jax.tree_util.tree_leaves(mu)
    assert len(leaves) == 2
    mean = jax.jit(lambda m: m.mean)(mu)
    np.testing.assert_allclose(mean, [0.2, 0.3, 0.5])
    # vmap over a batch of measures (unflattening bypasses validation of tracers)
    batched = jax.tree_util.tree_map(lambda x: jnp.stack([x, x]), mu)
    np.testing.assert_allclose(jax.vmap(lambda m: m.mean)(batched), np.stack([mean, mean]))
    mu2 = mu.replace(weights=jnp.array([0.5, 0.25, 0.25]))
    np.testing.assert_allclose(mu2.mean, [0.5, 0.25, 0.25])


def test_sampling_frequencies():
    mu = jo.EmpiricalMeasure(np.array([[0.0], [1.0], [2.0]]), np.array([0.5, 0.3, 0.2]))
    x = mu.sample(jax.random.key(0), 50_000)
    freq = np.bincount(np.asarray(x[:, 0]).astype(int), minlength=3) / 50_000
    np.testing.assert_allclose(freq, [0.5, 0.3, 0.2], atol=4 * np.sqrt(0.25 / 50_000))
    g = jo.GaussianMeasure(np.array([1.0, -1.0]), np.array([[2.0, 0.5], [0.5, 1.0]]))
    s = g.sample(jax.random.key(1), 100_000)
    np.testing.assert_allclose(np.cov(np.asarray(s).T), g.cov, atol=0.05)


# ------------------------------------------------------------------ one protocol, no copies, per-query t
def test_both_measures_expose_the_same_protocol():
    rng = np.random.default_rng(0)
    pts = rng.standard_normal((50, 3))
    emp = jo.EmpiricalMeasure(pts)
    gau = jo.GaussianMeasure(np.asarray(emp.mean), np.asarray(emp.cov))
    for m in (emp, gau):
        assert m.dim == 3
        assert m.mean.shape == (3,) and m.cov.shape == (3, 3)
        assert m.sample(jax.random.key(0), 5).shape == (5, 3)
        assert float(m.radius) > 0
    np.testing.assert_allclose(emp.mean, pts.mean(0), rtol=1e-12)
    np.testing.assert_allclose(emp.cov, np.cov(pts.T, bias=True), rtol=1e-12)
    np.testing.assert_allclose(gau.mean, emp.mean)
    assert float(emp.radius) == pytest.approx(np.linalg.norm(pts, axis=1).max())
    assert not hasattr(emp, "covariance")  # one name: the attribute `cov` (as for GaussianMeasure)


def test_empirical_measure_does_not_copy_a_device_array():
    """Before: the points went through numpy and back, so the data was held twice."""
    x = jnp.asarray(np.random.default_rng(1).standard_normal((100, 4)))
    mu = jo.EmpiricalMeasure(x)
    assert mu.points is x
    assert mu.points.unsafe_buffer_pointer() == x.unsafe_buffer_pointer()
    w = jnp.full((100,), 0.01)
    assert jo.EmpiricalMeasure(x, w).weights is w


@pytest.mark.parametrize("num_queries", [2, 3, 5])
def test_gaussian_exact_score_with_one_time_per_query(num_queries):
    """Before: with t of shape x.shape[:-1] the covariance broadcast along the wrong axis: wrong (up to
    100%) when the number of queries equals d, a broadcasting error otherwise."""
    mean, cov = np.array([0.5, -1.0]), np.array([[1.0, 0.6], [0.6, 0.5]])
    g = jo.GaussianMeasure(mean, cov)
    s = jo.OU()
    score = jo.exact_score(g, s)
    x = np.linspace(-1, 1, 2 * num_queries).reshape(num_queries, 2)
    t = np.linspace(0.2, 2.0, num_queries)
    got = np.asarray(score(x, t))
    den = np.asarray(score.denoiser(x, t))
    logp = np.asarray(score.log_density(x, t))
    for i in range(num_queries):
        a, s2 = np.exp(-0.5 * t[i]), -np.expm1(-t[i])
        c = a * a * cov + s2 * np.eye(2)
        r = x[i] - a * mean
        np.testing.assert_allclose(got[i], -np.linalg.solve(c, r), rtol=1e-10)
        np.testing.assert_allclose(den[i], mean + a * cov @ np.linalg.solve(c, r), rtol=1e-10)
        ref = -0.5 * r @ np.linalg.solve(c, r) - 0.5 * np.log(np.linalg.det(2 * np.pi * c))
        np.testing.assert_allclose(logp[i], ref, rtol=1e-10)
        np.testing.assert_allclose(got[i], np.asarray(score(x[i], float(t[i]))), rtol=1e-10)
    with pytest.raises(ValueError, match="`t`"):
        score(x, np.ones(num_queries + 1))


def test_gaussian_score_is_the_gradient_of_its_log_density():
    g = jo.GaussianMeasure(np.array([0.5, -1.0]), np.array([[1.0, 0.6], [0.6, 0.5]]))
    score = jo.exact_score(g, jo.VPLinear())
    x = jnp.array([0.3, 0.7])
    np.testing.assert_allclose(jax.grad(lambda y: score.log_density(y, 0.4))(x), score(x, 0.4), rtol=1e-10)


def test_sampling_arguments_are_checked():
    mu = jo.EmpiricalMeasure(np.eye(2))
    g = jo.GaussianMeasure(np.zeros(2), np.eye(2))
    for m in (mu, g):
        with pytest.raises(ValueError, match="`num_samples`"):
            m.sample(jax.random.key(0), 0)
        with pytest.raises(ValueError, match="`key`"):
            m.sample(None, 2)
        with pytest.raises(ValueError, match="`t`"):
            m.sample_marginal(jax.random.key(0), -1.0, jo.OU(), 2)
    mu32 = jo.EmpiricalMeasure(np.eye(2, dtype=np.float32))
    with pytest.raises(ValueError, match="`t`.*float32"):  # before: passed t > 0 and gave NaN
        mu32.sample_marginal(jax.random.key(0), 1e-40, jo.OU(), 2)


def test_weight_tolerance_is_the_package_policy():
    """float32-normalised weights are accepted by a float64 measure (the coarser dtype decides), and the
    same weights pass every entry point that takes weights."""
    w = (np.ones(7) / 7).astype(np.float32)
    jo.EmpiricalMeasure(np.zeros((7, 2)), w)
    jo.w2_exact(np.zeros((7, 2)), np.ones((7, 2)), w)
    with pytest.raises(ValueError, match="sum to one"):
        jo.EmpiricalMeasure(np.zeros((7, 2)), w.astype(np.float64) * 1.001)
