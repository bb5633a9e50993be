"""Sampler benchmarks.

1. Loop overhead: wall time of each fixed-NFE sampler against ``nfe x`` the time of one score
   evaluation (the exact score of a 2048-point dataset in 64-D on a batch of queries), i.e. the
   fraction of time spent outside the score. Target: under 10%. A bare ``lax.scan`` of the score
   (``x <- x + c score(x, t)``) is timed too, to separate the cost of the scan itself.
2. Adaptive diffrax flow (``flow_map``, Tsit5, PID controller) against fixed-step scans
   (DPM-Solver-3 and Heun) at equal accuracy, on Gaussian data with the exact (closed-form) score and
   the exact affine probability-flow map as reference.

Run: ``python benchmarks/bench_samplers.py [--quick]``; results go to ``benchmarks/results/<machine>/``.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
from _harness import matmul_ceiling, time_jax, write_results

import jaxotdm as jo
from jaxotdm import samplers as S


def overhead_rows(n_points, dim, batch, num_steps, dtype, repeats):
    key = jax.random.key(0)
    pts = jax.random.normal(key, (n_points, dim), dtype)
    sched = jo.VPLinear()
    score = jo.exact_score(jo.EmpiricalMeasure(pts), sched)
    x = jax.random.normal(jax.random.key(1), (batch, dim), dtype)
    t = jnp.asarray(0.5, dtype)
    one = time_jax(lambda x, t: score(x, t), x, t, repeats=repeats)

    def bare(x):
        def body(x, tt):
            return x - 1e-3 * score(x, tt), None

        return jax.lax.scan(body, x, jnp.linspace(1.0, 1e-3, num_steps).astype(dtype))[0]

    rows = []
    base = time_jax(bare, x, repeats=repeats)
    per_eval = base["run_s"] / num_steps  # one score evaluation inside a compiled loop (no dispatch)
    rows.append({"sampler": "bare scan of score", "nfe": num_steps, "run_s": base["run_s"],
                 "compile_s": base["compile_s"], "per_nfe_s": per_eval, "overhead_ratio": 0.0,
                 "ratio_vs_single_calls": base["run_s"] / (num_steps * one["run_s"]) - 1.0})
    cases = [("euler", S.euler, {}), ("heun", S.heun, {}), ("ddim", S.ddim, {}), ("dpm_solver_3", S.dpm_solver_3, {}),
             ("dpm_solver_pp_2m", S.dpm_solver_pp_2m, {}), ("ddpm", S.ddpm, {}),
             ("euler_maruyama", S.euler_maruyama, {}), ("predictor_corrector", S.predictor_corrector, {})]
    for name, fn, kw in cases:
        f = lambda x, key, fn=fn, kw=kw: fn(score, sched, x, t_start=1.0, t_end=1e-3, num_steps=num_steps, key=key, **kw)
        out = f(x, jax.random.key(2))
        nfe = int(out.nfe)
        r = time_jax(f, x, jax.random.key(2), repeats=repeats)
        rows.append({"sampler": name, "nfe": nfe, "run_s": r["run_s"], "compile_s": r["compile_s"],
                     "per_nfe_s": r["run_s"] / nfe, "overhead_ratio": r["run_s"] / (nfe * per_eval) - 1.0,
                     "ratio_vs_single_calls": r["run_s"] / (nfe * one["run_s"]) - 1.0})
    ceiling = matmul_ceiling(batch, dim, n_points, dtype=dtype, repeats=repeats)
    return rows, one, ceiling


def gaussian_problem(dim, batch):
    r = np.random.default_rng(0)
    a = r.normal(size=(dim, dim)) / np.sqrt(dim)
    cov = a @ a.T + 0.05 * np.eye(dim)
    mean = r.normal(size=dim)
    sched = jo.VPLinear()
    mu = jo.GaussianMeasure(jnp.asarray(mean), jnp.asarray(cov))
    t0, t1 = 1.0, 1e-3
    x = np.asarray(jax.random.normal(jax.random.key(3), (batch, dim), jnp.float64))
    lam, v = np.linalg.eigh(cov)
    a0, a1 = float(sched.alpha(t0)), float(sched.alpha(t1))
    s0, s1 = float(sched.sigma2(t0)), float(sched.sigma2(t1))
    ref = a1 * mean + (x - a0 * mean) @ v @ np.diag(np.sqrt((a1**2 * lam + s1) / (a0**2 * lam + s0))) @ v.T
    return jo.exact_score(mu, sched), sched, jnp.asarray(x), ref, t0, t1


def adaptive_rows(dim, batch, repeats):
    score, sched, x, ref, t0, t1 = gaussian_problem(dim, batch)
    err = lambda p: float(np.max(np.abs(np.asarray(p) - ref)))
    rows = []
    for tol in (1e-3, 1e-4, 1e-5, 1e-6):
        f = lambda x, tol=tol: jo.flow_map(score, sched, x, t0, t1, rtol=tol, atol=tol)
        out = f(x)
        tim = time_jax(lambda x, f=f: f(x).points, x, repeats=repeats)
        target = err(out.points)
        row = {"tol": tol, "adaptive_nfe": int(out.nfe), "adaptive_error": target, "adaptive_run_s": tim["run_s"]}
        for name, fn, grid in (("dpm3", S.dpm_solver_3, "log_snr"), ("heun", S.heun, "edm")):
            k = 1
            while True:
                res = fn(score, sched, x, t_start=t0, t_end=t1, num_steps=k, grid=grid)
                if err(res.points) <= target or k >= 4096:
                    break
                k = int(np.ceil(k * 1.25)) if k > 4 else k + 1
            g = lambda x, fn=fn, k=k, grid=grid: fn(score, sched, x, t_start=t0, t_end=t1, num_steps=k, grid=grid).points
            tf = time_jax(g, x, repeats=repeats)
            row[f"{name}_nfe"] = int(res.nfe)
            row[f"{name}_error"] = err(res.points)
            row[f"{name}_run_s"] = tf["run_s"]
            row[f"{name}_speedup"] = tim["run_s"] / tf["run_s"]
        rows.append(row)
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="small sizes (CI smoke run)")
    args = parser.parse_args()
    jax.config.update("jax_enable_x64", True)
    n, d, b, k, reps = (512, 16, 128, 10, 3) if args.quick else (2048, 64, 512, 20, 5)
    rows, one, ceiling = overhead_rows(n, d, b, k, jnp.float32, reps)
    notes = [
        f"Score: exact score of an EmpiricalMeasure with {n} points in {d}-D, batch {b}, float32; one evaluation "
        f"{one['run_s'] * 1e3:.3f} ms; matmul ceiling ({b}x{d} @ {d}x{n}) {ceiling['run_s'] * 1e3:.3f} ms "
        f"({ceiling['gflops']:.1f} GFLOP/s).",
        "overhead_ratio = run_s / (nfe x per-evaluation time of the bare scan) - 1 (target < 0.10); "
        "ratio_vs_single_calls uses separately dispatched single score calls instead (includes dispatch cost, so it "
        "can be negative). Each score call is on the whole batch.",
    ]
    print(write_results("samplers_overhead", rows, notes=notes,
                        columns=["sampler", "nfe", "run_s", "compile_s", "per_nfe_s", "overhead_ratio", "ratio_vs_single_calls"]))
    arows = adaptive_rows(8 if args.quick else 16, 64 if args.quick else 512, reps)
    print(write_results(
        "samplers_adaptive_vs_fixed", arows,
        notes=["Gaussian data, exact score (float64), VPLinear from t=1 to 1e-3; error = max abs vs the exact affine PF map. "
               "Fixed-step: the smallest step count reaching the adaptive run's error. speedup = adaptive time / fixed time."],
        columns=["tol", "adaptive_nfe", "adaptive_error", "adaptive_run_s", "dpm3_nfe", "dpm3_error", "dpm3_run_s",
                 "dpm3_speedup", "heun_nfe", "heun_error", "heun_run_s", "heun_speedup"],
    ))
    for r in rows:
        print(f"{r['sampler']:>22s} nfe={r['nfe']:4d} overhead={r['overhead_ratio']:+.3f}")
    for r in arows:
        print(r)


if __name__ == "__main__":
    main()
