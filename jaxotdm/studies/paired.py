"""Paired comparisons over repetitions: the one place where a study turns repeated measurements into an
interval and a verdict.

A study repeats a measurement ``K`` times with fresh randomness (sampler seeds, a fresh halving of the
held-out split) and measures two arms on the *same* draw of the reference, so the per-repetition
differences ``d_r = m_r(arm) - m_r(control)`` cancel the reference's own noise. :func:`paired_interval`
gives the Student-t interval of their mean; :func:`verdict` reads it: "better" or "worse" only when the
interval excludes zero, otherwise "not resolvable at this size".
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from jaxotdm._pytree import pytree_dataclass, static_field

__all__ = ["PairedInterval", "paired_interval", "verdict", "BETTER", "WORSE", "NOT_RESOLVABLE"]

BETTER = "better"
WORSE = "worse"
NOT_RESOLVABLE = "not resolvable at this size"


@pytree_dataclass
class PairedInterval:
    """The mean of paired differences with its two-sided Student-t interval (host floats).

    Attributes:
        mean: mean difference (arm - control), oriented so that negative is better for the arm.
        low: lower end of the interval.
        high: upper end of the interval.
        z: ``mean / standard error`` (the paired t statistic; 0 when every difference is 0).
        level: the interval's confidence level.
        repetitions: ``K``, the number of paired differences.
    """

    mean: float = static_field()
    low: float = static_field()
    high: float = static_field()
    z: float = static_field()
    level: float = static_field()
    repetitions: int = static_field()


def paired_interval(differences, *, level: float = 0.95) -> PairedInterval:
    """The Student-t interval of the mean of ``K >= 2`` paired differences.

    Example:
        >>> from jaxotdm.studies import paired_interval
        >>> r = paired_interval([1.0, 1.2, 0.8, 1.1, 0.9])
        >>> round(r.mean, 3), r.low > 0
        (1.0, True)
    """
    d = np.asarray(differences, np.float64).reshape(-1)
    if d.size < 2:
        raise ValueError(f"`differences` needs at least 2 repetitions, got {d.size}.")
    if not np.all(np.isfinite(d)):
        raise ValueError("`differences` must be finite (a metric returned NaN or inf).")
    if not (isinstance(level, float) and 0.5 <= level < 1.0):
        raise ValueError(f"`level` must be a float in [0.5, 1), got {level!r}.")
    k = d.size
    mean = float(d.mean())
    se = float(d.std(ddof=1)) / math.sqrt(k)
    half = float(stats.t.ppf(0.5 + level / 2, k - 1)) * se
    z = mean / se if se > 0 else (0.0 if mean == 0 else math.copysign(math.inf, mean))
    return PairedInterval(mean, mean - half, mean + half, float(z), float(level), int(k))


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
