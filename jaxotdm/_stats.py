"""Paired comparisons over repetitions (the one home of the paired Student-t interval; the metrics' quality bar
and the studies' verdicts both use it).

A measurement repeated ``K`` times with fresh randomness, two arms measured on the *same* draw of the
reference each time: the per-repetition differences cancel the reference's own noise, and their mean gets a
Student-t interval with ``K - 1`` degrees of freedom.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from jaxotdm._pytree import pytree_dataclass, static_field

__all__ = ["PairedInterval", "paired_interval"]


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
