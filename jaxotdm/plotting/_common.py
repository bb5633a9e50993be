"""Figures and saving, and the argument checks every plotting function shares."""

from __future__ import annotations

import os
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

_TINY = 1e-12  # values drawn on a log axis are shown at least this large (the data are not changed)

def subplots(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float] | None = None, **kwargs: Any):
    """A new `Figure` on the Agg canvas and its axes (no pyplot state).

    Args:
        nrows: rows of axes (>= 1).
        ncols: columns of axes (>= 1).
        figsize: ``(width, height)`` in inches; default ``(4.8 * ncols, 3.6 * nrows)``.
        **kwargs: passed to `matplotlib.figure.Figure.subplots` (e.g. ``sharey=True``).

    Returns:
        ``(fig, ax)``: ``ax`` is one `Axes` for a 1 x 1 grid, else an array of them.

    Examples:
        >>> from jaxotdm.plotting import subplots
        >>> fig, axes = subplots(1, 2)
        >>> len(fig.axes)
        2
    """
    for name, v in (("nrows", nrows), ("ncols", ncols)):
        if not (isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1):
            raise ValueError(f"`{name}` must be an integer >= 1, got {v!r}.")
    if figsize is None:
        figsize = (4.8 * ncols, 3.6 * nrows)
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, squeeze=True, **kwargs)


def save(fig: Figure, path: str | os.PathLike, *, dpi: int = 110) -> Path:
    """Writes ``fig`` to ``path`` (format from the suffix, e.g. ``.png``) and returns the path.

    Args:
        fig: the figure (e.g. ``ax.figure``).
        path: the file to write; its folder must exist.
        dpi: resolution (> 0).

    Returns:
        ``path`` as a `Path`.
    """
    if not isinstance(fig, Figure):
        raise ValueError(f"`fig` must be a matplotlib Figure, got {type(fig).__name__}.")
    if not (isinstance(dpi, (int, float)) and dpi > 0):
        raise ValueError(f"`dpi` must be a positive number, got {dpi!r}.")
    path = Path(path)
    if not path.parent.is_dir():
        raise ValueError(f"`path`: folder {str(path.parent)!r} does not exist.")
    fig.savefig(path, dpi=dpi)
    return path


def _axes(ax: Axes | None, figsize: tuple[float, float] | None = None) -> Axes:
    if ax is None:
        return subplots(figsize=figsize)[1]
    if not isinstance(ax, Axes):
        raise ValueError(f"`ax` must be a matplotlib Axes or None, got {type(ax).__name__}.")
    return ax


def _vector(x: Any, name: str, *, size: int | None = None, finite: bool = False) -> np.ndarray:
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"`{name}` must be an array of numbers: {exc}") from None
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"`{name}` must be a non-empty 1-D array, got shape {a.shape}.")
    if size is not None and a.size != size:
        raise ValueError(f"`{name}` must have length {size} (like the x values), got {a.size}.")
    if finite and not np.all(np.isfinite(a)):
        raise ValueError(f"`{name}` must be finite.")
    return a


def _z_value(level: float) -> float:
    if not (isinstance(level, (int, float)) and 0.0 < level < 1.0):
        raise ValueError(f"`level` must be in (0, 1), got {level!r}.")
    return statistics.NormalDist().inv_cdf(0.5 + level / 2.0)


def _fit_parts(fit: Any, n: int) -> tuple[float, float, np.ndarray]:
    """``(rate, intercept, mask)`` of an ExponentialFit-like object or a ``(rate, intercept)`` pair."""
    if hasattr(fit, "rate") and hasattr(fit, "intercept"):
        rate, intercept = float(fit.rate), float(fit.intercept)
        mask = getattr(fit, "mask", None)
    elif isinstance(fit, Sequence) and len(fit) == 2:
        (rate, intercept), mask = (float(fit[0]), float(fit[1])), None
    else:
        raise ValueError("`fit` must be an ExponentialFit (rate, intercept, mask) or a (rate, intercept) pair.")
    mask = np.ones(n, bool) if mask is None else np.asarray(mask, bool)
    if mask.shape != (n,):
        raise ValueError(f"`fit.mask` must have length {n} (like the x values), got shape {mask.shape}.")
    return rate, intercept, mask


def _check_log(log: bool, name: str) -> None:
    if not isinstance(log, bool):
        raise ValueError(f"`{name}` must be True or False, got {log!r}.")
