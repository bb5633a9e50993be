"""Sharding of the points/targets axis: sharded results equal the single-device ones (float64).

The device count is fixed when JAX starts, and this pytest process has already started it with one
CPU device, so the 8-device checks run in one subprocess with
``XLA_FLAGS=--xla_force_host_platform_device_count=8``.
"""

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxotdm as jo
from jaxotdm.ot import _kernels as K

PRELUDE = r"""
    import json, sys, time
    t_start = time.perf_counter()
    import numpy as np, jax, jax.numpy as jnp
    import jaxotdm as jo
    from jaxotdm.ot import _kernels as K

    assert jax.device_count() == 8, jax.devices()
    assert jnp.zeros(1).dtype == jnp.float64
    sh = jo.PointSharding(jax.make_mesh((8,), ("points",)), "points")
    rng = np.random.default_rng(0)
    failures, worst = [], {}

    def close(name, a, b, tol=1e-10):
        a, b = np.asarray(a), np.asarray(b)
        err = float(np.max(np.abs(a - b) / (1.0 + np.abs(b)), initial=0.0))
        worst[name] = max(worst.get(name, 0.0), err)
        if a.shape != b.shape or a.dtype != b.dtype or not np.allclose(a, b, rtol=tol, atol=tol):
            failures.append(f"{name}: shapes {a.shape}/{b.shape} dtypes {a.dtype}/{b.dtype} max err {err:.3g}")

"""
EPILOGUE = r"""    print(json.dumps({"failures": failures, "worst": worst, "seconds": time.perf_counter() - t_start}))
    sys.exit(1 if failures else 0)
    """
PARTS = {  # each part runs in its own 8-device subprocess
    "scores_and_kernels": r"""    # exact score: n = 203 points (not a multiple of 8), d = 5, several t, query blocks of 16
    n, d = 203, 5
    w = rng.uniform(0.5, 1.5, n)
    mu = jo.EmpiricalMeasure(rng.normal(size=(n, d)), w / w.sum())
    x = jnp.asarray(rng.normal(size=(37, d)))
    one = jo.exact_score(mu, jo.OU(), chunk_size=16, query_chunk_size=16)
    many = jo.exact_score(mu, jo.OU(), chunk_size=16, query_chunk_size=16, sharding=sh)
    for t in (0.02, 0.3, 2.0):
        close(f"score t={t}", many(x, t), one(x, t))
        close(f"denoiser t={t}", many.denoiser(x, t), one.denoiser(x, t))
        close(f"log_density t={t}", many.log_density(x, t), one.log_density(x, t))
        close(f"posterior_mode t={t}", many.posterior_mode(x, t), one.posterior_mode(x, t), tol=0)
    ts = jnp.linspace(0.05, 1.5, 37)
    close("score per-query t", many(x, ts), one(x, ts))
    grad = lambda s: jax.grad(lambda y: jnp.sum(s.log_density(y, 0.3)))(x)
    close("grad log_density", grad(many), grad(one))
    # 3 points on 8 devices: five shards hold only padding
    mu3 = jo.EmpiricalMeasure(rng.normal(size=(3, d)))
    close("score n=3", jo.exact_score(mu3, jo.OU(), sharding=sh)(x, 0.3), jo.exact_score(mu3, jo.OU())(x, 0.3))

    # semi-discrete kernels: 203 targets, 300 queries; chunk 16 (several chunks per device) and 4096 (one)
    y = jnp.asarray(rng.normal(size=(n, d)))
    h = jnp.asarray(0.3 * rng.normal(size=n))
    z = jnp.asarray(rng.normal(size=(300, d)))
    for chunk in (16, 4096):
        c1, e1 = K.counts(z, y, h, chunk)
        c8, e8 = K.counts(z, y, h, chunk, sharding=sh)
        close(f"counts chunk={chunk}", c8, c1, tol=0)
        close(f"counts total chunk={chunk}", e8, e1)
        if float(c8.sum()) != z.shape[0]:
            failures.append(f"counts chunk={chunk}: total count {float(c8.sum())} != {z.shape[0]}")
    for name, a, b in [
        ("top1", K.top1(z, y, h, 16, sharding=sh), K.top1(z, y, h, 16)),
        ("top2", K.top2(z, y, h, 16, sharding=sh), K.top2(z, y, h, 16)),
        ("soft", K.soft(z, y, h, 0.1, 16, sharding=sh), K.soft(z, y, h, 0.1, 16)),
    ]:
        for k, (u, v) in enumerate(zip(a, b, strict=True)):
            close(f"{name}[{k}]", u, v, tol=0 if u.dtype == jnp.int32 else 1e-10)
    # gradients (pmax has no derivative: the kernels must route them through the owning device)
    gz = lambda s: jax.grad(lambda z: jnp.sum(K.top1(z, y, h, 16, sharding=s)[0]) + K.counts(z, y, h, 16, sharding=s)[1])(z)
    close("grad top1 value + counts total", gz(sh), gz(None))
    # inside jit, over query blocks (map_queries), with a traced tau
    soft_pot = lambda s: jax.jit(lambda z, tau: K.map_queries(lambda q: K.soft(q, y, h, tau, 16, sharding=s)[0], z, 64))
    close("soft jit map_queries", soft_pot(sh)(z, 0.2), soft_pot(None)(z, 0.2))

""",
    "semidiscrete_solves": r"""    # the semi-discrete solve (Newton and Algorithm 1), its certificate and the returned map (what the
    # OT-accelerated sampler applies to prior samples): same keys -> same samples -> same heights
    yt = jnp.asarray(rng.normal(size=(61, 3)))
    for method in (jo.NewtonSolver(), jo.AdamSolver(max_iterations=60)):
        m1 = jo.semidiscrete_ot(yt, key=jax.random.key(5), tol=0.2, solver=method, streaming=jo.Streaming(chunk_size=16))
        m8 = jo.semidiscrete_ot(yt, key=jax.random.key(5), tol=0.2, solver=method,
                                streaming=jo.Streaming(chunk_size=16, sharding=sh))
        close(f"{method.name} heights", m8.heights, m1.heights)
        close(f"{method.name} iterations", m8.diagnostics.iterations, m1.diagnostics.iterations, tol=0)
        close(f"{method.name} certificate masses", m8.certificate.masses, m1.certificate.masses)
        zq = jnp.asarray(rng.normal(size=(50, 3)))
        close(f"{method.name} assign", m8.assign(zq), m1.assign(zq), tol=0)
        close(f"{method.name} transport tau=0.1", m8.transport(zq, 0.1), m1.transport(zq, 0.1))
        close(f"{method.name} potential", m8.potential(zq), m1.potential(zq))

""",
}


@pytest.mark.parametrize(
    "part", ["scores_and_kernels", pytest.param("semidiscrete_solves", marks=pytest.mark.slow)]  # solves: 30-40 s
)
def test_sharded_equals_single_device_on_8_host_devices(part):
    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()
    env["JAX_ENABLE_X64"] = "1"
    env["JAX_PLATFORMS"] = "cpu"
    script = textwrap.dedent(PRELUDE + PARTS[part] + EPILOGUE)
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"sharded checks failed (rc {proc.returncode}):\n{proc.stdout}\n{proc.stderr[-4000:]}"


def test_one_device_mesh_in_process():
    mesh = jax.make_mesh((1,), ("points",))
    sh = jo.PointSharding(mesh, "points")
    assert sh.num_shards == 1 and sh.shard_size(5) == 5
    rng = np.random.default_rng(3)
    mu = jo.EmpiricalMeasure(rng.normal(size=(9, 2)))
    x = jnp.asarray(rng.normal(size=(4, 2)))
    np.testing.assert_allclose(
        jo.exact_score(mu, jo.OU(), sharding=sh)(x, 0.4), jo.exact_score(mu, jo.OU())(x, 0.4), rtol=1e-12
    )
    y, h, z = jnp.asarray(rng.normal(size=(9, 2))), jnp.zeros(9), x
    np.testing.assert_array_equal(K.top1(z, y, h, 4, sharding=sh)[1], K.top1(z, y, h, 4)[1])


def test_pad():
    sh = jo.PointSharding(jax.make_mesh((1,), ("points",)), "points")
    a = jnp.arange(3.0)
    assert sh.pad(a, -jnp.inf) is a  # one shard: nothing to pad


def test_bad_input():
    mesh = jax.make_mesh((1,), ("points",))
    with pytest.raises(ValueError, match="`axis`"):
        jo.PointSharding(mesh, "data")
    with pytest.raises(ValueError, match="`axis`"):
        jo.PointSharding(mesh, 0)
    with pytest.raises(ValueError, match="`mesh`"):
        jo.PointSharding("points", "points")
    mu = jo.EmpiricalMeasure(np.zeros((2, 1)))
    with pytest.raises(ValueError, match="`sharding`"):
        jo.exact_score(mu, jo.OU(), sharding="points")
    with pytest.raises(ValueError, match="`sharding`"):
        jo.exact_score(jo.GaussianMeasure(jnp.zeros(1), jnp.eye(1)), jo.OU(), sharding=jo.PointSharding(mesh, "points"))
