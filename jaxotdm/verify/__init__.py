"""Theorem verification: measurements of the claims of arXiv 2410.13431 (reported as measured).

* :func:`convergence_to_brenier`: the probability-flow map against the OT (Brenier) map as the termination
  time grows, both directions, with the transport-cost gap (:func:`transport_cost_gap`) per time.
* :func:`floor_study`, :func:`monotone_control`, :func:`monotone_map_1d`: the floor of the flow's limit map,
  its exact one-dimensional control, and how it scales.
* :func:`prior_error`, :func:`prior_error_curve`, :func:`ot_correction`: the prior error, Thm 3.2 and the OT-corrected prior.
"""

from jaxotdm.verify.convergence import (
    ConvergenceResult,
    ExponentialFit,
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
    ot_correction,
    prior_error,
    prior_error_curve,
)

__all__ = [
    "Cloud",
    "ConvergenceResult",
    "CorrectedPrior",
    "EndOfSampling",
    "ExponentialFit",
    "FloorRow",
    "MonotoneControl",
    "OTCorrectionResult",
    "PriorBracket",
    "PriorErrorResult",
    "TransportCost",
    "convergence_to_brenier",
    "fit_exponential",
    "floor_study",
    "monotone_control",
    "monotone_map_1d",
    "ot_correction",
    "prior_error",
    "prior_error_curve",
    "random_clouds",
    "transport_cost_gap",
]
