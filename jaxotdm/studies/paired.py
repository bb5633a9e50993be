"""Paired comparisons over repetitions: the one place where a study turns repeated measurements into an
interval and a verdict.

A study repeats a measurement ``K`` times with fresh randomness (sampler seeds, a fresh halving of the
held-out split) and measures two arms on the *same* draw of the reference, so the per-repetition
differences ``d_r = m_r(arm) - m_r(control)`` cancel the reference's own noise. :func:`paired_interval`
gives the Student-t interval of their mean; :func:`verdict` reads it: "better" or "worse" only when the
interval excludes zero, otherwise "not resolvable at this size".
"""

from __future__ import annotations

from jaxotdm._stats import PairedInterval, paired_interval

__all__ = ["PairedInterval", "paired_interval", "verdict", "BETTER", "WORSE", "NOT_RESOLVABLE"]

BETTER = "better"
WORSE = "worse"
NOT_RESOLVABLE = "not resolvable at this size"


def verdict(interval: PairedInterval) -> str:
    """"better" when the whole interval is below zero, "worse" when above, else "not resolvable at this
    size" (differences oriented so that negative favours the arm)."""
    if not isinstance(interval, PairedInterval):
        raise TypeError(f"`interval` must be a PairedInterval (see paired_interval), got {type(interval).__name__}.")
    if interval.high < 0:
        return BETTER
    if interval.low > 0:
        return WORSE
    return NOT_RESOLVABLE
