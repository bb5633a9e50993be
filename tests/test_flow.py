"""Probability-flow maps: closed form for Gaussian data, landing on discrete data, exact NFE, transforms."""

import math

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.linalg import sqrtm

import jaxotdm as jo
from jaxotdm._status import Status

MEAN = np.array([0.5, -1.0, 2.0])
COV = np.array([[1.5, 0.4, 0.0], [0.4, 0.8, -0.2], [0.0, -0.2, 0.3]])


def gaussian_pf_map(schedule, x, t0, t1):
    """Closed form: p_t = N(a_t m, C_t), C_t = a_t^2 S + s_t^2 I all commute, so M = C1^1/2 C0^-1/2."""
    c = [float(schedule.alpha(t)) ** 2 * COV + float(schedule.sigma2(t)) * np.eye(3) for t in (t0, t1)]
    a = np.real(sqrtm(c[1])) @ np.linalg.inv(np.real(sqrtm(c[0])))
    a0, a1 = float(schedule.alpha(t0)), float(schedule.alpha(t1))
    return a1 * MEAN + (np.asarray(x) - a0 * MEAN) @ a.T, a


@pytest.mark.parametrize(
    ("schedule", "t0", "t1"),
    [
        (jo.OU(), 6.0, 1e-3),
        (jo.OU(), 1e-3, 6.0),
        (jo.VPLinear(), 1.0, 1e-3),
        (jo.SubVP(), 1e-3, 1.0),
        (jo.Cosine(), 0.95, 1e-3),
        (jo.VE(), 1.0, 1e-2),
        (jo.EDM(), 1e-2, 20.0),
    ],
    ids=lambda v: type(v).__name__ if not isinstance(v, float) else str(v),
)
def test_gaussian_flow_is_the_affine_closed_form(schedule, t0, t1):
    g = jo.GaussianMeasure(MEAN, COV)
    x = g.sample_marginal(jax.random.key(0), t0, schedule, 64)
    out = jo.flow_map(jo.exact_score(g, schedule), schedule, x, t0, t1, ode=jo.ODESettings(rtol=1e-10, atol=1e-10, solver="dopri8"))
    ref, _ = gaussian_pf_map(schedule, x, t0, t1)
    assert bool(out.success)
    np.testing.assert_allclose(out.points, ref, atol=1e-6 * max(1.0, np.abs(ref).max()))


def test_flow_is_differentiable_jacobian_matches_closed_form():
    s = jo.OU()
    g = jo.GaussianMeasure(MEAN, COV)
    score = jo.exact_score(g, s)
    x0 = jnp.asarray(np.array([0.1, 0.2, -0.3]))
    jac = jax.jacrev(lambda x: jo.flow_map(score, s, x, 2.0, 0.1, ode=jo.ODESettings(rtol=1e-10, atol=1e-10)).points)(x0)
    _, a = gaussian_pf_map(s, x0, 2.0, 0.1)
    np.testing.assert_allclose(jac, a, atol=1e-6)
    fwd = jax.jacfwd(
        lambda x: jo.flow_map(score, s, x, 2.0, 0.1, ode=jo.ODESettings(rtol=1e-10, atol=1e-10), adjoint=diffrax.ForwardMode()).points
    )(x0)
    np.testing.assert_allclose(fwd, a, atol=1e-6)
    grad = jax.grad(lambda x: jnp.sum(jo.flow_map(score, s, x, 2.0, 0.1, ode=jo.ODESettings(rtol=1e-10, atol=1e-10)).points))(x0)
    np.testing.assert_allclose(grad, a.sum(0), atol=1e-6)


def test_discrete_data_flow_lands_on_points_with_right_masses():
    pts = np.array([[-2.0, 0.0], [1.5, 1.0], [0.5, -2.5]])
    w = np.array([0.5, 0.3, 0.2])
    mu = jo.EmpiricalMeasure(pts, w)
    s = jo.OU()
    T, eps, n = 8.0, 1e-4, 4000
    x_T = mu.sample_marginal(jax.random.key(3), T, s, n)
    out = jo.flow_map(jo.exact_score(mu, s), s, x_T, T, eps, ode=jo.ODESettings(rtol=1e-7, atol=1e-7))
    assert bool(out.success)
    y = np.asarray(out.points)
    target = float(s.alpha(eps)) * pts
    dist = np.linalg.norm(y[:, None, :] - target[None], axis=-1)
    nearest = dist.argmin(1)
    # p_eps is a mixture with component std sigma(eps) = 0.01: everything within 6 sigma of a point
    assert float(dist.min(1).max()) < 6 * float(s.sigma(eps)) * math.sqrt(2)
    freq = np.bincount(nearest, minlength=3) / n
    se = np.sqrt(w * (1 - w) / n)
    assert np.all(np.abs(freq - w) < 4 * se), (freq, w)


class _CountingScore:
    """Counts score evaluations at run time (not trace time) through a host callback."""

    def __init__(self, score):
        self.score, self.count = score, 0

    def _inc(self):
        self.count += 1

    def __call__(self, x, t):
        jax.debug.callback(self._inc)
        return self.score(x, t)


@pytest.mark.parametrize("solver", ["tsit5", "dopri5", "bosh3", "heun", "dopri8"])
@pytest.mark.parametrize("num_steps", [None, 7])
def test_nfe_is_exact(solver, num_steps):
    mu = jo.EmpiricalMeasure(np.array([[-1.0], [1.0]]))
    s = jo.OU()
    counter = _CountingScore(jo.exact_score(mu, s))
    x = jnp.linspace(-2, 2, 5)[:, None]
    out = jo.flow_map(counter, s, x, 4.0, 0.05, ode=jo.ODESettings(solver=solver, num_steps=num_steps, rtol=1e-4, atol=1e-4))
    jax.block_until_ready(out.points)
    jax.effects_barrier()
    assert int(out.nfe) == counter.count
    if num_steps is not None:
        assert int(out.num_steps) == num_steps


def test_pi_controller_default_and_integral_controller_option():
    """The default PI controller (pcoeff 0.3, icoeff 0.4) needs fewer evaluations than diffrax's integral
    controller on a discrete-data flow at the same accuracy level; both keep the NFE count exact."""
    mu = jo.EmpiricalMeasure(np.array([[-2.0, 0.0], [1.5, 1.0], [0.5, -2.5]]))
    s = jo.OU()
    x = mu.sample_marginal(jax.random.key(5), 8.0, s, 64)
    ref = jo.flow_map(jo.exact_score(mu, s), s, x, 8.0, 1e-3, ode=jo.ODESettings(solver="dopri8", rtol=1e-11, atol=1e-11)).points
    outs = {}
    for pc, ic in ((0.3, 0.4), (0.0, 1.0)):
        counter = _CountingScore(jo.exact_score(mu, s))
        kw = (dict(rtol=1e-5, atol=1e-5) if (pc, ic) == (0.3, 0.4) else
              {"stepsize_controller": diffrax.PIDController(rtol=1e-5, atol=1e-5, pcoeff=pc, icoeff=ic)})
        out = jo.flow_map(counter, s, x, 8.0, 1e-3, ode=jo.ODESettings(**kw))
        jax.block_until_ready(out.points)
        jax.effects_barrier()
        assert bool(out.success) and int(out.nfe) == counter.count
        outs[pc] = (int(out.nfe), float(jnp.max(jnp.abs(out.points - ref))))
    (nfe_pi, err_pi), (nfe_i, err_i) = outs[0.3], outs[0.0]
    assert nfe_pi < nfe_i, outs
    assert err_pi < 1e-3 and err_i < 1e-3, outs


def test_jit_vmap_and_retrace_guard():
    mu = jo.EmpiricalMeasure(np.array([[-1.0, 0.0], [1.0, 0.5], [0.0, 2.0]]))
    s = jo.VPLinear()
    score = jo.exact_score(mu, s)
    x = jax.random.normal(jax.random.key(0), (6, 2))
    eager = jo.flow_map(score, s, x, 1.0, 1e-2).points
    jitted = jax.jit(lambda sc, x, t0: jo.flow_map(sc, s, x, t0, 1e-2).points)(score, x, 1.0)
    np.testing.assert_allclose(jitted, eager, rtol=1e-10, atol=1e-12)
    per_point = jax.vmap(lambda xi: jo.flow_map(score, s, xi, 1.0, 1e-2, ode=jo.ODESettings(rtol=1e-9, atol=1e-9)).points)(x)
    batch = jo.flow_map(score, s, x, 1.0, 1e-2, ode=jo.ODESettings(rtol=1e-9, atol=1e-9)).points
    np.testing.assert_allclose(per_point, batch, atol=1e-6)

    calls = []

    def traced_score(y, t):
        calls.append(1)  # runs only while tracing
        return score(y, t)

    jo.flow_map(traced_score, s, x, 1.0, 1e-2)
    n_first = len(calls)
    jo.flow_map(traced_score, s, x + 0.5, 0.9, 2e-2)  # new values, same shapes: no retrace
    jo.flow_map(traced_score, s, x - 0.5, 0.3, 5e-2)
    assert n_first > 0 and len(calls) == n_first


def test_accepts_diffrax_solver_instances():
    mu = jo.EmpiricalMeasure(np.array([[-1.0], [1.0]]))
    s = jo.OU()
    out = jo.flow_map(jo.exact_score(mu, s), s, jnp.ones((2, 1)), 3.0, 0.1, ode=jo.ODESettings(solver=diffrax.Dopri5()))
    assert bool(out.success) and int(out.nfe) > 0


def test_max_steps_exhaustion_is_reported_not_raised():
    mu = jo.EmpiricalMeasure(np.array([[-1.0], [1.0]]))
    s = jo.OU()
    with pytest.warns(jo.ConvergenceWarning, match="flow_map"):  # throw=False warns eagerly (status contract)
        out = jo.flow_map(jo.exact_score(mu, s), s, jnp.ones((2, 1)), 3.0, 1e-4, ode=jo.ODESettings(max_steps=3),
                          throw=False)
    assert not bool(out.success)


def test_bad_input():
    mu = jo.EmpiricalMeasure(np.array([[-1.0], [1.0]]))
    s = jo.OU()
    sc = jo.exact_score(mu, s)
    x = jnp.zeros((3, 1))
    with pytest.raises(ValueError, match="t0"):
        jo.flow_map(sc, s, x, 0.0, 1.0)
    with pytest.raises(ValueError, match="t1"):
        jo.flow_map(sc, s, x, 1.0, -0.5)
    with pytest.raises(ValueError, match="differ"):
        jo.flow_map(sc, s, x, 1.0, 1.0)
    with pytest.raises(ValueError, match="solver"):
        jo.flow_map(sc, s, x, 1.0, 0.1, ode=jo.ODESettings(solver="rk99"))
    with pytest.raises(ValueError, match="`x`"):
        jo.flow_map(sc, s, jnp.array([[np.nan]]), 1.0, 0.1)
    with pytest.raises(ValueError, match="num_steps"):
        jo.flow_map(sc, s, x, 1.0, 0.1, ode=jo.ODESettings(num_steps=0))
    with pytest.raises(ValueError, match="score"):
        jo.flow_map(None, s, x, 1.0, 0.1)
    with pytest.raises(ValueError, match="t1"):
        jo.flow_map(sc, jo.Cosine(), x, 0.5, 1.0)
    with pytest.raises(ValueError, match="num_steps"):
        jo.flow_map(sc, s, x, 1.0, 0.1, ode=jo.ODESettings(solver="euler"))
    with pytest.raises(TypeError, match="pcoeff"):  # the controller's knobs are set on the controller object
        jo.flow_map(sc, s, x, 1.0, 0.1, pcoeff=0.3)
    with pytest.raises(ValueError, match="not both"):
        jo.flow_map(sc, s, x, 1.0, 0.1, ode=jo.ODESettings(rtol=1e-5, stepsize_controller=diffrax.PIDController(rtol=1e-5, atol=1e-5)))


# ------------------------------------------------------------------ status, throw, controllers
def _two_points():
    mu = jo.EmpiricalMeasure(np.array([[-1.0], [1.0]]))
    s = jo.OU()
    return jo.exact_score(mu, s), s


@pytest.mark.parametrize("name", ["rtol", "atol"])
@pytest.mark.parametrize("value", [float("inf"), 0.0, -1e-6, float("nan"), "1e-6", True])
def test_tolerances_must_be_finite_and_positive(name, value):
    """Before: rtol = inf was accepted and the solve reported success on garbage."""
    sc, s = _two_points()
    with pytest.raises(ValueError, match=f"`{name}`"):
        jo.flow_map(sc, s, jnp.zeros((2, 1)), 3.0, 0.1, ode=jo.ODESettings(**{name: value}))


def test_failure_raises_by_default_and_is_reported_with_throw_false():
    sc, s = _two_points()
    x = jnp.ones((2, 1))
    with pytest.raises(RuntimeError, match="flow_map: the iteration budget ran out.*max_steps=3"):
        jo.flow_map(sc, s, x, 3.0, 1e-4, ode=jo.ODESettings(max_steps=3))
    with pytest.warns(jo.ConvergenceWarning, match="max_steps"):
        out = jo.flow_map(sc, s, x, 3.0, 1e-4, ode=jo.ODESettings(max_steps=3), throw=False)
    assert Status(int(out.status)) == Status.MAX_ITERATIONS and not bool(out.success)
    ok = jo.flow_map(sc, s, x, 3.0, 1e-4)
    assert Status(int(ok.status)) == Status.SUCCESS and bool(ok.success)


def test_failure_raises_inside_jit_through_the_points():
    sc, s = _two_points()
    f = jax.jit(lambda x: jo.flow_map(sc, s, x, 3.0, 1e-4, ode=jo.ODESettings(max_steps=3)).points)
    with pytest.raises(Exception, match="flow_map: the iteration budget ran out"):
        jax.block_until_ready(f(jnp.ones((2, 1))))
    g = jax.jit(lambda x: jo.flow_map(sc, s, x, 3.0, 1e-4, ode=jo.ODESettings(max_steps=3), throw=False))
    assert Status(int(g(jnp.ones((2, 1))).status)) == Status.MAX_ITERATIONS
    ok = jax.jit(lambda x: jo.flow_map(sc, s, x, 3.0, 1e-4).points)(jnp.ones((2, 1)))
    assert bool(jnp.all(jnp.isfinite(ok)))


def test_nonfinite_score_is_a_failure():
    sc, s = _two_points()
    bad = lambda x, t: jnp.where(t < 1.0, jnp.inf, 1.0) * sc(x, t)
    with pytest.warns(jo.ConvergenceWarning, match="non-finite"):
        out = jo.flow_map(bad, s, jnp.ones((2, 1)), 3.0, 0.1, ode=jo.ODESettings(solver="heun", num_steps=4),
                          throw=False)
    assert Status(int(out.status)) == Status.NONFINITE
    with pytest.raises(RuntimeError, match="non-finite"):
        jo.flow_map(bad, s, jnp.ones((2, 1)), 3.0, 0.1, ode=jo.ODESettings(solver="heun", num_steps=4))


def test_stepsize_controller_object():
    sc, s = _two_points()
    x = jnp.linspace(-2, 2, 5)[:, None]
    short = jo.flow_map(sc, s, x, 4.0, 0.05, ode=jo.ODESettings(rtol=1e-7, atol=1e-7))
    pid = diffrax.PIDController(rtol=1e-7, atol=1e-7, pcoeff=0.3, icoeff=0.4)
    full = jo.flow_map(sc, s, x, 4.0, 0.05, ode=jo.ODESettings(stepsize_controller=pid))
    np.testing.assert_array_equal(full.points, short.points)
    assert int(full.nfe) == int(short.nfe)
    counter = _CountingScore(sc)
    clipped = jo.flow_map(counter, s, x, 4.0, 0.05,
                          ode=jo.ODESettings(stepsize_controller=diffrax.PIDController(rtol=1e-7, atol=1e-7, dtmax=0.05)))
    jax.block_until_ready(clipped.points)
    jax.effects_barrier()
    assert int(clipped.nfe) == counter.count and int(clipped.num_steps) >= 79  # |t1 - t0| / dtmax
    np.testing.assert_allclose(clipped.points, short.points, atol=1e-5)
    fixed = jo.flow_map(sc, s, x, 4.0, 0.05, ode=jo.ODESettings(solver="heun", stepsize_controller=diffrax.ConstantStepSize(), num_steps=16))
    ref = jo.flow_map(sc, s, x, 4.0, 0.05, ode=jo.ODESettings(solver="heun", num_steps=16))
    np.testing.assert_array_equal(fixed.points, ref.points)
    ts = jnp.linspace(4.0, 0.05, 17)
    step_to = jo.flow_map(sc, s, x, 4.0, 0.05, ode=jo.ODESettings(solver="heun", stepsize_controller=diffrax.StepTo(ts)))
    np.testing.assert_allclose(step_to.points, ref.points, rtol=1e-12)
    assert int(step_to.num_steps) == 16


def test_stepsize_controller_conflicts_are_rejected():
    sc, s = _two_points()
    x = jnp.zeros((2, 1))
    pid = diffrax.PIDController(rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="either `stepsize_controller` or"):
        jo.flow_map(sc, s, x, 3.0, 0.1, ode=jo.ODESettings(stepsize_controller=pid, rtol=1e-6))
    with pytest.raises(ValueError, match="`stepsize_controller`"):
        jo.flow_map(sc, s, x, 3.0, 0.1, ode=jo.ODESettings(stepsize_controller="pid"))
    with pytest.raises(ValueError, match="`num_steps`"):
        jo.flow_map(sc, s, x, 3.0, 0.1, ode=jo.ODESettings(stepsize_controller=pid, num_steps=4))
    with pytest.raises(ValueError, match="`num_steps`"):
        jo.flow_map(sc, s, x, 3.0, 0.1, ode=jo.ODESettings(solver="heun", stepsize_controller=diffrax.ConstantStepSize()))
    with pytest.raises(ValueError, match="stepsize_controller.rtol"):
        jo.flow_map(sc, s, x, 3.0, 0.1, ode=jo.ODESettings(stepsize_controller=diffrax.PIDController(rtol=float("inf"), atol=1e-5)))


def test_times_are_checked_against_the_dtype_and_the_schedule():
    sc, s = _two_points()
    x32 = jnp.zeros((2, 1), jnp.float32)
    with pytest.raises(ValueError, match="`t1`.*float32"):  # before: passed t > 0 and gave NaN
        jo.flow_map(sc, s, x32, 3.0, 1e-40)
    with pytest.raises(ValueError, match="`t0`"):
        jo.flow_map(sc, s, x32, "3", 0.1)
    with pytest.raises(ValueError, match="`x`"):
        jo.flow_map(sc, s, jnp.zeros((2, 3)), 3.0, 0.1)  # score has d = 1


def test_jacfwd_through_flow_map_names_the_forward_mode_adjoint():
    """Issue 23 item 7: jax.jacfwd through flow_map raised JAX's bare "can't apply forward-mode autodiff (jvp)
    to a custom_vjp function"; now the message names `adjoint=diffrax.ForwardMode()`, and that route works."""
    score = jo.exact_score(jo.EmpiricalMeasure(jnp.array([[0.0, 1.0], [1.0, 0.0]])), jo.OU())
    x = jnp.ones((1, 2))
    with pytest.raises(TypeError, match=r"adjoint=diffrax.ForwardMode\(\)"):
        jax.jacfwd(lambda z: jo.flow_map(score, jo.OU(), z, 2.0, 0.1).points)(x)
    jac = jax.jacfwd(lambda z: jo.flow_map(score, jo.OU(), z, 2.0, 0.1, adjoint=diffrax.ForwardMode()).points)(x)
    assert jac.shape == (1, 2, 1, 2) and bool(jnp.all(jnp.isfinite(jac)))


def test_ode_settings_are_one_object_and_the_old_keywords_are_gone():
    """Issue 21: the integration knobs are one ODESettings; the old keywords are Python's own TypeError, a bad field
    a ValueError naming it when the settings are made, and the settings pass through jax.jit (static fields)."""
    sc, s = _two_points()
    x = jnp.ones((2, 1))
    with pytest.raises(TypeError, match="rtol"):
        jo.flow_map(sc, s, x, 3.0, 0.1, rtol=1e-6)
    with pytest.raises(ValueError, match="`rtol` must be > 0, got -1"):
        jo.ODESettings(rtol=-1.0)
    with pytest.raises(ValueError, match="`max_steps`"):
        jo.ODESettings(max_steps=0)
    with pytest.raises(ValueError, match="`ode`"):
        jo.flow_map(sc, s, x, 3.0, 0.1, ode={"rtol": 1e-6})
    ode = jo.ODESettings(solver="heun", num_steps=4)
    assert jax.tree_util.tree_leaves(ode) == []
    eager = jo.flow_map(sc, s, x, 3.0, 0.1, ode=ode).points
    jitted = jax.jit(lambda x, ode: jo.flow_map(sc, s, x, 3.0, 0.1, ode=ode).points)(x, ode)
    np.testing.assert_allclose(np.asarray(jitted), np.asarray(eager), rtol=1e-6)
