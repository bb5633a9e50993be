"""Score networks: parametrisation conversions (float64, exact), shapes, jit vs eager, conditioning."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxotdm as jo
from jaxotdm.networks import (
    MLP,
    DataPrediction,
    EDMPreconditioning,
    FourierEmbedding,
    LearnedScore,
    NoisePrediction,
    ScoreModel,
    ScorePrediction,
    SinusoidalEmbedding,
    UNet,
    VPrediction,
    convert_output,
)


@jax.jit
def _perturb(params, scale):
    """Deterministic non-zero perturbation (the output layers are zero-initialised); jitted, one compile."""
    return jax.tree.map(lambda p: p + scale * jnp.sin(jnp.arange(p.size, dtype=p.dtype).reshape(p.shape)), params)


PARAMS = [NoisePrediction(), DataPrediction(), VPrediction(), ScorePrediction(), EDMPreconditioning(0.7)]
SCHEDULES = [jo.OU(), jo.VPLinear(), jo.SubVP(), jo.Cosine(), jo.VE(), jo.EDM()]
TIMES = {"OU": 0.7, "VPLinear": 0.4, "SubVP": 0.4, "Cosine": 0.5, "VE": 0.5, "EDM": 1.3}


def _coeffs(schedule, t, x):
    t = jnp.asarray(t, x.dtype)
    return schedule.alpha(t), schedule.sigma(t)


@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: type(s).__name__)
def test_conversions_are_exact_inverses(schedule):
    """All 20 ordered pairs of parametrisations: source -> target -> source is the identity (float64)."""
    k1, k2 = jax.random.split(jax.random.key(0))
    x = jax.random.normal(k1, (16, 3), jnp.float64)
    out = jax.random.normal(k2, (16, 3), jnp.float64)
    t = jnp.full((16,), TIMES[type(schedule).__name__])
    pairs = list(itertools.permutations(PARAMS, 2))

    @jax.jit
    def roundtrips(out, x, t):
        res = []
        for src, dst in pairs:
            mid = convert_output(out, x, t, schedule, source=src, target=dst)
            res.append((mid, convert_output(mid, x, t, schedule, source=dst, target=src)))
        return res

    for (src, dst), (mid, back) in zip(pairs, roundtrips(out, x, t), strict=True):
        assert mid.dtype == jnp.float64
        if type(src) is not type(dst):
            assert float(jnp.max(jnp.abs(mid - out))) > 1e-3, (src, dst)  # a real change of variables
        np.testing.assert_allclose(back, out, rtol=1e-12, atol=1e-12, err_msg=f"{src} -> {dst}")


@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: type(s).__name__)
@pytest.mark.parametrize("param", PARAMS, ids=lambda p: type(p).__name__)
def test_parametrisations_agree_with_the_forward_model(schedule, param):
    """For a known (x0, eps) and x = alpha x0 + sigma eps, target -> pair recovers (x0, eps), the score is
    -eps / sigma, and eps_scale2 is the exact ratio |d out|^2 / |d eps|^2."""
    k1, k2, k3 = jax.random.split(jax.random.key(1), 3)
    x0 = jax.random.normal(k1, (8, 4), jnp.float64)
    eps = jax.random.normal(k2, (8, 4), jnp.float64)
    a, s = _coeffs(schedule, TIMES[type(schedule).__name__], x0)
    x = a * x0 + s * eps
    target = param.from_pair(x0, eps, x, a, s)
    x0_back, eps_back = param.to_pair(target, x, a, s)
    np.testing.assert_allclose(x0_back, x0, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(eps_back, eps, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(param.to_score(target, x, a, s), -eps / s, rtol=1e-10, atol=1e-10)
    # eps error -> output error at fixed x
    d_eps = 1e-3 * jax.random.normal(k3, x0.shape, jnp.float64)
    x0p = (x - s * (eps + d_eps)) / a
    d_out = param.from_pair(x0p, eps + d_eps, x, a, s) - target
    np.testing.assert_allclose(jnp.sum(d_out**2), param.eps_scale2(a, s) * jnp.sum(d_eps**2), rtol=1e-8)


def test_v_prediction_is_salimans_ho_for_vp():
    sched = jo.OU()
    x0, eps = jnp.ones((2, 2)), jnp.full((2, 2), -0.5)
    a, s = _coeffs(sched, 0.9, x0)
    np.testing.assert_allclose(VPrediction().from_pair(x0, eps, a * x0 + s * eps, a, s), a * eps - s * x0, rtol=1e-14)


def test_edm_preconditioning_matches_karras_coefficients():
    """For alpha = 1 (EDM schedule): c_skip = sd^2 / (s^2 + sd^2), c_out = s sd / sqrt(s^2 + sd^2)."""
    sd, sig = 0.5, 2.0
    p = EDMPreconditioning(sd)
    x, F = jnp.array([[1.0, -2.0]]), jnp.array([[0.3, 0.1]])
    x0, _ = p.to_pair(F, x, jnp.asarray(1.0), jnp.asarray(sig))
    expect = sd**2 / (sig**2 + sd**2) * x + sig * sd / np.sqrt(sig**2 + sd**2) * F
    np.testing.assert_allclose(x0, expect, rtol=1e-14)


def test_convert_output_validates():
    with pytest.raises(ValueError, match="`out` must have the shape"):
        convert_output(jnp.zeros((2, 3)), jnp.zeros((2, 2)), 0.5, jo.OU(), source=NoisePrediction(), target=VPrediction())
    with pytest.raises(ValueError, match="`target` must be a Parametrisation"):
        convert_output(jnp.zeros((2, 2)), jnp.zeros((2, 2)), 0.5, jo.OU(), source=NoisePrediction(), target="v")


def test_fresh_data_prediction_model_is_the_exact_score_of_a_point_mass_at_zero():
    """Zero-initialised output => x0_hat = 0 => score = -x / sigma^2, the exact score of delta_0."""
    sched = jo.VPLinear()
    model = ScoreModel(MLP(features=16, depth=1), sched, DataPrediction())
    params = model.init(jax.random.key(0), jnp.zeros((1, 3)))
    x = jax.random.normal(jax.random.key(1), (5, 3))
    exact = jo.exact_score(jo.EmpiricalMeasure(jnp.zeros((1, 3))), sched)
    np.testing.assert_allclose(model.bind(params)(x, 0.3), exact(x, 0.3), rtol=1e-12)


@pytest.mark.parametrize("embedding", [SinusoidalEmbedding(32), FourierEmbedding(32, scale=0.5, seed=3)])
def test_mlp_shapes_jit_and_embeddings(embedding):
    model = ScoreModel(MLP(features=32, depth=2, embedding=embedding), jo.OU(), VPrediction(), sigma_data=0.8)
    params = model.init(jax.random.key(0), jnp.zeros((1, 2)))
    # make the output non-trivial (the last layer is zero-initialised)
    params = _perturb(params, 0.1)
    assert not any("freq" in "/".join(map(str, k)) for k, _ in jax.tree_util.tree_leaves_with_path(params))
    x = jax.random.normal(jax.random.key(1), (3, 5, 2))
    t = jnp.linspace(0.1, 2.0, 15).reshape(3, 5)
    score = model.bind(params)
    eager = score(x, t)
    assert eager.shape == (3, 5, 2)
    assert float(jnp.std(eager)) > 1e-3
    np.testing.assert_allclose(jax.jit(lambda s, x, t: s(x, t))(score, x, t), eager, rtol=1e-10, atol=1e-12)
    # a scalar time broadcasts
    np.testing.assert_allclose(score(x, 0.5), score(x, jnp.full((3, 5), 0.5)), rtol=1e-12)


UNET_CASES = [
    ((8, 8, 1), (1, 2), ()),
    ((28, 28, 1), (1, 2, 2), (7,)),
    ((32, 32, 3), (1, 2, 2, 2), (8,)),
]


@pytest.mark.parametrize("image_shape,mult,attn", UNET_CASES, ids=["8x8", "28x28", "32x32x3"])
@pytest.mark.parametrize("num_classes", [None, 10], ids=["uncond", "cond"])
def test_unet_forward_shapes(image_shape, mult, attn, num_classes):
    """Shapes and dtypes of init/apply by abstract evaluation (no compilation; fast)."""
    net = UNet(image_shape=image_shape, channels=8, channel_mult=mult, attention_resolutions=attn, groups=4,
               heads=2, embedding=SinusoidalEmbedding(16), num_classes=num_classes)
    d = int(np.prod(image_shape))
    x = jnp.ones((2, d), jnp.float32)
    labels = None if num_classes is None else jnp.array([3, 10])
    params = jax.eval_shape(net.init, jax.random.key(0), x, jnp.zeros(2, jnp.float32), labels)
    out = jax.eval_shape(net.apply, params, x, jnp.array([1.0, -2.0], jnp.float32), labels)
    assert out.shape == (2, d)
    assert out.dtype == jnp.float32
    # batch axes other than one flat axis are kept
    out3 = jax.eval_shape(net.apply, params, jnp.ones((2, 3, d), jnp.float32), jnp.zeros((2, 3), jnp.float32),
                          None if labels is None else jnp.ones((2, 3), jnp.int32))
    assert out3.shape == (2, 3, d)


@pytest.mark.slow
def test_unet_28x28_forward_values():
    """One compiled forward pass at MNIST size: finite, and not identically zero once weights are perturbed."""
    net = UNet(image_shape=(28, 28, 1), channels=8, channel_mult=(1, 2, 2), attention_resolutions=(7,), groups=4,
               heads=2, embedding=SinusoidalEmbedding(16), num_classes=10)
    model = ScoreModel(net, jo.OU(), NoisePrediction())
    x = jax.random.normal(jax.random.key(1), (2, 784), jnp.float32)
    params = model.init(jax.random.key(0), x, jnp.array([1, 2]))
    params = _perturb(params, 0.01)
    out = jax.jit(model.score)(params, x, jnp.array([0.3, 1.0], jnp.float32), jnp.array([1, 10]))
    assert out.shape == (2, 784) and out.dtype == jnp.float32
    assert bool(jnp.all(jnp.isfinite(out))) and float(jnp.std(out)) > 0


def test_unet_class_conditioning_and_guidance():
    net = UNet(image_shape=(8, 8, 1), channels=8, channel_mult=(1, 2), attention_resolutions=(4,), groups=4,
               heads=2, embedding=SinusoidalEmbedding(16), num_classes=3)
    model = ScoreModel(net, jo.VPLinear(), EDMPreconditioning(0.5), sigma_data=0.5)
    params = model.init(jax.random.key(0), jnp.zeros((1, 64), jnp.float32), jnp.zeros((1,), jnp.int32))
    params = _perturb(params, 0.05)
    x = jax.random.normal(jax.random.key(2), (4, 64), jnp.float32)
    labels = jnp.array([0, 1, 2, 1])
    w = 2.5

    def scores(params, x):
        cond = model.score(params, x, 0.4, labels)
        uncond = model.score(params, x, 0.4)  # labels=None -> null label
        null = model.score(params, x, 0.4, jnp.full((4,), 3))
        guided = model.bind(params, labels, guidance=w)(x, 0.4)
        return cond, uncond, null, guided

    # compiled at backend optimisation level 0: the test checks values, not speed, and U-Net compiles are slow
    compiled = jax.jit(scores).lower(params, x).compile(compiler_options={"xla_backend_optimization_level": 0})
    cond, uncond, null, guided = compiled(params, x)
    assert cond.shape == (4, 64)
    assert cond.dtype == jnp.float32
    np.testing.assert_array_equal(uncond, null)
    assert float(jnp.max(jnp.abs(cond - uncond))) > 1e-4  # labels matter
    np.testing.assert_allclose(guided, (1 + w) * cond - w * uncond, rtol=1e-4, atol=1e-4)


def test_labels_without_conditioning_and_bad_resolution_are_rejected():
    model = ScoreModel(MLP(features=8, depth=1), jo.OU())
    params = model.init(jax.random.key(0), jnp.zeros((1, 2)))
    with pytest.raises(ValueError, match="no class conditioning"):
        model.score(params, jnp.zeros((2, 2)), 0.5, jnp.array([0, 1]))
    net = UNet(image_shape=(28, 28, 1), channels=8, channel_mult=(1, 2, 2, 2), groups=4)
    with pytest.raises(ValueError, match="cannot be halved"):
        jax.eval_shape(net.init, jax.random.key(0), jnp.zeros((1, 784)), jnp.zeros(1))
    with pytest.raises(ValueError, match="last axis 64"):
        jax.eval_shape(UNet(image_shape=(8, 8, 1)).init, jax.random.key(0), jnp.zeros((1, 63)), jnp.zeros(1))


def test_learned_score_plugs_into_flow_map():
    sched = jo.OU()
    model = ScoreModel(MLP(features=16, depth=1), sched, DataPrediction())
    score = model.bind(model.init(jax.random.key(0), jnp.zeros((1, 2))))
    z = jax.random.normal(jax.random.key(1), (6, 2))
    # x0_hat = 0 => the PF ODE contracts every point towards 0 along rays: x(t1) is a positive multiple of z.
    out = jo.flow_map(score, sched, z, 2.0, 0.5, ode=jo.ODESettings(solver="heun", num_steps=8))
    assert bool(out.success)
    ratio = out.points / z
    np.testing.assert_allclose(ratio[:, 0], ratio[:, 1], rtol=1e-6)
    assert bool(jnp.all(ratio[:, 0] > 0))


def test_learned_score_checks_its_queries_and_labels():
    """Bad queries and labels raise before the network runs (they used to return NaN or a plausible
    result: NaN/inf/complex queries, labels past the null label in a hand-built LearnedScore)."""
    x = np.random.default_rng(0).normal(size=(4, 2)).astype(np.float32)
    model = ScoreModel(MLP(features=8, depth=1, num_classes=3), jo.OU())
    params = model.init(jax.random.key(0), x, np.zeros(4, np.int32))
    score = LearnedScore(model, params)
    for bad in (np.full((4, 2), np.nan), np.full((4, 2), np.inf)):
        with pytest.raises(ValueError, match="`x` has 8 non-finite"):
            score(bad, 0.5)
        with pytest.raises(ValueError, match="`x` has 8 non-finite"):
            score.denoiser(bad, 0.5)
    for bad in (x + 1j, "x", None):
        with pytest.raises(TypeError, match="`x`"):
            score(bad, 0.5)
    for bad in (np.ones((4, 3)), 1.0):
        with pytest.raises(ValueError, match=r"`x` must have shape \(\.\.\., 2\)"):
            score(bad, 0.5)
    with pytest.raises(TypeError, match="`t`"):
        score(x, None)
    for bad in (np.array([4]), np.array([-1])):
        with pytest.raises(ValueError, match="`labels` must be in"):
            LearnedScore(model, params, bad)
    assert LearnedScore(model, params, np.array([3]))(x, 0.5).shape == (4, 2)  # 3 = the null label
    labelled = LearnedScore(model, params, jnp.array([1, 2, 0, 1]))
    np.testing.assert_allclose(jax.jit(lambda s, q: s(q, 0.5))(labelled, x), labelled(x, 0.5), rtol=1e-6)


def test_mlp_needs_one_block():
    """depth = 0 would give a network that never sees the noise level (it enters through the blocks)."""
    with pytest.raises(ValueError, match="`depth`"):
        MLP(features=8, depth=0)


def test_sigma_data_has_one_source_of_truth():
    """Issue 23 item 6: EDMPreconditioning and ScoreModel both carried sigma_data (0.5 and 1.0 by default) and
    disagreeing values passed silently. Left out, ScoreModel takes it from the parametrisation; given in both
    places, the values must agree; an EDMWeighting of another sigma_data is refused by DSMObjective."""
    from jaxotdm.training import DSMObjective, EDMWeighting

    assert ScoreModel(MLP(features=4, depth=1), jo.OU(), EDMPreconditioning(0.3)).sigma_data == 0.3
    assert ScoreModel(MLP(features=4, depth=1), jo.OU(), NoisePrediction()).sigma_data == 1.0
    assert ScoreModel(MLP(features=4, depth=1), jo.OU(), EDMPreconditioning(0.3), sigma_data=0.3).sigma_data == 0.3
    with pytest.raises(ValueError, match="`sigma_data`.*EDMPreconditioning"):
        ScoreModel(MLP(features=4, depth=1), jo.OU(), EDMPreconditioning(0.5), sigma_data=1.0)
    model = ScoreModel(MLP(features=4, depth=1), jo.OU(), EDMPreconditioning(0.5))
    assert DSMObjective(model, EDMWeighting(0.5)).weighting.sigma_data == 0.5
    with pytest.raises(ValueError, match="`weighting`.*sigma_data"):
        DSMObjective(model, EDMWeighting(0.8))
