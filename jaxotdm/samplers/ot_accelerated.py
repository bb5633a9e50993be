"""OT-accelerated sampling: one semi-discrete OT step to a small time ``T'``, then a short reverse chain.

The paper's Algorithm 2 (arXiv 2410.13431, section 5 of ``science.md``):

1. forward-diffuse the training set to ``T'``: ``x_i' = alpha_T' y_i + sigma_T' eps_i`` (one noise draw per
   point; ``noise_draws > 1`` draws several per point);
2. solve semi-discrete OT from ``N(0, I)`` to ``sum_i nu_i delta_{x_i'}`` (uniform ``nu_i`` for uniform data);
3. for ``z ~ N(0, I)`` put ``x_T' = grad u_h(z)`` (hard map, ``tau = 0``: one of the ``x_i'``) or the
   smoothed map (``tau > 0``: a softmax average of them);
4. finish with ``k`` reverse steps of any fixed-step sampler from ``T'`` to ``t_end``.

The OT step costs **no score evaluation**: the reported ``nfe`` is the reverse chain's alone. Step 1-2 are
:func:`prepare_ot_prior` (returns an :class:`OTPrior` PyTree reusable across many draws); step 3-4 are
:func:`ot_accelerated_step` (pure and jittable with ``tau``, ``num_samples``, ``num_steps``, ``t_end``,
``grid`` and the sampler static). :func:`ot_accelerated_sample` does both and times them.

Conditional generation (our design; the paper does not say how it conditions): one OT map per class onto
that class's diffused points (:func:`prepare_conditional_ot_prior`) and a class-conditional score with a
guidance scale, supplied by an object with a ``for_class(label, guidance)`` method:
:class:`ExactClassScores` (exact class-conditional scores, with the classifier-free-guidance combination
``(1 + w) s_c - w s`` of exact scores when ``w != 0``) or :class:`LearnedClassScores` (a class-conditional
:class:`~jaxotdm.networks.ScoreModel` with its null label for the unconditional branch).

Caveat (``science.md`` section 5): the hard map outputs *noised training points* by construction, so as
``T' -> 0`` the sampler returns the training set; report nearest-training-neighbour distances
(:func:`jaxotdm.metrics.memorisation`) beside any quality number.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxotdm import _validation as V
from jaxotdm._pytree import pytree_dataclass, static_field
from jaxotdm._types import Array, ArrayLike, Float, Int
from jaxotdm.measures import EmpiricalMeasure
from jaxotdm.ot import SemidiscreteCertificate, SemidiscreteMap, semidiscrete_ot
from jaxotdm.samplers._core import sample
from jaxotdm.samplers.sde import EulerMaruyama
from jaxotdm.schedules import Schedule
from jaxotdm.scores import exact_score

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
    """

    ot_map: SemidiscreteMap
    diffused: Float[Array, "m d"]
    source_index: Int[Array, " m"]
    t_prime: Float[Array, ""]

    @property
    def certificate(self) -> SemidiscreteCertificate | None:
        return self.ot_map.certificate

    @property
    def dim(self) -> int:
        return self.diffused.shape[1]


@pytree_dataclass
class ConditionalOTPrior:
    """One :class:`OTPrior` per class (classes have different sizes, so a tuple, not a stacked array).

    Attributes:
        priors: the per-class priors, in the order of ``classes``.
        classes: the class labels (static).
    """

    priors: tuple
    classes: tuple = static_field(())

    def for_class(self, label) -> OTPrior:
        """The prior of class ``label``; ValueError for a label absent from the data."""
        return self.priors[_class_position(self.classes, label)]


class OTSampleResult(NamedTuple):
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
        timings: wall seconds ``{"diffuse", "ot_solve", "sample"}`` (host-side; ``{}`` from the step).
    """

    points: Float[Array, "k d"]
    nfe: Int[Array, ""]
    num_steps: Int[Array, ""]
    times: Float[Array, " s"]
    initial_points: Float[Array, "k d"]
    assignment: Int[Array, " k"]
    certificate: Any
    prior: OTPrior
    timings: dict


# ------------------------------------------------------------------------------------ class scores
@pytree_dataclass
class GuidedScore:
    """Classifier-free-guidance combination ``(1 + w) conditional - w unconditional`` of two scores."""

    conditional: Any
    unconditional: Any
    guidance: float = static_field(0.0)

    @property
    def dim(self):
        return getattr(self.conditional, "dim", None)

    def __call__(self, x, t):
        w = self.guidance
        return (1.0 + w) * self.conditional(x, t) - w * self.unconditional(x, t)


@pytree_dataclass
class ExactClassScores:
    """Exact class-conditional scores of a labelled dataset under ``schedule``.

    ``for_class(c)`` is the exact score of the class-``c`` points, written as the full dataset with the
    other classes' weights set to zero, so that every class's score has the same shapes (one compilation
    of the sampler serves all classes). ``for_class(c, guidance=w)`` with ``w != 0`` returns
    ``(1 + w) s_c - w s`` with ``s`` the exact unconditional score of the whole dataset.

    Build with :meth:`from_data`.
    """

    points: Float[Array, "n d"]
    labels: Int[Array, " n"]
    schedule: Schedule
    classes: tuple = static_field(())

    @classmethod
    def from_data(cls, points: Float[ArrayLike, "n d"], labels: Int[ArrayLike, " n"], schedule: Schedule):
        x, lab = _check_labelled(points, labels)
        if not isinstance(schedule, Schedule):
            raise ValueError(f"`schedule` must be a jaxotdm Schedule, got {type(schedule).__name__}.")
        return cls(x, jnp.asarray(lab), schedule, tuple(int(c) for c in np.unique(lab)))

    def unconditional(self):
        return exact_score(EmpiricalMeasure(self.points), self.schedule)

    def for_class(self, label, guidance: float = 0.0):
        _class_position(self.classes, label)
        mask = (np.asarray(self.labels) == int(label)).astype(np.float64)
        w = jnp.asarray(mask / mask.sum(), self.points.dtype)
        cond = exact_score(EmpiricalMeasure(self.points, w), self.schedule)
        guidance = _check_guidance(guidance)
        return cond if guidance == 0.0 else GuidedScore(cond, self.unconditional(), guidance)


@pytree_dataclass
class LearnedClassScores:
    """Class-conditional learned scores: ``model.bind(params, labels=c, guidance=w)`` (CFG with the
    network's null label as the unconditional branch). ``classes``: the labels the network knows.

    Construction checks that ``model`` is class-conditional and that every label in ``classes`` lies in
    ``[0, num_classes)`` of its network; ``for_class`` raises a ValueError for a label not in ``classes``.

    Example:
        >>> import jax, jax.numpy as jnp, jaxotdm as jo
        >>> from jaxotdm.networks import MLP, ScoreModel
        >>> from jaxotdm.samplers import LearnedClassScores
        >>> model = ScoreModel(MLP(features=8, depth=1, num_classes=2), jo.OU())
        >>> params = model.init(jax.random.key(0), jnp.zeros((1, 2)), labels=jnp.zeros((1,), jnp.int32))
        >>> cs = LearnedClassScores(model, params, classes=(0, 1))
        >>> cs.for_class(1, guidance=0.5)(jnp.ones((3, 2)), 0.5).shape
        (3, 2)
    """

    model: Any
    params: Any
    classes: tuple = static_field(())

    def __post_init__(self):  # eager checks at construction (PyTree unflattening does not call __init__)
        if not callable(getattr(self.model, "bind", None)):
            raise ValueError(f"`model` must be a ScoreModel (with a bind method), got {type(self.model).__name__}.")
        if not isinstance(self.classes, tuple) or not all(
            isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in self.classes
        ):
            raise ValueError(f"`classes` must be a tuple of int labels, got {self.classes!r}.")
        network = getattr(self.model, "network", None)
        n = getattr(network, "num_classes", None)  # MLP and UNet declare it; other networks are not checked
        if hasattr(network, "num_classes") and n is None:
            raise ValueError("`model`'s network has no class conditioning (num_classes=None).")
        if isinstance(n, int) and any(not 0 <= int(c) < n for c in self.classes):
            raise ValueError(f"`classes` must be labels in [0, {n}) known to the network, got {list(self.classes)}.")

    def for_class(self, label, guidance: float = 0.0):
        _class_position(self.classes, label)
        return self.model.bind(self.params, labels=int(label), guidance=_check_guidance(guidance))


# ------------------------------------------------------------------------------------------ validation
def _check_labelled(points, labels):
    x = V.as_float_array(points, "data_points")
    V.check_ndim(x, 2, "data_points", "(n, d)")
    lab = np.asarray(labels)
    if lab.shape != (x.shape[0],) or not np.issubdtype(lab.dtype, np.integer):
        raise ValueError(
            f"`labels` must be an integer array of shape ({x.shape[0]},) matching `data_points`, got "
            f"{lab.dtype} {lab.shape}."
        )
    return x, lab


def _class_position(classes: tuple, label) -> int:
    if isinstance(label, bool) or not isinstance(label, (int, np.integer)) or int(label) not in classes:
        raise ValueError(f"`label` must be one of the classes in the data {list(classes)}, got {label!r}.")
    return classes.index(int(label))


def _check_guidance(guidance) -> float:
    g = float(guidance)
    if not np.isfinite(g):
        raise ValueError(f"`guidance` must be a finite number, got {guidance!r}.")
    return g


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
    if jnp.ndim(t_prime) != 0 or not V.is_concrete(t_prime):
        raise ValueError(f"`t_prime` must be a concrete scalar, got {t_prime!r}.")
    t = float(t_prime)
    if not (np.isfinite(t) and 0.0 < t < schedule.t_max):
        raise ValueError(f"`t_prime` must be in (0, {schedule.t_max}) for this schedule, got {t}.")
    return t


def _check_t_end(t_end, t_prime: float) -> None:
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


# ---------------------------------------------------------------------------------------------- prepare
def prepare_ot_prior(
    schedule: Schedule,
    data_points: Float[ArrayLike, "n d"],
    *,
    key,
    t_prime: float,
    noise_draws: int = 1,
    weights: Float[ArrayLike, " n"] | None = None,
    ot_tol: float = 0.1,
    ot_method=None,
    certificate_samples: int | None = None,
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
        ot_method: a semi-discrete solver object (default :class:`~jaxotdm.ot.NewtonSolver`).
        certificate_samples: fresh samples for the OT certificate (solver default if ``None``).

    Returns:
        An :class:`OTPrior`.

    Example:
        >>> import jax, jax.numpy as jnp, jaxotdm as jo
        >>> from jaxotdm.samplers import prepare_ot_prior
        >>> prior = prepare_ot_prior(jo.OU(), jnp.array([[-1.0], [1.0]]), key=jax.random.key(0), t_prime=0.1)
        >>> prior.diffused.shape
        (2, 1)
    """
    t = _check_t_prime(schedule, t_prime)
    V.check_key(key)
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
        diffused, w[idx] / noise_draws, key=k_ot, tol=ot_tol, method=ot_method,
        certificate_samples=certificate_samples,
    )
    return OTPrior(smap, diffused, idx, tt)


def prepare_conditional_ot_prior(
    schedule: Schedule,
    data_points: Float[ArrayLike, "n d"],
    labels: Int[ArrayLike, " n"],
    *,
    key,
    t_prime: float,
    noise_draws: int = 1,
    ot_tol: float = 0.1,
    ot_method=None,
    certificate_samples: int | None = None,
) -> ConditionalOTPrior:
    """One :func:`prepare_ot_prior` per class, onto that class's diffused points (keys folded by label)."""
    x, lab = _check_labelled(data_points, labels)
    V.check_key(key)
    classes = tuple(int(c) for c in np.unique(lab))
    priors = tuple(
        prepare_ot_prior(
            schedule, x[np.nonzero(lab == c)[0]], key=jax.random.fold_in(key, c), t_prime=t_prime,
            noise_draws=noise_draws, ot_tol=ot_tol, ot_method=ot_method, certificate_samples=certificate_samples,
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
    :func:`ot_accelerated_sample` for the checked entry point.

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
    k_prior, k_chain = jax.random.split(key)
    z = jax.random.normal(k_prior, (num_samples, prior.dim), prior.diffused.dtype)
    x0, cell = ot_prior_points(prior, z, tau)
    out = sample(sampler, score, schedule, x0, t_start=prior.t_prime, t_end=t_end, num_steps=num_steps,
                 grid=grid, key=k_chain)
    return OTSampleResult(out.points, out.nfe, out.num_steps, out.times, x0, cell, prior.certificate, prior, {})


def ot_accelerated_sample(
    score: Callable[[Array, Array], Array],
    schedule: Schedule,
    data_points: Float[ArrayLike, "n d"] | None,
    *,
    key,
    t_prime: float,
    num_samples: int,
    sampler=_DEFAULT_SAMPLER,
    num_steps: int | None = None,
    nfe: int | None = None,
    t_end: float,
    tau: float = 0.0,
    grid="uniform",
    noise_draws: int = 1,
    ot_tol: float = 0.1,
    ot_method=None,
    ot_map: OTPrior | None = None,
    weights: Float[ArrayLike, " n"] | None = None,
) -> OTSampleResult:
    """OT-accelerated sampling (Algorithm 2 of arXiv 2410.13431): one OT step to ``T'``, then ``k`` reverse steps.

    Args:
        score: ``score(x, t)`` (exact or learned) of the data diffused by ``schedule``.
        schedule: the forward schedule.
        data_points: ``(n, d)`` training points (ignored when ``ot_map`` is given; may be ``None`` then).
        key: PRNG key (split for the preparation, the prior draws and the chain's noise).
        t_prime: the OT time ``T'``, ``t_end < T' < schedule.t_max``.
        num_samples: number of samples.
        sampler: any fixed-step sampler method (default Euler-Maruyama on the reverse SDE, as in the paper).
        num_steps, nfe: exactly one: reverse steps ``k``, or the score-evaluation budget.
        t_end: end time of the reverse chain.
        tau: ``0`` for the hard map (outputs are diffused training points), ``> 0`` for the smoothed map.
        grid: the reverse chain's time grid (see :func:`~jaxotdm.samplers.time_grid`).
        noise_draws, ot_tol, ot_method, weights: preparation settings (:func:`prepare_ot_prior`).
        ot_map: a prepared :class:`OTPrior` to reuse (its ``t_prime`` must equal ``t_prime``).

    Returns:
        An :class:`OTSampleResult`. ``nfe`` counts the reverse chain only: the OT step evaluates no score.

    Example:
        >>> import jax, jax.numpy as jnp, jaxotdm as jo
        >>> from jaxotdm.samplers import ot_accelerated_sample
        >>> y = jnp.array([[-1.0, 0.0], [1.0, 0.0], [0.0, 2.0]]); sched = jo.OU()
        >>> score = jo.exact_score(jo.EmpiricalMeasure(y), sched)
        >>> out = ot_accelerated_sample(score, sched, y, key=jax.random.key(0), t_prime=0.1,
        ...                             num_samples=8, num_steps=10, t_end=1e-3)
        >>> int(out.nfe), out.points.shape
        (10, (8, 2))
    """
    if not callable(score):
        raise ValueError(f"`score` must be callable as score(x, t), got {type(score).__name__}.")
    t = _check_t_prime(schedule, t_prime)
    _check_t_end(t_end, t)
    k = _steps(sampler, num_steps, nfe)
    num_samples = V.check_positive_int(num_samples, "num_samples")
    tau = _check_tau(tau)
    V.check_key(key)
    k_prep, k_step = jax.random.split(key)
    timings = {"diffuse_and_ot_solve": 0.0}
    dim = getattr(score, "dim", None)
    if ot_map is None:
        if data_points is None:
            raise ValueError("pass `data_points` (or a prepared `ot_map`).")
        x = V.as_float_array(data_points, "data_points")
        if isinstance(dim, int) and (x.ndim != 2 or x.shape[1] != dim):
            raise ValueError(f"`data_points` must have shape (n, {dim}) to match the score's dimension, got "
                             f"{tuple(x.shape)}.")
        t0 = time.perf_counter()
        ot_map = prepare_ot_prior(schedule, data_points, key=k_prep, t_prime=t, noise_draws=noise_draws,
                                  weights=weights, ot_tol=ot_tol, ot_method=ot_method)
        jax.block_until_ready(ot_map.ot_map.heights)
        timings["diffuse_and_ot_solve"] = time.perf_counter() - t0
    else:
        if not isinstance(ot_map, OTPrior):
            raise ValueError(f"`ot_map` must be an OTPrior from prepare_ot_prior, got {type(ot_map).__name__}.")
        if not np.isclose(float(ot_map.t_prime), t, rtol=1e-6, atol=0.0):
            raise ValueError(f"`ot_map` was prepared at t_prime={float(ot_map.t_prime)}, but `t_prime`={t}.")
        if data_points is not None:
            x = V.as_float_array(data_points, "data_points")
            if x.ndim != 2 or x.shape[1] != ot_map.dim:
                raise ValueError(f"`data_points` must have shape (n, {ot_map.dim}) to match `ot_map`, got "
                                 f"{tuple(x.shape)}.")
    if isinstance(dim, int) and dim != ot_map.dim:
        raise ValueError(f"`score` has dimension {dim} but the data have dimension {ot_map.dim}.")
    t0 = time.perf_counter()
    out = ot_accelerated_step(ot_map, score, schedule, k_step, num_samples=num_samples, sampler=sampler,
                              num_steps=k, t_end=t_end, tau=tau, grid=grid)
    jax.block_until_ready(out.points)
    timings["sample"] = time.perf_counter() - t0
    return out._replace(timings=timings)


def ot_accelerated_conditional_sample(
    class_scores,
    schedule: Schedule,
    data_points: Float[ArrayLike, "n d"] | None,
    labels: Int[ArrayLike, " n"] | None,
    *,
    label: int,
    key,
    t_prime: float,
    num_samples: int,
    guidance: float = 0.0,
    sampler=_DEFAULT_SAMPLER,
    num_steps: int | None = None,
    nfe: int | None = None,
    t_end: float,
    tau: float = 0.0,
    grid="uniform",
    noise_draws: int = 1,
    ot_tol: float = 0.1,
    ot_method=None,
    ot_map: ConditionalOTPrior | None = None,
) -> OTSampleResult:
    """Class-conditional OT-accelerated sampling: the class-``label`` OT map, then the class score's chain.

    Args:
        class_scores: an object with ``for_class(label, guidance) -> score`` (:class:`ExactClassScores`,
            :class:`LearnedClassScores`).
        data_points, labels: the labelled training set (ignored when ``ot_map`` is given).
        label: the requested class; ValueError if it is not a class of the data.
        guidance: classifier-free guidance scale ``w`` (``0``: the plain conditional score).
        ot_map: a prepared :class:`ConditionalOTPrior` (from :func:`prepare_conditional_ot_prior`).
        Other arguments as in :func:`ot_accelerated_sample`.

    Example:
        >>> import jax, jax.numpy as jnp, jaxotdm as jo
        >>> from jaxotdm.samplers import ExactClassScores, ot_accelerated_conditional_sample
        >>> y = jnp.array([[-2.0], [-1.0], [1.0], [2.0]]); lab = jnp.array([0, 0, 1, 1]); sched = jo.OU()
        >>> cs = ExactClassScores.from_data(y, lab, sched)
        >>> out = ot_accelerated_conditional_sample(cs, sched, y, lab, label=1, key=jax.random.key(0),
        ...                                         t_prime=0.05, num_samples=6, num_steps=5, t_end=1e-3)
        >>> bool(jnp.all(out.points > 0))
        True
    """
    if not hasattr(class_scores, "for_class"):
        raise ValueError("`class_scores` must have a for_class(label, guidance) method (ExactClassScores, "
                         f"LearnedClassScores), got {type(class_scores).__name__}.")
    V.check_key(key)
    k_prep, k_sample = jax.random.split(key)
    t = _check_t_prime(schedule, t_prime)
    _check_t_end(t_end, t)
    _steps(sampler, num_steps, nfe)
    _check_tau(tau)
    t0 = time.perf_counter()
    if ot_map is None:
        if data_points is None or labels is None:
            raise ValueError("pass `data_points` and `labels` (or a prepared `ot_map`).")
        x, lab = _check_labelled(data_points, labels)
        classes = tuple(int(c) for c in np.unique(lab))
        _class_position(classes, label)
        prior = prepare_ot_prior(schedule, x[np.nonzero(lab == int(label))[0]], key=jax.random.fold_in(k_prep, int(label)),
                                 t_prime=t, noise_draws=noise_draws, ot_tol=ot_tol, ot_method=ot_method)
        jax.block_until_ready(prior.ot_map.heights)
    else:
        if not isinstance(ot_map, ConditionalOTPrior):
            raise ValueError(f"`ot_map` must be a ConditionalOTPrior, got {type(ot_map).__name__}.")
        prior = ot_map.for_class(label)
    prep_time = time.perf_counter() - t0
    score = class_scores.for_class(label, guidance)
    out = ot_accelerated_sample(score, schedule, None, key=k_sample, t_prime=t, num_samples=num_samples,
                                sampler=sampler, num_steps=num_steps, nfe=nfe, t_end=t_end, tau=tau, grid=grid,
                                ot_map=prior)
    return out._replace(timings=out.timings | {"diffuse_and_ot_solve": prep_time})

