"""Optimal transport: semi-discrete (the Monge-Ampere map), entropic (Sinkhorn) and W2 estimators.
"""

from jaxotdm.ot.entropic import EntropicResult, sinkhorn, sinkhorn_divergence
from jaxotdm.ot.semidiscrete import (
    AdamSolver,
    CandidateNewtonSolver,  # noqa: F401 (experimental: outside __all__)
    ExactNewtonSolver,
    HybridNewtonSolver,
    NewtonSolver,
    OTTSolver,
    Progress,
    SemidiscreteCertificate,
    SemidiscreteDiagnostics,
    SemidiscreteHistory,
    SemidiscreteMap,
    SemidiscreteProblem,
    SemidiscreteSampling,
    SemidiscreteSolver,
    cell_masses,
    exact_cells,
    semidiscrete_ot,
)
from jaxotdm.ot.w2 import (
    W2Estimate,
    bures_w2,
    gaussian_ot_map,
    pushforward_w2,
    w2_exact,
    w2_gaussian_to_discrete,
)

__all__ = [
    "AdamSolver",
    "EntropicResult",
    "HybridNewtonSolver",
    "NewtonSolver",
    "OTTSolver",
    "ExactNewtonSolver",
    "Progress",
    "SemidiscreteCertificate",
    "SemidiscreteDiagnostics",
    "SemidiscreteHistory",
    "SemidiscreteMap",
    "SemidiscreteProblem",
    "SemidiscreteSampling",
    "SemidiscreteSolver",
    "W2Estimate",
    "bures_w2",
    "cell_masses",
    "gaussian_ot_map",
    "exact_cells",
    "pushforward_w2",
    "semidiscrete_ot",
    "sinkhorn",
    "sinkhorn_divergence",
    "w2_exact",
    "w2_gaussian_to_discrete",
]
