"""Fixed-NFE samplers for any score (exact or learned), written as one ``lax.scan`` each.

A sampler is a method object run by the one driver :func:`sample`:
``sample(DDIM(), score, schedule, x, t_start=..., t_end=..., nfe=...)``.
Deterministic (probability-flow ODE): :class:`Euler`, :class:`Heun`, :class:`DDIM`, :class:`DPMSolver2`,
:class:`DPMSolver3`, :class:`DPMSolverPP2M`, and the adaptive diffrax flow :func:`adaptive_flow`.
Stochastic (reverse SDE): :class:`AncestralDDPM`, :class:`EulerMaruyama`, :class:`PredictorCorrector`.
Each run returns a :class:`SampleResult` with the exact number of score evaluations. The method objects
expose their ``init``/``step`` pair for users who drive their own loops. Time grids: :data:`GRIDS`,
:func:`time_grid`.

Every sampler runs backward in time from ``t_start`` to ``t_end`` (``0 < t_end < t_start``) starting
either from given points ``x`` at ``t_start`` or from ``shape`` draws of the schedule's prior
``q_{t_start}`` (``key`` required).
"""

from jaxotdm.samplers._core import SampleResult, sample
from jaxotdm.samplers._grid import GRIDS, DDPMGrid, EDMGrid, UniformLogSNR, UniformTime, time_grid
from jaxotdm.samplers.ode import (
    DDIM,
    DPMSolver2,
    DPMSolver3,
    DPMSolverPP2M,
    Euler,
    Heun,
    adaptive_flow,
)
from jaxotdm.samplers.ot_accelerated import (
    ConditionalOTPrior,
    ExactClassScores,
    GuidedScore,
    LearnedClassScores,
    OTPrior,
    OTSampleResult,
    ot_accelerated_sample,
    ot_accelerated_step,
    ot_prior_points,
    prepare_conditional_ot_prior,
    prepare_ot_prior,
)
from jaxotdm.samplers.sde import (
    AncestralDDPM,
    EulerMaruyama,
    PredictorCorrector,
)

__all__ = [
    "OTPrior",
    "ConditionalOTPrior",
    "OTSampleResult",
    "ExactClassScores",
    "LearnedClassScores",
    "GuidedScore",
    "prepare_ot_prior",
    "prepare_conditional_ot_prior",
    "ot_prior_points",
    "ot_accelerated_step",
    "ot_accelerated_sample",

    "GRIDS",
    "DDIM",
    "AncestralDDPM",
    "DDPMGrid",
    "DPMSolver2",
    "DPMSolver3",
    "DPMSolverPP2M",
    "EDMGrid",
    "Euler",
    "EulerMaruyama",
    "Heun",
    "PredictorCorrector",
    "SampleResult",
    "UniformLogSNR",
    "UniformTime",
    "adaptive_flow",
    "sample",
    "time_grid",
]
