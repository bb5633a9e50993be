"""Result records of :mod:`jaxotdm.verify.prior`: one sub-result per claim, nested in :class:`PriorErrorResult`."""

from __future__ import annotations

from jaxotdm._pytree import pytree_dataclass
from jaxotdm._types import Array, Float

__all__ = ["CorrectedPrior", "EndOfSampling", "OTCorrectionResult", "PriorBracket", "PriorErrorResult"]


@pytree_dataclass
class PriorBracket:
    """``W2(p_T, q_T)``: bracket and estimates (0-d arrays; NaN where not applicable).

    Attributes:
        w2, w2_se: best point estimate and its standard error (exact, SE 0, for Gaussian data; for a dataset
            the sample estimate clipped into the bracket, or the bracket's midpoint without one).
        lower: Gelbrich lower bound (exact). upper, upper_se: the smaller of the two upper bounds.
        upper_coupling, upper_coupling_se: explicit-coupling upper bound (includes the OT solver error).
        upper_kl, upper_kl_se: Talagrand upper bound ``sqrt(2 s^2 KL)``.
        sample_estimate, sample_estimate_se: direct estimate from an ``n``-sample of ``p_T`` (biased up).
    """

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


@pytree_dataclass
class EndOfSampling:
    """Thm 3.2: ``W2(p_eps, q_eps)`` of the exact-score flow started from ``q_T``.

    Attributes:
        w2: the statistic. null_mean, null_upper: its null (i.i.d. sample of ``mu`` of the same size): mean
            and upper ``null_quantile``. positive: ``w2 > null_upper`` (Gaussian: ``w2 > 0`` exactly).
        ratio_lower, ratio_upper: ``w2 / upper`` and ``w2 / lower`` of the bracket (the measured Thm 3.2
            ratio; equal for Gaussian data).
        bracket_lower, bracket_upper: Gaussian data only, the explicit Thm 3.2 constants.
        weights, data_weights: ``(n,)`` weights on the support of ``q_eps`` and of ``mu`` (dataset only).
        nfe: score evaluations of the flow. flow_success: the ODE solve succeeded.
    """

    w2: Float[Array, ""]
    null_mean: Float[Array, ""]
    null_upper: Float[Array, ""]
    positive: Array
    ratio_lower: Float[Array, ""]
    ratio_upper: Float[Array, ""]
    bracket_lower: Float[Array, ""]
    bracket_upper: Float[Array, ""]
    weights: Array
    data_weights: Array
    nfe: Array
    flow_success: Array


@pytree_dataclass
class CorrectedPrior:
    """Lemma 3.5: ``W2(p_eps, q_eps)`` with the OT-corrected prior.

    Attributes:
        w2: pushforward weights = the computed map's cell masses on a fresh sample of at least ``2^18``,
            summed where the targets land. set_w2: the same with the exact map (target weights): what the
            finite noised set keeps. null_mean, null_upper: null for an i.i.d. sample of ``mu`` of the noised
            set's size. within_null: ``w2 <= null_upper``. weights: ``(n,)``. ot_certificate: max relative
            cell-mass error of the corrected-prior map.
    """

    w2: Float[Array, ""]
    set_w2: Float[Array, ""]
    null_mean: Float[Array, ""]
    null_upper: Float[Array, ""]
    within_null: Array
    weights: Array
    ot_certificate: Float[Array, ""]


@pytree_dataclass
class PriorErrorResult:
    """Result of :func:`prior_error` (a PyTree of 0-d arrays and sub-results).

    Attributes:
        T, alpha, sigma, prior_std: the termination time and ``alpha_T``, ``sigma_T``, ``s = prior_std(T)``.
        bracket: :class:`PriorBracket`, ``W2(p_T, q_T)``.
        end: :class:`EndOfSampling` (Thm 3.2), or ``None`` when not requested.
        corrected: :class:`CorrectedPrior` (Lemma 3.5), or ``None`` when not requested.
        ot_certificate, ot_noise_floor: max relative cell-mass error of the map ``N(0,I) -> mu`` on a fresh
            sample, and the Monte Carlo floor below which it cannot resolve errors (NaN for Gaussian data).
        settings: the settings used (dict).
    """

    T: Float[Array, ""]
    alpha: Float[Array, ""]
    sigma: Float[Array, ""]
    prior_std: Float[Array, ""]
    bracket: PriorBracket
    end: EndOfSampling | None
    corrected: CorrectedPrior | None
    ot_certificate: Float[Array, ""]
    ot_noise_floor: Float[Array, ""]
    settings: dict


@pytree_dataclass
class OTCorrectionResult:
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
        settings: dict.
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
    settings: dict
