"""Eager input validation shared by the public entry points.

Every check runs before tracing. When an argument is a tracer (we are inside a user's ``jit``),
value checks are skipped and only static shape checks apply; jitted code never raises on values.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def is_concrete(x) -> bool:
    """True when ``x`` holds concrete values (not a tracer)."""
    return not isinstance(x, jax.core.Tracer)


def as_float_array(x, name: str, *, dtype=None) -> jax.Array:
    """Converts ``x`` to a floating JAX array, raising a ValueError naming ``name`` on failure."""
    if isinstance(x, jax.core.Tracer):
        if not jnp.issubdtype(x.dtype, jnp.floating):
            raise ValueError(f"`{name}` must have a floating dtype, got {x.dtype}.")
        return x if dtype is None else x.astype(dtype)
    try:
        arr = np.asarray(x)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise ValueError(f"`{name}` could not be converted to an array: {exc}") from exc
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise ValueError(f"`{name}` must be a numeric array, got dtype {arr.dtype}.")
    if dtype is None:  # floating inputs keep their dtype, canonicalised (float64 -> float32 without x64)
        return jnp.asarray(arr) if np.issubdtype(arr.dtype, np.floating) else jnp.asarray(arr, dtype=float)
    return jnp.asarray(arr, dtype=dtype)


def check_finite(x, name: str) -> None:
    """Raises if a concrete ``x`` has NaN or inf entries."""
    if not is_concrete(x):
        return
    # numpy, not jnp: inside a caller's jit even ops on concrete (captured) arrays are staged
    finite = np.isfinite(np.asarray(x))
    if not finite.all():
        raise ValueError(f"`{name}` has {int(finite.size - finite.sum())} non-finite (NaN or inf) entries.")


def check_ndim(x, ndim: int, name: str, what: str) -> None:
    if jnp.ndim(x) != ndim:
        raise ValueError(f"`{name}` must have shape {what}, got shape {tuple(jnp.shape(x))}.")


def check_time(t, name: str, *, t_max: float | None = None) -> None:
    """Times must be finite, strictly positive and (if given) below the schedule's ``t_max``."""
    if not is_concrete(t):
        return
    t = np.asarray(t, dtype=float)
    if not np.all(np.isfinite(t)):
        raise ValueError(f"`{name}` must be finite, got {t}.")
    if np.any(t <= 0):
        raise ValueError(f"`{name}` must be > 0 (the schedules are defined for t > 0), got {t}.")
    if t_max is not None and np.any(t >= t_max):
        raise ValueError(f"`{name}` must be < {t_max} for this schedule, got {t}.")


def check_positive_int(n, name: str, *, minimum: int = 1) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {n!r}.")
    return int(n)


def check_key(key, name: str = "key") -> None:
    if key is None:
        raise ValueError(f"`{name}` is required: pass a PRNG key, e.g. jax.random.key(0).")
    if is_concrete(key):
        dt = getattr(key, "dtype", None)
        ok = dt is not None and (
            jnp.issubdtype(dt, jax.dtypes.prng_key)
            or (dt == jnp.uint32 and jnp.shape(key)[-1:] == (2,))
        )
        if not ok:
            raise ValueError(
                f"`{name}` must be a JAX PRNG key (jax.random.key or jax.random.PRNGKey), got {key!r}."
            )
