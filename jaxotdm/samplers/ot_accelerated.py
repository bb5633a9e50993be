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
:func:`ot_accelerated_sample` takes a prepared prior (or, in its earlier form, the data and the preparation
settings) and also reports wall times.

Conditional generation (our design; the paper does not say how it conditions): one OT map per class onto
that class's diffused points (:func:`prepare_conditional_ot_prior`) and a class-conditional score with a
guidance scale, supplied by an object with a ``for_class(label, guidance)`` method (see
:mod:`~jaxotdm.samplers.class_scores`): :class:`ExactClassScores` or :class:`LearnedClassScores`.
:meth:`ConditionalOTPrior.sample` draws one class.

Caveat (docs/theory.md, section 7): the hard map outputs *noised training points* by construction, so as
``T' -> 0`` the sampler returns the training set; report nearest-training-neighbour distances
(:func:`jaxotdm.metrics.memorisation`) beside any quality number.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import numpy as np

from jaxotdm import _validation as V
from jaxotdm._deprecation import renamed
from jaxotdm._types import Array, ArrayLike, Float, Int
from jaxotdm.samplers.class_scores import (
    ExactClassScores,
    GuidedScore,
    LearnedClassScores,
    _check_labelled,
    _class_position,
)
from jaxotdm.samplers.ot_prior import (
    _DEFAULT_SAMPLER,
    ConditionalOTPrior,
    OTPrior,
    OTSampleResult,
    _check_t_end,
    _check_t_prime,
    _check_tau,
    _steps,
    ot_accelerated_step,
    ot_prior_points,
    prepare_conditional_ot_prior,
    prepare_ot_prior,
)
from jaxotdm.schedules import Schedule

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
]

_PREPARATION_DEFAULTS = {"noise_draws": 1, "ot_tol": 0.1, "ot_solver": None, "weights": None}


def _no_preparation_settings(**given) -> None:
    for name, value in given.items():
        if value is not _PREPARATION_DEFAULTS[name] and value != _PREPARATION_DEFAULTS[name]:
            raise ValueError(f"`{name}` is a preparation setting: pass it to prepare_ot_prior, not with a prepared prior.")


def ot_accelerated_sample(
    score: Callable[[Array, Array], Array],
    prior: OTPrior | Schedule,
    data_points: Float[ArrayLike, "n d"] | None = None,
    *,
    key,
    num_samples: int,
    t_end: float,
    sampler=_DEFAULT_SAMPLER,
    num_steps: int | None = None,
    nfe: int | None = None,
    tau: float = 0.0,
    grid="uniform",
    t_prime: float | None = None,
    noise_draws: int = 1,
    ot_tol: float = 0.1,
    ot_solver=None,
    ot_method=None,
    ot_map: OTPrior | None = None,
    weights: Float[ArrayLike, " n"] | None = None,
) -> OTSampleResult:
    """OT-accelerated sampling (Algorithm 2 of arXiv 2410.13431): one OT step to ``T'``, then ``k`` reverse steps.

    Pass a prepared :class:`OTPrior` (from :func:`prepare_ot_prior`; it carries ``T'``, the diffused data,
    the OT map and the schedule). The earlier form ``ot_accelerated_sample(score, schedule, data_points,
    t_prime=..., ...)`` prepares the prior here from the preparation settings ``noise_draws``, ``ot_tol``,
    ``ot_solver`` and ``weights`` (or reuses ``ot_map``).

    Args:
        score: ``score(x, t)`` (exact or learned) of the data diffused by the prior's schedule.
        prior: a prepared :class:`OTPrior`, or (earlier form) the schedule.
        data_points: (earlier form) ``(n, d)`` training points.
        key: PRNG key (split for the preparation, the prior draws and the chain's noise).
        num_samples: number of samples.
        t_end: end time of the reverse chain.
        sampler: any fixed-step sampler method (default Euler-Maruyama on the reverse SDE, as in the paper).
        num_steps: exactly one: reverse steps ``k``, or the score-evaluation budget.
        nfe: see ``num_steps``.
        tau: ``0`` for the hard map (outputs are diffused training points), ``> 0`` for the smoothed map.
        grid: the reverse chain's time grid (see :func:`~jaxotdm.samplers.time_grid`).
        t_prime: the OT time ``T'`` (earlier form; with a prepared prior it must equal the prior's if given).
        noise_draws: (earlier form) preparation settings.
        ot_tol: see ``noise_draws``.
        ot_solver: see ``noise_draws``.
        ot_method: deprecated name of ``ot_solver``.
        weights: see ``noise_draws``.
        ot_map: see ``noise_draws``.

    Returns:
        An :class:`OTSampleResult`. ``nfe`` counts the reverse chain only: the OT step evaluates no score.
        The result carries no wall times (time the call from outside).

    Example:
        >>> import jax, jax.numpy as jnp, jaxotdm as jo
        >>> from jaxotdm.samplers import ot_accelerated_sample, prepare_ot_prior
        >>> y = jnp.array([[-1.0, 0.0], [1.0, 0.0], [0.0, 2.0]]); sched = jo.OU()
        >>> score = jo.exact_score(jo.EmpiricalMeasure(y), sched)
        >>> prior = prepare_ot_prior(sched, y, key=jax.random.key(0), t_prime=0.1)
        >>> out = ot_accelerated_sample(score, prior, key=jax.random.key(0), num_samples=8, num_steps=10, t_end=1e-3)
        >>> int(out.nfe), out.points.shape
        (10, (8, 2))
    """
    ot_solver = renamed(ot_solver, ot_method, new="ot_solver", old="ot_method", where="ot_accelerated_sample")
    if not callable(score):
        raise ValueError(f"`score` must be callable as score(x, t), got {type(score).__name__}.")
    V.check_key(key)
    k_prep, k_step = jax.random.split(key)
    if isinstance(prior, OTPrior):
        _no_preparation_settings(noise_draws=noise_draws, ot_tol=ot_tol, ot_solver=ot_solver, weights=weights)
        if ot_map is not None or data_points is not None:
            raise ValueError("with a prepared prior, pass neither `data_points` nor `ot_map`.")
        if t_prime is not None and not np.isclose(float(prior.t_prime), _check_t_prime(prior.schedule, t_prime),
                                                  rtol=1e-6, atol=0.0):
            raise ValueError(f"the prior was prepared at t_prime={float(prior.t_prime)}, but `t_prime`={t_prime}.")
        schedule = prior.schedule
    else:
        schedule = prior
        if t_prime is None:
            raise ValueError("pass a prepared `prior` (an OTPrior), or the schedule with `t_prime`.")
        t = _check_t_prime(schedule, t_prime)
        prior = _legacy_prior(score, schedule, data_points, k_prep, t, ot_map, noise_draws=noise_draws,
                              ot_tol=ot_tol, ot_solver=ot_solver, weights=weights)
    t = float(prior.t_prime)
    _check_t_end(t_end, t)
    k = _steps(sampler, num_steps, nfe)
    num_samples = V.check_positive_int(num_samples, "num_samples")
    tau = _check_tau(tau)
    dim = getattr(score, "dim", None)
    if isinstance(dim, int) and dim != prior.dim:
        raise ValueError(f"`score` has dimension {dim} but the data have dimension {prior.dim}.")
    return ot_accelerated_step(prior, score, schedule, k_step, num_samples=num_samples, sampler=sampler,
                               num_steps=k, t_end=t_end, tau=tau, grid=grid)


def _legacy_prior(score, schedule, data_points, key, t, ot_map, **settings) -> OTPrior:
    """The earlier form of :func:`ot_accelerated_sample`: a given ``ot_map``, or one prepared from the data."""
    dim = getattr(score, "dim", None)
    if ot_map is not None:
        if not isinstance(ot_map, OTPrior):
            raise ValueError(f"`ot_map` must be an OTPrior from prepare_ot_prior, got {type(ot_map).__name__}.")
        if not np.isclose(float(ot_map.t_prime), t, rtol=1e-6, atol=0.0):
            raise ValueError(f"`ot_map` was prepared at t_prime={float(ot_map.t_prime)}, but `t_prime`={t}.")
        if data_points is not None:
            x = V.as_float_array(data_points, "data_points")
            if x.ndim != 2 or x.shape[1] != ot_map.dim:
                raise ValueError(f"`data_points` must have shape (n, {ot_map.dim}) to match `ot_map`, got "
                                 f"{tuple(x.shape)}.")
        return ot_map
    if data_points is None:
        raise ValueError("pass `data_points` (or a prepared `ot_map`).")
    x = V.as_float_array(data_points, "data_points")
    if isinstance(dim, int) and (x.ndim != 2 or x.shape[1] != dim):
        raise ValueError(f"`data_points` must have shape (n, {dim}) to match the score's dimension, got "
                         f"{tuple(x.shape)}.")
    return prepare_ot_prior(schedule, data_points, key=key, t_prime=t, **settings)


def ot_accelerated_conditional_sample(
    class_scores,
    prior: ConditionalOTPrior | Schedule,
    data_points: Float[ArrayLike, "n d"] | None = None,
    labels: Int[ArrayLike, " n"] | None = None,
    *,
    label: int,
    key,
    num_samples: int,
    t_end: float,
    guidance: float = 0.0,
    sampler=_DEFAULT_SAMPLER,
    num_steps: int | None = None,
    nfe: int | None = None,
    tau: float = 0.0,
    grid="uniform",
    t_prime: float | None = None,
    noise_draws: int = 1,
    ot_tol: float = 0.1,
    ot_solver=None,
    ot_method=None,
    ot_map: ConditionalOTPrior | None = None,
) -> OTSampleResult:
    """Class-conditional OT-accelerated sampling: the class-``label`` OT map, then the class score's chain.

    Pass a prepared :class:`ConditionalOTPrior` (from :func:`prepare_conditional_ot_prior`), or (earlier
    form) the schedule, the labelled data and ``t_prime`` with the preparation settings (only the requested
    class's prior is prepared then).

    Args:
        class_scores: an object with ``for_class(label, guidance) -> score`` (:class:`ExactClassScores`,
            :class:`LearnedClassScores`).
        prior: a :class:`ConditionalOTPrior`, or (earlier form) the schedule.
        data_points: (earlier form) the labelled training set.
        labels: see ``data_points``.
        label: the requested class; ValueError if it is not a class of the data.
        guidance: classifier-free guidance scale ``w`` (``0``: the plain conditional score).
        key: as in :func:`ot_accelerated_sample`.
        num_samples: as in :func:`ot_accelerated_sample`.
        t_end: as in :func:`ot_accelerated_sample`.
        sampler: as in :func:`ot_accelerated_sample`.
        num_steps: as in :func:`ot_accelerated_sample`.
        nfe: as in :func:`ot_accelerated_sample`.
        tau: as in :func:`ot_accelerated_sample`.
        grid: as in :func:`ot_accelerated_sample`.
        t_prime: as in :func:`ot_accelerated_sample`.
        noise_draws: as in :func:`ot_accelerated_sample`.
        ot_tol: as in :func:`ot_accelerated_sample`.
        ot_solver: as in :func:`ot_accelerated_sample`.
        ot_method: deprecated name of ``ot_solver``.
        ot_map: as in :func:`ot_accelerated_sample` (here a ConditionalOTPrior).

    Example:
        >>> import jax, jax.numpy as jnp, jaxotdm as jo
        >>> from jaxotdm.samplers import ExactClassScores, ot_accelerated_conditional_sample
        >>> from jaxotdm.samplers import prepare_conditional_ot_prior
        >>> y = jnp.array([[-2.0], [-1.0], [1.0], [2.0]]); lab = jnp.array([0, 0, 1, 1]); sched = jo.OU()
        >>> cs = ExactClassScores.from_data(y, lab, sched)
        >>> cp = prepare_conditional_ot_prior(sched, y, lab, key=jax.random.key(0), t_prime=0.05)
        >>> out = ot_accelerated_conditional_sample(cs, cp, label=1, key=jax.random.key(0), num_samples=6,
        ...                                         num_steps=5, t_end=1e-3)
        >>> bool(jnp.all(out.points > 0))
        True
    """
    ot_solver = renamed(ot_solver, ot_method, new="ot_solver", old="ot_method", where="ot_accelerated_conditional_sample")
    if not hasattr(class_scores, "for_class"):
        raise ValueError("`class_scores` must have a for_class(label, guidance) method (ExactClassScores, "
                         f"LearnedClassScores), got {type(class_scores).__name__}.")
    V.check_key(key)
    k_prep, k_sample = jax.random.split(key)
    if isinstance(prior, ConditionalOTPrior):
        _no_preparation_settings(noise_draws=noise_draws, ot_tol=ot_tol, ot_solver=ot_solver, weights=None)
        if ot_map is not None or data_points is not None or labels is not None:
            raise ValueError("with a prepared prior, pass neither `data_points`/`labels` nor `ot_map`.")
        cprior, schedule = prior, prior.priors[0].schedule
        t = float(prior.priors[0].t_prime) if t_prime is None else _check_t_prime(schedule, t_prime)
    else:
        schedule, cprior = prior, ot_map
        if t_prime is None:
            raise ValueError("pass a prepared `prior` (a ConditionalOTPrior), or the schedule with `t_prime`.")
        t = _check_t_prime(schedule, t_prime)
    _check_t_end(t_end, t)
    _steps(sampler, num_steps, nfe)
    _check_tau(tau)
    if cprior is None:
        if data_points is None or labels is None:
            raise ValueError("pass `data_points` and `labels` (or a prepared `ot_map`).")
        x, lab = _check_labelled(data_points, labels)
        classes = tuple(int(c) for c in np.unique(lab))
        _class_position(classes, label)
        one = prepare_ot_prior(schedule, x[np.nonzero(lab == int(label))[0]], key=jax.random.fold_in(k_prep, int(label)),
                               t_prime=t, noise_draws=noise_draws, ot_tol=ot_tol, ot_solver=ot_solver)
    else:
        if not isinstance(cprior, ConditionalOTPrior):
            raise ValueError(f"`ot_map` must be a ConditionalOTPrior, got {type(cprior).__name__}.")
        one = cprior.for_class(label)
    score = class_scores.for_class(label, guidance)
    return ot_accelerated_sample(score, one, key=k_sample, t_prime=t, num_samples=num_samples, sampler=sampler,
                                 num_steps=num_steps, nfe=nfe, t_end=t_end, tau=tau, grid=grid)
