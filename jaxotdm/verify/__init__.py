"""Theorem verification: measurements of the claims of arXiv 2410.13431 (reported as measured).

* :func:`convergence_to_brenier`: the probability-flow map against the OT (Brenier) map as the termination
  time grows, both directions, with the transport-cost gap (:func:`transport_cost_gap`) per time.
* :func:`floor_study`, :func:`monotone_control`, :func:`monotone_map_1d`: the floor of the flow's limit map,
  its exact one-dimensional control, and how it scales.
* :func:`thm311_study`, :func:`extrapolate_floor`, :func:`thm311_verdict`: Thm 3.11 (forward) decided by the
  floor's dependence on the Brenier estimate's resolution n.
* :func:`basin_map`: the OT map's Laguerre cells against the flow's basins on a grid of the prior (d = 1, 2).
* :func:`prior_error`, :func:`prior_error_curve`, :func:`ot_correction`: the prior error, Thm 3.2 and the OT-corrected prior.
"""

from jaxotdm.verify.basins import BasinMap, basin_map
from jaxotdm.verify.convergence import (
    ConvergenceResult,
    ExponentialFit,
    OTResolution,
    convergence_to_brenier,
    fit_exponential,
)
from jaxotdm.verify.cost import TransportCost, transport_cost_gap
from jaxotdm.verify.floor import (
    Cloud,
    FloorRow,
    MonotoneControl,
    floor_study,
    monotone_control,
    monotone_map_1d,
    random_clouds,
)
from jaxotdm.verify.prior import (
    CorrectedPrior,
    EndOfSampling,
    OTCorrectionResult,
    PriorBracket,
    PriorErrorResult,
    PriorEstimators,
    ot_correction,
    prior_error,
    prior_error_curve,
)
from jaxotdm.verify.thm311 import (
    FloorExtrapolation,
    Thm311Study,
    Thm311Verdict,
    extrapolate_floor,
    thm311_study,
    thm311_verdict,
)

__all__ = [
    "BasinMap",
    "Cloud",
    "ConvergenceResult",
    "CorrectedPrior",
    "EndOfSampling",
    "ExponentialFit",
    "FloorExtrapolation",
    "FloorRow",
    "MonotoneControl",
    "OTCorrectionResult",
    "OTResolution",
    "PriorBracket",
    "PriorErrorResult",
    "PriorEstimators",
    "Thm311Study",
    "Thm311Verdict",
    "TransportCost",
    "basin_map",
    "convergence_to_brenier",
    "extrapolate_floor",
    "fit_exponential",
    "floor_study",
    "monotone_control",
    "monotone_map_1d",
    "ot_correction",
    "prior_error",
    "prior_error_curve",
    "random_clouds",
    "thm311_study",
    "thm311_verdict",
    "transport_cost_gap",
]
