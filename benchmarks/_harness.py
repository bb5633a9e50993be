"""Shared benchmark harness: compile/run timing, the matmul ceiling, peak memory, JSON + markdown output.

Every benchmark compares, in the same run, jaxotdm against a peer and against the machine's ceiling
(a matmul of the same shape), and reports ratios; absolute times on shared machines are noise.

Headline convention (read by ``run_all.py`` to build ``results/<machine>-SUMMARY.md``): a benchmark's JSON
may carry a top-level ``"headline"`` list of dicts, one per headline ratio, with the keys of
:data:`HEADLINE_KEYS`::

    {"quantity": "exact score: fraction of the matmul rate",  # stable name, matched by run_all
     "ours_s": 0.092, "peer": "matmul (1 x (q,d)@(d,n))", "peer_s": 0.083,
     "ratio": 1.80, "target": ">= 0.5", "met": True,
     "note": "why a target was missed, or what the ratio means", "compile_s": 0.93}

``target`` is ``"<op> <number>"`` with ``op`` one of ``>=, >, <=, <`` (or ``None`` for a reported-only
ratio); ``met`` is ``True``/``False``, or ``None`` when not measured. Build entries with
:func:`headline`, pass them as ``write_results(..., headline=[...])``.
"""

from __future__ import annotations

import json
import operator
import os
import platform
import re
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp

RESULTS = Path(__file__).resolve().parent / "results"


def machine_name() -> str:
    """``<device kind>-<cpu arch>`` (e.g. ``cpu-x86_64``, ``nvidia-h200-x86_64``), or ``$JAXOTDM_BENCH_OUT`` when set
    (``run_all.py --dry-run`` uses it to keep test runs apart from real results)."""
    override = os.environ.get("JAXOTDM_BENCH_OUT")
    if override:
        return override
    try:
        dev = jax.devices()[0]
        kind = dev.platform if dev.platform == "cpu" else str(dev.device_kind)
    except RuntimeError:  # pragma: no cover - no backend
        kind = "unknown"
    kind = re.sub(r"[^a-z0-9._-]+", "-", kind.lower()).strip("-") or "device"
    return f"{kind}-{platform.machine()}"


def load_average() -> float | None:
    """The 1-minute load average (None where the OS has none): the context of every timing on a shared machine."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):  # pragma: no cover
        return None


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


def interleaved(cases: dict[str, tuple[Callable, tuple]], rounds: int) -> dict[str, list[float]]:
    """Wall times of already-compiled ``fn(*args)`` for every case, interleaved round by round.

    Round-robin timing makes slow drifts of a shared machine's load hit every case alike, so ratios of
    cases (min or median over rounds) are fairer than ratios of separately timed medians.
    """
    times: dict[str, list[float]] = {k: [] for k in cases}
    for fn, args in cases.values():  # warm-up
        block(fn(*args))
    for _ in range(rounds):
        for k, (fn, args) in cases.items():
            t0 = time.perf_counter()
            block(fn(*args))
            times[k].append(time.perf_counter() - t0)
    return times


HEADLINE_KEYS = ("quantity", "ours_s", "peer", "peer_s", "ratio", "target", "met", "note", "compile_s")
_OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}


def target_met(ratio, target: str | None) -> bool | None:
    """Whether ``ratio`` meets ``target`` (``">= 0.5"``, ``"< 0.10"``, ...); None if either is missing."""
    if target is None or ratio is None:
        return None
    op, _, num = str(target).strip().partition(" ")
    if op not in _OPS:
        raise ValueError(f"`target` must look like '>= 0.5' (ops {sorted(_OPS)}), got {target!r}.")
    return bool(_OPS[op](float(ratio), float(num)))


def headline(quantity: str, *, ratio, target: str | None, ours_s=None, peer: str | None = None, peer_s=None,
             note: str = "", compile_s=None, met: bool | None = None) -> dict:
    """One headline entry (see the module docstring); ``met`` is computed from ``ratio`` and ``target``."""
    if met is None:
        met = target_met(ratio, target)
    return {"quantity": quantity, "ours_s": ours_s, "peer": peer, "peer_s": peer_s, "ratio": ratio,
            "target": target, "met": met, "note": note, "compile_s": compile_s}


def write_results(name: str, rows: list[dict], *, notes: list[str] | None = None, columns: list[str],
                  headline: list[dict] | None = None) -> Path:
    """Writes ``results/<machine>/<name>.json`` and ``.md`` (a table of ``columns``).

    ``headline``: optional list of headline entries (:func:`headline`), stored under the JSON's top-level
    ``"headline"`` key and listed first in the markdown file.
    """
    out = RESULTS / machine_name()
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "benchmark": name,
        "machine": machine_name(),
        "jax": jax.__version__,
        "devices": [str(d) for d in jax.devices()],
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    doc = {"meta": meta, "rows": rows, "notes": notes or []}
    if headline:
        for h in headline:
            missing = set(HEADLINE_KEYS) - set(h)
            if missing:
                raise ValueError(f"headline entry {h.get('quantity')!r} lacks keys {sorted(missing)}.")
        doc["headline"] = headline
    (out / f"{name}.json").write_text(json.dumps(doc, indent=2, default=_json_default))
    lines = [f"# {name} ({meta['machine']}, jax {meta['jax']}, {meta['date']})", ""]
    if headline:
        cols = ["quantity", "ours_s", "peer", "peer_s", "ratio", "target", "met", "note"]
        lines.append("| " + " | ".join(cols) + " |")
        lines.append("|" + "---|" * len(cols))
        for h in headline:
            lines.append("| " + " | ".join(_fmt(h.get(c, "")) for c in cols) + " |")
        lines.append("")
    lines.append("| " + " | ".join(columns) + " |")
    lines.append("|" + "---|" * len(columns))
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(c, "")) for c in columns) + " |")
    for n in notes or []:
        lines += ["", n]
    (out / f"{name}.md").write_text("\n".join(lines) + "\n")
    return out / f"{name}.md"


def _json_default(v):
    """NumPy scalars and arrays in rows (e.g. a float32 error) serialise as Python numbers/lists."""
    if hasattr(v, "tolist"):
        return v.tolist()
    raise TypeError(f"not JSON serialisable: {type(v).__name__}")


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
