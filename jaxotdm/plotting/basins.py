"""The OT map's Laguerre cells against the probability flow's basins (a :class:`~jaxotdm.verify.BasinMap`)."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap

from jaxotdm.plotting._common import subplots

_MISROUTED = (0.85, 0.0, 0.0, 0.75)


def _colours(n: int) -> ListedColormap:
    from matplotlib import colormaps

    tab20 = list(colormaps["tab20"].colors)
    base = tab20[:6] + tab20[8:] + list(colormaps["tab20b"].colors)  # tab20's reds left out: red marks misrouting
    return ListedColormap([base[i % len(base)] for i in range(max(n, 1))])


def _check(bm: Any, axes: Any) -> np.ndarray | None:
    for name in ("axis", "ot_index", "flow_index", "times", "misrouted_mass", "points"):
        if not hasattr(bm, name):
            raise ValueError(f"`bm` must be a BasinMap (from jaxotdm.verify.basin_map), got {type(bm).__name__}.")
    ot, fl = np.asarray(bm.ot_index), np.asarray(bm.flow_index)
    if ot.ndim not in (1, 2) or fl.shape[1:] != ot.shape or fl.shape[0] != len(np.asarray(bm.times)):
        raise ValueError(f"`bm` arrays disagree: ot_index {ot.shape}, flow_index {fl.shape}, times "
                         f"{np.shape(bm.times)}.")
    if axes is None:
        return None
    flat = np.ravel(np.asarray(axes, dtype=object))
    if len(flat) != 1 + fl.shape[0] or not all(isinstance(a, Axes) for a in flat):
        raise ValueError(f"`axes` must hold {1 + fl.shape[0]} matplotlib Axes (the OT map, then one per time), got "
                         f"{len(flat)}.")
    return flat


def basin_map(bm: Any, *, axes: Any = None, label: str = "", time_name: str = "s") -> np.ndarray:
    """Draws the Laguerre cells (first panel) and the flow's basins at each time, misrouted region in red.

    Every grid point is coloured by the data point it is sent to (the same colour for the same point in every
    panel). In the flow panels the misrouted points (sent elsewhere than by the OT map) are overlaid in red and
    the Laguerre cells' boundaries drawn in black; each title gives the misrouted Gaussian mass. In ``d = 1``
    the panels are strips over the prior's coordinate.

    Args:
        bm: a :class:`~jaxotdm.verify.BasinMap`.
        axes: ``1 + len(bm.times)`` axes to draw on (a new row is made when ``None``).
        label: a name for the data set, put in the first panel's title.
        time_name: the name of the termination time in the titles.

    Returns:
        The axes drawn on (a 1-D array).

    Examples:
        A 1-D strip of four grid points where the flow sends the second one elsewhere than the OT map (in practice
        ``bm`` comes from :func:`jaxotdm.verify.basin_map`):

        >>> import numpy as np
        >>> from types import SimpleNamespace
        >>> from jaxotdm import plotting
        >>> bm = SimpleNamespace(axis=np.linspace(-1.0, 1.0, 4), points=np.zeros((2, 1)), times=np.array([4.0]),
        ...                      ot_index=np.array([0, 0, 1, 1]), flow_index=np.array([[0, 1, 1, 1]]),
        ...                      misrouted_mass=np.array([0.3]))
        >>> axes = plotting.basin_map(bm, label="two points")
        >>> len(axes)
        2
    """
    flat = _check(bm, axes)
    ot, fl = np.asarray(bm.ot_index), np.asarray(bm.flow_index)
    times, mis = np.asarray(bm.times), np.asarray(bm.misrouted_mass)
    k, n = fl.shape[0], len(np.asarray(bm.points))
    if flat is None:
        d1 = ot.ndim == 1
        _, axs = subplots(1, 1 + k, figsize=(3.3 * (1 + k), 1.6 if d1 else 3.3))
        flat = np.ravel(np.asarray(axs, dtype=object))
    a = np.asarray(bm.axis, np.float64)
    ext = (a[0], a[-1], a[0], a[-1]) if ot.ndim == 2 else (a[0], a[-1], 0.0, 1.0)
    cmap = _colours(n)

    def show(ax, idx):
        img = idx if idx.ndim == 2 else idx[None, :]
        ax.imshow(img, origin="lower", extent=ext, cmap=cmap, vmin=-0.5, vmax=n - 0.5, interpolation="nearest",
                  aspect="equal" if idx.ndim == 2 else "auto")

    show(flat[0], ot)
    flat[0].set_title(f"{label}: OT map's Laguerre cells" if label else "OT map's Laguerre cells", fontsize=8)
    for i in range(k):
        ax = flat[i + 1]
        show(ax, fl[i])
        wrong = (fl[i] != ot).astype(float)
        over = np.zeros((*wrong.shape, 4)) if wrong.ndim == 2 else np.zeros((1, wrong.size, 4))
        over[..., :] = _MISROUTED
        over[..., 3] = _MISROUTED[3] * (wrong if wrong.ndim == 2 else wrong[None, :])
        ax.imshow(over, origin="lower", extent=ext, interpolation="nearest",
                  aspect="equal" if wrong.ndim == 2 else "auto")
        if ot.ndim == 2:  # the Laguerre boundaries: the half-level of each cell's indicator
            for j in np.unique(ot):
                ax.contour(a, a, (ot == j).astype(float), levels=[0.5], colors="k", linewidths=0.5)
        else:
            for j in np.flatnonzero(ot[1:] != ot[:-1]):
                ax.axvline(0.5 * (a[j] + a[j + 1]), color="k", lw=0.6)
        ax.set_title(f"flow basins, {time_name} = {times[i]:g}: misrouted {mis[i]:.3g} (red)", fontsize=8)
    for ax in flat:
        ax.set_xlabel("z1", fontsize=7)
        if ot.ndim == 2:
            ax.set_ylabel("z2", fontsize=7)
        else:
            ax.set_yticks([])
        ax.tick_params(labelsize=6)
    return flat
