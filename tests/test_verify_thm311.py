"""Thm 3.11's decision: the floor's extrapolation in n and the verdict rule, on synthetic floors with known
answers (a pure discretisation artefact, a real floor, too few resolutions, a noisy estimate), and the study
end to end at a tiny size."""

import jax
import numpy as np
import pytest

import jaxotdm as jo
from jaxotdm.verify import extrapolate_floor, thm311_study, thm311_verdict

NS = np.array([2048, 8192, 32768])


def test_extrapolation_recovers_limit_and_coefficient():
    fit = extrapolate_floor(NS, 0.03 + 1.5 / np.sqrt(NS), [1e-3] * 3, dim=2)
    assert fit.limit == pytest.approx(0.03, abs=1e-9)
    assert fit.coefficient == pytest.approx(1.5, rel=1e-9)
    assert fit.limit_ci[0] < 0.03 < fit.limit_ci[1]
    assert fit.chi2 == pytest.approx(0.0, abs=1e-12) and fit.dof == 1


def test_pure_discretisation_artefact_is_supported():
    rng = np.random.default_rng(0)
    se = np.full(3, 2e-3)
    floors = 3.0 / np.sqrt(NS) + rng.normal(0, 2e-3, 3)
    v = thm311_verdict(extrapolate_floor(NS, floors, se, dim=2), 1e-3)
    assert v.verdict == "supported" and "reaches 0" in v.reason


def test_real_floor_with_adequate_resolution_is_not_supported():
    se = np.full(3, 1e-3)
    fit = extrapolate_floor(NS, 0.08 + 1.0 / np.sqrt(NS) + np.array([5e-4, -5e-4, 2e-4]), se, dim=2)
    assert fit.limit_ci[0] > 0.07
    v = thm311_verdict(fit, 1e-3)
    assert v.verdict == "not supported" and v.n_needed is None


def test_real_floor_from_two_resolutions_is_inconclusive_and_names_the_resolution_needed():
    v = thm311_verdict(extrapolate_floor(NS[:2], 0.08 + 1.0 / np.sqrt(NS[:2]), [1e-3] * 2, dim=2), 1e-3)
    assert v.verdict == "inconclusive" and v.n_needed == 4 * 8192 and "three resolutions" in v.reason


def test_an_interval_reaching_zero_from_a_misfit_or_two_resolutions_supports_nothing():
    floors = np.array([0.30, 0.22, 0.12])  # falls faster than n^(-1/2): chi2 large, interval wide
    fit = extrapolate_floor(NS, floors, [0.01, 0.01, 0.003], dim=2)
    assert fit.limit_ci[0] <= 0 and fit.fit_p_value < 0.05
    assert thm311_verdict(fit, 1e-3).verdict == "inconclusive"
    v = thm311_verdict(extrapolate_floor(NS[:2], 1.0 / np.sqrt(NS[:2]), [1e-3] * 2, dim=2), 1e-3)
    assert v.verdict == "inconclusive" and v.n_needed == 4 * 8192


def test_log_corrected_rate_recovers_its_limit():
    fit = extrapolate_floor(NS, 0.01 + 0.7 * np.sqrt(np.log(NS) / NS), [1e-3] * 3, dim=2, log_factor=True)
    assert fit.limit == pytest.approx(0.01, abs=1e-9) and fit.coefficient == pytest.approx(0.7, rel=1e-9)
    assert fit.log_factor and "sqrt(log n)" in fit.model


def test_a_verdict_that_depends_on_the_rate_model_is_inconclusive():
    """A floor vanishing like sqrt(log n / n) (the 2-D empirical rate) looks bounded away from 0 under the pure
    n^(-1/2) model; with the log-corrected fit as the alternative the rule refuses to decide."""
    ns = np.array([2048, 8192, 32768, 131072])
    floors = 1.5 * np.sqrt(np.log(ns) / ns)
    se = np.array([6.3e-3, 2.0e-3, 1.7e-3, 3.7e-4])  # the sizes the study measures: the pure model fits (p 0.7)
    pure = extrapolate_floor(ns, floors, se, dim=2)
    logf = extrapolate_floor(ns, floors, se, dim=2, log_factor=True)
    assert pure.limit_ci[0] > 0 and pure.fit_p_value > 0.05 and logf.limit_ci[0] <= 0 <= logf.limit_ci[1]
    v = thm311_verdict(pure, 0.0, alternative=logf)
    assert v.verdict == "inconclusive" and "rate model" in v.reason and v.n_needed == 4 * 131072
    # a floor that both models bound away from 0 stays "not supported"
    real = 0.05 + floors
    v = thm311_verdict(extrapolate_floor(ns, real, se, dim=2), 0.0,
                       alternative=extrapolate_floor(ns, real, se, dim=2, log_factor=True))
    assert v.verdict == "not supported" and "the same under" in v.reason


def test_an_unconverged_ot_solve_decides_nothing():
    fit = extrapolate_floor(NS, 0.08 + 1.0 / np.sqrt(NS), [1e-3] * 3, dim=2)
    assert thm311_verdict(fit, 1e-3, ot_converged=False).verdict == "inconclusive"


def test_model_misfit_or_noisy_estimate_is_inconclusive():
    floors = np.array([0.2, 0.05, 0.12])  # not monotone in n: the n^(-1/2) model cannot fit
    v = thm311_verdict(extrapolate_floor(NS, floors, [1e-3] * 3, dim=2), 1e-4)
    assert v.verdict == "inconclusive" and v.n_needed is not None and v.n_needed > NS[-1]
    fit = extrapolate_floor(NS, 0.08 + 1.0 / np.sqrt(NS), [1e-3] * 3, dim=2)
    v = thm311_verdict(fit, 0.05)  # the barycentres' own error is larger than the floor's lower end / 3
    assert v.verdict == "inconclusive" and v.mc_samples_factor > 1


@pytest.mark.parametrize(("kwargs", "name"), [({"ns": [8, 8]}, "ns"), ({"ns": [8]}, "ns"),
                                              ({"T0": 3.0}, "T0"), ({"ot_tol": 2.0}, "ot_tol")])
def test_study_refuses_bad_arguments_by_name(kwargs, name):
    mu = jo.EmpiricalMeasure(np.array([[-1.0, 0.0], [1.0, 0.0], [0.0, 1.5]]))
    args = {"ns": [16, 64], "T0": 0.5, "ot_tol": 0.1, **kwargs}
    with pytest.raises(ValueError, match=f"`{name}`"):
        thm311_study(mu, jo.OU(), args["ns"], [2.0, 4.0], key=jax.random.key(0), T0=args["T0"], ot_tol=args["ot_tol"])


@pytest.mark.slow  # one OT solve and flow compile per n: about a minute on a quiet 2-core machine
def test_study_tiny_measures_every_resolution_and_time():
    mu = jo.EmpiricalMeasure(np.array([[-1.0, 0.0], [1.0, 0.0], [0.0, 1.5]]))
    st = thm311_study(mu, jo.OU(), [32, 128], [2.0, 6.0], key=jax.random.key(1), T0=0.5, ot_mc_per_point=32)
    assert st.l2.shape == (2, 2) and np.all(np.isfinite(st.l2)) and np.all(st.flow_success)
    assert np.all(st.floors == st.l2[:, -1])
    # in the plane the Brenier estimate's barycentres are exact (power diagram): no Monte Carlo error
    assert np.all(st.barycentre_mc_se == 0) and st.settings["barycentres"].startswith("exact")
    assert st.self_convergence[0, -1] == 0.0 and st.self_convergence[0, 0] > 0
    assert st.verdict.verdict in ("supported", "not supported", "inconclusive")
