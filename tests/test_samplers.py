"""Fixed-NFE samplers: convergence orders on Gaussian data with the exact score, exact NFE counts,
grids, validation, jit-vs-eager and retracing."""

import warnings

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxotdm as jo
from jaxotdm import samplers as S
from jaxotdm._status import ConvergenceWarning, Status
from jaxotdm.samplers._core import _sample_with_noise

MEAN = np.array([0.5, -1.0])
_A = np.array([[1.0, 0.6], [0.0, 0.3]])
COV = _A @ _A.T  # eigenvalues ~0.06 and ~1.4: DDIM is not exact on this
T0, T1 = 1.0, 1e-2


@pytest.fixture(scope="module")
def gauss():
    sched = jo.VPLinear()
    mu = jo.GaussianMeasure(MEAN, COV)
    return mu, sched, jo.exact_score(mu, sched)


def exact_pf_map(x, sched, t0, t1):
    """Closed-form PF map for N(m, S) data: per eigen-direction lam of S, scale by
    sqrt((a1^2 lam + s1^2) / (a0^2 lam + s0^2)) around alpha_t m."""
    lam, v = np.linalg.eigh(COV)
    a0, a1 = float(sched.alpha(t0)), float(sched.alpha(t1))
    s0, s1 = float(sched.sigma2(t0)), float(sched.sigma2(t1))
    f = np.sqrt((a1**2 * lam + s1) / (a0**2 * lam + s0))
    return a1 * MEAN + (np.asarray(x) - a0 * MEAN) @ v @ np.diag(f) @ v.T


def fitted_slope(ks, errs):
    return float(np.polyfit(np.log(ks), np.log(errs), 1)[0])


# --------------------------------------------------------------------------- ODE convergence orders
ODE_CASES = [
    ("euler", S.Euler(), "log_snr", [16, 32, 64], 1),
    ("heun", S.Heun(), "edm", [16, 32, 64], 2),
    ("ddim", S.DDIM(), "log_snr", [16, 32, 64], 1),
    ("dpm_solver_2", S.DPMSolver2(), "log_snr", [16, 32, 64], 2),
    ("dpm_solver_3", S.DPMSolver3(), "log_snr", [16, 32, 64], 3),
    ("dpm_solver_pp_2m", S.DPMSolverPP2M(), "log_snr", [32, 64, 128], 2),
]


@pytest.mark.parametrize("name,method,grid,ks,order", ODE_CASES, ids=[c[0] for c in ODE_CASES])
def test_ode_sampler_converges_at_its_order(gauss, name, method, grid, ks, order):
    _, sched, score = gauss
    x = np.asarray(jax.random.normal(jax.random.key(0), (16, 2)))
    ref = exact_pf_map(x, sched, T0, T1)
    errs = []
    for k in ks:
        out = S.sample(method, score, sched, x, t_start=T0, t_end=T1, num_steps=k, grid=grid)
        errs.append(float(np.max(np.abs(np.asarray(out.points) - ref))))
    slope = fitted_slope(ks, errs)
    print(f"{name}: errors {errs}, fitted order {-slope:.2f}")
    assert abs(-slope - order) <= 0.3, (name, errs, slope)
    assert errs[-1] < errs[0] / 2 ** (order * (len(ks) - 1) - 1)


@pytest.mark.slow
def test_heun_on_edm_schedule_with_edm_grid():
    sched = jo.EDM()
    mu = jo.GaussianMeasure(MEAN, COV)
    score = jo.exact_score(mu, sched)
    t0, t1 = 20.0, 0.05
    x = np.asarray(jax.random.normal(jax.random.key(1), (8, 2))) * t0
    lam, v = np.linalg.eigh(COV)
    ref = MEAN + (x - MEAN) @ v @ np.diag(np.sqrt((lam + t1**2) / (lam + t0**2))) @ v.T
    ks = [16, 32, 64]
    errs = [float(np.max(np.abs(S.sample(S.Heun(), score, sched, x, t_start=t0, t_end=t1, num_steps=k, grid="edm").points - ref))) for k in ks]
    assert abs(-fitted_slope(ks, errs) - 2) <= 0.3, errs


def test_adaptive_flow_matches_exact_map_and_flow_map(gauss):
    _, sched, score = gauss
    x = np.asarray(jax.random.normal(jax.random.key(2), (8, 2)))
    out = S.adaptive_flow(score, sched, x, t_start=T0, t_end=T1, tol=1e-10)
    np.testing.assert_allclose(out.points, exact_pf_map(x, sched, T0, T1), atol=1e-8)
    ref = jo.flow_map(score, sched, x, T0, T1, ode=jo.ODESettings(rtol=1e-10, atol=1e-10))
    assert int(out.nfe) == int(ref.nfe) > 0
    np.testing.assert_array_equal(out.times, [T0, T1])


# ------------------------------------------------------------------ SDE weak orders (exact moments)
def exact_output_moments(method, score, sched, times, pad_to=None):
    """Mean and covariance of the sampler's output when its input is the exact p_{t0}.

    With the Gaussian exact score every step is affine in (x, noise), so the output is
    A x + sum_k B_k xi_k + c: mean = run(mean_0, noise = 0), cov = A C0 A^T + sum B_k B_k^T, with
    A and B from autodiff of the run. No Monte Carlo error.

    ``pad_to``: repeat t_end so every grid has the same length (one compilation for all step
    counts). For these SDE steps a step of length 0 is exactly the identity (its noise has scale
    sqrt(0)), which the test of the unpadded grid below also checks.
    """
    mu = score.measure
    times = np.asarray(times)
    if pad_to is not None:
        times = np.concatenate([times, np.full(pad_to + 1 - times.shape[0], times[-1])])
    k = times.shape[0] - 1
    m0 = sched.alpha(times[0]) * mu.mean
    c0 = mu.marginal_cov(times[0], sched)
    return _moments(method, score, sched, jnp.asarray(times), m0, c0, jnp.zeros((k, method.evals_per_step, 1, 2)))


@jax.jit
def _moments(method, score, sched, times, mean0, cov0, noise0):
    f = lambda x, n: _sample_with_noise(method, score, sched, x[None], times, n).points[0]
    mo = f(mean0, noise0)
    jx = jax.jacfwd(f, 0)(mean0, noise0)
    jn = jax.jacrev(f, 1)(mean0, noise0).reshape(2, -1)
    return mo, jx @ cov0 @ jx.T + jn @ jn.T


SDE_CASES = [
    ("ddpm", S.AncestralDDPM(), "log_snr"),
    ("euler_maruyama", S.EulerMaruyama(), "uniform"),
    ("predictor_corrector", S.PredictorCorrector(), "uniform"),
]


@pytest.mark.parametrize("name,method,grid", SDE_CASES, ids=[c[0] for c in SDE_CASES])
def test_sde_sampler_weak_order_one(gauss, name, method, grid):
    """Weak order 1: error in (mean, covariance) of the output law, computed exactly."""
    mu, sched, score = gauss
    ks = [32, 64, 128]
    errs = []
    for k in ks:
        times = S.time_grid(sched, T0, T1, k, grid)
        m, c = exact_output_moments(method, score, sched, times, pad_to=max(ks))
        if k == ks[0]:  # padding with zero-length steps changes nothing
            m_unpadded, c_unpadded = exact_output_moments(method, score, sched, times)
            np.testing.assert_allclose(m, m_unpadded, rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(c, c_unpadded, rtol=1e-12, atol=1e-14)
        err = np.linalg.norm(m - sched.alpha(T1) * MEAN) + np.linalg.norm(c - mu.marginal_cov(T1, sched))
        errs.append(float(err))
    slope = fitted_slope(ks, errs)
    print(f"{name}: errors {errs}, fitted weak order {-slope:.2f}")
    assert abs(-slope - 1) <= 0.3, (name, errs, slope)


@pytest.mark.slow
def test_sde_sampler_with_key_has_the_computed_law(gauss):
    """The public (keyed) path draws the noise the exact-moment path assumes: Monte Carlo agrees."""
    mu, sched, score = gauss
    k, n = 16, 40_000
    times = S.time_grid(sched, T0, T1, k, "uniform")
    m_exact, c_exact = exact_output_moments(S.EulerMaruyama(), score, sched, times)
    x0 = mu.sample_marginal(jax.random.key(3), T0, sched, n)
    out = S.sample(S.EulerMaruyama(), score, sched, x0, t_start=T0, t_end=T1, num_steps=k, key=jax.random.key(4), grid="uniform")
    pts = np.asarray(out.points)
    se = np.sqrt(np.diag(c_exact) / n)
    np.testing.assert_array_less(np.abs(pts.mean(0) - m_exact), 5 * se)
    np.testing.assert_allclose(np.cov(pts.T), c_exact, atol=5 * float(np.max(np.diag(c_exact))) * np.sqrt(2 / n))


def test_predictor_corrector_snr_rule_runs_and_counts(gauss):
    _, sched, score = gauss
    out = S.sample(
        S.PredictorCorrector(num_corrector_steps=2, snr=0.16), score, sched, t_start=T0, t_end=T1, num_steps=10,
        key=jax.random.key(0), shape=(32, 2),
    )
    assert int(out.nfe) == 30 and bool(jnp.all(jnp.isfinite(out.points)))


# ------------------------------------------------------------------------------------ exact NFE
ALL = [  # (test id, method, score evaluations per step)
    ("euler", S.Euler(), 1), ("heun", S.Heun(), 2), ("ddim", S.DDIM(), 1), ("dpm_solver_2", S.DPMSolver2(), 2),
    ("dpm_solver_3", S.DPMSolver3(), 3), ("dpm_solver_pp_2m", S.DPMSolverPP2M(), 1), ("ddpm", S.AncestralDDPM(), 1),
    ("euler_maruyama", S.EulerMaruyama(), 1), ("predictor_corrector", S.PredictorCorrector(num_corrector_steps=2), 3),
]


@pytest.mark.parametrize("name,method,per", ALL, ids=[f[0] for f in ALL])
def test_nfe_is_exact(gauss, name, method, per):
    _, sched, score = gauss
    calls = []

    def counting(x, t):
        jax.debug.callback(lambda _: calls.append(1), t)  # runs once per executed score call
        return score(x, t)

    k = 7
    out = S.sample(method, counting, sched, t_start=T0, t_end=T1, num_steps=k, key=jax.random.key(0), shape=(5, 2))
    jax.block_until_ready(out)
    assert int(out.nfe) == len(calls) == per * k
    assert int(out.num_steps) == k and out.times.shape == (k + 1,)
    by_nfe = S.sample(method, counting, sched, t_start=T0, t_end=T1, nfe=per * k, key=jax.random.key(0), shape=(5, 2))
    jax.block_until_ready(by_nfe)
    assert int(by_nfe.num_steps) == k and int(by_nfe.nfe) == per * k and len(calls) == 2 * per * k


def test_nfe_not_a_multiple_is_rejected(gauss):
    _, sched, score = gauss
    with pytest.raises(ValueError, match="`nfe`"):
        S.sample(S.Heun(), score, sched, np.zeros((2, 2)), t_start=T0, t_end=T1, nfe=9)


# ------------------------------------------------------------------------------------ grids
def test_grids():
    sched = jo.VPLinear()
    t = S.time_grid(sched, 1.0, 1e-3, 10, "uniform")
    np.testing.assert_allclose(t, np.linspace(1.0, 1e-3, 11))
    t = S.time_grid(sched, 1.0, 1e-3, 10, "log_snr")
    lam = np.asarray(sched.log_snr(t))
    np.testing.assert_allclose(np.diff(lam), np.full(10, (lam[-1] - lam[0]) / 10), rtol=1e-8)
    assert float(t[0]) == 1.0 and float(t[-1]) == 1e-3
    t = S.time_grid(jo.EDM(), 80.0, 0.002, 18, S.EDMGrid(rho=7.0))
    i = np.arange(19) / 18
    np.testing.assert_allclose(t, (80.0 ** (1 / 7) + i * (0.002 ** (1 / 7) - 80.0 ** (1 / 7))) ** 7, rtol=1e-10)
    t = np.asarray(S.time_grid(sched, 1.0, 1e-3, 999, "ddpm"))
    np.testing.assert_allclose(t, np.arange(1000, 0, -1) / 1000, rtol=1e-12)
    # On the 1000-step grid VPLinear's per-step betas are DDPM's linear betas 1e-4 ... 0.02.
    betas = 1 - np.exp(2 * (np.asarray(sched.log_alpha(t[:-1])) - np.asarray(sched.log_alpha(t[1:]))))
    np.testing.assert_allclose(betas[::-1], np.linspace(1e-4, 0.02, 1000)[1:], rtol=2e-2, atol=1e-5)  # O(beta^2) apart
    t = np.asarray(S.time_grid(sched, 1.0, 1e-3, 50, "ddpm"))
    np.testing.assert_allclose(t * 1000, np.round(t * 1000), atol=1e-9)
    t = np.asarray(S.time_grid(sched, 1.0, 0.1, 3, np.array([1.0, 0.7, 0.2, 0.1])))
    np.testing.assert_array_equal(t, [1.0, 0.7, 0.2, 0.1])


# ------------------------------------------------------------------------------------ start points
def test_prior_start_is_the_documented_draw(gauss):
    _, sched, score = gauss
    key = jax.random.key(5)
    out = S.sample(S.DDIM(), score, sched, t_start=T0, t_end=T1, num_steps=8, key=key, shape=(6, 2))
    x0 = sched.sample_prior(jax.random.split(key)[1], T0, (6, 2))
    ref = S.sample(S.DDIM(), score, sched, x0, t_start=T0, t_end=T1, num_steps=8)
    np.testing.assert_allclose(out.points, ref.points, rtol=1e-12)


def test_start_from_given_points_at_given_time_composes(gauss):
    """Running t0 -> tm -> t1 on the same grid points equals one run t0 -> t1 (deterministic)."""
    _, sched, score = gauss
    x = np.asarray(jax.random.normal(jax.random.key(6), (4, 2)))
    times = np.asarray(S.time_grid(sched, T0, T1, 10, "log_snr"))
    full = S.sample(S.Heun(), score, sched, x, t_start=T0, t_end=T1, num_steps=10, grid=times)
    half = S.sample(S.Heun(), score, sched, x, t_start=T0, t_end=float(times[5]), num_steps=5, grid=times[:6])
    rest = S.sample(S.Heun(), score, sched, half.points, t_start=float(times[5]), t_end=T1, num_steps=5, grid=times[5:])
    np.testing.assert_allclose(rest.points, full.points, rtol=1e-12, atol=1e-12)


def test_float32_path(gauss):
    _, sched, score = gauss
    x = np.asarray(jax.random.normal(jax.random.key(7), (4, 2)))
    ref = S.sample(S.DPMSolver3(), score, sched, x, t_start=T0, t_end=T1, num_steps=10, grid="log_snr").points
    out = S.sample(S.DPMSolver3(), score, sched, x.astype(np.float32), t_start=T0, t_end=T1, num_steps=10, grid="log_snr")
    assert out.points.dtype == jnp.float32
    np.testing.assert_allclose(out.points, ref, atol=1e-4)


# ------------------------------------------------------------------------------------ validation
def test_bad_input_names_the_argument(gauss):
    _, sched, score = gauss
    x = np.zeros((3, 2))
    kw = dict(t_start=T0, t_end=T1, num_steps=4)
    cases = [
        (dict(kw, num_steps=0), "num_steps"),
        (dict(t_start=T0, t_end=T1, nfe=0), "nfe"),
        (dict(t_start=T0, t_end=T1, nfe=4, num_steps=4), "num_steps"),
        (dict(t_start=T0, t_end=T1), "num_steps"),
        (dict(kw, t_end=T0), "t_end"),
        (dict(kw, t_end=2.0), "t_end"),
        (dict(kw, t_end=0.0), "t_end"),
        (dict(kw, t_start=-1.0), "t_start"),
        (dict(kw, grid="cosine"), "grid"),
        (dict(kw, grid=np.array([1.0, 0.5, 0.01])), "grid"),
        (dict(kw, grid=np.array([1.0, 0.5, 0.6, 0.3, 0.01])), "grid"),
        (dict(kw, grid=np.array([0.9, 0.5, 0.4, 0.3, 0.01])), "grid"),
    ]
    for bad, name in cases:
        with pytest.raises(ValueError, match=f"`{name}`"):
            S.sample(S.Euler(), score, sched, x, **bad)
    with pytest.raises(ValueError, match="`x`"):
        S.sample(S.Euler(), score, sched, np.zeros((3, 5)), **kw)
    with pytest.raises(ValueError, match="`x`"):
        S.sample(S.Euler(), score, sched, np.zeros(()), **kw)
    with pytest.raises(ValueError, match="`shape`"):
        S.sample(S.Euler(), score, sched, x, shape=(3, 2), key=jax.random.key(0), **kw)
    with pytest.raises(ValueError, match="`shape`"):
        S.sample(S.Euler(), score, sched, shape=(3, 0), key=jax.random.key(0), **kw)
    with pytest.raises(ValueError, match="`key`"):
        S.sample(S.Euler(), score, sched, shape=(3, 2), **kw)
    with pytest.raises(ValueError, match="`key`"):
        S.sample(S.EulerMaruyama(), score, sched, x, **kw)
    with pytest.raises(ValueError, match="`schedule`"):
        S.sample(S.Euler(), score, "vp", x, **kw)
    with pytest.raises(ValueError, match="`score`"):
        S.sample(S.Euler(), None, sched, x, **kw)
    with pytest.raises(ValueError, match="`grid`"):  # more steps than discrete DDPM steps in range
        S.sample(S.AncestralDDPM(), score, sched, x, t_start=0.01, t_end=0.005, num_steps=20, grid="ddpm", key=jax.random.key(0))
    with pytest.raises(ValueError, match="`t_start`"):  # outside the cosine schedule's domain
        S.sample(S.DDIM(), jo.exact_score(jo.GaussianMeasure(MEAN, COV), jo.Cosine()), jo.Cosine(), x, t_start=1.0, t_end=0.1, num_steps=3)
    with pytest.raises(ValueError, match="`num_corrector_steps`"):
        S.sample(S.PredictorCorrector(num_corrector_steps=0), score, sched, x, key=jax.random.key(0), **kw)
    with pytest.raises(ValueError, match="`snr`"):
        S.sample(S.PredictorCorrector(snr=-1.0), score, sched, x, key=jax.random.key(0), **kw)


# ------------------------------------------------------------------------------ jit and retracing
def test_jit_matches_eager(gauss):
    _, sched, score = gauss
    x = jax.random.normal(jax.random.key(8), (6, 2))
    key = jax.random.key(9)
    for method in (S.EulerMaruyama(), S.DPMSolverPP2M()):
        eager = S.sample(method, score, sched, x, t_start=T0, t_end=T1, num_steps=12, key=key)
        jitted = jax.jit(lambda x, key, m=method: S.sample(m, score, sched, x, t_start=T0, t_end=T1, num_steps=12,
                                                           key=key))(x, key)
        np.testing.assert_allclose(jitted.points, eager.points, rtol=1e-12, atol=1e-12)
        assert int(jitted.nfe) == int(eager.nfe)


def test_no_retrace_across_calls(gauss):
    _, sched, score = gauss
    traced = chex.assert_max_traces(lambda x, t: score(x, t), n=1)
    for i in range(3):
        x = jax.random.normal(jax.random.key(i), (6, 2))
        S.sample(S.Euler(), traced, sched, x, t_start=T0, t_end=T1, num_steps=5)
    run = jax.jit(chex.assert_max_traces(lambda x: S.sample(S.Heun(), score, sched, x, t_start=T0, t_end=T1, num_steps=5).points, n=1))
    for i in range(3):
        run(jax.random.normal(jax.random.key(10 + i), (6, 2)))


# ------------------------------------------------------------------ default grids: no divergence
USUAL_STARTS = [  # each schedule from its usual start time to a small end time
    (jo.OU(), 8.0, 1e-3),
    (jo.VPLinear(), 1.0, 1e-3),
    (jo.SubVP(), 1.0, 1e-3),
    (jo.Cosine(), 0.99, 1e-3),
    (jo.VE(), 1.0, 1e-3),
    (jo.EDM(), 80.0, 2e-3),
]
FIXED = {  # every fixed-step method, by its test id
    "euler": S.Euler(), "heun": S.Heun(), "ddim": S.DDIM(), "dpm_solver_2": S.DPMSolver2(),
    "dpm_solver_3": S.DPMSolver3(), "dpm_solver_pp_2m": S.DPMSolverPP2M(), "ddpm": S.AncestralDDPM(),
    "euler_maruyama": S.EulerMaruyama(), "predictor_corrector": S.PredictorCorrector(),
}


@pytest.fixture(scope="module")
def toy():
    y = jo.data.toy_2d("eight_gaussians", 64, seed=0).astype(np.float64)
    return jo.EmpiricalMeasure(y), float(np.linalg.norm(y, axis=1).max())


# by default one method per family at 10 NFE (first order, second order, third order, multistep, stochastic,
# predictor-corrector: ~10 s of compilation each); the others and 100 NFE with -m slow
_GRID_DEFAULT = ("euler", "heun", "dpm_solver_3", "dpm_solver_pp_2m", "ddpm", "predictor_corrector")


_GRID_CASES = [pytest.param(name, nfe, id=f"{name}-{nfe}",
                             marks=() if nfe == 10 and name in _GRID_DEFAULT else pytest.mark.slow)
               for nfe in (10, 100) for name in FIXED]


@pytest.mark.parametrize("name,nfe", _GRID_CASES)
def test_default_grid_does_not_diverge(toy, name, nfe):
    """Every sampler with its default grid, on the exact score of a small dataset, from each schedule's
    usual start time, ends within a small multiple of the data scale. (Before: equal steps in t; e.g.
    heun on OU from t = 8 reached |x| = 20 times the data scale, with no flag.)"""
    mu, radius = toy
    method = FIXED[name]
    n = nfe - nfe % method.evals_per_step
    for sched, t0, t1 in USUAL_STARTS:
        out = S.sample(method, jo.exact_score(mu, sched), sched, t_start=t0, t_end=t1, nfe=n, key=jax.random.key(1),
                       shape=(256, 2))
        reach = float(jnp.max(jnp.linalg.norm(out.points, axis=-1)))
        assert reach <= 1.5 * radius, (name, type(sched).__name__, reach / radius)
        assert Status(int(out.status)) == Status.SUCCESS, (name, type(sched).__name__)


def test_default_grid_is_the_log_snr_grid(gauss):
    _, sched, score = gauss
    for method in (S.Euler(), S.Heun(), S.DDIM(), S.DPMSolver3(), S.AncestralDDPM(), S.PredictorCorrector()):
        out = S.sample(method, score, sched, np.zeros((2, 2)), t_start=T0, t_end=T1, num_steps=6,
                       key=jax.random.key(0))
        np.testing.assert_allclose(out.times, S.time_grid(sched, T0, T1, 6, "log_snr"), rtol=1e-12)


def test_divergence_is_flagged_and_raised(toy):
    """Equal steps in t with 10 NFE: the run leaves the data scale; eagerly it raises (the default) or, with
    ``throw=False``, warns and says so in the result; under jit the status says so."""
    mu, radius = toy
    sched = jo.OU()
    score = jo.exact_score(mu, sched)
    kw = dict(t_start=8.0, t_end=1e-3, nfe=10, grid="uniform", key=jax.random.key(1), shape=(256, 2))
    with pytest.raises(RuntimeError, match=r"sample \(Heun\): .*diverg.*grid=None"):
        S.sample(S.Heun(), score, sched, **kw)
    with pytest.warns(ConvergenceWarning, match="diverg"):
        out = S.sample(S.Heun(), score, sched, **kw, throw=False)
    assert Status(int(out.status)) == Status.DIVERGED
    assert float(out.scale_ratio) > 5.0
    assert float(jnp.max(jnp.linalg.norm(out.points, axis=-1))) > 3 * radius
    jitted = jax.jit(lambda key: S.sample(S.Heun(), score, sched, **{**kw, "key": key}))(jax.random.key(1))
    assert Status(int(jitted.status)) == Status.DIVERGED
    healthy = S.sample(S.Heun(), score, sched, **{**kw, "grid": None})
    assert Status(int(healthy.status)) == Status.SUCCESS


def test_divergence_reference_uses_the_measure_radius_and_the_start(gauss):
    """A run started far outside the prior is judged relative to its start, not flagged for it."""
    _, sched, score = gauss
    out = S.sample(S.DDIM(), score, sched, np.full((4, 2), 30.0), t_start=T0, t_end=T1, num_steps=8)
    assert Status(int(out.status)) == Status.SUCCESS


def test_nonfinite_score_is_flagged(gauss):
    _, sched, score = gauss
    bad = lambda x, t: jnp.where(t < 0.5, jnp.nan, 1.0) * score(x, t)
    with pytest.raises(RuntimeError, match=r"sample \(Euler\): a non-finite value"):
        S.sample(S.Euler(), bad, sched, np.zeros((3, 2)), t_start=T0, t_end=T1, num_steps=4)
    with pytest.warns(ConvergenceWarning, match="non-finite"):
        out = S.sample(S.Euler(), bad, sched, np.zeros((3, 2)), t_start=T0, t_end=T1, num_steps=4, throw=False)
    assert Status(int(out.status)) == Status.NONFINITE


def test_adaptive_flow_reads_the_solver_status(gauss):
    _, sched, score = gauss
    x = np.zeros((3, 2))
    with pytest.raises(RuntimeError, match="flow_map: the iteration budget ran out"):
        S.adaptive_flow(score, sched, x, t_start=T0, t_end=T1, max_steps=2)
    with pytest.warns(ConvergenceWarning, match="adaptive_flow: the iteration budget ran out"):
        out = S.adaptive_flow(score, sched, x, t_start=T0, t_end=T1, max_steps=2, throw=False)
    assert Status(int(out.status)) == Status.MAX_ITERATIONS
    ok = S.adaptive_flow(score, sched, x, t_start=T0, t_end=T1)
    assert Status(int(ok.status)) == Status.SUCCESS


def test_predictor_corrector_snr_rule_has_songs_alpha_factor():
    """Song et al.'s corrector step for VP schedules is 2 a_i (snr |z| / |score|)^2 with a_i = 1 - beta_i;
    for the continuous step t -> s, a_i = alpha(t)^2 / alpha(s)^2 (1 for VE)."""
    snr = 0.16
    for sched, t, s in ((jo.VPLinear(), 0.5, 0.4), (jo.VE(), 0.5, 0.4)):
        mu = jo.GaussianMeasure(MEAN, COV)
        score = jo.exact_score(mu, sched)
        x = np.array([[0.3, -0.7]])
        z0, z1 = np.array([[0.5, 1.0]]), np.array([[-0.2, 0.4]])
        out = _sample_with_noise(S.PredictorCorrector(1, 1.0, snr), score, sched, jnp.asarray(x),
                                 jnp.asarray([t, s]), jnp.asarray(np.stack([z0, z1])[None]))
        g = np.asarray(score(x, t))
        a_i = float(np.exp(2 * (sched.log_alpha(t) - sched.log_alpha(s))))
        eps = 2 * a_i * (snr * np.linalg.norm(z0) / np.linalg.norm(g)) ** 2
        xc = x + eps * g + np.sqrt(2 * eps) * z0
        h, g2 = t - s, float(sched.diffusion2(t))
        ref = xc - h * (float(sched.drift(t)) * xc - g2 * np.asarray(score(xc, t))) + np.sqrt(g2 * h) * z1
        np.testing.assert_allclose(out.points, ref, rtol=1e-12)
        if isinstance(sched, jo.VE):
            assert a_i == 1.0
        else:
            assert 0.0 < a_i < 1.0


def test_predictor_corrector_step_is_capped_at_sigma2(gauss):
    """The default Langevin step min(c g^2 h, sigma_t^2): one coarse step leaves a bounded result."""
    _, sched, score = gauss
    x = np.array([[0.3, -0.7]])
    z = jnp.zeros((1, 2, 1, 2))
    t, s = 0.5, 0.01
    out = _sample_with_noise(S.PredictorCorrector(1, 100.0), score, sched, jnp.asarray(x), jnp.asarray([t, s]), z)
    eps = float(sched.sigma2(t))  # 100 g^2 h is far larger: the cap acts
    xc = x + eps * np.asarray(score(x, t))
    h, g2 = t - s, float(sched.diffusion2(t))
    ref = xc - h * (float(sched.drift(t)) * xc - g2 * np.asarray(score(xc, t)))
    np.testing.assert_allclose(out.points, ref, rtol=1e-12)


def test_time_grid_validates_its_times():
    sched = jo.OU()
    with pytest.raises(ValueError, match="`t_end`"):  # before: negative times came back
        S.time_grid(sched, 1.0, -0.5, 4)
    with pytest.raises(ValueError, match="`t_end` must be < `t_start`"):
        S.time_grid(sched, 0.5, 1.0, 4)
    with pytest.raises(ValueError, match="`t_start`"):
        S.time_grid(jo.Cosine(), 1.5, 0.1, 4)
    with pytest.raises(ValueError, match="`rho`"):
        S.EDMGrid(rho=-7.0)
    with pytest.raises(ValueError, match="`num_train_steps`"):
        S.DDPMGrid(num_train_steps=0)
    with pytest.raises(ValueError, match="smallest normal float32"):
        S.time_grid(sched, 1.0, 1e-40, 4, dtype=jnp.float32)


def test_sampler_parameters_are_validated():
    with pytest.raises(ValueError, match="`snr`"):
        S.PredictorCorrector(snr=float("inf"))
    with pytest.raises(ValueError, match="`corrector_scale`"):
        S.PredictorCorrector(corrector_scale=float("inf"))
    with pytest.raises(ValueError, match="`corrector_scale`"):
        S.PredictorCorrector(corrector_scale=-1.0)
    with pytest.raises(ValueError, match="`method`"):
        S.sample(S.Heun, lambda x, t: x, jo.OU(), np.zeros((2, 1)), t_start=1.0, t_end=0.1, num_steps=2)
    with pytest.raises(ValueError, match="`shape`.*ShapeDtypeStruct with a floating dtype.*int32"):
        S.sample(S.Euler(), lambda x, t: x, jo.OU(), t_start=1.0, t_end=0.1, num_steps=2, key=jax.random.key(0),
                 shape=jax.ShapeDtypeStruct((2, 1), np.int32))


def test_t_below_float32_resolution_is_rejected_before_the_run(gauss):
    """t = 1e-40 is > 0 but rounds to zero in float32 (before: the run returned NaN)."""
    _, sched, score = gauss
    x32 = np.zeros((2, 2), np.float32)
    with pytest.raises(ValueError, match="`t_end`.*float32"):
        S.sample(S.DDIM(), score, sched, x32, t_start=1.0, t_end=1e-40, num_steps=3)
    S.sample(S.DDIM(), score, sched, x32.astype(np.float64), t_start=1.0, t_end=1e-40, num_steps=3)  # fine in float64


def test_log_snr_grid_crosses_the_prior_regime_in_one_step(toy):
    """From far beyond the point where the data is forgotten (VPLinear t = 5: log-SNR -249), equal log-SNR
    steps would leave almost none where the data is resolved; the first step goes to the floor instead."""
    sched = jo.VPLinear()
    t = np.asarray(S.time_grid(sched, 5.0, 1e-3, 10, "log_snr"))
    lam = np.asarray(sched.log_snr(t))
    assert t[0] == 5.0 and t[-1] == 1e-3
    np.testing.assert_allclose(lam[1], S.UniformLogSNR().floor, atol=1e-6)
    np.testing.assert_allclose(np.diff(lam[1:]), (lam[-1] - lam[1]) / 9, rtol=1e-8)
    np.testing.assert_allclose(S.time_grid(sched, 1.0, 1e-3, 10, "log_snr"),
                               sched.t_from_log_snr(np.linspace(sched.log_snr(1.0), sched.log_snr(1e-3), 11)), rtol=1e-10)
    t_far = np.asarray(S.time_grid(jo.OU(), 60.0, 40.0, 4, "log_snr"))  # both ends beyond the floor: plain
    assert np.all(np.diff(t_far) < 0)
    mu, radius = toy
    for method in (S.Euler(), S.DDIM(), S.Heun()):
        out = S.sample(method, jo.exact_score(mu, sched), sched, t_start=5.0, t_end=1e-3, nfe=10, key=jax.random.key(1),
                       shape=(256, 2))
        assert float(jnp.max(jnp.linalg.norm(out.points, axis=-1))) <= 1.5 * radius, type(method).__name__


# ------------------------------------------------------------------ far starts: the prior regime
FAR_STARTS = [(jo.VPLinear(), 5.0), (jo.OU(), 40.0)]  # log-SNR -249 and -40: alpha_t underflows in float32


@pytest.mark.parametrize("method", [S.Euler(), S.DDIM(), S.Heun(), S.DPMSolverPP2M(), S.AncestralDDPM()],
                         ids=lambda m: type(m).__name__)
def test_far_start_in_float32_is_finite_and_lands_on_the_data_scale(toy, method):
    """From far beyond the log-SNR floor, where alpha_t is 0 in float32, the default grid's first step lies in
    the prior regime and is taken exactly (before: DDIM, Heun, DPM-Solver++ and DDPM returned NaN from
    VPLinear t = 5)."""
    mu, radius = toy
    mu32 = jo.EmpiricalMeasure(np.asarray(mu.points, np.float32))
    for sched, t0 in FAR_STARTS:
        out = S.sample(method, jo.exact_score(mu32, sched), sched, t_start=t0, t_end=1e-3, nfe=10,
                       key=jax.random.key(3), shape=jax.ShapeDtypeStruct((256, 2), np.float32))
        assert out.points.dtype == np.float32 and bool(jnp.all(jnp.isfinite(out.points)))
        reach = float(jnp.max(jnp.linalg.norm(out.points, axis=-1)))
        assert reach <= 1.5 * radius, (type(method).__name__, type(sched).__name__, reach / radius)
        assert Status(int(out.status)) == Status.SUCCESS
        assert int(out.nfe) == 10


def test_far_start_never_returns_nan_unflagged(toy):
    """Methods whose coarse steps can still overshoot after the prior regime (DPM-Solver-2/3 in noise
    prediction, Euler-Maruyama) return finite samples, and a divergence is in the status and warned
    (``throw=False``)."""
    mu, _ = toy
    mu32 = jo.EmpiricalMeasure(np.asarray(mu.points, np.float32))
    sched = jo.VPLinear()
    for method in (S.DPMSolver2(), S.DPMSolver3(), S.EulerMaruyama(), S.PredictorCorrector()):
        n = 12 - 12 % method.evals_per_step
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = S.sample(method, jo.exact_score(mu32, sched), sched, t_start=5.0, t_end=1e-3, nfe=n,
                           key=jax.random.key(4), shape=jax.ShapeDtypeStruct((64, 2), np.float32), throw=False)
        assert bool(jnp.all(jnp.isfinite(out.points))), type(method).__name__
        status = Status(int(out.status))
        assert status in (Status.SUCCESS, Status.DIVERGED)
        assert (status == Status.DIVERGED) == any("diverg" in str(w.message) for w in caught)


def test_a_run_ending_several_data_radii_out_is_not_a_success():
    """Every run that ends beyond 3 data radii is flagged DIVERGED (with a factor of 5, predictor-corrector from
    VPLinear t = 5 at 10 NFE in float64 ended at 4.2 radii and reported success)."""
    y = np.random.default_rng(0).normal(size=(32, 2)) * 0.5
    mu, radius = jo.EmpiricalMeasure(y), float(np.linalg.norm(y, axis=1).max())
    sched = jo.VPLinear()
    for method in (S.PredictorCorrector(), S.DPMSolver2()):
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            out = S.sample(method, jo.exact_score(mu, sched), sched, t_start=5.0, t_end=1e-3, nfe=10,
                           key=jax.random.key(0), shape=jax.ShapeDtypeStruct((128, 2), np.float64), throw=False)
        reach = float(jnp.max(jnp.linalg.norm(out.points, axis=-1))) / radius
        assert reach <= 3.0 or Status(int(out.status)) == Status.DIVERGED, (type(method).__name__, reach)


def test_prior_regime_transition_matches_the_methods_where_they_are_accurate():
    """Inside the prior regime (log-SNR -40 -> -31) in float64, DDIM's own formula and the exact transition
    agree to the size of the dropped data term (alpha_s / sigma_s < e^-15)."""
    from jaxotdm.samplers._core import _prior_transition

    sched = jo.OU()
    y = jnp.asarray(np.random.default_rng(0).normal(size=(5, 2)))
    score = jo.exact_score(jo.EmpiricalMeasure(y), sched)
    t, s = float(sched.t_from_log_snr(-40.0)), float(sched.t_from_log_snr(-31.0))
    x = jnp.asarray(np.random.default_rng(1).normal(size=(7, 2))) * sched.sigma(t)
    own = S.DDIM().step(score, sched, x, t, s)
    exact = _prior_transition(sched, x, t, s, None)
    np.testing.assert_allclose(own, exact, atol=1e-6)


# ------------------------------------------------------------------ one form: no function twins
@pytest.mark.parametrize("name", ["euler", "heun", "ddim", "dpm_solver_2", "dpm_solver_3", "dpm_solver_pp_2m",
                                  "ddpm", "euler_maruyama", "predictor_corrector"])
def test_the_former_function_twins_are_gone(name):
    """A sampler is a method object run by ``sample``; the function twins of earlier versions were removed
    before 0.1.0 (no legacy surface in a first release)."""
    assert not hasattr(S, name)
    assert name not in S.__all__
