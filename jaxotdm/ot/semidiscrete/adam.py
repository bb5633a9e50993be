"""The paper's Algorithm 1: Adam (beta2 = 0.5) on Monte Carlo cell masses with sample doubling."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import optax

from jaxotdm._pytree import pytree_dataclass, static_field
from jaxotdm._types import Array
from jaxotdm.ot.semidiscrete import _passes as P
from jaxotdm.ot.semidiscrete.driver import SemidiscreteHistory, SemidiscreteSolver
from jaxotdm.ot.semidiscrete.problem import SemidiscreteProblem, check_settings, required_samples


@pytree_dataclass
class AdamState:
    heights: Array
    opt_state: Any
    key: Array
    iteration: Array
    num_batches: Array
    best_energy: Array
    stall: Array
    lr_scale: Array
    error: Array
    done: Array
    converged: Array
    history: SemidiscreteHistory
    tol: Array
    final_batches: Array  # sample size (in batches) at which convergence may be declared
    num_samples: Array  # sample size of the masses behind ``error``
    evaluations: Array


@pytree_dataclass
class AdamSolver(SemidiscreteSolver):
    """The paper's Algorithm 1 (AE-OT lineage): Adam on the semi-dual with Monte Carlo cell masses.

    Each step draws a fresh Monte Carlo sample of the current size, computes the hard cell masses and the
    energy, and takes an Adam step (``beta1 = 0.9``, ``beta2 = 0.5``) on ``-E``; when the energy has not
    improved (by ``stall_rtol`` relative) for ``patience`` steps the sample size doubles. Our additions,
    both documented: the learning rate is scaled by the median top-2 gap of the first sample
    (``learning_rate`` is relative), and it can be multiplied by ``lr_decay`` at every doubling (the default
    ``lr_decay=1.0`` is the literal algorithm; ``0.5`` converges faster at tight tolerances). Stops when the
    in-sample max relative error is below ``insample_fraction * tol`` on a sample of at least
    ``(z_n/(noise_fraction tol))^2/min nu`` points, or after ``max_iterations``.

    Cost: every step is one pass over its sample (``N x n x (r + 1)`` multiply-adds, ``r = min(n, d)``); the
    sample doubles up to ``(z_n / (noise_fraction tol))^2 / min nu``, and hundreds to thousands of steps are
    typical.
    """

    learning_rate: float = static_field(0.05)
    beta1: float = static_field(0.9)
    beta2: float = static_field(0.5)
    initial_samples_per_cell: int = static_field(8)
    patience: int = static_field(10)
    stall_rtol: float = static_field(1e-4)
    lr_decay: float = static_field(1.0)
    noise_fraction: float = static_field(0.6)
    insample_fraction: float = static_field(0.5)
    max_samples: int = static_field(2**27)
    max_iterations: int = static_field(2000)

    name = "adam"

    def __post_init__(self):
        check_settings(
            self, ints={"initial_samples_per_cell": 1, "patience": 1, "max_samples": 1, "max_iterations": 1},
            positive=("learning_rate", "lr_decay", "noise_fraction", "insample_fraction"),
            nonnegative=("stall_rtol",), fractions=("beta1", "beta2"))

    def _sizes(self, prob, tol):
        wmin = prob.min_weight("AdamSolver")
        B = prob.batch_size
        nb0 = max(1, math.ceil(self.initial_samples_per_cell / wmin / B))
        nb_final = max(1, math.ceil(min(required_samples(wmin, prob.num_targets, tol, self.noise_fraction),
                                         self.max_samples) / B))
        return nb0, max(nb0, nb_final)

    def _optimizer(self):
        return optax.scale_by_adam(b1=self.beta1, b2=self.beta2)

    def init(self, prob: SemidiscreteProblem, *, tol: float, key, init_heights=None) -> AdamState:
        """Initial state (Voronoi heights unless ``init_heights``); plans the sample sizes on the host."""
        nb0, nbf = self._sizes(prob, tol)
        h = prob.voronoi_init() if init_heights is None else init_heights - jnp.mean(init_heights)
        k_init, key = jax.random.split(key)
        gap = P.sample_pass(prob, h, k_init, jnp.asarray(nb0)).median_gap
        dtype = h.dtype
        return AdamState(
            h, self._optimizer().init(h), key, jnp.asarray(0), jnp.asarray(nb0),
            jnp.asarray(-jnp.inf, dtype), jnp.asarray(0), self.learning_rate * gap, jnp.asarray(jnp.inf, dtype),
            jnp.asarray(False), jnp.asarray(False), SemidiscreteHistory.empty(self.max_iterations, dtype),
            jnp.asarray(tol, dtype), jnp.asarray(nbf), jnp.asarray(0, jnp.int32),
            jnp.asarray(nb0 * prob.batch_size, dtype),
        )

    def step(self, prob: SemidiscreteProblem, s: AdamState) -> AdamState:
        """One Adam step on the masses of a fresh sample of the current size."""
        p = P.sample_pass(prob, s.heights, jax.random.fold_in(s.key, s.iteration), s.num_batches)
        grad = p.masses - prob.weights  # gradient of -E
        upd, opt_state = self._optimizer().update(grad, s.opt_state, s.heights)
        h = s.heights - s.lr_scale * upd
        h = h - jnp.mean(h)
        err = P.max_rel(p.masses, prob.weights)
        improved = p.energy > s.best_energy + self.stall_rtol * jnp.abs(s.best_energy)
        stall = jnp.where(improved, 0, s.stall + 1)
        best = jnp.maximum(s.best_energy, p.energy)
        double = (stall >= self.patience) & (s.num_batches < s.final_batches)
        nb = jnp.where(double, jnp.minimum(2 * s.num_batches, s.final_batches), s.num_batches)
        lr = jnp.where(double, s.lr_scale * self.lr_decay, s.lr_scale)
        stall = jnp.where(double, 0, stall)
        best = jnp.where(double, -jnp.inf, best)
        conv = (err <= self.insample_fraction * s.tol) & (s.num_batches >= s.final_batches)
        num = s.num_batches * prob.batch_size
        hist = s.history.record(s.iteration, err, p.energy, num, lr)
        it = s.iteration + 1
        # on convergence keep the heights the sample was evaluated at
        h = jnp.where(conv, s.heights, h)
        return s.replace(heights=h, opt_state=opt_state, iteration=it, num_batches=nb, best_energy=best, stall=stall,
                         lr_scale=lr, error=err, done=conv | (it >= self.max_iterations), converged=conv, history=hist,
                         num_samples=num.astype(jnp.int32), evaluations=s.evaluations + num.astype(s.evaluations.dtype))
