"""Transport-cost gap of the flow's limit map to the OT map (issue 16): estimator, sign, decomposition."""

import math

import jax
import numpy as np
import pytest
from scipy.stats import norm

import jaxotdm as jo
from jaxotdm.ot import SemidiscreteMap
from jaxotdm.verify import convergence_to_brenier, transport_cost_gap


def _fixed_draws(seed=0, n_draws=500, d=3, n=7):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n_draws, d))
    y = rng.standard_normal((n, d)) * 1.5
    w = rng.dirichlet(np.ones(n))
    h = rng.standard_normal(n)
    ot_idx = np.argmax(z @ y.T + h, 1)
    map_idx = rng.integers(0, n, n_draws)
    return z, y, w, h, ot_idx, map_idx


def test_gap_estimator_equals_a_direct_numpy_computation():
    z, y, w, h, oi, mi = _fixed_draws()
    r = transport_cost_gap(z, y[mi], y[oi], targets=y, weights=w, heights=h, map_index=mi, ot_index=oi)
    a = np.sum((z - y[mi]) ** 2, 1)
    b = np.sum((z - y[oi]) ** 2, 1)
    N = len(z)
    gap = (a.mean() - b.mean()) / b.mean()
    # paired delta-method SE of a ratio of means, written out independently
    ga = 1 / b.mean()
    gb = -a.mean() / b.mean() ** 2
    cov = np.cov(np.stack([a, b]), ddof=1)
    se = math.sqrt((ga**2 * cov[0, 0] + gb**2 * cov[1, 1] + 2 * ga * gb * cov[0, 1]) / N)
    assert r.cost_map == pytest.approx(a.mean(), rel=1e-12)
    assert r.cost_ot == pytest.approx(b.mean(), rel=1e-12)
    assert r.cost_map_se == pytest.approx(a.std(ddof=1) / math.sqrt(N), rel=1e-12)
    assert r.gap == pytest.approx(gap, rel=1e-12)
    assert r.gap_se == pytest.approx(se, rel=1e-10)
    assert r.cost_independent == pytest.approx(z.shape[1] + w @ np.sum(y**2, 1), rel=1e-12)
    freq = np.bincount(mi, minlength=len(y)) / N
    assert r.mass_error == pytest.approx(0.5 * np.abs(freq - w).sum(), rel=1e-12)
    # exact decomposition: gap = Fenchel-Young misrouting (>= 0 per draw) + push-forward term
    fy = 2 * ((np.sum(z * y[oi], 1) + h[oi]) - (np.sum(z * y[mi], 1) + h[mi])) / b.mean()
    assert np.all(fy >= -1e-12)
    assert r.misrouting == pytest.approx(fy.mean(), rel=1e-12)
    fo = np.bincount(oi, minlength=len(y)) / N
    mass = (freq - fo) @ (np.sum(y**2, 1) + 2 * h) / b.mean()
    assert r.mass_term == pytest.approx(mass, rel=1e-9, abs=1e-12)
    assert r.gap == pytest.approx(r.misrouting + r.mass_term, rel=1e-9)


def test_gap_is_zero_for_the_ot_map_itself_and_positive_for_a_permuted_map():
    z, y, w, h, oi, _ = _fixed_draws(1)
    same = transport_cost_gap(z, y[oi], y[oi], targets=y, weights=w, heights=h, map_index=oi, ot_index=oi)
    assert same.gap == 0.0 and same.misrouting == 0.0 and same.gap_se == 0.0
    perm = np.roll(np.arange(len(y)), 1)[oi]  # same cells, sent to other points
    r = transport_cost_gap(z, y[perm], y[oi], targets=y, weights=w, heights=h, map_index=perm, ot_index=oi)
    assert r.misrouting > 0


def test_bad_input():
    z = np.zeros((4, 2))
    with pytest.raises(ValueError, match="same shape"):
        transport_cost_gap(z, np.zeros((4, 3)), z)
    with pytest.raises(ValueError, match="at least 2"):
        transport_cost_gap(z[:1], z[:1], z[:1])


def test_two_point_gap_is_non_negative_and_tends_to_zero():
    """Two points: the flow's limit is the OT map, so the gap -> 0 with s and is >= 0 within 3 SE once the
    flow's push-forward has converged. At small s the prior's shift (O(alpha(s))) changes the push-forward,
    and a map with another push-forward may be cheaper: the decomposition puts that in ``mass_term``."""
    w1 = 0.7
    c = norm.ppf(w1)
    pts = np.array([[-1.0, 0.0], [1.0, 0.0]])
    smap = SemidiscreteMap(targets=jax.numpy.asarray(pts), weights=jax.numpy.asarray([w1, 1 - w1]),
                           heights=jax.numpy.asarray([c, -c]))
    mu = jo.EmpiricalMeasure(pts, np.array([w1, 1 - w1]))
    res = convergence_to_brenier(mu, jo.OU(), [1.0, 3.0, 6.0, 12.0, 16.0], key=jax.random.key(4), num_samples=8000,
                                 ot_map=smap, rtol=1e-7)
    cost = res.cost
    g, se = cost.gap, cost.gap_se
    assert np.all(g[-2:] >= -3 * se[-2:]), (g, se)  # alpha(s) <= 2.5e-3: converged push-forward
    assert abs(g[-1]) <= 3 * se[-1] + 1e-4 and abs(g[0]) > 10 * abs(g[-1])
    assert cost.mass_error[-1] <= 3 * cost.mass_error_null[-1] < cost.mass_error[0]
    # the non-negative part decays to 0; what is left of the gap at small s is the push-forward's
    assert np.all(cost.misrouting >= 0) and cost.misrouting[-1] < 1e-3 < cost.misrouting[0]
    np.testing.assert_allclose(cost.misrouting + cost.mass_term, g, rtol=1e-9, atol=1e-12)
    assert np.all(np.abs(cost.mass_term[-2:]) <= 3 * se[-2:] + 1e-4)
    assert cost.gap.shape == (5,) and np.all(cost.cost_independent > cost.cost_ot)


def test_eight_gaussians_gap_is_non_negative_within_3_se():
    pts = jo.data.toy_2d("eight_gaussians", 32)
    mu = jo.EmpiricalMeasure(pts)
    smap = jo.semidiscrete_ot(mu.points, key=jax.random.key(5), tol=0.05)
    res = convergence_to_brenier(mu, jo.OU(), [2.0, 8.0, 12.0], key=jax.random.key(6), num_samples=4096, ot_map=smap)
    c = res.cost
    g, se = c.gap, c.gap_se
    # once the push-forward has converged (alpha(s) <= 0.02) the limit map is no cheaper than OT
    assert np.all(g[1:] >= -3 * se[1:]), (g, se)
    # ... and it is not the OT map: resolvably positive Fenchel-Young gap, misrouted mass above resolution
    assert c.misrouting[-1] > 3 * c.misrouting_se[-1] and res.floor_distinguishable
    # the flow's push-forward is close to the data weights at large s (what makes the comparison fair)
    assert c.mass_error[-1] < 4 * c.mass_error_null[-1]
    assert c.misrouting[0] >= 0 and c.mass_term[0] < 0  # at s = 2 the prior's shift makes the gap negative
