r"""Semi-discrete optimal transport from a source density (default ``N(0, I)``) to weighted points.

Convention (the paper's): the Brenier potential is ``u_h(z) = max_i (<z, x_i> + h_i)``, its gradient sends
the Laguerre cell ``W_i(h) = {z : <z, x_i> + h_i >= <z, x_j> + h_j for all j}`` to ``x_i``, and the optimal
heights maximise the concave energy ``E(h) = sum_i nu_i h_i - E_z[u_h(z)]`` whose gradient is
``nu_i - m_i(h)`` with ``m_i(h) = P(z in W_i(h))`` the cell masses. Heights are unique up to an additive
constant; we return them with mean zero. ott-jax / POT conventions: :mod:`jaxotdm.ot.semidiscrete.map`.

Layout (one concept per module):

* :mod:`~jaxotdm.ot.semidiscrete.problem`: the problem (centred, span-reduced targets, weights, source,
  streaming settings), validation and the sample-size arithmetic;
* :mod:`~jaxotdm.ot.semidiscrete.driver`: the solver protocol (``init``/``step``), the one
  ``lax.while_loop`` driver with progress reports, and the diagnostics type;
* one module per solver, each a subclass of :class:`SemidiscreteSolver`:
  :mod:`~jaxotdm.ot.semidiscrete.exact` (:class:`ExactNewtonSolver`, ours, the default in 1-D and 2-D: exact
  masses from the power diagram, nothing sampled), :mod:`~jaxotdm.ot.semidiscrete.hybrid`
  (:class:`HybridNewtonSolver`, ours, the default elsewhere: the candidate Newton with a detected-stall
  fallback to the resampling Newton), :mod:`~jaxotdm.ot.semidiscrete.newton`
  (:class:`NewtonSolver`, ours: resampling Newton, robust), :mod:`~jaxotdm.ot.semidiscrete.newton_candidates`
  (``CandidateNewtonSolver``, ours, experimental and outside ``__all__``: Newton on stored top-K candidates,
  fast in high dimension, stalls on some 2-D problems; the hybrid's first phase),
  :mod:`~jaxotdm.ot.semidiscrete.adam` (:class:`AdamSolver`, the paper's Algorithm 1),
  :mod:`~jaxotdm.ot.semidiscrete.ott` (:class:`OTTSolver`, ott-jax's SGD);
* :mod:`~jaxotdm.ot.semidiscrete.map`: :class:`SemidiscreteMap`, its certificate, :func:`cell_masses`, ott-jax
  conversion;
* :mod:`~jaxotdm.ot.semidiscrete.solve`: the entry point :func:`semidiscrete_ot`.

With the default Gaussian source, the solvers work in the span of the centred targets: for
``z ~ N(0, I_d)``, ``<z, x_i - c>`` has the law of ``<g, y_i>`` with ``g ~ N(0, I_r)``, ``r = min(n, d)``
and ``y`` the targets' coordinates in an orthonormal basis of their span. This is exact, not an
approximation, and saves a factor ``d / n`` when ``d > n``. Everything over targets is streamed in chunks
(:mod:`jaxotdm._streaming`) and everything over samples in batches regenerated from keys.
"""

from jaxotdm.ot.semidiscrete._passes import jit_masses as _jit_masses  # noqa: F401 (benchmarks)
from jaxotdm.ot.semidiscrete.adam import AdamSolver, AdamState
from jaxotdm.ot.semidiscrete.driver import (
    Progress,
    SemidiscreteDiagnostics,
    SemidiscreteHistory,
    SemidiscreteSolver,
    diagnostics,
    run,
)
from jaxotdm.ot.semidiscrete.exact import ExactNewtonSolver, ExactNewtonState, exact_cells
from jaxotdm.ot.semidiscrete.hybrid import HybridNewtonSolver, HybridNewtonState
from jaxotdm.ot.semidiscrete.map import SemidiscreteCertificate, SemidiscreteMap, cell_masses, certificate
from jaxotdm.ot.semidiscrete.newton import NewtonSchedule, NewtonSolver, NewtonState
from jaxotdm.ot.semidiscrete.newton_candidates import CandidateNewtonSolver  # noqa: F401 (experimental)
from jaxotdm.ot.semidiscrete.ott import OTTSolver, OTTState
from jaxotdm.ot.semidiscrete.problem import (
    DEFAULT_BATCH,  # noqa: F401
    SemidiscreteProblem,
    certificate_unit,
    required_samples,
    zscore,
)
from jaxotdm.ot.semidiscrete.problem import make_problem as _make_problem  # noqa: F401 (tests, benchmarks)
from jaxotdm.ot.semidiscrete.problem import zscore as _zscore  # noqa: F401
from jaxotdm.ot.semidiscrete.solve import SemidiscreteSampling, semidiscrete_ot

__all__ = [
    "AdamSolver",
    "AdamState",
    "HybridNewtonSolver",
    "HybridNewtonState",
    "NewtonSchedule",
    "NewtonSolver",
    "NewtonState",
    "OTTSolver",
    "OTTState",
    "ExactNewtonSolver",
    "ExactNewtonState",
    "Progress",
    "SemidiscreteCertificate",
    "SemidiscreteDiagnostics",
    "SemidiscreteHistory",
    "SemidiscreteMap",
    "SemidiscreteProblem",
    "SemidiscreteSampling",
    "SemidiscreteSolver",
    "cell_masses",
    "certificate",
    "certificate_unit",
    "diagnostics",
    "exact_cells",
    "required_samples",
    "run",
    "semidiscrete_ot",
    "zscore",
]
