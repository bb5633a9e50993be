"""OT-accelerated sampling (Algorithm 2 of arXiv 2410.13431): exactness at T' -> 0, conditional path,
the memorisation caveat, validation and jit."""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import jaxotdm as jo
from jaxotdm.metrics import memorisation
from jaxotdm.samplers import DDIM, AncestralDDPM, Heun
from jaxotdm.samplers.ot_accelerated import (
    ExactClassScores,
    OTPrior,
    ot_accelerated_sample,
    ot_accelerated_step,
    prepare_conditional_ot_prior,
    prepare_ot_prior,
)

SCHED = jo.VPLinear()
# five distinct points in 2-D, uniform weights
Y = jnp.array([[-1.0, 0.0], [1.0, 0.0], [0.0, 2.0], [0.5, 0.5], [-0.7, -1.2]])
LAB = jnp.array([0, 0, 1, 1, 1])
T_PRIME, T_END = 2e-3, 1e-3


@pytest.fixture(scope="module")
def prior():
    return prepare_ot_prior(SCHED, Y, key=jax.random.key(0), t_prime=T_PRIME, ot_tol=0.02)


@pytest.fixture(scope="module")
def score():
    return jo.exact_score(jo.EmpiricalMeasure(Y), SCHED)


def test_prior_error_is_zero_to_solver_accuracy(prior):
    """The OT pushforward of N(0, I) puts mass 1/n on each diffused point, within the certificate."""
    cert = prior.certificate
    assert float(cert.max_relative_error) <= 0.02 + 4 * float(cert.standard_error)
    # independent check on fresh draws: chi-square of the Laguerre cell counts against uniform weights
    m = 20_000
    cells = np.asarray(prior.ot_map.assign(jax.random.normal(jax.random.key(11), (m, 2))))
    counts = np.bincount(cells, minlength=len(Y))
    assert stats.chisquare(counts).pvalue > 1e-3
    # the targets are the diffused training points, one per point
    assert prior.diffused.shape == Y.shape
    np.testing.assert_array_equal(np.asarray(prior.source_index), np.arange(len(Y)))
    np.testing.assert_allclose(prior.diffused, SCHED.alpha(T_PRIME) * Y, atol=6 * float(SCHED.sigma(T_PRIME)))


def test_hard_map_small_t_prime_returns_data_with_right_frequencies(prior, score):
    m = 4000
    out = ot_accelerated_sample(score, prior, key=jax.random.key(1), num_samples=m, sampler=DDIM(), num_steps=2,
                                t_end=T_END)
    assert int(out.nfe) == 2  # the OT step costs no score evaluation
    d = np.linalg.norm(np.asarray(out.points)[:, None] - np.asarray(Y)[None], axis=-1)
    assert d.min(1).max() < 0.1  # every sample lands on a data point
    freq = np.bincount(d.argmin(1), minlength=len(Y)) / m
    se = np.sqrt(0.2 * 0.8 / m)
    assert np.all(np.abs(freq - 0.2) < 4 * se), freq
    # each sample lands on the point its Laguerre cell came from
    np.testing.assert_array_equal(d.argmin(1), np.asarray(prior.source_index)[np.asarray(out.assignment)])
    # library results carry no wall times (house rule; time from outside): the field is gone
    assert not hasattr(out, "timings")
    assert {f.name for f in dataclasses.fields(out)}.isdisjoint({"timings", "seconds", "wall_time", "elapsed"})


def test_smoothed_map_moves_inside_the_hull(prior, score):
    out0 = ot_accelerated_step(prior, score, SCHED, jax.random.key(2), num_samples=64, sampler=DDIM(),
                               num_steps=1, t_end=T_END, tau=0.0)
    out1 = ot_accelerated_step(prior, score, SCHED, jax.random.key(2), num_samples=64, sampler=DDIM(),
                               num_steps=1, t_end=T_END, tau=1.0)
    # same draws: the hard map hits targets exactly, the smoothed one averages them
    d0 = np.linalg.norm(np.asarray(out0.initial_points)[:, None] - np.asarray(prior.diffused)[None], axis=-1)
    d1 = np.linalg.norm(np.asarray(out1.initial_points)[:, None] - np.asarray(prior.diffused)[None], axis=-1)
    assert d0.min(1).max() < 1e-12 and np.median(d1.min(1)) > 1e-2


def test_memorisation_flags_the_hard_map_at_small_t_prime():
    """The caveat of docs/theory.md section 7: the hard map with T' -> 0 outputs training points, and the metric says so."""
    from jaxotdm import data as D

    x = jnp.asarray(D.load_digits()[:240])
    train, held, fresh = x[:80], x[80:160], x[160:240]
    sc = jo.exact_score(jo.EmpiricalMeasure(train), SCHED)
    prior = prepare_ot_prior(SCHED, train, key=jax.random.key(3), t_prime=T_PRIME, ot_tol=0.3)
    out = ot_accelerated_sample(sc, prior, key=jax.random.key(3), num_samples=80, sampler=AncestralDDPM(),
                                num_steps=2, t_end=T_END)
    flagged = memorisation(out.points, train, held)
    baseline = memorisation(fresh, train, held)  # new digits from the same law: not copies
    assert float(flagged.near_copy_fraction) > 0.95 and float(flagged.median_ratio) < 0.1
    assert float(baseline.near_copy_fraction) < 0.2 and float(baseline.median_ratio) > 0.5


def test_noise_draws_multiplies_targets():
    p = prepare_ot_prior(SCHED, Y, key=jax.random.key(4), t_prime=0.3, noise_draws=3, ot_tol=0.3)
    assert p.diffused.shape == (15, 2)
    np.testing.assert_allclose(p.ot_map.weights, np.full(15, 1 / 15), rtol=1e-6)


def test_jit_step_matches_eager(prior, score):
    kw = dict(num_samples=16, sampler=Heun(), num_steps=2, t_end=T_END, tau=0.0)
    eager = ot_accelerated_step(prior, score, SCHED, jax.random.key(5), **kw)
    jitted = eqx.filter_jit(ot_accelerated_step)(prior, score, SCHED, jax.random.key(5), **kw)
    np.testing.assert_allclose(jitted.points, eager.points, rtol=1e-10, atol=1e-10)
    assert int(jitted.nfe) == 4 and isinstance(jitted.prior, OTPrior)


def test_conditional_returns_requested_class():
    cs = ExactClassScores.from_data(Y, LAB, SCHED)
    cprior = prepare_conditional_ot_prior(SCHED, Y, LAB, key=jax.random.key(6), t_prime=T_PRIME, ot_tol=0.1)
    for label in (0, 1):
        out = cprior.sample(cs, label=label, key=jax.random.key(7), num_samples=200, sampler=DDIM(), num_steps=2,
                            t_end=T_END, guidance=0.5)
        nearest = np.linalg.norm(np.asarray(out.points)[:, None] - np.asarray(Y)[None], axis=-1).argmin(1)
        assert np.all(np.asarray(LAB)[nearest] == label)
    with pytest.raises(ValueError, match="label"):
        cs.for_class(7)
    with pytest.raises(ValueError, match="label"):
        cprior.sample(cs, label=3, key=jax.random.key(0), num_samples=4, num_steps=2, t_end=T_END)
    with pytest.raises(ValueError, match="label"):
        cprior.for_class(2)
    assert not hasattr(jo.samplers, "ot_accelerated_conditional_sample")  # one form: ConditionalOTPrior.sample


def test_exact_class_score_is_the_class_measure_score():
    cs = ExactClassScores.from_data(Y, LAB, SCHED)
    ref = jo.exact_score(jo.EmpiricalMeasure(Y[2:]), SCHED)
    x = jax.random.normal(jax.random.key(8), (7, 2))
    np.testing.assert_allclose(cs.for_class(1)(x, 0.3), ref(x, 0.3), rtol=1e-9, atol=1e-9)
    full = jo.exact_score(jo.EmpiricalMeasure(Y), SCHED)
    g = cs.for_class(1, guidance=2.0)(x, 0.3)
    np.testing.assert_allclose(g, 3.0 * ref(x, 0.3) - 2.0 * full(x, 0.3), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_steps=0), "num_steps"),
        (dict(num_steps=None, nfe=0), "nfe"),
        (dict(num_steps=None, nfe=3, sampler=Heun()), "nfe"),
        (dict(t_end=0.2), "t_end"),  # T' <= t_end
        (dict(t_end=-1.0), "t_end"),
        (dict(tau=-0.1), "tau"),
        (dict(throw="yes"), "throw"),
        (dict(num_samples=0), "num_samples"),
        (dict(key=None), "key"),
    ],
)
def test_bad_input(kwargs, match, score):
    prior = prepare_ot_prior(SCHED, Y, key=jax.random.key(0), t_prime=0.1, ot_tol=0.3)
    base = dict(key=jax.random.key(0), num_samples=4, sampler=DDIM(), num_steps=2, t_end=T_END)
    with pytest.raises(ValueError, match=match):
        ot_accelerated_sample(score, prior, **(base | kwargs))


def test_one_call_form(score):
    """The earlier call form (a schedule and the data in place of the prepared prior) is gone."""
    with pytest.raises(ValueError, match="`prior` must be an OTPrior"):
        ot_accelerated_sample(score, SCHED, key=jax.random.key(0), num_samples=4, num_steps=2, t_end=T_END)
    with pytest.raises(TypeError):
        ot_accelerated_sample(score, SCHED, Y, key=jax.random.key(0), t_prime=0.1, num_samples=4, num_steps=2,
                              t_end=T_END)
    with pytest.raises(TypeError, match="ot_method"):  # the renamed keyword is gone (it is `ot_solver`)
        prepare_ot_prior(SCHED, Y, key=jax.random.key(0), t_prime=0.1, ot_method=None)


def test_bad_input_schedule_range_and_shapes(score):
    with pytest.raises(ValueError, match="t_prime"):
        prepare_ot_prior(jo.Cosine(), Y, key=jax.random.key(0), t_prime=5.0)
    with pytest.raises(ValueError, match="data_points"):
        prepare_ot_prior(SCHED, Y[:, 0], key=jax.random.key(0), t_prime=0.1)
    with pytest.raises(ValueError, match="dimension"):
        prior3 = prepare_ot_prior(SCHED, jnp.zeros((5, 3)), key=jax.random.key(0), t_prime=0.1, ot_tol=0.3)
        ot_accelerated_sample(score, prior3, key=jax.random.key(0), num_samples=4, num_steps=2, t_end=T_END)
    with pytest.raises(ValueError, match="labels"):
        ExactClassScores.from_data(Y, LAB[:3], SCHED)
    with pytest.raises(ValueError, match="weights"):
        prepare_ot_prior(SCHED, Y, key=jax.random.key(0), t_prime=0.1, weights=jnp.ones(3) / 3)


# ------------------------------------------------------------------------- learned class-conditional scores
@pytest.fixture(scope="module")
def learned_classes():
    """A class-conditional MLP with random (perturbed) parameters: its score is not zero, and not trained."""
    from jaxotdm.networks import MLP, NoisePrediction, ScoreModel

    model = ScoreModel(MLP(features=16, depth=1, num_classes=2), SCHED, NoisePrediction())
    params = model.init(jax.random.key(20), jnp.zeros((1, 2)), labels=jnp.zeros((1,), jnp.int32))
    leaves, tdef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(21), len(leaves))
    params = jax.tree.unflatten(tdef, [p + 0.3 * jax.random.normal(k, p.shape, p.dtype) for p, k in zip(leaves, keys, strict=True)])
    return model, params


def test_learned_class_scores_bind_the_label_and_the_guidance(learned_classes):
    from jaxotdm.samplers import LearnedClassScores

    model, params = learned_classes
    cs = LearnedClassScores(model, params, classes=(0, 1))
    x = jax.random.normal(jax.random.key(22), (9, 2))
    t = 0.3
    s0, s1 = cs.for_class(0)(x, t), cs.for_class(1)(x, t)
    np.testing.assert_allclose(s1, model.score(params, x, t, labels=1), rtol=1e-12, atol=1e-12)
    assert float(jnp.max(jnp.abs(s0 - s1))) > 1e-3  # the label reaches the network
    # classifier-free guidance: (1 + w) s_c - w s_null, the null label being the unconditional branch
    s_null = model.score(params, x, t, labels=None)
    assert float(jnp.max(jnp.abs(s_null - s1))) > 1e-3
    for w in (0.5, 2.0, -0.5):
        np.testing.assert_allclose(cs.for_class(1, guidance=w)(x, t), (1 + w) * s1 - w * s_null, rtol=1e-9, atol=1e-9)
    # guidance is linear in w: the guided scores at w = 0, 1, 2 are equally spaced
    g = [cs.for_class(1, guidance=w)(x, t) for w in (0.0, 1.0, 2.0)]
    np.testing.assert_allclose(g[2] - g[1], g[1] - g[0], rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(g[0], s1)


def test_learned_class_scores_drive_conditional_sampling(learned_classes):
    """The conditional sampler runs the requested class's OT prior and the learned class score's chain."""
    from jaxotdm.samplers import LearnedClassScores

    model, params = learned_classes
    cs = LearnedClassScores(model, params, classes=(0, 1))
    cprior = prepare_conditional_ot_prior(SCHED, Y, LAB, key=jax.random.key(23), t_prime=0.2, ot_tol=0.1)
    key = jax.random.key(24)
    for label, w in ((0, 0.0), (1, 1.5)):
        out = cprior.sample(cs, label=label, key=key, num_samples=16, guidance=w, sampler=Heun(), num_steps=3,
                            t_end=T_END)
        assert out.points.shape == (16, 2) and int(out.nfe) == 6 and bool(jnp.all(jnp.isfinite(out.points)))
        # the chain starts on the class's diffused points (hard map) ...
        d = np.linalg.norm(np.asarray(out.initial_points)[:, None] - np.asarray(cprior.for_class(label).diffused)[None], axis=-1)
        assert d.min(1).max() < 1e-12
        # ... and is exactly the step with the bound learned score (the public entry point passes its key on)
        ref = ot_accelerated_step(cprior.for_class(label), model.bind(params, labels=label, guidance=w), SCHED, key,
                                  num_samples=16, sampler=Heun(), num_steps=3, t_end=T_END)
        np.testing.assert_allclose(out.points, ref.points, rtol=1e-12, atol=1e-12)
    # guidance changes the samples (same key, same prior draws)
    a, b = (cprior.sample(cs, label=1, key=key, num_samples=16, guidance=w, sampler=DDIM(), num_steps=3,
                          t_end=T_END)
            for w in (0.0, 3.0))
    np.testing.assert_array_equal(a.initial_points, b.initial_points)
    assert float(jnp.max(jnp.abs(a.points - b.points))) > 1e-4


def test_learned_class_scores_bad_input(learned_classes):
    from jaxotdm.networks import MLP, ScoreModel
    from jaxotdm.samplers import LearnedClassScores

    model, params = learned_classes
    cs = LearnedClassScores(model, params, classes=(0, 1))
    for bad in (2, -1, 1.0, True, "1", None):
        with pytest.raises(ValueError, match="`label`"):
            cs.for_class(bad)
    with pytest.raises(ValueError, match="`guidance`"):
        cs.for_class(0, guidance=float("nan"))
    cprior = prepare_conditional_ot_prior(SCHED, Y, LAB, key=jax.random.key(0), t_prime=0.1, ot_tol=0.3)
    with pytest.raises(ValueError, match="`label`"):
        cprior.sample(cs, label=3, key=jax.random.key(0), num_samples=4, num_steps=2, t_end=T_END)
    with pytest.raises(ValueError, match="`classes`"):
        LearnedClassScores(model, params, classes=(0, 2))  # the network knows labels 0 and 1 (2 is its null label)
    with pytest.raises(ValueError, match="`classes`"):
        LearnedClassScores(model, params, classes=[0, 1])
    with pytest.raises(ValueError, match="`model`"):
        LearnedClassScores(ScoreModel(MLP(features=4, depth=1), SCHED), params, classes=(0,))
    with pytest.raises(ValueError, match="`model`"):
        LearnedClassScores(lambda x, t: x, params, classes=(0,))
    with pytest.raises(ValueError, match="class_scores"):
        cprior.sample(model.bind(params), label=0, key=jax.random.key(0), num_samples=4, num_steps=2, t_end=T_END)


# ------------------------------------------------------------------------- the status contract (Algorithm 2)
def _nan_score(x, t):
    return jnp.full_like(x, jnp.nan)  # a score that has gone bad (e.g. a diverged network)


def _exploding_score(x, t):
    return 1e6 * x / (t * t)  # an absurd step for any fixed-step chain: the samples leave every scale


@pytest.mark.parametrize("bad_score, code", [(_nan_score, jo.Status.NONFINITE), (_exploding_score, jo.Status.DIVERGED)])
def test_algorithm2_under_jit_returns_the_failed_chains_status(prior, bad_score, code):
    """Under ``jit`` a failed chain cannot raise: its status travels in the result, beside the OT solve's."""
    run = jax.jit(lambda key: ot_accelerated_sample(bad_score, prior, key=key, num_samples=8, sampler=DDIM(),
                                                    num_steps=3, t_end=T_END))
    out = run(jax.random.key(30))
    assert jo.Status(int(out.status)) == code
    assert jo.Status(int(out.chain_status)) == code
    assert jo.Status(int(out.ot_status)) == jo.Status.SUCCESS  # the OT solve was fine: the chain failed
    # the healthy run under jit says SUCCESS in all three
    good = jax.jit(lambda key: ot_accelerated_sample(jo.exact_score(jo.EmpiricalMeasure(Y), SCHED), prior, key=key,
                                                     num_samples=8, sampler=DDIM(), num_steps=3, t_end=T_END))(
        jax.random.key(30))
    assert [int(good.status), int(good.chain_status), int(good.ot_status)] == [0, 0, 0]


def test_algorithm2_outside_jit_raises_on_a_failed_chain_by_default(prior):
    """``throw=True`` (the default) raises outside jit; ``throw=False`` warns and returns the status."""
    kw = dict(key=jax.random.key(31), num_samples=8, sampler=DDIM(), num_steps=3, t_end=T_END)
    with pytest.raises(RuntimeError, match=r"ot_accelerated_sample: a non-finite value"):
        ot_accelerated_sample(_nan_score, prior, **kw)
    with pytest.warns(jo.ConvergenceWarning, match="ot_accelerated_sample"):
        out = ot_accelerated_sample(_nan_score, prior, **kw, throw=False)
    assert jo.Status(int(out.status)) == jo.Status.NONFINITE


def test_a_failed_ot_solve_keeps_its_status_in_the_sample_result(prior, score):
    """A composed result keeps its parts' statuses: an OT map that did not converge marks the run failed even
    when the chain is healthy."""
    diag = prior.ot_map.diagnostics.replace(status=jnp.asarray(jo.Status.MAX_ITERATIONS, jnp.int32))
    stale = prior.replace(ot_map=prior.ot_map.replace(diagnostics=diag))
    kw = dict(num_samples=8, sampler=DDIM(), num_steps=3, t_end=T_END)
    out = jax.jit(lambda key: ot_accelerated_sample(score, stale, key=key, **kw))(jax.random.key(32))
    assert jo.Status(int(out.status)) == jo.Status.MAX_ITERATIONS
    assert jo.Status(int(out.ot_status)) == jo.Status.MAX_ITERATIONS
    assert jo.Status(int(out.chain_status)) == jo.Status.SUCCESS
    with pytest.raises(RuntimeError, match="iteration budget"):
        ot_accelerated_sample(score, stale, key=jax.random.key(32), **kw)
