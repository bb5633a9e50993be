"""The semi-discrete problem: reduced, centred targets, their weights, the source sampler, streaming settings.

Also the input validation shared by the entry points (targets, weights, heights, sources) and the
sample-size arithmetic every solver uses (:func:`zscore`, :func:`required_samples`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxotdm import _streaming as S
from jaxotdm import _validation as V
from jaxotdm._pytree import pytree_dataclass, static_field
from jaxotdm._types import Array, Float
from jaxotdm.measures import GaussianMeasure
from jaxotdm.sharding import PointSharding

DEFAULT_BATCH = 4096


@pytree_dataclass
class SemidiscreteProblem:
    """The semi-discrete problem as the solvers see it (a PyTree).

    Attributes:
        points: ``(n, r)`` targets, centred on their weighted mean and (Gaussian source) expressed in an
            orthonormal basis of their span. Heights are invariant under both changes.
        weights: ``(n,)`` target weights ``nu`` (positive, summing to one).
        source: ``None`` for the standard Gaussian in ``r`` dimensions, else a callable
            ``source(key, num) -> (num, r)``.
        batch_size: source samples per batch (each batch is regenerated from ``fold_in(key, b)``).
        chunk_size: targets per streamed chunk (``None``: the streaming layer's default for the backend).
        antithetic: standard Gaussian source only: each batch is ``[z, -z]`` for ``batch_size / 2`` draws
            ``z`` (unbiased, half the random numbers; the solvers use it, certificates do not, since the
            cell around the origin can hold both ``z`` and ``-z`` and its variance is then not ``m(1-m)/N``).
        sharding: optional :class:`~jaxotdm.PointSharding`: the targets axis is split across its mesh axis.
        query_block: source samples scored at once inside a batch (``None``: the layer's default).
        weights_min: ``min(weights)`` known on the host (``None``: read from concrete ``weights``); the solvers
            plan their sample sizes from it, so it lets them run with traced weights (under ``jax.jit``).
    """

    points: Float[Array, "n r"]
    weights: Float[Array, " n"]
    source: Callable | None = static_field(None)
    batch_size: int = static_field(DEFAULT_BATCH)
    chunk_size: int | None = static_field(None)
    antithetic: bool = static_field(False)
    sharding: PointSharding | None = static_field(None)
    query_block: int | None = static_field(None)
    weights_min: float | None = static_field(None)

    def __post_init__(self):
        # checked at construction only (PyTree unflattening does not call ``__init__``); traced values pass
        if self.points.ndim != 2:
            raise ValueError(f"`points` must have shape (n, r), got shape {tuple(self.points.shape)}.")
        n = self.points.shape[0]
        if self.weights.shape != (n,):
            raise ValueError(f"`weights` must have shape ({n},), got shape {tuple(self.weights.shape)}.")
        if V.is_concrete(self.weights) and getattr(self.weights, "is_fully_addressable", True):
            V.np_weights(self.weights, n, "weights", positive=True)
        V.check_int(self.batch_size, "batch_size", minimum=1)
        if self.chunk_size is not None:
            V.check_int(self.chunk_size, "chunk_size", minimum=1)
        if self.query_block is not None:
            V.check_int(self.query_block, "query_block", minimum=1)

    def min_weight(self, who: str) -> float:
        """``min(weights)`` on the host (:attr:`weights_min`, else the concrete weights); ``who`` names the solver
        in the error raised for traced weights without :attr:`weights_min`."""
        if self.weights_min is not None:
            return float(self.weights_min)
        if not V.is_concrete(self.weights):
            raise ValueError(f"{who} plans its sample sizes from min(`weights`) on the host: under jax.jit, pass "
                             "weights=None (uniform) or concrete weights (closed over, not traced).")
        return float(np.min(np.asarray(self.weights)))

    @property
    def num_targets(self) -> int:
        return self.points.shape[0]

    @property
    def streaming(self) -> S.Streaming:
        return S.Streaming(self.chunk_size, self.query_block, self.sharding)

    def sample(self, key, num: int) -> Array:
        """``num`` source samples from ``key`` (antithetic pairs when :attr:`antithetic`)."""
        if self.source is None:
            r = self.points.shape[1]
            if self.antithetic and num % 2 == 0:
                z = jax.random.normal(key, (num // 2, r), self.points.dtype)
                return jnp.concatenate([z, -z], axis=0)
            return jax.random.normal(key, (num, r), self.points.dtype)
        return self.source(key, num).astype(self.points.dtype)

    def rows(self, key, b, q) -> Array:
        """Rows ``q`` (an int array) of batch ``b`` of the sample stream of ``key``, each drawn from its own key
        ``fold_in(fold_in(key, b), q)``, so any subset of a batch can be regenerated at the price of that subset.
        With :attr:`antithetic` (standard Gaussian, even batch size), row ``q + B/2`` is minus row ``q``."""
        kb = jax.random.fold_in(key, b)
        dtype = self.points.dtype
        if self.source is None:
            r = self.points.shape[1]
            half = self.batch_size // 2
            if self.antithetic and self.batch_size % 2 == 0:
                sign = jnp.where(q < half, 1.0, -1.0).astype(dtype)
                q = jnp.where(q < half, q, q - half)
            else:
                sign = jnp.ones(q.shape, dtype)
            z = jax.vmap(lambda i: jax.random.normal(jax.random.fold_in(kb, i), (r,), dtype))(q)
            return z * sign[:, None]
        return jax.vmap(lambda i: self.source(jax.random.fold_in(kb, i), 1)[0].astype(dtype))(q)

    def batch(self, key, b) -> Array:
        """Batch ``b`` of the sample stream of ``key`` (the same ``(key, b)`` always gives the same batch)."""
        return self.rows(key, b, jnp.arange(self.batch_size))

    def source_scale(self) -> Array:
        """RMS norm of a centred source sample (``sqrt(r)`` for the standard Gaussian)."""
        if self.source is None:
            return jnp.sqrt(jnp.asarray(self.points.shape[1], self.points.dtype))
        z = self.sample(jax.random.key(12345), 4096)
        return jnp.sqrt(jnp.mean(jnp.sum((z - z.mean(0)) ** 2, axis=-1)))

    def voronoi_init(self) -> Array:
        """Heights ``-|y_i|^2 / (2 s)`` whose cells are the Voronoi cells of the targets seen at ``s z``,
        with ``s`` matching the source spread to the targets' spread; every cell starts non-empty."""
        y2 = jnp.sum(self.points**2, axis=-1)
        s = jnp.sqrt(jnp.sum(self.weights * y2)) / self.source_scale()
        h = -y2 / (2.0 * jnp.maximum(s, 1e-30))
        return h - h.mean()


def check_settings(obj, *, ints=None, positive=(), nonnegative=(), fractions=(), bools=()) -> None:
    """Eager validation of a solver's settings (its ``__post_init__``): ``ints`` maps a field to its minimum
    (``None`` values allowed for fields listed as ``name?``), ``positive``/``nonnegative`` are finite real
    scalars, ``fractions`` lie in ``[0, 1)``, ``bools`` are True or False. Errors name the field."""
    for name, low in (ints or {}).items():
        optional = name.endswith("?")
        name = name.rstrip("?")
        v = getattr(obj, name)
        if not (optional and v is None):
            V.check_int(v, name, minimum=low)
    for name in positive:
        V.positive_scalar(getattr(obj, name), name)
    for name in nonnegative:
        V.nonnegative_scalar(getattr(obj, name), name)
    for name in fractions:
        V.fraction(getattr(obj, name), name, low_open=False)
    for name in bools:
        V.check_bool(getattr(obj, name), name)


def zscore(n: int) -> float:
    """A typical maximum of ``n`` standard normal deviations, ``sqrt(2 log 2n)``."""
    return math.sqrt(2.0 * math.log(2.0 * n))


def required_samples(weights_min: float, n: int, tol: float, noise_fraction: float) -> int:
    """Samples for which the Monte Carlo noise of the worst cell's relative mass is ``noise_fraction*tol``
    at the ``sqrt(2 log 2n)`` level: ``(z / (noise_fraction tol))^2 / min nu``."""
    return int(math.ceil((zscore(n) / (noise_fraction * tol)) ** 2 / weights_min))


def certificate_unit(weights_min: float, tol: float) -> int:
    """``16 / (tol^2 min nu)`` samples (``16 n / tol^2`` for uniform weights): the size of a certificate
    whose standard error at the smallest cell is ``tol / 4``; the unit of cost of a solve."""
    return int(math.ceil(16.0 / (tol * tol * weights_min)))


# ------------------------------------------------------------------------------------------------------
# Validation and construction.
# ------------------------------------------------------------------------------------------------------


def check_weights_type(weights, *, allow_none: bool = True) -> None:
    """Non-numeric ``weights`` (a string such as ``"uniform"``, a dict, booleans, objects; ``None`` unless
    ``allow_none``) raise a ``TypeError`` naming ``weights``, before any work. Values are checked elsewhere."""
    hint = "an (n,) array of positive numbers summing to one" + (" (None: uniform)" if allow_none else "")
    if weights is None:
        if allow_none:
            return
        raise V.ArgumentTypeError(f"`weights` must be {hint}, got None.")
    if isinstance(weights, jax.Array):  # tracers included; their dtype is checked with the values
        return
    try:
        V.np_real(weights, "weights")
    except V.ArgumentTypeError as exc:
        raise V.ArgumentTypeError(f"`weights` must be {hint}, got {type(weights).__name__} {weights!r:.60}.") from exc


def check_targets(targets, weights):
    """``(x, w)``: finite, distinct ``(n, d)`` targets and positive weights summing to one."""
    check_weights_type(weights)
    x = V.as_float_array(targets, "targets")
    V.check_ndim(x, 2, "targets", "(n, d)")
    n, d = x.shape
    if n < 1 or d < 1:
        raise ValueError(f"`targets` must have at least one point and one dimension, got {x.shape}.")
    V.check_finite(x, "targets")
    if V.is_concrete(x):
        _check_distinct(np.asarray(x, dtype=np.float64))
    if weights is not None and V.is_concrete(weights):
        wn = np.asarray(weights, dtype=np.float64)
        if wn.shape == (n,) and np.all(np.isfinite(wn)) and np.all(wn >= 0) and np.any(wn == 0):
            raise ValueError(
                f"`weights` has {int(np.sum(wn == 0))} zero entries: empty cells requested. Drop those targets."
            )
    w = V.weights(weights, n, "weights", dtype=x.dtype, positive=True)
    return x, w


def _check_distinct(xn: np.ndarray) -> None:
    # duplicates: sort by a random projection, then compare exact rows among equal projections
    proj = xn @ np.random.default_rng(0).standard_normal(xn.shape[1])
    order = np.argsort(proj, kind="stable")
    for k in np.nonzero(np.diff(proj[order]) == 0)[0]:
        a, b = order[k], order[k + 1]
        if np.array_equal(xn[a], xn[b]):
            raise ValueError(
                f"`targets` has duplicate points (rows {min(a, b)} and {max(a, b)}); merge them and add "
                "their weights (semi-discrete OT needs distinct targets)."
            )


def check_heights(heights, n: int, dtype, name: str = "heights") -> Array:
    """``(n,)`` heights; concrete ones must be finite (traced ones are checked by their users)."""
    h = V.as_float_array(heights, name, dtype=dtype)
    if h.shape != (n,):
        raise ValueError(f"`{name}` must have shape ({n},), got {h.shape}.")
    V.check_finite(h, name)
    return h


def check_source(source, d, key):
    """``None`` (standard Gaussian), a GaussianMeasure, or ``sampler(key, num) -> (num, d)``."""
    if source is None:
        return None
    if isinstance(source, GaussianMeasure):
        if source.dim != d:
            raise ValueError(f"`source` has dimension {source.dim} but `targets` have dimension {d}.")
        g = source
        return lambda k, num: g.sample(k, num)
    if not callable(source):
        raise ValueError("`source` must be None (standard Gaussian), a GaussianMeasure or a callable "
                         f"sampler(key, num_samples) -> (num_samples, d); got {type(source).__name__}.")
    try:
        shape = jax.eval_shape(lambda k: source(k, 4), key)
    except Exception as exc:
        raise ValueError(f"`source` could not be called as sampler(key, num_samples): {exc}") from exc
    if tuple(shape.shape) != (4, d):
        raise ValueError(
            f"`source` sampler returns shape {tuple(shape.shape)} for 4 samples; the targets' dimension "
            f"requires (4, {d})."
        )
    return source


def make_problem(x, w, source, batch_size, chunk_size, sharding=None, query_block=None,
                 weights_min=None) -> SemidiscreteProblem:
    """The centred (and, for the Gaussian source with ``d > n``, span-reduced) problem."""
    c = w @ x
    xc = x - c
    n, d = x.shape
    if source is None and d > n:
        # <z, xc_i> = <Q^T z, R[:, i]> with xc^T = Q R; Q^T z ~ N(0, I_n) exactly
        _, r = jnp.linalg.qr(xc.T)
        pts = r.T
    else:
        pts = xc
    return SemidiscreteProblem(pts, w, source, batch_size, chunk_size, sharding=sharding, query_block=query_block,
                               weights_min=weights_min)
