"""Reusable models: ``jaxotdm train`` writes a model folder; ``load_score`` returns a score every sampler, flow
map and OT tool accepts; ``jaxotdm generate`` writes (N, d) samples in the data's own units, a PNG and a JSON
beside them, with the OT prior of Algorithm 2 too; every bad option fails before any sampling."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxotdm as jo
import jaxotdm.cli as cli
from jaxotdm import samplers as SM
from jaxotdm.cli import generate as G
from jaxotdm.networks import LearnedScore, load_model, load_score, load_split

TINY = ["--features", "16", "--depth", "1", "--embedding-dim", "16", "--steps", "20", "--batch-size", "32",
        "--max-train", "120", "--eval-samples", "64", "--log-every", "10", "--checkpoint-every", "10",
        "--no-progress"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("models") / "digits-cond"
    assert cli.main(["train", "--dataset", "digits", "--class-conditional", "--out", str(out), *TINY]) == 0
    return out


def test_model_folder_is_self_describing(model_dir):
    for name in ("model.json", "params.msgpack", "checkpoint.msgpack", "loss.png", "samples.png", "metrics.json"):
        assert (model_dir / name).is_file(), name
    doc = json.loads((model_dir / "model.json").read_text())
    assert doc["network"]["type"] == "MLP" and doc["schedule"]["type"] == "VPLinear"
    assert doc["parametrisation"]["type"] == "EDMPreconditioning" and doc["num_classes"] == 10
    assert doc["data"]["scale"] == [0.0, 16.0] and doc["data"]["shape"] == [8, 8, 1] and doc["data"]["dim"] == 64
    split = load_split(model_dir)
    assert split.train.shape == (120, 64) and split.heldout.shape == (359, 64)
    assert split.train_labels.shape == (120,)
    saved = load_model(model_dir)
    assert saved.model.num_classes == 10 and saved.data["num_train"] == 120


SAMPLERS = [SM.Euler(), SM.Heun(), SM.DDIM(), SM.DPMSolver2(), SM.DPMSolver3(), SM.DPMSolverPP2M(),
            SM.AncestralDDPM(), SM.EulerMaruyama(), SM.PredictorCorrector()]


def test_load_score_drives_every_sampler_flow_and_ot(model_dir):
    score = load_score(model_dir)
    assert isinstance(score, LearnedScore) and score.dim == 64
    sched = score.schedule
    for m in SAMPLERS:
        steps = 50 if m.stochastic else 4  # Euler-Maruyama needs small steps on a VP schedule
        out = SM.sample(m, score, sched, t_start=1.0, t_end=1e-3, num_steps=steps, grid="log_snr",
                        key=jax.random.key(0), shape=(5, 64))
        assert out.points.shape == (5, 64) and bool(jnp.all(jnp.isfinite(out.points))), type(m).__name__
    flow = jo.flow_map(score, sched, jax.random.normal(jax.random.key(1), (4, 64)), 1.0, 0.5, ode=jo.ODESettings(solver="heun", num_steps=4))
    assert flow.points.shape == (4, 64) and bool(jnp.all(jnp.isfinite(flow.points)))
    split = load_split(model_dir)
    prior = SM.prepare_ot_prior(sched, split.train[:40], key=jax.random.key(2), t_prime=0.05, ot_tol=0.3)
    ot = prior.sample(score, key=jax.random.key(3), num_samples=6, nfe=4, t_end=1e-3)
    assert ot.points.shape == (6, 64) and int(ot.nfe) == 4
    # a class-conditional, guided score from the same folder
    guided = load_score(model_dir, labels=3, guidance=1.5)
    assert guided(jnp.zeros((2, 64)), 0.5).shape == (2, 64)


def test_generate_writes_data_units(model_dir, tmp_path):
    out = tmp_path / "s.npy"
    assert cli.main(["generate", "--checkpoint", str(model_dir), "--nfe", "6", "--num-samples", "12",
                     "--out", str(out), "--seed", "4"]) == 0
    x = np.load(out)
    assert x.shape == (12, 64) and x.dtype == np.float32
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["nfe"] == 6 and meta["units"] == "data" and meta["scale"] == [0.0, 16.0]
    # the same draw in the model's space, mapped by 8 (x + 1): the data's 0-16 pixel scale
    score = load_score(model_dir)
    ref = SM.sample(SM.DPMSolverPP2M(), score, score.schedule, t_start=1.0, t_end=1e-3, nfe=6, grid="log_snr",
                    key=jax.random.key(4), shape=jax.ShapeDtypeStruct((12, 64), jnp.float32))
    np.testing.assert_allclose(x, 8.0 * (np.asarray(ref.points) + 1.0), rtol=1e-4, atol=1e-3)
    # --clip keeps pixels in the data's range
    clipped = tmp_path / "c.npy"
    assert cli.main(["generate", "--checkpoint", str(model_dir), "--nfe", "6", "--num-samples", "12",
                     "--out", str(clipped), "--seed", "4", "--clip"]) == 0
    xc = np.load(clipped)
    assert xc.min() >= 0.0 and xc.max() <= 16.0
    np.testing.assert_allclose(xc, np.clip(x, 0, 16), rtol=1e-6)


def test_generate_conditional_and_ot_prior(model_dir, tmp_path):
    out = tmp_path / "c3.npy"
    assert cli.main(["generate", "--checkpoint", str(model_dir), "--class", "3", "--guidance", "1", "--nfe", "4",
                     "--num-samples", "6", "--out", str(out)]) == 0
    assert np.load(out).shape == (6, 64)
    ot = tmp_path / "ot.npy"
    assert cli.main(["generate", "--checkpoint", str(model_dir), "--ot-prior", "--t-prime", "0.05", "--nfe", "4",
                     "--num-samples", "6", "--ot-tol", "0.3", "--class", "3", "--out", str(ot)]) == 0
    meta = json.loads(ot.with_suffix(".json").read_text())
    assert meta["sampler"] == "em" and meta["nfe"] == 4 and meta["ot_prior"] and meta["t_prime"] == 0.05
    assert meta["t_start"] == 0.05  # the chain's real start is T' (issue 23 item 3; it recorded 1.0)
    split = load_split(model_dir)
    assert meta["ot_targets"] == int(np.sum(split.train_labels == 3))  # one OT map onto class 3's points
    assert np.load(ot).shape == (6, 64)


BAD = [
    (["--class", "10"], "--class"),
    (["--class", "-1"], "--class"),
    (["--guidance", "1"], "--guidance"),
    (["--class", "1", "--guidance", "nan"], "--guidance"),
    (["--nfe", "0"], "--nfe"),
    (["--sampler", "heun", "--nfe", "5"], "--nfe"),
    (["--num-samples", "0"], "--num-samples"),
    (["--t-prime", "0.1"], "--t-prime"),
    (["--tau", "0.1"], "--tau"),
    (["--ot-prior", "--t-prime", "2.0"], "--t-prime"),
    (["--ot-prior", "--t-prime", "0.05", "--tau", "-1"], "--tau"),
    (["--ot-tol", "0"], "--ot-tol"),
    (["--t-end", "0"], "--t-end"),
    (["--ot-prior", "--t-prime", "0.05", "--ot-max-points", "1"], "--ot-max-points"),
    (["--ot-prior", "--t-prime", "0.05", "--ot-max-points", "-3"], "--ot-max-points"),
    (["--ot-max-points", "50"], "--ot-max-points"),
    (["--no-ot-cache"], "--no-ot-cache"),
]


@pytest.mark.parametrize("extra,flag", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_generate_bad_options_fail_before_sampling(model_dir, tmp_path, capsys, monkeypatch, extra, flag):
    def boom(*a, **k):  # pragma: no cover - reached only if validation let the option through
        raise AssertionError("sampling started")

    monkeypatch.setattr(G, "generate", boom)
    rc = cli.main(["generate", "--checkpoint", str(model_dir), "--out", str(tmp_path / "x.npy"), *extra])
    err = capsys.readouterr().err
    assert rc == 2 and flag in err, err


def test_generate_bad_checkpoint_and_output(model_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(G, "generate", lambda *a, **k: (_ for _ in ()).throw(AssertionError("sampling started")))
    assert cli.main(["generate", "--checkpoint", str(tmp_path / "nope"), "--out", str(tmp_path / "x.npy")]) == 2
    assert "--checkpoint" in capsys.readouterr().err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.json").write_text("{not json")
    assert cli.main(["generate", "--checkpoint", str(bad), "--out", str(tmp_path / "x.npy")]) == 2
    assert "--checkpoint" in capsys.readouterr().err
    (tmp_path / "exists.npy").write_bytes(b"")
    assert cli.main(["generate", "--checkpoint", str(model_dir), "--out", str(tmp_path / "exists.npy")]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert cli.main(["generate", "--checkpoint", str(model_dir), "--out", str(tmp_path / "x.txt")]) == 2
    assert "--out" in capsys.readouterr().err


def test_generate_class_on_unconditional_model(tmp_path, capsys):
    out = tmp_path / "toy"
    assert cli.main(["train", "--dataset", "moons", "--num-points", "64", "--out", str(out), *TINY]) == 0
    assert cli.main(["generate", "--checkpoint", str(out), "--class", "0", "--out", str(tmp_path / "x.npy")]) == 2
    assert "not class-conditional" in capsys.readouterr().err
    assert cli.main(["generate", "--checkpoint", str(out), "--num-samples", "7", "--nfe", "4",
                     "--out", str(tmp_path / "y.npy")]) == 0
    y = np.load(tmp_path / "y.npy")
    assert y.shape == (7, 2)  # toy points have no pixel scale: the model's own units
    assert json.loads((tmp_path / "y.json").read_text())["units"] == "model"


def test_checkpoint_pointing_at_a_file_inside_the_model_folder_names_the_folder(model_dir, tmp_path, capsys):
    """Issue 23 item 7: `--checkpoint runs/x/model.json` said only "does not exist or is not a folder"."""
    rc = cli.main(["generate", "--checkpoint", str(model_dir / "model.json"), "--out", str(tmp_path / "x.npy")])
    err = capsys.readouterr().err
    assert rc == 2 and "`--checkpoint`" in err and "is a file, not a model folder" in err, err
    assert f"pass the folder that holds it, {str(model_dir)!r}" in err, err


@pytest.mark.slow
def test_generate_ot_prior_shows_progress_and_records_the_real_start_time(model_dir, tmp_path):
    """Issue 23 item 3, through the real entry point: `generate --ot-prior` printed nothing during the OT solve
    (minutes on real data), `--no-progress` was "accepted for symmetry", and the JSON recorded the schedule's
    start time although the chain started at T'."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), "JAXOTDM_CACHE_DIR": ""}
    base = [sys.executable, "-m", "jaxotdm", "generate", "--checkpoint", str(model_dir), "--ot-prior", "--t-prime",
            "0.05", "--nfe", "2", "--num-samples", "4", "--ot-tol", "0.3", "--no-ot-cache"]
    shown = subprocess.run([*base, "--out", str(tmp_path / "a.npy")], capture_output=True, text=True, env=env,
                           timeout=600)
    assert shown.returncode == 0, shown.stderr
    assert "OT solve" in shown.stderr and "iteration 1:" in shown.stderr, shown.stderr
    assert "sampling 4 x 64" in shown.stderr, shown.stderr
    meta = json.loads((tmp_path / "a.json").read_text())
    assert meta["t_start"] == 0.05 == meta["t_prime"]
    quiet = subprocess.run([*base, "--no-progress", "--out", str(tmp_path / "b.npy")], capture_output=True,
                           text=True, env=env, timeout=600)
    assert quiet.returncode == 0, quiet.stderr
    assert "OT solve" not in quiet.stderr and "sampling" not in quiet.stderr, quiet.stderr
    assert "wrote" in quiet.stdout


def test_generate_progress_goes_to_stderr_and_no_progress_silences_it(capsys):
    """Issue 23 item 3 (fast, in-process): the OT solve reports every iteration on stderr through a CLI-side
    callback; `--no-progress` silences it (the library prints nothing either way)."""
    from argparse import Namespace

    from jaxotdm.ot import Progress

    say, ot_progress = G._reporter(Namespace(no_progress=False, ot_tol=0.1))
    say("hello")
    ot_progress(Progress(3, 1024, 0.25, 4096.0, "newton"))
    err = capsys.readouterr().err
    assert "hello" in err and "OT solve (newton) iteration 3" in err and "0.25" in err
    say, ot_progress = G._reporter(Namespace(no_progress=True, ot_tol=0.1))
    say("hello")
    assert ot_progress is None and capsys.readouterr().err == ""


def test_generate_ot_max_points_and_the_saved_prior_is_reused(model_dir, tmp_path, monkeypatch):
    """Issue 22 item 3: `--ot-max-points` solves onto a random subset (recorded in the JSON); the solved prior is
    saved in the model folder and a second call with the same problem does not solve again (same samples);
    another subset size is another problem."""
    base = ["generate", "--checkpoint", str(model_dir), "--ot-prior", "--t-prime", "0.05", "--nfe", "2",
            "--num-samples", "5", "--ot-tol", "0.3", "--seed", "3", "--no-progress"]
    first = tmp_path / "first.npy"
    assert cli.main([*base, "--ot-max-points", "30", "--out", str(first)]) == 0
    meta = json.loads(first.with_suffix(".json").read_text())
    n_train = len(load_split(model_dir).train)
    assert meta["ot_max_points"] == 30 and meta["ot_targets"] == 30 and meta["ot_training_points"] == n_train
    assert meta["ot_subset"] == f"random subset of 30 of the {n_train} training points (seed 3)"
    assert meta["ot_prior_reused"] is False
    saved = model_dir / "ot_priors" / (meta["ot_prior_file"].rsplit("/", 1)[-1])
    assert saved.is_file() and saved.parent == model_dir / "ot_priors"

    def no_solve(*a, **k):
        raise AssertionError("the OT problem was solved again")

    monkeypatch.setattr(SM, "prepare_ot_prior", no_solve)
    second = tmp_path / "second.npy"
    assert cli.main([*base, "--ot-max-points", "30", "--out", str(second)]) == 0
    meta2 = json.loads(second.with_suffix(".json").read_text())
    assert meta2["ot_prior_reused"] is True and meta2["ot_prior_file"] == meta["ot_prior_file"]
    assert meta2["ot_certificate_max_relative_error"] == meta["ot_certificate_max_relative_error"]
    np.testing.assert_array_equal(np.load(second), np.load(first))
    with pytest.raises(AssertionError, match="solved again"):  # another subset: another problem, solved
        cli.main([*base, "--ot-max-points", "31", "--out", str(tmp_path / "third.npy")])
    with pytest.raises(AssertionError, match="solved again"):  # --no-ot-cache solves anyway
        cli.main([*base, "--ot-max-points", "30", "--no-ot-cache", "--out", str(tmp_path / "fourth.npy")])
