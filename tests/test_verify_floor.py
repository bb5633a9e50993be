"""The floor of the flow's limit map: the exact 1-D control and the floor study (issue 16)."""

import jax
import numpy as np
import pytest
from scipy.stats import norm

import jaxotdm as jo
from jaxotdm.verify import Cloud, floor_study, monotone_control, monotone_map_1d, random_clouds


def test_monotone_map_1d_is_the_quantile_map():
    rng = np.random.default_rng(0)
    y = rng.permutation(np.linspace(-2.0, 3.0, 9)).reshape(-1, 1)
    w = rng.dirichlet(np.ones(9))
    smap = monotone_map_1d(y, w)
    z = rng.standard_normal((5000, 1))
    order = np.argsort(y[:, 0])
    k = np.searchsorted(np.cumsum(w[order]), norm.cdf(z[:, 0]))
    expected = order[np.minimum(k, 8)]
    got = np.asarray(smap.assign(z))
    # the only disagreements are float32 rounding at cell boundaries
    assert np.mean(got != expected) < 1e-3
    np.testing.assert_allclose(np.asarray(smap.cell_masses(key=jax.random.key(0), num_samples=2**18)), w, atol=4e-3)
    assert abs(float(np.mean(np.asarray(smap.heights)))) < 1e-6


def test_one_dimensional_floor_is_zero_within_resolution():
    """d = 1: the flow preserves order, so its limit is the monotone rearrangement = the OT map.
    20 points 0.3 apart with Dirichlet weights: misrouted mass ~ alpha(s), ~0 at s = 20."""
    c = monotone_control(key=jax.random.key(0), times=(6.0, 8.0, 10.0, 12.0, 16.0, 20.0), num_samples=4096)
    assert np.min(c.weights) < 0.5 / 20 < np.max(c.weights) / 2  # uneven weights
    assert 0.7 < c.slope < 1.2, (c.slope, c.misrouted_count)  # ~ alpha(s) (measured 0.8-0.95)
    assert c.zero_within_resolution and c.upper95[-1] < 10 / 4096, c.misrouted_count
    assert not c.result.floor_distinguishable
    assert np.all(np.diff(c.result.mismatch_fraction[:-1]) < 0)
    g, se = c.result.cost.gap, c.result.cost.gap_se
    assert abs(g[-1]) <= 3 * se[-1] + 1e-4


@pytest.mark.slow  # 30-50 s; floor_study's doctest and the 1-D floor test run by default
def test_floor_study_rows():
    clouds = random_clouds((3, 12), (1, 2), ("equal", "dirichlet"), key=jax.random.key(1))
    assert len(clouds) == 8 and all(isinstance(c, Cloud) for c in clouds)
    rows = floor_study(clouds, key=jax.random.key(2), num_samples=1024, ot_tol=0.1)
    for r in rows:
        assert r.flow_success and 0 <= r.misrouted <= 1 and r.l2_floor >= 0 and r.nfe > 0
        assert r.cost.misrouting >= 0 and np.isfinite(r.cost.gap)
        if r.d == 1:  # exact control: nothing beyond Monte Carlo and read-off resolution
            assert r.ot_mass_error == 0.0 and not r.distinguishable
            assert r.misrouted <= r.readout_error + 3 * r.misrouted_se + 3 / 1024, r
    eq = [r for r in rows if r.kind == "equal"]
    assert all(r.weight_ratio == pytest.approx(1.0) and r.weight_entropy == pytest.approx(1.0) for r in eq)
    assert all(r.weight_ratio > 1 for r in rows if r.kind == "dirichlet")


def test_bad_input():
    k = jax.random.key(0)
    with pytest.raises(ValueError, match="points"):
        monotone_map_1d(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="distinct"):
        monotone_map_1d(np.zeros((3, 1)))
    with pytest.raises(ValueError, match="weights"):
        monotone_map_1d(np.array([[0.0], [1.0]]), np.array([0.2, 0.2]))
    with pytest.raises(ValueError, match="num_points"):
        monotone_control(key=k, num_points=1)
    with pytest.raises(ValueError, match="weightings"):
        random_clouds((2,), (1,), ("uniform",), key=k)
    with pytest.raises(ValueError, match="ns"):
        random_clouds((1,), (1,), key=k)
    cl = random_clouds((2,), (1,), ("equal",), key=k)
    with pytest.raises(ValueError, match="`s`"):
        floor_study(cl, key=k, s=-1.0)
    with pytest.raises(ValueError, match="eps"):
        floor_study(cl, key=k, s=1.0, eps=2.0)
    with pytest.raises(ValueError, match="clouds"):
        floor_study([np.zeros((2, 1))], key=k)
    with pytest.raises(ValueError, match="ot_tol"):
        floor_study(cl, key=k, ot_tol=1.5)


def test_monotone_map_matches_the_solver_in_one_dimension():
    y = np.array([[-1.0], [0.5], [2.0], [0.0]])
    w = np.array([0.1, 0.4, 0.3, 0.2])
    exact = monotone_map_1d(y, w)
    solved = jo.semidiscrete_ot(y, w, key=jax.random.key(3), tol=0.02)
    z = np.linspace(-3, 3, 2001).reshape(-1, 1)
    assert np.mean(np.asarray(exact.assign(z)) != np.asarray(solved.assign(z))) < 0.01
