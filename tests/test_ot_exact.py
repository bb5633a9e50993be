"""The exact planar semi-discrete solver: closed-form cell masses, moments and Jacobian against Monte Carlo and
finite differences (float64), and the solver on the 2-D cases the Monte Carlo solvers found hard."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxotdm as jo
from jaxotdm.ot.semidiscrete import ExactNewtonSolver, exact_cells
from jaxotdm.ot.semidiscrete.exact import has_exact_cells
from jaxotdm.ot.semidiscrete.problem import make_problem


def _random_cells(seed=0, n=40):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 2)) * 1.5, rng.standard_normal(n) * 0.3


def _diffused_moons(n=1000, dtype=np.float32):
    y = jo.data.toy_2d("moons", n, seed=0)
    sched = jo.VPLinear()
    a, s = float(sched.alpha(0.1)), float(sched.sigma(0.1))
    return (a * y + s * np.random.default_rng(0).normal(size=y.shape)).astype(dtype)


def _exact_error(smap):
    x = np.asarray(smap.targets, np.float64)
    w = np.asarray(smap.weights, np.float64)
    m, _, _ = exact_cells(x - w @ x, np.asarray(smap.heights, np.float64))
    return float(np.max(np.abs(m - w) / w))


def test_masses_and_moments_match_monte_carlo_and_masses_sum_to_one():
    y, h = _random_cells()
    m, mom, _ = exact_cells(y, h)
    assert abs(m.sum() - 1.0) < 1e-13 and np.all(m >= 0)
    z = np.random.default_rng(1).standard_normal((2_000_000, 2))
    lab = np.argmax(z @ y.T + h, axis=1)
    mc = np.bincount(lab, minlength=len(h)) / len(z)
    se = np.sqrt(np.maximum(mc * (1 - mc), 1e-12) / len(z))
    assert np.max(np.abs(m - mc) / se) < 5.0
    mc_mom = np.stack([np.bincount(lab, z[:, a], len(h)) / len(z) for a in range(2)], axis=1)
    se_mom = np.sqrt(np.stack([np.bincount(lab, z[:, a] ** 2, len(h)) for a in range(2)], axis=1)) / len(z)
    assert np.max(np.abs(mom - mc_mom) / np.maximum(se_mom, 1e-9)) < 5.0
    # cells that Monte Carlo never hits are empty in the diagram too (up to a tiny mass)
    assert np.all(m[mc == 0] < 1e-5)


def test_jacobian_is_the_diagram_laplacian_of_finite_differences():
    y, h = _random_cells(seed=2, n=25)
    h = h * 0.1  # most cells non-empty
    m, _, (i, j, w) = exact_cells(y, h)
    n = len(h)
    J = np.zeros((n, n))
    np.add.at(J, (i, j), -w)
    np.add.at(J, (j, i), -w)
    J[np.arange(n), np.arange(n)] = -J.sum(axis=1)
    eps = 1e-6
    fd = np.empty((n, n))
    for k in range(n):
        e = np.zeros(n)
        e[k] = eps
        fd[:, k] = (exact_cells(y, h + e)[0] - exact_cells(y, h - e)[0]) / (2 * eps)
    assert np.max(np.abs(fd - J)) < 1e-7 * max(1.0, np.max(np.abs(J)))


@pytest.mark.parametrize("k", [3, 4, 7])
def test_regular_polygons_with_equal_heights_split_the_mass_exactly(k):
    ang = 2 * np.pi * np.arange(k) / k
    y = np.c_[np.cos(ang), np.sin(ang)]
    m, mom, _ = exact_cells(y, np.zeros(k))
    assert np.allclose(m, 1.0 / k, rtol=0, atol=1e-14)
    # a wedge of half-angle pi/k: int z phi = (sin(pi/k) / sqrt(2 pi)) along its axis
    expect = np.sin(np.pi / k) / np.sqrt(2 * np.pi) * y
    assert np.allclose(mom, expect, rtol=0, atol=1e-14)
    # heights equal only up to rounding (as any computed heights are): the origin sits within 1e-16 of the
    # common vertex, where a naive edge sum picks the wrong side (it gave masses of -0.83 for the hexagon)
    h = np.random.default_rng(k).choice([-2.2e-16, 0.0, 2.2e-16, 4.4e-16], k)
    m, _, _ = exact_cells(y * 1.7, h)
    assert np.allclose(m, 1.0 / k, rtol=0, atol=1e-12) and np.all(m > 0)


def test_collinear_targets_and_equal_heights_give_the_exact_strips():
    """Coplanar lifted points (here: targets on a line, equal heights) need the ghost cells that close the
    diagram; the cells are then strips, whose masses are 1-D normal probabilities."""
    t = np.linspace(-1, 1, 5)
    y = np.c_[t, 2 * t]
    m, _, _ = exact_cells(y, np.zeros(5))
    assert np.allclose(m, [0.5, 0, 0, 0, 0.5], rtol=0, atol=1e-14)
    h = np.array([0.0, 0.6, 0.9, 0.6, 0.0])  # every strip non-empty: breakpoints g_k on the line's direction
    m, _, _ = exact_cells(y, h)
    from scipy.special import ndtr

    s5 = np.sqrt(5.0)  # <z, y_i> = t_i sqrt(5) g, g ~ N(0, 1); strip boundaries where consecutive lines cross
    g = [(h[k] - h[k + 1]) / ((t[k + 1] - t[k]) * s5) for k in range(4)]
    expect = np.diff(np.concatenate([[0.0], ndtr(np.array(g)), [1.0]]))
    assert np.allclose(m, expect, rtol=0, atol=1e-13)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_default_solver_in_the_plane_is_exact_and_certified_on_a_fresh_sample(dtype):
    """The moons diffused to VPLinear t = 0.1 (1,000 points; where the candidate Newton stalls and the Monte
    Carlo Newton's fresh-sample error sat at tol): the exact error ends orders of magnitude below tol, and a
    large independent certificate (noise floor 0.06) stays below tol."""
    x = _diffused_moons(dtype=dtype)
    smap = jo.semidiscrete_ot(x, key=jax.random.key(1), tol=0.1,
                              sampling=jo.SemidiscreteSampling(certificate_samples=2**22))
    d = smap.diagnostics
    assert d.solver == "newton-exact" and bool(d.converged) and jo.Status(int(d.status)) == jo.Status.SUCCESS
    assert int(d.final_samples) == 0 and float(d.evaluations) == 0.0
    err = _exact_error(smap)
    assert err < (1e-3 if dtype == np.float32 else 1e-4)
    assert abs(err - float(d.insample_error)) < 1e-6 + 1e-3 * err
    assert float(smap.certificate.max_relative_error) <= 0.1
    hist = np.asarray(d.history.max_relative_error)[: int(d.iterations)]
    assert hist[-1] < 1e-2 * hist[0]


def test_weights_spanning_four_decades_and_near_duplicate_targets():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((300, 2))
    x[1] = x[0] + 1e-6  # a near-duplicate pair
    w = 10.0 ** rng.uniform(-4, 0, 300)
    w /= w.sum()
    smap = jo.semidiscrete_ot(x, w, key=jax.random.key(0), tol=0.05,
                              sampling=jo.SemidiscreteSampling(certificate_samples=0))
    assert smap.diagnostics.solver == "newton-exact" and bool(smap.diagnostics.converged)
    assert _exact_error(smap) <= 0.05 * 1e-2


def test_warm_start_with_empty_cells_restarts_from_the_voronoi_heights():
    x = np.random.default_rng(4).standard_normal((200, 2))
    bad = np.zeros(200)
    bad[0] = 50.0  # cell 0 swallows everything: the others are empty
    smap = jo.semidiscrete_ot(x, key=jax.random.key(0), tol=0.1, init_heights=bad,
                              sampling=jo.SemidiscreteSampling(certificate_samples=0))
    assert bool(smap.diagnostics.converged) and _exact_error(smap) <= 1e-3


def test_solves_under_jit_with_traced_targets_like_eager():
    x = jnp.asarray(np.random.default_rng(5).standard_normal((100, 2)))
    opts = dict(key=jax.random.key(0), tol=0.1, sampling=jo.SemidiscreteSampling(certificate_samples=0))
    eager = jo.semidiscrete_ot(x, **opts).heights
    traced = jax.jit(lambda t: jo.semidiscrete_ot(t, **opts).heights)(x)
    np.testing.assert_allclose(np.asarray(traced), np.asarray(eager), rtol=0, atol=1e-12)


def test_progress_reports_every_newton_step():
    x = np.random.default_rng(6).standard_normal((64, 2))
    seen = []
    smap = jo.semidiscrete_ot(x, key=jax.random.key(0), tol=0.1, progress=seen.append,
                              sampling=jo.SemidiscreteSampling(certificate_samples=0))
    assert len(seen) == int(smap.diagnostics.iterations) >= 1
    assert all(p.solver == "newton-exact" and p.num_samples == 0 for p in seen)


def test_outside_line_and_plane_the_default_is_the_hybrid_and_the_exact_solver_refuses():
    line = np.c_[np.linspace(-1, 1, 20), np.linspace(-1, 1, 20) * 0.5]
    smap = jo.semidiscrete_ot(line, key=jax.random.key(0), tol=0.2,
                              sampling=jo.SemidiscreteSampling(certificate_samples=0))
    assert smap.diagnostics.solver == "newton-hybrid"
    with pytest.raises(ValueError, match="ExactNewtonSolver needs"):
        jo.semidiscrete_ot(line, key=jax.random.key(0), tol=0.2, solver=ExactNewtonSolver())
    gauss = jo.GaussianMeasure(jnp.zeros(2), jnp.eye(2) * 2.0)
    x = np.random.default_rng(7).standard_normal((10, 2))
    prob = make_problem(jnp.asarray(x), jnp.full((10,), 0.1), lambda k, n: gauss.sample(k, n), 4096, None)
    assert not has_exact_cells(prob)
    assert has_exact_cells(make_problem(jnp.asarray(x), jnp.full((10,), 0.1), None, 4096, None))


@pytest.mark.parametrize(("kwargs", "name"), [({"tol_fraction": 0.0}, "tol_fraction"),
                                              ({"tol_fraction": 2.0}, "tol_fraction"),
                                              ({"max_iterations": 0}, "max_iterations"),
                                              ({"max_backtracks": -1}, "max_backtracks")])
def test_bad_settings_are_refused_by_name(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        ExactNewtonSolver(**kwargs)


# ---------------------------------------------------------------------------------------------- on a line
def test_line_cells_match_monte_carlo_finite_differences_and_closed_forms():
    rng = np.random.default_rng(9)
    y = rng.standard_normal((30, 1)) * 2.0
    h = rng.standard_normal(30) * 0.5
    m, mom, (i, j, w) = exact_cells(y, h)
    assert abs(m.sum() - 1.0) < 1e-14 and np.all(m >= 0)
    g = rng.standard_normal(2_000_000)
    lab = np.argmax(np.outer(g, y[:, 0]) + h, axis=1)
    mc = np.bincount(lab, minlength=30) / len(g)
    se = np.sqrt(np.maximum(mc * (1 - mc), 1e-12) / len(g))
    assert np.max(np.abs(m - mc) / se) < 5.0
    mc_mom = np.bincount(lab, g, 30) / len(g)
    assert np.max(np.abs(mom[:, 0] - mc_mom)) < 5 * np.sqrt(1.0 / len(g))
    J = np.zeros((30, 30))
    np.add.at(J, (i, j), -w)
    np.add.at(J, (j, i), -w)
    J[np.arange(30), np.arange(30)] = -J.sum(axis=1)
    eps = 1e-6
    for k in range(30):
        e = np.zeros(30)
        e[k] = eps
        fd = (exact_cells(y, h + e)[0] - exact_cells(y, h - e)[0]) / (2 * eps)
        assert np.max(np.abs(fd - J[:, k])) < 1e-7
    # two points at -1 and 1 with equal heights: half the mass each, moments -+phi(0)
    m, mom, _ = exact_cells(np.array([[-1.0], [1.0]]), np.zeros(2))
    assert np.allclose(m, 0.5, atol=1e-15) and np.allclose(mom[:, 0], [-1, 1] / np.sqrt(2 * np.pi), atol=1e-15)


def test_default_solver_on_a_line_is_exact_even_for_spread_targets_and_skewed_weights():
    """50 sorted N(0, 4) draws (the Monte Carlo Newton's known 1-D failure) with weights over two decades."""
    x = np.sort(np.random.default_rng(6).standard_normal((50, 1)), axis=0) * 2.0
    w = 10.0 ** np.random.default_rng(1).uniform(-2, 0, 50)
    w /= w.sum()
    smap = jo.semidiscrete_ot(x, w, key=jax.random.key(2), tol=0.05)
    assert smap.diagnostics.solver == "newton-exact" and bool(smap.diagnostics.converged)
    assert _exact_error(smap) < 0.05 * 1e-2
