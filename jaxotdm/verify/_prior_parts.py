"""The estimators behind :func:`jaxotdm.verify.prior_error` and :func:`jaxotdm.verify.ot_correction`.

Each piece returns plain values; :mod:`jaxotdm.verify.prior` assembles them into results (see its module
docstring for the mathematics).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxotdm._streaming import Streaming, top1
from jaxotdm.flow import flow_map
from jaxotdm.measures import EmpiricalMeasure
from jaxotdm.ot import SemidiscreteSampling, semidiscrete_ot, w2_gaussian_to_discrete
from jaxotdm.ot.w2 import w2_exact
from jaxotdm.scores import exact_score
from jaxotdm.verify._prior_results import CorrectedPrior, EndOfSampling, PriorBracket, PriorErrorResult


def scal(x, dtype):
    return jnp.asarray(x, dtype)


def merge_support(points: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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


@jax.jit
def nearest(x, centers):
    """Index of the nearest center for each row of ``x``: ``argmax <x, c> - |c|^2 / 2`` (streamed top-1)."""
    return top1(x, centers, -0.5 * jnp.sum(centers * centers, -1), streaming=Streaming())[1]


def moments(measure):
    """``(mean, covariance)`` of a dataset (the measure exposes them as attributes or, in older releases,
    as methods)."""
    mean = measure.mean() if callable(measure.mean) else measure.mean
    cov = measure.cov
    return mean, cov


def w2_weights(support: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Exact W2 between ``sum a_i delta_{x_i}`` and ``sum b_i delta_{x_i}`` (same support; exact LP)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return w2_exact(support, support, a / a.sum(), b / b.sum())


def null_w2(key, support, probs, num_samples, replicates, quantile):
    """Null distribution of ``W2(probs, empirical frequencies of num_samples categorical draws)`` on a
    fixed support. Returns (values, mean, upper quantile)."""
    probs = np.asarray(probs, np.float64)
    draws = np.asarray(jax.random.categorical(key, jnp.log(jnp.asarray(probs)), shape=(replicates, num_samples)))
    k = probs.shape[0]
    vals = np.array([w2_weights(support, probs, np.bincount(row, minlength=k) / num_samples) for row in draws])
    return vals, float(vals.mean()), float(np.quantile(vals, quantile))


def w2_to_isotropic(mean, a, lam, s2, s):
    """``W2(N(mean, a^2 S + s2 I), N(0, s^2 I))`` from the eigenvalues ``lam`` of ``S``, without cancellation.
    Returns (W2, ``sqrt(c_k) - s`` per eigenvalue, ``c_k = a^2 lam_k + s2``)."""
    c = a**2 * lam + s2
    gap = (a**2 * lam + (s2 - s * s)) / (jnp.sqrt(c) + s)  # sqrt(c) - s
    return jnp.sqrt(jnp.sum(mean**2) + jnp.sum(gap**2)), gap, c


def gaussian_prior_error(measure, schedule, T, eps, dtype) -> tuple[dict, dict]:
    """Exact W2(p_T, q_T) and W2(p_eps, q_eps) for Gaussian data: (bracket fields, end-of-sampling fields).

    Every covariance involved is a function of the data covariance ``S`` (``C_t = alpha_t^2 S + sigma_t^2 I``,
    ``q_T = N(0, s^2 I)``, the flow map ``T -> eps`` is ``x -> mean_eps + A (x - mean_T)`` with ``A = C_eps^{1/2}
    C_T^{-1/2}``), so all of them commute and the Bures distances are sums over the eigenvalues ``lambda_k`` of
    ``S``, written without cancellation: ``sqrt(c) - s = (c - s^2) / (sqrt(c) + s)``. (A general Bures formula
    ``tr C1 + tr C2 - 2 tr (C1^1/2 C2 C1^1/2)^1/2`` loses everything below ``sqrt(machine eps)`` of the traces,
    where the prior error of centred data lives at large ``T``.)
    """
    a_T, s2_T = schedule.alpha(T), schedule.sigma2(T)
    s = schedule.prior_std(T)
    lam, vecs = jnp.linalg.eigh(0.5 * (measure.cov + measure.cov.T))
    lam = jnp.maximum(lam, 0.0)
    w2, gap_T, c_T = w2_to_isotropic(a_T * measure.mean, a_T, lam, s2_T, s)
    a_e, s2_e = schedule.alpha(eps), schedule.sigma2(eps)
    c_e = a_e**2 * lam + s2_e
    # q_eps = N(mean_e - A a_T mean, s^2 A A^T): mean gap A a_T mean, eigenvalues s^2 c_e / c_T
    ratio = jnp.sqrt(c_e / c_T)
    mean_gap = a_T * ratio * (measure.mean @ vecs)
    end = jnp.sqrt(jnp.sum(mean_gap**2) + jnp.sum(c_e * (gap_T / jnp.sqrt(c_T)) ** 2))
    zero = scal(0.0, dtype)
    bracket = {"w2": w2, "w2_se": zero, "lower": w2, "upper": w2, "upper_se": zero}
    end_fields = {"w2": end, "positive": end > 0, "ratio_lower": end / w2, "ratio_upper": end / w2,
                  "bracket_lower": jnp.min(ratio), "bracket_upper": jnp.max(ratio)}
    return bracket, end_fields


@jax.jit
def _log_ratio(measure, schedule, x, T, s):
    """``log p_T(x) - log q_T(x)`` for ``q_T = N(0, s^2 I)``."""
    log_p = measure.marginal_stats(x, T, schedule)[0]
    d = x.shape[-1]
    log_q = -0.5 * jnp.sum(x * x, -1) / (s * s) - 0.5 * d * jnp.log(2 * math.pi * s * s)
    return log_p - log_q


@jax.jit
def _coupling_terms(smap, z):
    """Per-sample ``<T(z), z>`` and ``T(z)``."""
    tz = smap.transport(z)
    return jnp.sum(tz * z, -1), tz


def solver_w2(smap, key) -> float:
    """``W2(grad u_h # N(0, I), target)`` from the certificate's cell masses (or fresh ones, ``2^18``)."""
    if smap.certificate is not None:
        masses = np.asarray(smap.certificate.masses, np.float64)
    else:
        masses = np.asarray(smap.cell_masses(key=key, num_samples=2**18), np.float64)
    return w2_weights(np.asarray(smap.targets, np.float64), np.asarray(smap.weights, np.float64), masses)


def empirical_bracket(measure, schedule, T, key, *, smap, num_samples, num_kl_samples, dtype) -> tuple[dict, float]:
    """Gelbrich lower bound, coupling and Talagrand upper bounds; returns (fields, the solver's W2)."""
    a, sig, s = schedule.alpha(T), schedule.sigma(T), schedule.prior_std(T)
    d = measure.dim
    mean, cov = moments(measure)
    lower = w2_to_isotropic(a * mean, a, jnp.maximum(jnp.linalg.eigvalsh(0.5 * (cov + cov.T)), 0.0), sig * sig, s)[0]
    k_sel, k_eval, k_kl = jax.random.split(key, 3)
    k_mass = jax.random.fold_in(key, 3)  # only used for a map without a certificate
    # coupling: choose (c, b) on an independent sample, evaluate on a fresh one
    inner, _ = _coupling_terms(smap, jax.random.normal(k_sel, (min(num_samples, 8192), d), dtype))
    v = jnp.stack([a * jnp.mean(inner), sig * d])
    c, b = s * v / jnp.linalg.norm(v)
    z = jax.random.normal(k_eval, (num_samples, d), dtype)
    _, tz = _coupling_terms(smap, z)
    cost = jnp.sum((a * tz - c * z) ** 2, -1) + (sig - b) ** 2 * d
    m = jnp.mean(cost)
    se_m = jnp.std(cost) / math.sqrt(num_samples)
    sw2 = solver_w2(smap, k_mass)
    coup = jnp.sqrt(m) + a * sw2
    coup_se = se_m / (2 * jnp.sqrt(jnp.maximum(m, 1e-300)))
    # Talagrand
    x = measure.sample_marginal(k_kl, T, schedule, num_kl_samples)
    r = _log_ratio(measure, schedule, x, jnp.asarray(T, dtype), jnp.asarray(s, dtype))
    kl, kl_se = jnp.mean(r), jnp.std(r) / math.sqrt(num_kl_samples)
    ukl = jnp.sqrt(2 * s * s * jnp.maximum(kl, 0.0))
    ukl_se = s * s * kl_se / jnp.maximum(ukl, 1e-300)
    ukl_se = jnp.where(ukl > 0, ukl_se, jnp.sqrt(2 * s * s * kl_se))
    use_kl = ukl < coup
    fields = {
        "lower": lower, "upper_coupling": coup, "upper_coupling_se": coup_se, "upper_kl": ukl,
        "upper_kl_se": ukl_se, "upper": jnp.where(use_kl, ukl, coup), "upper_se": jnp.where(use_kl, ukl_se, coup_se),
    }
    return fields, sw2


def sample_estimate(mu, schedule, T, key, *, sample_points, num_samples, ot_tol):
    """``W2(q_T, {x_j})`` for an ``n``-sample of ``p_T`` (``s``-rescaled semi-discrete OT).
    Returns (value, standard error)."""
    s = schedule.prior_std(T)
    x = mu.sample_marginal(key, T, schedule, sample_points)
    k_solve, k_mc = jax.random.split(jax.random.fold_in(key, 1))
    smap = semidiscrete_ot(x / s, key=k_solve, tol=ot_tol, sampling=SemidiscreteSampling(certificate_samples=0),
                           throw=False)  # a failed solve warns (the estimate has no status of its own)
    est = w2_gaussian_to_discrete(smap, key=k_mc, num_samples=num_samples)
    return s * est.value, s * est.standard_error


def sample_resolution(mu, schedule, T, key, n: int) -> float:
    """How far an ``n``-sample of ``p_T`` sits from ``p_T`` itself: ``W2`` between two independent ``n``-samples
    (exact assignment) over ``sqrt 2``. A direct estimate built on such a sample cannot resolve a bracket
    narrower than this."""
    k1, k2 = jax.random.split(jax.random.fold_in(key, 2))
    a = np.asarray(mu.sample_marginal(k1, T, schedule, n), np.float64)
    b = np.asarray(mu.sample_marginal(k2, T, schedule, n), np.float64)
    return w2_exact(a, b) / math.sqrt(2.0)


def flow_landing(score, schedule, x, T, eps, centers, ode):
    """Flows ``x`` from ``T`` to ``eps`` and returns (index of the nearest center per row, the FlowResult)."""
    out = flow_map(score, schedule, x, T, eps, ode=ode)
    return np.asarray(nearest(out.points, centers)), out


# --------------------------------------------------------------------------------------------------
# Assembly of PriorErrorResult.
# --------------------------------------------------------------------------------------------------


def gaussian_result(measure, schedule, T, eps, end_of_sampling) -> PriorErrorResult:
    dtype = measure.mean.dtype
    T_arr = scal(T, dtype)
    br, end = gaussian_prior_error(measure, schedule, T_arr, scal(eps, dtype), dtype)
    nan = jnp.asarray(jnp.nan, dtype)
    bracket = PriorBracket(**{**dict.fromkeys(PriorBracket.__dataclass_fields__, nan), **br})
    end_r = None
    if end_of_sampling:
        end_r = EndOfSampling(**end, null_mean=nan, null_upper=nan, weights=jnp.zeros((0,), dtype),
                              data_weights=jnp.zeros((0,), dtype), nfe=jnp.asarray(0), flow_success=jnp.asarray(True))
    settings = {"measure": "GaussianMeasure", "schedule": type(schedule).__name__, "T": float(T), "eps": float(eps),
                "method": "closed form (Bures); end of sampling: affine flow map C_eps^1/2 C_T^-1/2",
                "dtype": str(jnp.dtype(dtype))}
    return PriorErrorResult(T=T_arr, alpha=schedule.alpha(T_arr), sigma=schedule.sigma(T_arr),
                            prior_std=schedule.prior_std(T_arr), bracket=bracket, end=end_r, corrected=None,
                            ot_certificate=nan, ot_noise_floor=nan, settings=settings)


def empirical_result(measure, pts, w, schedule, T, key, smap, o):
    """Dataset: bracket, estimate, and optionally end of sampling and the corrected prior.
    Returns (result, the map N(0, I) -> mu)."""
    dtype = measure.points.dtype
    T_arr = scal(T, dtype)
    # nine streams, as in earlier releases ("cz" is unused), so a given key reproduces earlier results
    keys = dict(zip(("ot", "bracket", "sample", "flow", "null", "cnoise", "cot", "cz", "cnull"),
                    jax.random.split(key, 9), strict=True))
    support, weights = jnp.asarray(pts, dtype), jnp.asarray(w, dtype)
    mu = EmpiricalMeasure(support, weights)
    if smap is None:
        smap = semidiscrete_ot(support, weights, key=keys["ot"], tol=o["ot_tol"], solver=o["ot_solver"],
                               throw=False)  # warns; the certificate is recorded (ot_certificate)
    b, sw2 = empirical_bracket(mu, schedule, T_arr, keys["bracket"], smap=smap, num_samples=o["num_samples"],
                                 num_kl_samples=o["num_kl_samples"], dtype=dtype)
    resolution = sample_resolution(mu, schedule, T_arr, keys["sample"], o["sample_points"]) \
        if o["sample_points"] and o.get("skip_uninformative", False) else None
    informative = resolution is None or float(b["upper"] - b["lower"]) > resolution
    if o["sample_points"] and informative:
        est, est_se = sample_estimate(mu, schedule, T_arr, keys["sample"], sample_points=o["sample_points"],
                                      num_samples=o["num_samples"], ot_tol=o["ot_tol"])
        b.update(sample_estimate=est, sample_estimate_se=est_se, w2=jnp.clip(est, b["lower"], b["upper"]), w2_se=est_se)
    else:
        nan = jnp.asarray(jnp.nan, dtype)
        b.update(sample_estimate=nan, sample_estimate_se=nan, w2=0.5 * (b["lower"] + b["upper"]),
                 w2_se=0.5 * (b["upper"] - b["lower"]))
    bracket = PriorBracket(**b)
    cert = smap.certificate
    nan = jnp.asarray(jnp.nan, dtype)
    settings = {k: (repr(v) if k in ("ot_solver", "ode") else v) for k, v in o.items()}
    settings.update(measure="EmpiricalMeasure", schedule=type(schedule).__name__, T=float(T), dtype=str(jnp.dtype(dtype)),
                    support_size=int(pts.shape[0]), ot_solver_w2=float(sw2),
                    w2_definition="sample estimate clipped into [lower, upper]" if o["sample_points"] and informative
                    else "bracket midpoint (+- half width)", sample_resolution=resolution)
    end = corr = None
    if o["end_of_sampling"]:
        end, corr = end_and_corrected(mu, pts, w, schedule, T_arr, keys, bracket, o, settings)
    res = PriorErrorResult(
        T=T_arr, alpha=schedule.alpha(T_arr), sigma=schedule.sigma(T_arr), prior_std=schedule.prior_std(T_arr),
        bracket=bracket, end=end, corrected=corr, ot_certificate=nan if cert is None else cert.max_relative_error,
        ot_noise_floor=nan if cert is None else cert.noise_floor, settings=settings,
    )
    return res, smap


def end_and_corrected(mu, pts, w, schedule, T_arr, keys, bracket, o, settings):
    """Thm 3.2 (flow q_T to eps) and, optionally, Lemma 3.5 (the OT-corrected prior) in one flow."""
    dtype = mu.points.dtype
    n, d = pts.shape
    eps = o["eps"]
    score = exact_score(mu, schedule)
    centers = schedule.alpha(scal(eps, dtype)) * mu.points
    num_samples = o["num_samples"]
    z = schedule.sample_prior(keys["flow"], T_arr, (num_samples, d)).astype(dtype)
    K = math.ceil(num_samples / n) if o["noise_draws"] is None else o["noise_draws"]
    targets = None
    x0 = z
    if o["corrected"]:  # the corrected prior's targets: alpha_T y_i + sigma_T eps_ik, weights w_i / K
        noise = jax.random.normal(keys["cnoise"], (n, K, d), dtype)
        targets = (schedule.alpha(T_arr) * mu.points[:, None, :] + schedule.sigma(T_arr) * noise).reshape(-1, d)
        x0 = jnp.concatenate([z, targets])
    # one flow for the prior sample and the targets (the corrected prior outputs targets exactly, so
    # flowing each target once and weighting it is the same as flowing every corrected sample)
    land, out = flow_landing(score, schedule, x0, T_arr, eps, centers, o["ode"])
    w_end = np.bincount(land[:num_samples], minlength=n) / num_samples
    val = w2_weights(pts, w, w_end)
    _, null_mean, null_up = null_w2(keys["null"], pts, w, num_samples, o["null_replicates"], o["null_quantile"])
    end = EndOfSampling(
        w2=scal(val, dtype), null_mean=scal(null_mean, dtype), null_upper=scal(null_up, dtype),
        positive=jnp.asarray(val > null_up), ratio_lower=scal(val, dtype) / bracket.upper,
        ratio_upper=scal(val, dtype) / bracket.lower, bracket_lower=scal(jnp.nan, dtype),
        bracket_upper=scal(jnp.nan, dtype), weights=jnp.asarray(w_end, dtype), data_weights=jnp.asarray(w, dtype),
        nfe=out.nfe, flow_success=out.success,
    )
    if targets is None:
        return end, None
    tw = np.repeat(w / K, K)
    tw = tw / tw.sum()
    cmap = semidiscrete_ot(targets, jnp.asarray(tw, dtype), key=keys["cot"], tol=o["ot_tol"], solver=o["ot_solver"],
                           sampling=SemidiscreteSampling(certificate_samples=max(2**18, 64 * targets.shape[0])),
                           throw=False)  # a failed solve warns, as before
    land_t = land[num_samples:]
    # pushforward of N(0, I) under the computed map: cell masses on a fresh sample (the certificate's)
    w_corr = np.bincount(land_t, weights=np.asarray(cmap.certificate.masses, np.float64), minlength=n)
    corr = w2_weights(pts, w, w_corr)
    m_set = n * K
    if m_set == num_samples:
        c_mean, c_up = null_mean, null_up
    else:
        _, c_mean, c_up = null_w2(keys["cnull"], pts, w, m_set, o["null_replicates"], o["null_quantile"])
    settings.update(corrected_targets=int(m_set), corrected_noise_draws=int(K),
                    corrected_certificate_samples=int(cmap.certificate.num_samples))
    return end, CorrectedPrior(
        w2=scal(corr, dtype), set_w2=scal(w2_weights(pts, w, np.bincount(land_t, weights=tw, minlength=n)), dtype),
        null_mean=scal(c_mean, dtype), null_upper=scal(c_up, dtype), within_null=jnp.asarray(corr <= c_up),
        weights=jnp.asarray(w_corr, dtype), ot_certificate=cmap.certificate.max_relative_error,
    )
