"""Several processes (hosts): ``jax.distributed.initialize`` and a mesh over every process's devices.

The recipe (as for several hosts, here two local processes): each process sets
``jax.config.update("jax_cpu_collectives_implementation", "gloo")`` (CPU collectives across processes),
calls ``jax.distributed.initialize(coordinator_address="127.0.0.1:PORT", num_processes=2, process_id=i)``,
then builds the mesh from all devices, ``jax.make_mesh((jax.device_count(),), ("points",))``, and passes
``PointSharding(mesh, "points")``; inputs are the same NumPy arrays in every process. Each process here has
two CPU devices (``--xla_force_host_platform_device_count=2``), so the mesh has four devices on two processes.
Checked: the sharded exact score, the sharded semi-discrete solve (heights, iterations), its certificate and
the returned map equal the single-device results of the same process (float64).
"""

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    r"""
    import json, sys
    pid, port = int(sys.argv[1]), int(sys.argv[2])
    import jax
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=2, process_id=pid)
    import numpy as np, jax.numpy as jnp
    import jaxotdm as jo

    assert jax.process_count() == 2 and jax.device_count() == 4 and jax.local_device_count() == 2
    sh = jo.PointSharding(jax.make_mesh((jax.device_count(),), ("points",)), "points")
    local = lambda a: np.asarray(a.addressable_data(0)) if isinstance(a, jax.Array) else np.asarray(a)
    rng = np.random.default_rng(0)  # same data in every process
    worst = {}

    def close(name, a, b, tol=1e-10):
        a, b = local(a), local(b)
        err = float(np.max(np.abs(a - b) / (1.0 + np.abs(b)), initial=0.0))
        worst[name] = err
        assert a.shape == b.shape and err <= tol, (name, err)

    # exact score: 203 points over 4 devices of 2 processes
    mu = jo.EmpiricalMeasure(rng.normal(size=(203, 5)))
    x = rng.normal(size=(37, 5))
    one = jo.exact_score(mu, jo.OU(), chunk_size=16)
    many = jo.exact_score(mu, jo.OU(), chunk_size=16, sharding=sh)
    for t in (0.05, 0.7):
        close(f"score t={t}", many(x, t), one(x, t))
        close(f"log_density t={t}", many.log_density(x, t), one.log_density(x, t))

    # semi-discrete OT: the solve, its certificate and the map, sharded over both processes
    y = rng.normal(size=(61, 3))
    m1 = jo.semidiscrete_ot(y, key=jax.random.key(5), tol=0.2, streaming=jo.Streaming(chunk_size=16))
    m4 = jo.semidiscrete_ot(y, key=jax.random.key(5), tol=0.2, streaming=jo.Streaming(chunk_size=16, sharding=sh))
    close("heights", m4.heights, m1.heights)
    close("iterations", m4.diagnostics.iterations, m1.diagnostics.iterations, tol=0)
    close("certificate masses", m4.certificate.masses, m1.certificate.masses)
    assert int(local(m4.diagnostics.status)) == 0
    zq = rng.normal(size=(50, 3))
    close("assign", m4.assign(zq), m1.assign(zq), tol=0)
    close("transport tau=0.1", m4.transport(zq, 0.1), m1.transport(zq, 0.1))
    close("potential", m4.potential(zq), m1.potential(zq))
    close("cell_masses", m4.cell_masses(key=jax.random.key(9), num_samples=8192),
          m1.cell_masses(key=jax.random.key(9), num_samples=8192))
    print("RESULT " + json.dumps({"process": pid, "worst": worst}), flush=True)
    jax.distributed.shutdown()
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_two_devices_each_equal_single_device():
    env = dict(os.environ)
    flags = " ".join(f for f in env.get("XLA_FLAGS", "").split() if "force_host_platform_device_count" not in f)
    env["XLA_FLAGS"] = (flags + " --xla_force_host_platform_device_count=2").strip()
    env["JAX_ENABLE_X64"] = "1"
    env["JAX_PLATFORMS"] = "cpu"
    port = _free_port()
    procs = [subprocess.Popen([sys.executable, "-c", SCRIPT, str(i), str(port)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=900)
            outs.append((p.returncode, out, err))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for rc, out, err in outs:
        assert rc == 0, f"process failed (rc {rc}):\n{out[-2000:]}\n{err[-4000:]}"
    results = [json.loads(line[len("RESULT "):]) for _, out, _ in outs for line in out.splitlines()
               if line.startswith("RESULT ")]
    assert sorted(r["process"] for r in results) == [0, 1]
    assert all(v <= 1e-10 for r in results for v in r["worst"].values()), results
