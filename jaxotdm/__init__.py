"""jaxotdm: optimal transport and diffusion models in JAX.

Exact scores and probability-flow maps for diffusions started from a dataset, semi-discrete and
entropic optimal transport, samplers, and the measurements that test the claims of arXiv 2410.13431.

Submodules: :mod:`~jaxotdm.schedules`, :mod:`~jaxotdm.measures`, :mod:`~jaxotdm.scores`,
:mod:`~jaxotdm.flow`, :mod:`~jaxotdm.ot`, :mod:`~jaxotdm.samplers`, :mod:`~jaxotdm.metrics`,
:mod:`~jaxotdm.verify`, :mod:`~jaxotdm.data`, :mod:`~jaxotdm.networks`, :mod:`~jaxotdm.training`,
:mod:`~jaxotdm.studies` (paired intervals, metric validity, the Table 3 analogue).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# Submodules and names are imported on first use (PEP 562), so `import jaxotdm` and `jaxotdm --help` import
# no jax. A new public name goes here (name -> the module that defines it) and in __all__.
_SUBMODULES = (
    "data",
    "flow",
    "measures",
    "metrics",
    "networks",
    "ot",
    "plotting",
    "samplers",
    "schedules",
    "scores",
    "sharding",
    "studies",
    "training",
    "verify",
)
_EXPORTS = {
    "AdamSolver": "jaxotdm.ot",
    "ConvergenceWarning": "jaxotdm._status",
    "Cosine": "jaxotdm.schedules",
    "EDM": "jaxotdm.schedules",
    "EmpiricalMeasure": "jaxotdm.measures",
    "ExactScore": "jaxotdm.scores",
    "FlowResult": "jaxotdm.flow",
    "GaussianMeasure": "jaxotdm.measures",
    "LearnedScore": "jaxotdm.networks",
    "MLP": "jaxotdm.networks",
    "HybridNewtonSolver": "jaxotdm.ot",
    "NewtonSolver": "jaxotdm.ot",
    "ODESettings": "jaxotdm.flow",
    "OTTSolver": "jaxotdm.ot",
    "ExactNewtonSolver": "jaxotdm.ot",
    "OU": "jaxotdm.schedules",
    "PointSharding": "jaxotdm.sharding",
    "SOLVERS": "jaxotdm.flow",
    "Status": "jaxotdm._status",
    "SampleResult": "jaxotdm.samplers",
    "Schedule": "jaxotdm.schedules",
    "ScoreModel": "jaxotdm.networks",
    "SemidiscreteCertificate": "jaxotdm.ot",
    "SemidiscreteMap": "jaxotdm.ot",
    "SemidiscreteSampling": "jaxotdm.ot",
    "Streaming": "jaxotdm._streaming",
    "SubVP": "jaxotdm.schedules",
    "TrainState": "jaxotdm.training",
    "UNet": "jaxotdm.networks",
    "VE": "jaxotdm.schedules",
    "VPLinear": "jaxotdm.schedules",
    "bures_w2": "jaxotdm.ot",
    "exact_score": "jaxotdm.scores",
    "fit": "jaxotdm.training",
    "flow_map": "jaxotdm.flow",
    "gaussian_ot_map": "jaxotdm.ot",
    "init_train_state": "jaxotdm.training",
    "load_score": "jaxotdm.networks",
    "ot_accelerated_sample": "jaxotdm.samplers",
    "prepare_ot_prior": "jaxotdm.samplers",
    "probability_flow_velocity": "jaxotdm.flow",
    "pushforward_w2": "jaxotdm.ot",
    "sample": "jaxotdm.samplers",
    "semidiscrete_ot": "jaxotdm.ot",
    "sinkhorn": "jaxotdm.ot",
    "sinkhorn_divergence": "jaxotdm.ot",
    "train_step": "jaxotdm.training",
    "w2_exact": "jaxotdm.ot",
    "w2_gaussian_to_discrete": "jaxotdm.ot",
}

__all__ = [
    "Status",
    "ConvergenceWarning",
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
    "HybridNewtonSolver",
    "NewtonSolver",
    "ODESettings",
    "OTTSolver",
    "ExactNewtonSolver",
    "PointSharding",
    "SampleResult",
    "Schedule",
    "SemidiscreteCertificate",
    "SemidiscreteMap",
    "SemidiscreteSampling",
    "Streaming",
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
    "studies",
    "verify",
    "w2_exact",
    "w2_gaussian_to_discrete",
]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | set(_SUBMODULES))


if TYPE_CHECKING:  # for type checkers and IDEs
    from jaxotdm import data, metrics, networks, ot, samplers, training, verify
    from jaxotdm._status import ConvergenceWarning, Status
    from jaxotdm._streaming import Streaming
    from jaxotdm.flow import SOLVERS, FlowResult, ODESettings, flow_map, probability_flow_velocity
    from jaxotdm.measures import EmpiricalMeasure, GaussianMeasure
    from jaxotdm.networks import MLP, LearnedScore, ScoreModel, UNet, load_score
    from jaxotdm.ot import (
        AdamSolver,
        ExactNewtonSolver,
        HybridNewtonSolver,
        NewtonSolver,
        OTTSolver,
        SemidiscreteCertificate,
        SemidiscreteMap,
        SemidiscreteSampling,
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
