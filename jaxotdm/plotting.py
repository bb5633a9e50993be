"""Figures for jaxotdm measurements: convergence curves, prior-error brackets, image grids, Laguerre cells.

Pure matplotlib on the Agg canvas: figures are `matplotlib.figure.Figure` objects made by
[`subplots`][jaxotdm.plotting.subplots] (never `pyplot`), so nothing here touches global state, opens a
window or needs a display, and figures are freed when they go out of scope. Every drawing function takes
an optional `ax` (a `matplotlib.axes.Axes`; a new figure is made when it is `None`) and returns the axes
it drew on (`ax.figure` is the figure); call it again with the same `ax` to overlay several curves.
[`save`][jaxotdm.plotting.save] writes a PNG.

Inputs are plain arrays (numpy or JAX) or jaxotdm result objects:

- a [`ConvergenceResult`][jaxotdm.verify.ConvergenceResult]:
  [`convergence_panels`][jaxotdm.plotting.convergence_panels] (or
  [`convergence_curve`][jaxotdm.plotting.convergence_curve] for any measured curve);
- a sequence of [`PriorErrorResult`][jaxotdm.verify.PriorErrorResult]:
  [`prior_error_brackets`][jaxotdm.plotting.prior_error_brackets];
- a [`SemidiscreteMap`][jaxotdm.ot.SemidiscreteMap]: [`laguerre_cells`][jaxotdm.plotting.laguerre_cells];
- samples: [`image_grid`][jaxotdm.plotting.image_grid] (images),
  [`samples_2d`][jaxotdm.plotting.samples_2d] (points in the plane);
- sampling-table rows: [`quality_vs_nfe`][jaxotdm.plotting.quality_vs_nfe]; training losses:
  [`loss_curve`][jaxotdm.plotting.loss_curve].

Bad input raises a `ValueError` naming the argument before anything is drawn.

Examples:
    >>> import numpy as np
    >>> from jaxotdm import plotting
    >>> s = np.array([1.0, 2.0, 4.0, 8.0])
    >>> ax = plotting.convergence_curve(s, np.exp(-0.5 * s), 0.01 * np.ones(4), label="L2 to the OT map")
    >>> ax.get_yscale()
    'log'
    >>> import tempfile, pathlib
    >>> plotting.save(ax.figure, pathlib.Path(tempfile.mkdtemp()) / "curve.png").suffix
    '.png'
"""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.patches import Circle

__all__ = [
    "subplots",
    "save",
    "convergence_curve",
    "convergence_panels",
    "prior_error_brackets",
    "image_grid",
    "laguerre_cells",
    "samples_2d",
    "quality_vs_nfe",
    "loss_curve",
]

_TINY = 1e-12  # values drawn on a log axis are shown at least this large (the data are not changed)


# --------------------------------------------------------------------------------------------- helpers


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


# ---------------------------------------------------------------------------------------- convergence


def convergence_curve(
    x: Any,
    y: Any,
    se: Any | None = None,
    *,
    label: str | None = None,
    level: float = 0.95,
    fit: Any | None = None,
    ax: Axes | None = None,
    logy: bool = True,
    color: Any | None = None,
    marker: str = "o",
    linestyle: str = "-",
    xlabel: str | None = None,
    ylabel: str | None = None,
    title: str | None = None,
) -> Axes:
    """One measured curve ``y(x)`` with a normal confidence band ``y +- z_level * se`` and an optional fit.

    Args:
        x: the abscissae (e.g. termination times or ``-log-SNR``), shape ``(k,)``.
        y: the measured values, shape ``(k,)`` (NaN entries are left out of the line).
        se: standard errors of ``y``, shape ``(k,)``, >= 0; ``None`` draws no band.
        label: legend label of the curve.
        level: confidence level of the band, in (0, 1); 0.95 draws ``+- 1.96 se``.
        fit: an exponential fit drawn dashed as ``exp(intercept - rate * x)`` over the points it used:
            a [`ExponentialFit`][jaxotdm.verify.ExponentialFit] (its ``mask`` selects the points) or a
            ``(rate, intercept)`` pair (all points). Skipped when its rate is NaN (too few points).
        ax: the axes to draw on; ``None`` makes a new figure.
        logy: logarithmic y axis (values below 1e-12 are drawn at 1e-12).
        color: line colour; default the axes' next colour.
        marker: marker of the measured points.
        linestyle: line style of the measured curve.
        xlabel: x-axis label (kept if ``None``).
        ylabel: y-axis label (kept if ``None``).
        title: axes title (kept if ``None``).

    Returns:
        The axes drawn on.

    Examples:
        >>> import numpy as np
        >>> from jaxotdm.plotting import convergence_curve
        >>> s = np.arange(1.0, 6.0)
        >>> ax = convergence_curve(s, 2 * np.exp(-s), 0.01 * np.ones(5), fit=(1.0, np.log(2.0)))
        >>> len(ax.lines), len(ax.collections)    # curve and fit; the band
        (2, 1)
    """
    xs = _vector(x, "x", finite=True)
    ys = _vector(y, "y", size=xs.size)
    ses = None if se is None else _vector(se, "se", size=xs.size)
    if ses is not None and np.any(ses[np.isfinite(ses)] < 0):
        raise ValueError("`se` must be >= 0.")
    z = _z_value(level)
    _check_log(logy, "logy")
    ax = _axes(ax)
    shown = np.maximum(ys, _TINY) if logy else ys
    (line,) = ax.plot(xs, shown, marker=marker, linestyle=linestyle, ms=3, color=color, label=label)
    if ses is not None:
        lo, hi = ys - z * ses, ys + z * ses
        if logy:
            lo, hi = np.maximum(lo, _TINY), np.maximum(hi, _TINY)
        ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.18, linewidth=0)
    if fit is not None:
        rate, intercept, mask = _fit_parts(fit, xs.size)
        if math.isfinite(rate) and math.isfinite(intercept) and mask.sum() >= 2:
            xf = xs[mask]
            ax.plot(xf, np.exp(intercept - rate * xf), "--", lw=1.0, color=line.get_color(),
                    label=None if label is None else f"{label}: fit, rate {rate:.3g}")
    if logy:
        ax.set_yscale("log")
    ax.set(**{k: v for k, v in (("xlabel", xlabel), ("ylabel", ylabel), ("title", title)) if v is not None})
    ax.grid(alpha=0.3, which="both")
    if label is not None:
        ax.legend(fontsize=7)
    return ax


def convergence_panels(
    result: Any,
    *,
    axes: Sequence[Axes] | None = None,
    label: str | None = None,
    against: str = "log_snr",
    level: float = 0.95,
) -> np.ndarray:
    """The two panels of a convergence measurement: distance to the OT map, and self-convergence.

    Left: ``l2_to_ot`` with its confidence band (and the fitted decay ``fit_to_ot`` when drawn against
    time). Right: ``self_convergence`` (distance to the flow map at the largest termination time; the
    last point, zero by definition, is left out) with its fitted exponential. Call again with the same
    ``axes`` and another ``label`` to compare schedules or datasets.

    Args:
        result: a [`ConvergenceResult`][jaxotdm.verify.ConvergenceResult], or any object with the attributes
            ``termination_times``, ``log_snr``, ``l2_to_ot``, ``l2_to_ot_se``, ``self_convergence``,
            ``self_convergence_se`` and optionally ``fit_log_snr``/``fit_time``/``fit_to_ot``.
        axes: two axes to draw on; ``None`` makes a new 1 x 2 figure.
        label: legend label (e.g. the schedule's name).
        against: ``"log_snr"`` (x = ``-log-SNR`` at the termination time, the scale on which schedules
            compare) or ``"time"`` (x = the termination time).
        level: confidence level of the bands, in (0, 1).

    Returns:
        The two axes, as an array.
    """
    needed = ("termination_times", "log_snr", "l2_to_ot", "l2_to_ot_se", "self_convergence", "self_convergence_se")
    missing = [a for a in needed if not hasattr(result, a)]
    if missing:
        raise ValueError(f"`result` must be a ConvergenceResult; it has no {', '.join(missing)}.")
    if against not in ("log_snr", "time"):
        raise ValueError(f"`against` must be 'log_snr' or 'time', got {against!r}.")
    if axes is None:
        axes = subplots(1, 2, figsize=(10, 3.8))[1]
    axes = np.asarray(axes, dtype=object).ravel()
    if axes.size != 2 or not all(isinstance(a, Axes) for a in axes):
        raise ValueError("`axes` must be two matplotlib Axes (or None).")
    times = _vector(result.termination_times, "result.termination_times", finite=True)
    x = -_vector(result.log_snr, "result.log_snr", size=times.size) if against == "log_snr" else times
    xlabel = "-log-SNR at the termination time" if against == "log_snr" else "termination time"
    fit_to_ot = getattr(result, "fit_to_ot", None) if against == "time" else None
    first = len(axes[0].lines)
    convergence_curve(x, result.l2_to_ot, result.l2_to_ot_se, label=label, level=level, fit=fit_to_ot, ax=axes[0],
                      xlabel=xlabel, ylabel="L2 distance to the OT map",
                      title=f"flow map vs OT map (shaded: {100 * level:g}% CI)")
    color = axes[0].lines[first].get_color()
    sc = _vector(result.self_convergence, "result.self_convergence", size=times.size)
    sc_se = _vector(result.self_convergence_se, "result.self_convergence_se", size=times.size)
    fit = getattr(result, "fit_log_snr" if against == "log_snr" else "fit_time", None)
    if fit is not None:
        rate, intercept, mask = _fit_parts(fit, times.size)
        fit = SimpleNamespace(rate=rate, intercept=intercept, mask=mask[:-1])  # the last point is not drawn
    convergence_curve(x[:-1], sc[:-1], sc_se[:-1], label=label, level=level, fit=fit, ax=axes[1], color=color,
                      marker="s", xlabel=xlabel, ylabel="L2 distance to the map at the largest time",
                      title="self-convergence (dashed: fitted exponential)")
    return axes


# ---------------------------------------------------------------------------------------- prior error


def prior_error_brackets(
    x: Any,
    lower: Any | None = None,
    upper: Any | None = None,
    estimate: Any | None = None,
    *,
    against: str = "T",
    reference: Any | None = None,
    reference_label: str = "alpha(T) rate",
    ax: Axes | None = None,
    label: str = "W2(p_T, q_T)",
    logy: bool = True,
    logx: bool = False,
) -> Axes:
    """The prior error ``W2(p_T, q_T)`` as a shaded bracket ``[lower, upper]`` with its point estimate.

    Args:
        x: the abscissae (termination times or ``alpha_T``), shape ``(k,)``; or a sequence of
            [`PriorErrorResult`][jaxotdm.verify.PriorErrorResult] (then ``lower``, ``upper`` and ``estimate`` are
            read from their ``lower``, ``upper`` and ``w2`` fields and must not be given).
        lower: lower bounds, shape ``(k,)``.
        upper: upper bounds, shape ``(k,)`` (NaN allowed: no bracket there). Estimated upper bounds can
            fall below an exact lower bound by their Monte Carlo error; they are drawn as given.
        estimate: point estimates, shape ``(k,)``, or ``None``.
        against: with results, the abscissa: ``"T"`` (termination time) or ``"alpha"`` (``alpha_T``).
        reference: values of a reference rate (e.g. ``alpha_T``), shape ``(k,)``; drawn as a dashed line
            through the first lower bound, ``lower[0] * reference / reference[0]``. With results and
            ``reference=None`` nothing is drawn; pass ``"alpha"`` to use the results' ``alpha``.
        reference_label: legend label of the reference line.
        ax: the axes to draw on; ``None`` makes a new figure.
        label: legend label of the bracket.
        logy: logarithmic y axis.
        logx: logarithmic x axis.

    Returns:
        The axes drawn on.

    Examples:
        >>> import numpy as np
        >>> from jaxotdm.plotting import prior_error_brackets
        >>> T = np.array([1.0, 2.0, 3.0]); alpha = np.exp(-T / 2)
        >>> ax = prior_error_brackets(T, 0.9 * alpha, 1.2 * alpha, alpha, reference=alpha)
        >>> len(ax.collections), len(ax.lines)    # the bracket; estimate and reference
        (1, 2)
    """
    if against not in ("T", "alpha"):
        raise ValueError(f"`against` must be 'T' or 'alpha', got {against!r}.")
    results = None
    if isinstance(x, Sequence) and len(x) > 0 and all(hasattr(r, "lower") and hasattr(r, "upper") for r in x):
        if lower is not None or upper is not None or estimate is not None:
            raise ValueError("`lower`, `upper` and `estimate` are read from the results; do not pass them too.")
        results = x
        x = [float(getattr(r, against)) for r in results]
        lower = [float(r.lower) for r in results]
        upper = [float(r.upper) for r in results]
        estimate = [float(r.w2) for r in results] if all(hasattr(r, "w2") for r in results) else None
        if isinstance(reference, str):
            if reference != "alpha":
                raise ValueError(f"`reference` must be an array, None or 'alpha', got {reference!r}.")
            reference = [float(r.alpha) for r in results]
    elif isinstance(reference, str):
        raise ValueError("`reference`='alpha' needs PriorErrorResult inputs; pass an array of values instead.")
    if lower is None or upper is None:
        raise ValueError("`lower` and `upper` are required with array inputs.")
    xs = _vector(x, "x", finite=True)
    lo = _vector(lower, "lower", size=xs.size)
    up = _vector(upper, "upper", size=xs.size)
    both = np.isfinite(lo) & np.isfinite(up)  # Monte Carlo upper bounds may dip below an exact lower one
    _check_log(logy, "logy")
    _check_log(logx, "logx")
    ax = _axes(ax)
    ax.fill_between(xs, lo, up, alpha=0.25, label=f"{label} bracket", where=both)
    if estimate is not None:
        ax.plot(xs, _vector(estimate, "estimate", size=xs.size), "o-", ms=3, label=f"{label} estimate")
    if reference is not None:
        ref = _vector(reference, "reference", size=xs.size, finite=True)
        if ref[0] == 0 or not np.isfinite(lo[0]):
            raise ValueError("`reference[0]` and `lower[0]` must be finite and non-zero to anchor the line.")
        ax.plot(xs, lo[0] * ref / ref[0], "k--", lw=0.8, label=reference_label)
    if logy:
        ax.set_yscale("log")
    if logx:
        ax.set_xscale("log")
    xlabel = "alpha_T" if results is not None and against == "alpha" else "termination time T"
    ax.set(xlabel=xlabel, ylabel="prior error")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return ax


# ---------------------------------------------------------------------------------------------- images


def image_grid(
    images: Any,
    shape: tuple[int, ...] | None = None,
    *,
    ncol: int = 16,
    value_range: tuple[float, float] = (-1.0, 1.0),
    cmap: str = "gray_r",
    ax: Axes | None = None,
    title: str | None = None,
    pad: int = 1,
) -> Axes:
    """A mosaic of images (one `AxesImage`), e.g. samples of digits or MNIST.

    Args:
        images: ``(n, h*w)`` flattened images (the package's data layout), ``(n, h, w)`` grayscale or
            ``(n, h, w, c)`` with ``c`` in ``{1, 3}``.
        shape: the image shape ``(h, w)`` or ``(h, w, c)`` for flattened input; ``None`` infers a square
            grayscale image from ``h*w`` (8x8 digits, 28x28 MNIST).
        ncol: images per row (>= 1; fewer if there are fewer images).
        value_range: the data values shown as the ends of the colour map (the package scales pixels to
            ``[-1, 1]``); values outside are shown at the ends. ``low < high``.
        cmap: colour map for grayscale images (``"gray_r"``: ink is dark).
        ax: the axes to draw on; ``None`` makes a new figure sized to the mosaic.
        title: axes title.
        pad: pixels of background between images (>= 0).

    Returns:
        The axes drawn on.

    Examples:
        >>> import numpy as np
        >>> from jaxotdm.plotting import image_grid
        >>> ax = image_grid(np.zeros((10, 64)), ncol=5)    # ten 8x8 images in 2 rows
        >>> ax.images[0].get_array().shape
        (19, 46)
    """
    try:
        a = np.asarray(images, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"`images` must be an array of numbers: {exc}") from None
    if a.ndim < 2 or a.shape[0] == 0:
        raise ValueError(f"`images` must be (n, h*w), (n, h, w) or (n, h, w, c) with n >= 1, got shape {a.shape}.")
    n = a.shape[0]
    if a.ndim == 2:
        if shape is None:
            s = math.isqrt(a.shape[1])
            if s * s != a.shape[1] or s < 2:
                raise ValueError(f"`shape` is required: {a.shape[1]} values per image are not a square image.")
            shape = (s, s)
        shape = tuple(int(v) for v in shape)
        if len(shape) not in (2, 3) or math.prod(shape) != a.shape[1]:
            raise ValueError(f"`shape` {shape} does not hold {a.shape[1]} values per image.")
        a = a.reshape(n, *shape)
    elif shape is not None and tuple(shape) != a.shape[1:]:
        raise ValueError(f"`shape` {tuple(shape)} does not match the images' shape {a.shape[1:]}.")
    if a.ndim == 4:
        if a.shape[-1] == 1:
            a = a[..., 0]
        elif a.shape[-1] != 3:
            raise ValueError(f"`images` must have 1 or 3 channels, got {a.shape[-1]}.")
    elif a.ndim != 3:
        raise ValueError(f"`images` must be (n, h*w), (n, h, w) or (n, h, w, c), got shape {np.shape(images)}.")
    if not (isinstance(ncol, (int, np.integer)) and not isinstance(ncol, bool) and ncol >= 1):
        raise ValueError(f"`ncol` must be an integer >= 1, got {ncol!r}.")
    if not (isinstance(pad, (int, np.integer)) and pad >= 0):
        raise ValueError(f"`pad` must be an integer >= 0, got {pad!r}.")
    lo, hi = (float(v) for v in value_range)
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"`value_range` must be (low, high) with low < high, got {value_range!r}.")
    ncol = min(int(ncol), n)
    nrow = -(-n // ncol)
    h, w = a.shape[1], a.shape[2]
    canvas = np.full((nrow * (h + pad) + pad, ncol * (w + pad) + pad, *a.shape[3:]), np.nan)
    for i in range(n):
        r, c = divmod(i, ncol)
        canvas[pad + r * (h + pad) : (r + 1) * (h + pad), pad + c * (w + pad) : (c + 1) * (w + pad)] = a[i]
    if ax is None:
        ax = subplots(figsize=(max(2.0, 0.6 * ncol), max(1.2, 0.6 * nrow + (0.3 if title else 0.0))))[1]
    ax = _axes(ax)
    if canvas.ndim == 3:  # colour: map to [0, 1] and paint the background white
        rgb = np.clip((canvas - lo) / (hi - lo), 0.0, 1.0)
        ax.imshow(np.where(np.isnan(rgb), 1.0, rgb), interpolation="nearest")
    else:
        import matplotlib as mpl

        cm = mpl.colormaps[cmap].with_extremes(bad="white")
        ax.imshow(np.ma.masked_invalid(canvas), cmap=cm, vmin=lo, vmax=hi, interpolation="nearest")
    ax.set_axis_off()
    if title is not None:
        ax.set_title(title, fontsize=9)
    return ax


# -------------------------------------------------------------------------------------- 2-D transport


def _cells_numpy(z: np.ndarray, targets: np.ndarray, heights: np.ndarray, chunk: int = 8192) -> np.ndarray:
    out = np.empty(len(z), dtype=np.int64)
    for s in range(0, len(z), chunk):
        out[s : s + chunk] = np.argmax(z[s : s + chunk] @ targets.T + heights, axis=1)
    return out


def laguerre_cells(
    smap: Any,
    heights: Any | None = None,
    *,
    points: Any | None = None,
    tau: float = 0.0,
    extent: tuple[float, float, float, float] | None = None,
    resolution: int = 300,
    ax: Axes | None = None,
    source_circles: Sequence[float] = (1.0, 2.0, 3.0),
    cmap: str = "tab20",
    title: str | None = None,
) -> Axes:
    """The Laguerre (power) cells of a 2-D semi-discrete OT map, its targets, and transport arrows.

    Each pixel of a grid over the plane is coloured by the cell that contains it (``smap.assign``); cell
    ``i`` and target ``x_i`` share a colour and boundaries are drawn dark. With ``points``, an arrow goes
    from each ``z`` to ``T(z)`` (``smap.transport(z, tau)``). Dashed circles mark radii of the source
    ``N(0, I)``.

    Args:
        smap: a [`SemidiscreteMap`][jaxotdm.ot.SemidiscreteMap] with 2-D targets, or the targets themselves, an
            ``(n, 2)`` array (then ``heights`` is required and the cells are
            ``argmax_i <z, x_i> + h_i``, computed in numpy).
        heights: ``(n,)`` heights ``h`` when ``smap`` is an array; must be ``None`` with a map.
        points: ``(m, 2)`` source points ``z`` to draw arrows from, or ``None``.
        tau: smoothing of the arrows' map (``0``: the hard map onto the targets; ``> 0``: the smoothed
            map, the softmax average of the targets at temperature ``tau``). The cells are always hard.
        extent: ``(xmin, xmax, ymin, ymax)`` of the grid; default covers ``[-3.5, 3.5]^2``, the targets and
            the points with a margin.
        resolution: grid pixels per side (2 ... 2000).
        ax: the axes to draw on; ``None`` makes a new figure.
        source_circles: radii of the dashed circles (``()`` for none), each > 0.
        cmap: qualitative colour map cycled over cells.
        title: axes title.

    Returns:
        The axes drawn on.

    Examples:
        >>> import numpy as np
        >>> from jaxotdm.plotting import laguerre_cells
        >>> targets = np.array([[-1.0, 0.0], [1.0, 0.0], [0.0, 1.5]])
        >>> ax = laguerre_cells(targets, np.zeros(3), points=np.array([[0.3, -0.2], [-2.0, 1.0]]), resolution=50)
        >>> len(ax.images), len(ax.collections)    # the cells; the targets, the sources and the arrows
        (1, 3)
    """
    if hasattr(smap, "targets") and hasattr(smap, "heights"):
        if heights is not None:
            raise ValueError("`heights` must be None when `smap` is a SemidiscreteMap (it carries its heights).")
        targets = np.asarray(smap.targets, np.float64)
        h = np.asarray(smap.heights, np.float64)
        is_map = hasattr(smap, "assign")
    else:
        try:
            targets = np.asarray(smap, np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"`smap` must be a SemidiscreteMap or an (n, 2) array of targets: {exc}") from None
        if heights is None:
            raise ValueError("`heights` is required when `smap` is an array of targets.")
        h = np.asarray(heights, np.float64)
        is_map = False
    if targets.ndim != 2 or targets.shape[1] != 2 or targets.shape[0] == 0:
        raise ValueError(f"`smap` must have 2-D targets, shape (n, 2); got {targets.shape}.")
    if h.shape != (targets.shape[0],) or not np.all(np.isfinite(h)):
        raise ValueError(f"`heights` must be {targets.shape[0]} finite values, got shape {h.shape}.")
    if not np.all(np.isfinite(targets)):
        raise ValueError("`smap` targets must be finite.")
    z = None
    if points is not None:
        z = np.asarray(points, np.float64)
        if z.ndim != 2 or z.shape[1] != 2 or not np.all(np.isfinite(z)):
            raise ValueError(f"`points` must be a finite (m, 2) array, got shape {z.shape}.")
    if not (isinstance(tau, (int, float)) and math.isfinite(tau) and tau >= 0):
        raise ValueError(f"`tau` must be >= 0, got {tau!r}.")
    if not (isinstance(resolution, (int, np.integer)) and 2 <= resolution <= 2000):
        raise ValueError(f"`resolution` must be an integer in [2, 2000], got {resolution!r}.")
    radii = [float(r) for r in source_circles]
    if any(not (math.isfinite(r) and r > 0) for r in radii):
        raise ValueError(f"`source_circles` must hold radii > 0, got {source_circles!r}.")
    if extent is None:
        pts = np.concatenate([targets, z if z is not None else np.zeros((0, 2)), [[-3.5, -3.5], [3.5, 3.5]]])
        lo, hi = pts.min(0), pts.max(0)
        margin = 0.05 * (hi - lo)
        extent = (lo[0] - margin[0], hi[0] + margin[0], lo[1] - margin[1], hi[1] + margin[1])
    ext = tuple(float(v) for v in extent)
    if len(ext) != 4 or not all(map(math.isfinite, ext)) or not (ext[0] < ext[1] and ext[2] < ext[3]):
        raise ValueError(f"`extent` must be (xmin, xmax, ymin, ymax) with min < max, got {extent!r}.")
    ax = _axes(ax, figsize=(4.6, 4.6))

    gx = np.linspace(ext[0], ext[1], resolution)
    gy = np.linspace(ext[2], ext[3], resolution)
    grid = np.stack(np.meshgrid(gx, gy), -1).reshape(-1, 2)
    if is_map:
        cells = np.asarray(smap.assign(grid.astype(np.asarray(smap.targets).dtype)), np.int64)
    else:
        cells = _cells_numpy(grid, targets, h)
    cells = cells.reshape(resolution, resolution)
    import matplotlib as mpl

    palette = mpl.colormaps[cmap]
    ncolors = getattr(palette, "N", 20)
    colors = np.array([to_rgba(palette(i % ncolors)) for i in range(targets.shape[0])])
    rgba = colors[cells].copy()
    rgba[..., 3] = 0.45
    edge = np.zeros_like(cells, bool)
    edge[:, 1:] |= cells[:, 1:] != cells[:, :-1]
    edge[1:, :] |= cells[1:, :] != cells[:-1, :]
    rgba[edge] = (0.15, 0.15, 0.15, 0.9)
    ax.imshow(rgba, origin="lower", extent=ext, interpolation="nearest", aspect="equal")
    for r in radii:
        ax.add_patch(Circle((0.0, 0.0), r, fill=False, ls="--", lw=0.7, color="0.35"))
    ax.scatter(targets[:, 0], targets[:, 1], c=colors, s=28, edgecolors="k", linewidths=0.8, zorder=3,
               label="targets x_i")
    if z is not None and len(z):
        if is_map:
            tz = np.asarray(smap.transport(z.astype(np.asarray(smap.targets).dtype), tau), np.float64)
            src = np.asarray(smap.assign(z.astype(np.asarray(smap.targets).dtype)), np.int64)
        else:
            logits = z @ targets.T + h
            src = np.argmax(logits, 1)
            if tau > 0:
                w = np.exp((logits - logits.max(1, keepdims=True)) / tau)
                tz = (w / w.sum(1, keepdims=True)) @ targets
            else:
                tz = targets[src]
        ax.scatter(z[:, 0], z[:, 1], c=colors[src], s=10, edgecolors="k", linewidths=0.3, zorder=4,
                   label="sources z")
        ax.quiver(z[:, 0], z[:, 1], tz[:, 0] - z[:, 0], tz[:, 1] - z[:, 1], angles="xy", scale_units="xy",
                  scale=1.0, width=0.004, color="k", alpha=0.7, zorder=5)
    ax.set_xlim(ext[0], ext[1])
    ax.set_ylim(ext[2], ext[3])
    ax.set(xlabel="z_1", ylabel="z_2")
    ax.set_title(title if title is not None else f"Laguerre cells of {targets.shape[0]} targets", fontsize=9)
    return ax


def samples_2d(
    samples: Any,
    data: Any | None = None,
    *,
    colors: Any | None = None,
    ax: Axes | None = None,
    title: str | None = None,
    max_points: int = 20_000,
) -> Axes:
    """2-D samples as dots, optionally coloured (e.g. by nearest data point), over the data as crosses.

    Args:
        samples: ``(m, 2)`` samples.
        data: ``(n, 2)`` data points drawn as black crosses, or ``None``.
        colors: ``(m,)`` integer labels (coloured with ``tab10``, cycled) or ``None`` (one colour).
        ax: the axes to draw on; ``None`` makes a new figure.
        title: axes title.
        max_points: at most this many samples are drawn (the first ones), >= 1.

    Returns:
        The axes drawn on.

    Examples:
        >>> import numpy as np
        >>> from jaxotdm.plotting import samples_2d
        >>> ax = samples_2d(np.random.default_rng(0).normal(size=(100, 2)), np.eye(2), colors=np.arange(100) % 2)
        >>> len(ax.collections)
        2
    """
    s = np.asarray(samples, np.float64)
    if s.ndim != 2 or s.shape[1] != 2 or s.shape[0] == 0:
        raise ValueError(f"`samples` must be a non-empty (m, 2) array, got shape {s.shape}.")
    if not (isinstance(max_points, (int, np.integer)) and max_points >= 1):
        raise ValueError(f"`max_points` must be an integer >= 1, got {max_points!r}.")
    c = None
    if colors is not None:
        c = np.asarray(colors)
        if c.shape != (s.shape[0],) or not np.issubdtype(c.dtype, np.integer):
            raise ValueError(f"`colors` must be {s.shape[0]} integer labels, got shape {c.shape}, dtype {c.dtype}.")
    d = None
    if data is not None:
        d = np.asarray(data, np.float64)
        if d.ndim != 2 or d.shape[1] != 2:
            raise ValueError(f"`data` must be an (n, 2) array, got shape {d.shape}.")
    ax = _axes(ax, figsize=(4.2, 4.2))
    k = min(s.shape[0], int(max_points))
    if c is None:
        ax.scatter(s[:k, 0], s[:k, 1], s=3, alpha=0.6, label="samples")
    else:
        ax.scatter(s[:k, 0], s[:k, 1], s=3, c=c[:k] % 10, cmap="tab10", vmin=0, vmax=9, alpha=0.6, label="samples")
    if d is not None:
        ax.scatter(d[:, 0], d[:, 1], s=25, marker="x", c="k", label="data")
    ax.set_aspect("equal", adjustable="datalim")
    if title is not None:
        ax.set_title(title, fontsize=9)
    return ax


# ---------------------------------------------------------------------------------- quality vs cost


def _series_from_rows(rows: Sequence[Mapping], metric: str, group_by: str | Callable, x: str):
    series: dict[str, tuple[list, list]] = {}
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise ValueError(f"`series` rows must be mappings; row {i} is {type(row).__name__}.")
        for key in (metric, x) + ((group_by,) if isinstance(group_by, str) else ()):
            if key not in row:
                raise ValueError(f"`series` row {i} has no {key!r} (metric={metric!r}, x={x!r}, group_by={group_by!r}).")
        name = str(group_by(row) if callable(group_by) else row[group_by])
        xs, ys = series.setdefault(name, ([], []))
        xs.append(float(row[x]))
        ys.append(float(row[metric]))
    return {k: (np.asarray(a), np.asarray(b)) for k, (a, b) in series.items()}


def quality_vs_nfe(
    series: Mapping[str, Any] | Sequence[Mapping],
    *,
    controls: Mapping[str, float] | None = None,
    metric: str = "w2",
    group_by: str | Callable[[Mapping], str] = "method",
    x: str = "nfe",
    ax: Axes | None = None,
    logx: bool = True,
    logy: bool = False,
    xlabel: str = "NFE (score evaluations)",
    ylabel: str | None = None,
    title: str | None = None,
) -> Axes:
    """A quality metric against cost (NFE, or any parameter) per method, with horizontal control lines.

    Args:
        series: either a mapping ``label -> (x, values)`` or ``label -> (x, values, errors)`` (arrays of
            one length; errors drawn as bars), or table rows (a sequence of dicts such as the sampling
            table's), grouped into one line per ``group_by`` value with ``x`` and ``metric`` read from
            each row.
        controls: horizontal reference lines, ``label -> value`` (e.g. ``{"DDPM, 1000 steps": 3.07,
            "held-out vs train": 2.9}``); values must be finite.
        metric: with rows, the key of the plotted value.
        group_by: with rows, the key (or a function of the row) naming each line.
        x: with rows, the key of the abscissa.
        ax: the axes to draw on; ``None`` makes a new figure.
        logx: logarithmic x axis.
        logy: logarithmic y axis.
        xlabel: x-axis label.
        ylabel: y-axis label; default ``metric``.
        title: axes title.

    Returns:
        The axes drawn on.

    Examples:
        >>> from jaxotdm.plotting import quality_vs_nfe
        >>> rows = [{"method": "ddpm", "nfe": 10, "w2": 4.1}, {"method": "ddpm", "nfe": 100, "w2": 3.2},
        ...         {"method": "OT + ddpm", "nfe": 10, "w2": 3.1}]
        >>> ax = quality_vs_nfe(rows, controls={"held-out floor": 2.9})
        >>> len(ax.lines)    # two methods and one control line
        3
    """
    if isinstance(series, Mapping):
        items = {}
        for name, value in series.items():
            if not (isinstance(value, (tuple, list)) and len(value) in (2, 3)):
                raise ValueError(f"`series[{name!r}]` must be (x, values) or (x, values, errors).")
            xs = _vector(value[0], f"series[{name!r}] x", finite=True)
            ys = _vector(value[1], f"series[{name!r}] values", size=xs.size)
            es = None if len(value) == 2 else _vector(value[2], f"series[{name!r}] errors", size=xs.size)
            items[str(name)] = (xs, ys, es)
    elif isinstance(series, Sequence) and not isinstance(series, (str, bytes)):
        if len(series) == 0:
            raise ValueError("`series` is empty.")
        items = {k: (a, b, None) for k, (a, b) in _series_from_rows(series, metric, group_by, x).items()}
    else:
        raise ValueError(f"`series` must be a mapping label -> (x, values) or a list of rows, got {type(series).__name__}.")
    if not items:
        raise ValueError("`series` is empty.")
    ctrl = {}
    for name, v in (controls or {}).items():
        if not (isinstance(v, (int, float, np.floating, np.integer)) and math.isfinite(float(v))):
            raise ValueError(f"`controls[{name!r}]` must be a finite number, got {v!r}.")
        ctrl[str(name)] = float(v)
    _check_log(logx, "logx")
    _check_log(logy, "logy")
    if logx and any(np.any(xs <= 0) for xs, _, _ in items.values()):
        raise ValueError("`series` x values must be > 0 on a log x axis (pass logx=False).")
    ax = _axes(ax)
    for name, (xs, ys, es) in items.items():
        order = np.argsort(xs, kind="stable")
        if es is None:
            ax.plot(xs[order], ys[order], "o-", ms=4, label=name)
        else:
            ax.errorbar(xs[order], ys[order], yerr=es[order], fmt="o-", ms=4, capsize=3, label=name)
    styles = ["--", ":", "-.", (0, (5, 1, 1, 1))]
    for i, (name, v) in enumerate(ctrl.items()):
        ax.axhline(v, color=f"{0.2 + 0.15 * (i % 4):.2f}", lw=1.0, ls=styles[i % len(styles)], label=name)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set(xlabel=xlabel, ylabel=ylabel if ylabel is not None else metric)
    if title is not None:
        ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return ax


def loss_curve(
    losses: Any,
    *,
    eval_steps: Any | None = None,
    eval_values: Any | None = None,
    eval_label: str = "held-out",
    smooth: int | None = None,
    ax: Axes | None = None,
    logy: bool = True,
    title: str | None = None,
) -> Axes:
    """A training loss per step, its moving average, and optional held-out evaluations.

    Args:
        losses: the loss at steps ``1 ... k``, shape ``(k,)``.
        eval_steps: steps of the held-out evaluations, shape ``(e,)``, or ``None``.
        eval_values: the evaluations, shape ``(e,)`` (required with ``eval_steps``).
        eval_label: legend label of the evaluations.
        smooth: moving-average window (>= 1); default ``k // 50`` (drawn when ``k >= 10``).
        ax: the axes to draw on; ``None`` makes a new figure.
        logy: logarithmic y axis.
        title: axes title.

    Returns:
        The axes drawn on.

    Examples:
        >>> import numpy as np
        >>> from jaxotdm.plotting import loss_curve
        >>> ax = loss_curve(1 / np.arange(1, 101), eval_steps=[50, 100], eval_values=[0.02, 0.01])
        >>> len(ax.lines)    # loss, moving average, evaluations
        3
    """
    loss = _vector(losses, "losses")
    if (eval_steps is None) != (eval_values is None):
        raise ValueError("`eval_steps` and `eval_values` must be given together.")
    if smooth is not None and not (isinstance(smooth, (int, np.integer)) and 1 <= smooth <= loss.size):
        raise ValueError(f"`smooth` must be an integer in [1, len(losses)], got {smooth!r}.")
    _check_log(logy, "logy")
    ax = _axes(ax)
    steps = np.arange(1, loss.size + 1)
    ax.plot(steps, loss, lw=0.5, alpha=0.4, label="loss")
    w = smooth if smooth is not None else (max(1, loss.size // 50) if loss.size >= 10 else None)
    if w is not None:
        ax.plot(steps[w - 1 :], np.convolve(loss, np.ones(w) / w, mode="valid"), lw=1.5,
                label=f"moving average ({w})")
    if eval_steps is not None:
        es = _vector(eval_steps, "eval_steps", finite=True)
        ev = _vector(eval_values, "eval_values", size=es.size)
        ax.plot(es, ev, "o-", ms=3, label=eval_label)
    if logy:
        ax.set_yscale("log")
    ax.set(xlabel="step", ylabel="loss")
    if title is not None:
        ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return ax
