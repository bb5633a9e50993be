"""The prepared state of OT-accelerated sampling (Algorithm 2): :class:`OTPrior` (the training set diffused
to ``T'`` and the semi-discrete OT map onto it), its per-class family :class:`ConditionalOTPrior`, and the
pure sampling step. See :mod:`jaxotdm.samplers.ot_accelerated` for the whole algorithm.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxotdm import _validation as V
from jaxotdm._pytree import pytree_dataclass, static_field
from jaxotdm._status import ConvergenceWarning, combine, report_result
from jaxotdm._types import Array, ArrayLike, Float, Int
from jaxotdm.ot import (
    Progress,
    SemidiscreteCertificate,
    SemidiscreteMap,
    SemidiscreteSampling,
    semidiscrete_ot,
)
from jaxotdm.samplers._core import sample
from jaxotdm.samplers.class_scores import (
    _check_labelled,
    _class_position,
)
from jaxotdm.samplers.sde import EulerMaruyama
from jaxotdm.schedules import Schedule

__all__ = ["OTPrior", "ConditionalOTPrior", "OTSampleResult", "prepare_ot_prior", "prepare_conditional_ot_prior",
           "ot_prior_points", "ot_accelerated_step"]


# ----------------------------------------------------------------------------------------------- state
_DEFAULT_SAMPLER = EulerMaruyama()  # immutable; the paper's Algorithm 2 uses Euler-Maruyama


@pytree_dataclass
class OTPrior:
    """Everything Algorithm 2 precomputes, as a PyTree (reuse it across sample calls and inside ``jit``).

    Attributes:
        ot_map: the semi-discrete OT map ``N(0, I) -> sum_i nu_i delta_{x_i'}`` (carries its certificate).
        diffused: ``(n * noise_draws, d)`` the forward-diffused training points ``x_i'`` (the OT targets).
        source_index: ``(n * noise_draws,)`` index of the training point each diffused point came from.
        t_prime: the time ``T'`` of the diffused points.
        schedule: the forward schedule that diffused them (the chain runs under it).
    """

    ot_map: SemidiscreteMap
    diffused: Float[Array, "m d"]
    source_index: Int[Array, " m"]
    t_prime: Float[Array, ""]
    schedule: Schedule

    @property
    def certificate(self) -> SemidiscreteCertificate | None:
        return self.ot_map.certificate

    @property
    def dim(self) -> int:
        return self.diffused.shape[1]

    def sample(self, score, *, key, num_samples: int, t_end: float, sampler=None, num_steps: int | None = None,
               nfe: int | None = None, tau: float = 0.0, grid="uniform", throw: bool = True) -> OTSampleResult:
        """Steps 3-4 of Algorithm 2 with this prior, validated: the OT map of ``num_samples`` prior draws,
        then ``num_steps`` (or ``nfe`` score evaluations) of ``sampler`` (default Euler-Maruyama, the paper's)
        from ``T'`` to ``t_end`` on ``grid``. ``throw``: the status contract of :mod:`jaxotdm._status`
        (outside ``jit`` a failed OT solve or chain raises; ``throw=False`` warns; under ``jit`` the statuses
        travel in the result).

        Example:
            >>> import jax, jax.numpy as jnp, jaxotdm as jo
            >>> from jaxotdm.samplers import prepare_ot_prior
            >>> y = jnp.array([[-1.0, 0.0], [1.0, 0.0], [0.0, 2.0]]); sched = jo.OU()
            >>> prior = prepare_ot_prior(sched, y, key=jax.random.key(0), t_prime=0.1)
            >>> out = prior.sample(jo.exact_score(jo.EmpiricalMeasure(y), sched), key=jax.random.key(1),
            ...                    num_samples=8, nfe=10, t_end=1e-3)
            >>> int(out.nfe), out.points.shape
            (10, (8, 2))
        """
        sampler = _DEFAULT_SAMPLER if sampler is None else sampler
        if not callable(score):
            raise ValueError(f"`score` must be callable as score(x, t), got {type(score).__name__}.")
        t = float(self.t_prime)
        _check_t_end(t_end, t)
        k = _steps(sampler, num_steps, nfe)
        num_samples = V.check_positive_int(num_samples, "num_samples")
        tau = _check_tau(tau)
        V.check_key(key)
        V.check_bool(throw, "throw")
        dim = getattr(score, "dim", None)
        if isinstance(dim, int) and dim != self.dim:
            raise ValueError(f"`score` has dimension {dim} but the data have dimension {self.dim}.")
        with warnings.catch_warnings():  # the chain's own warning: the composed status is reported once, below
            warnings.simplefilter("ignore", ConvergenceWarning)
            out = ot_accelerated_step(self, score, self.schedule, key, num_samples=num_samples, sampler=sampler,
                                      num_steps=k, t_end=t_end, tau=tau, grid=grid)
        return report_result(out, what="OTPrior.sample", throw=throw)


@pytree_dataclass
class ConditionalOTPrior:
    """One :class:`OTPrior` per class (classes have different sizes, so a tuple, not a stacked array).

    Attributes:
        priors: the per-class priors, in the order of ``classes``.
        classes: the class labels (static).
    """

    priors: tuple
    classes: tuple = static_field(())

    def __post_init__(self):  # construction only (PyTree unflattening does not call __init__)
        if not isinstance(self.priors, tuple) or not self.priors:
            raise ValueError(f"`priors` must be a non-empty tuple of OTPrior (one per class), got {self.priors!r}.")
        if not all(isinstance(p, OTPrior) for p in self.priors):
            raise TypeError("`priors` must hold OTPrior objects (from prepare_ot_prior), got "
                            f"{sorted({type(p).__name__ for p in self.priors})}.")
        if not isinstance(self.classes, tuple) or len(self.classes) != len(self.priors):
            raise ValueError(f"`classes` must be a tuple of {len(self.priors)} labels (one per prior), got "
                             f"{self.classes!r}.")

    def for_class(self, label) -> OTPrior:
        """The prior of class ``label``; ValueError for a label absent from the data."""
        return self.priors[_class_position(self.classes, label)]

    def sample(self, class_scores, *, label: int, key, num_samples: int, t_end: float, guidance: float = 0.0,
               sampler=None, num_steps: int | None = None, nfe: int | None = None, tau: float = 0.0,
               grid="uniform", throw: bool = True) -> OTSampleResult:
        """The conditional Algorithm 2 for class ``label``: that class's OT map, then the chain of
        ``class_scores.for_class(label, guidance)`` (see :meth:`OTPrior.sample` for the other arguments).

        Example:
            >>> import jax, jax.numpy as jnp, jaxotdm as jo
            >>> from jaxotdm.samplers import ExactClassScores, prepare_conditional_ot_prior
            >>> y = jnp.array([[-2.0], [-1.0], [1.0], [2.0]]); lab = jnp.array([0, 0, 1, 1]); sched = jo.OU()
            >>> cs = ExactClassScores.from_data(y, lab, sched)
            >>> cp = prepare_conditional_ot_prior(sched, y, lab, key=jax.random.key(0), t_prime=0.05)
            >>> out = cp.sample(cs, label=1, key=jax.random.key(0), num_samples=6, num_steps=5, t_end=1e-3)
            >>> bool(jnp.all(out.points > 0))
            True
        """
        if not hasattr(class_scores, "for_class"):
            raise ValueError("`class_scores` must have a for_class(label, guidance) method (ExactClassScores, "
                             f"LearnedClassScores), got {type(class_scores).__name__}.")
        prior = self.for_class(label)
        score = class_scores.for_class(label, guidance)
        return prior.sample(score, key=key, num_samples=num_samples, t_end=t_end, sampler=sampler,
                            num_steps=num_steps, nfe=nfe, tau=tau, grid=grid, throw=throw)


@pytree_dataclass
class OTSampleResult:
    """Result of OT-accelerated sampling.

    Attributes:
        points: ``(num_samples, d)`` samples at ``t_end``.
        nfe: score evaluations of the reverse chain; the OT step adds none.
        num_steps: reverse steps taken.
        times: the reverse chain's time grid ``T' = t_0 > ... > t_K = t_end``.
        initial_points: ``(num_samples, d)`` the OT-mapped points at ``T'`` (the chain's start).
        assignment: ``(num_samples,)`` Laguerre cell of each prior draw (index into ``diffused``).
        certificate: the OT map's accuracy certificate (max relative cell-mass error on a fresh sample).
        prior: the :class:`OTPrior` used (diffused points, map).
        status: ``int32`` :class:`~jaxotdm.Status`: the first failure of the OT solve and the chain, else
            ``SUCCESS`` (the status contract, :mod:`jaxotdm._status`).
        ot_status: the OT solve's status (``prior.ot_map.diagnostics.status``; ``SUCCESS`` when the map
            carries no diagnostics).
        chain_status: the reverse chain's :class:`~jaxotdm.samplers.SampleResult` status (divergence, NaN).

    An immutable PyTree (``result.replace(...)`` for a modified copy). It carries no wall times: time the
    call from outside (the ``jaxotdm sample`` command and the benchmarks do).
    """

    points: Float[Array, "k d"]
    nfe: Int[Array, ""]
    num_steps: Int[Array, ""]
    times: Float[Array, " s"]
    initial_points: Float[Array, "k d"]
    assignment: Int[Array, " k"]
    certificate: Any
    prior: OTPrior
    status: Int[Array, ""]
    ot_status: Int[Array, ""]
    chain_status: Int[Array, ""]




def _check_tau(tau) -> float:
    if isinstance(tau, bool) or not isinstance(tau, (int, float, np.floating, np.integer)):
        raise ValueError(f"`tau` must be a Python number >= 0 (it is static), got {tau!r}.")
    t = float(tau)
    if not np.isfinite(t) or t < 0:
        raise ValueError(f"`tau` must be a finite number >= 0, got {tau!r}.")
    return t


def _check_t_prime(schedule: Schedule, t_prime) -> float:
    if not isinstance(schedule, Schedule):
        raise ValueError(f"`schedule` must be a jaxotdm Schedule, got {type(schedule).__name__}.")
    if t_prime is None or isinstance(t_prime, (str, bytes, bool)):
        raise V.ArgumentTypeError(f"`t_prime` must be a number, got {t_prime!r}.")
    if jnp.ndim(t_prime) != 0 or not V.is_concrete(t_prime):
        raise ValueError(f"`t_prime` must be a concrete scalar, got {t_prime!r}.")
    V.check_time(t_prime, "t_prime", t_max=schedule.t_max)  # also refuses times that vanish in the dtype
    return float(t_prime)


def _check_t_end(t_end, t_prime: float) -> None:
    if t_end is None or isinstance(t_end, (str, bytes)):
        raise V.ArgumentTypeError(f"`t_end` must be a number, got {t_end!r}.")
    if V.is_concrete(t_end):
        te = float(t_end)
        if not (np.isfinite(te) and te > 0):
            raise ValueError(f"`t_end` must be > 0, got {te}.")
        if not te < t_prime:
            raise ValueError(f"`t_prime` must be > `t_end` (the chain runs from T' down to t_end), got "
                             f"t_prime={t_prime}, t_end={te}.")


def _steps(sampler, num_steps, nfe) -> int:
    per = getattr(sampler, "evals_per_step", None)
    if per is None or not hasattr(sampler, "step"):
        raise ValueError(f"`sampler` must be a sampler method object (Euler(), DDIM(), ...), got {sampler!r}.")
    if (num_steps is None) == (nfe is None):
        raise ValueError("pass exactly one of `num_steps` and `nfe`.")
    if nfe is not None:
        nfe = V.check_positive_int(nfe, "nfe")
        if nfe % per:
            raise ValueError(f"`nfe` must be a multiple of {per} for {type(sampler).__name__}, got {nfe}.")
        return nfe // per
    return V.check_positive_int(num_steps, "num_steps")


def prepare_ot_prior(
    schedule: Schedule,
    data_points: Float[ArrayLike, "n d"],
    *,
    key,
    t_prime: float,
    noise_draws: int = 1,
    weights: Float[ArrayLike, " n"] | None = None,
    ot_tol: float = 0.1,
    ot_solver=None,
    certificate_samples: int | None = None,
    progress: Callable[[Progress], object] | None = None,
) -> OTPrior:
    """Steps 1-2 of Algorithm 2: diffuse the data to ``T'`` and solve semi-discrete OT onto them.

    Args:
        schedule: the forward schedule.
        data_points: ``(n, d)`` training points.
        key: PRNG key (split: forward noise, OT solve and certificate).
        t_prime: the OT time ``T'`` in ``(0, schedule.t_max)``.
        noise_draws: forward noise draws per training point (the paper: 1).
        weights: ``(n,)`` data weights (uniform if omitted); each diffused copy gets ``w_i / noise_draws``.
        ot_tol: requested max relative cell-mass error of the OT solve.
        ot_solver: a semi-discrete solver object (default :class:`~jaxotdm.ot.HybridNewtonSolver`).
        certificate_samples: fresh samples for the OT certificate (solver default if ``None``).
        progress: optional host callback, called after every OT solver iteration with a
            :class:`~jaxotdm.ot.Progress` (a driver's progress bar; the library itself prints nothing).

    Returns:
        An :class:`OTPrior`. An OT solve that misses ``ot_tol`` does not raise here: it warns
        (:class:`~jaxotdm.ConvergenceWarning`) and its status stays in ``ot_map.diagnostics.status``, which
        :meth:`OTPrior.sample` reports (``ot_status``; raising by default).

    Example:
        >>> import jax, jax.numpy as jnp, jaxotdm as jo
        >>> from jaxotdm.samplers import prepare_ot_prior
        >>> prior = prepare_ot_prior(jo.OU(), jnp.array([[-1.0], [1.0]]), key=jax.random.key(0), t_prime=0.1)
        >>> prior.diffused.shape
        (2, 1)
    """
    t = _check_t_prime(schedule, t_prime)
    V.check_key(key)
    V.fraction(ot_tol, "ot_tol")
    x = V.as_float_array(data_points, "data_points")
    V.check_ndim(x, 2, "data_points", "(n, d)")
    if x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"`data_points` must have at least one point and one dimension, got {tuple(x.shape)}.")
    V.check_finite(x, "data_points")
    noise_draws = V.check_positive_int(noise_draws, "noise_draws")
    n = x.shape[0]
    if weights is None:
        w = jnp.full((n,), 1.0 / n, x.dtype)
    else:
        w = V.as_float_array(weights, "weights", dtype=x.dtype)
        if w.shape != (n,):
            raise ValueError(f"`weights` must have shape ({n},) to match `data_points`, got {tuple(w.shape)}.")
    k_noise, k_ot = jax.random.split(key)
    tt = jnp.asarray(t, x.dtype)
    idx = jnp.tile(jnp.arange(n), noise_draws)
    eps = jax.random.normal(k_noise, (n * noise_draws, x.shape[1]), x.dtype)
    diffused = schedule.alpha(tt) * x[idx] + schedule.sigma(tt) * eps
    smap = semidiscrete_ot(
        diffused, w[idx] / noise_draws, key=k_ot, tol=ot_tol, solver=ot_solver,
        sampling=SemidiscreteSampling(certificate_samples=certificate_samples), progress=progress,
        throw=False,  # a failed solve warns and travels in the map's status (OTSampleResult.ot_status)
    )
    return OTPrior(smap, diffused, idx, tt, schedule)


def prepare_conditional_ot_prior(
    schedule: Schedule,
    data_points: Float[ArrayLike, "n d"],
    labels: Int[ArrayLike, " n"],
    *,
    key,
    t_prime: float,
    noise_draws: int = 1,
    ot_tol: float = 0.1,
    ot_solver=None,
    certificate_samples: int | None = None,
) -> ConditionalOTPrior:
    """One :func:`prepare_ot_prior` per class, onto that class's diffused points (keys folded by label)."""
    x, lab = _check_labelled(data_points, labels)
    V.check_key(key)
    classes = tuple(int(c) for c in np.unique(lab))
    priors = tuple(
        prepare_ot_prior(
            schedule, x[np.nonzero(lab == c)[0]], key=jax.random.fold_in(key, c), t_prime=t_prime,
            noise_draws=noise_draws, ot_tol=ot_tol, ot_solver=ot_solver, certificate_samples=certificate_samples,
        )
        for c in classes
    )
    return ConditionalOTPrior(priors, classes)


# ------------------------------------------------------------------------------------------------ sample
def ot_prior_points(prior: OTPrior, z: Float[ArrayLike, "k d"], tau: float = 0.0):
    """Step 3: the hard (``tau = 0``) or smoothed OT map applied to prior draws ``z``; jittable.

    Returns ``(x_T', assignment)`` with ``assignment`` the Laguerre cell of each ``z``.
    """
    tau = _check_tau(tau)
    if V.is_concrete(z):  # eager calls: refuse NaN/inf draws (they have no Laguerre cell)
        z = V.as_float_array(z, "z")
        if z.ndim != 2 or z.shape[1] != prior.dim:
            raise ValueError(f"`z` must have shape (k, {prior.dim}), got {z.shape}.")
        V.check_finite(z, "z")
    return prior.ot_map.transport(z, tau), prior.ot_map.assign(z)


def ot_accelerated_step(
    prior: OTPrior,
    score: Callable[[Array, Array], Array],
    schedule: Schedule,
    key,
    *,
    num_samples: int,
    sampler=_DEFAULT_SAMPLER,
    num_steps: int,
    t_end: float,
    tau: float = 0.0,
    grid="uniform",
) -> OTSampleResult:
    """Steps 3-4 of Algorithm 2 for a prepared :class:`OTPrior`: pure and jittable.

    Static (hashable) arguments when jitting: ``num_samples``, ``sampler``, ``num_steps``, ``t_end``,
    ``tau`` and ``grid`` (e.g. ``eqx.filter_jit`` or ``jax.jit(functools.partial(...))``); ``prior``,
    ``score``, ``schedule`` and ``key`` may be traced. No eager validation beyond static checks; use
    :meth:`OTPrior.sample` for the checked entry point.

    Example:
        >>> import jax, jax.numpy as jnp, jaxotdm as jo
        >>> from jaxotdm.samplers import prepare_ot_prior, ot_accelerated_step, DDIM
        >>> y = jnp.array([[-1.0], [1.0]]); sched = jo.OU()
        >>> prior = prepare_ot_prior(sched, y, key=jax.random.key(0), t_prime=0.2)
        >>> score = jo.exact_score(jo.EmpiricalMeasure(y), sched)
        >>> out = ot_accelerated_step(prior, score, sched, jax.random.key(1), num_samples=4,
        ...                           sampler=DDIM(), num_steps=5, t_end=1e-3)
        >>> int(out.nfe), out.points.shape
        (5, (4, 1))
    """
    num_samples = V.check_int(num_samples, "num_samples", minimum=1)
    num_steps = V.check_int(num_steps, "num_steps", minimum=1)
    k_prior, k_chain = jax.random.split(key)
    z = jax.random.normal(k_prior, (num_samples, prior.dim), prior.diffused.dtype)
    x0, cell = ot_prior_points(prior, z, tau)
    out = sample(sampler, score, schedule, x0, t_start=prior.t_prime, t_end=t_end, num_steps=num_steps,
                 grid=grid, key=k_chain, throw=False)  # its status is combined with the OT solve's below
    diag = prior.ot_map.diagnostics
    ot_status = combine(None if diag is None else diag.status)
    return OTSampleResult(out.points, out.nfe, out.num_steps, out.times, x0, cell, prior.certificate, prior,
                          combine(ot_status, out.status), ot_status, out.status)
