r"""Prior error, the end-of-sampling error it causes, and its removal by an OT-corrected prior.

The claims under test (arXiv 2410.13431 v2, reported; ``science.md`` sections 2-3):

* The reverse process starts from the schedule's prior ``q_T = N(0, prior_std(T)^2 I)`` while the
  forward process ends at ``p_T = Law(alpha_T Y + sigma_T eps)``; the prior error is
  ``W2(p_T, q_T)``.
* Thm 3.2: with an *exact* score, the error at the end of sampling ``W2(p_eps, q_eps)`` (``q_eps`` the
  law of the probability flow started from ``q_T``) is bounded below and above by multiples of
  ``W2(p_T, q_T)``: a better score cannot remove a prior error.
* Lemma 3.5: with distinct targets and optimal heights, ``W2(grad u_h # N(0, I), target) = 0``; so a
  prior replaced by the semi-discrete OT map onto the forward-diffused dataset removes the error.
  Smoothing the map with ``tau > 0`` reintroduces some (Table 2).

:func:`prior_error` measures the first three; :func:`ot_correction` is the Table 2 analogue.

How ``W2(p_T, q_T)`` is measured (``p_T`` is a Gaussian mixture, ``q_T`` a Gaussian):

* :class:`~jaxotdm.GaussianMeasure`: exact. ``p_T = N(alpha m, alpha^2 S + sigma^2 I)``, Bures closed form.
* :class:`~jaxotdm.EmpiricalMeasure`: a bracket and estimates.

  - ``lower`` (exact, no Monte Carlo): Gelbrich's bound, the Bures distance between the moment-matched
    Gaussians ``N(alpha m, alpha^2 Sigma + sigma^2 I)`` and ``q_T`` (exact moments of the mixture).
  - ``upper_coupling``: an explicit coupling. With ``T`` the semi-discrete OT map ``N(0, I) -> mu``,
    ``Z, E ~ N(0, I)`` independent: ``X = alpha T(Z) + sigma E ~ p_T`` and ``Q = c Z + b E ~ q_T``
    whenever ``c^2 + b^2 = s^2`` (``s = prior_std(T)``). Then
    ``E|X - Q|^2 = alpha^2 E|T(Z)|^2 - 2 alpha c E<T(Z), Z> + c^2 d + (sigma - b)^2 d``, minimised on the
    circle at ``(c, b) = s (alpha K, sigma d) / |(alpha K, sigma d)|`` with ``K = E<T(Z), Z>``
    (chosen on an independent sample, so the bound is a plain Monte Carlo mean). For VP schedules
    (``alpha^2 + sigma^2 = 1 = s^2``) the choice ``(c, b) = (alpha, sigma)`` alone gives
    ``alpha W2(mu, N(0, I))``, so the optimum is ``<= alpha W2(mu, N(0, I))``; SubVP, VE and EDM are
    covered by the same formula. The solver's error enters through
    ``W2(alpha T#N(0,I) * N(0, sigma^2), p_T) <= alpha W2(T#N(0, I), mu)``, which is added
    (``pushforward_w2`` of the certificate's cell masses).
  - ``upper_kl``: Talagrand's inequality for the Gaussian ``q_T``: ``W2^2 <= 2 s^2 KL(p_T | q_T)``, the
    KL estimated by Monte Carlo with the exact log-density of ``p_T``. It captures the ``alpha^2`` rate of
    centred data (where the coupling bound is only ``O(alpha)``) but its standard error, not its value,
    dominates once ``KL`` is below ``1 / sqrt(num_kl_samples)``.
  - ``sample_estimate``: ``W2(q_T, {x_j})`` for an ``n``-sample of ``p_T`` through the semi-discrete map,
    with its Monte Carlo SE. Biased *upward* by the sampling of ``p_T`` (``~ n^{-1/d}``): in high dimension
    it measures the sample, not ``p_T``.

  ``w2`` is the best point estimate available: the sample estimate clipped into ``[lower, upper]`` (the
  bracket is the statement to rely on).

The rate. ``W2(p_T, q_T) >= |alpha_T m|`` (means) and ``<= C alpha_T`` (coupling): for non-centred data
the prior error is ``Theta(alpha_T)``. For centred data the first-order term vanishes and both Gelbrich
and Talagrand give ``O(alpha_T^2)``.

End of sampling (empirical data). At small ``eps`` both ``p_eps`` and ``q_eps`` are (nearly) discrete on
``{alpha_eps y_i}``: the weights of ``q_eps`` are the fractions ``w~`` of flowed prior samples whose
nearest support point is ``alpha_eps y_i`` (chunked nearest-point search). We report
``W2(sum w_i delta, sum w~_i delta)`` on the support (exact LP), and since Monte Carlo noise alone makes
it positive, the null: the same statistic for an i.i.d. sample of the same size from ``mu`` (several
replicates, mean and upper quantile). ``end_positive`` means the measured value exceeds the null's upper
quantile. For Gaussian data ``q_eps`` is Gaussian in closed form (the flow map is the affine
``C_eps^{1/2} C_T^{-1/2}``); there the bracket of Thm 3.2 is explicit (ours):
``min_k sqrt(c_eps,k / c_T,k) <= W2(p_eps, q_eps) / W2(p_T, q_T) <= max_k sqrt(c_eps,k / c_T,k)`` over the
eigenvalues ``c_t,k`` of the marginal covariances.

OT-corrected prior. Semi-discrete map ``N(0, I) -> {alpha_T y_i + sigma_T eps_ik}`` (``noise_draws``
draws per point, weights ``w_i / noise_draws``); ``grad u_h(z)`` replaces the prior sample. Its outputs are
exactly the targets, so we flow each target once and weight it by its cell mass (a fresh sample of at least
``2^18``): identical in law to flowing every corrected sample, with far less Monte Carlo noise. Lemma 3.5
makes this pushforward the noised set itself, a stratified sample of ``p_T`` of size ``n * noise_draws``, and
a ``p_T``-sample flowed to ``eps`` lands on ``y_i`` with probability ``w_i``. So the corrected error is at the
level of the null for an i.i.d. sample of ``mu`` of that size (``corrected_null_*``; with the default
``noise_draws`` this is the size of the flowed prior sample, so both use the same null), and ->0 as the set
grows; ``corrected_set_w2`` is the value with the exact map (target weights), so ``corrected_w2 -
corrected_set_w2`` is what the solver error adds.
"""

from __future__ import annotations

import math
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxotdm import _validation as V
from jaxotdm._types import Array, Float
from jaxotdm.flow import flow_map
from jaxotdm.measures import EmpiricalMeasure, GaussianMeasure
from jaxotdm.ot.semidiscrete import cell_masses, semidiscrete_ot
from jaxotdm.ot.w2 import bures_w2, w2_exact, w2_gaussian_to_discrete
from jaxotdm.schedules import Schedule
from jaxotdm.scores import _pad_to_multiple, exact_score

__all__ = ["OTCorrectionResult", "PriorErrorResult", "ot_correction", "prior_error"]

PAPER_TAUS = (0.0, 0.01, 0.02, 0.04, 0.08)


# ----------------------------------------------------------------------------------------------------
# Results.
# ----------------------------------------------------------------------------------------------------


class PriorErrorResult(NamedTuple):
    """Result of :func:`prior_error` (a PyTree; scalars are 0-d arrays, NaN where not applicable).

    Attributes:
        T, alpha, sigma, prior_std: the termination time and ``alpha_T``, ``sigma_T``, ``s = prior_std(T)``.
        w2, w2_se: best point estimate of ``W2(p_T, q_T)`` and its standard error (exact, SE 0, for
            Gaussian data; for a dataset the sample estimate clipped into the bracket).
        lower: Gelbrich lower bound (exact). upper, upper_se: the smaller of the two upper bounds.
        upper_coupling, upper_coupling_se: explicit-coupling upper bound (includes the OT solver error).
        upper_kl, upper_kl_se: Talagrand upper bound ``sqrt(2 s^2 KL)``.
        sample_estimate, sample_estimate_se: direct estimate from an ``n``-sample of ``p_T`` (biased up).
        end_w2: ``W2(p_eps, q_eps)`` of the exact-score flow started from ``q_T``.
        end_null_mean, end_null_upper: null distribution of the statistic (i.i.d. sample of ``mu`` of the
            same size): mean and upper ``null_quantile``.
        end_positive: ``end_w2 > end_null_upper`` (Gaussian: ``end_w2 > 0`` exactly).
        ratio_lower, ratio_upper: ``end_w2 / upper`` and ``end_w2 / lower`` (the measured Thm 3.2 ratio;
            equal for Gaussian data).
        bracket_lower, bracket_upper: Gaussian data only, the explicit Thm 3.2 constants (see module doc).
        corrected_w2: ``W2(p_eps, q_eps)`` with the OT-corrected prior (pushforward weights = the
            computed map's cell masses on a fresh sample of at least ``2^18``, summed where the targets land).
        corrected_set_w2: the same with the exact map (target weights): what the finite noised set keeps.
        corrected_null_mean, corrected_null_upper: null of the statistic for an i.i.d. sample of ``mu`` of
            the noised set's size ``n * noise_draws`` (the set is a stratified sample of ``p_T``, whose flow
            lands on ``y_i`` with probability ``w_i``, so it should be within this null).
        corrected_within_null: ``corrected_w2 <= corrected_null_upper``.
        end_weights, corrected_weights, data_weights: ``(n,)`` weights on the support (dataset only).
        nfe: score evaluations of the flow (prior sample and corrected targets flowed as one batch).
        flow_success: the ODE solve succeeded.
        ot_certificate, ot_noise_floor: max relative cell-mass error of the map ``N(0,I) -> mu`` on a fresh
            sample, and the Monte Carlo floor below which it cannot resolve errors.
        corrected_ot_certificate: the same for the corrected-prior map.
        settings: the settings used (dict). timings: wall seconds per stage (dict).
    """

    T: Float[Array, ""]
    alpha: Float[Array, ""]
    sigma: Float[Array, ""]
    prior_std: Float[Array, ""]
    w2: Float[Array, ""]
    w2_se: Float[Array, ""]
    lower: Float[Array, ""]
    upper: Float[Array, ""]
    upper_se: Float[Array, ""]
    upper_coupling: Float[Array, ""]
    upper_coupling_se: Float[Array, ""]
    upper_kl: Float[Array, ""]
    upper_kl_se: Float[Array, ""]
    sample_estimate: Float[Array, ""]
    sample_estimate_se: Float[Array, ""]
    end_w2: Float[Array, ""]
    end_null_mean: Float[Array, ""]
    end_null_upper: Float[Array, ""]
    end_positive: Array
    ratio_lower: Float[Array, ""]
    ratio_upper: Float[Array, ""]
    bracket_lower: Float[Array, ""]
    bracket_upper: Float[Array, ""]
    corrected_w2: Float[Array, ""]
    corrected_null_mean: Float[Array, ""]
    corrected_null_upper: Float[Array, ""]
    corrected_set_w2: Float[Array, ""]
    corrected_within_null: Array
    end_weights: Array
    corrected_weights: Array
    data_weights: Array
    nfe: Array
    flow_success: Array
    ot_certificate: Float[Array, ""]
    ot_noise_floor: Float[Array, ""]
    corrected_ot_certificate: Float[Array, ""]
    settings: dict
    timings: dict


class OTCorrectionResult(NamedTuple):
    """Result of :func:`ot_correction` (Lemma 3.5 / Table 2 analogue; a PyTree).

    Attributes:
        T: termination time. num_points: ``n`` (one noise draw per data point).
        tolerances: ``(k,)`` solver tolerances (max relative cell-mass error requested); the first entry
            is ``inf`` for the initial (Voronoi) heights ``-|x_i|^2 / 2``.
        solver_w2: ``(k,)`` ``W2(grad u_h # N(0, I), {x_i})`` at each tolerance: exact LP between the Monte
            Carlo cell masses (fresh sample of ``num_samples``) and the weights on the ``n`` points.
        solver_w2_floor_mean, solver_w2_floor_upper: the same statistic for a perfect map (multinomial
            cell counts of ``num_samples``): what Monte Carlo alone produces.
        certificates: ``(k,)`` max relative cell-mass error on a fresh sample. iterations: ``(k,)``.
        taus: ``(m,)`` the paper's smoothing values; effective_taus: ``taus * tau_scale`` (used).
        tau_w2: ``(m,)`` ``W2(grad u~_tau # N(0, I), {x_i})``: exact LP between ``num_tau_samples`` outputs
            of the smoothed map (continuous points) and the ``n`` weighted points.
        tau_w2_floor_mean, tau_w2_floor_upper: the same estimator's value for a perfect hard map
            (multinomial sample of ``num_tau_samples``): the resolution of the tau column.
        tau_potential_bound: ``(m,)`` ``tau_eff log n``, the sup-norm smoothing error of the potential.
        uncorrected: the :class:`PriorErrorResult` at ``T`` (no correction column).
        uncorrected_w2, uncorrected_lower, uncorrected_upper: its estimate and bracket.
        settings, timings: dicts.
    """

    T: Float[Array, ""]
    num_points: int
    tolerances: Array
    solver_w2: Array
    solver_w2_floor_mean: Float[Array, ""]
    solver_w2_floor_upper: Float[Array, ""]
    certificates: Array
    iterations: Array
    taus: Array
    effective_taus: Array
    tau_w2: Array
    tau_w2_floor_mean: Float[Array, ""]
    tau_w2_floor_upper: Float[Array, ""]
    tau_potential_bound: Array
    uncorrected: PriorErrorResult
    uncorrected_w2: Float[Array, ""]
    uncorrected_lower: Float[Array, ""]
    uncorrected_upper: Float[Array, ""]
    settings: dict
    timings: dict


# ----------------------------------------------------------------------------------------------------
# Validation and small helpers.
# ----------------------------------------------------------------------------------------------------


def _check_common(measure, schedule, T, key, eps=None):
    if not isinstance(measure, (EmpiricalMeasure, GaussianMeasure)):
        raise ValueError(
            f"`measure` must be an EmpiricalMeasure or a GaussianMeasure, got {type(measure).__name__}."
        )
    if not isinstance(schedule, Schedule):
        raise ValueError(f"`schedule` must be a jaxotdm Schedule, got {type(schedule).__name__}.")
    if jnp.ndim(T) != 0:
        raise ValueError(f"`T` must be a scalar, got shape {jnp.shape(T)}.")
    V.check_time(T, "T", t_max=schedule.t_max)
    V.check_key(key)
    if eps is not None:
        V.check_time(eps, "eps", t_max=schedule.t_max)
        if not float(eps) < float(T):
            raise ValueError(f"`eps` must be < T = {float(T)}, got {float(eps)}.")


def _check_quantile(q, name):
    if not (0.0 < float(q) < 1.0):
        raise ValueError(f"`{name}` must be in (0, 1), got {q}.")


def _scal(x, dtype) -> Array:
    return jnp.asarray(x, dtype)


def _nan(dtype) -> Array:
    return jnp.asarray(jnp.nan, dtype)


def _merge_support(points: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct points with positive weights (duplicates merged, zero weights dropped): what
    semi-discrete OT needs."""
    keep = weights > 0
    points, weights = points[keep], weights[keep]
    uniq, inv = np.unique(points, axis=0, return_inverse=True)
    if uniq.shape[0] == points.shape[0]:
        return points, weights
    w = np.zeros(uniq.shape[0])
    np.add.at(w, inv.reshape(-1), weights)
    return uniq, w


@jax.jit(static_argnames=("chunk", "qchunk"))
def _nearest(x, centers, *, chunk: int = 1024, qchunk: int = 4096):
    """Index of the nearest center for each row of ``x`` (``argmax <x, c> - |c|^2 / 2``).

    Streamed over chunks of centers and blocks of queries: memory ``O(qchunk x chunk)``, never a
    ``(queries, centers, dims)`` array.
    """
    n, d = centers.shape
    chunk = min(chunk, n)
    c = _pad_to_multiple(centers, chunk, 0.0).reshape(-1, chunk, d)
    h = _pad_to_multiple(-0.5 * jnp.sum(centers * centers, -1), chunk, -jnp.inf).reshape(-1, chunk)
    idx = jnp.arange(c.shape[0] * chunk, dtype=jnp.int32).reshape(-1, chunk)

    def block(xb):
        def body(carry, blk):
            v, i = carry
            cc, hc, ic = blk
            s = xb @ cc.T + hc[None, :]
            j = jnp.argmax(s, axis=-1)
            b = jnp.take_along_axis(s, j[:, None], axis=-1)[:, 0]
            better = b > v
            return (jnp.where(better, b, v), jnp.where(better, ic[j], i)), None

        init = (jnp.full((xb.shape[0],), -jnp.inf, xb.dtype), jnp.zeros((xb.shape[0],), jnp.int32))
        return jax.lax.scan(body, init, (c, h, idx))[0][1]

    q = x.shape[0]
    if q <= qchunk:
        return block(x)
    xs = _pad_to_multiple(x, qchunk, 0.0).reshape(-1, qchunk, d)
    return jax.lax.map(block, xs).reshape(-1)[:q]


def _w2_weights(support: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Exact W2 between ``sum a_i delta_{x_i}`` and ``sum b_i delta_{x_i}`` (same support; exact LP)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return w2_exact(support, support, a / a.sum(), b / b.sum())


def _null_w2(key, support, probs, num_samples, replicates, quantile):
    """Null distribution of ``W2(probs, empirical frequencies of num_samples categorical draws)`` on a
    fixed support. Returns (values, mean, upper quantile)."""
    probs = np.asarray(probs, np.float64)
    draws = np.asarray(jax.random.categorical(key, jnp.log(jnp.asarray(probs)), shape=(replicates, num_samples)))
    k = probs.shape[0]
    vals = np.array([_w2_weights(support, probs, np.bincount(row, minlength=k) / num_samples) for row in draws])
    return vals, float(vals.mean()), float(np.quantile(vals, quantile))


def _timer():
    t0 = time.perf_counter()
    return lambda: time.perf_counter() - t0


# ----------------------------------------------------------------------------------------------------
# Pieces of prior_error.
# ----------------------------------------------------------------------------------------------------


def _gaussian_prior_error(measure: GaussianMeasure, schedule, T, eps, dtype):
    """Exact W2(p_T, q_T) and W2(p_eps, q_eps) for Gaussian data; returns a dict of fields."""
    a_T, s2_T = schedule.alpha(T), schedule.sigma2(T)
    s = schedule.prior_std(T)
    d = measure.dim
    eye = jnp.eye(d, dtype=dtype)
    w2 = bures_w2(a_T * measure.mean, measure.marginal_cov(T, schedule), jnp.zeros(d, dtype), s * s * eye)
    # The flow map T -> eps is x -> mean_eps + A (x - mean_T), A = C_eps^{1/2} C_T^{-1/2}; all C_t are
    # functions of the data covariance, so work in its eigenbasis.
    lam, vecs = jnp.linalg.eigh(0.5 * (measure.cov + measure.cov.T))
    lam = jnp.maximum(lam, 0.0)
    a_e, s2_e = schedule.alpha(eps), schedule.sigma2(eps)
    c_T = a_T**2 * lam + s2_T
    c_e = a_e**2 * lam + s2_e
    A = (vecs * jnp.sqrt(c_e / c_T)) @ vecs.T
    mean_e = a_e * measure.mean
    end = bures_w2(mean_e, (vecs * c_e) @ vecs.T, mean_e - A @ (a_T * measure.mean), s * s * (A @ A.T))
    ratio = jnp.sqrt(c_e / c_T)
    return {
        "w2": w2, "w2_se": _scal(0.0, dtype), "lower": w2, "upper": w2, "upper_se": _scal(0.0, dtype),
        "end_w2": end, "end_positive": end > 0, "ratio_lower": end / w2, "ratio_upper": end / w2,
        "bracket_lower": jnp.min(ratio), "bracket_upper": jnp.max(ratio),
    }


@jax.jit
def _log_ratio(measure, schedule, x, T, s):
    """``log p_T(x) - log q_T(x)`` for ``q_T = N(0, s^2 I)``."""
    log_p = measure.marginal_stats(x, T, schedule)[0]
    d = x.shape[-1]
    log_q = -0.5 * jnp.sum(x * x, -1) / (s * s) - 0.5 * d * jnp.log(2 * math.pi * s * s)
    return log_p - log_q


@jax.jit
def _coupling_terms(smap, z):
    """Per-sample ``|T(z)|^2`` and ``<T(z), z>``."""
    tz = smap.transport(z)
    return jnp.sum(tz * tz, -1), jnp.sum(tz * z, -1), tz


def _empirical_bracket(measure, schedule, T, key, *, smap, num_samples, num_kl_samples, dtype):
    a, sig, s = schedule.alpha(T), schedule.sigma(T), schedule.prior_std(T)
    d = measure.dim
    eye = jnp.eye(d, dtype=dtype)
    lower = bures_w2(a * measure.mean(), a * a * measure.covariance() + sig * sig * eye, jnp.zeros(d, dtype),
                     s * s * eye)
    k_sel, k_eval, k_kl = jax.random.split(key, 3)
    # coupling: choose (c, b) on an independent sample, evaluate on a fresh one
    z = jax.random.normal(k_sel, (min(num_samples, 8192), d), dtype)
    _, inner, _ = _coupling_terms(smap, z)
    K = jnp.mean(inner)
    v = jnp.stack([a * K, sig * d])
    c, b = s * v / jnp.linalg.norm(v)
    z = jax.random.normal(k_eval, (num_samples, d), dtype)
    _, _, tz = _coupling_terms(smap, z)
    cost = jnp.sum((a * tz - c * z) ** 2, -1) + (sig - b) ** 2 * d
    m = jnp.mean(cost)
    se_m = jnp.std(cost) / math.sqrt(num_samples)
    pts = np.asarray(smap.targets, np.float64)
    masses = np.asarray(smap.certificate.masses, np.float64)
    solver_w2 = _w2_weights(pts, np.asarray(smap.weights, np.float64), masses)
    coup = jnp.sqrt(m) + a * solver_w2
    coup_se = se_m / (2 * jnp.sqrt(jnp.maximum(m, 1e-300)))
    # Talagrand
    x = measure.sample_marginal(k_kl, T, schedule, num_kl_samples)
    r = _log_ratio(measure, schedule, x, jnp.asarray(T, dtype), jnp.asarray(s, dtype))
    kl, kl_se = jnp.mean(r), jnp.std(r) / math.sqrt(num_kl_samples)
    ukl = jnp.sqrt(2 * s * s * jnp.maximum(kl, 0.0))
    ukl_se = s * s * kl_se / jnp.maximum(ukl, 1e-300)
    ukl_se = jnp.where(ukl > 0, ukl_se, jnp.sqrt(2 * s * s * kl_se))
    use_kl = ukl < coup
    return {
        "lower": lower, "upper_coupling": coup, "upper_coupling_se": coup_se, "upper_kl": ukl,
        "upper_kl_se": ukl_se, "upper": jnp.where(use_kl, ukl, coup), "upper_se": jnp.where(use_kl, ukl_se, coup_se),
        "solver_w2": solver_w2,
    }


def _flow_landing(score, schedule, x, T, eps, centers, rtol, atol):
    out = flow_map(score, schedule, x, T, eps, rtol=rtol, atol=atol)
    return np.asarray(_nearest(out.points, centers)), out


# ----------------------------------------------------------------------------------------------------
# prior_error.
# ----------------------------------------------------------------------------------------------------


def prior_error(
    measure: EmpiricalMeasure | GaussianMeasure,
    schedule: Schedule,
    T: float,
    *,
    key,
    num_samples: int = 4096,
    eps: float = 1e-3,
    num_kl_samples: int = 2**15,
    sample_points: int = 512,
    null_replicates: int = 32,
    null_quantile: float = 0.95,
    noise_draws: int | None = None,
    end_of_sampling: bool = True,
    corrected: bool = True,
    ot_tol: float = 0.1,
    ot_method=None,
    rtol: float = 1e-6,
    atol: float = 1e-6,
) -> PriorErrorResult:
    r"""Prior error ``W2(p_T, q_T)`` (bracket and estimate), and the end-of-sampling error it causes.

    See the module docstring for every estimator. Batch axis first everywhere; everything over
    (queries x points) is streamed in chunks.

    Args:
        measure: the data (:class:`~jaxotdm.EmpiricalMeasure`) or a :class:`~jaxotdm.GaussianMeasure`
            (then everything is closed form and the Monte Carlo settings are unused).
        schedule: the forward schedule; ``q_T = N(0, schedule.prior_std(T)^2 I)``.
        T: termination time, ``0 < T < schedule.t_max``.
        key: PRNG key (split internally).
        num_samples: Monte Carlo size of the coupling bound and of the flowed prior samples (the
            end-of-sampling statistic and its null use this sample size).
        eps: end time of sampling, ``0 < eps < T``.
        num_kl_samples: samples for the KL (Talagrand) bound.
        sample_points: size ``n`` of the ``p_T``-sample of the direct estimate (``0`` skips it).
        null_replicates, null_quantile: replicates of the null and the quantile that defines "beats it".
        noise_draws: forward-noise draws per data point for the OT-corrected prior (default
            ``ceil(num_samples / n)``, so that the noised set is as large as the flowed prior sample and the
            two are compared against nulls of the same size).
        end_of_sampling: also flow ``q_T`` to ``eps`` (Thm 3.2); corrected: also the OT-corrected prior.
        ot_tol: semi-discrete solver tolerance (max relative cell-mass error).
        ot_method: semi-discrete solver object (``None``: the default of :func:`~jaxotdm.ot.semidiscrete_ot`).
        rtol, atol: probability-flow ODE tolerances.

    Returns:
        A :class:`PriorErrorResult`.

    Example:
        >>> import jax, jax.numpy as jnp, jaxotdm as jo
        >>> from jaxotdm.verify import prior_error
        >>> g = jo.GaussianMeasure(jnp.ones(2), 0.5 * jnp.eye(2))
        >>> r = prior_error(g, jo.OU(), 2.0, key=jax.random.key(0))
        >>> bool(r.lower == r.upper)
        True
    """
    _check_common(measure, schedule, T, key, eps if end_of_sampling else None)
    V.check_positive_int(num_samples, "num_samples")
    V.check_positive_int(num_kl_samples, "num_kl_samples")
    V.check_positive_int(sample_points, "sample_points", minimum=0)
    V.check_positive_int(null_replicates, "null_replicates", minimum=2)
    if noise_draws is not None:
        V.check_positive_int(noise_draws, "noise_draws")
    _check_quantile(null_quantile, "null_quantile")
    if not (0.0 < float(ot_tol) < 1.0):
        raise ValueError(f"`ot_tol` must be in (0, 1), got {ot_tol}.")
    gaussian = isinstance(measure, GaussianMeasure)
    dtype = measure.mean.dtype if gaussian else measure.points.dtype
    T_arr = _scal(T, dtype)
    settings = {
        "measure": type(measure).__name__, "schedule": type(schedule).__name__, "T": float(T), "eps": float(eps),
        "num_samples": num_samples, "num_kl_samples": num_kl_samples, "sample_points": sample_points,
        "null_replicates": null_replicates, "null_quantile": null_quantile, "noise_draws": noise_draws,
        "ot_tol": float(ot_tol), "ot_method": repr(ot_method), "rtol": rtol, "atol": atol, "dtype": str(jnp.dtype(dtype)),
        "end_of_sampling": end_of_sampling, "corrected": corrected,
    }
    timings: dict[str, float] = {}
    nan = _nan(dtype)
    f: dict[str, Any] = dict.fromkeys(PriorErrorResult._fields, nan)
    f.update(
        T=T_arr, alpha=schedule.alpha(T_arr), sigma=schedule.sigma(T_arr), prior_std=schedule.prior_std(T_arr),
        end_positive=jnp.asarray(False), corrected_within_null=jnp.asarray(False),
        end_weights=jnp.zeros((0,), dtype), corrected_weights=jnp.zeros((0,), dtype),
        data_weights=jnp.zeros((0,), dtype), nfe=jnp.asarray(0),
        flow_success=jnp.asarray(True), settings=settings, timings=timings,
    )
    if gaussian:
        clock = _timer()
        g = _gaussian_prior_error(measure, schedule, T_arr, _scal(eps, dtype), dtype)
        f.update(g)
        if not end_of_sampling:
            for k in ("end_w2", "ratio_lower", "ratio_upper", "bracket_lower", "bracket_upper"):
                f[k] = nan
            f["end_positive"] = jnp.asarray(False)
        settings["method"] = "closed form (Bures); end of sampling: affine flow map C_eps^1/2 C_T^-1/2"
        timings["closed_form"] = clock()
        return PriorErrorResult(**f)

    keys = dict(zip(("ot", "bracket", "sample", "flow", "null", "cnoise", "cot", "cz", "cnull"),
                    jax.random.split(key, 9), strict=True))
    pts_np, w_np = _merge_support(np.asarray(measure.points, np.float64), np.asarray(measure.weights, np.float64))
    support = jnp.asarray(pts_np, dtype)
    weights = jnp.asarray(w_np, dtype)
    mu = EmpiricalMeasure(support, weights)
    settings["support_size"] = int(pts_np.shape[0])

    clock = _timer()
    smap = semidiscrete_ot(support, weights, key=keys["ot"], tol=ot_tol, method=ot_method)
    f["ot_certificate"] = smap.certificate.max_relative_error
    f["ot_noise_floor"] = smap.certificate.noise_floor
    timings["ot_solve"] = clock()

    clock = _timer()
    b = _empirical_bracket(mu, schedule, T_arr, keys["bracket"], smap=smap, num_samples=num_samples,
                           num_kl_samples=num_kl_samples, dtype=dtype)
    settings["ot_solver_w2"] = float(b.pop("solver_w2"))
    f.update(b)
    timings["bracket"] = clock()

    s = float(f["prior_std"])
    if sample_points:
        clock = _timer()
        x = mu.sample_marginal(keys["sample"], T_arr, schedule, sample_points)
        k1, k2 = jax.random.split(keys["sample"])
        est = w2_gaussian_to_discrete(x / s, key=k2, num_samples=num_samples, tol=ot_tol)
        f["sample_estimate"] = s * est.value
        f["sample_estimate_se"] = s * est.standard_error
        f["w2"] = jnp.clip(f["sample_estimate"], f["lower"], f["upper"])
        f["w2_se"] = f["sample_estimate_se"]
        timings["sample_estimate"] = clock()
    else:
        f["w2"] = 0.5 * (f["lower"] + f["upper"])
        f["w2_se"] = 0.5 * (f["upper"] - f["lower"])
    settings["w2_definition"] = (
        "sample estimate clipped into [lower, upper]" if sample_points else "bracket midpoint (+- half width)"
    )

    if not end_of_sampling:
        return PriorErrorResult(**f)

    clock = _timer()
    score = exact_score(mu, schedule)
    centers = schedule.alpha(_scal(eps, dtype)) * support
    n, d = pts_np.shape
    z = schedule.sample_prior(keys["flow"], T_arr, (num_samples, d)).astype(dtype)
    K = math.ceil(num_samples / n) if noise_draws is None else noise_draws
    if corrected:  # the corrected prior's targets: alpha_T y_i + sigma_T eps_ik, weights w_i / K
        a, sig = schedule.alpha(T_arr), schedule.sigma(T_arr)
        noise = jax.random.normal(keys["cnoise"], (n, K, d), dtype)
        targets = (a * support[:, None, :] + sig * noise).reshape(-1, d)
        x0 = jnp.concatenate([z, targets])
    else:
        x0 = z
    # one flow for the prior sample and the targets (the corrected prior outputs targets exactly, so
    # flowing each target once and weighting it is the same as flowing every corrected sample)
    land, out = _flow_landing(score, schedule, x0, T_arr, eps, centers, rtol, atol)
    w_end = np.bincount(land[:num_samples], minlength=n) / num_samples
    end = _w2_weights(pts_np, w_np, w_end)
    _, null_mean, null_up = _null_w2(keys["null"], pts_np, w_np, num_samples, null_replicates, null_quantile)
    f.update(
        end_w2=_scal(end, dtype), end_null_mean=_scal(null_mean, dtype), end_null_upper=_scal(null_up, dtype),
        end_positive=jnp.asarray(end > null_up), end_weights=jnp.asarray(w_end, dtype),
        data_weights=jnp.asarray(w_np, dtype), nfe=out.nfe, flow_success=out.success,
        ratio_lower=_scal(end, dtype) / f["upper"], ratio_upper=_scal(end, dtype) / f["lower"],
    )
    timings["end_of_sampling"] = clock()
    if not corrected:
        return PriorErrorResult(**f)

    clock = _timer()
    tw = np.repeat(w_np / K, K)
    tw = tw / tw.sum()
    cmap = semidiscrete_ot(targets, jnp.asarray(tw, dtype), key=keys["cot"], tol=ot_tol, method=ot_method,
                           certificate_samples=max(2**18, 64 * targets.shape[0]))
    land_t = land[num_samples:]
    # pushforward of N(0, I) under the computed map: cell masses on a fresh sample (the certificate's)
    masses = np.asarray(cmap.certificate.masses, np.float64)
    w_corr = np.bincount(land_t, weights=masses, minlength=n)
    corr = _w2_weights(pts_np, w_np, w_corr)
    set_w2 = _w2_weights(pts_np, w_np, np.bincount(land_t, weights=tw, minlength=n))
    m_set = n * K
    if m_set == num_samples:
        c_mean, c_up = null_mean, null_up
    else:
        _, c_mean, c_up = _null_w2(keys["cnull"], pts_np, w_np, m_set, null_replicates, null_quantile)
    f.update(
        corrected_w2=_scal(corr, dtype), corrected_set_w2=_scal(set_w2, dtype),
        corrected_null_mean=_scal(c_mean, dtype), corrected_null_upper=_scal(c_up, dtype),
        corrected_within_null=jnp.asarray(corr <= c_up), corrected_weights=jnp.asarray(w_corr, dtype),
        corrected_ot_certificate=cmap.certificate.max_relative_error,
    )
    settings["corrected_targets"] = int(m_set)
    settings["corrected_noise_draws"] = int(K)
    settings["corrected_certificate_samples"] = int(cmap.certificate.num_samples)
    timings["corrected"] = clock()
    return PriorErrorResult(**f)


# ----------------------------------------------------------------------------------------------------
# ot_correction (Lemma 3.5 / Table 2 analogue).
# ----------------------------------------------------------------------------------------------------


def ot_correction(
    measure: EmpiricalMeasure,
    schedule: Schedule,
    T: float,
    *,
    key,
    taus: tuple[float, ...] = PAPER_TAUS,
    tau_scale: float = 1.0,
    tolerances: tuple[float, ...] = (0.5, 0.2, 0.1, 0.05),
    num_samples: int = 2**18,
    num_tau_samples: int = 2048,
    floor_replicates: int = 16,
    floor_quantile: float = 0.95,
    prior_kwargs: dict | None = None,
) -> OTCorrectionResult:
    r"""Lemma 3.5 / Table 2 analogue: OT-corrected prior error as the solver converges and under smoothing.

    The dataset is forward-diffused to ``T`` with one noise draw per point, ``x_i = alpha_T y_i +
    sigma_T eps_i`` (weights ``w_i``), and semi-discrete OT ``N(0, I) -> {x_i}`` is solved at each of
    ``tolerances``. Reported:

    (a) ``W2(grad u_h # N(0, I), {x_i})`` per tolerance (and for the initial heights): the pushforward is
        ``sum_i m_i delta_{x_i}`` with ``m_i`` Monte Carlo cell masses on a fresh sample of ``num_samples``,
        so the W2 is an exact LP between two discrete measures on the same ``n`` points; next to it the
        value Monte Carlo alone produces for a perfect map (``solver_w2_floor_*``).
    (b) for each ``tau``, ``W2(grad u~_tau # N(0, I), {x_i})`` for the smoothed map (softmax average of
        the targets at temperature ``tau * tau_scale``, the solution at the tightest tolerance). Its outputs
        are continuous, so we take an exact W2 (LP) between ``num_tau_samples`` outputs and the ``n`` weighted
        points; this estimator is positive even at ``tau = 0`` through sampling, and its value for a
        perfect hard map is reported as ``tau_w2_floor_*`` (the resolution of the column). We chose the
        exact LP over a Sinkhorn divergence so that no entropic bias enters a column whose point is a bias.
    (c) the uncorrected prior error ``W2(p_T, q_T)`` from :func:`prior_error` (bracket and estimate).

    Args:
        measure: the dataset.
        schedule, T: forward schedule and termination time ``0 < T < t_max``.
        key: PRNG key.
        taus: smoothing values as in the paper's Table 2 (all ``>= 0``).
        tau_scale: multiplies ``taus`` (the softmax compares ``<z, x_i> + h_i``, whose gaps scale with the
            data's scale and dimension); the paper's values are reported alongside.
        tolerances: solver tolerances (max relative cell-mass error), loosest first.
        num_samples: Monte Carlo size for cell masses. num_tau_samples: smoothed-map outputs per tau.
        floor_replicates, floor_quantile: replicates and quantile of the Monte Carlo floors.
        prior_kwargs: extra keyword arguments for the :func:`prior_error` call (end of sampling is off).

    Returns:
        An :class:`OTCorrectionResult`.

    Example:
        >>> import jax, jaxotdm as jo
        >>> from jaxotdm.verify import ot_correction
        >>> pts = jax.random.normal(jax.random.key(1), (32, 2))
        >>> r = ot_correction(jo.EmpiricalMeasure(pts), jo.OU(), 1.0, key=jax.random.key(0),
        ...                   tolerances=(0.3,), num_samples=2**15, num_tau_samples=256)
        >>> r.tau_w2.shape
        (5,)
    """
    if not isinstance(measure, EmpiricalMeasure):
        raise ValueError(f"`measure` must be an EmpiricalMeasure (a dataset), got {type(measure).__name__}.")
    _check_common(measure, schedule, T, key)
    taus_np = np.asarray(taus, np.float64).reshape(-1)
    if taus_np.size == 0 or not np.all(np.isfinite(taus_np)) or np.any(taus_np < 0):
        raise ValueError(f"`taus` must be a non-empty sequence of finite numbers >= 0, got {taus!r}.")
    if not (float(tau_scale) > 0 and math.isfinite(float(tau_scale))):
        raise ValueError(f"`tau_scale` must be a finite number > 0, got {tau_scale!r}.")
    tols = np.asarray(tolerances, np.float64).reshape(-1)
    if tols.size == 0 or np.any(~(tols > 0)) or np.any(tols >= 1):
        raise ValueError(f"`tolerances` must be a non-empty sequence of numbers in (0, 1), got {tolerances!r}.")
    V.check_positive_int(num_samples, "num_samples")
    V.check_positive_int(num_tau_samples, "num_tau_samples")
    V.check_positive_int(floor_replicates, "floor_replicates", minimum=2)
    _check_quantile(floor_quantile, "floor_quantile")
    dtype = measure.points.dtype
    T_arr = _scal(T, dtype)
    timings: dict[str, float] = {}
    k_noise, k_solve, k_mass, k_floor, k_tau, k_tfloor, k_prior = jax.random.split(key, 7)

    a, sig = schedule.alpha(T_arr), schedule.sigma(T_arr)
    y = measure.points
    x = a * y + sig * jax.random.normal(k_noise, y.shape, dtype)
    keep = np.asarray(measure.weights) > 0
    x, w = x[keep], measure.weights[keep] / jnp.sum(measure.weights[keep])
    x_np, w_np = np.asarray(x, np.float64), np.asarray(w, np.float64)
    n = x_np.shape[0]

    clock = _timer()
    h0 = -0.5 * jnp.sum(x * x, -1)
    m0 = cell_masses(x, h0 - h0.mean(), weights=w, key=jax.random.fold_in(k_mass, 0), num_samples=num_samples)
    solver_w2 = [_w2_weights(x_np, w_np, np.asarray(m0))]
    certs = [float(np.max(np.abs(np.asarray(m0) - w_np) / w_np))]
    iters = [0]
    smap, heights = None, None
    for i, tol in enumerate(tols):
        smap = semidiscrete_ot(x, w, key=jax.random.fold_in(k_solve, i), tol=float(tol), init_heights=heights)
        heights = smap.heights
        m = smap.cell_masses(key=jax.random.fold_in(k_mass, i + 1), num_samples=num_samples)
        solver_w2.append(_w2_weights(x_np, w_np, np.asarray(m)))
        certs.append(float(smap.certificate.max_relative_error))
        iters.append(int(smap.diagnostics.iterations))
    m_eff = math.ceil(num_samples / 4096) * 4096  # cell_masses rounds up to whole batches
    _, fl_mean, fl_up = _null_w2(k_floor, x_np, w_np, m_eff, floor_replicates, floor_quantile)
    timings["solver_sweep"] = clock()

    clock = _timer()
    tau_w2 = []
    for i, tau in enumerate(taus_np):
        z = jax.random.normal(jax.random.fold_in(k_tau, i), (num_tau_samples, measure.dim), dtype)
        out = np.asarray(smap.transport(z, tau=float(tau * tau_scale)), np.float64)
        tau_w2.append(w2_exact(out, x_np, None, w_np))
    _, tf_mean, tf_up = _null_w2(k_tfloor, x_np, w_np, num_tau_samples, floor_replicates, floor_quantile)
    timings["tau_sweep"] = clock()

    clock = _timer()
    pk = {"num_samples": 4096, "sample_points": 0}
    pk.update(prior_kwargs or {})
    pk.update(end_of_sampling=False, corrected=False)
    unc = prior_error(measure, schedule, T, key=k_prior, **pk)
    timings["uncorrected"] = clock()

    settings = {
        "schedule": type(schedule).__name__, "T": float(T), "num_points": n, "dim": int(measure.dim),
        "taus": [float(t) for t in taus_np], "tau_scale": float(tau_scale), "tolerances": [float(t) for t in tols],
        "num_samples": m_eff, "num_tau_samples": num_tau_samples, "floor_replicates": floor_replicates,
        "floor_quantile": floor_quantile, "noise_draws": 1, "initial_heights": "-|x_i|^2/2 (Voronoi of targets)",
        "tau_estimator": "exact LP between num_tau_samples smoothed-map outputs and the n weighted points",
        "solver": smap.diagnostics.solver, "dtype": str(jnp.dtype(dtype)), "prior_kwargs": pk,
    }
    return OTCorrectionResult(
        T=T_arr, num_points=n, tolerances=jnp.asarray(np.concatenate([[np.inf], tols]), dtype),
        solver_w2=jnp.asarray(solver_w2, dtype), solver_w2_floor_mean=_scal(fl_mean, dtype),
        solver_w2_floor_upper=_scal(fl_up, dtype), certificates=jnp.asarray(certs, dtype),
        iterations=jnp.asarray(iters), taus=jnp.asarray(taus_np, dtype),
        effective_taus=jnp.asarray(taus_np * tau_scale, dtype), tau_w2=jnp.asarray(tau_w2, dtype),
        tau_w2_floor_mean=_scal(tf_mean, dtype), tau_w2_floor_upper=_scal(tf_up, dtype),
        tau_potential_bound=jnp.asarray(taus_np * tau_scale * math.log(n), dtype), uncorrected=unc,
        uncorrected_w2=unc.w2, uncorrected_lower=unc.lower, uncorrected_upper=unc.upper,
        settings=settings, timings=timings,
    )
