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
    np.testing.assert_allclose(mu.mean(), [1.0, 2.0])
    np.testing.assert_allclose(mu.covariance(), np.cov(np.asarray(pts).T, bias=True))
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
    mean = jax.jit(lambda m: m.mean())(mu)
    np.testing.assert_allclose(mean, [0.2, 0.3, 0.5])
    # vmap over a batch of measures (unflattening bypasses validation of tracers)
    batched = jax.tree_util.tree_map(lambda x: jnp.stack([x, x]), mu)
    np.testing.assert_allclose(jax.vmap(lambda m: m.mean())(batched), np.stack([mean, mean]))
    mu2 = mu.replace(weights=jnp.array([0.5, 0.25, 0.25]))
    np.testing.assert_allclose(mu2.mean(), [0.5, 0.25, 0.25])


def test_sampling_frequencies():
    mu = jo.EmpiricalMeasure(np.array([[0.0], [1.0], [2.0]]), np.array([0.5, 0.3, 0.2]))
    x = mu.sample(jax.random.key(0), 50_000)
    freq = np.bincount(np.asarray(x[:, 0]).astype(int), minlength=3) / 50_000
    np.testing.assert_allclose(freq, [0.5, 0.3, 0.2], atol=4 * np.sqrt(0.25 / 50_000))
    g = jo.GaussianMeasure(np.array([1.0, -1.0]), np.array([[2.0, 0.5], [0.5, 1.0]]))
    s = g.sample(jax.random.key(1), 100_000)
    np.testing.assert_allclose(np.cov(np.asarray(s).T), g.cov, atol=0.05)
