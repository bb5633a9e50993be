r"""How suboptimal is a transport map as a plan? Its quadratic cost against the OT map's, on the same draws.

For draws ``z_k ~ N(0, I)`` (``k = 1..N``), a map ``M`` (e.g. the probability flow's limit map, read off as
the data point each draw lands on) and the semi-discrete OT map ``T = grad u_h`` onto
``mu = sum_i w_i delta_{y_i}``:

* ``C_map = mean_k |z_k - M(z_k)|^2`` and ``C_ot = mean_k |z_k - T(z_k)|^2``;
* the relative gap ``(C_map - C_ot) / C_ot`` with its standard error from the *paired* differences
  (delta method for a ratio of means: ``se = sd(D_k - gap * B_k) / (sqrt(N) * mean(B))`` with
  ``D_k = |z_k - M(z_k)|^2 - |z_k - T(z_k)|^2`` and ``B_k = |z_k - T(z_k)|^2``);
* the scale: the cost of the independent coupling, ``E|z - Y|^2 = d + sum_i w_i |y_i|^2`` (exact).

OT minimises the cost only among maps with the *same* push-forward, so the gap is decomposed exactly, on
the same draws, with the OT map's heights ``h`` (``u_h(z) = max_i <z, y_i> + h_i``):

``C_map - C_ot = 2 mean_k [u_h(z_k) - <z_k, M(z_k)> - h_{M(z_k)}]  +  sum_i (m_i - o_i) (|y_i|^2 + 2 h_i)``

where ``m`` and ``o`` are the fractions of draws that ``M`` and ``T`` send to ``y_i``. The first term
(``misrouting``) is a Fenchel-Young gap: non-negative for every draw, zero iff ``M(z)`` lies in ``z``'s
Laguerre cell. The second (``mass_term``) is what the *different push-forward* contributes; it has no sign
and vanishes as the push-forwards agree. The identity holds for any heights, and for any ``m`` the value
``C_map - misrouting`` is a lower bound of the OT cost onto ``M``'s own push-forward (weak duality), so
``misrouting / C_ot`` bounds from above how much cheaper an optimal plan with ``M``'s push-forward could
be. A gap below zero by more than its error while ``mass_error`` is at its Monte Carlo level is a bug
signal (an OT map that is not optimal, or a flow that has not reached the data).
"""

from __future__ import annotations

import math

import numpy as np

from jaxotdm import _validation as V
from jaxotdm._pytree import pytree_dataclass

__all__ = ["TransportCost", "transport_cost_gap"]


@pytree_dataclass
class TransportCost:
    """Quadratic transport cost of a map against the OT map on the same draws (floats, or arrays over
    measurements when stacked with :meth:`stack`).

    Attributes:
        cost_map, cost_map_se: ``mean |z - M(z)|^2`` and its standard error.
        cost_ot, cost_ot_se: ``mean |z - T(z)|^2`` and its standard error.
        gap, gap_se: ``(cost_map - cost_ot) / cost_ot`` and its paired (delta-method) standard error.
        misrouting, misrouting_se: the non-negative Fenchel-Young part of the gap, relative to ``cost_ot``
            (``NaN`` without heights).
        mass_term: the push-forward part, ``gap - misrouting`` (``NaN`` without heights).
        cost_independent: ``E|z - Y|^2`` for independent ``z ~ N(0, I)``, ``Y ~ mu`` (exact): the scale.
        mass_error: total variation between ``M``'s landing frequencies and the weights ``w``.
        ot_mass_error: the same for the OT map on these draws.
        mass_error_null: the expected total variation of ``N`` exact draws from ``w`` (Monte Carlo alone).
        num_samples: ``N``.
    """

    cost_map: float
    cost_map_se: float
    cost_ot: float
    cost_ot_se: float
    gap: float
    gap_se: float
    misrouting: float
    misrouting_se: float
    mass_term: float
    cost_independent: float
    mass_error: float
    ot_mass_error: float
    mass_error_null: float
    num_samples: int

    @staticmethod
    def stack(costs: list[TransportCost]) -> TransportCost:
        """One :class:`TransportCost` whose fields are arrays over ``costs``."""
        names = [f for f in TransportCost.__dataclass_fields__]
        return TransportCost(**{f: np.asarray([getattr(c, f) for c in costs]) for f in names})


def _mean_se(v: np.ndarray) -> tuple[float, float]:
    n = len(v)
    return float(v.mean()), float(v.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan


def _tv(idx: np.ndarray | None, w: np.ndarray | None) -> float:
    if idx is None or w is None:
        return math.nan
    freq = np.bincount(idx, minlength=len(w)) / len(idx)
    return float(0.5 * np.abs(freq - w).sum())


def _multinomial_tv_null(weights, num_samples: int) -> float:
    """Expected total variation between ``weights`` and the frequencies of ``num_samples`` exact draws
    (normal approximation per cell: ``0.5 sum_i sqrt(2 w_i (1 - w_i) / (pi N))``)."""
    w = np.asarray(weights, np.float64)
    return float(0.5 * np.sum(np.sqrt(2 * w * (1 - w) / (math.pi * num_samples))))


def transport_cost_gap(
    z,
    map_points,
    ot_points,
    *,
    targets=None,
    weights=None,
    heights=None,
    map_index=None,
    ot_index=None,
) -> TransportCost:
    r"""Quadratic cost of a map against the OT map on the same draws, with the gap's decomposition.

    Everything is computed in float64 NumPy on concrete arrays (batch axis first).

    Args:
        z: ``(N, d)`` source draws (``N(0, I)`` for the independent-coupling scale).
        map_points: ``(N, d)`` the map's outputs ``M(z_k)``.
        ot_points: ``(N, d)`` the OT map's outputs ``T(z_k)``.
        targets: ``(n, d)``, ``(n,)`` the discrete target measure (for the independent coupling,
            the mass errors and the decomposition; optional).
        weights: see ``targets``.
        heights: ``(n,)`` the OT map's heights (``u_h(z) = max_i <z, y_i> + h_i`` on the raw targets), for
            the decomposition.
        map_index: ``(N,)`` the target index each draw is sent to (for mass errors and the
            decomposition).
        ot_index: see ``map_index``.

    Returns:
        A :class:`TransportCost`.

    Example:
        >>> import numpy as np
        >>> from jaxotdm.verify import transport_cost_gap
        >>> z = np.random.default_rng(0).standard_normal((1000, 1))
        >>> y = np.array([[-1.0], [1.0]])
        >>> ot = y[(z[:, 0] > 0).astype(int)]
        >>> bad = y[(z[:, 0] < 0).astype(int)]         # same push-forward, anti-monotone
        >>> r = transport_cost_gap(z, bad, ot, targets=y, weights=np.array([0.5, 0.5]))
        >>> bool(r.gap > 10 * r.gap_se > 0)
        True
    """
    z = V.np_points(z, "z")
    a = V.np_points(map_points, "map_points")
    b = V.np_points(ot_points, "ot_points")
    if z.ndim != 2 or a.shape != z.shape or b.shape != z.shape:
        raise ValueError(
            f"`z`, `map_points` and `ot_points` must all have the same shape (N, d); got {z.shape}, {a.shape}, "
            f"{b.shape}."
        )
    N, d = z.shape
    if N < 2:
        raise ValueError(f"`z` must have at least 2 draws, got {N}.")
    ca = ((z - a) ** 2).sum(1)
    cb = ((z - b) ** 2).sum(1)
    cost_map, cost_map_se = _mean_se(ca)
    cost_ot, cost_ot_se = _mean_se(cb)
    if not cost_ot > 0:
        raise ValueError("`ot_points` coincide with `z` (zero transport cost): the relative gap is undefined.")
    gap = (cost_map - cost_ot) / cost_ot
    gap_se = float(np.std(ca - cb - gap * cb, ddof=1) / (math.sqrt(N) * cost_ot))
    y = w = None
    if targets is not None:
        y = np.asarray(targets, np.float64)
        w = np.full(len(y), 1.0 / len(y)) if weights is None else np.asarray(weights, np.float64)
    c_ind = float(d + w @ (y**2).sum(1)) if y is not None else math.nan
    mi = None if map_index is None else np.asarray(map_index, np.int64)
    oi = None if ot_index is None else np.asarray(ot_index, np.int64)
    mis, mis_se, mass = math.nan, math.nan, math.nan
    if heights is not None and y is not None and mi is not None and oi is not None:
        h = np.asarray(heights, np.float64)
        score_ot = np.einsum("kd,kd->k", z, y[oi]) + h[oi]
        fy = np.einsum("kd,kd->k", z, y[mi]) + h[mi]
        m_k = 2 * (score_ot - fy) / cost_ot  # per-draw Fenchel-Young gap (>= 0 when oi is the argmax)
        mis, mis_se = _mean_se(m_k)
        mass = gap - mis
    return TransportCost(
        cost_map=cost_map, cost_map_se=cost_map_se, cost_ot=cost_ot, cost_ot_se=cost_ot_se, gap=float(gap),
        gap_se=gap_se, misrouting=mis, misrouting_se=mis_se, mass_term=mass, cost_independent=c_ind,
        mass_error=_tv(mi, w), ot_mass_error=_tv(oi, w),
        mass_error_null=_multinomial_tv_null(w, N) if w is not None else math.nan, num_samples=N,
    )
