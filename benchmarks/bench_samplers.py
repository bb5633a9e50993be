"""Sampler benchmarks.

1. Loop overhead (issue 6). For each fixed-NFE sampler, ``overhead = t(sampler) / t(NFE score evaluations in
   a bare scan) - 1`` (target < 0.10). The reference is an equivalent ``lax.scan`` that evaluates the same
   score on the same batch at ``NFE`` times of the same interval, and whose carry depends on every score
   output (``x <- x + c * score(x, t)``, ``c`` a run-time argument), so XLA can neither hoist nor drop an
   evaluation. Everything (score, data, network parameters, points, times) is passed to the compiled
   functions as arguments, never closed over, so nothing is constant-folded. Two scores: the exact score
   of a dataset (a few matmuls and exponentials) and a learned score (a randomly initialised
   :class:`~jaxotdm.networks.MLP` :class:`~jaxotdm.networks.ScoreModel`), whose network evaluation
   dominates. Stochastic samplers also pay for their Gaussian draws (JAX's threefry generator, part of
   the method, not loop overhead): ``rng_share`` is the time of a scan making only those draws, as a
   fraction of the score scan. Times are interleaved round by round (see ``_harness.interleaved``); the
   headline uses the minimum over rounds (contention on a shared machine only adds time), the paired
   median ratio is reported beside it. ``eager_overhead`` times the plain Python call (validation, time
   grid and dispatch included) against the same reference.
2. Adaptive diffrax flow (``flow_map``, Tsit5, PID controller) against fixed-step scans
   (DPM-Solver-3 and Heun) at equal accuracy, on Gaussian data with the exact (closed-form) score and
   the exact affine probability-flow map as reference.

Run: ``python -m benchmarks.bench_samplers [--quick]``; results go to ``benchmarks/results/<machine>/``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

import jaxotdm as jo
from benchmarks._harness import headline, interleaved, matmul_ceiling, time_jax, write_results
from jaxotdm import samplers as S
from jaxotdm.networks import MLP, NoisePrediction, ScoreModel

T_START, T_END = 1.0, 1e-3
METHODS = [  # (name, method, Gaussian draws per step)
    ("euler", S.Euler(), 0),
    ("heun", S.Heun(), 0),
    ("ddim", S.DDIM(), 0),
    ("dpm_solver_3", S.DPMSolver3(), 0),
    ("dpm_solver_pp_2m", S.DPMSolverPP2M(), 0),
    ("ddpm", S.AncestralDDPM(), 1),
    ("euler_maruyama", S.EulerMaruyama(), 1),
    ("predictor_corrector", S.PredictorCorrector(), 2),
]


def exact_case(n_points, dim, dtype):
    pts = jax.random.normal(jax.random.key(0), (n_points, dim), dtype)
    return jo.exact_score(jo.EmpiricalMeasure(pts), jo.VPLinear()), f"exact score, {n_points} points in {dim}-D"


def learned_case(dim, features, depth, dtype):
    sched = jo.VPLinear()
    model = ScoreModel(MLP(features=features, depth=depth), sched, NoisePrediction())
    params = model.init(jax.random.key(0), jnp.zeros((1, dim), dtype))
    # the output layer starts at zero: perturb every parameter so the network computes something non-trivial
    leaves, tdef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(1), len(leaves))
    params = jax.tree.unflatten(tdef, [p + 0.05 * jax.random.normal(k, p.shape, p.dtype) for p, k in zip(leaves, keys, strict=True)])
    return model.bind(params), f"learned score, MLP {features}x{depth} (random init)"


def _score_scan(score, x, c, times):
    def body(x, t):
        return x + c * score(x, t), None

    return jax.lax.scan(body, x, times)[0]


def _noise_scan(x, c, key, num_steps, draws):
    """The stochastic samplers' draws alone: fold_in by step, then by draw index, as in ``_core._drive``."""

    def body(x, k):
        key_k = jax.random.fold_in(key, k)
        for i in range(draws):
            x = x + c * jax.random.normal(jax.random.fold_in(key_k, i), x.shape, x.dtype)
        return x, None

    return jax.lax.scan(body, x, jnp.arange(num_steps))[0]


def overhead_rows(score, label, schedule, x, num_steps, rounds):
    """Rows of the overhead table for one score, timed in one interleaved loop."""
    dtype = x.dtype
    key = jax.random.key(2)
    c = jnp.asarray(1e-6, dtype)
    t_half = jnp.asarray(0.5, dtype)
    cases, compile_s, nfes = {}, {}, {}

    def add(name, fn, *args, static=()):
        t0 = time.perf_counter()
        compiled = jax.jit(fn, static_argnums=static).lower(*args).compile()
        compile_s[name] = time.perf_counter() - t0
        cases[name] = (compiled, tuple(a for i, a in enumerate(args) if i not in static))

    add("single call", lambda s, x, t: s(x, t), score, x, t_half)
    for name, method, draws in METHODS:
        nfe = method.evals_per_step * num_steps
        nfes[name] = nfe
        if f"scan{nfe}" not in cases:
            add(f"scan{nfe}", _score_scan, score, x, c, jnp.linspace(T_START, T_END, nfe).astype(dtype))
        if draws and f"noise{draws}" not in cases:
            add(f"noise{draws}", _noise_scan, x, c, key, num_steps, draws, static=(3, 4))
        add(name, lambda s, x, key, m=method: S.sample(m, s, schedule, x, t_start=T_START, t_end=T_END,
                                                        num_steps=num_steps, key=key).points, score, x, key)
        cases[f"eager {name}"] = (
            lambda s, x, key, m=method: S.sample(m, s, schedule, x, t_start=T_START, t_end=T_END,
                                                 num_steps=num_steps, key=key).points, (score, x, key))
    times = interleaved(cases, rounds)
    tmin = {k: min(v) for k, v in times.items()}
    one = tmin["single call"]
    rows = []
    for name, _, draws in METHODS:
        nfe = nfes[name]
        ref = f"scan{nfe}"
        paired = [a / b for a, b in zip(times[name], times[ref], strict=True)]
        rng = tmin[f"noise{draws}"] / tmin[ref] if draws else 0.0
        over = tmin[name] / tmin[ref] - 1.0
        rows.append({
            "score": label, "sampler": name, "nfe": nfe, "run_s": tmin[name], "compile_s": compile_s[name],
            "score_scan_s": tmin[ref], "per_eval_s": tmin[ref] / nfe, "overhead": over,
            "overhead_paired_median": statistics.median(paired) - 1.0, "rng_share": rng,
            "overhead_excl_rng": over - rng, "eager_overhead": tmin[f"eager {name}"] / tmin[ref] - 1.0,
            "eager_extra_ms": 1e3 * (tmin[f"eager {name}"] - tmin[name]),
            "single_call_per_eval_ratio": one / (tmin[ref] / nfe),
            "met": over < 0.10,
        })
    return rows


def sampler_headlines(rows, labels):
    out = []
    for label in labels:
        for kind, names in (("deterministic", ("euler", "heun", "ddim", "dpm_solver_3", "dpm_solver_pp_2m")),
                            ("stochastic", ("ddpm", "euler_maruyama", "predictor_corrector"))):
            rs = [r for r in rows if r["score"] == label and r["sampler"] in names]
            worst = max(rs, key=lambda r: r["overhead"])
            note = f"worst: {worst['sampler']} ({worst['nfe']} NFE)"
            if kind == "stochastic":
                note += (f"; of which Gaussian draws (threefry) {worst['rng_share']:.3f}, loop "
                         f"{worst['overhead_excl_rng']:.3f}")
            out.append(headline(
                f"sampler loop overhead, {kind} (worst of {len(rs)}), {label}", ratio=worst["overhead"],
                target="< 0.10", ours_s=worst["run_s"], peer=f"bare scan of {worst['nfe']} score evaluations",
                peer_s=worst["score_scan_s"], note=note, compile_s=worst["compile_s"]))
    return out


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
        f = lambda x, tol=tol: jo.flow_map(score, sched, x, t0, t1, ode=jo.ODESettings(rtol=tol, atol=tol))
        out = f(x)
        tim = time_jax(lambda x, f=f: f(x).points, x, repeats=repeats)
        target = err(out.points)
        row = {"tol": tol, "adaptive_nfe": int(out.nfe), "adaptive_error": target, "adaptive_run_s": tim["run_s"]}
        for name, method, grid in (("dpm3", S.DPMSolver3(), "log_snr"), ("heun", S.Heun(), "edm")):
            k = 1
            while True:
                res = S.sample(method, score, sched, x, t_start=t0, t_end=t1, num_steps=k, grid=grid,
                               throw=False)  # a too-coarse k may diverge: it is just not accurate enough
                if err(res.points) <= target or k >= 4096:
                    break
                k = int(np.ceil(k * 1.25)) if k > 4 else k + 1
            g = lambda x, m=method, k=k, grid=grid: S.sample(m, score, sched, x, t_start=t0, t_end=t1, num_steps=k,
                                                              grid=grid).points
            tf = time_jax(g, x, repeats=repeats)
            row[f"{name}_nfe"] = int(res.nfe)
            row[f"{name}_error"] = err(res.points)
            row[f"{name}_run_s"] = tf["run_s"]
            row[f"{name}_speedup"] = tim["run_s"] / tf["run_s"]
        rows.append(row)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="small sizes (CI smoke run)")
    parser.add_argument("--skip-adaptive", action="store_true", help="only the overhead table")
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)
    # Quick mode keeps the overhead table's shapes (at toy sizes the table would measure fixed per-step costs,
    # not the loop) and halves the steps; the full run adds a toy-size exact score to show those costs.
    n, d, b, feat, depth = 2048, 64, 512, 256, 3
    k, rounds = (10, 9) if args.quick else (20, 21)
    dtype = jnp.float32
    x = jax.random.normal(jax.random.key(1), (b, d), dtype)
    cases = [(exact_case(n, d, dtype), x), (learned_case(d, feat, depth, dtype), x)]
    if not args.quick:
        cases.append((exact_case(512, 16, dtype), x[:128, :16]))
    rows, labels = [], []
    for (score, label), xx in cases:
        labels.append(label + f", batch {xx.shape[0]}")
        rows += overhead_rows(score, labels[-1], jo.VPLinear(), xx, k, rounds)
        print(f"[samplers] {label}: done", flush=True)
    ceiling = matmul_ceiling(b, d, n, dtype=dtype)
    heads = sampler_headlines(rows, labels[:2])  # the toy-size rows are context, not a headline
    notes = [
        f"Batch {b} x {d}-D, float32, {k} steps, VPLinear from t={T_START} to {T_END}; exact score of {n} points; "
        f"learned score: MLP {feat}x{depth}" + ("" if args.quick else "; toy rows: exact score of 512 points in 16-D, "
                                                 "batch 128") + f". Matmul ceiling ({b}x{d} @ {d}x{n}) {ceiling['run_s'] * 1e3:.3f} ms "
        f"({ceiling['gflops']:.1f} GFLOP/s).",
        "overhead = t(sampler) / t(bare scan of the same NFE score evaluations) - 1 (target < 0.10), minimum over "
        f"{rounds} interleaved rounds; overhead_paired_median: median over rounds of the per-round ratio. "
        "rng_share = t(scan of the sampler's Gaussian draws only) / t(score scan); overhead_excl_rng = overhead - "
        "rng_share. eager_overhead: the plain (un-jitted) Python call against the same reference, so it includes "
        "validation, the time grid and dispatch (eager_extra_ms = that fixed per-call cost in ms). "
        "single_call_per_eval_ratio = one separately dispatched jitted score "
        "call / per-evaluation time in the scan (> 1: dispatch cost).",
    ]
    cols = ["score", "sampler", "nfe", "run_s", "score_scan_s", "overhead", "overhead_paired_median", "rng_share",
            "overhead_excl_rng", "eager_overhead", "eager_extra_ms", "met", "compile_s", "per_eval_s", "single_call_per_eval_ratio"]
    print(write_results("samplers_overhead" + ("_quick" if args.quick else ""), rows, notes=notes, columns=cols,
                        headline=heads))
    for r in rows:
        print(f"{r['score'][:14]:>14s} {r['sampler']:>20s} nfe={r['nfe']:3d} overhead={r['overhead']:+.3f} "
              f"(paired median {r['overhead_paired_median']:+.3f}, rng {r['rng_share']:.3f}, eager "
              f"{r['eager_overhead']:+.3f})")
    if args.skip_adaptive:
        return
    arows = adaptive_rows(8 if args.quick else 16, 64 if args.quick else 512, 3 if args.quick else 5)
    print(write_results(
        "samplers_adaptive_vs_fixed" + ("_quick" if args.quick else ""), arows,
        notes=["Gaussian data, exact score (float64), VPLinear from t=1 to 1e-3; error = max abs vs the exact affine PF map. "
               "Fixed-step: the smallest step count reaching the adaptive run's error. speedup = adaptive time / fixed time."],
        columns=["tol", "adaptive_nfe", "adaptive_error", "adaptive_run_s", "dpm3_nfe", "dpm3_error", "dpm3_run_s",
                 "dpm3_speedup", "heun_nfe", "heun_error", "heun_run_s", "heun_speedup"],
    ))


if __name__ == "__main__":
    main()
