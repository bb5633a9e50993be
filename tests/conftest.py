"""Test configuration: float64 on (reference tests); float32 paths are exercised with explicit dtypes."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
