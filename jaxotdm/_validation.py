"""The one input-validation module of the package: every public entry point checks its arguments here.

Policy (the same everywhere, so the same input passes or fails every entry point alike):

* Checks run eagerly, before any work, and raise a ``ValueError`` whose message names the argument as
  the user typed it (``name``) and what was expected. Wrong *types* (a string where a number is due, a
  float where an integer is due) raise :class:`ArgumentTypeError`, which is both a ``TypeError`` and a
  ``ValueError`` (so ``except ValueError`` keeps working).
* Value checks run only on concrete inputs. Inside a user's ``jit`` an argument is a tracer and only
  static (shape, dtype) checks apply; jitted code reports failures through result statuses instead
  (:mod:`jaxotdm._status`). Concrete arrays captured by a trace are still checked, eagerly
  (``jax.ensure_compile_time_eval`` for device arrays, NumPy otherwise).
* One tolerance policy, by dtype: probability vectors (weights, class probabilities) must sum to one
  within :func:`sum_tolerance` (``32 sqrt(n)`` units of rounding of the coarser of the input's dtype and
  the working dtype); covariances must be symmetric and positive semi-definite within
  :func:`matrix_tolerance` (``sqrt(eps)`` relative to the largest entry). Nothing is silently clipped
  or renormalised: what passes is used as given.
* Times must be finite, strictly positive, below the schedule's ``t_max`` and *representable*: a time
  that rounds to a subnormal (or zero) in the working dtype, or at which the schedule's ``sigma(t)^2``
  underflows, is rejected (``t = 1e-40`` in float32 would otherwise pass ``t > 0`` and give NaN).
* Device arrays of the right dtype are never copied (:func:`as_float_array` returns them as they are).
"""

from __future__ import annotations

import math
import numbers

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "ArgumentTypeError",
    "is_concrete",
    "as_float_array",
    "check_finite",
    "check_ndim",
    "points",
    "np_real",
    "np_points",
    "sum_tolerance",
    "matrix_tolerance",
    "weights",
    "np_weights",
    "probabilities",
    "covariance",
    "check_time",
    "min_time",
    "checked_time",
    "domain_time",
    "real_scalar",
    "positive_scalar",
    "nonnegative_scalar",
    "fraction",
    "ema_decay",
    "check_positive_int",
    "check_int",
    "check_bool",
    "check_key",
    "check_choice",
]


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong type (a ``TypeError`` that is also a ``ValueError``)."""


# ----------------------------------------------------------------------------------------- helpers
def is_concrete(x) -> bool:
    """True when ``x`` holds concrete values (not a tracer), including every leaf of a container."""
    if isinstance(x, jax.core.Tracer):
        return False
    if isinstance(x, (list, tuple)):
        return all(is_concrete(v) for v in x)
    return True


def _show(x, limit: int = 60) -> str:
    """A short, readable rendering of what the user passed."""
    try:
        if isinstance(x, (jax.Array, np.ndarray)) and np.ndim(x) > 0:
            a = np.asarray(x)
            text = np.array2string(a.ravel()[:6], precision=4, separator=", ")
            return f"array of shape {a.shape} {text[:-1]}{', ...]' if a.size > 6 else ']'}"
        text = repr(x.item() if isinstance(x, (jax.Array, np.ndarray, np.generic)) else x)
    except Exception:  # pragma: no cover - exotic reprs
        text = f"<{type(x).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _dtype_name(dtype) -> str:
    return np.dtype(dtype).name


def _default_float():
    return jnp.result_type(float)


def _eps(dtype) -> float:
    return float(np.finfo(np.dtype(dtype)).eps)


# ----------------------------------------------------------------------------------------- arrays
def as_float_array(x, name: str, *, dtype=None) -> jax.Array:
    """``x`` as a floating JAX array (integers become the default float), never copying a JAX array
    that already has the requested floating dtype.

    Raises:
        ArgumentTypeError: ``x`` is not numeric (strings, objects, booleans, complex numbers, None).
    """
    if isinstance(x, jax.core.Tracer):
        if not jnp.issubdtype(x.dtype, jnp.floating):
            raise ArgumentTypeError(f"`{name}` must have a floating dtype, got {x.dtype}.")
        return x if dtype is None or x.dtype == dtype else x.astype(dtype)
    if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jnp.floating):
        if dtype is None or x.dtype == jnp.dtype(dtype):
            return x  # no copy: the caller's buffer is used as is
        return x.astype(dtype)
    arr = np_real(x, name)
    if dtype is None:  # floating inputs keep their dtype, canonicalised (float64 -> float32 without x64)
        return jnp.asarray(arr) if np.issubdtype(arr.dtype, np.floating) else jnp.asarray(arr, dtype=float)
    return jnp.asarray(arr, dtype=dtype)


def _all_finite(x) -> tuple[bool, int]:
    """(all finite, number of non-finite entries) of a concrete array, without a host copy of device data."""
    if isinstance(x, jax.Array):
        with jax.ensure_compile_time_eval():
            bad = int(jnp.sum(~jnp.isfinite(x)))
        return bad == 0, bad
    arr = np.asarray(x)
    finite = np.isfinite(arr)
    return bool(finite.all()), int(finite.size - finite.sum())


def check_finite(x, name: str) -> None:
    """Raises if a concrete ``x`` has NaN or inf entries."""
    if not is_concrete(x):
        return
    ok, bad = _all_finite(x)
    if not ok:
        raise ValueError(f"`{name}` has {bad} non-finite (NaN or inf) entries.")


def check_ndim(x, ndim: int, name: str, what: str) -> None:
    if jnp.ndim(x) != ndim:
        raise ValueError(f"`{name}` must have shape {what}, got shape {tuple(jnp.shape(x))}.")


def points(x, name: str, *, dim: int | None = None, dtype=None, min_points: int = 1) -> jax.Array:
    """A finite ``(n, d)`` point cloud with ``n >= min_points`` and ``d >= 1`` (``d == dim`` if given)."""
    x = as_float_array(x, name, dtype=dtype)
    check_ndim(x, 2, name, "(n, d)" if dim is None else f"(n, {dim})")
    n, d = x.shape
    if n < min_points or d < 1:
        raise ValueError(f"`{name}` must have at least {min_points} point(s) and one dimension, got shape {x.shape}.")
    if dim is not None and d != dim:
        raise ValueError(f"`{name}` must have shape (n, {dim}), got shape {x.shape}.")
    check_finite(x, name)
    return x


def np_real(x, name: str) -> np.ndarray:
    """``x`` as a real (integer or floating) NumPy array, types checked: None, strings, booleans, objects
    and complex numbers raise :class:`ArgumentTypeError`."""
    if x is None or isinstance(x, (str, bytes)):
        raise ArgumentTypeError(f"`{name}` must be a numeric array, got {_show(x)}.")
    try:
        arr = np.asarray(x)
    except Exception as exc:
        raise ArgumentTypeError(f"`{name}` could not be converted to a numeric array: {exc}") from exc
    if arr.dtype == object or arr.dtype == bool or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise ArgumentTypeError(f"`{name}` must be a real numeric array, got dtype {arr.dtype}.")
    return arr


def np_points(x, name: str, *, dim: int | None = None) -> np.ndarray:
    """:func:`points` for host-side code: a float64 NumPy ``(n, d)`` array (no float32 round trip)."""
    arr = np_real(x, name)
    if arr.ndim != 2:
        raise ValueError(f"`{name}` must have shape (n, d), got shape {arr.shape}.")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"`{name}` must have at least one point and one dimension, got shape {arr.shape}.")
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(f"`{name}` must have shape (n, {dim}), got shape {arr.shape}.")
    check_finite(arr, name)
    return arr.astype(np.float64)


# ----------------------------------------------------------------------------- tolerance policy
def sum_tolerance(dtype, n: int) -> float:
    """How far from one the sum of ``n`` probabilities in ``dtype`` may be: ``32 sqrt(n) eps(dtype)``.

    (Normalising in ``dtype`` with pairwise summation leaves errors of order ``sqrt(n) eps``.)
    """
    return 32.0 * math.sqrt(max(int(n), 1)) * _eps(dtype)


def matrix_tolerance(dtype) -> float:
    """Relative tolerance for symmetry and positive semi-definiteness: ``sqrt(eps(dtype))``."""
    return math.sqrt(_eps(dtype))


def _coarser(*dtypes):
    """The floating dtype with the larger machine epsilon (the one whose rounding decides tolerances)."""
    fl = [np.dtype(d) for d in dtypes if d is not None and np.issubdtype(np.dtype(d), np.floating)]
    return max(fl, key=lambda d: np.finfo(d).eps) if fl else np.dtype(np.float64)


def _input_dtype(x):
    dt = getattr(x, "dtype", None)
    return dt if dt is not None and np.issubdtype(np.dtype(dt), np.floating) else None


def _check_simplex(arr: np.ndarray, name: str, tol: float, *, positive: bool, axis) -> None:
    if np.any(arr < 0):
        raise ValueError(f"`{name}` must be non-negative; the smallest entry is {arr.min():.4g}.")
    if positive and np.any(arr == 0):
        raise ValueError(f"`{name}` has {int(np.sum(arr == 0))} zero entries; every entry must be > 0.")
    total = np.sum(arr, axis=axis, dtype=np.float64)
    worst = float(np.max(np.abs(total - 1.0)))
    if not worst <= tol:
        shown = float(np.ravel(total)[int(np.argmax(np.abs(np.ravel(total) - 1.0)))])
        raise ValueError(
            f"`{name}` must sum to one (within {tol:.2g} for this dtype), got a sum of {shown:.10g}; "
            "normalise them first."
        )


def weights(w, n: int, name: str, *, dtype=None, positive: bool = False) -> jax.Array:
    """Probability weights ``(n,)``: finite, non-negative (``> 0`` if ``positive``), summing to one within
    :func:`sum_tolerance`; ``None`` gives uniform ``1/n``. Returned in ``dtype`` (default float)."""
    dtype = _default_float() if dtype is None else dtype
    if w is None:
        return jnp.full((n,), 1.0 / n, dtype=dtype)
    in_dtype = _input_dtype(w)
    w = as_float_array(w, name, dtype=dtype)
    if w.shape != (n,):
        raise ValueError(f"`{name}` must have shape ({n},), got shape {tuple(w.shape)}.")
    if is_concrete(w):
        check_finite(w, name)
        _check_simplex(np.asarray(w, np.float64), name, sum_tolerance(_coarser(in_dtype, dtype), n),
                       positive=positive, axis=None)
    return w


def np_weights(w, n: int, name: str, *, positive: bool = False) -> np.ndarray | None:
    """:func:`weights` for host-side code: float64 NumPy, ``None`` stays ``None`` (uniform)."""
    if w is None:
        return None
    arr = np_real(w, name)
    if arr.shape != (n,):
        raise ValueError(f"`{name}` must have shape ({n},), got shape {arr.shape}.")
    check_finite(arr, name)
    _check_simplex(arr.astype(np.float64), name, sum_tolerance(_coarser(_input_dtype(arr)), n), positive=positive,
                   axis=None)
    return arr.astype(np.float64)


def probabilities(p, name: str, *, axis: int = -1, dtype=None) -> jax.Array:
    """An array of probability vectors along ``axis`` (finite, non-negative, each summing to one within
    :func:`sum_tolerance`)."""
    in_dtype = _input_dtype(p)
    p = as_float_array(p, name, dtype=dtype)
    if p.ndim < 1 or p.shape[axis] < 1:
        raise ValueError(f"`{name}` must have at least one entry along axis {axis}, got shape {tuple(p.shape)}.")
    if is_concrete(p):
        check_finite(p, name)
        _check_simplex(np.asarray(p, np.float64), name, sum_tolerance(_coarser(in_dtype, p.dtype), p.shape[axis]),
                       positive=False, axis=axis)
    return p


def covariance(c, name: str, dim: int, *, dtype=None, definite: bool = False) -> jax.Array:
    """A ``(dim, dim)`` covariance: finite, symmetric and positive semi-definite (definite if
    ``definite``) within :func:`matrix_tolerance` relative to its largest entry."""
    c = as_float_array(c, name, dtype=dtype)
    if c.shape != (dim, dim):
        raise ValueError(f"`{name}` must have shape ({dim}, {dim}), got shape {tuple(c.shape)}.")
    if not is_concrete(c):
        return c
    check_finite(c, name)
    a = np.asarray(c, np.float64)
    scale = float(np.abs(a).max()) if a.size else 0.0
    tol = matrix_tolerance(c.dtype) * max(scale, np.finfo(np.float64).tiny)
    asym = float(np.abs(a - a.T).max()) if a.size else 0.0
    if asym > tol:
        raise ValueError(f"`{name}` must be symmetric; |C - C^T| reaches {asym:.3g} (largest entry {scale:.3g}).")
    lo = float(np.linalg.eigvalsh(0.5 * (a + a.T)).min()) if a.size else 0.0
    if lo < -tol:
        raise ValueError(f"`{name}` must be positive semi-definite; its smallest eigenvalue is {lo:.4g}.")
    if definite and not lo > dim * _eps(c.dtype) * scale:
        raise ValueError(
            f"`{name}` must be positive definite (numerically non-singular); its smallest eigenvalue is {lo:.4g}."
        )
    return c


# ----------------------------------------------------------------------------------------- times
def min_time(dtype=None) -> float:
    """The smallest time accepted in ``dtype``: its smallest normal number (subnormals flush to zero)."""
    return float(np.finfo(np.dtype(_default_float() if dtype is None else dtype)).tiny)


def check_time(t, name: str, *, t_max: float | None = None, dtype=None, schedule=None) -> None:
    """Times must be finite, strictly positive, representable in ``dtype`` (default: the default float),
    below ``t_max`` (default: ``schedule.t_max``) and, with a ``schedule``, give a positive finite
    ``sigma(t)^2`` and a finite ``log alpha(t)`` in ``dtype``."""
    if not is_concrete(t):
        return
    if t is None or isinstance(t, (str, bytes, bool)):
        raise ArgumentTypeError(f"`{name}` must be a number, got {_show(t)}.")
    try:
        tn = np.asarray(t, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ArgumentTypeError(f"`{name}` must be a number or an array of numbers, got {_show(t)}.") from exc
    if not np.all(np.isfinite(tn)):
        raise ValueError(f"`{name}` must be finite, got {_show(t)}.")
    if np.any(tn <= 0):
        raise ValueError(f"`{name}` must be > 0 (the schedules are defined for t > 0), got {_show(t)}.")
    if t_max is None and schedule is not None:
        t_max = schedule.t_max
    if t_max is not None and np.any(tn >= t_max):
        raise ValueError(f"`{name}` must be < {t_max} for this schedule, got {_show(t)}.")
    dtype = np.dtype(_default_float() if dtype is None else dtype)
    tiny, big = float(np.finfo(dtype).tiny), float(np.finfo(dtype).max)
    if np.any(tn < tiny):
        raise ValueError(
            f"`{name}` = {float(tn.min()):.3g} is below the smallest normal {dtype.name} number ({tiny:.3g}); it "
            f"would round to zero. Use a larger time (or float64)."
        )
    if np.any(tn > big):
        raise ValueError(f"`{name}` = {float(tn.max()):.4g} overflows {dtype.name} (largest {big:.4g}).")
    if schedule is None:
        return
    try:
        with jax.ensure_compile_time_eval():
            tc = jnp.asarray(tn, dtype)
            s2, la = schedule.sigma2(tc), schedule.log_alpha(tc)
            if isinstance(s2, jax.core.Tracer) or isinstance(la, jax.core.Tracer):
                return  # traced schedule parameters: nothing to evaluate eagerly
            s2, la = np.asarray(s2, np.float64), np.asarray(la, np.float64)
    except Exception:  # pragma: no cover - a user schedule that cannot run eagerly
        return
    if not (np.all(np.isfinite(s2)) and np.all(s2 >= tiny) and np.all(np.isfinite(la))):
        bad = float(np.ravel(tn)[int(np.argmin(np.where(np.isfinite(s2), s2, -1.0).ravel()))]) if s2.size else float(tn)
        raise ValueError(
            f"`{name}` = {bad:.4g} is outside what {type(schedule).__name__} can represent in {dtype.name}: "
            f"sigma(t)^2 or alpha(t) under- or overflows there. Use a time further inside the schedule's "
            "domain (or float64)."
        )


def domain_time(t, name: str, *, t_max: float | None = None) -> None:
    """Times at which a schedule's coefficients are evaluated: real, not NaN, in the closed domain
    ``[0, t_max]`` (the ends are the coefficients' limits: ``alpha(0) = 1``, ``sigma(0) = 0``). Concrete
    inputs only (a traced time passes: the entry points that take times check theirs)."""
    if not is_concrete(t):
        return
    if t is None or isinstance(t, (str, bytes, bool)):
        raise ArgumentTypeError(f"`{name}` must be a number or an array of numbers, got {_show(t)}.")
    if isinstance(t, jax.Array):
        with jax.ensure_compile_time_eval():
            bad_type = not (jnp.issubdtype(t.dtype, jnp.floating) or jnp.issubdtype(t.dtype, jnp.integer))
            if bad_type:
                raise ArgumentTypeError(f"`{name}` must be real, got dtype {t.dtype}.")
            lo, hi, nan = (float(jnp.min(t)), float(jnp.max(t)), bool(jnp.any(jnp.isnan(t)))) if t.size else \
                (0.0, 0.0, False)
    else:
        arr = np_real(t, name)
        if arr.size == 0:
            return
        a = arr.astype(np.float64)
        lo, hi, nan = float(np.nanmin(a)) if not np.all(np.isnan(a)) else 0.0, \
            float(np.nanmax(a)) if not np.all(np.isnan(a)) else 0.0, bool(np.any(np.isnan(a)))
    if nan:
        raise ValueError(f"`{name}` must not be NaN, got {_show(t)}.")
    if lo < 0:
        raise ValueError(f"`{name}` must be >= 0 (the schedules start at t = 0), got {_show(t)}.")
    if t_max is not None and hi > t_max:
        raise ValueError(f"`{name}` must be <= {t_max} (this schedule's t_max), got {_show(t)}.")


def checked_time(t, name: str, *, t_max: float | None = None, dtype=None, schedule=None):
    """:func:`check_time` for concrete times; a traced time (inside a user's ``jit``) gets the cheap part of
    the same check at run time: ``eqx.error_if`` on ``t`` finite, ``> 0`` and ``< t_max`` (an
    ``EqxRuntimeError`` naming ``name`` when it fails; representability in ``dtype`` is checked eagerly only).
    Returns ``t`` (the traced one threaded through the check, so it cannot be optimised away)."""
    if is_concrete(t):
        check_time(t, name, t_max=t_max, dtype=dtype, schedule=schedule)
        return t
    import equinox as eqx

    if t_max is None and schedule is not None:
        t_max = schedule.t_max
    t = jnp.asarray(t)
    if not jnp.issubdtype(t.dtype, jnp.floating):
        t = t.astype(_default_float())
    bad = ~jnp.isfinite(t) | (t <= 0)
    if t_max is not None and math.isfinite(t_max):
        bad = bad | (t >= t_max)
    limit = "" if t_max is None or not math.isfinite(t_max) else f" and < {t_max}"
    return eqx.error_if(t, bad, f"`{name}` must be finite, > 0{limit} (checked under jit).")


# ----------------------------------------------------------------------------------------- scalars
def _scalar_value(x, name: str):
    """A concrete real scalar as a Python float (or the tracer unchanged); types checked."""
    if isinstance(x, jax.core.Tracer):
        if jnp.ndim(x) != 0:
            raise ValueError(f"`{name}` must be a scalar, got shape {jnp.shape(x)}.")
        return x
    if isinstance(x, (bool, np.bool_)) or x is None or isinstance(x, (str, bytes)):
        raise ArgumentTypeError(f"`{name}` must be a real number, got {_show(x)}.")
    if isinstance(x, numbers.Real):
        return float(x)
    if isinstance(x, (jax.Array, np.ndarray, np.generic)):
        if np.ndim(x) != 0:
            raise ValueError(f"`{name}` must be a scalar, got shape {np.shape(x)}.")
        dt = np.dtype(x.dtype)
        if not (np.issubdtype(dt, np.floating) or np.issubdtype(dt, np.integer)) or dt == np.dtype(bool):
            raise ArgumentTypeError(f"`{name}` must be a real number, got dtype {dt}.")
        return float(np.asarray(x))
    raise ArgumentTypeError(f"`{name}` must be a real number, got {_show(x)}.")


def real_scalar(x, name: str, *, finite: bool = True):
    """A real scalar (finite unless ``finite=False``); Python float when concrete."""
    v = _scalar_value(x, name)
    if isinstance(v, float) and (math.isnan(v) or (finite and math.isinf(v))):
        raise ValueError(f"`{name}` must be a finite number, got {_show(x)}.")
    return v


def positive_scalar(x, name: str, *, finite: bool = True):
    """A real scalar ``> 0`` (and finite unless ``finite=False``)."""
    v = real_scalar(x, name, finite=finite)
    if isinstance(v, float) and not v > 0:
        raise ValueError(f"`{name}` must be > 0, got {_show(x)}.")
    return v


def nonnegative_scalar(x, name: str, *, finite: bool = True):
    """A real scalar ``>= 0`` (and finite unless ``finite=False``)."""
    v = real_scalar(x, name, finite=finite)
    if isinstance(v, float) and not v >= 0:
        raise ValueError(f"`{name}` must be >= 0, got {_show(x)}.")
    return v


def fraction(x, name: str, *, low_open: bool = True, high_open: bool = True):
    """A real scalar in ``(0, 1)`` (ends closed where ``low_open`` / ``high_open`` is False)."""
    v = real_scalar(x, name)
    if isinstance(v, float):
        lo_ok = v > 0 if low_open else v >= 0
        hi_ok = v < 1 if high_open else v <= 1
        if not (lo_ok and hi_ok):
            interval = ("(" if low_open else "[") + "0, 1" + (")" if high_open else "]")
            raise ValueError(f"`{name}` must be in {interval}, got {_show(x)}.")
    return v


def ema_decay(x, name: str = "ema_decay") -> float:
    """An exponential-moving-average decay in ``[0, 1)`` (1 would freeze the average; above 1 it diverges)."""
    v = real_scalar(x, name)
    if isinstance(v, float) and not 0.0 <= v < 1.0:
        raise ValueError(f"`{name}` must be in [0, 1), got {_show(x)}.")
    return v


def check_int(n, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """A Python or NumPy integer (not a bool, not a float) within ``[minimum, maximum]``."""
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (numbers.Integral, np.integer)):
        if isinstance(n, (jax.Array, np.ndarray)) and np.ndim(n) == 0 and np.issubdtype(n.dtype, np.integer) \
                and is_concrete(n):
            n = int(n)
        else:
            raise ArgumentTypeError(f"`{name}` must be an integer, got {_show(n)}.")
    n = int(n)
    if minimum is not None and n < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {n}.")
    if maximum is not None and n > maximum:
        raise ValueError(f"`{name}` must be an integer <= {maximum}, got {n}.")
    return n


def check_positive_int(n, name: str, *, minimum: int = 1) -> int:
    """An integer ``>= minimum`` (default 1)."""
    return check_int(n, name, minimum=minimum)


def check_bool(b, name: str) -> bool:
    if not isinstance(b, (bool, np.bool_)):
        raise ArgumentTypeError(f"`{name}` must be True or False, got {_show(b)}.")
    return bool(b)


def check_choice(value, name: str, choices) -> None:
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {sorted(map(str, choices))}, got {value!r}.")


def check_key(key, name: str = "key") -> None:
    if key is None:
        raise ValueError(f"`{name}` is required: pass a PRNG key, e.g. jax.random.key(0).")
    dt = getattr(key, "dtype", None)
    ok = dt is not None and (
        jnp.issubdtype(dt, jax.dtypes.prng_key) or (dt == jnp.uint32 and jnp.shape(key)[-1:] == (2,))
    )
    if not ok:
        raise ArgumentTypeError(
            f"`{name}` must be a JAX PRNG key (jax.random.key or jax.random.PRNGKey), got {_show(key)}."
        )
    if jnp.issubdtype(dt, jax.dtypes.prng_key) and jnp.ndim(key) != 0:
        raise ValueError(f"`{name}` must be a single PRNG key, got an array of keys of shape {jnp.shape(key)}.")
    if dt == jnp.uint32 and jnp.ndim(key) != 1:
        raise ValueError(f"`{name}` must be a single PRNG key of shape (2,), got shape {jnp.shape(key)}.")
