"""Exact scores: autodiff agreement, numpy reference, chunking, tiny sigma, memory bound, jit."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp

import jaxotdm as jo

SCHEDULES = [jo.OU(), jo.VPLinear(), jo.SubVP(), jo.Cosine(), jo.VE(), jo.EDM()]


def _data(n=13, d=3, seed=0):
    rng = np.random.default_rng(seed)
    pts = rng.normal(size=(n, d)) * 2.0
    w = rng.uniform(0.5, 1.5, n)
    return jo.EmpiricalMeasure(pts, w / w.sum()), rng


def numpy_reference(points, weights, x, a, s2):
    """Direct formulas in numpy float64 (distances formed explicitly)."""
    diff = x[:, None, :] - a * points[None, :, :]
    logits = np.log(weights)[None, :] - np.sum(diff**2, -1) / (2 * s2)
    lse = logsumexp(logits, axis=1)
    pi = np.exp(logits - lse[:, None])
    m = pi @ points
    d = x.shape[1]
    log_p = lse - 0.5 * d * np.log(2 * np.pi * s2)
    return log_p, m, (a * m - x) / s2


@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: type(s).__name__)
@pytest.mark.parametrize("t", [0.02, 0.3, 0.9])
def test_score_matches_numpy_reference_and_autodiff(schedule, t):
    mu, rng = _data()
    x = rng.normal(size=(7, 3)) * 1.5
    score = jo.exact_score(mu, schedule, chunk_size=4)
    a, s2 = float(schedule.alpha(t)), float(schedule.sigma2(t))
    log_p, m, sc = numpy_reference(np.asarray(mu.points), np.asarray(mu.weights), x, a, s2)
    np.testing.assert_allclose(score.log_density(x, t), log_p, rtol=1e-12)
    np.testing.assert_allclose(score.denoiser(x, t), m, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(score(x, t), sc, rtol=1e-10, atol=1e-10 * np.abs(sc).max())
    auto = jax.vmap(jax.grad(lambda xi: score.log_density(xi, t)))(jnp.asarray(x))
    np.testing.assert_allclose(score(x, t), auto, rtol=1e-10, atol=1e-10 * np.abs(sc).max())


def test_chunked_and_unchunked_agree_with_padding_and_query_blocks():
    mu, rng = _data(n=37, d=5)
    x = rng.normal(size=(4, 6, 5))
    t = jnp.linspace(0.05, 0.9, 24).reshape(4, 6)
    ref = jo.exact_score(mu, jo.OU(), chunk_size=37)
    for chunk, qchunk in [(1, 4096), (5, 4096), (16, 7), (64, 3)]:
        got = jo.exact_score(mu, jo.OU(), chunk_size=chunk, query_chunk_size=qchunk)
        np.testing.assert_allclose(got(x, t), ref(x, t), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(got.log_density(x, t), ref.log_density(x, t), rtol=1e-12)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_no_nan_or_inf_for_tiny_sigma_and_far_points(dtype):
    mu = jo.EmpiricalMeasure(jnp.array([[0.0, 0.0], [1.0, 1.0], [-3.0, 2.0]], dtype))
    x = jnp.array([[1e3, -1e3], [0.5, 0.5], [1.0, 1.0], [-1e4, 5.0]], dtype)
    for s in SCHEDULES:
        score = jo.exact_score(mu, s)
        for t in [1e-8, 1e-4, 0.5]:
            out = score(x, jnp.asarray(t, dtype))
            assert out.dtype == dtype
            assert bool(jnp.all(jnp.isfinite(out))), (type(s).__name__, t)
            assert bool(jnp.all(jnp.isfinite(score.log_density(x, jnp.asarray(t, dtype)))))
    # At a far point the posterior is the nearest data point (here the origin): score = (alpha y* - x) / sigma^2.
    s = jo.OU()
    got = jo.exact_score(mu, s)(x[:1], jnp.asarray(1e-4, dtype))
    ref = (s.alpha(1e-4) * jnp.array([[0.0, 0.0]]) - x[:1].astype(jnp.float64)) / s.sigma2(1e-4)
    np.testing.assert_allclose(np.asarray(got, np.float64), ref, rtol=1e-5 if dtype == jnp.float32 else 1e-10)


def test_float32_matches_float64():
    mu64, rng = _data(n=50, d=4)
    mu32 = jo.EmpiricalMeasure(np.asarray(mu64.points, np.float32), np.asarray(mu64.weights, np.float32))
    x = rng.normal(size=(20, 4))
    s = jo.VPLinear()
    for t in [0.05, 0.5]:
        a = jo.exact_score(mu64, s)(x, t)
        b = jo.exact_score(mu32, s)(jnp.asarray(x, jnp.float32), jnp.float32(t))
        assert b.dtype == jnp.float32
        np.testing.assert_allclose(b, a, rtol=2e-4, atol=2e-4 * float(jnp.abs(a).max()))


def test_differentiable_in_points():
    mu, rng = _data(n=6, d=2)
    x = jnp.asarray(rng.normal(size=(3, 2)))
    s = jo.OU()

    def f(points):
        m = jo.EmpiricalMeasure(points, mu.weights)
        return jnp.sum(jo.exact_score(m, s, chunk_size=4)(x, 0.4) ** 2)

    g = jax.grad(f)(mu.points)
    assert bool(jnp.all(jnp.isfinite(g)))
    e = jnp.zeros_like(mu.points).at[2, 1].set(1e-6)
    fd = (f(mu.points + e) - f(mu.points - e)) / 2e-6
    np.testing.assert_allclose(g[2, 1], fd, rtol=1e-6)


def test_gaussian_measure_score_is_closed_form():
    mean = jnp.array([1.0, -2.0])
    cov = jnp.array([[2.0, 0.3], [0.3, 0.5]])
    g = jo.GaussianMeasure(mean, cov)
    s = jo.VE()
    t = 0.3
    x = jax.random.normal(jax.random.key(0), (5, 2))
    score = jo.exact_score(g, s)
    c = s.alpha(t) ** 2 * cov + s.sigma2(t) * jnp.eye(2)
    ref = -jnp.linalg.solve(c, (x - s.alpha(t) * mean).T).T
    np.testing.assert_allclose(score(x, t), ref, rtol=1e-12)
    auto = jax.vmap(jax.grad(lambda xi: score.log_density(xi, t)))(x)
    np.testing.assert_allclose(auto, ref, rtol=1e-10)
    from scipy.stats import multivariate_normal

    np.testing.assert_allclose(
        score.log_density(x, t), multivariate_normal(np.asarray(s.alpha(t) * mean), np.asarray(c)).logpdf(x), rtol=1e-12
    )


def test_never_materialises_queries_points_dims():
    q, n, d = 64, 256, 16
    mu = jo.EmpiricalMeasure(np.random.default_rng(0).normal(size=(n, d)))
    score = jo.exact_score(mu, jo.OU(), chunk_size=64)
    jaxpr = jax.make_jaxpr(lambda x: score(x, 0.5))(jnp.zeros((q, d)))
    biggest = 0

    def walk(jx):
        nonlocal biggest
        for eqn in jx.eqns:
            for v in eqn.outvars:
                biggest = max(biggest, math.prod(getattr(v.aval, "shape", ())))
            for p in eqn.params.values():
                for sub in p if isinstance(p, (list, tuple)) else [p]:
                    inner = getattr(sub, "jaxpr", None)
                    if inner is not None:
                        walk(getattr(inner, "jaxpr", inner))

    walk(jaxpr.jaxpr)
    assert biggest < q * n * d // 8, biggest
    assert biggest >= n * d  # the points themselves


def test_jit_matches_eager_and_no_retrace():
    mu, rng = _data()
    score = jo.exact_score(mu, jo.OU())
    traces = []

    @jax.jit
    def f(sc, x, t):
        traces.append(1)
        return sc(x, t)

    x = jnp.asarray(rng.normal(size=(4, 3)))
    np.testing.assert_allclose(f(score, x, 0.5), score(x, 0.5), rtol=1e-13)
    f(score, x + 1.0, 0.7)
    mu2 = jo.EmpiricalMeasure(np.asarray(mu.points) + 1.0, mu.weights)
    f(jo.exact_score(mu2, jo.OU()), x, 0.2)
    assert len(traces) == 1


def test_bad_input():
    mu, _ = _data()
    score = jo.exact_score(mu, jo.OU())
    with pytest.raises(ValueError, match="`x`"):
        score(jnp.zeros((2, 4)), 0.5)
    with pytest.raises(ValueError, match="`x`"):
        score(jnp.array([[np.nan, 0.0, 0.0]]), 0.5)
    with pytest.raises(ValueError, match="`t`"):
        score(jnp.zeros((2, 3)), 0.0)
    with pytest.raises(ValueError, match="`t`"):
        score(jnp.zeros((2, 3)), -1.0)
    with pytest.raises(ValueError, match="`t`"):
        jo.exact_score(mu, jo.Cosine())(jnp.zeros((2, 3)), 1.0)
    with pytest.raises(ValueError, match="chunk_size"):
        jo.exact_score(mu, jo.OU(), chunk_size=0)
    with pytest.raises(ValueError, match="measure"):
        jo.exact_score(np.zeros((3, 3)), jo.OU())
    with pytest.raises(ValueError, match="schedule"):
        jo.exact_score(mu, "ou")


def test_posterior_mode_matches_numpy_argmax():
    mu, rng = _data(n=41, d=3)
    x = rng.normal(size=(50, 3)) * 2
    s = jo.OU()
    for t in [1e-3, 0.4]:
        got = jo.exact_score(mu, s, chunk_size=8).posterior_mode(x, t)
        a, s2 = float(s.alpha(t)), float(s.sigma2(t))
        logits = np.log(np.asarray(mu.weights))[None] - ((x[:, None] - a * np.asarray(mu.points)[None]) ** 2).sum(-1) / (2 * s2)
        np.testing.assert_array_equal(got, logits.argmax(1))
    with pytest.raises(ValueError, match="measure"):
        jo.exact_score(jo.GaussianMeasure(np.zeros(3), np.eye(3)), s).posterior_mode(x, 0.5)


@pytest.mark.parametrize("method", ["__call__", "denoiser", "log_density"])
@pytest.mark.parametrize("bad", [-0.5, float("nan"), 1.5], ids=["negative", "nan", "past_t_max"])
def test_bad_time_under_jit_raises_at_run_time(method, bad):
    """Issue 23 item 8: eagerly a bad time raised, but under jit the exact score returned finite numbers for a
    negative time. Decision: the exact and learned scores check the time inside the trace (eqx.error_if: finite,
    > 0, < t_max), so the README promise holds under jit too; representability is checked eagerly only."""
    from jaxotdm.networks import MLP, ScoreModel

    mu = jo.EmpiricalMeasure(jnp.array([[-1.0, 0.0], [1.0, 0.0]]))
    x = jnp.zeros((3, 2))
    good = 0.5
    for sched in (jo.Cosine(), jo.OU()):
        if bad == 1.5 and sched.t_max == float("inf"):
            continue
        sc = jo.exact_score(mu, sched)
        f = jax.jit(lambda x, t, sc=sc: getattr(sc, method)(x, t))
        assert bool(jnp.all(jnp.isfinite(f(x, good))))
        with pytest.raises(Exception, match="`t` must be finite, > 0"):
            jax.block_until_ready(f(x, bad))
    if method == "log_density":
        return
    model = ScoreModel(MLP(features=4, depth=1), jo.Cosine())
    learned = model.bind(model.init(jax.random.key(0), x))
    g = jax.jit(lambda x, t: getattr(learned, method)(x, t))
    assert bool(jnp.all(jnp.isfinite(g(x, good))))
    with pytest.raises(Exception, match="`t` must be finite, > 0"):
        jax.block_until_ready(g(x, bad))
