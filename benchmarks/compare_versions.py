"""Same-run A/B of two versions of jaxotdm on the score, flow, sampler and OT hot paths.

Each version runs in its own subprocess (``PYTHONPATH`` = a folder holding its ``jaxotdm`` package), the two
alternating ``--rounds`` times, so that load from other processes on a shared machine hits both alike. Each
subprocess compiles every workload, then times it ``--repeats`` times (``block_until_ready``) and keeps the
minimum. Reported per workload: the median over rounds of ``t(new) / t(old)`` (1.0 = no change; below 1 =
faster), with the spread of the per-round ratios.

    git archive <old-commit> jaxotdm | tar -x -C /tmp/old      # the old package
    python -m benchmarks.compare_versions --old /tmp/old [--new .] [--rounds 3]

Workloads (float32, 2 CPU cores in mind): the exact score (1024 queries x 8192 points x 256 dims), the
probability flow (``flow_map``, Tsit5, rtol = atol = 1e-5, 256 x 8-D against the exact score of 512
points), fixed-step samplers jitted (Heun 10 steps, Euler-Maruyama 10 steps) and as plain Python calls
(validation, grid and dispatch included), the Sinkhorn divergence (n = 1000, d = 16, eps = 1) and Sinkhorn
(same clouds), and a semi-discrete OT solve (256 targets, d = 16, tol 0.1). Only APIs present in both
versions are used; a workload that fails in one version is reported as such.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

CHILD = r"""
import json, sys, time, warnings
warnings.simplefilter("ignore")
import numpy as np
import jax, jax.numpy as jnp
import jaxotdm as jo
from jaxotdm import samplers as S
repeats = int(sys.argv[1])
rng = np.random.default_rng(0)
out = {"jaxotdm": jo.__file__}

def timed(name, fn, *args):
    try:
        jax.block_until_ready(fn(*args))  # compile / warm
        ts = []
        for _ in range(repeats):
            t0 = time.perf_counter(); jax.block_until_ready(fn(*args)); ts.append(time.perf_counter() - t0)
        out[name] = min(ts)
    except Exception as exc:  # an API missing in one version
        out[name] = f"failed: {type(exc).__name__}: {exc}"[:200]

# exact score
Y = rng.standard_normal((8192, 256), dtype=np.float32); X = rng.standard_normal((1024, 256), dtype=np.float32)
mu = jo.EmpiricalMeasure(jnp.asarray(Y)); sched = jo.OU()
score = jo.exact_score(mu, sched, chunk_size=2048)
timed("exact score", jax.jit(lambda x: score(x, jnp.float32(0.5))), jnp.asarray(X))
# probability flow
y8 = jnp.asarray(rng.standard_normal((512, 8), dtype=np.float32)); mu8 = jo.EmpiricalMeasure(y8)
s8 = jo.exact_score(mu8, sched); z8 = jnp.asarray(rng.standard_normal((256, 8), dtype=np.float32)) * 1.0
# the tolerances: one ODESettings since issue 21, two keywords before
flow_kw = {"ode": jo.ODESettings(rtol=1e-5, atol=1e-5)} if hasattr(jo, "ODESettings") else {"rtol": 1e-5, "atol": 1e-5}
timed("flow_map tsit5 1e-5", jax.jit(lambda z: jo.flow_map(s8, sched, z, 6.0, 1e-2, **flow_kw).points), z8)
# samplers
vp = jo.VPLinear(); s8v = jo.exact_score(mu8, vp); key = jax.random.key(1)
heun = lambda z: S.sample(S.Heun(), s8v, vp, z, t_start=1.0, t_end=1e-3, num_steps=10).points
em = lambda z, k: S.sample(S.EulerMaruyama(), s8v, vp, z, t_start=1.0, t_end=1e-3, num_steps=10, key=k).points
timed("sample Heun, jitted", jax.jit(heun), z8)
timed("sample Euler-Maruyama, jitted", jax.jit(em), z8, key)
timed("sample Heun, Python call", heun, z8)
timed("sample Euler-Maruyama, Python call", em, z8, key)
# entropic OT
xs = jnp.asarray(rng.standard_normal((1000, 16), dtype=np.float32)); ys = xs + 0.5
timed("sinkhorn_divergence n=1000", lambda a, b: jo.ot.sinkhorn_divergence(a, b, epsilon=1.0), xs, ys)
timed("sinkhorn n=1000", lambda a, b: jo.ot.sinkhorn(a, b, epsilon=1.0, return_matrix=False).f, xs, ys)
# semi-discrete OT
tg = jnp.asarray(rng.standard_normal((256, 16), dtype=np.float32))
timed("semidiscrete_ot 256x16 tol 0.1", lambda p: jo.semidiscrete_ot(p, key=jax.random.key(0), tol=0.1).heights, tg)
print(json.dumps(out))
"""


def run(folder: Path, repeats: int) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(folder)
    env.pop("JAX_ENABLE_X64", None)
    res = subprocess.run([sys.executable, "-c", CHILD, str(repeats)], capture_output=True, text=True, env=env,
                         cwd="/")
    if res.returncode != 0:
        raise RuntimeError(f"{folder}: {res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old", required=True, help="folder holding the old version's jaxotdm package")
    ap.add_argument("--new", default=str(Path(__file__).resolve().parent.parent), help="folder of the new one")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args(argv)
    old, new = Path(args.old).resolve(), Path(args.new).resolve()
    runs = {"old": [], "new": []}
    load = [os.getloadavg()[0]]
    t0 = time.time()
    for r in range(args.rounds):
        for tag, folder in (("old", old), ("new", new)) if r % 2 == 0 else (("new", new), ("old", old)):
            runs[tag].append(run(folder, args.repeats))
            load.append(os.getloadavg()[0])
            print(f"[compare] round {r + 1} {tag} done ({time.time() - t0:.0f} s)", flush=True)
    names = [k for k in runs["new"][0] if k != "jaxotdm"]
    print(f"\nold: {runs['old'][0]['jaxotdm']}\nnew: {runs['new'][0]['jaxotdm']}")
    print(f"load average (1 min) during the run: {min(load):.2f}..{max(load):.2f}\n")
    print("| workload | old min s | new min s | new / old (median over rounds) | per-round ratios |")
    print("|---|---|---|---|---|")
    for n in names:
        o = [r[n] for r in runs["old"]]
        w = [r[n] for r in runs["new"]]
        if any(isinstance(v, str) for v in o + w):
            bad = next(v for v in o + w if isinstance(v, str))
            print(f"| {n} | | | not compared | {bad} |")
            continue
        ratios = [b / a for a, b in zip(o, w, strict=True)]
        print(f"| {n} | {min(o):.4g} | {min(w):.4g} | {statistics.median(ratios):.3f} | "
              f"{', '.join(f'{x:.2f}' for x in ratios)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
