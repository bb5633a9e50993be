"""Semi-discrete OT at Algorithm-2 scale: solve time against the cost of its own certificate, and peers.

The unit of cost is the *certificate pass*: ``M_c = 16 / (tol^2 min nu)`` fresh source samples (``16 n / tol^2``
for uniform weights; a standard error of ``tol / 4`` at the smallest cell), each scored against all ``n``
targets by one streamed argmax (``jaxotdm.cell_masses``). For every row this script times, in the same run:

* **ours**: ``HybridNewtonSolver``, ``semidiscrete_ot``'s default (Newton on stored top-K candidates with a
  detected-stall fallback to the resampling ``NewtonSolver``; compiled first; run time only), its number of
  scored samples (``evaluations``), iterations and whether the fallback took over;
* **certificate**: one pass over ``M_c`` samples; **ratio = solve / certificate** (target <= 3 for rows a, b);
* **verification** (independent of both, fresh key): masses of the returned heights on ``M_v`` samples with
  ``M_v`` chosen so that the verification's own noise floor ``z_n sqrt((1 - nu) / (M_v nu))`` is
  ``verify_floor x tol`` (default 0.35); the row reports success only if that max relative error is ``<= tol``
  (and, for row c, the total variation ``sum |m - nu| / 2 <= 0.01``);
* **peers**, each run with doubling iteration budgets until the same verification passes or its time budget
  (``--peer-budget`` x ours) is spent: ott-jax tuned (our ``OTTSolver``: ott's own SGD steps), the paper's
  Algorithm 1 (``AdamSolver``), POT ``ot.semidiscrete.solve_semidiscrete`` (numpy, CPU).

Rows: (a) the 1,797 digits noised to T' = 0.05 (VPLinear), d = 64, tol 0.1; (b) 10,000 standard Gaussian
targets, d = 16, tol 0.1; (c) the 5,000-image MNIST subset noised to T' = 0.05, d = 784, to a total variation
<= 0.01 (solved at max relative tol 0.1, whose final sample resolves the total variation to about 0.008);
(d, ``--gpu`` only by default) CIFAR-shaped synthetic: 50,000 points of 100 clustered Gaussians in d = 3,072,
tol 0.1; (p) the plane: 1,000 points of the moons diffused to VPLinear t = 0.1, tol 0.1, where the default is the
exact ``ExactNewtonSolver`` and the Monte Carlo ``HybridNewtonSolver`` runs as one more peer.

``--kernel``: the certificate pass's FLOP rate (``2 x samples x n x (r + 1)``, RNG included) as a fraction of a
2048^2 float32 matmul timed in the same run (interleaved rounds, minimum), at d = 16, 64, 784 (target >= 0.4 at
d = 64).

    python -m benchmarks.bench_semidiscrete --kernel           # certificate-pass fractions only (minutes)
    python -m benchmarks.bench_semidiscrete --rows a,b         # rows a and b with peers (about an hour on 2 CPUs)
    python -m benchmarks.bench_semidiscrete --rows c --no-peers
    python -m benchmarks.bench_semidiscrete --rows p               # the plane: exact solver vs peers (minutes)
    python -m benchmarks.bench_semidiscrete --gpu              # accelerator sizes: rows a, b, c, kernel
    python -m benchmarks.bench_semidiscrete --dry-run          # tiny end-to-end run (CPU, seconds)
"""

from __future__ import annotations

import argparse
import math
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np

import jaxotdm as jo
from benchmarks._harness import headline, interleaved, load_average, peak_rss_gib, write_results
from jaxotdm.ot.semidiscrete import (
    AdamSolver,
    ExactNewtonSolver,
    HybridNewtonSolver,
    OTTSolver,
    _make_problem,
    certificate_unit,
    zscore,
)
from jaxotdm.ot.semidiscrete import _passes as P
from jaxotdm.ot.semidiscrete.driver import _jit_run

B = 4096


# ------------------------------------------------------------------------------------------------- rows
def noised(x, t_prime=0.05, seed=0):
    sch = jo.VPLinear()
    a, s = float(sch.alpha(t_prime)), float(sch.sigma(t_prime))
    eps = np.random.default_rng(seed).standard_normal(x.shape).astype(np.float32)
    return (a * x + s * eps).astype(np.float32)


def row_targets(name: str, dry: bool, size: int | None = None):
    """Targets and label of a row; ``size`` (``--size-b``/``--size-c``) runs a reduced row, labelled as such."""
    from jaxotdm import data as D

    if name == "a":
        x = noised(D.load_digits(scaled=True).astype(np.float32))
        return (x[:150] if dry else x), "digits-1797 noised to T'=0.05 (VPLinear), d=64"
    if name == "b":
        n, d = (300, 16) if dry else (size or 10_000, 16)
        label = f"{n} Gaussian-cloud targets, d=16" + (" (REDUCED from 10,000)" if size and size != 10_000 else "")
        return np.random.default_rng(1).standard_normal((n, d)).astype(np.float32), label
    if name == "c":
        x = noised(D.load_mnist_subset(scaled=True).astype(np.float32))
        if dry:
            return x[:100], "MNIST-100 noised to T'=0.05 (VPLinear), d=784"
        if size and size < x.shape[0]:
            return x[:size], f"MNIST-{size} (REDUCED from 5,000) noised to T'=0.05 (VPLinear), d=784"
        return x, "MNIST-5000 noised to T'=0.05 (VPLinear), d=784"
    if name == "p":
        n = 100 if dry else 1000
        y = D.toy_2d("moons", n, seed=0)
        sch = jo.VPLinear()
        a, s = float(sch.alpha(0.1)), float(sch.sigma(0.1))
        x = (a * y + s * np.random.default_rng(0).normal(size=y.shape)).astype(np.float32)
        return x, f"moons-{n} diffused to VPLinear t = 0.1 (Algorithm 2's 2-D target), d=2"
    if name == "d":
        n, d, k = (200, 48, 10) if dry else (size or 50_000, 3072, 100)
        return cifar_shaped(n, d, k), f"CIFAR-shaped synthetic: {n} points of {k} clustered Gaussians, d={d}"
    raise ValueError(f"unknown row {name!r}")


def cifar_shaped(n, d, k, seed=2):
    """``n`` points in ``d`` dimensions from ``k`` Gaussian clusters (centres of norm about ``sqrt(d)``, spread
    0.5 per coordinate): the size and rough geometry of CIFAR-10 pixels, without the download."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((k, d)).astype(np.float32)
    label = rng.integers(0, k, n)
    return (centres[label] + 0.5 * rng.standard_normal((n, d)).astype(np.float32)).astype(np.float32)


ROW_TOL = {"a": 0.1, "b": 0.1, "c": 0.1, "d": 0.1, "p": 0.1}
ROW_TV = {"c": 0.01}


# ------------------------------------------------------------------------------------------------- pieces
def problem(x):
    n = x.shape[0]
    return _make_problem(jnp.asarray(x), jnp.full((n,), 1.0 / n, jnp.float32), None, B, None)


CPU_TIMES: dict = {}  # last CPU seconds (all threads of this process) of timed_solve / certificate_seconds


def timed_solve(solver, x, tol, key):
    """Our solve, as ``semidiscrete_ot`` runs it (antithetic sample), compiled first: ``(state, run_s, compile_s)``.
    The init (warm start) is compiled by its first call, so it is timed on a second call."""
    prob = problem(x).replace(antithetic=True)
    jax.block_until_ready(solver.init(prob, tol=tol, key=jax.random.fold_in(key, 99)))  # compiles the warm start
    c0, t0 = time.process_time(), time.perf_counter()
    state0 = solver.init(prob, tol=tol, key=key)
    jax.block_until_ready(state0)
    init_s, init_c = time.perf_counter() - t0, time.process_time() - c0
    t0 = time.perf_counter()
    compiled = _jit_run.lower(solver, prob, state0, False).compile()
    compile_s = time.perf_counter() - t0
    c0, t0 = time.process_time(), time.perf_counter()
    state = jax.block_until_ready(compiled(prob, state0))
    CPU_TIMES["solve"] = init_c + time.process_time() - c0
    return state, init_s + time.perf_counter() - t0, compile_s


def masses_fn(prob, nb):
    return jax.jit(P.masses).lower(prob, jnp.zeros((prob.num_targets,), jnp.float32), jax.random.key(0), nb).compile()


def certificate_seconds(x, h, tol, repeats=1):
    """Time of one streamed-argmax pass over ``M_c = 16 n / tol^2`` fresh samples (compiled first)."""
    prob = problem(x)
    mc = certificate_unit(1.0 / x.shape[0], tol)
    nb = max(1, math.ceil(mc / B))
    f = masses_fn(prob, nb)
    jax.block_until_ready(f(prob, h, jax.random.key(11), nb))
    ts, cs = [], []
    for r in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        jax.block_until_ready(f(prob, h, jax.random.key(12 + r), nb))
        ts.append(time.perf_counter() - t0)
        cs.append(time.process_time() - c0)
    CPU_TIMES["certificate"] = min(cs)
    return min(ts), nb * B


class Verifier:
    """Independent masses of given heights on ``M_v`` fresh samples (noise floor ``floor x tol``); a screening
    pass on ``M_v / 16`` first rejects clearly failing heights cheaply."""

    def __init__(self, x, tol, floor, seed=777):
        n = x.shape[0]
        self.prob, self.tol, self.key, self.n = problem(x), tol, jax.random.key(seed), n
        zn = zscore(n)
        self.nb = max(1, math.ceil((zn / (floor * tol)) ** 2 * (1 - 1 / n) * n / B))
        self.f = jax.jit(P.masses)

    def floor(self, nb):
        return zscore(self.n) * math.sqrt((1 - 1 / self.n) * self.n / (nb * B))

    def __call__(self, h, screen=True):
        w = 1.0 / self.n
        h = jnp.asarray(h, jnp.float32)
        if screen and self.nb >= 64:
            nbs = self.nb // 16
            m = np.asarray(self.f(self.prob, h, jax.random.fold_in(self.key, 1), nbs), np.float64)
            err = float(np.max(np.abs(m - w) / w))
            if err - self.floor(nbs) > self.tol:
                return {"max_rel": err, "tv": 0.5 * float(np.abs(m - w).sum()), "floor": self.floor(nbs),
                        "samples": nbs * B, "screened": True}
        m = np.asarray(self.f(self.prob, h, self.key, self.nb), np.float64)
        return {"max_rel": float(np.max(np.abs(m - w) / w)), "tv": 0.5 * float(np.abs(m - w).sum()),
                "floor": self.floor(self.nb), "samples": self.nb * B, "screened": False}


def passes(v, tol, tv=None):
    return v["max_rel"] <= tol and (tv is None or v["tv"] <= tv)


# ------------------------------------------------------------------------------------------------- peers
def method_peer(make):
    def solve(x, tol, key, iters):
        st, t, _ = timed_solve(make(iters), x, tol, key)
        return np.asarray(st.heights), t

    return solve


def pot_peer(x, tol, key, iters):
    del tol
    from ot.semidiscrete import solve_semidiscrete

    rng = np.random.default_rng(int(jax.random.randint(key, (), 0, 2**30)))
    xn = np.asarray(x, np.float64) - np.asarray(x, np.float64).mean(0)
    d = xn.shape[1]
    t0 = time.perf_counter()
    g = solve_semidiscrete(xn, lambda b: rng.standard_normal((b, d)), max_iter=iters)
    t = time.perf_counter() - t0
    h = 0.5 * (g - np.sum(xn**2, -1))
    return h - h.mean(), t


PEERS = {
    "ott_tuned": (method_peer(lambda it: OTTSolver(num_iterations=it)), 4000),
    "algorithm1": (method_peer(lambda it: AdamSolver(max_iterations=it)), 200),
    "pot": (pot_peer, 10000),
    "hybrid": (method_peer(lambda it: HybridNewtonSolver()), 100),  # row p only: the Monte Carlo default elsewhere
}


def run_peer(name, x, tol, tv, key, verify, budget_s):
    """Doubling iteration budgets until the verification passes or the time budget is spent."""
    solve, iters = PEERS[name]
    spent = 0.0
    while True:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            h, t = solve(x, tol, key, iters)
        spent += t
        v = verify(h)
        if passes(v, tol, tv):
            return {"s": t, "ok": True, "iters": iters, **{f"v_{k}": val for k, val in v.items()}}
        if spent + 2 * t > budget_s:
            return {"s": t, "ok": False, "iters": iters, **{f"v_{k}": val for k, val in v.items()}}
        iters *= 2


# ------------------------------------------------------------------------------------------------- rows
def bench_row(name, args):
    x, label = row_targets(name, args.dry_run, {"b": args.size_b, "c": args.size_c}.get(name))
    n, d = x.shape
    tol = ROW_TOL[name] if not args.dry_run else 0.3
    if name == "c" and args.tol_c is not None and not args.dry_run:
        tol = args.tol_c
    tv = ROW_TV.get(name)
    key = jax.random.key(0)
    row = {"row": name, "problem": label, "n": n, "d": d, "tol": tol, "tv_target": tv, "load_start": load_average()}
    print(f"[{name}] {label}: n={n}, d={d}, tol={tol}", flush=True)
    solver = ExactNewtonSolver() if name == "p" else HybridNewtonSolver()  # semidiscrete_ot's default for the row
    state, ours_s, compile_s = timed_solve(solver, x, tol, key)
    h = np.asarray(state.heights)
    cert_s, mc = certificate_seconds(x, state.heights, tol)
    row.update(ours_s=ours_s, ours_compile_s=compile_s, ours_iterations=int(state.iteration),
               ours_converged=bool(state.converged), ours_fell_back=bool(getattr(state, "fell_back", False)),
               ours_solver=solver.name,
               ours_evaluations=float(state.evaluations),
               ours_final_samples=int(state.num_samples), certificate_s=cert_s, certificate_samples=mc,
               ratio=ours_s / cert_s, evaluations_per_certificate=float(state.evaluations) / mc,
               ours_cpu_s=CPU_TIMES["solve"], certificate_cpu_s=CPU_TIMES["certificate"],
               ratio_cpu=CPU_TIMES["solve"] / CPU_TIMES["certificate"])
    print(f"[{name}] ours {ours_s:.1f} s (compile {compile_s:.1f} s), certificate pass {cert_s:.1f} s "
          f"({mc} samples): ratio {ours_s / cert_s:.2f}; CPU seconds {row['ours_cpu_s']:.1f} / "
          f"{row['certificate_cpu_s']:.1f} = {row['ratio_cpu']:.2f}", flush=True)
    verify = Verifier(x, tol, args.verify_floor)
    t0 = time.perf_counter()
    v = verify(h, screen=False)
    row.update(verify_s=time.perf_counter() - t0, verify_samples=v["samples"], verify_floor=v["floor"],
               ours_max_rel=v["max_rel"], ours_tv=v["tv"], ours_ok=passes(v, tol, tv))
    print(f"[{name}] verification on {v['samples']} fresh samples (floor {v['floor']:.3f}): max rel "
          f"{v['max_rel']:.4f}, TV {v['tv']:.4f} -> {'OK' if row['ours_ok'] else 'FAILED'}", flush=True)
    best = None
    for peer in ([] if args.no_peers else [p for p in PEERS if p not in args.skip]):
        if (args.gpu and peer == "pot") or (peer == "hybrid" and name != "p"):
            continue
        budget = max(args.peer_budget * ours_s, args.min_peer_budget)
        r = run_peer(peer, x, tol, tv, key, verify, budget)
        row[f"{peer}_s"] = r["s"] if r["ok"] else f"> {budget:.0f} (max rel {r['v_max_rel']:.3f} at {r['iters']} it)"
        row[f"{peer}_ok"] = r["ok"]
        row[f"{peer}_max_rel"] = r["v_max_rel"]
        row[f"_{peer}_bound"] = (r["s"] if r["ok"] else budget) / ours_s
        if r["ok"]:
            best = r["s"] if best is None else min(best, r["s"])
        print(f"[{name}] {peer}: {row[f'{peer}_s']}", flush=True)
    row["load_end"] = load_average()
    row["peak_rss_gib"] = peak_rss_gib()
    return row


def row_headlines(rows):
    out = []
    for r in rows:
        where = f"row {r['row']}: {r['problem']}, tol {r['tol']}" + (f", TV <= {r['tv_target']}" if r["tv_target"] else "")
        target = "<= 3" if r["row"] in ("a", "b") else None
        note = (f"verified on {r['verify_samples']} fresh samples (noise floor {r['verify_floor']:.3f}): max rel "
                f"{r['ours_max_rel']:.3f}, TV {r['ours_tv']:.4f}; {r['ours_iterations']} iterations, "
                f"{r['evaluations_per_certificate']:.2f} certificate passes of samples scored; load "
                f"{r['load_start']}->{r['load_end']}")
        met = None if target is None else (r["ratio"] <= 3 and r["ours_ok"])
        if not r["ours_ok"]:
            note = "FAILED verification: " + note
        out.append(headline(f"semi-discrete OT solve / its certificate pass, wall time ({where})", ratio=r["ratio"],
                            target=target, met=met, ours_s=r["ours_s"],
                            peer=f"one certificate pass ({r['certificate_samples']} samples)",
                            peer_s=r["certificate_s"], note=note, compile_s=r["ours_compile_s"]))
        if "ratio_cpu" in r:
            met_cpu = None if target is None else (r["ratio_cpu"] <= 3 and r["ours_ok"])
            out.append(headline(f"semi-discrete OT solve / its certificate pass, CPU seconds ({where})",
                                ratio=r["ratio_cpu"], target=target, met=met_cpu, ours_s=r["ours_cpu_s"],
                                peer="one certificate pass (CPU seconds, all threads)", peer_s=r["certificate_cpu_s"],
                                note="process CPU time: insensitive to other processes' load on a shared machine"))
        for peer in PEERS:
            if f"_{peer}_bound" not in r:
                continue
            ok = r[f"{peer}_ok"]
            out.append(headline(f"semi-discrete OT speed-up vs {peer} ({where})", ratio=r[f"_{peer}_bound"],
                                target=None, ours_s=r["ours_s"], peer=peer, peer_s=r[f"{peer}_s"] if ok else None,
                                note="" if ok else f"lower bound: {peer} did not pass the verification within its "
                                f"budget (max rel {r[f'{peer}_max_rel']:.3f})"))
    return out


# ------------------------------------------------------------------------------------------------- kernel
KERNEL_SHAPES = {16: 10_000, 64: 1797, 784: 5000}


def bench_kernel(args):
    """Certificate-pass FLOP rate / square-matmul FLOP rate, interleaved rounds, minimum times."""
    rows = []
    size = 512 if args.dry_run else 2048
    a = jnp.ones((size, size), jnp.float32)
    mm = jax.jit(lambda a, b: a @ b).lower(a, a).compile()
    on_gpu = jax.devices()[0].platform == "gpu"
    # the pass's scores are float32 dots at jax's default precision, like this matmul: on NVIDIA Ampere/Hopper
    # both run on TF32 tensor cores, so the TF32 rate is the ceiling; the bf16 rate is reported beside it
    ceiling = ("float32 square matmul at jax default precision (TF32 tensor cores)" if on_gpu
               else "float32 square matmul")
    a16 = a.astype(jnp.bfloat16)
    mm16 = jax.jit(lambda a, b: a @ b).lower(a16, a16).compile() if on_gpu else None
    for d, n in KERNEL_SHAPES.items():
        if args.dry_run:
            n = 500
        x = np.random.default_rng(d).standard_normal((n, d)).astype(np.float32)
        prob = problem(x)
        r = min(n, d)
        nb = 2 if args.dry_run else (64 if args.gpu else max(2, int(2e10 / (B * n * (r + 1) * 2))))
        h = jnp.asarray(0.1 * np.random.default_rng(0).standard_normal(n), jnp.float32)
        f = masses_fn(prob, nb)
        cases = {"matmul": (mm, (a, a)), "pass": (f, (prob, h, jax.random.key(3), nb))}
        if mm16 is not None:
            cases["matmul_bf16"] = (mm16, (a16, a16))
        times = interleaved(cases, rounds=3 if args.dry_run else 5)
        mm_rate = 2.0 * size**3 / min(times["matmul"])
        rate = 2.0 * nb * B * n * (r + 1) / min(times["pass"])
        rows.append({"d": d, "n": n, "samples": nb * B, "pass_s": min(times["pass"]), "matmul_s": min(times["matmul"]),
                     "gflops": rate / 1e9, "matmul_gflops": mm_rate / 1e9, "fraction": rate / mm_rate,
                     "ceiling": ceiling, "bf16_matmul_gflops": (2.0 * size**3 / min(times["matmul_bf16"]) / 1e9
                                                                if mm16 is not None else None),
                     "load": load_average()})
        print(f"[kernel] d={d} n={n}: {rate / 1e9:.1f} GFLOP/s = {rate / mm_rate:.2f} of the matmul rate", flush=True)
    return rows


def kernel_headlines(rows):
    return [headline(f"certificate pass: fraction of the matmul rate (d={r['d']}, n={r['n']})",
                     ratio=r["fraction"], target=">= 0.4" if r["d"] == 64 else None, ours_s=r["pass_s"],
                     peer=r["ceiling"], peer_s=r["matmul_s"],
                     note=f"2 x samples x n x (r+1) flops incl. Gaussian sampling; {r['gflops']:.0f} vs "
                          f"{r['matmul_gflops']:.0f} GFLOP/s; load {r['load']}") for r in rows]


# ------------------------------------------------------------------------------------------------- main
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", default=None, help="comma-separated rows among a,b,c,d,p (default a,b; --gpu: a,b,c,d)")
    ap.add_argument("--kernel", action="store_true", help="certificate-pass fractions of the matmul rate only")
    ap.add_argument("--with-kernel", action="store_true", help="rows and the kernel fractions")
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--skip", default="", help="comma-separated peers to skip (ott_tuned, algorithm1, pot)")
    ap.add_argument("--peer-budget", type=float, default=2.0, help="peer time budget, in multiples of ours")
    ap.add_argument("--min-peer-budget", type=float, default=30.0, help="seconds")
    ap.add_argument("--verify-floor", type=float, default=0.35, help="verification noise floor, fraction of tol")
    ap.add_argument("--size-b", type=int, default=None, help="row b's number of targets (reduced run; default 10000)")
    ap.add_argument("--size-c", type=int, default=None, help="row c's number of images (reduced run; default 5000)")
    ap.add_argument("--tol-c", type=float, default=None, help="row c's max relative tolerance (default 0.1)")
    ap.add_argument("--gpu", action="store_true", help="accelerator run: rows a,b,c + kernel, no POT")
    ap.add_argument("--quick", action="store_true", help="row a and the kernel fractions, no peers")
    ap.add_argument("--dry-run", action="store_true", help="tiny sizes, end to end (CPU, seconds)")
    args = ap.parse_args(argv)
    args.skip = [s for s in args.skip.split(",") if s]
    if args.dry_run:
        args.min_peer_budget = 5.0
    rows_arg = args.rows or ("a,b,c,d" if (args.gpu or args.dry_run) else ("a" if args.quick else "a,b"))
    names = [] if args.kernel else [r.strip() for r in rows_arg.split(",") if r.strip()]
    bad = [r for r in names if r not in ROW_TOL]
    if bad:
        ap.error(f"--rows: unknown rows {bad}; choose among a, b, c, d, p")
    if args.quick:
        args.no_peers = True
    do_kernel = args.kernel or args.with_kernel or args.gpu or args.quick or args.dry_run
    suffix = "_dryrun" if args.dry_run else ("_gpu" if args.gpu else ("_quick" if args.quick else ""))
    if not args.dry_run and (args.size_b or args.size_c or args.tol_c):
        suffix += "_reduced"
    if args.no_peers and not (args.dry_run or args.gpu or args.quick):
        suffix += "_nopeers"  # keeps a peer run's table
    if names:
        rows = [bench_row(r, args) for r in names]
        cols = ["row", "n", "d", "tol", "ours_s", "certificate_s", "ratio", "ratio_cpu", "ours_max_rel", "ours_tv", "ours_ok",
                "verify_samples", "verify_floor", "ours_iterations", "evaluations_per_certificate", "ott_tuned_s",
                "algorithm1_s", "pot_s", "hybrid_s", "ours_solver", "ours_compile_s", "load_start", "load_end", "peak_rss_gib"]
        notes = [
            "ratio = ours_s / certificate_s: our solve (run time, compile excluded) over one streamed-argmax pass over "
            "16 n / tol^2 fresh samples, timed in the same run. ratio_cpu: the same with the process's CPU seconds "
            "(all threads), much less sensitive to other processes on a shared machine.",
            f"Verification: max relative cell-mass error (and TV) of the returned heights on verify_samples fresh "
            f"samples (independent key), noise floor verify_floor = {args.verify_floor} tol at the z_n level; a row "
            "succeeds only if that is <= tol (and TV <= target).",
            f"Peers: doubling iteration budgets until the same verification passes or {args.peer_budget} x ours "
            f"(at least {args.min_peer_budget:.0f} s) is spent; '> X' = did not pass within X s.",
            "load_start/load_end: 1-minute load average (2-core shared machine: times are noisy, ratios less so).",
        ]
        print(write_results("bench_semidiscrete_rows" + suffix + ("_" + "".join(names) if not args.gpu else ""), rows,
                            notes=notes, columns=cols, headline=row_headlines(rows)))
    if do_kernel:
        krows = bench_kernel(args)
        print(write_results("bench_semidiscrete_kernel" + suffix, krows, columns=list(krows[0]),
                            notes=["fraction = (2 x samples x n x (r+1)) / t_pass over (2 x 2048^3) / t_matmul; "
                                   "interleaved rounds, minimum time of each; the pass includes the Gaussian sampling "
                                   "(threefry) and the scatter of the counts."],
                            headline=kernel_headlines(krows)))


if __name__ == "__main__":
    main()
