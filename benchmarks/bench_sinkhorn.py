"""Entropic OT between two sample clouds: jaxotdm ``sinkhorn`` / ``sinkhorn_divergence`` (ott-jax) vs POT.

Same problem for both: ``x, y`` of ``n`` standard normal points in ``d = 16`` (``y`` shifted by 0.5), cost
``|x - y|^2`` (no 1/2), the same absolute ``epsilon``. Accuracy is matched by the stopping rules: ours
stops when the L1 marginal error is ``<= threshold`` (ott-jax's criterion); POT's ``ot.sinkhorn2``
stops on the L2 marginal error, so it gets ``stopThr = threshold / sqrt(n)`` (an L2 error at that level
bounds the L1 error by ``threshold``). Both plans' L1 marginal errors and transport costs are then
measured by one common evaluator (POT's plan from ``ot.sinkhorn`` with the same settings, not timed).

Ceiling: a dense ``(n x n) @ (n x 1)`` matvec, the work of one Sinkhorn half-iteration in the scaling
domain; ``matmul_fraction = 2 x iterations x t_matvec / t_ours``.

Run: ``python benchmarks/bench_sinkhorn.py`` (n in {1000, 4000}) or ``--quick`` (n = 1000 only).
"""

from __future__ import annotations

import argparse
import math

import jax.numpy as jnp
import numpy as np

from benchmarks._harness import matmul_ceiling, peak_rss_gib, time_jax, time_python, write_results
from jaxotdm.ot import sinkhorn, sinkhorn_divergence

D = 16
EPS = 1.0
THRESHOLD = 1e-3


def bench_row(n):
    import ot

    rng = np.random.default_rng(n)
    x = rng.standard_normal((n, D))
    y = rng.standard_normal((n, D)) + 0.5
    a = np.full(n, 1.0 / n)
    xj, yj = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
    ours = time_jax(lambda x, y: sinkhorn(x, y, epsilon=EPS, threshold=THRESHOLD, return_matrix=False).primal_cost,
                    xj, yj, repeats=3)
    res = sinkhorn(xj, yj, epsilon=EPS, threshold=THRESHOLD, return_matrix=True)
    div = time_jax(lambda x, y: sinkhorn_divergence(x, y, epsilon=EPS, threshold=THRESHOLD), xj, yj, repeats=3)
    M = ot.dist(x, y)  # squared Euclidean
    stop = THRESHOLD / math.sqrt(n)
    pot = time_python(lambda: ot.sinkhorn2(a, a, M, EPS, stopThr=stop, numItermax=100000), repeats=3)
    P = ot.sinkhorn(a, a, M, EPS, stopThr=stop, numItermax=100000)
    Po = np.asarray(res.matrix, np.float64)

    def l1(P):
        return float(np.abs(P.sum(1) - a).sum() + np.abs(P.sum(0) - a).sum())

    iters = int(res.iterations)
    mv = matmul_ceiling(n, n, 1, repeats=5)
    row = {
        "n": n, "d": D, "epsilon": EPS, "threshold_l1": THRESHOLD,
        "ours_s": ours["run_s"], "ours_compile_s": ours["compile_s"], "ours_divergence_s": div["run_s"],
        "pot_sinkhorn2_s": pot["run_s"], "ratio_pot": pot["run_s"] / ours["run_s"],
        "ours_iterations": iters, "ours_l1_marginal": l1(Po), "pot_l1_marginal": l1(P),
        "ours_cost": float(res.primal_cost), "pot_cost": float(np.sum(P * M)),
        "matmul_fraction": 2 * iters * mv["run_s"] / ours["run_s"],
        "peak_rss_gib": peak_rss_gib(),
    }
    print(row, flush=True)
    return row


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    sizes = [1000] if args.quick else [1000, 4000]
    rows = [bench_row(n) for n in sizes]
    cols = ["n", "d", "ours_s", "ours_divergence_s", "pot_sinkhorn2_s", "ratio_pot", "ours_iterations",
            "ours_l1_marginal", "pot_l1_marginal", "ours_cost", "pot_cost", "matmul_fraction", "peak_rss_gib"]
    notes = [
        f"epsilon = {EPS} (absolute, cost |x-y|^2); ours: L1 marginal error <= {THRESHOLD}; POT: "
        "L2 marginal error <= threshold / sqrt(n). Ours in float32 (jit, compile excluded), POT in float64 numpy.",
        "ratio_pot = time(POT) / time(ours); matmul_fraction = 2 x iterations x t(n x n matvec) / t(ours).",
    ]
    print(write_results("bench_sinkhorn" + ("_quick" if args.quick else ""), rows, notes=notes, columns=cols))


if __name__ == "__main__":
    main()
