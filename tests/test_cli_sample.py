"""``jaxotdm sample`` at tiny size: writes the report (conclusion, sanity checks, table with paired intervals,
validity table), the JSON, the figure and one PNG grid per row; refuses bad options before any work."""

import json

import numpy as np
import pytest

import jaxotdm.cli as cli


@pytest.mark.slow  # 118 s on 2 cores (digits: a classifier, ten classes, image grids); the labelled-points run
# below keeps the same pipeline in the default run
def test_cli_sample_tiny(tmp_path):
    out = tmp_path / "sample"
    rc = cli.main([
        "sample", "--train-size", "30", "--num-samples", "20", "--repetitions", "2", "--samplers", "ddim,ddpm",
        "--nfe", "4", "--ddpm-steps", "8", "--t-prime", "0.1", "--tau", "0", "--ot-nfe", "4",
        "--classifier-steps", "50", "--out", str(out), "--no-progress",
    ])
    assert rc == 0
    table = (out / "table3.md").read_text()
    assert "near copies" in table and "OT + AncestralDDPM" in table
    assert "## Sanity checks" in table and "## Metric validity at this sample size" in table
    doc = json.loads((out / "table3.json").read_text())
    assert doc["repetitions"] == 2 and doc["num_samples"] == 20
    rows = [r for r in doc["rows"] if r["kind"] != "control"]
    assert {r["method"] for r in rows} == {"DDIM", "DDPM", "OT + AncestralDDPM"}
    assert any(r["conditional"] for r in rows)
    for r in doc["rows"]:
        assert 0.0 <= r["near_copy_fraction"] <= 1.0
        assert len(r["metrics"]["KID (classifier features)"]["per_repetition"]) == 2
        if r["method"].startswith("OT"):
            assert r["nfe"] == 4  # the OT step adds no score evaluation
        if r["kind"] != "control" and r["verdict_vs_long_chain"] is not None:
            assert r["verdict_vs_long_chain"] in ("better", "worse", "not resolvable at this size")
    assert {c["check"] for c in doc["sanity"]} >= {"the memorisation row is flagged by the near-copy column"} or \
        doc["deciding_metric"] is None
    assert len(list((out / "grids").glob("*.png"))) == len(doc["rows"])
    assert (out / "quality_vs_nfe.png").stat().st_size > 0


def test_cli_sample_bad_input(tmp_path, capsys):
    rc = cli.main(["sample", "--nfe", "0", "--out", str(tmp_path), "--no-progress"])
    assert rc == 2 and "--nfe" in capsys.readouterr().err
    rc = cli.main(["sample", "--samplers", "rk4", "--train-size", "20", "--num-samples", "8",
                   "--out", str(tmp_path), "--no-progress"])
    assert rc == 2 and "samplers" in capsys.readouterr().err


def test_cli_sample_refuses_a_held_out_split_too_small_before_any_work(tmp_path, capsys):
    rc = cli.main(["sample", "--num-samples", "300", "--out", str(tmp_path / "o"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "--test-fraction" in err and "num_samples" in err
    assert not (tmp_path / "o" / "table3.json").exists()
    rc = cli.main(["sample", "--repetitions", "1", "--out", str(tmp_path / "o"), "--no-progress"])
    assert rc == 2 and "--repetitions" in capsys.readouterr().err


def test_cli_sample_refuses_too_few_ot_targets(tmp_path, capsys):
    rc = cli.main(["sample", "--ot-max-points", "1", "--out", str(tmp_path / "s"), "--no-progress"])
    assert rc == 2 and "--ot-max-points" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()  # refused before any work


def test_cli_sample_tiny_labelled_points(tmp_path):
    """The whole pipeline on a 2-class point cloud from files (conditional rows, an OT target subset, no
    images): the report, the JSON with its stated OT target count, and the figure."""
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 60)
    x = rng.normal(size=(120, 2)) * 0.3 + np.where(labels[:, None] == 0, -1.0, 1.0)
    np.save(tmp_path / "x.npy", x.astype(np.float32))
    np.save(tmp_path / "y.npy", labels)
    out = tmp_path / "sample"
    rc = cli.main([
        "sample", "--dataset", str(tmp_path / "x.npy"), "--labels", str(tmp_path / "y.npy"), "--train-size", "30",
        "--test-fraction", "0.5", "--num-samples", "20", "--repetitions", "2", "--samplers", "ddim,ddpm",
        "--nfe", "4", "--ddpm-steps", "8", "--t-prime", "0.1", "--tau", "0", "--ot-nfe", "4", "--ot-max-points", "20",
        "--classifier-steps", "50", "--out", str(out), "--no-progress",
    ])
    assert rc == 0
    doc = json.loads((out / "table3.json").read_text())
    assert doc["ot_targets"] == 20 and doc["repetitions"] == 2 and doc["num_samples"] == 20
    table = (out / "table3.md").read_text()
    assert "solved onto 20 training points" in table and "## Sanity checks" in table
    rows = [r for r in doc["rows"] if r["kind"] != "control"]
    assert {r["method"] for r in rows} == {"DDIM", "DDPM", "OT + AncestralDDPM"}
    assert [r["conditional"] for r in rows].count(True) == 2  # the long chain and the OT row, per class
    for r in rows:
        if r["verdict_vs_long_chain"] is not None:
            assert r["verdict_vs_long_chain"] in ("better", "worse", "not resolvable at this size")
        if r["method"].startswith("OT"):
            assert r["nfe"] == 4 and r["ot_certificate"] is not None
    assert (out / "quality_vs_nfe.png").stat().st_size > 0
