"""W2 estimators and entropic OT against scipy / POT / closed-form references (float64)."""

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment, linprog
from scipy.spatial.distance import cdist

from jaxotdm.ot import (
    bures_w2,
    gaussian_ot_map,
    pushforward_w2,
    semidiscrete_ot,
    sinkhorn,
    sinkhorn_divergence,
    w2_exact,
    w2_gaussian_to_discrete,
)


def _scipy_w2(x, y):
    c = cdist(x, y, "sqeuclidean")
    r, k = linear_sum_assignment(c)
    return math.sqrt(c[r, k].mean())


def _linprog_w2(x, y, a, b):
    c = cdist(x, y, "sqeuclidean")
    n, m = c.shape
    A = np.zeros((n + m, n * m))
    for i in range(n):
        A[i, i * m:(i + 1) * m] = 1
    for j in range(m):
        A[n + j, j::m] = 1
    res = linprog(c.ravel(), A_eq=A, b_eq=np.concatenate([a, b]), bounds=(0, None), method="highs")
    return math.sqrt(res.fun)


def test_w2_exact_matches_scipy_assignment():
    rng = np.random.default_rng(0)
    for n, d in [(5, 1), (40, 3), (200, 10)]:
        x, y = rng.standard_normal((n, d)), rng.standard_normal((n, d)) + 0.5
        assert w2_exact(x, y) == pytest.approx(_scipy_w2(x, y), rel=1e-12)
    # 1-D: the sorted matching is optimal
    x, y = rng.standard_normal((50, 1)), rng.standard_normal((50, 1)) * 2
    ref = math.sqrt(np.mean((np.sort(x[:, 0]) - np.sort(y[:, 0])) ** 2))
    assert w2_exact(x, y) == pytest.approx(ref, rel=1e-12)


def test_w2_exact_weighted_matches_linprog():
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((12, 2)), rng.standard_normal((9, 2)) + 1
    a, b = rng.uniform(0.2, 1, 12), rng.uniform(0.2, 1, 9)
    a, b = a / a.sum(), b / b.sum()
    assert w2_exact(x, y, a, b) == pytest.approx(_linprog_w2(x, y, a, b), rel=1e-7)


def test_w2_exact_refuses_large_and_bad_input():
    with pytest.raises(ValueError, match="limited"):
        w2_exact(np.zeros((6001, 2)), np.zeros((10, 2)))
    with pytest.raises(ValueError, match="dimension"):
        w2_exact(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="sum to one"):
        w2_exact(np.zeros((3, 2)), np.ones((3, 2)), a=[0.5, 0.5, 0.5])
    with pytest.raises(ValueError, match="non-finite"):
        w2_exact(np.full((3, 2), np.nan), np.ones((3, 2)))


def test_bures_closed_forms():
    # 1-D: W2 = sqrt((m1 - m2)^2 + (s1 - s2)^2)
    w = bures_w2(jnp.array([1.0]), jnp.array([[4.0]]), jnp.array([-1.0]), jnp.array([[9.0]]))
    assert float(w) == pytest.approx(math.sqrt(4 + 1), rel=1e-12)
    # commuting covariances: sum over eigen-directions
    s1, s2 = jnp.diag(jnp.array([1.0, 4.0])), jnp.diag(jnp.array([9.0, 1.0]))
    assert float(bures_w2(jnp.zeros(2), s1, jnp.zeros(2), s2)) == pytest.approx(math.sqrt(4 + 1), rel=1e-12)
    assert float(bures_w2(jnp.zeros(2), s1, jnp.zeros(2), s1)) == pytest.approx(0.0, abs=1e-7)


def test_gaussian_ot_map_pushes_and_matches_bures():
    rng = np.random.default_rng(2)
    d = 4
    a1, a2 = rng.standard_normal((d, d)), rng.standard_normal((d, d))
    s1, s2 = a1 @ a1.T + 0.5 * np.eye(d), a2 @ a2.T + 0.5 * np.eye(d)
    m1, m2 = rng.standard_normal(d), rng.standard_normal(d)
    A, b = gaussian_ot_map(m1, s1, m2, s2)
    A, b = np.asarray(A), np.asarray(b)
    np.testing.assert_allclose(A, A.T, atol=1e-10)
    assert np.linalg.eigvalsh(A).min() > 0  # gradient of a convex function
    np.testing.assert_allclose(A @ s1 @ A.T, s2, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(A @ m1 + b, m2, atol=1e-10)
    # the map's cost E|x - T x|^2 equals Bures W2^2
    cost = np.sum((m1 - (A @ m1 + b)) ** 2) + np.trace((np.eye(d) - A) @ s1 @ (np.eye(d) - A).T)
    assert math.sqrt(cost) == pytest.approx(float(bures_w2(m1, s1, m2, s2)), rel=1e-9)


@pytest.mark.parametrize("n, rel", [(1200, 0.05), pytest.param(3000, 0.03, marks=pytest.mark.slow)])
def test_bures_agrees_with_sample_w2_on_large_gaussian_samples(n, rel):
    rng = np.random.default_rng(3)
    m1, m2 = np.zeros(2), np.array([2.0, -1.0])
    s1 = np.array([[1.0, 0.3], [0.3, 0.5]])
    s2 = np.array([[2.0, -0.4], [-0.4, 1.0]])
    x = rng.multivariate_normal(m1, s1, n)
    y = rng.multivariate_normal(m2, s2, n)
    w_samples = w2_exact(x, y)
    w_closed = float(bures_w2(m1, s1, m2, s2))
    assert w_samples == pytest.approx(w_closed, rel=rel)


def test_sinkhorn_and_divergence():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((150, 2))
    y = rng.standard_normal((120, 2)) * 0.7 + np.array([1.5, 0.0])
    out = sinkhorn(x, y, epsilon=0.01)
    assert bool(out.converged)
    np.testing.assert_allclose(np.asarray(out.matrix.sum(1)), np.full(150, 1 / 150), atol=1e-4 / 150 * 10)
    w2sq = w2_exact(x, y) ** 2
    assert float(out.primal_cost) >= w2sq - 1e-6
    assert float(out.primal_cost) == pytest.approx(w2sq, rel=0.05)
    div = float(sinkhorn_divergence(x, y, epsilon=0.01))
    assert div == pytest.approx(w2sq, rel=0.05)
    assert abs(float(sinkhorn_divergence(x, x, epsilon=0.01))) < 1e-3
    with pytest.raises(ValueError, match="epsilon"):
        sinkhorn(x, y, epsilon=0.0)
    with pytest.raises(ValueError, match="dimension"):
        sinkhorn_divergence(x, np.zeros((3, 3)), epsilon=0.1)


def _ott_primal_cost(x, y, epsilon, threshold):
    """ott-jax's own ``SinkhornOutput.primal_cost`` (the previous definition of ``primal_cost``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from ott.geometry import pointcloud
        from ott.problems.linear import linear_problem
        from ott.solvers.linear import sinkhorn as sk
    prob = linear_problem.LinearProblem(pointcloud.PointCloud(x, y, epsilon=epsilon))
    return float(sk.Sinkhorn(threshold=threshold)(prob).primal_cost)


@pytest.mark.parametrize("n, m", [(150, 120), (1100, 37)])  # 1100 x 37 > 2^20 / 37 rows: several blocks
def test_sinkhorn_primal_cost_is_ott_primal_cost_and_plan_cost(n, m):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((n, 3))
    y = rng.standard_normal((m, 3)) * 0.7 + 1.0
    out = sinkhorn(x, y, epsilon=0.1, threshold=1e-6)
    assert out.primal_cost.dtype == jnp.float64
    # numpy reference: the plan ott returns against the exact squared distances
    ref = float(np.sum(np.asarray(out.matrix) * cdist(x, y, "sqeuclidean")))
    assert float(out.primal_cost) == pytest.approx(ref, rel=1e-11)
    assert float(out.primal_cost) == pytest.approx(_ott_primal_cost(x, y, 0.1, 1e-6), rel=1e-11)
    # the plan built from the returned potentials is that plan
    P = np.exp((np.asarray(out.f)[:, None] + np.asarray(out.g)[None, :] - cdist(x, y, "sqeuclidean")) / 0.1)
    np.testing.assert_allclose(P, np.asarray(out.matrix), rtol=1e-9, atol=1e-300)
    no_matrix = sinkhorn(x, y, epsilon=0.1, threshold=1e-6, return_matrix=False)
    assert no_matrix.matrix is None and float(no_matrix.primal_cost) == float(out.primal_cost)


def test_sinkhorn_primal_cost_float32_matches_float64():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((300, 8))
    y = rng.standard_normal((300, 8)) + 0.5
    c64 = float(sinkhorn(x, y, epsilon=1.0, threshold=1e-5).primal_cost)
    out32 = sinkhorn(x.astype(np.float32), y.astype(np.float32), epsilon=1.0, threshold=1e-5)
    assert out32.primal_cost.dtype == jnp.float32
    assert float(out32.primal_cost) == pytest.approx(c64, rel=1e-5)


def test_sinkhorn_works_inside_user_jit_and_matches_eager():
    rng = np.random.default_rng(8)
    x = jnp.asarray(rng.standard_normal((80, 2)))
    y = jnp.asarray(rng.standard_normal((70, 2)) + 1.0)
    eager = sinkhorn(x, y, epsilon=0.05)
    jitted = jax.jit(lambda a, b: sinkhorn(a, b, epsilon=0.05).primal_cost)(x, y)
    assert float(jitted) == pytest.approx(float(eager.primal_cost), rel=1e-12)
    # concrete (closed-over) clouds and weights inside jit: validated in numpy, no tracer bool conversion
    w = np.full(70, 1 / 70)
    closed = jax.jit(lambda a: sinkhorn(a, y, b=w, epsilon=0.05).reg_ot_cost)(x)
    assert float(closed) == pytest.approx(float(eager.reg_ot_cost), rel=1e-12)
    # epsilon traced too
    traced_eps = jax.jit(lambda a, b, e: sinkhorn(a, b, epsilon=e).primal_cost)(x, y, 0.05)
    assert float(traced_eps) == pytest.approx(float(eager.primal_cost), rel=1e-12)
    div = jax.jit(lambda a, b: sinkhorn_divergence(a, b, epsilon=0.05))(x, y)
    assert float(div) == pytest.approx(float(sinkhorn_divergence(x, y, epsilon=0.05)), rel=1e-12)
    # gradients through the streamed transport cost (ott's implicit diff uses lineax's deprecated NormalCG)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "`NormalCG", DeprecationWarning)
        grad = jax.grad(lambda a: sinkhorn(a, y, epsilon=0.05).primal_cost)(x)
    assert grad.shape == x.shape and bool(jnp.all(jnp.isfinite(grad)))


def test_sinkhorn_bad_input():
    x, y = np.zeros((4, 2)), np.ones((3, 2))
    for eps in (0.0, -1.0, float("nan"), float("inf"), "a"):
        with pytest.raises(ValueError, match="epsilon"):
            sinkhorn(x, y, epsilon=eps)
    with pytest.raises(ValueError, match="`x`.*non-finite"):
        sinkhorn(np.full((4, 2), np.nan), y, epsilon=0.1)
    with pytest.raises(ValueError, match="`b` must sum to one"):
        sinkhorn(x, y, b=[0.5, 0.5, 0.5], epsilon=0.1)
    with pytest.raises(ValueError, match="`a` must be non-negative"):
        sinkhorn(x, y, a=[1.5, -0.5, 0.0, 0.0], epsilon=0.1)
    with pytest.raises(ValueError, match="`a` must have shape"):
        sinkhorn(x, y, a=[0.5, 0.5], epsilon=0.1)
    with pytest.raises(ValueError, match="`b` must sum to one"):  # inside jit, concrete weights still checked
        jax.jit(lambda a: sinkhorn(a, y, b=[0.5, 0.5, 0.5], epsilon=0.1).primal_cost)(x)


def test_w2_gaussian_to_two_points_closed_form():
    # T sends {z_1 > 0} to a e_1 and {z_1 < 0} to -a e_1: E|z - T z|^2 = d + a^2 - 2 a sqrt(2 / pi)
    a, d = 1.5, 3
    x = np.zeros((2, d))
    x[0, 0], x[1, 0] = a, -a
    smap = semidiscrete_ot(x, key=jax.random.key(0), tol=0.01)
    est = w2_gaussian_to_discrete(smap, key=jax.random.key(1), num_samples=2**17)
    ref = math.sqrt(d + a * a - 2 * a * math.sqrt(2 / math.pi))
    # map error: boundary offset |dh|/(2a) moves mass ~ tol; contributes < 0.01 to W2
    assert abs(float(est.value) - ref) <= 4 * float(est.standard_error) + 0.01
    assert float(est.standard_error) < 0.01
    # the same through targets (solves internally)
    est2 = w2_gaussian_to_discrete(x, key=jax.random.key(2), num_samples=2**16, tol=0.02)
    assert abs(float(est2.value) - ref) <= 4 * float(est2.standard_error) + 0.02


def test_pushforward_w2():
    x = np.array([[0.0, 0.0], [3.0, 4.0]])
    nu = np.array([0.5, 0.5])
    assert pushforward_w2(x, nu, nu) == pytest.approx(0.0, abs=1e-12)
    # moving mass delta across distance 5: W2 = 5 sqrt(delta)
    delta = 0.04
    assert pushforward_w2(x, [0.5 + delta, 0.5 - delta], nu) == pytest.approx(5 * math.sqrt(delta), rel=1e-9)
    # for a solved map the pushforward W2 is small, for perturbed heights it is not
    rng = np.random.default_rng(5)
    pts = rng.standard_normal((6, 2))
    smap = semidiscrete_ot(pts, key=jax.random.key(3), tol=0.02)
    good = pushforward_w2(pts, smap.certificate.masses)
    smap_bad = smap.replace(heights=smap.heights + jnp.linspace(-0.5, 0.5, 6))
    bad = pushforward_w2(pts, smap_bad.cell_masses(key=jax.random.key(4), num_samples=2**17))
    assert good < 0.25 * bad


def test_entropic_ot_alias_is_gone():
    """No legacy surface before 0.1.0 (issue 21): `sinkhorn` is the one name."""
    import jaxotdm.ot as jot

    assert not hasattr(jot, "entropic_ot") and "entropic_ot" not in jot.__all__ and "sinkhorn" in jot.__all__
