"""Test configuration: float64 on (reference tests); float32 paths are exercised with explicit dtypes.

A test whose xdist worker process dies (a segmentation fault inside XLA's compiler, seen twice in full CI runs
on 2 cores, in different tests, never when the test runs alone) is run once more on a fresh worker: the crash
is still printed in full (the worker's fault-handler dump) and the summary counts it as ``rerun``; a second
crash of the same test fails it. Ordinary test failures are never rerun.
"""

import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

CRASH_RERUNS = 1
_crashes: dict[str, int] = {}


@pytest.hookimpl(optionalhook=True)
def pytest_handlecrashitem(crashitem, report, sched):
    """pytest-xdist: reschedule a test whose worker crashed, at most ``CRASH_RERUNS`` times."""
    _crashes[crashitem] = _crashes.get(crashitem, 0) + 1
    if _crashes[crashitem] <= CRASH_RERUNS:
        sched.mark_test_pending(crashitem)
        report.outcome = "rerun"


def pytest_report_teststatus(report, config):
    if report.outcome == "rerun":
        return "rerun", "R", ("RERUN (its worker crashed)", {"yellow": True})
    return None


def pytest_terminal_summary(terminalreporter):
    if _crashes:
        terminalreporter.write_sep("=", "worker crashes", yellow=True)
        for nodeid, count in _crashes.items():
            verdict = "passed on a fresh worker or see above" if count <= CRASH_RERUNS else "failed"
            terminalreporter.write_line(f"{nodeid}: worker crashed {count}x ({verdict})")
