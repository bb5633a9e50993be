"""Training: DSM loss, learned score vs exact score, bit-for-bit resume, corrupt checkpoints, NaN stop, CLI."""

import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxotdm as jo
from jaxotdm.data import toy_2d
from jaxotdm.networks import (
    MLP,
    DataPrediction,
    EDMPreconditioning,
    NoisePrediction,
    ScoreModel,
    ScorePrediction,
    VPrediction,
)
from jaxotdm.training import (
    CHECKPOINT_NAME,
    CheckpointError,
    Checkpointing,
    DSMObjective,
    EDMWeighting,
    LikelihoodWeighting,
    MinSNRWeighting,
    Monitoring,
    NativeMSE,
    NoiseMSE,
    NonFiniteLossError,
    UniformLogSNRDistribution,
    UniformTimeDistribution,
    default_optimizer_for,
    epoch_batch_indices,
    fit,
    init_train_state,
    load_checkpoint,
    save_checkpoint,
    score_relative_error,
    train_step,
)

SCHEDULES = [jo.OU(), jo.VPLinear(), jo.SubVP(), jo.Cosine(), jo.VE(), jo.EDM()]


def _small_objective(schedule=None, **kw):
    schedule = jo.OU() if schedule is None else schedule
    model = ScoreModel(MLP(features=16, depth=1), schedule, NoisePrediction(), sigma_data=1.0)
    return DSMObjective(model, time_distribution=UniformLogSNRDistribution.between(schedule, 0.01, 3.0), **kw)


# ---------------------------------------------------------------------------------------------------
# Learning works
# ---------------------------------------------------------------------------------------------------


def test_loss_decreases_and_learned_score_matches_exact_score():
    """8 Gaussians, 128 points, OU: after 1,500 steps the EMA score is within 20% (relative L2) of the
    exact score of the training set at moderate noise (t = 0.5: alpha = 0.78, sigma = 0.63)."""
    sched = jo.OU()
    x = toy_2d("eight_gaussians", 128, seed=0)
    model = ScoreModel(MLP(features=64, depth=2), sched, NoisePrediction(), sigma_data=float(x.std()))
    obj = DSMObjective(model, time_distribution=UniformLogSNRDistribution.between(sched, 0.05, 3.0))
    res = fit(obj, x, steps=1500, batch_size=128, learning_rate=3e-3, seed=0, ema_decay=0.99)
    assert res.losses.shape == (1500,)
    first, last = res.losses[:100].mean(), res.losses[-100:].mean()
    assert last < 0.8 * first, (first, last)
    exact = jo.exact_score(jo.EmpiricalMeasure(jnp.asarray(x, jnp.float64)), sched)
    err_ema = float(score_relative_error(model.bind(res.state.ema_params), exact, x, 0.5, sched,
                                         key=jax.random.key(3), num_samples=4096))
    untrained = init_train_state(model, optax.adam(1e-3), x[:1], key=jax.random.key(0))
    err0 = float(score_relative_error(model.bind(untrained.params), exact, x, 0.5, sched,
                                      key=jax.random.key(3), num_samples=4096))
    assert err0 > 0.9  # a zero noise prediction is 100% off
    assert err_ema < 0.2, err_ema


@pytest.mark.slow
def test_learned_score_several_noise_levels_longer_run():
    sched = jo.OU()
    x = toy_2d("eight_gaussians", 256, seed=1)
    model = ScoreModel(MLP(features=128, depth=3), sched, VPrediction(), sigma_data=float(x.std()))
    obj = DSMObjective(model, time_distribution=UniformLogSNRDistribution.between(sched, 0.02, 4.0))
    res = fit(obj, x, steps=4000, batch_size=256, learning_rate=2e-3, seed=0)
    exact = jo.exact_score(jo.EmpiricalMeasure(jnp.asarray(x, jnp.float64)), sched)
    for t, tol in ((0.2, 0.2), (0.5, 0.12), (1.0, 0.1)):
        err = score_relative_error(model.bind(res.state.ema_params), exact, x, t, sched, key=jax.random.key(3))
        assert float(err) < tol, (t, float(err))


# ---------------------------------------------------------------------------------------------------
# Loss and weightings
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: type(s).__name__)
def test_likelihood_weight_is_minus_log_snr_derivative(schedule):
    """g^2 / sigma^2 = -d lambda / dt for every schedule (why NoiseMSE + UniformLogSNR is the VDM ELBO form)."""
    t = jnp.linspace(0.05, 0.9, 7, dtype=jnp.float64)
    w = LikelihoodWeighting().eps_weight(t, schedule)
    dlam = jax.vmap(jax.grad(lambda s: schedule.log_snr(s)))(t)
    np.testing.assert_allclose(w, -dlam, rtol=1e-10)


WEIGHTINGS = [NoiseMSE(), LikelihoodWeighting(), EDMWeighting(0.6), MinSNRWeighting(4.0)]
PARAMETRISATIONS = [NoisePrediction(), DataPrediction(), VPrediction(), ScorePrediction(), EDMPreconditioning(0.6)]


@pytest.mark.parametrize("weighting", WEIGHTINGS, ids=lambda w: type(w).__name__)
def test_output_space_loss_equals_noise_space_loss(weighting):
    """w_out |out_hat - out|^2 = w(t) |eps_hat - eps|^2 for every parametrisation (same prediction)."""
    sched = jo.VPLinear()
    k = jax.random.split(jax.random.key(0), 4)
    x0 = jax.random.normal(k[0], (32, 3), jnp.float64)
    eps = jax.random.normal(k[1], (32, 3), jnp.float64)
    eps_hat = eps + 0.3 * jax.random.normal(k[2], (32, 3), jnp.float64)
    t = jax.random.uniform(k[3], (32,), jnp.float64, 0.05, 0.95)
    a, s = sched.alpha(t)[:, None], sched.sigma(t)[:, None]
    x = a * x0 + s * eps
    x0_hat = (x - s * eps_hat) / a
    ref = weighting.eps_weight(t, sched) * jnp.sum((eps_hat - eps) ** 2, -1)
    for p in PARAMETRISATIONS:
        out_hat = p.from_pair(x0_hat, eps_hat, x, a, s)
        target = p.from_pair(x0, eps, x, a, s)
        got = weighting.output_weight(t, sched, p, a[:, 0], s[:, 0]) * jnp.sum((out_hat - target) ** 2, -1)
        np.testing.assert_allclose(got, ref, rtol=1e-9, err_msg=type(p).__name__)
    np.testing.assert_array_equal(NativeMSE().output_weight(t, sched, VPrediction(), a[:, 0], s[:, 0]), 1.0)


def test_time_distributions_cover_their_ranges():
    sched = jo.VPLinear()
    key = jax.random.key(0)
    tu = UniformLogSNRDistribution.between(sched, 0.01, 0.9).sample(key, (4000,), sched, jnp.float64)
    assert float(tu.min()) >= 0.01 - 1e-9 and float(tu.max()) <= 0.9 + 1e-9
    lam = sched.log_snr(tu)
    assert abs(float(jnp.mean(lam)) - 0.5 * float(sched.log_snr(0.01) + sched.log_snr(0.9))) < 0.3
    t2 = UniformTimeDistribution(0.1, 0.5).sample(key, (1000,), sched, jnp.float64)
    assert float(t2.min()) >= 0.1 and float(t2.max()) <= 0.5
    with pytest.raises(ValueError, match="t_max must be <"):
        UniformTimeDistribution(0.1, 1.5).check(jo.Cosine())
    with pytest.raises(ValueError, match="t_max must be <"):
        DSMObjective(ScoreModel(MLP(features=4, depth=1), jo.Cosine()), time_distribution=UniformTimeDistribution(0.1, 1.0))
    with pytest.raises(ValueError, match="label_dropout"):
        _small_objective(label_dropout=1.0)


# ---------------------------------------------------------------------------------------------------
# train_step in a user's loop, data order
# ---------------------------------------------------------------------------------------------------


def test_train_step_in_a_user_optax_loop_is_deterministic():
    obj = _small_objective()
    opt = optax.adam(1e-2)
    x = jnp.asarray(toy_2d("moons", 64, seed=0))
    state = init_train_state(obj.model, opt, x[:1], key=jax.random.key(5))
    step = jax.jit(lambda s, b: train_step(s, b, objective=obj, optimizer=opt))
    s1, m1 = step(state, x)
    s1b, _ = step(state, x)
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), s1, s1b))
    s2, m2 = step(s1, x)
    assert int(s2.step) == 2 and bool(m1["finite"]) and bool(m2["finite"])
    assert float(m1["loss"]) != float(m2["loss"])  # a new key each step (fold_in(step))


def test_epoch_batch_indices_are_permutations_per_epoch():
    key = jax.random.key(3)
    n, b = 10, 3
    f = jax.jit(lambda s: epoch_batch_indices(key, s, n, b))
    epoch0 = np.concatenate([np.asarray(f(s)) for s in range(3)])
    epoch1 = np.concatenate([np.asarray(f(s)) for s in range(3, 6)])
    assert len(set(epoch0.tolist())) == 9 and len(set(epoch1.tolist())) == 9
    assert not np.array_equal(epoch0, epoch1)
    np.testing.assert_array_equal(f(4), f(4))


def test_class_conditional_training_runs():
    sched = jo.OU()
    x = toy_2d("eight_gaussians", 64, seed=0)
    labels = (np.arctan2(x[:, 1], x[:, 0]) > 0).astype(np.int32)
    model = ScoreModel(MLP(features=16, depth=1, num_classes=2), sched)
    obj = DSMObjective(model, time_distribution=UniformLogSNRDistribution.between(sched, 0.01, 3.0), label_dropout=0.2)
    res = fit(obj, x, labels=labels, steps=5, batch_size=32)
    assert np.all(np.isfinite(res.losses))
    with pytest.raises(ValueError, match="`labels` must be integers"):
        fit(obj, x, labels=labels[:10], steps=1, batch_size=32)


# ---------------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------------


def _leaves_equal(a, b):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(la) == len(lb) and all(np.array_equal(np.asarray(u), np.asarray(v)) for u, v in zip(la, lb, strict=True))


def test_resume_is_bit_for_bit(tmp_path):
    obj = _small_objective()
    x = toy_2d("moons", 50, seed=0)  # 50 // 16 = 3 batches per epoch: the run crosses epochs
    kw = dict(batch_size=16, seed=4, learning_rate=1e-2)
    full = fit(obj, x, steps=12, checkpoint=Checkpointing(tmp_path / "a", every=4), **kw)
    part = fit(obj, x, steps=8, checkpoint=Checkpointing(tmp_path / "b", every=4), **kw)
    assert int(part.state.step) == 8
    resumed = fit(obj, x, steps=12, checkpoint=Checkpointing(tmp_path / "b", every=4, resume=True), **kw)
    assert resumed.resumed_from == 8
    assert _leaves_equal(resumed.state, full.state)
    np.testing.assert_array_equal(resumed.losses, full.losses)
    # and the state on disk is the state in memory
    loaded, cfg, hist = load_checkpoint(tmp_path / "b" / CHECKPOINT_NAME, full.state)
    assert _leaves_equal(loaded, full.state) and len(hist["losses"]) == 12 and cfg["seed"] == 4
    # a different seed gives a different run (so the equality above is not vacuous)
    other = fit(obj, x, steps=12, batch_size=16, seed=5, learning_rate=1e-2)
    assert not _leaves_equal(other.state.params, full.state.params)


def test_corrupt_and_mismatched_checkpoints_are_rejected(tmp_path):
    obj = _small_objective()
    x = toy_2d("moons", 40, seed=0)
    fit(obj, x, steps=2, batch_size=16, checkpoint=Checkpointing(tmp_path))
    path = tmp_path / CHECKPOINT_NAME
    good = path.read_bytes()
    target = init_train_state(obj.model, default_optimizer_for(1e-3), x[:1], key=jax.random.key(0))
    load_checkpoint(path, target)  # sanity: the intact file loads

    flipped = bytearray(good)
    flipped[-20] ^= 0xFF
    path.write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match="corrupt: checksum"):
        load_checkpoint(path, target)
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(path, target)
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="bad header"):
        load_checkpoint(path, target)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.msgpack", target)
    assert issubclass(CheckpointError, ValueError)

    path.write_bytes(good)
    # another architecture: structure/shape mismatch
    big = ScoreModel(MLP(features=32, depth=1), jo.OU())
    other_target = init_train_state(big, optax.adam(1e-3), x[:1], key=jax.random.key(0))
    with pytest.raises(CheckpointError, match="does not match the model/optimiser"):
        load_checkpoint(path, other_target)
    # resuming with a different configuration names what differs
    with pytest.raises(CheckpointError, match="batch_size: saved 16, now 8"):
        fit(obj, x, steps=4, batch_size=8, checkpoint=Checkpointing(tmp_path, resume=True))
    with pytest.raises(CheckpointError, match="data_sha256"):
        fit(obj, x + 1.0, steps=4, batch_size=16, checkpoint=Checkpointing(tmp_path, resume=True))
    with pytest.raises(CheckpointError, match="does not exist"):
        fit(obj, x, steps=4, batch_size=16, checkpoint=Checkpointing(tmp_path / "empty", resume=True))


def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path):
    obj = _small_objective()
    state = init_train_state(obj.model, optax.adam(1e-3), jnp.zeros((1, 2)), key=jax.random.key(0))
    p = save_checkpoint(tmp_path / "c.msgpack", state, config={"a": 1})
    save_checkpoint(p, state.replace(step=state.step + 1), config={"a": 1})
    assert sorted(f.name for f in tmp_path.iterdir()) == ["c.msgpack"]
    loaded, cfg, _ = load_checkpoint(p, state, config={"a": 1})
    assert int(loaded.step) == 1 and cfg == {"a": 1}
    with pytest.raises(CheckpointError, match="a: saved 1, now 2"):
        load_checkpoint(p, state, config={"a": 2})


class _Bomb(nn.Module):
    """Outputs NaN once its scalar ``fuse`` parameter exceeds 0.5 (the optimiser below raises it by 0.2 per step)."""

    num_classes = None

    @nn.compact
    def __call__(self, x, log_snr, labels=None):
        fuse = self.param("fuse", nn.initializers.zeros, ())
        out = nn.Dense(x.shape[-1])(x) + 0.0 * log_snr[..., None]
        return out + jnp.where(jax.lax.stop_gradient(fuse) > 0.5, jnp.nan, 0.0)


def test_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path):
    sched = jo.OU()
    obj = DSMObjective(ScoreModel(_Bomb(), sched), time_distribution=UniformLogSNRDistribution.between(sched, 0.01, 3.0))
    light_fuse = optax.stateless(lambda u, p: {**u, "fuse": u["fuse"] + 0.2})
    opt = optax.chain(optax.sgd(1e-3), light_fuse)
    x = toy_2d("moons", 32, seed=0)
    # fuse after steps 0,1,2 = 0.2, 0.4, 0.6: the loss at step 3 is NaN; checkpoints at steps 2 (and would be 4)
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss or update at step 3.*last good checkpoint \(step 2\)") as info:
        fit(obj, x, steps=10, batch_size=16, optimizer=opt, checkpoint=Checkpointing(tmp_path, every=2))
    assert info.value.step == 3
    assert int(info.value.state.step) == 3
    target = init_train_state(obj.model, opt, jnp.asarray(x[:1]), key=jax.random.key(0))
    saved, _, hist = load_checkpoint(tmp_path / CHECKPOINT_NAME, target)
    assert int(saved.step) == 2 and len(hist["losses"]) == 2
    assert np.all(np.isfinite(hist["losses"]))
    assert all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree.leaves(saved.params))


# ---------------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------------


TINY = ["--num-points", "96", "--features", "16", "--depth", "1", "--batch-size", "32", "--eval-every", "5",
        "--checkpoint-every", "5", "--eval-samples", "128", "--no-progress"]


def test_cli_train_writes_png_checkpoint_and_resumes(tmp_path, capsys):
    from jaxotdm.cli import main

    out = tmp_path / "run"
    assert main(["train", "--data", "eight_gaussians", "--steps", "10", "--out", str(out), *TINY]) == 0
    for name in ("loss.png", CHECKPOINT_NAME, "metrics.json"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 10 and [e["step"] for e in metrics["evaluations"]] == [5, 10]
    assert "score relative error" in capsys.readouterr().out
    # refusing to overwrite, then resuming to more steps
    assert main(["train", "--data", "eight_gaussians", "--steps", "15", "--out", str(out), *TINY]) == 2
    assert "already holds a checkpoint" in capsys.readouterr().err
    assert main(["train", "--data", "eight_gaussians", "--steps", "15", "--out", str(out), "--resume", *TINY]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 15 and [e["step"] for e in metrics["evaluations"]] == [5, 10, 15]
    # a changed setting is a clear error on resume (a learning rate is not: see the next test)
    assert main(["train", "--data", "eight_gaussians", "--steps", "20", "--out", str(out), "--resume", *TINY,
                 "--label-dropout", "0.5"]) == 2
    assert "different configuration" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv,match",
    [
        (["--data", "{tmp}/nope.npy"], "does not exist"),
        (["--data", "{tmp}/pts.npy", "--network", "unet"], "needs image data"),
        (["--data", "digits", "--image-shape", "4,4,1"], "does not match data dimension 64"),
        (["--data", "moons", "--class-conditional"], "needs labels"),
        (["--data", "weird"], "`--data` must be"),
    ],
    ids=["missing-file", "unet-on-points", "bad-image-shape", "no-labels", "unknown-data"],
)
def test_cli_rejects_bad_inputs(tmp_path, capsys, argv, match):
    from jaxotdm.cli import main

    np.save(tmp_path / "pts.npy", np.zeros((10, 5)))
    argv = [a.format(tmp=tmp_path) for a in argv]
    assert main(["train", *argv, "--steps", "2", "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    assert match in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------
# Safe stops and resumes (issue 13, item 4 and the NaN-stop advice)
# ---------------------------------------------------------------------------------------------------


def test_fit_refuses_to_overwrite_a_checkpoint(tmp_path):
    obj = _small_objective()
    x = toy_2d("moons", 40, seed=0)
    first = fit(obj, x, steps=4, batch_size=16, checkpoint=Checkpointing(tmp_path), seed=1)
    with pytest.raises(ValueError, match="already holds a checkpoint.*resume=True.*overwrite=True"):
        fit(obj, x, steps=4, batch_size=16, checkpoint=Checkpointing(tmp_path), seed=2)
    target = init_train_state(obj.model, default_optimizer_for(1e-3), x[:1], key=jax.random.key(0))
    kept, cfg, _ = load_checkpoint(tmp_path / CHECKPOINT_NAME, target)
    assert cfg["seed"] == 1 and _leaves_equal(kept, first.state)  # untouched
    again = fit(obj, x, steps=4, batch_size=16, checkpoint=Checkpointing(tmp_path, overwrite=True), seed=2)
    kept, cfg, _ = load_checkpoint(tmp_path / CHECKPOINT_NAME, target)
    assert cfg["seed"] == 2 and _leaves_equal(kept, again.state)


def test_fit_on_float64_data(tmp_path):
    # float64 data used to fail inside the device loop (the two lax.cond branches recorded the gradient
    # norm in different dtypes), so float64 training and its refusal to overwrite never ran.
    obj = _small_objective()
    x = np.asarray(toy_2d("moons", 40, seed=0), np.float64)
    first = fit(obj, x, steps=4, batch_size=16, checkpoint=Checkpointing(tmp_path), seed=1)
    assert first.losses.dtype == np.float64 and np.all(np.isfinite(first.losses))
    with pytest.raises(ValueError, match="already holds a checkpoint"):
        fit(obj, x, steps=1, batch_size=16, checkpoint=Checkpointing(tmp_path), seed=1)
    resumed = fit(obj, x, steps=6, batch_size=16, checkpoint=Checkpointing(tmp_path, resume=True), seed=1)
    assert int(resumed.state.step) == 6


def test_final_checkpoint_is_written_before_the_last_evaluation(tmp_path):
    obj = _small_objective()
    x = toy_2d("moons", 40, seed=0)

    def eval_fn(state):
        if int(state.step) == 6:
            raise RuntimeError("evaluation failed")
        return {"step_seen": float(state.step)}

    with pytest.raises(RuntimeError, match="evaluation failed"):
        fit(obj, x, steps=6, batch_size=16, checkpoint=Checkpointing(tmp_path, every=4),
            monitor=Monitoring(eval_every=4, eval_fn=eval_fn))
    target = init_train_state(obj.model, default_optimizer_for(1e-3), x[:1], key=jax.random.key(0))
    saved, _, hist = load_checkpoint(tmp_path / CHECKPOINT_NAME, target)
    assert int(saved.step) == 6 and len(hist["losses"]) == 6  # the final state survived the failing evaluation
    assert [e["step"] for e in hist["evaluations"]] == [4]


class _Fuse(nn.Module):
    """Predicts the noise as the constant ``fuse - 10`` and outputs NaN once ``fuse > 0.5``. The loss
    ``(fuse - 10)^2 + 1`` pulls ``fuse`` up; Adam moves it by the learning rate per step (a gradient of constant
    sign), so a high rate blows up within a few steps and a low one does not."""

    num_classes = None

    @nn.compact
    def __call__(self, x, log_snr, labels=None):
        fuse = self.param("fuse", nn.initializers.zeros, ())
        out = jnp.zeros_like(x) + 0.0 * log_snr[..., None] + (fuse - 10.0)
        return out + jnp.where(jax.lax.stop_gradient(fuse) > 0.5, jnp.nan, 0.0)


def test_nan_stop_then_resume_with_a_lower_learning_rate(tmp_path):
    sched = jo.OU()
    obj = DSMObjective(ScoreModel(_Fuse(), sched), time_distribution=UniformLogSNRDistribution.between(sched, 0.01, 3.0))
    x = toy_2d("moons", 32, seed=0)
    with pytest.raises(NonFiniteLossError, match=r"last good checkpoint \(step 2\).*lower learning rate") as info:
        fit(obj, x, steps=10, batch_size=16, learning_rate=0.2, checkpoint=Checkpointing(tmp_path, every=2))
    assert info.value.step == 3
    res = fit(obj, x, steps=10, batch_size=16, learning_rate=0.01,
              checkpoint=Checkpointing(tmp_path, every=2, resume=True))
    assert res.resumed_from == 2 and int(res.state.step) == 10 and np.all(np.isfinite(res.losses))
    assert res.history["learning_rates"] == [[0, 0.2], [2, 0.01]]
    # anything but the learning rate must still match
    with pytest.raises(CheckpointError, match="batch_size"):
        fit(obj, x, steps=12, batch_size=8, learning_rate=0.01, checkpoint=Checkpointing(tmp_path, resume=True))


class _Diverge(nn.Module):
    """A finite loss that jumps by a factor of about 1e6 once ``fuse`` (raised by 0.2 per step) exceeds 0.5."""

    num_classes = None

    @nn.compact
    def __call__(self, x, log_snr, labels=None):
        fuse = self.param("fuse", nn.initializers.zeros, ())
        out = nn.Dense(x.shape[-1])(x) + 0.0 * log_snr[..., None]
        return out + jnp.where(jax.lax.stop_gradient(fuse) > 0.5, 1e3, 0.0)


def test_a_diverged_loss_writes_no_checkpoint(tmp_path):
    sched = jo.OU()
    obj = DSMObjective(ScoreModel(_Diverge(), sched), time_distribution=UniformLogSNRDistribution.between(sched, 0.01, 3.0))
    opt = optax.chain(optax.sgd(1e-3), optax.stateless(lambda u, p: {**u, "fuse": u["fuse"] + 0.2}))
    x = toy_2d("moons", 32, seed=0)
    with pytest.raises(NonFiniteLossError, match="diverged at step 6.*last good checkpoint \\(step 2\\)"):
        fit(obj, x, steps=6, batch_size=16, optimizer=opt, checkpoint=Checkpointing(tmp_path, every=2))
    target = init_train_state(obj.model, opt, jnp.asarray(x[:1]), key=jax.random.key(0))
    saved, _, hist = load_checkpoint(tmp_path / CHECKPOINT_NAME, target)
    assert int(saved.step) == 2 and max(hist["losses"]) < 1e3  # the kept checkpoint predates the divergence


def test_fit_synchronises_with_the_host_once_per_chunk():
    obj = _small_objective()
    x = toy_2d("moons", 64, seed=0)
    calls = []
    res = fit(obj, x, steps=25, batch_size=16, monitor=Monitoring(log_every=10, callback=lambda k, m: calls.append(k)))
    assert calls == [10, 20, 25] and res.losses.shape == (25,)
    one_chunk = fit(obj, x, steps=25, batch_size=16, monitor=Monitoring(log_every=100))
    np.testing.assert_array_equal(res.losses, one_chunk.losses)  # chunking changes nothing


# ---------------------------------------------------------------------------------------------------
# ScoreModel / LearnedScore input checks (issue 13, item 8)
# ---------------------------------------------------------------------------------------------------


def test_score_model_rejects_bad_labels_and_times():
    sched = jo.VPLinear()
    model = ScoreModel(MLP(features=8, depth=1, num_classes=3), sched)
    params = model.init(jax.random.key(0), jnp.zeros((1, 2)), labels=jnp.zeros((1,), jnp.int32))
    x = jnp.ones((2, 2))
    for bad in (4, -1, [0, 7]):
        with pytest.raises(ValueError, match="`labels` must be in"):
            model.score(params, x, 0.5, jnp.asarray(bad))
        with pytest.raises(ValueError, match="`labels` must be in"):
            model.bind(params, labels=bad)
    assert model.score(params, x, 0.5, jnp.asarray(3)).shape == (2, 2)  # 3 = the null label
    with pytest.raises(Exception, match="labels"):  # inside jit: an equinox run-time error
        jax.block_until_ready(jax.jit(lambda lab: model.score(params, x, 0.5, lab))(jnp.asarray([1, 9])))
    for t in (0.0, -0.5, float("nan")):
        with pytest.raises(ValueError, match="`t`"):
            model.bind(params)(x, t)
    with pytest.raises(ValueError, match="guidance"):
        model.bind(params, labels=1, guidance=float("nan"))
    plain = ScoreModel(MLP(features=8, depth=1), sched)
    with pytest.raises(ValueError, match="class-conditional"):
        plain.bind(plain.init(jax.random.key(0), jnp.zeros((1, 2))), guidance=1.0)
