"""``jaxotdm sample`` smoke test at tiny size: writes the markdown table, the JSON and PNG grids."""

import json

import jaxotdm.cli as cli


def test_cli_sample_tiny(tmp_path):
    out = tmp_path / "sample"
    rc = cli.main([
        "sample", "--train-size", "30", "--num-samples", "20", "--samplers", "ddim,ddpm", "--nfe", "4",
        "--ddpm-steps", "8", "--t-prime", "0.1", "--tau", "0", "--ot-nfe", "4", "--classifier-steps", "50",
        "--out", str(out), "--no-progress",
    ])
    assert rc == 0
    table = (out / "table3.md").read_text()
    assert "near-copy" in table and "OT+ddpm" in table
    rows = json.loads((out / "table3.json").read_text())["rows"]
    assert {r["method"] for r in rows} == {"ddim", "ddpm", "OT+ddpm"}
    assert any(r["conditional"] for r in rows)
    for r in rows:
        assert 0.0 <= r["near_copy_fraction"] <= 1.0 and r["w2"] >= 0.0
        if r["method"].startswith("OT"):
            assert r["nfe"] == 4  # the OT step adds no score evaluation
    assert len(list(out.glob("*.png"))) == len(rows)


def test_cli_sample_bad_input(tmp_path, capsys):
    rc = cli.main(["sample", "--nfe", "0", "--out", str(tmp_path), "--no-progress"])
    assert rc == 2 and "--nfe" in capsys.readouterr().err
    rc = cli.main(["sample", "--samplers", "rk4", "--train-size", "20", "--num-samples", "8",
                   "--out", str(tmp_path), "--no-progress"])
    assert rc == 2 and "samplers" in capsys.readouterr().err
