"""``jaxotdm verify``: every option is checked before any work, outputs are never overwritten silently, and
the report opens with its verdicts and the environment (the end-to-end run is marked slow)."""

import json
import time

import numpy as np
import pytest

from jaxotdm import cli
from jaxotdm.cli import verify as V

BAD = [
    (["--schedules", "ou,cosine", "--times", "1,2"], "--times"),  # cosine's t_max is 1
    (["--quick", "--schedules", "ou,cosine", "--times", "1,2"], "--times"),  # also for schedules --quick drops
    (["--eps", "5"], "--eps"),  # above the smallest termination time
    (["--eps", "0"], "--eps"),
    (["--ot-tol", "1.5"], "--ot-tol"),
    (["--ot-tol", "nan"], "--ot-tol"),
    (["--num-samples", "1"], "--num-samples"),
    (["--schedules", "ou,bogus"], "--schedules"),
    (["--schedules", "ou,ou"], "--schedules"),
    (["--times", "2,1"], "--times"),
    (["--times", "1,x"], "--times"),
    (["--toy", "nope"], "--toy"),
    (["--toy-points", "0"], "--toy-points"),
    (["--seed", "-1"], "--seed"),
    (["--study", "floor", "--floor-ns", "1,5"], "--floor-ns"),
    (["--study", "floor", "--floor-ds", "0"], "--floor-ds"),
    (["--dataset", "no_such_set"], "--dataset"),
    (["--with-defaults"], "--with-defaults"),  # a built-in dataset always runs with the defaults
    (["--study", "thm311", "--thm311-ns", "8,64"], "--thm311-ns"),
    (["--study", "thm311", "--thm311-ns", "64"], "--thm311-ns"),
    (["--study", "thm311", "--thm311-ns", "64,64"], "--thm311-ns"),
    (["--study", "thm311", "--thm311-sets", "digits"], "--thm311-sets"),
    (["--study", "thm311", "--thm311-sets", ""], "--thm311-sets"),
    (["--study", "thm311", "--thm311-mc", "0"], "--thm311-mc"),
]


@pytest.mark.parametrize(("argv", "option"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_options_are_refused_before_any_work(argv, option, tmp_path, capsys):
    out = tmp_path / "out"
    t0 = time.perf_counter()
    try:
        rc = cli.main(["verify", *argv, "--no-progress", "--out", str(out)])
    except SystemExit as exc:  # argparse's own errors
        rc = exc.code
    err = capsys.readouterr().err
    assert rc == 2, err
    assert option in err and "Traceback" not in err, err
    assert not out.exists()  # nothing was written: the check came first
    assert time.perf_counter() - t0 < 30  # no computation ran (a first call imports jax, hence the margin)


def test_existing_results_are_not_overwritten(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.md").write_text("an earlier result")
    rc = cli.main(["verify", "--no-progress", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and "--overwrite" in err and "--out" in err
    assert (out / "report.md").read_text() == "an earlier result"


@pytest.mark.slow
def test_quick_report_has_verdicts_environment_and_no_nan(tmp_path):
    out = tmp_path / "v"
    rc = cli.main(["verify", "--quick", "--schedules", "ou", "--no-progress", "--out", str(out)])
    assert rc == 0
    md = (out / "report.md").read_text()
    head = md.split("## Environment")[0]
    assert "## Verdicts" in head and "| claim | measured | verdict | deciding numbers |" in head
    assert any(w in head for w in ("**supported**", "**not supported**", "**inconclusive**"))
    env = md.split("## Environment")[1].split("##")[0]
    for pkg in ("jaxotdm", "jax", "jaxlib", "ott-jax", "diffrax", "dtype", "seed", "wall time", "device"):
        assert pkg in env, pkg
    cells = [c.strip().lower() for ln in md.splitlines() if ln.startswith("|") for c in ln.split("|")]
    assert "nan" not in cells and not any(c.startswith("nan ") for c in cells)
    rep = json.loads((out / "report.json").read_text())
    assert {"verdicts", "environment", "control_1d", "thm_3_11", "convergence", "forward", "prior"} <= set(rep)
    for r in rep["convergence"]:
        assert len(r["cost"]["gap"]) == len(r["times"])
    assert "cost gap" in md and "## 2. The exact one-dimensional control" in md
    assert "![basins](basins.png)" in md and (out / "basins.png").is_file()  # the basin map is in the report
    assert all(v["dataset"] and v["interval"] and v["to_change"] for v in rep["verdicts"])
    assert any(v["claim"].startswith("Thm 3.11") for v in rep["verdicts"])
    # a second run refuses to replace the report unless asked
    assert cli.main(["verify", "--quick", "--no-progress", "--out", str(out)]) == 2


def _cfg(argv, tmp_path):
    return V._validate(cli.build_parser().parse_args(["verify", *argv, "--out", str(tmp_path / "o")]))


def test_a_file_dataset_runs_alone_unless_with_defaults(tmp_path):
    f = tmp_path / "pts.npy"
    np.save(f, np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32))
    cfg = _cfg(["--dataset", str(f)], tmp_path)
    assert [d[0] for d in cfg.datasets] == [str(f)] and not cfg.defaults  # no toy sets, no forward/prior sections
    cfg = _cfg(["--dataset", str(f), "--with-defaults"], tmp_path)
    assert [d[0] for d in cfg.datasets] == [str(f), "eight_gaussians", "two_points"] and cfg.defaults
    cfg = _cfg(["--dataset", str(f), "--toy", "moons"], tmp_path)  # asked for by name: run
    assert [d[0] for d in cfg.datasets] == [str(f), "moons"] and not cfg.defaults
    cfg = _cfg([], tmp_path)  # the built-in default keeps its 2-D sets
    assert [d[0] for d in cfg.datasets] == ["digits", "eight_gaussians", "two_points"] and cfg.defaults


def test_every_verdict_names_its_dataset_interval_and_what_would_change_it():
    from jaxotdm.cli import _verify_report as R

    conv = {"dataset": "mine.npy", "schedule": "ou", "times": [1.0, 2.0], "mismatch_fraction": [0.3, 0.2],
            "mismatch_se": [0.01, 0.01], "floor": 0.5, "floor_se": 0.01, "floor_distinguishable": True,
            "settings": {"num_samples": 2048}, "ot_resolution": {"mass_total_variation": 0.01, "readout_error": 0.0},
            "fit_self_time": {"rate": 1.0, "rate_ci": [0.8, 1.2]}, "fit_self_log_snr": {"rate": 0.5},
            "cost": {"gap": [0.1, 0.05], "gap_se": [0.01, 0.01], "misrouting": [0.01, 0.01],
                     "misrouting_se": [0.001, 0.001], "mass_error": [0.0, 0.0], "mass_error_null": [0.0, 0.0]}}
    report = {"convergence": [conv], "control_1d": {
        "zero_within_resolution": True, "floor_distinguishable": False, "slope": 0.9, "slope_ci": [0.8, 1.0],
        "count": [30, 0], "num_samples": 4096, "times": [4.0, 20.0], "upper95": [0.01, 7e-4], "num_points": 20,
        "readout_error": 0.0}}
    rows = R.verdicts(report)
    assert [v["dataset"] for v in rows] == ["mine.npy", "mine.npy", "1-D control (20 points)"]
    assert all(v["interval"] and v["to_change"] for v in rows)
    floor = rows[1]
    assert floor["verdict"] == "not supported" and "[0.18" in floor["interval"] and "0.01" in floor["interval"]


@pytest.mark.slow
def test_thm311_study_at_a_tiny_size(tmp_path):
    out = tmp_path / "t"
    argv = ["verify", "--study", "thm311", "--thm311-ns", "16,32,64", "--thm311-sets", "two_points",
            "--thm311-mc", "8", "--no-progress", "--out", str(out)]
    assert cli.main(argv) == 0
    rec = json.loads((out / "thm311.json").read_text())
    (st,) = rec["studies"]
    assert st["ns"] == [16, 32, 64] and len(st["floors"]) == 3 and st["verdict"] in (
        "supported", "not supported", "inconclusive")
    md = (out / "thm311.md").read_text()
    assert "| two_points | Thm 3.11" in md and "thm311_floor_vs_n.png" in md


@pytest.mark.slow
def test_a_file_dataset_report_runs_only_it_and_the_control(tmp_path):
    f = tmp_path / "pts.npy"
    np.save(f, np.random.default_rng(0).normal(size=(12, 3)).astype(np.float32))
    out = tmp_path / "u"
    argv = ["verify", "--dataset", str(f), "--quick", "--schedules", "ou", "--no-progress", "--out", str(out)]
    assert cli.main(argv) == 0
    rep = json.loads((out / "report.json").read_text())
    assert {r["dataset"] for r in rep["convergence"]} == {str(f)} and not rep["forward"]
    assert {v["dataset"] for v in rep["verdicts"]} == {str(f), "1-D control (20 points)"}
    assert "--with-defaults" in (out / "report.md").read_text()
