"""ott-jax's ``SemidiscreteSolver`` (SGD on the dual ``g``) driven through our protocol and driver.

Each of our steps runs ``error_eval_every`` of ott's own ``SemidiscreteSolver.step`` calls, then ott's marginal
chi-square error of the averaged iterate. Convergence is ours, not ott's: the chi-square gate only decides
when to run our fresh-sample check of the max relative cell-mass error (the quantity ``tol`` bounds), and
the solve converges when that check, plus its noise level, is at most ``tol``. (ott's chi-square threshold
alone let it report success at a max relative error of 0.136 for ``tol = 0.05``.)
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxotdm import _validation as V
from jaxotdm._ott import ott
from jaxotdm._pytree import pytree_dataclass, static_field
from jaxotdm._types import Array
from jaxotdm.ot.semidiscrete import _passes as P
from jaxotdm.ot.semidiscrete.driver import SemidiscreteHistory, SemidiscreteSolver
from jaxotdm.ot.semidiscrete.problem import SemidiscreteProblem, check_settings, required_samples, zscore


class _DecayState(NamedTuple):  # an optax GradientTransformation state: optax's NamedTuple convention
    count: Array
    lr0: Array


def _decaying_sgd(decay_steps: float) -> optax.GradientTransformation:
    """SGD with step ``lr0 / (1 + t / decay_steps)^(2/3)``; ``lr0`` lives in the optimiser state (set after
    ``init``), so it can depend on the data without recompiling."""

    def init(params):
        return _DecayState(jnp.zeros((), jnp.int32), jnp.ones((), params.dtype))

    def update(updates, state, params=None, **extra):  # ott passes ``value=loss``
        del params, extra
        lr = state.lr0 / (1.0 + state.count / decay_steps) ** (2.0 / 3.0)
        return jax.tree_util.tree_map(lambda g: -lr * g, updates), _DecayState(state.count + 1, state.lr0)

    return optax.GradientTransformation(init, update)


@pytree_dataclass
class OTTState:
    ott_state: Any  # ott's SemidiscreteState
    key: Array
    key_error: Array
    heights: Array
    iteration: Array  # ott steps taken
    error: Array  # our last fresh max relative error (inf before the first check)
    chi2_gate: Array  # chi-square level that triggers the next check
    done: Array
    converged: Array
    failed: Array
    history: SemidiscreteHistory
    tol: Array
    check_batches: Array
    num_samples: Array
    evaluations: Array


@pytree_dataclass
class OTTSolver(SemidiscreteSolver):
    """ott-jax 0.6 ``SemidiscreteSolver`` with settings that converge for the hard (``epsilon=0``) map.

    SGD on ott's dual ``g`` with step ``lr0 / (1 + t / decay_steps)^(2/3)`` (``lr0 = learning_rate * n *``
    the median top-2 gap in ``g`` units, since ott's gradient entries are ``O(1/n)``) and ott's exponential
    moving average of the iterates (``potential_ema``). Every ``error_eval_every`` ott steps, ott's chi-square
    marginal error is computed; when it is ``<= threshold`` (default ``(tol / (2 z_n))^2``) our fresh-sample
    check of the max relative error runs (``(z_n / (check_fraction tol))^2 / min nu`` samples) and the solve
    converges when the checked error plus its noise level is at most ``tol``; a failed check halves the
    chi-square gate. Heights are converted by ``h_j = (g_j - |y_j|^2) / 2``.

    Cost: ``num_iterations x batch_size`` samples of SGD (each a pass over all targets) plus the chi-square
    estimates (``error_num_repeats x error_batch_size`` per evaluation) and the checks.
    """

    num_iterations: int = static_field(20000)
    batch_size: int = static_field(1024)
    learning_rate: float = static_field(1.0)
    decay_steps: float = static_field(100.0)
    potential_ema: float = static_field(0.99)
    error_eval_every: int = static_field(500)
    error_batch_size: int = static_field(16384)
    error_num_repeats: int = static_field(4)
    threshold: float | None = static_field(None)
    check_fraction: float = static_field(0.6)

    name = "ott"

    def __post_init__(self):
        check_settings(
            self, ints={"num_iterations": 1, "batch_size": 1, "error_eval_every": 1, "error_batch_size": 1,
                        "error_num_repeats": 1},
            positive=("learning_rate", "decay_steps", "check_fraction"), fractions=("potential_ema",))
        if self.threshold is not None:
            V.positive_scalar(self.threshold, "threshold")

    def _ott_solver(self):
        sd = ott().solvers.linear.semidiscrete
        return sd.SemidiscreteSolver(
            num_iterations=self.num_iterations, batch_size=self.batch_size, optimizer=_decaying_sgd(self.decay_steps),
            error_eval_every=self.error_eval_every, error_batch_size=self.error_batch_size,
            error_num_repeats=self.error_num_repeats, potential_ema=self.potential_ema,
        )

    def _ott_problem(self, prob: SemidiscreteProblem):
        o = ott()
        if prob.source is None:
            sampler = lambda k, shape, dtype: jax.random.normal(k, shape, dtype)
        else:
            sampler = lambda k, shape, dtype: prob.source(k, shape[0]).astype(dtype)
        geom = o.geometry.semidiscrete_pointcloud.SemidiscretePointCloud(sampler, prob.points, epsilon=0.0)
        return o.problems.linear.semidiscrete_linear_problem.SemidiscreteLinearProblem(geom, b=prob.weights)

    def init(self, prob: SemidiscreteProblem, *, tol: float, key, init_heights=None) -> OTTState:
        """ott's initial state at ``g = 2 h + |y|^2`` (Voronoi heights unless ``init_heights``)."""
        sd = ott().solvers.linear.semidiscrete
        y = prob.points
        dtype = y.dtype
        n = prob.num_targets
        wmin = prob.min_weight("OTTSolver")
        y2 = jnp.sum(y * y, axis=-1)
        h0 = prob.voronoi_init() if init_heights is None else init_heights - jnp.mean(init_heights)
        g0 = 2.0 * h0 + y2
        k_gap, key, k_err = jax.random.split(key, 3)
        gap = P.sample_pass(prob, h0, k_gap, jnp.asarray(1)).median_gap
        opt = _decaying_sgd(self.decay_steps)
        opt_state = opt.init(g0)._replace(lr0=(self.learning_rate * n * 2.0 * gap).astype(dtype))
        n_err = math.ceil(self.num_iterations / self.error_eval_every)
        ott_state = sd.SemidiscreteState(
            it=jnp.array(0), epsilon=jnp.asarray(0.0, dtype), g=g0, g_ema=g0, opt_state=opt_state,
            losses=jnp.full((self.num_iterations,), jnp.inf, dtype),
            grad_norms=jnp.full((self.num_iterations,), jnp.inf, dtype), errors=jnp.full((n_err,), jnp.inf, dtype),
        )
        thr = self.threshold if self.threshold is not None else (tol / (2.0 * zscore(n))) ** 2
        nb_check = max(1, math.ceil(required_samples(wmin, n, tol, self.check_fraction) / prob.batch_size))
        hist = SemidiscreteHistory.empty(n_err, dtype)
        hist = hist.replace(chi2_error=jnp.full((n_err,), jnp.nan, dtype))
        return OTTState(
            ott_state, key, k_err, h0, jnp.asarray(0), jnp.asarray(jnp.inf, dtype), jnp.asarray(thr, dtype),
            jnp.asarray(False), jnp.asarray(False), jnp.asarray(False), hist, jnp.asarray(tol, dtype),
            jnp.asarray(nb_check), jnp.asarray(0, jnp.int32), jnp.zeros((), dtype),
        )

    def step(self, prob: SemidiscreteProblem, s: OTTState) -> OTTState:
        """``error_eval_every`` ott steps, ott's chi-square of the averaged iterate, and (gated) our check."""
        solver = self._ott_solver()
        ot_prob = self._ott_problem(prob)
        dtype = s.heights.dtype
        y2 = jnp.sum(prob.points**2, axis=-1)
        k = self.error_eval_every

        def inner(_, st):
            return solver.step(jax.random.fold_in(s.key, st.it), st, ot_prob)

        st = jax.lax.fori_loop(0, k, inner, s.ott_state)
        sd = ott().solvers.linear.semidiscrete
        out = sd.SemidiscreteOutput(g=st.g_ema, prob=ot_prob)
        chi2 = out.marginal_chi2_error(jax.random.fold_in(s.key_error, st.it), num_iters=self.error_num_repeats,
                                       batch_size=self.error_batch_size)
        h = 0.5 * (st.g_ema - y2)
        h = h - jnp.mean(h)
        gate = chi2 <= s.chi2_gate
        nb = s.check_batches
        B = prob.batch_size

        def check():
            m = P.sample_pass(prob, h, jax.random.fold_in(jax.random.fold_in(s.key_error, 1), st.it), nb).masses
            return P.max_rel(m, prob.weights)

        err = jax.lax.cond(gate, check, lambda: s.error)
        noise = P.noise_floor(prob.weights, (nb * B).astype(dtype))
        conv = gate & (err + noise <= s.tol)
        failed = ~jnp.all(jnp.isfinite(st.losses[jnp.maximum(st.it - 1, 0)])) | ~jnp.all(jnp.isfinite(h))
        out_of_budget = st.it + k > self.num_iterations
        idx = st.it // k - 1
        hist = s.history.record(idx, jnp.where(gate, err, jnp.nan), jnp.nan, jnp.where(gate, nb * B, 0), 0.0)
        hist = hist.replace(chi2_error=hist.chi2_error.at[jnp.clip(idx, 0, hist.chi2_error.shape[0] - 1)].set(chi2))
        evals = s.evaluations + (k * self.batch_size + self.error_num_repeats * self.error_batch_size
                                 + jnp.where(gate, nb * B, 0)).astype(dtype)
        return s.replace(
            ott_state=st, heights=h, iteration=st.it, error=err, chi2_gate=jnp.where(gate & ~conv, chi2 / 2.0, s.chi2_gate),
            done=conv | failed | out_of_budget, converged=conv & ~failed, failed=failed, history=hist, check_batches=nb,
            num_samples=jnp.where(gate, nb * B, s.num_samples).astype(jnp.int32), evaluations=evals,
        )
