"""Points in the plane: Laguerre cells of a 2-D semi-discrete OT map with transport arrows, and 2-D samples."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import to_rgba
from matplotlib.patches import Circle

from jaxotdm.plotting._common import _axes


def _cells_numpy(z: np.ndarray, targets: np.ndarray, heights: np.ndarray, chunk: int = 8192) -> np.ndarray:
    out = np.empty(len(z), dtype=np.int64)
    for s in range(0, len(z), chunk):
        out[s : s + chunk] = np.argmax(z[s : s + chunk] @ targets.T + heights, axis=1)
    return out


def _laguerre_inputs(smap, heights, points, tau, resolution, source_circles, extent):
    """Checks :func:`laguerre_cells`' arguments: ``(targets, heights, is_map, points, radii, extent)``."""
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
    return targets, h, is_map, z, radii, ext


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
    targets, h, is_map, z, radii, ext = _laguerre_inputs(smap, heights, points, tau, resolution,
                                                          source_circles, extent)
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
    from jaxotdm import _validation as V  # here, not at import: plotting imports no jax

    s = V.np_real(samples, "samples").astype(np.float64)
    if s.ndim != 2 or s.shape[1] != 2 or s.shape[0] == 0:
        raise ValueError(f"`samples` must be a non-empty (m, 2) array, got shape {s.shape}.")
    V.check_finite(s, "samples")
    if isinstance(max_points, bool) or not (isinstance(max_points, (int, np.integer)) and max_points >= 1):
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
