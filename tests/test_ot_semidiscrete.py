"""Semi-discrete OT: closed forms, deterministic quadrature, pushforward, smoothing, solvers, bad input."""

import math
import resource
import warnings

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import jaxotdm as jo
from jaxotdm._pytree import pytree_dataclass
from jaxotdm._status import ConvergenceWarning, Status
from jaxotdm.measures import GaussianMeasure
from jaxotdm.ot import (
    AdamSolver,
    CandidateNewtonSolver,
    HybridNewtonSolver,
    NewtonSolver,
    OTTSolver,
    SemidiscreteDiagnostics,
    SemidiscreteHistory,
    SemidiscreteMap,
    SemidiscreteSolver,
    cell_masses,
    semidiscrete_ot,
)
from jaxotdm.ot.semidiscrete import _make_problem


def _quadrature_masses_2d(x, h, num_angles=4096):
    """Gaussian masses of the Laguerre cells in 2-D by deterministic quadrature.

    Along each ray ``z = r theta`` the score of target ``i`` is the line ``h_i + r <theta, x_i>``; the
    upper envelope of the lines is walked exactly and the radial law (``P(|z| <= r) = 1 - exp(-r^2/2)``)
    integrated exactly between breakpoints. The angle is integrated with the periodic trapezoid rule.
    """
    x = np.asarray(x, np.float64)
    h = np.asarray(h, np.float64)
    n = len(h)
    masses = np.zeros(n)
    cdf = lambda r: -math.expm1(-0.5 * r * r) if np.isfinite(r) else 1.0
    for t in 2 * np.pi * np.arange(num_angles) / num_angles:
        s = x @ np.array([np.cos(t), np.sin(t)])
        i = max(range(n), key=lambda k: (h[k], s[k]))
        r = 0.0
        while True:
            cand = [((h[i] - h[j]) / (s[j] - s[i]), j) for j in range(n) if s[j] > s[i]]
            cand = [(rr, j) for rr, j in cand if rr >= r]
            if not cand:
                masses[i] += 1.0 - cdf(r)
                break
            r_next = min(rr for rr, _ in cand)
            j = max((jj for rr, jj in cand if rr == r_next), key=lambda k: s[k])
            masses[i] += cdf(r_next) - cdf(r)
            r, i = r_next, j
    return masses / num_angles


def _two_target_gap(x, nu):
    """``h_2 - h_1`` solving ``P(<z, x_1 - x_2> >= h_2 - h_1) = nu_1`` for ``z ~ N(0, I)``."""
    dx = np.linalg.norm(np.asarray(x[0]) - np.asarray(x[1]))
    return dx * stats.norm.ppf(1.0 - nu[0])


# ---------------------------------------------------------------------------------------------------
# closed forms and quadrature
# ---------------------------------------------------------------------------------------------------


def test_quadrature_reference_matches_two_target_closed_form():
    x = np.array([[-1.0, 0.0], [1.0, 0.5]])
    h = np.array([0.2, -0.3])
    m = _quadrature_masses_2d(x, h, 2048)
    expected1 = stats.norm.sf((h[1] - h[0]) / np.linalg.norm(x[0] - x[1]))
    np.testing.assert_allclose(m, [expected1, 1 - expected1], atol=2e-6)


@pytest.mark.parametrize("d", [2, 5])
def test_two_targets_heights_match_normal_cdf_closed_form(d):
    rng = np.random.default_rng(d)
    x = rng.standard_normal((2, d))
    nu = np.array([0.3, 0.7])
    tol = 0.01
    smap = semidiscrete_ot(x, nu, key=jax.random.key(0), tol=tol)
    h = np.asarray(smap.heights)
    assert abs(h.mean()) < 1e-12
    gap = _two_target_gap(x, nu)
    # a relative mass error tol on cell 1 moves the boundary by tol * nu_1 / phi(q) in units of |x1 - x2|
    dx = np.linalg.norm(x[0] - x[1])
    slack = tol * nu[0] / stats.norm.pdf(stats.norm.ppf(1 - nu[0])) * dx
    assert abs((h[1] - h[0]) - gap) <= slack
    # the exact cell masses for the returned heights
    m1 = stats.norm.sf((h[1] - h[0]) / dx)
    assert abs(m1 - nu[0]) / nu[0] <= tol
    assert bool(smap.diagnostics.converged)


def test_2d_quadrature_cell_masses_match_weights_within_tol():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((7, 2)) * 1.5 + np.array([0.5, -0.2])
    nu = rng.uniform(0.5, 1.5, 7)
    nu /= nu.sum()
    tol = 0.05
    smap = semidiscrete_ot(x, nu, key=jax.random.key(1), tol=tol)
    m = _quadrature_masses_2d(x, np.asarray(smap.heights), 2048)
    rel = np.abs(m - nu) / nu
    assert rel.max() <= tol, rel
    # and the certificate (fresh Monte Carlo sample) agrees with the quadrature up to its resolution
    cert = smap.certificate
    mc_rel = np.abs(np.asarray(cert.masses) - m) / nu
    assert mc_rel.max() <= 5 * float(np.max(np.sqrt(nu * (1 - nu) / int(cert.num_samples)) / nu))


@pytest.mark.parametrize("k", [4, pytest.param(6, marks=pytest.mark.slow)])
def test_symmetric_configurations_give_equal_heights(k):
    angles = 2 * np.pi * np.arange(k) / k + 0.3
    x = 1.7 * np.stack([np.cos(angles), np.sin(angles)], 1)
    smap = semidiscrete_ot(x, key=jax.random.key(2), tol=0.02)
    h = np.asarray(smap.heights)
    m = _quadrature_masses_2d(x, h, 2048)
    assert np.abs(m * k - 1).max() <= 0.02
    # by symmetry the optimum is h = 0; a 2% mass error bounds |h| by ~0.02 * (1/k) / boundary density
    assert np.abs(h).max() <= 0.02


# ---------------------------------------------------------------------------------------------------
# pushforward, smoothing, map API
# ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smap_3d():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((10, 3))
    nu = rng.uniform(0.5, 1.5, 10)
    nu /= nu.sum()
    return semidiscrete_ot(x, nu, key=jax.random.key(3), tol=0.02)


def test_pushforward_chi_square(smap_3d):
    num = 20000
    z = jax.random.normal(jax.random.key(11), (num, 3))
    y = np.asarray(smap_3d.transport(z))
    x = np.asarray(smap_3d.targets)
    idx = np.argmin(((y[:, None, :] - x[None]) ** 2).sum(-1), axis=1)
    assert np.allclose(y, x[idx])  # the hard map lands exactly on targets
    counts = np.bincount(idx, minlength=len(x))
    nu = np.asarray(smap_3d.weights)
    p = stats.chisquare(counts, num * nu).pvalue
    assert p > 1e-3, p
    # and a wrong target law is rejected by the same test (the test has power)
    assert stats.chisquare(counts, num * np.roll(nu, 1)).pvalue < 1e-6


def test_smoothed_potential_error_bound_and_hard_limit(smap_3d):
    z = jax.random.normal(jax.random.key(12), (4000, 3))
    u = smap_3d.potential(z)
    n = smap_3d.num_targets
    for tau in [1.0, 0.1, 0.01]:
        ut = smap_3d.potential(z, tau=tau)
        diff = np.asarray(u - ut)
        assert diff.min() >= -1e-10
        assert diff.max() <= tau * math.log(n) + 1e-10
    hard = np.asarray(smap_3d.transport(z))
    errs = [float(np.mean(np.linalg.norm(np.asarray(smap_3d.transport(z, tau=t)) - hard, axis=-1)))
            for t in [0.1, 0.01, 0.001]]
    assert errs[0] > errs[1] > errs[2]
    assert errs[2] < 1e-2
    same = np.all(np.isclose(np.asarray(smap_3d.transport(z, tau=1e-4)), hard, atol=1e-6), axis=-1)
    assert same.mean() > 0.99


def test_assign_potential_transport_consistent(smap_3d):
    z = jax.random.normal(jax.random.key(13), (5, 7, 3))
    i = smap_3d.assign(z)
    assert i.shape == (5, 7)
    x = np.asarray(smap_3d.targets)
    h = np.asarray(smap_3d.heights)
    scores = np.asarray(z) @ x.T + h
    np.testing.assert_array_equal(np.asarray(i), scores.argmax(-1))
    np.testing.assert_allclose(np.asarray(smap_3d.potential(z)), scores.max(-1), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(smap_3d.transport(z)), x[scores.argmax(-1)])


def test_jit_vs_eager_and_pytree(smap_3d):
    z = jax.random.normal(jax.random.key(14), (64, 3))

    @jax.jit
    def f(m, z):
        return m.transport(z, tau=0.05), m.potential(z), m.assign(z)

    eager = (smap_3d.transport(z, tau=0.05), smap_3d.potential(z), smap_3d.assign(z))
    for a, b in zip(f(smap_3d, z), eager, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12)
    leaves = jax.tree_util.tree_leaves(smap_3d)
    assert any(leaf is smap_3d.heights for leaf in leaves)
    with pytest.raises(Exception):  # noqa: B017 - frozen dataclass
        smap_3d.heights = None


def test_chunked_queries_and_targets_match_unchunked():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((37, 4)))
    h = jnp.asarray(rng.standard_normal(37))
    w = jnp.full((37,), 1 / 37)
    a = SemidiscreteMap(x, w, h, chunk_size=5, query_chunk_size=16)
    b = SemidiscreteMap(x, w, h)
    z = jax.random.normal(jax.random.key(0), (100, 4))
    np.testing.assert_array_equal(np.asarray(a.assign(z)), np.asarray(b.assign(z)))
    np.testing.assert_allclose(np.asarray(a.transport(z, tau=0.3)), np.asarray(b.transport(z, tau=0.3)), rtol=1e-10)
    np.testing.assert_allclose(np.asarray(a.potential(z, tau=0.3)), np.asarray(b.potential(z, tau=0.3)), rtol=1e-10)


def test_float32_path_matches_float64(smap_3d):
    x = np.asarray(smap_3d.targets, np.float32)
    nu = np.asarray(smap_3d.weights, np.float32)
    nu = nu / nu.sum()
    s32 = semidiscrete_ot(x, nu, key=jax.random.key(4), tol=0.02)
    assert s32.heights.dtype == jnp.float32 and smap_3d.heights.dtype == jnp.float64
    assert float(s32.certificate.max_relative_error) <= 0.02 + 3 * float(s32.certificate.noise_floor)
    np.testing.assert_allclose(np.asarray(s32.heights), np.asarray(smap_3d.heights), atol=0.03)


def test_certificate_is_fresh_and_honest():
    x = np.random.default_rng(9).standard_normal((10, 3))
    smap = semidiscrete_ot(x, key=jax.random.key(5), tol=0.05, sampling=jo.SemidiscreteSampling(certificate_samples=2**19))
    c = smap.certificate
    assert int(c.num_samples) == 2**19
    # measured on an independent sample: differs from the solver's in-sample error
    assert float(c.max_relative_error) != float(smap.diagnostics.insample_error)
    assert float(c.max_relative_error) <= 0.05
    nu = 1 / 10
    np.testing.assert_allclose(float(c.standard_error), math.sqrt(nu * (1 - nu) / 2**19) / nu, rtol=1e-6)
    assert float(c.noise_floor) > float(c.standard_error)
    # a deliberately wrong map is caught by the certificate
    bad = cell_masses(x, np.asarray(smap.heights) + np.linspace(-0.3, 0.3, 10), key=jax.random.key(6),
                      num_samples=2**16)
    assert np.abs(np.asarray(bad) / nu - 1).max() > 0.2
    hist = smap.diagnostics.history
    k = int(smap.diagnostics.iterations)
    assert np.all(np.isfinite(np.asarray(hist["max_relative_error"][:k])))
    assert smap.diagnostics.solver == HybridNewtonSolver.name  # the default


# ---------------------------------------------------------------------------------------------------
# solvers agree; init/step interface; retrace guard
# ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_problem():
    rng = np.random.default_rng(21)
    x = rng.standard_normal((4, 2))
    nu = np.array([0.1, 0.2, 0.3, 0.4])
    ref = semidiscrete_ot(x, nu, key=jax.random.key(0), tol=0.01)
    return x, nu, np.asarray(ref.heights)


def _slack(x, nu, h, tol):
    """Relative cell-mass errors of ``h`` by quadrature."""
    del tol
    m = _quadrature_masses_2d(x, h, 1024)
    return np.abs(m - nu) / nu


def test_ott_solver_agrees(small_problem):
    x, nu, h_ref = small_problem
    smap = semidiscrete_ot(x, nu, key=jax.random.key(1), tol=0.05, solver=OTTSolver())
    rel = _slack(x, nu, np.asarray(smap.heights), 0.05)
    assert rel.max() <= 0.05, rel
    np.testing.assert_allclose(np.asarray(smap.heights), h_ref, atol=0.05)


def test_adam_algorithm1_agrees(small_problem):
    x, nu, h_ref = small_problem
    smap = semidiscrete_ot(x, nu, key=jax.random.key(2), tol=0.05, solver=AdamSolver())
    rel = _slack(x, nu, np.asarray(smap.heights), 0.05)
    assert rel.max() <= 0.05, rel
    np.testing.assert_allclose(np.asarray(smap.heights), h_ref, atol=0.05)
    assert smap.diagnostics.solver == "adam"


def test_ott_convention_conversion():
    """ott's hard assignment with g = 2h + |y|^2 is our Laguerre assignment."""
    from ott.geometry import pointcloud

    rng = np.random.default_rng(4)
    y = jnp.asarray(rng.standard_normal((6, 3)))
    h = jnp.asarray(rng.standard_normal(6))
    z = jax.random.normal(jax.random.key(3), (500, 3))
    g = 2 * h + jnp.sum(y**2, -1)
    cost = pointcloud.PointCloud(z, y).cost_matrix
    ott_idx = jnp.argmax(g[None] - cost, axis=1)
    ours = SemidiscreteMap(y, jnp.full((6,), 1 / 6), h).assign(z)
    np.testing.assert_array_equal(np.asarray(ott_idx), np.asarray(ours))


def test_newton_init_step_retrace_guard():
    x = np.random.default_rng(8).standard_normal((8, 3))
    prob = _make_problem(jnp.asarray(x), jnp.full((8,), 1 / 8), None, 1024, 2048)
    solver = NewtonSolver(max_iterations=10)
    state = solver.init(prob, tol=0.03, key=jax.random.key(0))

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(prob, state):
        return solver.step(prob, state)

    errs = []
    for _ in range(5):
        state = step(prob, state)
        errs.append(float(state.error))
    assert int(state.iteration) == 5
    assert min(errs[1:]) < errs[0]
    # the same compiled step serves another problem of the same shapes (no retrace)
    prob2 = prob.replace(points=prob.points * 1.5)
    step(prob2, solver.init(prob2, tol=0.03, key=jax.random.key(1)))


def test_custom_source_sampler_and_gaussian_measure():
    x = np.array([[-1.0, 0.0], [1.0, 0.0]])
    # a shifted source moves the boundary: cell masses 1/2 need h_2 - h_1 = 2 * mean_1
    src = GaussianMeasure(jnp.array([0.5, 0.0]), jnp.eye(2))
    smap = semidiscrete_ot(x, key=jax.random.key(0), tol=0.01, source=src)
    h = np.asarray(smap.heights)
    # cell 1 is {z_1 <= (h_1 - h_2) / 2}; half the mass of N((0.5, 0), I) needs h_1 - h_2 = 1
    assert abs((h[0] - h[1]) - 1.0) < 0.05


@pytest.mark.slow
def test_custom_uniform_sampler():
    x = np.array([[-1.0, 0.0], [1.0, 0.0]])
    sampler = lambda k, num: 0.5 + jax.random.uniform(k, (num, 2), minval=-1.0)
    smap = semidiscrete_ot(x, key=jax.random.key(1), tol=0.02, source=sampler)
    # uniform on [-0.5, 1.5] x [-0.5, 1.5]: the boundary z_1 = 0.5 splits it in half
    h = np.asarray(smap.heights)
    assert abs((h[0] - h[1]) / 2 - 0.5) < 0.05


# ---------------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "targets, weights, kwargs, match",
    [
        ([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0]], None, {}, "duplicate"),
        ([[0.0, np.nan], [1.0, 0.0]], None, {}, "non-finite"),
        ([[0.0, 1.0], [1.0, 0.0]], [0.5, 0.6], {}, "sum to one"),
        ([[0.0, 1.0], [1.0, 0.0]], [1.0, 0.0], {}, "empty cells"),
        ([[0.0, 1.0], [1.0, 0.0]], [0.5, 0.5, 0.0], {}, "shape"),
        ([0.0, 1.0], None, {}, "targets"),
        ([[0.0, 1.0], [1.0, 0.0]], None, {"tol": 0.0}, "tol"),
        ([[0.0, 1.0], [1.0, 0.0]], None, {"solver": "newton"}, "solver object"),
        ([[0.0, 1.0], [1.0, 0.0]], None, {"source": lambda k, n: jax.random.normal(k, (n, 3))}, "dimension"),
        ([[0.0, 1.0], [1.0, 0.0]], None, {"source": GaussianMeasure(jnp.zeros(3), jnp.eye(3))}, "dimension"),
        ([[0.0, 1.0], [1.0, 0.0]], None, {"key": None}, "key"),
    ],
)
def test_bad_input_errors(targets, weights, kwargs, match):
    kw = {"key": jax.random.key(0)} | kwargs
    with pytest.raises(ValueError, match=match):
        semidiscrete_ot(np.asarray(targets), weights, **kw)


def test_bad_tau_and_query_shape(smap_3d):
    with pytest.raises(ValueError, match="tau"):
        smap_3d.transport(jnp.zeros((2, 3)), tau=-0.1)
    with pytest.raises(ValueError, match="tau"):
        smap_3d.potential(jnp.zeros((2, 3)), tau=float("nan"))
    with pytest.raises(ValueError, match="z"):
        smap_3d.transport(jnp.zeros((2, 4)))


# ---------------------------------------------------------------------------------------------------
# scale (slow): 60,000 targets in 784 dimensions with bounded memory
# ---------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_60k_targets_784_dims_bounded_memory():
    n, d = 60_000, 784
    x = jax.random.uniform(jax.random.key(0), (n, d), jnp.float32)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    solver = NewtonSolver(max_iterations=2, final_samples=4 * 4096, min_samples_per_cell=1, hessian_samples=8192)
    with warnings.catch_warnings():  # two iterations do not converge: the point is the memory
        warnings.simplefilter("ignore", ConvergenceWarning)
        smap = semidiscrete_ot(x, key=jax.random.key(1), solver=solver,
                               sampling=jo.SemidiscreteSampling(batch_size=4096, certificate_samples=8192),
                               streaming=jo.Streaming(chunk_size=4096), throw=False)
    jax.block_until_ready(smap.heights)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    assert smap.heights.shape == (n,) and np.all(np.isfinite(np.asarray(smap.heights)))
    assert int(smap.diagnostics.iterations) == 2
    # targets are 0.19 GB; a (samples, targets, dims) array would be 770 GB per 4096 samples
    assert peak - before < 8.0, (before, peak)


@pytest.mark.slow
def test_newton_converges_on_standardised_digits():
    """Regression: all 1,797 digits (d = 64, standardised) made the former Newton iteration accept
    residual-increasing steps until one cell held all the mass (max relative error 1796 after 100
    iterations). With the energy-ascent line search and the Levenberg-Marquardt ridge it converges."""
    from jaxotdm import data as D

    x = D.load_digits(scaled=False)
    x = x + 1e-3 * np.random.default_rng(0).standard_normal(x.shape).astype(np.float32)
    x = jnp.asarray(x / x.std())
    smap = semidiscrete_ot(x, key=jax.random.key(0), tol=0.2)
    assert bool(smap.diagnostics.converged)
    cert = smap.certificate
    assert float(cert.max_relative_error) <= 0.2 + float(cert.noise_floor), cert


# ---------------------------------------------------------------------------------------------------
# one driver, one diagnostics type, statuses and warnings, progress
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", [HybridNewtonSolver(), NewtonSolver(), CandidateNewtonSolver(), AdamSolver(),
                                    OTTSolver()],
                         ids=lambda m: m.name)
def test_every_solver_runs_through_the_driver_with_progress(small_problem, method):
    x, nu, _ = small_problem
    seen = []
    smap = semidiscrete_ot(x, nu, key=jax.random.key(7), tol=0.05, solver=method, progress=seen.append)
    diag = smap.diagnostics
    assert isinstance(diag, SemidiscreteDiagnostics) and diag.solver == method.name
    assert Status(int(diag.status)) == Status.SUCCESS and bool(diag.converged)
    # one progress report per iteration, in order, with the iteration's numbers
    assert [p.iteration for p in seen] == sorted(p.iteration for p in seen) and len(seen) >= 1
    assert seen[-1].iteration == int(diag.iterations) and seen[-1].solver == method.name
    assert seen[-1].evaluations == float(diag.evaluations) > 0
    rel = _slack(x, nu, np.asarray(smap.heights), 0.05)
    assert rel.max() <= 0.05, rel


def test_progress_callback_does_not_recompile(small_problem):
    from tests.test_retrace import compile_events

    x, nu, _ = small_problem
    semidiscrete_ot(x, nu, key=jax.random.key(0), tol=0.2, progress=lambda p: None,
                        sampling=jo.SemidiscreteSampling(certificate_samples=0))
    calls = []
    with compile_events() as seen:
        semidiscrete_ot(x, nu, key=jax.random.key(0), tol=0.2, progress=calls.append,
                        sampling=jo.SemidiscreteSampling(certificate_samples=0))
    assert calls and not [s for s in seen if s[0] == "backend_compile_duration" and s[1] == "_run"], seen


def test_non_convergence_raises_or_is_a_status_and_a_warning():
    """The status contract: eagerly a failed solve raises (default) or, with ``throw=False``, warns and returns
    the map with its status."""
    x = np.random.default_rng(2).standard_normal((12, 3))
    with pytest.raises(RuntimeError, match="semidiscrete_ot: the iteration budget"):
        semidiscrete_ot(x, key=jax.random.key(0), tol=0.01, solver=NewtonSolver(max_iterations=1))
    with pytest.warns(ConvergenceWarning, match="iteration budget"):
        smap = semidiscrete_ot(x, key=jax.random.key(0), tol=0.01, solver=NewtonSolver(max_iterations=1),
                               throw=False)
    assert Status(int(smap.diagnostics.status)) == Status.MAX_ITERATIONS and not bool(smap.diagnostics.converged)
    # ott-jax: its chi-square criterion alone is not the tolerance; a too-short run says so
    with pytest.warns(ConvergenceWarning):
        smap = semidiscrete_ot(x, key=jax.random.key(0), tol=0.01, solver=OTTSolver(num_iterations=1000),
                               throw=False)
    assert Status(int(smap.diagnostics.status)) == Status.MAX_ITERATIONS


@pytree_dataclass
class _FakeState:
    heights: jax.Array
    iteration: jax.Array
    num_samples: jax.Array
    error: jax.Array
    done: jax.Array
    converged: jax.Array
    evaluations: jax.Array
    history: SemidiscreteHistory


class _Overconfident(SemidiscreteSolver):
    """A solver of the protocol that claims convergence at wrong heights after one step."""

    name = "overconfident"

    def init(self, problem, *, tol, key, init_heights=None):
        h = problem.voronoi_init() + jnp.linspace(-1.0, 1.0, problem.num_targets)
        dt = h.dtype
        return _FakeState(h, jnp.asarray(0), jnp.asarray(0, jnp.int32), jnp.zeros((), dt), jnp.asarray(False),
                          jnp.asarray(False), jnp.zeros((), dt), SemidiscreteHistory.empty(1, dt))

    def step(self, problem, state):
        return state.replace(iteration=state.iteration + 1, done=jnp.asarray(True), converged=jnp.asarray(True))


def test_certificate_above_tolerance_is_flagged():
    x = np.random.default_rng(3).standard_normal((10, 2))
    with pytest.raises(RuntimeError, match="certificate"):
        semidiscrete_ot(x, key=jax.random.key(0), tol=0.05, solver=_Overconfident())
    with pytest.warns(ConvergenceWarning, match="certificate"):
        smap = semidiscrete_ot(x, key=jax.random.key(0), tol=0.05, solver=_Overconfident(), throw=False)
    assert Status(int(smap.diagnostics.status)) == Status.TOLERANCE_NOT_CERTIFIED
    assert bool(smap.diagnostics.converged)  # the solver's claim, contradicted by the certificate
    c = smap.certificate
    assert float(c.max_relative_error) > 0.05 + float(c.noise_floor)


@pytest.mark.parametrize("bad", [-5, -1, 2.5, "many"])
def test_certificate_samples_must_be_a_count(bad):
    with pytest.raises(ValueError, match="certificate_samples"):
        semidiscrete_ot(np.eye(3), key=jax.random.key(0), sampling=jo.SemidiscreteSampling(certificate_samples=bad))


def test_bad_progress_and_solver_types():
    with pytest.raises(ValueError, match="progress"):
        semidiscrete_ot(np.eye(3), key=jax.random.key(0), progress="bar")
    with pytest.raises(ValueError, match="`solver` must be a solver object"):
        semidiscrete_ot(np.eye(3), key=jax.random.key(0), solver=NewtonSolver)  # the class, not an instance
    with pytest.raises(TypeError, match="method"):
        semidiscrete_ot(np.eye(3), key=jax.random.key(0), method=NewtonSolver())  # the old keyword is gone


# ---------------------------------------------------------------------------------------------------
# non-finite input never gives a real data point
# ---------------------------------------------------------------------------------------------------


def test_nonfinite_queries_have_no_cell_eager_and_jit(smap_3d):
    z = jnp.array([[0.1, 0.2, 0.3], [jnp.nan, 0.0, 0.0], [jnp.inf, 0.0, 0.0], [0.0, -jnp.inf, 1.0]])

    def query(m, z):
        return m.assign(z), m.transport(z), m.transport(z, tau=0.1), m.potential(z), m.potential(z, tau=0.1)

    for out in (query(smap_3d, z), jax.jit(query)(smap_3d, z)):
        i, t0, t1, p0, p1 = (np.asarray(a) for a in out)
        assert i[0] >= 0 and np.all(i[1:] == -1)
        for a in (t0, t1):
            assert np.all(np.isfinite(a[0])) and np.all(np.isnan(a[1:]))
        for a in (p0, p1):
            assert np.isfinite(a[0]) and np.all(np.isnan(a[1:]))
    # also through the query blocker (several blocks, one of them all NaN)
    m = SemidiscreteMap(smap_3d.targets, smap_3d.weights, smap_3d.heights,
                                                        query_chunk_size=2)
    np.testing.assert_array_equal(np.asarray(m.assign(z)), np.asarray(smap_3d.assign(z)))


def test_cell_masses_with_nonfinite_heights():
    x = np.random.default_rng(0).standard_normal((5, 2))
    h = np.zeros(5)
    h[2] = np.nan
    with pytest.raises(ValueError, match="heights"):
        cell_masses(x, h, key=jax.random.key(0), num_samples=4096)
    # traced heights cannot be checked eagerly: the masses are NaN, never plausible numbers
    m = jax.jit(lambda h: cell_masses(x, h, key=jax.random.key(0), num_samples=4096))(jnp.asarray(h))
    assert np.all(np.isnan(np.asarray(m)))
    m = jax.jit(lambda h: cell_masses(x, h, key=jax.random.key(0), num_samples=4096))(jnp.zeros(5))
    assert np.all(np.isfinite(np.asarray(m))) and abs(float(m.sum()) - 1) < 1e-12


def test_bad_sampler_output_is_nonfinite_status():
    x = np.random.default_rng(0).standard_normal((6, 2))
    nan_source = lambda k, num: jnp.full((num, 2), jnp.nan)
    with pytest.warns(ConvergenceWarning):
        smap = semidiscrete_ot(x, key=jax.random.key(0), tol=0.1, source=nan_source,
                               solver=NewtonSolver(max_iterations=3), throw=False)
    assert Status(int(smap.diagnostics.status)) != Status.SUCCESS


# ---------------------------------------------------------------------------------------------------
# ott-jax interop: DualPotentials, SemidiscreteOutput, both directions
# ---------------------------------------------------------------------------------------------------


def test_ott_round_trip_and_dual_potentials(smap_3d):
    z = jax.random.normal(jax.random.key(21), (300, 3))
    back = SemidiscreteMap.from_ott(smap_3d.to_ott())
    np.testing.assert_allclose(np.asarray(back.heights), np.asarray(smap_3d.heights), atol=1e-12)
    np.testing.assert_array_equal(np.asarray(back.assign(z)), np.asarray(smap_3d.assign(z)))
    dp = smap_3d.to_dual_potentials()
    np.testing.assert_allclose(np.asarray(dp.transport(z)), np.asarray(smap_3d.transport(z)), atol=1e-6)
    f = jax.vmap(dp.f)(z)
    np.testing.assert_allclose(np.asarray(f), np.asarray(jnp.sum(z * z, -1) - 2 * smap_3d.potential(z)), atol=1e-6)
    # entropic: ott's epsilon is twice our tau, and its map is our smoothed map
    dp_soft = smap_3d.to_dual_potentials(epsilon=0.2)
    np.testing.assert_allclose(np.asarray(dp_soft.transport(z)), np.asarray(smap_3d.transport(z, tau=0.1)), atol=1e-6)
    soft_back = SemidiscreteMap.from_ott(smap_3d.to_ott(epsilon=0.2))
    np.testing.assert_allclose(np.asarray(soft_back.transport(z, tau=0.1)), np.asarray(smap_3d.transport(z, tau=0.1)),
                               atol=1e-6)
    with pytest.raises(ValueError, match="SemidiscreteOutput"):
        SemidiscreteMap.from_ott(smap_3d)
    with pytest.raises(ValueError, match="epsilon"):
        smap_3d.to_dual_potentials(epsilon=-1.0)


def test_from_ott_solver_output_same_assignments_and_potentials():
    """A map solved by ott-jax itself: our assignments and potential equal ott's (float64, 1e-6)."""
    import optax
    from ott.geometry import semidiscrete_pointcloud as sdpc
    from ott.problems.linear import semidiscrete_linear_problem as sdlp
    from ott.solvers.linear import semidiscrete as sd

    rng = np.random.default_rng(5)
    y = jnp.asarray(rng.standard_normal((7, 3)))
    b = jnp.asarray(rng.uniform(0.5, 1.5, 7))
    b = b / b.sum()
    geom = sdpc.SemidiscretePointCloud(lambda k, s, dt: jax.random.normal(k, s, dt), y, epsilon=0.0)
    out = sd.SemidiscreteSolver(num_iterations=300, batch_size=256, optimizer=optax.sgd(0.5), threshold=0.0,
                                error_eval_every=300)(jax.random.key(0), sdlp.SemidiscreteLinearProblem(geom, b=b))
    smap = SemidiscreteMap.from_ott(out)
    hard = out.sample(jax.random.key(1), 400)
    zs = hard.ot_prob.geom.x
    np.testing.assert_array_equal(np.asarray(smap.assign(zs)), np.asarray(hard.paired_indices[1]))
    shift = float(jnp.mean(0.5 * (out.g - jnp.sum(y * y, -1))))
    f_ott = jax.vmap(out.to_dual_potentials().f)(zs)
    ours = jnp.sum(zs * zs, -1) - 2 * (smap.potential(zs) + shift)
    np.testing.assert_allclose(np.asarray(f_ott), np.asarray(ours), atol=1e-6)
    np.testing.assert_allclose(np.asarray(hard.f), np.asarray(ours), atol=1e-6)


def _diffused_2d_set(n=1000):

    y = jo.data.toy_2d("moons", n, seed=0)
    sched = jo.VPLinear()
    a, s = float(sched.alpha(0.1)), float(sched.sigma(0.1))
    return (a * y + s * np.random.default_rng(0).normal(size=y.shape)).astype(np.float32)


@pytest.mark.slow
def test_hybrid_newton_converges_on_a_diffused_2d_set():
    """1,000 points of the moons diffused to VPLinear t = 0.1 (Algorithm 2's target in 2-D) at tol 0.1, with the
    Monte Carlo hybrid (the default in the plane is now the exact ExactNewtonSolver: tests/test_ot_planar.py).

    The check is a certificate on 2^25 fresh samples (noise floor 0.021): the default certificate (the solver's
    final sample size, noise floor 0.099 = tol) cannot resolve an error of tol, and read 0.13 here for heights
    whose error on 2^25 samples is 0.09. Pass: within tol plus that certificate's own noise floor (the status
    rule of ``semidiscrete_ot``)."""
    smap = semidiscrete_ot(_diffused_2d_set(), key=jax.random.key(1), tol=0.1, solver=HybridNewtonSolver(),
                           sampling=jo.SemidiscreteSampling(certificate_samples=2**25))
    cert = smap.certificate
    assert bool(smap.diagnostics.converged) and float(cert.noise_floor) < 0.025
    assert float(cert.max_relative_error) <= 0.1 + float(cert.noise_floor)
    assert jo.Status(int(smap.diagnostics.status)) == jo.Status.SUCCESS


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="CandidateNewtonSolver stalls on this 2-D problem: 100 iterations at "
                   "certificate 1.0 (why it is not the default)")
def test_candidate_newton_converges_on_a_diffused_2d_set():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        smap = semidiscrete_ot(_diffused_2d_set(), key=jax.random.key(1), tol=0.1, solver=CandidateNewtonSolver(),
                               throw=False)
    assert bool(smap.diagnostics.converged) and float(smap.certificate.max_relative_error) <= 0.1


def test_solver_is_the_one_name_of_the_ot_solver():
    """``solver`` names the OT solver; the removed keywords ``method`` / ``ot_method`` are TypeErrors."""
    x = np.array([[-1.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    with pytest.raises(TypeError, match="method"):
        semidiscrete_ot(x, key=jax.random.key(0), tol=0.2, method=NewtonSolver())
    with pytest.raises(TypeError, match="ot_method"):  # gone: prepare_ot_prior takes `ot_solver` only
        jo.samplers.prepare_ot_prior(jo.VPLinear(), x, key=jax.random.key(1), t_prime=0.3, ot_tol=0.3,
                                     ot_method=NewtonSolver())


def test_sampling_and_streaming_are_objects_and_the_old_keywords_are_gone():
    """Issue 21: Monte Carlo sizes travel as one SemidiscreteSampling, chunking and sharding as one Streaming; the
    old keywords are Python's own TypeError and a bad field a ValueError naming it, before any solve."""
    x = np.eye(3)
    for old in ({"chunk_size": 16}, {"sharding": None}, {"batch_size": 4096}, {"certificate_samples": 0}):
        with pytest.raises(TypeError, match=next(iter(old))):
            semidiscrete_ot(x, key=jax.random.key(0), **old)
    with pytest.raises(ValueError, match="`chunk_size` must be an integer >= 1, got 0"):
        jo.Streaming(chunk_size=0)
    with pytest.raises(ValueError, match="`query_block`"):
        jo.Streaming(query_block=-1)
    with pytest.raises(ValueError, match="`sharding`"):
        jo.Streaming(sharding="points")
    with pytest.raises(ValueError, match="`batch_size`"):
        jo.SemidiscreteSampling(batch_size=0)
    with pytest.raises(ValueError, match="`sampling`"):
        semidiscrete_ot(x, key=jax.random.key(0), sampling={"batch_size": 8})
    with pytest.raises(ValueError, match="`streaming`"):
        semidiscrete_ot(x, key=jax.random.key(0), streaming=16)
    assert jax.tree_util.tree_leaves((jo.Streaming(chunk_size=4), jo.SemidiscreteSampling())) == []
