"""Schedules: forward-SDE marginals, derived f and g^2, small-t accuracy, log-SNR inverse, PyTree use."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxotdm as jo

ALL = [jo.OU(), jo.OU(beta=2.5), jo.VPLinear(), jo.SubVP(), jo.Cosine(), jo.VE(), jo.EDM()]
IDS = [f"{type(s).__name__}-{i}" for i, s in enumerate(ALL)]


def _times(s):
    return jnp.array([1e-3, 0.1, 0.37, 0.8]) if s.t_max < math.inf else jnp.array([1e-3, 0.1, 0.8, 3.0])


@pytest.mark.parametrize("s", ALL, ids=IDS)
def test_drift_and_diffusion_match_finite_differences(s):
    t = _times(s)
    h = 1e-6 * jnp.maximum(t, 1.0)
    f_fd = (jnp.log(s.alpha(t + h)) - jnp.log(s.alpha(t - h))) / (2 * h)
    ds2 = (s.sigma(t + h) ** 2 - s.sigma(t - h) ** 2) / (2 * h)
    g2_fd = ds2 - 2 * f_fd * s.sigma(t) ** 2
    np.testing.assert_allclose(s.drift(t), f_fd, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(s.diffusion2(t), g2_fd, rtol=1e-6, atol=1e-8)
    assert np.all(np.asarray(s.diffusion2(t)) > 0)


def test_known_closed_forms():
    t = jnp.array([0.01, 0.5, 2.0])
    np.testing.assert_allclose(jo.OU(beta=2.0).diffusion2(t), 2.0, rtol=1e-14)
    np.testing.assert_allclose(jo.OU(beta=2.0).drift(t), -1.0, rtol=1e-14)
    v = jo.VPLinear()
    np.testing.assert_allclose(v.diffusion2(t), 0.1 + t * 19.9, rtol=1e-12)
    np.testing.assert_allclose(jo.EDM().diffusion2(t), 2 * t, rtol=1e-14)
    ve = jo.VE()
    np.testing.assert_allclose(ve.sigma(1.0), 50.0, rtol=1e-13)
    np.testing.assert_allclose(ve.diffusion2(t), 2 * math.log(5000.0) * ve.sigma(t) ** 2, rtol=1e-12)


def _sigma_expansion(s, t):
    """Independent small-t expansions of sigma(t), accurate far beyond 1e-10 at t = 1e-8."""
    if isinstance(s, jo.SubVP):
        B = s.beta_min * t + 0.5 * (s.beta_max - s.beta_min) * t * t
        return B - B * B / 2 + B**3 / 6
    if isinstance(s, jo.VPLinear):
        B = s.beta_min * t + 0.5 * (s.beta_max - s.beta_min) * t * t
        return math.sqrt(B - B * B / 2 + B**3 / 6)
    if isinstance(s, jo.OU):
        b = s.beta * t
        return math.sqrt(b - b * b / 2 + b**3 / 6)
    if isinstance(s, jo.Cosine):
        a0 = s.s / (1 + s.s) * math.pi / 2
        d = t / (1 + s.s) * math.pi / 2
        sin_d = d - d**3 / 6
        sin_sum = math.sin(2 * a0) * (1 - d * d / 2) + math.cos(2 * a0) * sin_d
        return math.sqrt(sin_d * sin_sum) / math.cos(a0)
    if isinstance(s, jo.VE):
        return s.sigma_min * math.exp(t * math.log(s.sigma_max / s.sigma_min))
    return t  # EDM


@pytest.mark.parametrize("s", ALL, ids=IDS)
def test_sigma_accurate_at_tiny_t(s):
    t = 1e-8
    got = float(s.sigma(jnp.float64(t)))
    ref = _sigma_expansion(s, t)
    assert abs(got - ref) / ref <= 1e-10


@pytest.mark.parametrize("s", ALL, ids=IDS)
def test_log_snr_inverse_round_trip(s):
    t = jnp.concatenate([jnp.array([1e-6]), _times(s)])
    np.testing.assert_allclose(s.t_from_log_snr(s.log_snr(t)), t, rtol=1e-7)
    lam = s.log_snr(t)
    assert np.all(np.diff(np.asarray(lam)) < 0), "log-SNR must decrease"


@pytest.mark.parametrize("s", ALL, ids=IDS)
def test_marginals_match_euler_maruyama(s):
    """Simulate dx = f x dt + g dW from the exact marginal at t_a to t_b; compare mean and variance."""
    ta, tb = (0.05, 0.6) if s.t_max < math.inf else (0.05, 1.5)
    x0 = 0.8
    n_paths, n_steps = 40_000, 2_000
    key = jax.random.key(1)
    k0, key = jax.random.split(key)
    x = s.alpha(ta) * x0 + s.sigma(ta) * jax.random.normal(k0, (n_paths,))
    dt = (tb - ta) / n_steps

    def step(x, inp):
        i, k = inp
        t = ta + i * dt
        return x + s.drift(t) * x * dt + jnp.sqrt(s.diffusion2(t) * dt) * jax.random.normal(k, x.shape), None

    x, _ = jax.lax.scan(step, x, (jnp.arange(n_steps), jax.random.split(key, n_steps)))
    mean_ref, var_ref = float(s.alpha(tb)) * x0, float(s.sigma2(tb))
    se_mean = math.sqrt(var_ref / n_paths)
    se_var = var_ref * math.sqrt(2.0 / n_paths)
    assert abs(float(x.mean()) - mean_ref) < 4 * se_mean + 1e-3 * abs(mean_ref)
    assert abs(float(x.var()) - var_ref) < 4 * se_var + 2e-3 * var_ref


def test_schedules_are_pytrees_and_transformable():
    s = jo.OU(beta=2.0)
    assert jax.tree_util.tree_leaves(s) == [2.0]
    f = jax.jit(lambda sched, t: sched.sigma(t))
    np.testing.assert_allclose(f(s, 0.3), s.sigma(0.3), rtol=1e-14)
    np.testing.assert_allclose(f(jo.OU(beta=3.0), 0.3), jo.OU(beta=3.0).sigma(0.3), rtol=1e-14)
    # grad with respect to the schedule parameter and to time
    dbeta = jax.grad(lambda b: jo.OU(beta=b).sigma2(0.5))(2.0)
    np.testing.assert_allclose(dbeta, 0.5 * math.exp(-1.0), rtol=1e-12)
    dt = jax.grad(lambda t: jo.VPLinear().log_alpha(t))(0.5)
    np.testing.assert_allclose(dt, jo.VPLinear().drift(0.5), rtol=1e-14)
    np.testing.assert_allclose(jax.vmap(jo.Cosine().sigma)(jnp.array([0.1, 0.2])), jo.Cosine().sigma(jnp.array([0.1, 0.2])))


def test_priors():
    assert float(jo.OU().prior_std(5.0)) == 1.0
    assert float(jo.Cosine().prior_std(0.9)) == 1.0
    np.testing.assert_allclose(jo.VE().prior_std(1.0), 50.0, rtol=1e-13)
    np.testing.assert_allclose(jo.EDM().prior_std(80.0), 80.0)
    z = jo.VE().sample_prior(jax.random.key(0), 1.0, (20_000, 2))
    assert abs(float(z.std()) - 50.0) < 1.0
    assert jo.Cosine().t_max == 1.0 and jo.OU().t_max == math.inf


@pytest.mark.parametrize("s", ALL, ids=IDS)
def test_schedule_parameters_can_be_traced(s):
    """Schedules passed through jit as PyTrees (parameters become tracers) give the eager values."""
    t = _times(s)
    f = jax.jit(lambda sched, t: (sched.sigma(t), sched.diffusion2(t), sched.t_from_log_snr(sched.log_snr(t))))
    for got, ref in zip(f(s, t), (s.sigma(t), s.diffusion2(t), s.t_from_log_snr(s.log_snr(t))), strict=True):
        np.testing.assert_allclose(got, ref, rtol=1e-12)


# ------------------------------------------------------------------ parameter validation
@pytest.mark.parametrize(
    ("make", "name"),
    [
        (lambda: jo.OU(beta=-1.0), "beta"),  # before: NaN everywhere
        (lambda: jo.OU(beta=0.0), "beta"),
        (lambda: jo.OU(beta=float("inf")), "beta"),
        (lambda: jo.OU(beta="1"), "beta"),
        (lambda: jo.VPLinear(beta_min=-0.1), "beta_min"),
        (lambda: jo.VPLinear(beta_max=0.0), "beta_max"),
        (lambda: jo.VPLinear(beta_min=2.0, beta_max=1.0), "beta_max"),
        (lambda: jo.SubVP(beta_max=float("nan")), "beta_max"),
        (lambda: jo.Cosine(s=-0.1), "s"),
        (lambda: jo.VE(sigma_min=0.0), "sigma_min"),  # before: NaN
        (lambda: jo.VE(sigma_min=-1.0), "sigma_min"),
        (lambda: jo.VE(sigma_min=1.0, sigma_max=1.0), "sigma_max"),
        (lambda: jo.VE(sigma_max=float("inf")), "sigma_max"),
    ],
)
def test_invalid_parameters_are_rejected(make, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        make()


def test_valid_edge_parameters_and_traced_parameters_are_accepted():
    assert np.isfinite(float(jo.VPLinear(beta_min=0.0, beta_max=1.0).log_snr(0.5)))
    assert np.isfinite(float(jo.Cosine(s=0.0).log_snr(0.5)))
    assert np.isfinite(float(jo.OU(beta=jnp.asarray(2.0)).sigma(0.5)))
    jax.jit(lambda b: jo.OU(beta=b).sigma2(0.5))(-1.0)  # traced: not checked (no value to check)
    batched = jax.vmap(lambda b: jo.OU(beta=b).sigma2(0.5))(jnp.array([1.0, 2.0]))
    assert batched.shape == (2,)


def test_sample_prior_checks_its_arguments():
    s = jo.OU()
    with pytest.raises(ValueError, match="`key`"):
        s.sample_prior(None, 1.0, (2, 2))
    with pytest.raises(ValueError, match="`T`"):
        s.sample_prior(jax.random.key(0), -1.0, (2, 2))
    with pytest.raises(ValueError, match="`shape`"):
        s.sample_prior(jax.random.key(0), 1.0, (2, 0))
    with pytest.raises(ValueError, match="`T`"):
        jo.Cosine().sample_prior(jax.random.key(0), 1.0, (2, 2))
    assert s.sample_prior(jax.random.key(0), 1.0, (2, 3)).shape == (2, 3)


@pytest.mark.parametrize("cls", [jo.OU, jo.VPLinear, jo.SubVP, jo.Cosine, jo.VE, jo.EDM])
def test_coefficients_refuse_times_outside_the_domain(cls):
    """Issue 23 item 11: alpha, sigma, log_snr, drift and diffusion2 returned numbers for negative times (and
    past t_max); concrete times are now checked (real, not NaN, in [0, t_max]); the ends stay the limits."""
    s = cls()
    bad = [-1.0, float("nan"), np.array([0.5, -0.5]), jnp.asarray(-0.25)]
    if math.isfinite(s.t_max):
        bad.append(s.t_max + 0.5)
    for method in ("alpha", "sigma", "log_snr", "drift", "diffusion2", "marginal"):
        for t in bad:
            with pytest.raises(ValueError, match="`t` must"):
                getattr(s, method)(t)
        with pytest.raises(TypeError, match="`t`"):
            getattr(s, method)("0.5")
    assert float(s.alpha(0.0)) == pytest.approx(1.0) and 0.0 <= float(s.sigma(0.0)) < 0.1  # VE: sigma_min
    assert bool(jnp.isfinite(jax.jit(s.alpha)(0.5)))  # traced times: the callers' to check
