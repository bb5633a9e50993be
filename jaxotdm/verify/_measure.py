"""The four measurements behind :func:`jaxotdm.verify.convergence_to_brenier`.

Backward (prior at ``s`` -> data) and forward (``p_T0 -> p_s``, Thm 3.11), each for a dataset (semi-discrete
OT) and for Gaussian data (closed form). Each returns a :class:`Measured` record with one entry per time;
the summary (self-convergence, fits, floor) is in :mod:`jaxotdm.verify.convergence`.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxotdm import _linalg as L
from jaxotdm._pytree import pytree_dataclass
from jaxotdm.flow import ODESettings, flow_map
from jaxotdm.ot import exact_cells
from jaxotdm.scores import exact_score
from jaxotdm.verify.cost import TransportCost, transport_cost_gap


@pytree_dataclass
class Measured:
    """Per-time measurements (arrays over times; NaN where a quantity does not apply)."""

    l2: np.ndarray
    l2_se: np.ndarray
    mismatch: np.ndarray
    mismatch_se: np.ndarray
    own: np.ndarray
    nfe: np.ndarray
    success: np.ndarray
    finals: list
    ot_resolution: dict
    cost: TransportCost | None


def l2_and_se(sq: np.ndarray) -> tuple[float, float]:
    """sqrt(mean(sq)) and its delta-method standard error."""
    sq = np.asarray(sq, np.float64)
    m = float(sq.mean())
    se_m = float(sq.std(ddof=1) / math.sqrt(len(sq))) if len(sq) > 1 else math.nan
    l2 = math.sqrt(max(m, 0.0))
    return l2, (se_m / (2 * l2) if l2 > 0 else math.sqrt(se_m) if se_m > 0 else 0.0)


def psd_sqrt(c) -> np.ndarray:
    """``C^{1/2}`` (the package's one PSD square root, :mod:`jaxotdm._linalg`) as float64 NumPy."""
    return np.asarray(L.psd_sqrt(jnp.asarray(c)), np.float64)


def _affine_fit(x: np.ndarray, y: np.ndarray):
    """Least-squares affine map y ~ A x + b (exact for affine maps up to solver error)."""
    X = np.concatenate([x, np.ones((len(x), 1))], 1)
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    return coef[:-1].T, coef[-1]


def optimality_gap(A: np.ndarray, c0: np.ndarray) -> float:
    """L2(N(., c0)) distance between x -> A x and the Brenier map G onto the law of A x, N(0, A C0 A^T):
    ``sqrt(tr((A - G) C0 (A - G)^T))``."""
    zero = jnp.zeros(len(c0))
    g = np.asarray(L.gaussian_ot_map(zero, jnp.asarray(c0), zero, jnp.asarray(A @ c0 @ A.T))[0], np.float64)
    e = A - g
    return float(math.sqrt(max(np.trace(e @ c0 @ e.T), 0.0)))


def _empty(k: int) -> dict:
    out = {n: np.full(k, np.nan) for n in ("l2", "l2_se", "mismatch", "mismatch_se", "own", "nfe")}
    out["success"] = np.ones(k, bool)
    return out


def _flow(score, schedule, x, t0, t1, rtol, out, i):
    res = flow_map(score, schedule, x, t0, t1, ode=ODESettings(rtol=rtol, atol=rtol))
    out["nfe"][i] = int(res.nfe)
    out["success"][i] = bool(res.success)
    return res


def forward_chain(score, schedule, x0, T0, times, rtol, *, throw: bool = True):
    """The forward flow maps ``M^{T0,s}(x0)`` at every ``s`` of ``times`` (increasing), as one chain
    ``M^{s_{j-1},s_j} o ... o M^{T0,s_1}``: each segment starts where the previous one ended, so the flow is
    integrated once over ``[T0, max s]`` instead of once per ``s`` (the flow maps compose exactly; every
    segment is solved to ``rtol``). Yields ``(points, nfe, success)`` per ``s``, with ``nfe`` and ``success``
    cumulative over the segments (the cost and status of ``M^{T0,s_j}``)."""
    x, t, nfe, ok = x0, T0, 0, True
    for s in times:
        res = flow_map(score, schedule, x, t, float(s), ode=ODESettings(rtol=rtol, atol=rtol), throw=throw)
        nfe, ok = nfe + int(res.nfe), ok and bool(res.success)
        x, t = res.points, float(s)
        yield res.points, nfe, ok


def exact_masses(smap):
    """The map's cell masses under ``N(0, I)`` in closed form where the diagram is planar (``d = 2``, targets not
    collinear; :func:`jaxotdm.ot.semidiscrete.exact_cells`), else ``None``."""
    x = np.asarray(smap.targets, np.float64)
    if x.ndim != 2 or x.shape[1] != 2 or x.shape[0] < 3:
        return None
    w = np.asarray(smap.weights, np.float64)
    try:
        return exact_cells(x - w @ x, np.asarray(smap.heights, np.float64))[0]
    except ValueError:  # collinear targets
        return None


def certificate_summary(smap) -> dict:
    """The OT map's mass error: exact where the diagram is planar (the Monte Carlo certificate, if any, is then
    reported beside it as an independent check), else the Monte Carlo certificate's."""
    cert = smap.certificate
    w = np.asarray(smap.weights, np.float64)
    exact = exact_masses(smap)
    if exact is not None:
        out = {"max_relative_mass_error": float(np.max(np.abs(exact - w) / w)), "max_relative_mass_error_se": 0.0,
               "mass_total_variation": float(0.5 * np.abs(exact - w).sum()),
               "masses": "exact (closed-form Gaussian masses over the power diagram)"}
        if cert is not None:
            out.update(certificate_max_relative_error=float(cert.max_relative_error),
                       certificate_noise_floor=float(cert.noise_floor), certificate_samples=int(cert.num_samples))
        return out
    if cert is None:
        return {"max_relative_mass_error": None, "mass_total_variation": 0.0, "note": "map given without certificate"}
    masses = np.asarray(cert.masses, np.float64)
    return {
        "max_relative_mass_error": float(cert.max_relative_error),
        "max_relative_mass_error_se": float(cert.standard_error),
        "certificate_noise_floor": float(cert.noise_floor),
        "certificate_samples": int(cert.num_samples),
        "mass_total_variation": float(0.5 * np.abs(masses - w).sum()),
        "masses": "Monte Carlo certificate",
    }


def readout_error(measure, schedule, eps, key, num_samples: int) -> float:
    """How often the landing read-off (the posterior mode at ``eps``) names the wrong point for an *exact*
    sample of ``p_eps``: the resolution of any misrouted-mass measurement (points closer than a few
    ``sigma(eps)`` cannot be told apart)."""
    k_i, k_e = jax.random.split(key)
    idx = jax.random.categorical(k_i, jnp.log(measure.weights), shape=(num_samples,))
    x = schedule.alpha(eps) * measure.points[idx] + schedule.sigma(eps) * jax.random.normal(
        k_e, (num_samples, measure.dim), measure.points.dtype)
    got = exact_score(measure, schedule).posterior_mode(x, eps)
    return float(jnp.mean(got != idx))


# ------------------------------------------------------------------------------------------- backward
def backward_dataset(measure, schedule, times, *, z, eps, rtol, smap, key, progress) -> Measured:
    """Prior at ``s`` -> data with the exact flow, against the semi-discrete OT map ``smap`` (same draws)."""
    score = exact_score(measure, schedule)
    k, n_s = len(times), z.shape[0]
    y = np.asarray(measure.points, np.float64)
    w = np.asarray(measure.weights, np.float64)
    idx_ot = np.asarray(smap.assign(z))
    target = y[idx_ot]
    zn = np.asarray(z, np.float64)
    h = np.asarray(smap.heights, np.float64)
    ot_res = {"kind": "semi-discrete OT N(0, I) -> data", **certificate_summary(smap),
              "readout_error": readout_error(measure, schedule, eps, key, n_s)}
    out, finals, costs = _empty(k), [], []
    for i, s in enumerate(times):
        progress(i, k, f"backward flow from s = {s:g}")
        res = _flow(score, schedule, schedule.prior_std(jnp.asarray(s, z.dtype)) * z, s, eps, rtol, out, i)
        idx = np.asarray(score.posterior_mode(res.points, eps))
        out["l2"][i], out["l2_se"][i] = l2_and_se(((y[idx] - target) ** 2).sum(1))
        mis = float(np.mean(idx != idx_ot))
        out["mismatch"][i], out["mismatch_se"][i] = mis, math.sqrt(max(mis * (1 - mis), 0.0) / n_s)
        costs.append(transport_cost_gap(zn, y[idx], target, targets=y, weights=w, heights=h, map_index=idx,
                                        ot_index=idx_ot))
        finals.append(np.asarray(res.points, np.float64))
    return Measured(**out, finals=finals, ot_resolution=ot_res, cost=TransportCost.stack(costs))


def backward_gaussian(measure, schedule, times, *, z, eps, rtol, progress) -> Measured:
    """Gaussian data: the flow's output against the closed-form Brenier map ``N(0, I) -> p_eps``."""
    score = exact_score(measure, schedule)
    k, d = len(times), measure.dim
    zn = np.asarray(z, np.float64)
    c_eps = np.asarray(measure.marginal_cov(eps, schedule), np.float64)
    target = float(schedule.alpha(eps)) * np.asarray(measure.mean, np.float64) + zn @ psd_sqrt(c_eps)
    ot_res = {"kind": "closed form (Bures): N(0, I) -> p_eps", "max_relative_mass_error": 0.0}
    out, finals, costs = _empty(k), [], []
    for i, s in enumerate(times):
        progress(i, k, f"backward flow from s = {s:g}")
        res = _flow(score, schedule, schedule.prior_std(jnp.asarray(s, z.dtype)) * z, s, eps, rtol, out, i)
        yv = np.asarray(res.points, np.float64)
        out["l2"][i], out["l2_se"][i] = l2_and_se(((yv - target) ** 2).sum(1))
        out["own"][i] = optimality_gap(_affine_fit(zn, yv)[0], np.eye(d))
        costs.append(transport_cost_gap(zn, yv, target))
        finals.append(yv)
    return Measured(**out, finals=finals, ot_resolution=ot_res, cost=TransportCost.stack(costs))


# -------------------------------------------------------------------------------------------- forward
def forward_gaussian(measure, schedule, times, *, key, T0, num_samples, rtol, progress) -> Measured:
    """Gaussian data: ``p_T0 -> p_s`` (rescaled) against the closed-form Brenier map ``p_T0 -> N(0, I)``."""
    score = exact_score(measure, schedule)
    x0 = measure.sample_marginal(key, T0, schedule, num_samples)
    c0 = np.asarray(measure.marginal_cov(T0, schedule), np.float64)
    m0 = float(schedule.alpha(T0)) * np.asarray(measure.mean, np.float64)
    x0n = np.asarray(x0, np.float64)
    brenier = (x0n - m0) @ np.linalg.inv(psd_sqrt(c0))  # p_T0 -> N(0, I), symmetric
    ot_res = {"kind": "closed form (Bures): p_T0 -> N(0, I)", "barycentre_mc_se": 0.0}
    return _forward_loop(score, schedule, times, x0, T0, rtol, brenier=brenier, ot_res=ot_res, progress=progress,
                         c0=c0)


def forward_dataset(measure, schedule, times, *, keys, T0, ot_points, ot_mc_per_point, ot_tol, rtol,
                    progress) -> Measured:
    """Dataset: ``p_T0 -> p_s`` against the inverse of the semi-discrete map ``N(0, I) -> {x_j ~ p_T0}``
    (it sends ``x_j`` to the barycentre of its Laguerre cell)."""
    from jaxotdm.ot import semidiscrete_ot

    k_z, k_ot, k_b = keys
    score = exact_score(measure, schedule)
    d = measure.dim
    x0 = measure.sample_marginal(k_z, T0, schedule, ot_points)
    k = len(times)

    def ot_progress(p):
        progress(0, k, f"Brenier estimate: OT onto {ot_points} samples of p_T0, iteration {p.iteration}, "
                       f"{p.num_samples:,} samples, error {p.error:.3g}")

    progress(0, k, f"Brenier estimate: OT onto {ot_points} samples of p_T0")
    smap = semidiscrete_ot(x0, key=k_ot, tol=ot_tol, progress=ot_progress, throw=False)  # warns; cert. recorded
    bary, masses, mc_se, exact = cell_barycentres(
        smap, k_b, ot_points * ot_mc_per_point, d, x0.dtype,
        progress=lambda b, nb: progress(0, k, f"Brenier estimate: cell barycentres, batch {b + 1}/{nb}"),
    )
    ot_res = {
        "kind": "inverse of the semi-discrete map N(0, I) -> n samples of p_T0 (Laguerre-cell barycentres)",
        "ot_points": ot_points,
        **certificate_summary(smap),
        "barycentres": ("exact (closed-form Gaussian moments over the power diagram)" if exact else
                        f"Monte Carlo ({ot_points * ot_mc_per_point:,} draws)"),
        "barycentre_mc_se": mc_se,
        "min_cell_mass": float(masses.min()),
        "discretisation_scale_n^(-1/d)": float(ot_points ** (-1.0 / d)),
        "ot_iterations": int(smap.diagnostics.iterations) if smap.diagnostics is not None else None,
    }
    return _forward_loop(score, schedule, times, x0, T0, rtol, brenier=bary, ot_res=ot_res, progress=progress)


def _forward_loop(score, schedule, times, x0, T0, rtol, *, brenier, ot_res, progress, c0=None) -> Measured:
    k = len(times)
    x0n = np.asarray(x0, np.float64)
    out, finals = _empty(k), []
    chain = forward_chain(score, schedule, x0, T0, times, rtol)
    for i, s in enumerate(times):
        progress(i, k, f"forward flow to s = {s:g}")
        points, out["nfe"][i], out["success"][i] = next(chain)
        yv = np.asarray(points, np.float64) / float(schedule.prior_std(s))
        out["l2"][i], out["l2_se"][i] = l2_and_se(((yv - brenier) ** 2).sum(1))
        if c0 is not None:
            out["own"][i] = optimality_gap(_affine_fit(x0n, yv)[0], c0)  # vs Brenier onto its own image law
        finals.append(yv)
    return Measured(**out, finals=finals, ot_resolution=ot_res, cost=None)


@functools.partial(jax.jit, static_argnames=("batch", "d", "dtype"))
def _cell_sums(smap, key, *, batch: int, d: int, dtype):
    """One batch of N(0, I) draws: per-cell sums of ``z``, of ``|z|^2`` and counts (the map is an argument, not
    a closed-over constant: one compilation serves every map of the same size)."""
    n = smap.num_targets
    z = jax.random.normal(key, (batch, d), dtype)
    j = smap.assign(z)
    return (jax.ops.segment_sum(z, j, n), jax.ops.segment_sum(jnp.sum(z * z, -1), j, n),
            jax.ops.segment_sum(jnp.ones((batch,), dtype), j, n))


def cell_barycentres(smap, key, total: int, d: int, dtype, batch: int = 65_536, progress=None):
    """Barycentres ``E[z | z in W_j]`` of ``N(0, I)`` over the Laguerre cells: ``(barycentres, masses, mc_se,
    exact)``.

    In the plane (``d = 2``, targets not collinear) they are exact: the cells' closed-form Gaussian first moments
    and masses over the power diagram (:func:`jaxotdm.ot.semidiscrete.exact_cells`), Monte Carlo error 0.
    Elsewhere they are Monte Carlo estimates from ``total`` draws (segment sums over batches): ``masses`` are the
    cells' sample fractions and ``mc_se`` the RMS standard error of the barycentres.
    """
    n = smap.num_targets
    if d == 2 and n >= 3:
        x = np.asarray(smap.targets, np.float64)
        w = np.asarray(smap.weights, np.float64)
        try:
            m, mom, _ = exact_cells(x - w @ x, np.asarray(smap.heights, np.float64))
        except ValueError:  # collinear targets: no planar diagram
            pass
        else:
            if np.all(m > 0):
                return mom / m[:, None], m, 0.0, True
    nb = max(1, -(-total // batch))
    one = functools.partial(_cell_sums, smap, batch=batch, d=d, dtype=jnp.dtype(dtype))

    sums = np.zeros((n, d))
    sq = np.zeros(n)
    cnt = np.zeros(n)
    for b, kk in enumerate(jax.random.split(key, nb)):
        if progress is not None:
            progress(b, nb)
        a, s2, c = one(kk)
        sums += np.asarray(a, np.float64)
        sq += np.asarray(s2, np.float64)
        cnt += np.asarray(c, np.float64)
    safe = np.maximum(cnt, 1.0)
    bary = sums / safe[:, None]
    var = np.maximum(sq / safe - (bary**2).sum(1), 0.0)  # total within-cell variance
    mc_se = float(math.sqrt(np.mean(var / safe)))  # RMS standard error of the barycentres
    return bary, cnt / (nb * batch), mc_se, False
