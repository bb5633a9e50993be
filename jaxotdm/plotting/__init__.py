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
- a [`BasinMap`][jaxotdm.verify.BasinMap]: [`basin_map`][jaxotdm.plotting.basin_map] (the OT map's Laguerre
  cells against the flow's basins, misrouted region in red);
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

from jaxotdm.plotting._common import save, subplots
from jaxotdm.plotting.basins import basin_map
from jaxotdm.plotting.curves import (
    convergence_curve,
    convergence_panels,
    loss_curve,
    prior_error_brackets,
    quality_vs_nfe,
)
from jaxotdm.plotting.images import image_grid
from jaxotdm.plotting.points import laguerre_cells, samples_2d

__all__ = [
    "subplots",
    "save",
    "convergence_curve",
    "convergence_panels",
    "prior_error_brackets",
    "image_grid",
    "laguerre_cells",
    "basin_map",
    "samples_2d",
    "quality_vs_nfe",
    "loss_curve",
]
