"""Shared CLI behaviour (``jaxotdm/cli/_common.py``): datasets from files are refused in one line that names
the command line's option (``--dataset``, ``--npz-key``), never the library's Python parameter (``path``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jaxotdm import cli

ROOT = Path(__file__).resolve().parents[1]


def _run(argv, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAXOTDM_CACHE_DIR": ""}
    return subprocess.run([sys.executable, "-m", "jaxotdm", *argv], capture_output=True, text=True, cwd=tmp_path,
                          env=env, timeout=300)


def test_empty_csv_dataset_is_one_line_naming_the_option_without_numpy_warning(tmp_path):
    """Issue 23 item 7 (the real entry point: numpy's UserWarning and its source line were printed first)."""
    (tmp_path / "empty.csv").write_text("")
    proc = _run(["flow", "--dataset", str(tmp_path / "empty.csv"), "--out", str(tmp_path / "o")], tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert "`--dataset`" in lines[0] and "is empty" in lines[0] and "`path`" not in lines[0], lines[0]
    assert "Warning" not in proc.stderr


@pytest.mark.parametrize(
    "name,content,extra,expected",
    [
        ("h.csv", "x,y\n1,2\n", [], "header row"),
        ("s.csv", "1;2\n3;4\n", [], "';'"),
        ("missing.npy", None, [], "does not exist"),
        ("a.npy", np.zeros((3, 2)), ["--npz-key", "x"], "`--npz-key` 'x' applies to .npz archives only"),
    ],
    ids=["header", "semicolon", "missing", "npz-key-on-npy"],
)
def test_dataset_file_errors_name_the_options(tmp_path, capsys, name, content, extra, expected):
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content)
    elif content is not None:
        np.save(path, content)
    for command in (["flow"], ["train", "--steps", "1"]):
        rc = cli.main([*command, "--dataset", str(path), *extra, "--out", str(tmp_path / "o")])
        err = capsys.readouterr().err
        assert rc == 2, err
        assert "`--dataset`" in err or "`--npz-key`" in err, err
        assert expected in err and "`path`" not in err and "`key`" not in err, err
