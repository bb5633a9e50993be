"""``jaxotdm train``: every bad option fails before training and names the option; ``--data`` is an alias of
``--dataset``; a run resumes with a lower ``--lr``; ``--overwrite`` starts afresh; a larger ``--batch-size``
than the data is an error (not clipped)."""

import json

import pytest

import jaxotdm.cli as cli
from jaxotdm import training as T
from jaxotdm.cli import train as TR

TINY = ["--num-points", "96", "--features", "16", "--depth", "1", "--embedding-dim", "16", "--batch-size", "32",
        "--eval-every", "5", "--checkpoint-every", "5", "--eval-samples", "64", "--log-every", "5", "--no-progress"]

BAD = [
    (["--steps", "0"], "--steps"),
    (["--batch-size", "0"], "--batch-size"),
    (["--depth", "-1"], "--depth"),
    (["--features", "0"], "--features"),
    (["--max-train", "-1"], "--max-train"),
    (["--eval-samples", "0"], "--eval-samples"),
    (["--eval-every", "0"], "--eval-every"),
    (["--checkpoint-every", "0"], "--checkpoint-every"),
    (["--lr", "nan"], "--lr"),
    (["--lr", "-1"], "--lr"),
    (["--ema-decay", "1"], "--ema-decay"),
    (["--label-dropout", "1"], "--label-dropout"),
    (["--test-fraction", "0"], "--test-fraction"),
    (["--p-std", "0"], "--p-std"),
    (["--t-min", "0"], "--t-min"),
    (["--warmup-steps", "-1"], "--warmup-steps"),
    (["--channel-mult", "1,x"], "--channel-mult"),
    (["--scale", "0,1"], "--scale"),
    (["--batch-size", "5000"], "--batch-size"),
    (["--resume", "--overwrite"], "--resume"),
    (["--resume"], "--resume"),
]


@pytest.mark.parametrize("extra,flag", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_options_fail_before_training(tmp_path, capsys, monkeypatch, extra, flag):
    def boom(*a, **k):  # pragma: no cover - reached only if validation let the option through
        raise AssertionError("training started")

    monkeypatch.setattr(T, "fit", boom)
    args = ["train", "--dataset", "moons", "--out", str(tmp_path / "run"), "--num-points", "96", "--no-progress"]
    rc = cli.main([*args, *extra])
    err = capsys.readouterr().err
    assert rc == 2 and flag in err, err


def test_dataset_alias_and_defaults():
    parser = cli.build_parser()
    args = parser.parse_args(["train", "--data", "moons", "--out", "x"])
    s = TR.resolve(args)
    assert args.dataset == "moons" and s["kind"] == "toy"
    assert s["batch_size"] == TR.DATASET_DEFAULTS["points"]["batch_size"]
    args = parser.parse_args(["train", "--out", "x"])
    s = TR.resolve(args)
    assert args.dataset == "digits" and s == {**TR.DATASET_DEFAULTS["digits"], "kind": "digits"}
    args = parser.parse_args(["train", "--dataset", "digits", "--data", "moons", "--out", "x"])
    with pytest.raises(ValueError, match="--dataset"):
        TR.resolve(args)


def test_resume_with_a_lower_learning_rate_and_overwrite(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "--dataset", "moons", "--steps", "10", "--out", str(out), *TINY]) == 0
    assert cli.main(["train", "--dataset", "moons", "--steps", "15", "--out", str(out), "--resume", "--lr", "5e-4",
                     *TINY]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 15 and metrics["learning_rates"] == [[0, 0.001], [10, 0.0005]]
    assert json.loads((out / "model.json").read_text())["training"]["steps"] == 15
    capsys.readouterr()
    assert cli.main(["train", "--dataset", "moons", "--steps", "5", "--out", str(out), *TINY]) == 2
    assert "--resume" in capsys.readouterr().err
    assert cli.main(["train", "--dataset", "moons", "--steps", "5", "--out", str(out), "--overwrite", *TINY]) == 0
    assert json.loads((out / "metrics.json").read_text())["steps"] == 5
