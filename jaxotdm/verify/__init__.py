"""Theorem verification: measurements of the claims of arXiv 2410.13431 (reported as measured)."""

from jaxotdm.verify.convergence import (
    ConvergenceResult,
    ExponentialFit,
    convergence_to_brenier,
    fit_exponential,
)

__all__ = ["ConvergenceResult", "ExponentialFit", "convergence_to_brenier", "fit_exponential"]

try:  # prior error and OT correction (jaxotdm.verify.prior)
    from jaxotdm.verify.prior import *  # noqa: F403
    from jaxotdm.verify.prior import __all__ as _prior_all

    __all__ += list(_prior_all)
except ImportError:  # pragma: no cover - while the module is being written
    pass
