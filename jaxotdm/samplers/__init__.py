"""Fixed-NFE samplers for any score (exact or learned), written as one ``lax.scan`` each.

Deterministic (probability-flow ODE): :func:`euler`, :func:`heun`, :func:`ddim`, :func:`dpm_solver_2`,
:func:`dpm_solver_3`, :func:`dpm_solver_pp_2m`, and the adaptive diffrax flow :func:`adaptive_flow`.
Stochastic (reverse SDE): :func:`ddpm` (ancestral), :func:`euler_maruyama`, :func:`predictor_corrector`.
Each returns a :class:`SampleResult` with the exact number of score evaluations. The method objects
(:class:`Euler`, ..., :class:`PredictorCorrector`) expose the underlying ``init``/``step`` pair for users
who drive their own loops; :func:`sample` runs any of them. Time grids: :data:`GRIDS`, :func:`time_grid`.

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
    ddim,
    dpm_solver_2,
    dpm_solver_3,
    dpm_solver_pp_2m,
    euler,
    heun,
)
from jaxotdm.samplers.ot_accelerated import (
    ConditionalOTPrior,
    ExactClassScores,
    GuidedScore,
    LearnedClassScores,
    OTPrior,
    OTSampleResult,
    ot_accelerated_conditional_sample,
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
    ddpm,
    euler_maruyama,
    predictor_corrector,
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
    "ot_accelerated_conditional_sample",

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
    "ddim",
    "ddpm",
    "dpm_solver_2",
    "dpm_solver_3",
    "dpm_solver_pp_2m",
    "euler",
    "euler_maruyama",
    "heun",
    "predictor_corrector",
    "sample",
    "time_grid",
]
