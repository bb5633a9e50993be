"""Deprecated function twins of the sampler methods (``ddim``, ``heun``, ...).

Each name runs one method object through the one driver :func:`~jaxotdm.samplers.sample` and warns
(:class:`DeprecationWarning`) with the call that replaces it: ``ddim(score, schedule, ...)`` is
``sample(DDIM(), score, schedule, ...)`` and ``predictor_corrector(..., num_corrector_steps=2)`` is
``sample(PredictorCorrector(num_corrector_steps=2), ...)``. They are importable from
:mod:`jaxotdm.samplers` but no longer part of its ``__all__`` or its documentation.
"""

from __future__ import annotations

import warnings

from jaxotdm.samplers._core import sample
from jaxotdm.samplers.ode import DDIM, DPMSolver2, DPMSolver3, DPMSolverPP2M, Euler, Heun
from jaxotdm.samplers.sde import AncestralDDPM, EulerMaruyama, PredictorCorrector

__all__: list[str] = []  # nothing public: aliases kept for old code only

_METHODS = {
    "euler": Euler,
    "heun": Heun,
    "ddim": DDIM,
    "dpm_solver_2": DPMSolver2,
    "dpm_solver_3": DPMSolver3,
    "dpm_solver_pp_2m": DPMSolverPP2M,
    "ddpm": AncestralDDPM,
    "euler_maruyama": EulerMaruyama,
    "predictor_corrector": PredictorCorrector,
}
"""Each deprecated name and the method class that replaces it."""

_METHOD_FIELDS = {"predictor_corrector": ("num_corrector_steps", "corrector_scale", "snr")}


def _alias(name: str, method_cls):
    fields = _METHOD_FIELDS.get(name, ())
    replacement = f"jaxotdm.samplers.sample({method_cls.__name__}(), score, schedule, ...)"
    if fields:
        replacement = (f"jaxotdm.samplers.sample({method_cls.__name__}({', '.join(f + '=...' for f in fields)}), "
                       "score, schedule, ...)")

    def alias(score, schedule, x=None, **kwargs):
        warnings.warn(f"jaxotdm.samplers.{name} is deprecated; use {replacement}.", DeprecationWarning,
                      stacklevel=2)
        method = method_cls(**{f: kwargs.pop(f) for f in fields if f in kwargs})  # validates its parameters
        return sample(method, score, schedule, x, **kwargs)

    alias.__name__ = alias.__qualname__ = name
    alias.__doc__ = f"""Deprecated: use ``{replacement}``.

    Runs :class:`~jaxotdm.samplers.{method_cls.__name__}` with :func:`~jaxotdm.samplers.sample` (same
    arguments{', plus the method fields ' + ', '.join(f'``{f}``' for f in fields) if fields else ''}) after a
    :class:`DeprecationWarning`.
    """
    return alias


euler = _alias("euler", Euler)
heun = _alias("heun", Heun)
ddim = _alias("ddim", DDIM)
dpm_solver_2 = _alias("dpm_solver_2", DPMSolver2)
dpm_solver_3 = _alias("dpm_solver_3", DPMSolver3)
dpm_solver_pp_2m = _alias("dpm_solver_pp_2m", DPMSolverPP2M)
ddpm = _alias("ddpm", AncestralDDPM)
euler_maruyama = _alias("euler_maruyama", EulerMaruyama)
predictor_corrector = _alias("predictor_corrector", PredictorCorrector)
