"""Convergence of the probability-flow map to the OT (Brenier) map: the checks issue 4 asks for."""

import jax
import numpy as np
import pytest
from scipy.stats import norm

import jaxotdm as jo
from jaxotdm.ot import SemidiscreteMap
from jaxotdm.verify import OTResolution, convergence_to_brenier, fit_exponential

MEAN = np.array([0.5, -0.3])
COV = np.array([[1.2, 0.3], [0.3, 0.4]])


@pytest.mark.parametrize("direction", ["backward", "forward"])
@pytest.mark.parametrize("schedule", [jo.OU(), jo.VE()], ids=["OU", "VE"])
def test_gaussian_flow_map_is_the_brenier_map_at_every_time(direction, schedule):
    g = jo.GaussianMeasure(MEAN, COV)
    times = [0.3, 0.6, 1.0] if isinstance(schedule, jo.VE) else [1.0, 3.0, 6.0, 10.0]
    res = convergence_to_brenier(
        g, schedule, times, key=jax.random.key(0), num_samples=512, direction=direction, eps=1e-2, rtol=1e-9
    )
    # The flow map between its own marginals is optimal (affine, symmetric): ~0 at every time.
    assert np.all(res.l2_to_own_ot < 1e-5), res.l2_to_own_ot
    # Against the limit's Brenier map it converges as T grows.
    assert res.l2_to_ot[-1] < res.l2_to_ot[0]
    assert np.all(np.diff(res.self_convergence) <= 1e-9)


def _two_point_exact_map(w1):
    """Heights in closed form: the boundary z_1 = c with Phi(c) = w1, h = (c, -c)."""
    c = norm.ppf(w1)
    pts = np.array([[-1.0, 0.0], [1.0, 0.0]])
    return pts, SemidiscreteMap(targets=jax.numpy.asarray(pts), weights=jax.numpy.asarray([w1, 1 - w1]),
                                heights=jax.numpy.asarray([c, -c]))


def test_two_point_data_converges_exponentially_to_the_ot_map():
    pts, smap = _two_point_exact_map(0.7)
    mu = jo.EmpiricalMeasure(pts, np.array([0.7, 0.3]))
    times = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 16.0]
    res = convergence_to_brenier(mu, jo.OU(), times, key=jax.random.key(1), num_samples=20_000, ot_map=smap, rtol=1e-8)
    assert res.l2_to_ot[-1] < 1e-3, res.l2_to_ot
    fit = res.fit_to_ot
    assert fit.num_points >= 4
    assert fit.rate_ci[0] > 0, fit  # the decay rate's confidence interval excludes 0
    assert not res.floor_distinguishable
    assert res.fit_time.rate_ci[0] > 0


def test_general_data_reports_a_measured_floor_without_forcing_it():
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(12, 2)) * 1.5
    mu = jo.EmpiricalMeasure(pts)
    res = convergence_to_brenier(mu, jo.OU(), [1.0, 3.0, 6.0, 9.0], key=jax.random.key(2), num_samples=2000,
                                 ot=OTResolution(tol=0.05))
    assert np.isfinite(res.floor) and res.floor >= 0 and res.floor_se > 0
    assert isinstance(res.floor_distinguishable, bool)
    assert res.ot_resolution["max_relative_mass_error"] is not None
    # the flow map keeps changing less and less as T grows
    assert res.self_convergence[0] > res.self_convergence[-2] > 0
    assert res.l2_to_ot[0] > res.l2_to_ot[-1]


def test_forward_direction_on_data_uses_the_semidiscrete_inverse():
    pts = np.array([[-1.0, 0.0], [1.0, 0.0]])
    mu = jo.EmpiricalMeasure(pts)
    res = convergence_to_brenier(
        mu, jo.OU(), [1.0, 2.0, 4.0, 8.0], key=jax.random.key(3), num_samples=64, direction="forward", T0=0.5,
        ot=OTResolution(points=256, mc_per_point=64, tol=0.1),
    )
    # 2-D: the barycentres and masses of the Brenier estimate are exact (power diagram), not Monte Carlo
    assert res.ot_resolution["barycentre_mc_se"] == 0 and res.ot_resolution["barycentres"].startswith("exact")
    assert res.ot_resolution["masses"].startswith("exact") and res.ot_resolution["max_relative_mass_error"] < 0.1
    assert res.l2_to_ot[-1] < res.l2_to_ot[0]
    assert np.isnan(res.mismatch_fraction).all()


def test_fit_exponential_recovers_a_known_rate_and_covers_it():
    x = np.linspace(0, 5, 12)
    rng = np.random.default_rng(0)
    v = 3.0 * np.exp(-0.7 * x) * np.exp(0.01 * rng.normal(size=12))
    f = fit_exponential(x, v)
    assert f.rate_ci[0] < 0.7 < f.rate_ci[1] and abs(f.rate - 0.7) < 0.02
    assert np.isnan(fit_exponential(x[:2], v[:2]).rate)


def test_bad_input():
    mu = jo.EmpiricalMeasure(np.array([[-1.0], [1.0]]))
    k = jax.random.key(0)
    with pytest.raises(ValueError, match="termination_times"):
        convergence_to_brenier(mu, jo.OU(), [2.0, 1.0], key=k)
    with pytest.raises(ValueError, match="termination_times"):
        convergence_to_brenier(mu, jo.OU(), [-1.0, 1.0], key=k)
    with pytest.raises(ValueError, match="direction"):
        convergence_to_brenier(mu, jo.OU(), [1.0, 2.0], key=k, direction="sideways")
    with pytest.raises(ValueError, match="eps"):
        convergence_to_brenier(mu, jo.OU(), [1.0, 2.0], key=k, eps=1.5)
    with pytest.raises(ValueError, match="T0"):
        convergence_to_brenier(mu, jo.OU(), [1.0, 2.0], key=k, direction="forward", T0=3.0)
    with pytest.raises(ValueError, match="num_samples"):
        convergence_to_brenier(mu, jo.OU(), [1.0, 2.0], key=k, num_samples=1)
    with pytest.raises(ValueError, match="key"):
        convergence_to_brenier(mu, jo.OU(), [1.0, 2.0], key=None)
    with pytest.raises(ValueError, match="termination_times"):
        convergence_to_brenier(mu, jo.Cosine(), [0.5, 1.2], key=k)


def test_ot_resolution_is_one_object_and_the_old_keywords_are_gone():
    """Issue 21: the OT-side knobs are one OTResolution, checked when made; the old keywords are a TypeError."""
    mu = jo.EmpiricalMeasure(np.array([[-1.0, 0.0], [1.0, 0.0]]))
    with pytest.raises(TypeError, match="ot_tol"):
        convergence_to_brenier(mu, jo.OU(), [1.0, 2.0], key=jax.random.key(0), ot_tol=0.1)
    with pytest.raises(ValueError, match="`tol` must be in"):
        OTResolution(tol=0.0)
    with pytest.raises(ValueError, match="`points`"):
        OTResolution(points=1)
    with pytest.raises(ValueError, match="`mc_per_point`"):
        OTResolution(mc_per_point=0)
    with pytest.raises(ValueError, match="`ot`"):
        convergence_to_brenier(mu, jo.OU(), [1.0, 2.0], key=jax.random.key(0), ot=0.1)
