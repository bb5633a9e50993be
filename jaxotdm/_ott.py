"""The one place jaxotdm imports ott-jax.

ott-jax 0.6 imports jaxopt, which warns on import that it is unmaintained; the filter for that warning
lives here and nowhere else. Imports are lazy (ott is imported on first use, not when jaxotdm is).

Example:
    >>> from jaxotdm._ott import ott
    >>> ott().geometry.pointcloud.PointCloud.__name__
    'PointCloud'
"""

from __future__ import annotations

import functools
import importlib
import types
import warnings

__all__ = ["ott"]

_MODULES = (
    "ott.geometry.costs",
    "ott.geometry.pointcloud",
    "ott.geometry.semidiscrete_pointcloud",
    "ott.problems.linear.linear_problem",
    "ott.problems.linear.potentials",
    "ott.problems.linear.semidiscrete_linear_problem",
    "ott.solvers.linear.semidiscrete",
    "ott.solvers.linear.sinkhorn",
    "ott.tools.sinkhorn_divergence",
)


@functools.cache
def ott() -> types.ModuleType:
    """Imports (once) and returns the ``ott`` package with the submodules jaxotdm uses loaded.

    Use as ``ott().geometry.pointcloud.PointCloud``; the warnings of ott's own import (jaxopt's notice that it
    is no longer maintained) are silenced here only.
    """
    with warnings.catch_warnings(action="ignore"):
        for name in _MODULES:
            importlib.import_module(name)
        return importlib.import_module("ott")
