"""Input checks shared by the metrics."""

from __future__ import annotations

import jax.numpy as jnp

from jaxotdm import _validation as V
from jaxotdm._types import Array

DEFAULT_CHUNK = 1024


def _cloud(x, name: str, dtype=None) -> Array:
    x = V.as_float_array(x, name, dtype=dtype)
    V.check_ndim(x, 2, name, "(n, d)")
    if x.shape[0] < 1:
        raise ValueError(f"`{name}` must contain at least one point, got shape {tuple(x.shape)}.")
    V.check_finite(x, name)
    return x


def _pair(x, y, xname: str, yname: str) -> tuple[Array, Array]:
    x = _cloud(x, xname)
    y = _cloud(y, yname)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"`{xname}` and `{yname}` must have the same dimension, got {x.shape[1]} and {y.shape[1]}.")
    dtype = jnp.result_type(x.dtype, y.dtype)
    return x.astype(dtype), y.astype(dtype)
