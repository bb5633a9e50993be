"""Models from anywhere (:func:`jaxotdm.networks.as_network`): flax NNX, linen, equinox and plain functions through
``ScoreModel -> LearnedScore`` into samplers and ``flow_map``, and clear errors for wrong call signatures.

Every network here computes the exact noise prediction of standard normal data under the VP schedule OU:
``x_t ~ N(0, I)`` for every ``t``, so ``eps_hat(x, t) = sigma_t x`` with ``sigma_t^2 = sigmoid(-log_snr)``
(the network input is ``x`` itself: ``c_in = 1`` for VP with ``sigma_data = 1``). The probability flow is then
the identity map, which ``flow_map`` must reproduce, and every sampler must give what it gives with the
hand-written exact score ``-x``: tests that fail when an adapter drops, reorders or mis-scales an argument or
a parameter.
"""

from __future__ import annotations

import equinox as eqx
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxotdm as jo
from jaxotdm.networks import DataPrediction, NoisePrediction, ScoreModel, as_network
from jaxotdm.samplers import DDIM, DPMSolverPP2M, sample
from jaxotdm.training import DSMObjective

OU = jo.OU()
KEY = jax.random.key(0)
X = jax.random.normal(jax.random.key(1), (16, 2))


def _sigma(log_snr):
    return jnp.sqrt(jax.nn.sigmoid(-log_snr))[..., None]


# ------------------------------------------------------------------ the same exact network, four ways
class NNXNet(nnx.Module):
    def __init__(self, rngs):
        self.scale = nnx.Param(jnp.ones(()))
        self.drop = nnx.Dropout(0.5, deterministic=True, rngs=rngs)  # non-Param state (RNG streams), held fixed

    def __call__(self, x, log_snr):
        return self.drop(self.scale[...] * _sigma(log_snr) * x)


class LinenNet(nn.Module):
    @nn.compact
    def __call__(self, x, log_snr, labels=None):
        return self.param("scale", nn.initializers.ones, ()) * _sigma(log_snr) * x


class EqxNet(eqx.Module):
    scale: jax.Array
    act: object = jnp.asarray  # a non-array leaf: part of the static half

    def __call__(self, x, log_snr):
        return self.act(self.scale * _sigma(log_snr) * x)


def plain(x, log_snr):
    return _sigma(log_snr) * x


def with_params(p, x, log_snr):
    return p["scale"] * _sigma(log_snr) * x


def networks():
    return {
        "nnx": as_network(NNXNet(nnx.Rngs(0))),
        "linen": as_network(LinenNet()),
        "equinox": as_network(EqxNet(jnp.ones(()))),
        "function": as_network(plain),
        "function_params": as_network(with_params, params={"scale": jnp.ones(())}),
    }


@pytest.fixture(scope="module")
def references():
    exact = jax.jit(lambda x, t: -x)
    return {type(m).__name__: sample(m, exact, OU, X, t_start=2.0, t_end=1e-2, num_steps=6).points
            for m in (DDIM(), DPMSolverPP2M())}


@pytest.fixture(scope="module")
def scores():
    out = {}
    for name, net in networks().items():
        model = ScoreModel(net, OU, NoisePrediction())
        out[name] = model.bind(model.init(KEY, X[:1]))
    return out


@pytest.mark.parametrize("name", ["nnx", "linen", "equinox", "function", "function_params"])
def test_exact_score_through_every_adapter(scores, name):
    s = scores[name]
    np.testing.assert_allclose(s(X, 0.7), -X, rtol=1e-5, atol=1e-6)  # the N(0, I) score is -x at every t
    np.testing.assert_allclose(s.denoiser(X, 0.7), jnp.exp(-0.35) * X, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["nnx", "linen", "equinox", "function"])
def test_samplers_and_flow_map_match_the_exact_score(scores, references, name):
    s = scores[name]
    for method in (DDIM(), DPMSolverPP2M()):  # against the same sampler on the hand-written exact score -x
        r = sample(method, s, OU, X, t_start=2.0, t_end=1e-2, num_steps=6)
        assert int(r.nfe) == 6
        np.testing.assert_allclose(r.points, references[type(method).__name__], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(r.points, X, rtol=0.2)  # close to the identity flow, not equal (6 steps)
    f = jo.flow_map(s, OU, X, 2.0, 1e-2, ode=jo.ODESettings(num_steps=4, solver="euler"))
    np.testing.assert_allclose(f.points, X, rtol=1e-4, atol=1e-4)


@pytest.mark.slow  # the OT solve's compilation dominates (~10 s of CPU)
def test_ot_prior_accepts_an_adapted_score(scores):
    y = jax.random.normal(jax.random.key(2), (8, 2))
    prior = jo.samplers.prepare_ot_prior(OU, y, key=KEY, t_prime=0.5)
    out = prior.sample(scores["equinox"], key=jax.random.key(3), num_samples=6, nfe=4, t_end=1e-2,
                       sampler=DDIM())
    assert out.points.shape == (6, 2) and bool(jnp.all(jnp.isfinite(out.points)))


# ------------------------------------------------------------------ parameters: layout, gradients, training
def test_parameter_layout_is_the_modules_own_weights():
    net = NNXNet(nnx.Rngs(0))
    net.scale[...] = jnp.asarray(3.0)
    p = ScoreModel(as_network(net), OU).init(KEY, X[:1])
    assert set(p) == {"module"} and float(p["module"]["scale"]) == 3.0  # the instance's weights, key unused
    eq = EqxNet(jnp.asarray(2.0))
    p = ScoreModel(as_network(eq), OU).init(KEY, X[:1])
    assert isinstance(p["module"], EqxNet) and float(p["module"].scale) == 2.0 and p["module"].act is None
    p = ScoreModel(as_network(plain), OU).init(KEY, X[:1])
    assert p == {"fn": {}}


@pytest.mark.parametrize("name", ["nnx", "equinox", "function_params"])
def test_dsm_gradient_reaches_the_wrapped_parameters(name):
    model = ScoreModel(networks()[name], OU, NoisePrediction())
    params = model.init(KEY, X[:1])
    params = jax.tree.map(lambda a: 2.0 * a, params)  # away from the optimum: scale 1 is exact
    loss, grads = jax.value_and_grad(lambda p: DSMObjective(model).loss(p, X, KEY)[0])(params)
    g = jax.tree.leaves(grads)
    assert len(g) == 1 and float(g[0]) > 0.0  # the scale must shrink towards 1


def test_data_prediction_parametrisation_is_the_score_models_choice():
    def x0_hat(x, log_snr):  # the exact posterior mean of N(0, I) data: alpha_t x
        return jnp.sqrt(jax.nn.sigmoid(log_snr))[..., None] * x
    s = ScoreModel(as_network(x0_hat), OU, DataPrediction()).bind({"fn": {}})
    np.testing.assert_allclose(s(X, 0.3), -X, rtol=1e-5, atol=1e-6)


def test_conditioning_feeds_the_time_instead_of_the_log_snr():
    seen = []

    def net(x, t):
        seen.append(t)
        return jnp.sqrt(-jnp.expm1(-t))[..., None] * x  # OU: sigma_t^2 = 1 - exp(-t)

    s = ScoreModel(as_network(net, conditioning=OU.t_from_log_snr), OU).bind({"fn": {}})
    np.testing.assert_allclose(s(X, 0.4), -X, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(seen[-1], 0.4, rtol=1e-5)


def test_class_conditional_function_gets_labels_and_the_null_label():
    def net(x, log_snr, labels):
        return _sigma(log_snr) * x + (labels == 3)[..., None] * 0.0 + 0.0 * labels[..., None]

    got = []

    def spy(x, log_snr, labels):
        got.append(labels)
        return net(x, log_snr, labels)

    model = ScoreModel(as_network(spy, num_classes=3), OU)
    assert model.num_classes == 3
    model.bind({"fn": {}}, labels=1)(X, 0.5)
    assert np.all(np.asarray(got[-1]) == 1) and got[-1].shape == (16,)
    model.bind({"fn": {}})(X, 0.5)
    assert np.all(np.asarray(got[-1]) == 3)  # unconditional: the null label
    np.testing.assert_allclose(model.bind({"fn": {}}, labels=0, guidance=1.5)(X, 0.5), -X, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------ jit caches
def test_two_equinox_modules_never_share_a_jit_cache():
    """Same class, same array shapes, different static half (the activation) or weights: each jitted call must
    give its own module's answer."""
    traces = []

    @jax.jit
    def run(score, x):
        traces.append(1)
        return score(x, 0.5)

    a = ScoreModel(as_network(EqxNet(jnp.ones(()), act=jnp.asarray)), OU)
    b = ScoreModel(as_network(EqxNet(jnp.ones(()), act=jnp.tanh)), OU)
    sa, sb = a.bind(a.init(KEY, X[:1])), b.bind(b.init(KEY, X[:1]))
    ra, rb = run(sa, 3.0 * X), run(sb, 3.0 * X)
    np.testing.assert_allclose(ra, sa(3.0 * X, 0.5), rtol=1e-6)
    np.testing.assert_allclose(rb, sb(3.0 * X, 0.5), rtol=1e-6)
    assert not np.allclose(ra, rb)
    # two modules differing only in their initial weights: init is jitted with the network static
    c = ScoreModel(as_network(EqxNet(jnp.asarray(5.0))), OU)
    assert float(c.init(KEY, X[:1])["module"].scale) == 5.0
    assert float(a.init(KEY, X[:1])["module"].scale) == 1.0
    # the same wrapped network with new parameters reuses the compiled sampler
    n = len(traces)
    run(a.bind(jax.tree.map(lambda v: 2.0 * v, a.init(KEY, X[:1]))), X)
    assert len(traces) == n
    assert as_network(EqxNet(jnp.ones(()))) != as_network(EqxNet(jnp.ones(())))


# ------------------------------------------------------------------ errors
class NoLogSNR(nnx.Module):
    def __call__(self, x):
        return x


class EqxNoLabels(eqx.Module):
    def __call__(self, x, log_snr):
        return x


def test_wrong_signatures_are_refused_at_wrap_time_naming_the_expected_call():
    with pytest.raises(TypeError, match=r"must be callable as \(x, log_snr\[, labels\]\).*signature is \(x\)"):
        as_network(NoLogSNR())
    with pytest.raises(TypeError, match=r"the function .*must be callable as \(x, log_snr"):
        as_network(lambda x: x)
    with pytest.raises(TypeError, match=r"\(params, x, log_snr\[, labels\]\)"):
        as_network(lambda x, log_snr: x, params={"w": 1.0})
    with pytest.raises(TypeError, match="requires `labels`.*num_classes="):
        as_network(lambda x, log_snr, labels: x)
    with pytest.raises(TypeError, match="takes no `labels`"):
        as_network(EqxNoLabels(), num_classes=10)
    with pytest.raises(TypeError, match="instance.*the class NoLogSNR"):
        as_network(NoLogSNR)
    with pytest.raises(TypeError, match="`obj` must be a flax linen or NNX module"):
        as_network(3)
    with pytest.raises(ValueError, match="`params` is only for a function"):
        as_network(EqxNoLabels(), params={})
    with pytest.raises(ValueError, match="do not apply to a flax linen module"):
        as_network(LinenNet(), num_classes=3)
    with pytest.raises(ValueError, match="`num_classes`"):
        as_network(plain, num_classes=0)
    with pytest.raises(TypeError, match="`conditioning`"):
        as_network(plain, conditioning=1.0)


def test_wrong_output_is_refused_at_init():
    with pytest.raises(ValueError, match=r"shaped like its input `x` \(1, 2\).*got shape \(1,\)"):
        ScoreModel(as_network(lambda x, log_snr: log_snr), OU).init(KEY, X[:1])
    with pytest.raises(TypeError, match="floating-point"):
        ScoreModel(as_network(lambda x, log_snr: jnp.zeros(x.shape, jnp.int32)), OU).init(KEY, X[:1])


def test_uninspectable_callable_is_checked_at_init_with_a_clear_message():
    class Opaque:  # signature cannot be read: checked when first called
        __signature__ = "not a signature"

        def __call__(self, x):
            return x

    net = as_network(Opaque())
    with pytest.raises(TypeError, match=r"must be callable as \(x, log_snr\[, labels\]\)"):
        ScoreModel(net, OU).init(KEY, X[:1])


def test_a_wrapped_network_pickles_as_a_new_network():
    import pickle

    model = ScoreModel(as_network(with_params, params={"scale": jnp.ones(())}), OU)
    copy = pickle.loads(pickle.dumps(model))
    assert copy != model  # identity semantics: a copy never shares a jit cache with the original
    params = model.init(KEY, X[:1])
    np.testing.assert_allclose(copy.bind(copy.init(KEY, X[:1]))(X, 0.5), model.bind(params)(X, 0.5), rtol=1e-6)


def test_score_model_wraps_an_unwrapped_module_or_function_itself():
    net = NNXNet(nnx.Rngs(0))
    model = ScoreModel(net, OU, NoisePrediction())  # no as_network: ScoreModel wraps it
    np.testing.assert_allclose(model.bind(model.init(KEY, X[:1]))(X, 0.7), -X, rtol=1e-5, atol=1e-6)
    eq = ScoreModel(EqxNet(jnp.ones(())), OU)
    assert float(eq.init(KEY, X[:1])["module"].scale) == 1.0
    np.testing.assert_allclose(ScoreModel(plain, OU).bind({"fn": {}})(X, 0.3), -X, rtol=1e-5, atol=1e-6)
    with pytest.raises(TypeError, match=r"`network` \(the NNX module NoLogSNR\) must be callable as \(x, log_snr"):
        ScoreModel(NoLogSNR(), OU)
    with pytest.raises(TypeError, match="`network` must be a flax linen or NNX module"):
        ScoreModel("mlp", OU)


class _LinenTimeNet(nn.Module):
    """A linen network conditioned on the time, called as ``net(x, t)`` (no labels)."""

    @nn.compact
    def __call__(self, x, t):
        return nn.Dense(x.shape[-1])(jnp.concatenate([x, jnp.broadcast_to(t[..., None], x.shape[:-1] + (1,))], -1))


def test_linen_network_without_labels_names_the_route_that_works():
    """Issue 23 item 4: a linen ``__call__(self, x, t)`` failed inside ``model.init`` with a raw "takes 3
    positional arguments but 4 were given"; now ScoreModel refuses it at construction naming as_network and
    ``conditioning=schedule.t_from_log_snr``, and that route works (the network sees the time)."""
    sched = jo.VPLinear()
    with pytest.raises(TypeError, match=r"`network` _LinenTimeNet.__call__.*as_network\(network, "
                                        r"conditioning=schedule.t_from_log_snr\)"):
        ScoreModel(_LinenTimeNet(), sched)
    seen = []
    model = ScoreModel(as_network(_LinenTimeNet(), conditioning=lambda lam: seen.append(1) or
                                  sched.t_from_log_snr(lam)), sched)
    params = model.init(KEY, jnp.zeros((1, 2)))
    assert sorted(params["module"]) == ["Dense_0"] and seen
    out = model.bind(params)(jnp.ones((3, 2)), 0.5)
    assert out.shape == (3, 2) and bool(jnp.all(jnp.isfinite(out)))
