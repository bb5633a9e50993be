"""``jaxotdm verify``: every option is checked before any work, outputs are never overwritten silently, and
the report opens with its verdicts and the environment (the end-to-end run is marked slow)."""

import json
import time

import pytest

from jaxotdm import cli

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
    # a second run refuses to replace the report unless asked
    assert cli.main(["verify", "--quick", "--no-progress", "--out", str(out)]) == 2
