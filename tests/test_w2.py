"""Bures-Wasserstein closed forms and the small linear algebra behind them (``jaxotdm._linalg``)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.linalg import sqrtm

import jaxotdm as jo
from jaxotdm import _linalg as L


def _spd(rng, d, rank=None):
    a = rng.standard_normal((d, rank or d))
    return a @ a.T + (0.0 if rank else 0.1) * np.eye(d)


def _bures_ref(m1, s1, m2, s2):
    r1 = np.real(sqrtm(s1))
    cross = np.real(sqrtm(r1 @ s2 @ r1))
    return np.sqrt(max(np.sum((m1 - m2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(cross), 0.0))


@pytest.mark.parametrize("d", [1, 2, 5])
def test_bures_matches_scipy_reference(d):
    rng = np.random.default_rng(d)
    m1, m2 = rng.standard_normal(d), rng.standard_normal(d)
    s1, s2 = _spd(rng, d), _spd(rng, d)
    np.testing.assert_allclose(jo.bures_w2(m1, s1, m2, s2), _bures_ref(m1, s1, m2, s2), rtol=1e-10)
    np.testing.assert_allclose(L.bures_squared(m1, s1, m2, s2), _bures_ref(m1, s1, m2, s2) ** 2, rtol=1e-10)


def test_bures_accepts_singular_psd_covariances():
    rng = np.random.default_rng(0)
    s1 = _spd(rng, 4, rank=2)  # rank 2: PSD, singular
    s2 = _spd(rng, 4)
    m = np.zeros(4)
    np.testing.assert_allclose(jo.bures_w2(m, s1, m, s2), _bures_ref(m, s1, m, s2), rtol=1e-7)
    assert float(jo.bures_w2(m, np.zeros((4, 4)), m, np.zeros((4, 4)))) == 0.0


@pytest.mark.parametrize(
    ("cov", "match"),
    [
        (np.array([[1.0, 2.0], [2.0, 1.0]]), "positive semi-definite"),  # eigenvalue -1
        (np.array([[1.0, 0.9], [0.0, 1.0]]), "symmetric"),
        (np.array([[-1.0, 0.0], [0.0, 1.0]]), "positive semi-definite"),
        (np.array([[np.nan, 0.0], [0.0, 1.0]]), "non-finite"),
        (np.eye(3), "shape"),
    ],
)
@pytest.mark.parametrize("which", ["cov1", "cov2"])
def test_invalid_covariances_are_rejected_not_clipped(cov, match, which):
    """Before: a non-PSD or asymmetric covariance was symmetrised and its negative eigenvalues clipped, so
    bures_w2 returned a plausible number (0 for the first case) and gaussian_ot_map a map."""
    good = np.eye(2)
    args = {"mean1": np.zeros(2), "cov1": good, "mean2": np.zeros(2), "cov2": good, which: cov}
    with pytest.raises(ValueError, match=f"`{which}`.*{match}"):
        jo.bures_w2(**args)
    with pytest.raises(ValueError, match=f"`{which}`"):
        jo.gaussian_ot_map(**args)


def test_gaussian_ot_map_pushes_forward_and_is_symmetric_psd():
    rng = np.random.default_rng(3)
    d = 4
    m1, m2 = rng.standard_normal(d), rng.standard_normal(d)
    s1, s2 = _spd(rng, d), _spd(rng, d)
    a, b = jo.gaussian_ot_map(m1, s1, m2, s2)
    a, b = np.asarray(a), np.asarray(b)
    np.testing.assert_allclose(a, a.T, atol=1e-12)
    assert np.linalg.eigvalsh(a).min() > 0
    np.testing.assert_allclose(a @ m1 + b, m2, atol=1e-10)
    np.testing.assert_allclose(a @ s1 @ a.T, s2, atol=1e-9)
    # the map attains the Bures cost: E|x - T x|^2 = W2^2
    cost = np.trace((np.eye(d) - a) @ s1 @ (np.eye(d) - a).T) + np.sum((m1 - (a @ m1 + b)) ** 2)
    np.testing.assert_allclose(cost, float(jo.bures_w2(m1, s1, m2, s2)) ** 2, rtol=1e-9)


def test_gaussian_ot_map_needs_a_definite_source():
    with pytest.raises(ValueError, match="`cov1` must be positive definite"):
        jo.gaussian_ot_map(np.zeros(2), np.diag([1.0, 0.0]), np.zeros(2), np.eye(2))


def test_means_are_checked():
    with pytest.raises(ValueError, match="`mean2`"):
        jo.bures_w2(np.zeros(2), np.eye(2), np.zeros(3), np.eye(2))
    with pytest.raises(ValueError, match="`mean1`"):
        jo.bures_w2(np.array([np.nan, 0.0]), np.eye(2), np.zeros(2), np.eye(2))


def test_linalg_helpers():
    rng = np.random.default_rng(5)
    c = _spd(rng, 3)
    r = np.asarray(L.psd_sqrt(c))
    np.testing.assert_allclose(r @ r, c, atol=1e-10)
    np.testing.assert_allclose(np.asarray(L.psd_inv_sqrt(c)) @ r, np.eye(3), atol=1e-10)
    batch = jnp.stack([jnp.asarray(c), 2 * jnp.asarray(c)])
    np.testing.assert_allclose(jax.vmap(L.psd_sqrt)(batch)[1], np.sqrt(2) * r, atol=1e-10)
    s2 = _spd(rng, 3)
    np.testing.assert_allclose(L.sqrt_trace_product(c, s2), np.trace(np.real(sqrtm(r @ s2 @ r))), rtol=1e-10)


def test_bures_under_jit_and_float32():
    m, s = np.zeros(2), np.diag([1.0, 4.0])
    eager = jo.bures_w2(m, s, m + 1, 2 * s)
    jitted = jax.jit(jo.bures_w2)(m, s, m + 1, 2 * s)
    np.testing.assert_allclose(jitted, eager, rtol=1e-12)
    f32 = jo.bures_w2(m.astype(np.float32), s.astype(np.float32), (m + 1).astype(np.float32),
                      (2 * s).astype(np.float32))
    assert f32.dtype == jnp.float32
    np.testing.assert_allclose(f32, eager, rtol=1e-5)


@pytest.mark.parametrize("delta", [1e-4, 1e-8, 1e-12])
def test_bures_keeps_relative_accuracy_for_nearly_equal_covariances(delta):
    """W2 between N(0, S) and N(0, (1 + delta) S) is |sqrt(1 + delta) - 1| |S^{1/2}|_F exactly. The trace
    formula cancels tr S1 + tr S2 against 2 tr(...)^{1/2} and loses every digit once W2^2 ~ eps tr S."""
    rng = np.random.default_rng(7)
    v, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    lam = np.array([0.5, 1.0, 2.0])
    s1 = v @ np.diag(lam) @ v.T
    s2 = v @ np.diag(lam * (1 + delta)) @ v.T
    exact = abs(np.expm1(0.5 * np.log1p(delta))) * np.sqrt(lam.sum())
    got = float(jo.bures_w2(np.zeros(3), s1, np.zeros(3), s2))
    assert got == pytest.approx(exact, rel=1e-6)
    np.testing.assert_allclose(L.bures(np.zeros(3), s1, np.zeros(3), s1), 0.0, atol=1e-14)
