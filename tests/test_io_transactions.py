"""Outputs as transactions (issue 24; issue 23 items 1 and 9): a kill, a full disk, Ctrl-C or a second writer
never leaves a folder that loads and lies.

Faults are injected with the ``JAXOTDM_FAULT`` hook of :mod:`jaxotdm._io` (``exit:<point>`` ends the process
as a kill would, ``enospc:<point>`` raises "No space left on device" there), and CLI behaviour that depends
on the real entry point runs it in a subprocess.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxotdm as jo
import jaxotdm._io as io
from jaxotdm import cli
from jaxotdm.networks import MLP, CheckpointError, ScoreModel, load_model, load_split, save_model

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "JAXOTDM_CACHE_DIR": ""}


def _model(features=8, fill=0.0):
    model = ScoreModel(MLP(features=features, depth=1, embedding=jo.networks.SinusoidalEmbedding(8)), jo.VPLinear(),
                       jo.networks.DataPrediction())
    params = model.init(jax.random.key(features), jnp.zeros((1, 2)))
    return model, jax.tree.map(lambda p: jnp.full_like(p, fill), params)  # zero: samples stay at the prior's scale


def _save(folder, features=8, fill=0.0):
    model, params = _model(features, fill)
    return save_model(folder, model, params, data={"dim": 2})


def _python(code: str, env=None, **kwargs):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env={**ENV, **(env or {})}, text=True,
                          capture_output=True, timeout=120, **kwargs)


SAVE_IN_CHILD = """
    import jax, jax.numpy as jnp, jaxotdm as jo
    from jaxotdm.networks import MLP, ScoreModel, save_model
    model = ScoreModel(MLP(features=16, depth=1, embedding=jo.networks.SinusoidalEmbedding(8)), jo.VPLinear(),
                       jo.networks.DataPrediction())
    save_model({folder!r}, model, model.init(jax.random.key(16), jnp.zeros((1, 2))), data={{"dim": 2}})
"""


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".txn-" in p.name or ".commit-" in p.name or "tmp" in p.name)


# ------------------------------------------------------------------------------------------ 1, 5: kills
@pytest.mark.parametrize(("point", "features"), [("commit", 8), ("move:params.msgpack", 16)],
                         ids=["before-commit-point:old", "between-the-renames:new"])
def test_a_kill_while_replacing_a_model_folder_leaves_the_old_or_the_new_one(tmp_path, point, features):
    """Issue 24 case 1: a kill between the renames of `--overwrite` left new params beside the old
    model.json, which loaded and generated garbage. Now the folder loads as the old model (kill before the
    commit point) or the new one (after it: the next reader completes the move), never a mix."""
    folder = tmp_path / "m"
    _save(folder, features=8)
    child = _python(SAVE_IN_CHILD.format(folder=str(folder)), env={io.FAULT_ENV: f"exit:{point}"})
    assert child.returncode == io.FAULT_EXIT_CODE, child.stderr  # the hook killed it at that write step
    saved = load_model(folder)  # no error: model.json and params.msgpack of one run (shapes are checked)
    assert saved.model.network.features == features
    io.verify_set(folder, "model")
    _save(folder, features=8)  # the next writer sweeps what the killed run left
    assert _leftovers(folder) == []


def test_model_json_and_params_are_tied_together(tmp_path):
    """Issue 24 case 1, the other way round: params of one run beside model.json of another is refused."""
    a, b = tmp_path / "a", tmp_path / "b"
    _save(a, 8)
    _save(b, 8, fill=1.0)  # the same network, other parameters: shapes cannot tell them apart
    (a / "params.msgpack").write_bytes((b / "params.msgpack").read_bytes())
    with pytest.raises(CheckpointError, match="params.msgpack"):
        load_model(a)


# ------------------------------------------------------------------------------------------ 3: integrity
@pytest.mark.parametrize("edit", ["sigma_data", "schedule", "data.scale"])
def test_an_edited_model_json_is_refused_naming_the_file(tmp_path, capsys, edit):
    """Issue 24 case 3: edits to sigma_data, the schedule or data.scale loaded silently."""
    folder = _save(tmp_path / "m")
    doc = json.loads((folder / "model.json").read_text())
    if edit == "sigma_data":
        doc["sigma_data"] = 0.7
    elif edit == "schedule":
        doc["schedule"]["beta_max"] = 25.0
    else:
        doc["data"]["scale"] = [0.0, 255.0]
    (folder / "model.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="model.json"):
        load_model(folder)
    rc = cli.main(["generate", "--checkpoint", str(folder), "--out", str(tmp_path / "s.npy"), "--nfe", "2"])
    err = capsys.readouterr().err
    assert rc == 2 and "model.json" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "s.npy").exists()


# ------------------------------------------------------------------------------------------ 2: concurrency
HOLD_LOCK = """
    import sys, time, jaxotdm._io as io
    with io.locked({folder!r}, {set!r}):
        print("locked", flush=True)
        time.sleep(60)
"""


@pytest.fixture
def holder(tmp_path):
    procs = []

    def start(folder, set_name):
        p = subprocess.Popen([sys.executable, "-c", textwrap.dedent(HOLD_LOCK.format(folder=str(folder), set=set_name))],
                             env=ENV, stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == "locked"
        procs.append(p)
        return p

    yield start
    for p in procs:
        p.kill()
        p.wait()
        p.stdout.close()


def test_a_second_train_on_the_same_out_is_refused_at_once(tmp_path, holder, capsys):
    """Issue 24 case 2: two `train` runs on one --out both 'succeeded' and mixed their files."""
    out = tmp_path / "run"
    p = holder(out, "model")
    t0 = time.perf_counter()
    rc = cli.main(["train", "--dataset", "moons", "--num-points", "64", "--steps", "2", "--out", str(out),
                   "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and f"pid {p.pid}" in err and "--out" in err and len(err.strip().splitlines()) == 1, err
    assert time.perf_counter() - t0 < 20
    assert not (out / "checkpoint.msgpack").exists() and not (out / "model.json").exists()


def test_a_second_generate_on_the_same_out_is_refused(tmp_path, holder, capsys):
    """Issue 24 case 2: two `generate` runs on one --out: one result was silently lost."""
    model = _save(tmp_path / "m")
    p = holder(tmp_path, "s")
    rc = cli.main(["generate", "--checkpoint", str(model), "--out", str(tmp_path / "s.npy"), "--nfe", "2",
                   "--num-samples", "3"])
    err = capsys.readouterr().err
    assert rc == 2 and f"pid {p.pid}" in err, err
    assert not (tmp_path / "s.npy").exists()
    p.kill()
    p.wait()  # the holder died: its lock file stays, and does not block
    assert (tmp_path / ".s.lock").exists()
    assert cli.main(["generate", "--checkpoint", str(model), "--out", str(tmp_path / "s.npy"), "--nfe", "2",
                     "--num-samples", "3"]) == 0
    assert np.load(tmp_path / "s.npy").shape == (3, 2)
    io.verify_set(tmp_path, "s")


def test_fit_locks_its_checkpoint_folder(tmp_path, holder):
    from jaxotdm.data import toy_2d
    from jaxotdm.training import Checkpointing, DSMObjective, fit

    p = holder(tmp_path, "model")
    obj = DSMObjective(_model()[0])
    with pytest.raises(io.OutputBusyError, match=f"pid {p.pid}"):
        fit(obj, toy_2d("moons", 32), steps=2, batch_size=16, checkpoint=Checkpointing(tmp_path))


# ------------------------------------------------------------------------------------------ 4: final evaluation
def test_the_final_evaluation_is_in_the_final_checkpoint(tmp_path, monkeypatch):
    """Issue 24 case 4: the final checkpoint was written, then rewritten with the final evaluation; a kill
    between the two lost it. Now the one write of the final checkpoint already holds it."""
    from jaxotdm.data import toy_2d

    F = sys.modules["jaxotdm.training.fit"]  # the module (the package exports the function `fit`)

    writes = []
    real = F.save_checkpoint

    def spy(path, state, *, config=None, history=None):
        writes.append((int(state.step), [e["step"] for e in history["evaluations"]]))
        return real(path, state, config=config, history=history)

    monkeypatch.setattr(F, "save_checkpoint", spy)
    obj = F.DSMObjective(_model()[0])
    F.fit(obj, toy_2d("moons", 32), steps=4, batch_size=16, checkpoint=F.Checkpointing(tmp_path, every=2),
          monitor=F.Monitoring(eval_every=2, eval_fn=lambda s: {"v": 1.0}, log_every=2))
    assert writes == [(2, [2]), (4, [2, 4])]


# ------------------------------------------------------------------------------------------ 5, 6, 8: full disk
def test_a_full_disk_while_writing_samples_keeps_the_old_set_and_names_the_file(tmp_path, capsys, monkeypatch):
    """Issue 24 case 5: a full disk during `generate --overwrite` left a new s.npy beside the old s.json;
    case 8: the error was a traceback naming no file."""
    model = _save(tmp_path / "m")
    args = ["generate", "--checkpoint", str(model), "--out", str(tmp_path / "s.npy"), "--nfe", "2", "--no-progress"]
    assert cli.main([*args, "--num-samples", "3"]) == 0
    before = {n: (tmp_path / n).read_bytes() for n in ("s.npy", "s.json")}
    capsys.readouterr()
    monkeypatch.setenv(io.FAULT_ENV, "enospc:write:s.json")
    rc = cli.main([*args, "--num-samples", "5", "--overwrite"])
    err = capsys.readouterr().err
    assert rc == cli.EXIT_IO and "s.json" in err and "No space left" in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert {n: (tmp_path / n).read_bytes() for n in ("s.npy", "s.json")} == before
    io.verify_set(tmp_path, "s")
    assert _leftovers(tmp_path) == []


def test_a_full_disk_on_a_figure_keeps_the_model(tmp_path, capsys, monkeypatch):
    """Issue 24 case 6: a full disk at the end of training wrote a 0-byte loss.png and no model; loss.png and
    metrics.json were written in place, before the model."""
    monkeypatch.setenv(io.FAULT_ENV, "enospc:write:loss.png")
    out = tmp_path / "run"
    rc = cli.main(["train", "--dataset", "moons", "--num-points", "64", "--features", "8", "--depth", "1",
                   "--embedding-dim", "8", "--steps", "4", "--batch-size", "16", "--eval-samples", "16",
                   "--log-every", "2", "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 0 and "loss.png" in err and "warning" in err, err
    assert not (out / "loss.png").exists()
    saved = load_model(out)
    assert saved.info["steps"] == 4
    assert json.loads((out / "metrics.json").read_text())["steps"] == 4
    assert "metrics.json" in io.verify_set(out, "model")["files"]


def test_an_unwritable_out_is_refused_before_the_work(tmp_path, capsys):
    """Issue 24 case 8: a bad --out was found only after training (train, generate)."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    model = _save(tmp_path / "m")
    t0 = time.perf_counter()
    rc = cli.main(["train", "--dataset", "moons", "--steps", "100000", "--out", str(blocker / "run"),
                   "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "--out" in err and str(blocker / "run") in err and len(err.strip().splitlines()) == 1, err
    rc = cli.main(["generate", "--checkpoint", str(model), "--out", str(blocker / "s.npy")])
    err = capsys.readouterr().err
    assert rc == 2 and "--out" in err, err
    assert time.perf_counter() - t0 < 20


def test_a_corrupt_training_split_is_one_error_naming_the_file(tmp_path):
    """Issue 24 case 8: a corrupt train_data.npz gave a long traceback naming no file."""
    folder = tmp_path / "m"
    model, params = _model()
    with io.Transaction(folder, "model") as txn:
        jo.networks.saving.write_model_files(
            txn, model, params, extra=None,
            data={"dim": 2, "source": {"kind": "file"}, "split": {"test_fraction": 0.5, "seed": 0}})
        txn.write_bytes("train_data.npz", b"PK\x03\x04 not a zip")
        txn.commit()
    with pytest.raises(CheckpointError, match="train_data.npz"):
        load_split(folder)


# ------------------------------------------------------------------------------------------ 7: temporaries
def test_stale_temporaries_of_a_killed_run_are_swept(tmp_path):
    """Issue 24 case 7: half-written temporaries stayed forever."""
    folder = tmp_path / "m"
    folder.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    (folder / f".checkpoint.msgpack.{dead}.abcd1234.jaxotdm-tmp").write_bytes(b"x" * 100)
    (folder / "checkpoint.msgpack.k2j3h4q_.tmp").write_bytes(b"x" * 100)  # the temporary of jaxotdm <= 70d0e2c
    (folder / f".model.txn-{dead}-abcd1234-0").mkdir()
    (folder / f".model.txn-{dead}-abcd1234-0" / "params.msgpack").write_bytes(b"half")
    child = _python(SAVE_IN_CHILD.format(folder=str(folder)))
    assert child.returncode == 0, child.stderr
    assert _leftovers(folder) == []
    load_model(folder)


def test_a_kill_during_a_single_file_write_leaves_no_file_under_its_name(tmp_path):
    code = f"import jaxotdm._io as io; io.write_atomic({str(tmp_path / 'c.msgpack')!r}, b'x' * 1000)"
    child = _python(code, env={io.FAULT_ENV: "exit:atomic:c.msgpack"})
    assert child.returncode == io.FAULT_EXIT_CODE
    assert not (tmp_path / "c.msgpack").exists()
    with io.locked(tmp_path, "model"):  # the next writer in the folder sweeps the dead run's temporary
        pass
    assert _leftovers(tmp_path) == []


# ------------------------------------------------------------------------------------------ 9: Ctrl-C
def _communicate(proc, timeout=60):
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise


def _wait_for(path: Path, proc, timeout=90.0):
    t0 = time.perf_counter()
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        if time.perf_counter() - t0 > timeout:
            proc.kill()
            proc.communicate()
            raise AssertionError(f"{path} did not appear within {timeout} s")
        time.sleep(0.2)


@pytest.mark.slow
def test_ctrl_c_in_train_checkpoints_and_says_how_to_resume(tmp_path):
    """Issue 24 case 9: Ctrl-C ended `train` with a 35-line traceback and no hint to --resume."""
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "jaxotdm", "train", "--dataset", "moons", "--num-points", "64",
                             "--features", "8", "--depth", "1", "--embedding-dim", "8", "--steps", "1000000",
                             "--batch-size", "16", "--log-every", "20", "--checkpoint-every", "20", "--out", str(out),
                             "--no-progress"], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(out / "checkpoint.msgpack", proc)
    proc.send_signal(signal.SIGINT)
    _, err = _communicate(proc)
    assert proc.returncode == 130, err
    assert "--resume" in err and "Traceback" not in err, err
    assert _leftovers(out) == []
    from jaxotdm._io import read_msgpack

    assert json.loads(read_msgpack(out / "checkpoint.msgpack")["history"])["losses"]


@pytest.mark.slow
def test_ctrl_c_stops_verify_at_once_and_leaves_no_temporaries(tmp_path):
    """Issue 24 case 9: `verify` kept running 39-65 s after the first Ctrl-C."""
    out = tmp_path / "v"
    proc = subprocess.Popen([sys.executable, "-m", "jaxotdm", "verify", "--quick", "--schedules", "ou", "--out",
                             str(out), "--no-progress"], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    _wait_for(out, proc)  # the options were checked and --out made
    time.sleep(8)  # inside the computation
    t0 = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    _, err = _communicate(proc)
    assert time.perf_counter() - t0 < 3.0, err
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert sorted(p.name for p in out.iterdir()) == [".report.lock"]


# ------------------------------------------------------------------------------------------ issue 23, item 1
def test_verify_writes_the_report_before_any_figure_and_keeps_it_when_one_fails(tmp_path, capsys):
    """Issue 23 item 1: a figure named after a --dataset path crashed after minutes, and figures came before
    report.json, so nothing was kept."""
    from jaxotdm.cli import _common as C
    from jaxotdm.cli import verify as V

    assert C.safe_name("/abs/path/points.npy") == "points" and C.safe_name("digits") == "digits"

    def figures(folder):
        (folder / "ok.png").write_bytes(b"png")
        assert sorted(p.name for p in (tmp_path / "v").iterdir() if not p.name.startswith(".")) == [
            "report.json", "report.manifest.json", "report.md"]  # committed before any figure
        raise FileNotFoundError(2, "No such file or directory", str(folder / "convergence_/abs/path.png"))

    with io.locked(tmp_path / "v", "report"):
        V._write(tmp_path / "v", "report", {"timings": {"total_seconds": 1.0}, "x": 1},
                 lambda names: f"figures: {names}", figures, "report.json")
    err = capsys.readouterr().err
    assert "warning" in err and "kept" in err, err
    assert json.loads((tmp_path / "v" / "report.json").read_text())["x"] == 1
    io.verify_set(tmp_path / "v", "report")


@pytest.mark.slow
def test_verify_on_an_absolute_file_path(tmp_path):
    """Issue 23 item 1, end to end through the real entry point: `verify --quick --dataset /abs/points.npy`."""
    data = tmp_path / "data dir" / "points.npy"
    data.parent.mkdir()
    np.save(data, np.random.default_rng(0).normal(size=(12, 2)).astype(np.float32))
    out = tmp_path / "v"
    res = subprocess.run([sys.executable, "-m", "jaxotdm", "verify", "--quick", "--dataset", str(data.resolve()),
                          "--toy", "", "--schedules", "ou", "--num-samples", "64", "--out", str(out),
                          "--no-progress"], env=ENV, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["verdicts"]
    assert (out / "convergence_points.png").is_file()
    io.verify_set(out, "report")


# ------------------------------------------------------------------------------------------ issue 23, item 9
@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_outputs_respect_the_umask(tmp_path, capsys, mask, mode):
    """Issue 23 item 9: outputs were written mode 0600 under umask 022 (tempfile.mkstemp)."""
    old = os.umask(mask)
    try:
        folder = _save(tmp_path / "m")
        assert cli.main(["generate", "--checkpoint", str(folder), "--out", str(tmp_path / "s.npy"), "--nfe", "2",
                         "--num-samples", "3"]) == 0
        io.write_atomic(tmp_path / "c.msgpack", b"x")
        from jaxotdm.cli._common import write_json

        write_json(tmp_path / "r.json", {"a": 1})
    finally:
        os.umask(old)
    files = [p for d in (folder, tmp_path) for p in d.iterdir() if p.is_file() and not p.name.startswith(".")]
    assert {"model.json", "params.msgpack", "s.npy", "s.json", "s.png", "c.msgpack", "r.json"} <= {f.name for f in files}
    assert {f.name: oct(f.stat().st_mode & 0o777) for f in files} == {f.name: oct(mode) for f in files}
