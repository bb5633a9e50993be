"""jaxotdm: optimal transport and diffusion models in JAX.

Exact scores and probability-flow maps for diffusions started from a dataset, semi-discrete and
entropic optimal transport, and the measurements that test the claims of arXiv 2410.13431.
"""

from jaxotdm.flow import SOLVERS, FlowResult, flow_map, probability_flow_velocity
from jaxotdm.measures import EmpiricalMeasure, GaussianMeasure
from jaxotdm.schedules import EDM, OU, VE, Cosine, Schedule, SubVP, VPLinear
from jaxotdm.scores import ExactScore, exact_score

__version__ = "0.1.0"

__all__ = [
    "EDM",
    "OU",
    "SOLVERS",
    "VE",
    "Cosine",
    "EmpiricalMeasure",
    "ExactScore",
    "FlowResult",
    "GaussianMeasure",
    "Schedule",
    "SubVP",
    "VPLinear",
    "exact_score",
    "flow_map",
    "probability_flow_velocity",
]
