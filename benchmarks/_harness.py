"""Shared benchmark harness: compile/run timing, the matmul ceiling, peak memory, JSON + markdown output.

Every benchmark compares, in the same run, jaxotdm against a peer and against the machine's ceiling
(a matmul of the same shape), and reports ratios; absolute times on shared machines are noise.
"""

from __future__ import annotations

import json
import platform
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp

RESULTS = Path(__file__).resolve().parent / "results"


def machine_name() -> str:
    dev = jax.devices()[0]
    kind = dev.platform if dev.platform == "cpu" else dev.device_kind.replace(" ", "-").lower()
    return f"{kind}-{platform.machine()}"


def block(x):
    return jax.block_until_ready(x)


def time_jax(fn: Callable, *args, repeats: int = 5, warmup: int = 1) -> dict:
    """Compile time (lower+compile) and median run time of ``jax.jit(fn)(*args)``."""
    jitted = jax.jit(fn)
    t0 = time.perf_counter()
    compiled = jitted.lower(*args).compile()
    compile_s = time.perf_counter() - t0
    for _ in range(warmup):
        block(compiled(*args))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        block(compiled(*args))
        times.append(time.perf_counter() - t0)
    return {"compile_s": compile_s, "run_s": statistics.median(times), "runs": times}


def time_python(fn: Callable, *args, repeats: int = 3, warmup: int = 0) -> dict:
    """Median wall time of a plain Python/NumPy callable."""
    for _ in range(warmup):
        fn(*args)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - t0)
    return {"run_s": statistics.median(times), "runs": times}


def matmul_ceiling(m: int, k: int, n: int, dtype=jnp.float32, repeats: int = 5) -> dict:
    """Time of an (m, k) @ (k, n) matmul: the machine's ceiling for matmul-shaped work."""
    a = jnp.ones((m, k), dtype)
    b = jnp.ones((k, n), dtype)
    res = time_jax(lambda a, b: a @ b, a, b, repeats=repeats)
    res["gflops"] = 2.0 * m * k * n / res["run_s"] / 1e9
    return res


def peak_rss_gib() -> float:
    """Peak resident memory of this process so far (GiB; Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def write_results(name: str, rows: list[dict], *, notes: list[str] | None = None, columns: list[str]) -> Path:
    """Writes ``results/<machine>/<name>.json`` and ``.md`` (a table of ``columns``)."""
    out = RESULTS / machine_name()
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "benchmark": name,
        "machine": machine_name(),
        "jax": jax.__version__,
        "devices": [str(d) for d in jax.devices()],
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    (out / f"{name}.json").write_text(json.dumps({"meta": meta, "rows": rows, "notes": notes or []}, indent=2))
    lines = [f"# {name} ({meta['machine']}, jax {meta['jax']}, {meta['date']})", ""]
    lines.append("| " + " | ".join(columns) + " |")
    lines.append("|" + "---|" * len(columns))
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(c, "")) for c in columns) + " |")
    for n in notes or []:
        lines += ["", n]
    (out / f"{name}.md").write_text("\n".join(lines) + "\n")
    return out / f"{name}.md"


def _fmt(v) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
