"""OT-accelerated sampling: one semi-discrete OT step to a small time ``T'``, then a short reverse chain.

The paper's Algorithm 2 (arXiv 2410.13431; the science page, docs/theory.md, section 7):

1. forward-diffuse the training set to ``T'``: ``x_i' = alpha_T' y_i + sigma_T' eps_i`` (one noise draw per
   point; ``noise_draws > 1`` draws several per point);
2. solve semi-discrete OT from ``N(0, I)`` to ``sum_i nu_i delta_{x_i'}`` (uniform ``nu_i`` for uniform data);
3. for ``z ~ N(0, I)`` put ``x_T' = grad u_h(z)`` (hard map, ``tau = 0``: one of the ``x_i'``) or the
   smoothed map (``tau > 0``: a softmax average of them);
4. finish with ``k`` reverse steps of any fixed-step sampler from ``T'`` to ``t_end``.

The OT step costs **no score evaluation**: the reported ``nfe`` is the reverse chain's alone. Steps 1-2 are
:func:`prepare_ot_prior`, which returns an :class:`OTPrior` (a PyTree reusable across many draws, carrying
its schedule); steps 3-4 are :meth:`OTPrior.sample` (checked) or :func:`ot_accelerated_step` (pure and
jittable with ``tau``, ``num_samples``, ``num_steps``, ``t_end``, ``grid`` and the sampler static).
:func:`ot_accelerated_sample` is the checked entry point for a prepared prior: it validates eagerly and, with
``throw=True`` (the default), raises outside ``jit`` when the OT solve or the chain failed (the status
contract of :mod:`jaxotdm._status`; under ``jit`` the statuses travel in the :class:`OTSampleResult`).

Conditional generation (our design; the paper does not say how it conditions): one OT map per class onto
that class's diffused points (:func:`prepare_conditional_ot_prior`) and a class-conditional score with a
guidance scale, supplied by an object with a ``for_class(label, guidance)`` method (see
:mod:`~jaxotdm.samplers.class_scores`): :class:`ExactClassScores` or :class:`LearnedClassScores`.
:meth:`ConditionalOTPrior.sample` draws one class (it is
``ot_accelerated_sample(class_scores.for_class(label, guidance), prior.for_class(label), ...)``).

Caveat (docs/theory.md, section 7): the hard map outputs *noised training points* by construction, so as
``T' -> 0`` the sampler returns the training set; report nearest-training-neighbour distances
(:func:`jaxotdm.metrics.memorisation`) beside any quality number.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

from jaxotdm import _validation as V
from jaxotdm._status import ConvergenceWarning, report_result
from jaxotdm._types import Array
from jaxotdm.samplers.class_scores import (
    ExactClassScores,
    GuidedScore,
    LearnedClassScores,
)
from jaxotdm.samplers.ot_prior import (
    _DEFAULT_SAMPLER,
    ConditionalOTPrior,
    OTPrior,
    OTSampleResult,
    ot_accelerated_step,
    ot_prior_points,
    prepare_conditional_ot_prior,
    prepare_ot_prior,
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
]

def ot_accelerated_sample(
    score: Callable[[Array, Array], Array],
    prior: OTPrior,
    *,
    key,
    num_samples: int,
    t_end: float,
    sampler=_DEFAULT_SAMPLER,
    num_steps: int | None = None,
    nfe: int | None = None,
    tau: float = 0.0,
    grid="uniform",
    throw: bool = True,
) -> OTSampleResult:
    """OT-accelerated sampling (Algorithm 2 of arXiv 2410.13431): one OT step to ``T'``, then ``k`` reverse steps.

    Steps 1-2 (diffuse the data to ``T'``, solve the OT map) are :func:`prepare_ot_prior`; this runs steps 3-4
    with the prepared :class:`OTPrior` (it carries ``T'``, the diffused data, the OT map and the schedule).

    Args:
        score: ``score(x, t)`` (exact or learned) of the data diffused by the prior's schedule.
        prior: a prepared :class:`OTPrior` (from :func:`prepare_ot_prior`).
        key: PRNG key (split for the prior draws and the chain's noise).
        num_samples: number of samples.
        t_end: end time of the reverse chain (``0 < t_end < T'``).
        sampler: any fixed-step sampler method (default Euler-Maruyama on the reverse SDE, as in the paper).
        num_steps: exactly one: reverse steps ``k``, or the score-evaluation budget.
        nfe: see ``num_steps``.
        tau: ``0`` for the hard map (outputs are diffused training points), ``> 0`` for the smoothed map.
        grid: the reverse chain's time grid (see :func:`~jaxotdm.samplers.time_grid`).
        throw: the status contract (:mod:`jaxotdm._status`): outside ``jit``, raise a ``RuntimeError`` when the
            result's ``status`` is not ``SUCCESS`` (the OT solve or the chain failed); under ``jit``, and with
            ``throw=False``, the statuses are returned in the result.

    Returns:
        An :class:`OTSampleResult` with ``status`` (the worse of ``ot_status`` and ``chain_status``). ``nfe``
        counts the reverse chain only: the OT step evaluates no score. No wall times (time the call from
        outside).

    Example:
        >>> import jax, jax.numpy as jnp, jaxotdm as jo
        >>> from jaxotdm.samplers import ot_accelerated_sample, prepare_ot_prior
        >>> y = jnp.array([[-1.0, 0.0], [1.0, 0.0], [0.0, 2.0]]); sched = jo.OU()
        >>> score = jo.exact_score(jo.EmpiricalMeasure(y), sched)
        >>> prior = prepare_ot_prior(sched, y, key=jax.random.key(0), t_prime=0.1)
        >>> out = ot_accelerated_sample(score, prior, key=jax.random.key(0), num_samples=8, num_steps=10, t_end=1e-3)
        >>> int(out.nfe), out.points.shape, jo.Status(int(out.status)).name
        (10, (8, 2), 'SUCCESS')
    """
    if not isinstance(prior, OTPrior):
        raise ValueError(f"`prior` must be an OTPrior from prepare_ot_prior, got {type(prior).__name__}.")
    V.check_bool(throw, "throw")
    with warnings.catch_warnings():  # the failure is reported once, below, under this function's name
        warnings.simplefilter("ignore", ConvergenceWarning)
        out = prior.sample(score, key=key, num_samples=num_samples, t_end=t_end, sampler=sampler,
                           num_steps=num_steps, nfe=nfe, tau=tau, grid=grid, throw=False)
    return report_result(out, what="ot_accelerated_sample", throw=throw)
