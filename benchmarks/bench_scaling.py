"""Strong scaling of the point-sharded kernels over 1, 2, 4, 8 devices (same total work).

Two workloads, both sharding the points/targets axis with ``jo.PointSharding(mesh, "points")``:

* the exact score ``exact_score(mu, OU(), sharding=...)(x, t)``: q queries x n data points x d dims;
* the semi-discrete ``counts`` kernel (the hot path of every OT solver pass): q queries x n targets.

The device count is fixed when JAX starts, so each device count runs in a fresh subprocess with
``XLA_FLAGS=--xla_force_host_platform_device_count=D`` (host CPU devices unless the machine has
accelerators; set ``--platform`` to choose). Reported per device count: compile time, median and
fastest run time, speed-up (of the fastest runs, the least disturbed by other load on a shared machine)
over the sharded run on 1 device, parallel efficiency (speed-up / D), and, side by side, the
unsharded single-device code and a (q, d) @ (d, n) matmul (the machine's ceiling for this shape).

    python -m benchmarks.bench_scaling            # q x n x d = 2048 x 131072 x 64 (score), 8192 x 65536 x 16 (counts)
    python -m benchmarks.bench_scaling --quick    # 512 x 16384 x 64, 2048 x 16384 x 16
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # children run from here: `benchmarks` is importable

CHILD = r"""
import json, sys
devices, q, n, d, qc, nc, dc, chunk = (int(a) for a in sys.argv[1:9])
import numpy as np
import jax, jax.numpy as jnp
from benchmarks._harness import interleaved, time_jax
import jaxotdm as jo
from jaxotdm.ot import _kernels as K

assert jax.device_count() >= devices, (jax.device_count(), devices)
mesh = jax.make_mesh((devices,), ("points",), devices=jax.devices()[:devices])
sh = jo.PointSharding(mesh, "points")
rng = np.random.default_rng(0)
res = {"devices": devices, "platform": jax.devices()[0].platform, "device_count": jax.device_count()}

mu = jo.EmpiricalMeasure(rng.standard_normal((n, d), dtype=np.float32))
x = jnp.asarray(rng.standard_normal((q, d), dtype=np.float32))
score = jo.exact_score(mu, jo.OU(), chunk_size=chunk, sharding=sh)
res["score"] = time_jax(lambda sc, x: sc(x, 0.5), score, x, repeats=10)

z = jnp.asarray(rng.standard_normal((qc, dc), dtype=np.float32))
y = jnp.asarray(rng.standard_normal((nc, dc), dtype=np.float32))
h = jnp.asarray(0.1 * rng.standard_normal(nc, dtype=np.float32))
res["counts"] = time_jax(lambda z, y, h: K.counts(z, y, h, chunk, sharding=sh), z, y, h, repeats=10)
c = jax.jit(lambda z, y, h: K.counts(z, y, h, chunk, sharding=sh)[0])(z, y, h)
res["counts_total_ok"] = bool(float(c.sum()) == qc)

if devices == 1:  # side-by-side references on one device: unsharded code and the matmul ceiling
    plain = jo.exact_score(mu, jo.OU(), chunk_size=chunk)
    res["score_unsharded"] = time_jax(lambda sc, x: sc(x, 0.5), plain, x, repeats=10)
    res["counts_unsharded"] = time_jax(lambda z, y, h: K.counts(z, y, h, chunk), z, y, h, repeats=10)
    yy = jnp.asarray(mu.points)
    res["matmul_score_shape"] = time_jax(lambda x, y: x @ y.T, x, yy, repeats=10)
    res["matmul_counts_shape"] = time_jax(lambda z, y: z @ y.T, z, y, repeats=10)
    # sharding overhead on one device, timed round-robin so that machine load hits both alike
    comp = lambda f, *a: (jax.jit(f).lower(*a).compile(), a)
    cases = {
        "score_sharded": comp(lambda sc, x: sc(x, 0.5), score, x),
        "score_plain": comp(lambda sc, x: sc(x, 0.5), plain, x),
        "counts_sharded": comp(lambda z, y, h: K.counts(z, y, h, chunk, sharding=sh), z, y, h),
        "counts_plain": comp(lambda z, y, h: K.counts(z, y, h, chunk), z, y, h),
    }
    res["interleaved_min_s"] = {k: float(min(v)) for k, v in interleaved(cases, rounds=10).items()}
print(json.dumps(res))
"""


def child(devices: int, sizes: tuple[int, ...], platform: str | None) -> dict:
    env = dict(os.environ)
    flags = " ".join(f for f in env.get("XLA_FLAGS", "").split() if "force_host_platform_device_count" not in f)
    env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={devices}".strip()
    env.pop("JAX_ENABLE_X64", None)
    if platform:
        env["JAX_PLATFORMS"] = platform
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(devices), *map(str, sizes)],
        capture_output=True, text=True, env=env, cwd=ROOT,
    )
    if out.returncode != 0:
        raise RuntimeError(f"child with {devices} devices failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--devices", default="1,2,4,8", help="comma-separated device counts")
    ap.add_argument("--chunk", type=int, default=2048, help="points per streaming chunk (per device)")
    ap.add_argument("--platform", default="cpu", help="JAX_PLATFORMS for the children ('' for JAX's default)")
    args = ap.parse_args(argv)
    counts_list = [int(c) for c in args.devices.split(",")]
    if not counts_list or min(counts_list) < 1:
        ap.error(f"--devices must be positive integers, got {args.devices!r}")
    if 1 not in counts_list:
        counts_list = [1] + counts_list
    q, n, d = (512, 16384, 64) if args.quick else (2048, 131072, 64)
    qc, nc, dc = (2048, 16384, 16) if args.quick else (8192, 65536, 16)
    from benchmarks._harness import headline, write_results

    results = {}
    for D in sorted(set(counts_list)):
        print(f"[bench_scaling] {D} device(s)", flush=True)
        results[D] = child(D, (q, n, d, qc, nc, dc, args.chunk), args.platform or None)
    one = results[1]
    rows = []
    for kind, shape, ref_key, mm_key in [
        ("exact score", f"{q}x{n}x{d}", "score_unsharded", "matmul_score_shape"),
        ("counts kernel", f"{qc}x{nc}x{dc}", "counts_unsharded", "matmul_counts_shape"),
    ]:
        key = "score" if kind == "exact score" else "counts"
        base = min(one[key]["runs"])
        for label, r in [("matmul ceiling (1 device)", one[mm_key]), ("unsharded (1 device)", one[ref_key])]:
            rows.append({"workload": kind, "shape": shape, "devices": 1, "variant": label,
                         "compile_s": r["compile_s"], "run_s": r["run_s"], "min_s": min(r["runs"]),
                         "speedup_vs_1": base / min(r["runs"]), "efficiency": ""})
        for D, res in results.items():
            r = res[key]
            rows.append({"workload": kind, "shape": shape, "devices": D, "variant": "sharded",
                         "compile_s": r["compile_s"], "run_s": r["run_s"], "min_s": min(r["runs"]),
                         "speedup_vs_1": base / min(r["runs"]), "efficiency": base / min(r["runs"]) / D})
    cores = os.cpu_count()
    def best(kind):
        return max((r["speedup_vs_1"] for r in rows if r["variant"] == "sharded" and r["workload"] == kind
                    and r["devices"] > 1), default=float("nan"))

    best_s, best_c = best("exact score"), best("counts kernel")
    platform = one["platform"]
    notes = [
        f"Strong scaling, same total work; devices are {platform} devices forced with "
        f"--xla_force_host_platform_device_count on a machine with {cores} CPU cores. Best speed-up of 2 or "
        f"more devices over the sharded 1-device run: exact score {best_s:.2f}x, counts {best_c:.2f}x.",
        "On a CPU host, forced devices share the same cores: XLA:CPU already spreads one device's matmuls "
        "over all cores, so more devices add per-device dispatch, the collectives and smaller matmuls but no "
        "compute. A speed-up near 1 (efficiency near 1/D) is the expected result here; the numbers measure "
        "the overhead of the sharding itself. Real scaling needs one accelerator (or host) per shard.",
        "The counts kernel takes a one-pass path (one matmul per query block) when a device's targets fit "
        f"in one chunk ({args.chunk}) and a two-scan path (best chunk, then count) otherwise; device counts "
        f"with one chunk per device here: {[D for D in results if -(-nc // D) <= args.chunk] or 'none'}. "
        "That algorithmic switch, not parallelism, is what a speed-up above 1 at those counts reflects. "
        "The counts kernel never forms the (q, n) score matrix, so the matmul 'ceiling' (which writes it) "
        "can be slower than the kernel.",
        "Rows for different device counts come from separate processes timed one after another on a shared "
        "machine, so differences of tens of percent are within its noise; the 1-device overhead ratio is "
        "timed round-robin in one process. Load average (1, 5, 15 min) at the end of this run: "
        + ", ".join(f"{v:.1f}" for v in os.getloadavg()) + f" on {cores} cores.",
        "Counting check (every query counted exactly once across devices): "
        + ", ".join(f"{D} dev {'ok' if r['counts_total_ok'] else 'FAILED'}" for D, r in results.items()) + ".",
    ]
    top = max(results)
    heads = []
    for kind, key in [("exact score", "score"), ("counts kernel", "counts")]:
        base, last = one[key], results[top][key]
        heads.append(headline(
            f"{kind}: speed-up on {top} devices (strong scaling)", ratio=min(base["runs"]) / min(last["runs"]),
            target=None, ours_s=min(last["runs"]), peer="sharded, 1 device", peer_s=min(base["runs"]),
            compile_s=last["compile_s"],
            note=f"{platform} devices forced on {cores} cores: no parallel compute to gain (see notes)"))
        ti = one["interleaved_min_s"]
        heads.append(headline(
            f"{kind}: sharding overhead on 1 device (time ratio)", ratio=ti[f"{key}_sharded"] / ti[f"{key}_plain"],
            target=None, ours_s=ti[f"{key}_sharded"], peer="unsharded", peer_s=ti[f"{key}_plain"],
            compile_s=base["compile_s"],
            note="sharded / unsharded, fastest of 10 interleaved rounds; 1.0 = no overhead from shard_map"))
    path = write_results("scaling" + ("_quick" if args.quick else ""), rows, notes=notes, columns=list(rows[0]),
                         headline=heads)
    print(path.read_text())


if __name__ == "__main__":
    main()
