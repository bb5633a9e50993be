"""Sample grids for image data."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from matplotlib.axes import Axes

from jaxotdm.plotting._common import _axes, subplots


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
            raise ValueError(f"`images` of {a.shape[1]} values per image do not fit `shape` {shape}.")
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
    from jaxotdm import _validation as V  # here, not at import: plotting imports no jax

    if isinstance(value_range, (str, bytes)) or len(value_range) != 2:
        raise V.ArgumentTypeError(f"`value_range` must be a pair (lo, hi) of numbers, got {value_range!r}.")
    lo, hi = (V.real_scalar(v, "value_range") for v in value_range)
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
