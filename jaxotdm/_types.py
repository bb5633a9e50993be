"""Type aliases used on public signatures (jaxtyping)."""

from __future__ import annotations

from typing import Any

from jaxtyping import Array, ArrayLike, Bool, Float, Int, PRNGKeyArray

__all__ = ["Array", "ArrayLike", "Bool", "Float", "Int", "PRNGKeyArray", "Scalar", "Points", "Batch"]

Scalar = Float[ArrayLike, ""]
"""A scalar (Python float, 0-d array)."""

Points = Float[Array, "n d"]
"""A point cloud: n points in d dimensions, batch axis first."""

Batch = Float[Array, "... d"]
"""Query points with any leading batch shape and the data dimension last."""

PyTree = Any
