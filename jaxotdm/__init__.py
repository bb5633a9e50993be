"""jaxotdm: optimal transport and diffusion models in JAX.

Exact scores and probability-flow maps for diffusions started from a dataset, semi-discrete and
entropic optimal transport, samplers, and the measurements that test the claims of arXiv 2410.13431.

Submodules: :mod:`~jaxotdm.schedules`, :mod:`~jaxotdm.measures`, :mod:`~jaxotdm.scores`,
:mod:`~jaxotdm.flow`, :mod:`~jaxotdm.ot`, :mod:`~jaxotdm.samplers`, :mod:`~jaxotdm.metrics`,
:mod:`~jaxotdm.verify`, :mod:`~jaxotdm.data`, :mod:`~jaxotdm.networks`, :mod:`~jaxotdm.training`.
"""

from jaxotdm import data, metrics, networks, ot, samplers, training, verify
from jaxotdm.flow import SOLVERS, FlowResult, flow_map, probability_flow_velocity
from jaxotdm.measures import EmpiricalMeasure, GaussianMeasure
from jaxotdm.networks import MLP, LearnedScore, ScoreModel, UNet, load_score
from jaxotdm.ot import (
    AdamSolver,
    NewtonSolver,
    OTTSolver,
    SemidiscreteCertificate,
    SemidiscreteMap,
    bures_w2,
    gaussian_ot_map,
    pushforward_w2,
    semidiscrete_ot,
    sinkhorn,
    sinkhorn_divergence,
    w2_exact,
    w2_gaussian_to_discrete,
)
from jaxotdm.samplers import SampleResult, ot_accelerated_sample, prepare_ot_prior, sample
from jaxotdm.schedules import EDM, OU, VE, Cosine, Schedule, SubVP, VPLinear
from jaxotdm.scores import ExactScore, exact_score
from jaxotdm.sharding import PointSharding
from jaxotdm.training import TrainState, fit, init_train_state, train_step

__version__ = "0.1.0"

__all__ = [
    "training",
    "networks",
    "prepare_ot_prior",
    "ot_accelerated_sample",
    "train_step",
    "init_train_state",
    "fit",
    "TrainState",
    "UNet",
    "ScoreModel",
    "LearnedScore",
    "load_score",
    "MLP",
    "EDM",
    "OU",
    "SOLVERS",
    "VE",
    "AdamSolver",
    "Cosine",
    "EmpiricalMeasure",
    "ExactScore",
    "FlowResult",
    "GaussianMeasure",
    "NewtonSolver",
    "OTTSolver",
    "PointSharding",
    "SampleResult",
    "Schedule",
    "SemidiscreteCertificate",
    "SemidiscreteMap",
    "SubVP",
    "VPLinear",
    "bures_w2",
    "data",
    "exact_score",
    "flow_map",
    "gaussian_ot_map",
    "metrics",
    "ot",
    "probability_flow_velocity",
    "pushforward_w2",
    "sample",
    "samplers",
    "semidiscrete_ot",
    "sinkhorn",
    "sinkhorn_divergence",
    "verify",
    "w2_exact",
    "w2_gaussian_to_discrete",
]
