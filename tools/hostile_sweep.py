#!/usr/bin/env python
"""Hostile sweep of jaxotdm's public API and CLI: hundreds of bad or edge inputs, float32 and float64.

Every case is a call with one bad (or edge-but-valid) argument. Its outcome is classified as

* ``ok``: a valid input gave a correct (checked) result;
* ``clear``: a bad input was refused with a ``ValueError``/``TypeError`` raised inside jaxotdm (or by the
  CLI's argument parser) whose message names the argument as the user typed it (``x``, ``--T``);
* ``unclear``: refused, but with another exception type (AttributeError, ZeroDivisionError, an XLA or
  MLIR error...), from deep inside a dependency, or without naming the argument;
* ``silent``: a bad input returned a result (wrong, clipped or NaN), or a valid input returned a wrong one;
* ``refused_valid``: a valid edge input was refused;
* ``late``: (CLI) a bad option was accepted and work started (it timed out, or failed after > 10 s);
* ``crash``: the process died; ``hang``: the case exceeded its time limit.

Cases run in child processes (one per dtype mode, restarted after a crash), each case under a time limit.

Usage::

    python tools/hostile_sweep.py --out sweep.json              # everything (f32, f64, cli)
    python tools/hostile_sweep.py --modes f32 --groups flow      # a subset
    PYTHONPATH=/path/to/other/checkout python tools/hostile_sweep.py ...   # sweep another version

Prints the counts per category (and per group with ``--by-group``) and writes every case to the JSON.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import inspect
import io
import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import warnings

CATEGORIES = ("ok", "clear", "unclear", "silent", "refused_valid", "late", "crash", "hang")
LATE_SECONDS = 10.0


# ============================================================================================== cases
class Case:
    __slots__ = ("id", "group", "fn", "expect", "names", "check", "timeout", "cli")

    def __init__(self, id, group, fn, expect, names, check, timeout, cli):
        self.id, self.group, self.fn, self.expect = id, group, fn, expect
        self.names, self.check, self.timeout, self.cli = names, check, timeout, cli


def build_cases(mode: str) -> list[Case]:  # noqa: C901 - one long table of cases
    import jax
    import jax.numpy as jnp
    import numpy as np

    import jaxotdm as jo
    from jaxotdm import data as D
    from jaxotdm import metrics as M
    from jaxotdm import networks as N
    from jaxotdm import ot as O
    from jaxotdm import samplers as S
    from jaxotdm import training as T
    from jaxotdm import verify as VF

    cases: list[Case] = []
    seen = set()

    def add(group, label, fn, expect="error", names=(), check=None, timeout=90, cli=False):
        cid = f"{group}:{label}"
        k = 2
        while cid in seen:
            cid = f"{group}:{label}#{k}"
            k += 1
        seen.add(cid)
        cases.append(Case(cid, group, fn, expect, tuple(names), check, timeout, cli))

    if mode == "cli":
        _cli_cases(add)
        return cases

    skipped = []

    @contextlib.contextmanager
    def section(name):
        """Builds one section of cases; if the API it uses changed (a renamed function), skip it, loudly."""
        try:
            yield
        except (AttributeError, ImportError, TypeError) as exc:
            skipped.append(f"{name}: {type(exc).__name__}: {exc}")
            print(f"[sweep] section {name} skipped: {exc}", file=sys.stderr)  # noqa: T201

    DT = np.float32 if mode == "f32" else np.float64
    f32 = mode == "f32"
    KEY = jax.random.key(0)
    Y = np.array([[-1.0, 0.0], [1.0, 0.5], [0.0, 1.0]], DT)  # 3 points in 2-D
    R = float(np.linalg.norm(Y, axis=1).max())
    W = np.full(3, 1 / 3, DT)
    MEAN = np.array([0.5, -1.0], DT)
    COV = np.array([[1.0, 0.6], [0.6, 0.5]], DT)
    X = np.array([[0.3, -0.2], [1.0, 1.0], [-0.5, 0.1], [0.0, 0.0]], DT)
    cache = {}

    def mu():
        return jo.EmpiricalMeasure(Y)

    def gauss():
        return jo.GaussianMeasure(MEAN, COV)

    def score(schedule=None):
        schedule = schedule or jo.OU()
        return jo.exact_score(mu(), schedule)

    def smap():
        if "smap" not in cache:
            cache["smap"] = jo.semidiscrete_ot(Y, key=KEY, tol=0.2)
        return cache["smap"]

    def finite(r):
        leaves = [np.asarray(v) for v in jax.tree.leaves(r) if hasattr(v, "dtype")]
        leaves = [v for v in leaves if np.issubdtype(v.dtype, np.floating)]
        if not all(np.all(np.isfinite(v)) for v in leaves):
            return "non-finite values in the result"
        return None

    def within(scale):
        def chk(r):
            pts = np.asarray(r.points if hasattr(r, "points") else r)
            if not np.all(np.isfinite(pts)):
                return "non-finite samples"
            m = float(np.linalg.norm(pts, axis=-1).max())
            return None if m <= scale else f"samples reach |x| = {m:.3g} > {scale:.3g} (diverged)"
        return chk

    nan2 = np.array([[np.nan, 0.0], [1.0, 0.0]], DT)

    def bad_points(n=3, d=2):
        yield "nan", np.where(np.arange(n * d).reshape(n, d) == 0, np.nan, 1.0).astype(DT)
        yield "inf", np.where(np.arange(n * d).reshape(n, d) == 1, np.inf, 1.0).astype(DT)
        yield "1d", np.zeros(n, DT)
        yield "3d", np.zeros((n, d, 1), DT)
        yield "empty", np.zeros((0, d), DT)
        yield "zero_dim", np.zeros((n, 0), DT)
        yield "string", "points"
        yield "none", None
        yield "complex", np.zeros((n, d), np.complex64)
        yield "bool", np.zeros((n, d), bool)
        yield "ragged", [[1.0, 2.0], [3.0]]

    def bad_queries(d=2):
        yield "nan", np.array([[np.nan, 0.0]], DT)
        yield "inf", np.array([[np.inf, 0.0]], DT)
        yield "wrong_dim", np.zeros((4, d + 1), DT)
        yield "scalar", np.asarray(0.5, DT)
        yield "string", "x"
        yield "none", None
        yield "complex", np.zeros((2, d), np.complex64)

    def bad_pos():
        yield "zero", 0.0
        yield "neg", -1.0
        yield "nan", float("nan")
        yield "inf", float("inf")
        yield "string", "1"
        yield "none", None
        yield "bool", True

    def bad_int(min_ok=1):
        yield "zero" if min_ok == 1 else "below", min_ok - 1
        yield "neg", -5
        yield "float", 2.5
        yield "string", "4"
        yield "none", None
        yield "bool", True

    def bad_time(t_max=None):
        yield "zero", 0.0
        yield "neg", -1.0
        yield "nan", float("nan")
        yield "inf", float("inf")
        yield "string", "1"
        yield "none", None
        if f32:
            yield "subnormal_f32", 1e-40
        if t_max is not None:
            yield "above_tmax", t_max + 0.5

    def bad_key():
        yield "none", None
        yield "int", 0
        yield "float_array", np.zeros(2, DT)
        yield "string", "key"
        yield "many_keys", jax.random.split(KEY, 3)

    def bad_weights(n=3):
        yield "negative", np.array([1.5, -0.5] + [0.0] * (n - 2), DT)
        yield "sum2", np.full(n, 2.0 / n, DT)
        yield "nan", np.array([np.nan] + [1.0 / n] * (n - 1), DT)
        yield "shape", np.full(n + 1, 1.0 / (n + 1), DT)
        yield "zeros", np.zeros(n, DT)
        yield "string", "uniform"

    def bad_cov(d=2):
        yield "nonsym", np.array([[1.0, 0.9], [0.0, 1.0]], DT)
        yield "nonpsd", np.array([[1.0, 2.0], [2.0, 1.0]], DT)
        yield "negdiag", np.array([[-1.0, 0.0], [0.0, 1.0]], DT)
        yield "nan", np.array([[np.nan, 0.0], [0.0, 1.0]], DT)
        yield "shape", np.eye(d + 1, dtype=DT)
        yield "string", "eye"

    def bad_callable():
        yield "none", None
        yield "number", 3
        yield "string", "score"

    def bad_schedule():
        yield "string", "vp"
        yield "none", None
        yield "class", jo.OU

    def bad_fraction():
        yield "zero", 0.0
        yield "one", 1.0
        yield "neg", -0.1
        yield "above", 1.5
        yield "nan", float("nan")
        yield "string", "0.5"

    def sweep(group, fn, kw, arg, gen, names=None):
        """One case per bad value of ``arg`` in ``fn(**kw)``."""
        for label, v in gen:
            add(group, f"{arg}={label}", (lambda v=v: fn(**{**kw, arg: v})), "error", names or (arg,))

    # ------------------------------------------------------------------------------------ schedules
    for cls, params in [
        (jo.OU, {"beta": bad_pos()}),
        (jo.VPLinear, {"beta_min": [("neg", -1.0), ("nan", float("nan")), ("inf", float("inf")), ("string", "a")],
                       "beta_max": [("neg", -1.0), ("zero", 0.0), ("nan", float("nan")), ("inf", float("inf")),
                                    ("below_min", 0.05)]}),
        (jo.SubVP, {"beta_min": [("neg", -1.0), ("nan", float("nan"))], "beta_max": [("neg", -2.0), ("inf", float("inf"))]}),
        (jo.Cosine, {"s": [("neg", -0.5), ("nan", float("nan")), ("inf", float("inf")), ("string", "s")]}),
        (jo.VE, {"sigma_min": [("zero", 0.0), ("neg", -1.0), ("nan", float("nan")), ("above_max", 100.0)],
                 "sigma_max": [("zero", 0.0), ("inf", float("inf")), ("below_min", 0.001), ("nan", float("nan"))]}),
    ]:
        for arg, gen in params.items():
            sweep(f"schedules.{cls.__name__}", cls, {}, arg, gen)
    for cls in (jo.OU, jo.VPLinear, jo.SubVP, jo.Cosine, jo.VE, jo.EDM):
        s = cls()
        t_ok = 0.5
        add("schedules.sample_prior", f"{cls.__name__}.ok", lambda s=s, t_ok=t_ok: s.sample_prior(KEY, DT(t_ok), (4, 2)),
            "ok", check=finite)
        add("schedules.sample_prior", f"{cls.__name__}.shape=empty", lambda s=s, t_ok=t_ok: s.sample_prior(KEY, t_ok, (0, 2)),
            "error", ("shape",))
        add("schedules.sample_prior", f"{cls.__name__}.key=None", lambda s=s, t_ok=t_ok: s.sample_prior(None, t_ok, (4, 2)),
            "error", ("key",))
        add("schedules.sample_prior", f"{cls.__name__}.T=neg", lambda s=s: s.sample_prior(KEY, -1.0, (4, 2)),
            "error", ("T",))
    # edge: values near the ends of the domain are representable
    for cls in (jo.OU, jo.VPLinear, jo.SubVP, jo.VE, jo.EDM):
        add("schedules.edge", f"{cls.__name__}.log_snr_small_t",
            lambda cls=cls: cls().log_snr(jnp.asarray(1e-6 if f32 else 1e-12, DT)), "ok", check=finite)
    add("schedules.edge", "Cosine.near_tmax", lambda: jo.Cosine().log_snr(jnp.asarray(0.999, DT)), "ok", check=finite)

    # ------------------------------------------------------------------------------------ measures
    sweep("measures.EmpiricalMeasure", jo.EmpiricalMeasure, {"points": Y}, "points", bad_points())
    sweep("measures.EmpiricalMeasure", jo.EmpiricalMeasure, {"points": Y}, "weights", bad_weights())
    add("measures.EmpiricalMeasure", "one_point", lambda: jo.EmpiricalMeasure(Y[:1]), "ok",
        check=lambda m: None if m.num_points == 1 else "wrong size")
    add("measures.EmpiricalMeasure", "int_points", lambda: jo.EmpiricalMeasure(np.array([[1, 2], [3, 4]])), "ok",
        check=lambda m: None if np.issubdtype(m.points.dtype, np.floating) else "not float")
    add("measures.EmpiricalMeasure", "weights_rounded_f32",
        lambda: jo.EmpiricalMeasure(np.ones((7, 2), DT), np.full(7, 1 / 7, np.float32)), "ok",
        check=lambda m: None)
    sweep("measures.GaussianMeasure", jo.GaussianMeasure, {"mean": MEAN, "cov": COV}, "cov", bad_cov())
    sweep("measures.GaussianMeasure", jo.GaussianMeasure, {"mean": MEAN, "cov": COV}, "mean",
          [("nan", np.array([np.nan, 0.0], DT)), ("2d", np.zeros((2, 2), DT)), ("string", "m"), ("none", None)])
    add("measures.GaussianMeasure", "singular_ok", lambda: jo.GaussianMeasure(MEAN, np.zeros((2, 2), DT)).sample(KEY, 3),
        "ok", check=finite)
    for lbl, meas in (("empirical", mu), ("gaussian", gauss)):
        sweep(f"measures.{lbl}.sample", lambda key=KEY, num_samples=4, meas=meas: meas().sample(key, num_samples),
              {}, "num_samples", bad_int())
        sweep(f"measures.{lbl}.sample", lambda key=KEY, num_samples=4, meas=meas: meas().sample(key, num_samples),
              {}, "key", bad_key())
        sweep(f"measures.{lbl}.sample_marginal",
              lambda t=0.5, meas=meas: meas().sample_marginal(KEY, t, jo.OU(), 4), {}, "t", bad_time())
    # protocol: every measure exposes mean, dim, sample
    add("measures.protocol", "empirical_mean_attr", lambda: np.asarray(mu().mean) + 0, "ok",
        check=lambda r: None if np.allclose(r, Y.mean(0), atol=1e-6) else "wrong mean")
    add("measures.protocol", "gaussian_mean_attr", lambda: np.asarray(gauss().mean) + 0, "ok",
        check=lambda r: None if np.allclose(r, MEAN) else "wrong mean")

    # ------------------------------------------------------------------------------------ scores
    sweep("scores.exact_score", jo.exact_score, {"measure": mu(), "schedule": jo.OU()}, "measure",
          [("array", Y), ("none", None), ("string", "data")])
    sweep("scores.exact_score", jo.exact_score, {"measure": mu(), "schedule": jo.OU()}, "schedule", bad_schedule())
    sweep("scores.exact_score", jo.exact_score, {"measure": mu(), "schedule": jo.OU()}, "chunk_size", bad_int())
    sweep("scores.exact_score", jo.exact_score, {"measure": mu(), "schedule": jo.OU()}, "query_chunk_size",
          bad_int())
    for meth in ("__call__", "denoiser", "log_density"):
        for lbl, meas in (("empirical", mu), ("gaussian", gauss)):
            call = lambda x=X, t=0.5, meth=meth, meas=meas: getattr(jo.exact_score(meas(), jo.OU()), meth)(x, t)
            sweep(f"scores.{lbl}.{meth}", call, {}, "x", bad_queries())
            sweep(f"scores.{lbl}.{meth}", call, {}, "t", bad_time())
            add(f"scores.{lbl}.{meth}", "t=wrong_shape", lambda call=call: call(t=np.full(7, 0.5, DT)), "error", ("t",))
            add(f"scores.{lbl}.{meth}", "single_query", lambda call=call: call(x=X[0]), "ok", check=finite)
            add(f"scores.{lbl}.{meth}", "batch_shape", lambda call=call: call(x=np.zeros((2, 3, 2), DT)), "ok",
                check=finite)
    sweep("scores.cosine", lambda t=0.5: jo.exact_score(mu(), jo.Cosine())(X, t), {}, "t", bad_time(1.0))
    add("scores.posterior_mode", "gaussian", lambda: jo.exact_score(gauss(), jo.OU()).posterior_mode(X, 0.5), "error",
        ("measure",))

    def gaussian_per_query_t(nq):
        g = gauss()
        sc = jo.exact_score(g, jo.OU())
        x = np.linspace(-1, 1, nq * 2).reshape(nq, 2).astype(DT)
        t = np.linspace(0.2, 2.0, nq).astype(DT)

        def chk(r):
            ref = []
            for xi, ti in zip(x, t, strict=True):
                a, s2 = np.exp(-0.5 * ti), -np.expm1(-ti)
                c = a * a * COV.astype(np.float64) + s2 * np.eye(2)
                ref.append(-np.linalg.solve(c, xi - a * MEAN))
            err = float(np.abs(np.asarray(r) - np.array(ref)).max() / np.abs(ref).max())
            return None if err < (1e-4 if f32 else 1e-10) else f"relative error {err:.3g} against the closed form"
        return (lambda: sc(x, t)), chk

    for nq in (2, 3, 5):
        fn, chk = gaussian_per_query_t(nq)
        add("scores.gaussian_per_query_t", f"queries={nq}", fn, "ok", check=chk)

    # ------------------------------------------------------------------------------------ flow_map
    fkw = {"score": score(), "schedule": jo.OU(), "x": X, "t0": 2.0, "t1": 0.1}
    sweep("flow.flow_map", jo.flow_map, fkw, "score", bad_callable())
    sweep("flow.flow_map", jo.flow_map, fkw, "schedule", bad_schedule())
    sweep("flow.flow_map", jo.flow_map, fkw, "x", bad_queries())
    sweep("flow.flow_map", jo.flow_map, fkw, "t0", bad_time())
    sweep("flow.flow_map", jo.flow_map, fkw, "t1", bad_time())
    not_none = [(lbl, v) for lbl, v in bad_pos() if v is not None]  # None = the default tolerance
    sweep("flow.ODESettings", jo.ODESettings, {}, "rtol", not_none)
    sweep("flow.ODESettings", jo.ODESettings, {}, "atol", not_none)
    sweep("flow.ODESettings", jo.ODESettings, {}, "max_steps", bad_int())
    sweep("flow.ODESettings", jo.ODESettings, {"solver": "heun"}, "num_steps",
          [(lbl, v) for lbl, v in bad_int() if v is not None])
    sweep("flow.ODESettings", jo.ODESettings, {}, "solver", [("bogus", "rk45"), ("number", 3), ("none_class", jo.OU())])
    sweep("flow.flow_map", jo.flow_map, fkw, "ode", [("dict", {"rtol": 1e-6}), ("number", 1e-6)])
    add("flow.flow_map", "t0==t1", lambda: jo.flow_map(**{**fkw, "t1": 2.0}), "error", ("t0", "t1"))
    add("flow.flow_map", "t_vector", lambda: jo.flow_map(**{**fkw, "t0": np.array([1.0, 2.0])}), "error", ("t0",))
    add("flow.flow_map", "max_steps_exhausted", lambda: jo.flow_map(**{**fkw, "ode": jo.ODESettings(max_steps=2)}), "error",
        ("max_steps", "flow_map"))
    add("flow.flow_map", "forward_ok", lambda: jo.flow_map(**{**fkw, "t0": 0.1, "t1": 2.0}), "ok", check=finite)
    add("flow.flow_map", "cosine_above_tmax", lambda: jo.flow_map(score(jo.Cosine()), jo.Cosine(), X, 1.5, 0.1),
        "error", ("t0",))
    add("flow.velocity", "ok", lambda: jo.probability_flow_velocity(score(), jo.OU(), X, 0.5), "ok", check=finite)

    # ------------------------------------------------------------------------------------ samplers
    def driven(method_cls, name):
        """``sample(method_cls(**method options), ...)`` as one function (the method's options split off)."""
        own = {f.name for f in dataclasses.fields(method_cls)}

        def fn(*args, **kwargs):
            opts = {k: kwargs.pop(k) for k in list(kwargs) if k in own}
            return S.sample(method_cls(**opts), *args, **kwargs)

        fn.__name__ = name
        return fn

    fns = [driven(S.Euler, "euler"), driven(S.Heun, "heun"), driven(S.DDIM, "ddim"),
           driven(S.DPMSolver2, "dpm_solver_2"), driven(S.DPMSolver3, "dpm_solver_3"),
           driven(S.DPMSolverPP2M, "dpm_solver_pp_2m"), driven(S.AncestralDDPM, "ddpm"),
           driven(S.EulerMaruyama, "euler_maruyama"), driven(S.PredictorCorrector, "predictor_corrector")]
    pc_fn = fns[-1]
    per = {"heun": 2, "dpm_solver_2": 2, "dpm_solver_3": 3, "predictor_corrector": 2}
    for fn in fns:
        g = f"samplers.{fn.__name__}"
        k = per.get(fn.__name__, 1)
        kw = {"score": score(), "schedule": jo.OU(), "x": X, "t_start": 2.0, "t_end": 0.01, "num_steps": 4,
              "key": KEY}
        sweep(g, fn, kw, "x", bad_queries())
        sweep(g, fn, kw, "t_start", bad_time())
        sweep(g, fn, kw, "t_end", bad_time())
        sweep(g, fn, kw, "num_steps", bad_int())
        sweep(g, fn, kw, "grid", [("bogus", "cosine"), ("short", np.array([2.0, 0.01])), ("increasing",
              np.array([0.01, 0.5, 1.0, 1.5, 2.0]))])
        sweep(g, fn, kw, "score", bad_callable())
        sweep(g, fn, kw, "schedule", bad_schedule())
        add(g, "t_end>t_start", lambda fn=fn, kw=kw: fn(**{**kw, "t_end": 3.0}), "error", ("t_end",))
        add(g, "nfe_not_multiple", lambda fn=fn, kw=kw, k=k: fn(**{**kw, "num_steps": None, "nfe": 3 * k + 1}),
            "error" if k > 1 else "ok", ("nfe",), check=finite)
        add(g, "shape_and_x", lambda fn=fn, kw=kw: fn(**{**kw, "shape": (4, 2)}), "error", ("shape",))
        add(g, "shape_bad", lambda fn=fn, kw=kw: fn(**{**kw, "x": None, "shape": (4, -2)}), "error", ("shape",))
        add(g, "dtype_bad", lambda fn=fn, kw=kw: fn(**{**kw, "x": None, "shape": jax.ShapeDtypeStruct((4, 2), np.int32)}),
            "error", ("shape",))
        add(g, "prior_key_missing", lambda fn=fn, kw=kw: fn(**{**kw, "x": None, "key": None, "shape": (4, 2)}),
            "error", ("key",))
        add(g, "bad_key", lambda fn=fn, kw=kw: fn(**{**kw, "x": None, "key": 0, "shape": (4, 2)}), "error", ("key",))
        # default grid, usual start times, 10 and 100 NFE: no divergence
        for sname, sched, t0, t1 in (("ou", jo.OU(), 8.0, 1e-3), ("vp", jo.VPLinear(), 1.0, 1e-3),
                                     ("vp_t5", jo.VPLinear(), 5.0, 1e-3), ("edm", jo.EDM(), 80.0, 2e-3),
                                     ("ve", jo.VE(), 1.0, 1e-3), ("cosine", jo.Cosine(), 0.99, 1e-3)):
            for nfe in (10, 100):
                n_ok = nfe - nfe % k
                add(f"{g}.default_grid", f"{sname}.nfe{nfe}",
                    lambda fn=fn, sched=sched, t0=t0, t1=t1, n=n_ok: fn(
                        jo.exact_score(mu(), sched), sched, t_start=t0, t_end=t1, nfe=n, key=KEY,
                        shape=jax.ShapeDtypeStruct((128, 2), DT)),
                    "ok", check=within(3.0 * R + 0.5), timeout=180)
    pc = {"score": score(), "schedule": jo.OU(), "x": X, "t_start": 2.0, "t_end": 0.01, "num_steps": 4, "key": KEY}
    sweep("samplers.predictor_corrector", pc_fn, pc, "snr",
          [(lbl, v) for lbl, v in bad_pos() if v is not None])  # None = the corrector_scale rule
    sweep("samplers.predictor_corrector", pc_fn, pc, "corrector_scale", bad_pos())
    sweep("samplers.predictor_corrector", pc_fn, pc, "num_corrector_steps", bad_int())
    sweep("samplers.PredictorCorrector", S.PredictorCorrector, {}, "corrector_scale",
          [("inf", float("inf")), ("neg", -1.0), ("nan", float("nan"))])
    sweep("samplers.PredictorCorrector", S.PredictorCorrector, {}, "snr", [("inf", float("inf")), ("zero", 0.0)])
    sweep("samplers.PredictorCorrector", S.PredictorCorrector, {}, "num_corrector_steps", [("zero", 0), ("float", 1.5)])
    akw = {"score": score(), "schedule": jo.OU(), "x": X, "t_start": 2.0, "t_end": 0.01}
    sweep("samplers.adaptive_flow", S.adaptive_flow, akw, "rtol", bad_pos())
    sweep("samplers.adaptive_flow", S.adaptive_flow, akw, "t_end", bad_time())
    sweep("samplers.adaptive_flow", S.adaptive_flow, akw, "max_steps", bad_int())
    add("samplers.adaptive_flow", "max_steps_exhausted", lambda: S.adaptive_flow(**{**akw, "max_steps": 2}), "error",
        ("max_steps", "flow_map"))
    skw = {"method": S.Heun(), "score": score(), "schedule": jo.OU(), "x": X, "t_start": 2.0, "t_end": 0.01,
           "num_steps": 3}
    sweep("samplers.sample", S.sample, skw, "method", [("none", None), ("string", "heun"), ("class", S.Heun)])
    tg = {"schedule": jo.OU(), "t_start": 2.0, "t_end": 0.01, "num_steps": 4}
    sweep("samplers.time_grid", S.time_grid, tg, "t_start", bad_time())
    sweep("samplers.time_grid", S.time_grid, tg, "t_end", bad_time())
    sweep("samplers.time_grid", S.time_grid, tg, "num_steps", bad_int())
    sweep("samplers.time_grid", S.time_grid, tg, "schedule", bad_schedule())
    add("samplers.time_grid", "t_end>t_start", lambda: S.time_grid(jo.OU(), 0.5, 1.0, 4), "error", ("t_end",))
    add("samplers.time_grid", "t_end_negative", lambda: S.time_grid(jo.OU(), 1.0, -0.5, 4), "error", ("t_end",))
    for gname in ("uniform", "log_snr", "edm", "ddpm"):
        add("samplers.time_grid", f"{gname}.positive",
            lambda gname=gname: S.time_grid(jo.VPLinear(), 1.0, 1e-3, 10, gname, dtype=DT), "ok",
            check=lambda t: None if np.all(np.asarray(t) > 0) and np.all(np.diff(np.asarray(t)) < 0) else "bad grid")
    sweep("samplers.EDMGrid", lambda rho=7.0: S.time_grid(jo.EDM(), 80.0, 0.002, 4, S.EDMGrid(rho)), {}, "rho",
          [("zero", 0.0), ("neg", -7.0), ("nan", float("nan")), ("inf", float("inf"))])
    sweep("samplers.DDPMGrid", lambda num_train_steps=1000: S.time_grid(
        jo.VPLinear(), 1.0, 0.01, 4, S.DDPMGrid(num_train_steps)), {}, "num_train_steps",
        [("zero", 0), ("neg", -10), ("float", 10.5)])

    # ------------------------------------------------------------------------------------ OT (W2)
    sweep("ot.bures_w2", jo.bures_w2, {"mean1": MEAN, "cov1": COV, "mean2": MEAN, "cov2": COV}, "cov1", bad_cov())
    sweep("ot.bures_w2", jo.bures_w2, {"mean1": MEAN, "cov1": COV, "mean2": MEAN, "cov2": COV}, "cov2", bad_cov())
    sweep("ot.bures_w2", jo.bures_w2, {"mean1": MEAN, "cov1": COV, "mean2": MEAN, "cov2": COV}, "mean2",
          [("nan", np.array([np.nan, 0], DT)), ("shape", np.zeros(3, DT)), ("string", "m")])
    sweep("ot.gaussian_ot_map", jo.gaussian_ot_map, {"mean1": MEAN, "cov1": COV, "mean2": MEAN, "cov2": COV}, "cov1",
          list(bad_cov()) + [("singular", np.zeros((2, 2), DT))])
    sweep("ot.gaussian_ot_map", jo.gaussian_ot_map, {"mean1": MEAN, "cov1": COV, "mean2": MEAN, "cov2": COV}, "cov2",
          bad_cov())

    def bures_ref(r):
        from scipy.linalg import sqrtm

        c1, c2 = COV.astype(np.float64), 2 * np.eye(2)
        r1 = sqrtm(c1).real
        ref = np.sqrt(np.trace(c1) + np.trace(c2) - 2 * np.trace(sqrtm(r1 @ c2 @ r1).real) + 1.0)
        return None if abs(float(r) - ref) < (1e-4 if f32 else 1e-10) else f"{float(r)} != {ref}"

    add("ot.bures_w2", "reference", lambda: jo.bures_w2(MEAN, COV, MEAN + np.array([1, 0], DT), 2 * np.eye(2, dtype=DT)),
        "ok", check=bures_ref)
    add("ot.bures_w2", "singular_ok", lambda: jo.bures_w2(MEAN, np.zeros((2, 2), DT), MEAN, COV), "ok", check=finite)
    sweep("ot.w2_exact", jo.w2_exact, {"x": Y, "y": Y}, "x", bad_points())
    sweep("ot.w2_exact", jo.w2_exact, {"x": Y, "y": Y}, "a", bad_weights())
    sweep("ot.w2_exact", jo.w2_exact, {"x": Y, "y": Y}, "max_points", bad_int())
    sweep("ot.pushforward_w2", jo.pushforward_w2, {"points": Y, "masses": W}, "masses",
          [("neg", np.array([-1, 1, 1], DT)), ("nan", np.array([np.nan, 1, 1], DT)), ("zeros", np.zeros(3, DT))])
    # ------------------------------------------------------------------------------------ OT (other owners)
    with section('ot'):
        sdk = {"targets": Y, "key": KEY, "tol": 0.2}
        sweep("ot.semidiscrete_ot", jo.semidiscrete_ot, sdk, "targets", bad_points())
        sweep("ot.semidiscrete_ot", jo.semidiscrete_ot, sdk, "weights", bad_weights())
        sweep("ot.semidiscrete_ot", jo.semidiscrete_ot, sdk, "key", bad_key())
        sweep("ot.semidiscrete_ot", jo.semidiscrete_ot, sdk, "tol", bad_pos())
        sweep("ot.SemidiscreteSampling", jo.SemidiscreteSampling, {}, "certificate_samples",
              [("neg", -5), ("float", 2.5), ("string", "8")])
        sweep("ot.SemidiscreteSampling", jo.SemidiscreteSampling, {}, "batch_size", bad_int())
        sweep("ot.Streaming", jo.Streaming, {}, "chunk_size", [(lbl, v) for lbl, v in bad_int() if v is not None])
        sweep("ot.Streaming", jo.Streaming, {}, "sharding", [("string", "points"), ("number", 8)])
        sweep("ot.semidiscrete_ot", jo.semidiscrete_ot, sdk, "sampling", [("dict", {"batch_size": 8}), ("number", 8)])
        sweep("ot.semidiscrete_ot", jo.semidiscrete_ot, sdk, "streaming", [("dict", {"chunk_size": 8}), ("number", 8)])
        sweep("ot.semidiscrete_ot", jo.semidiscrete_ot, sdk, "init_heights",
              [("nan", np.array([np.nan, 0, 0], DT)), ("shape", np.zeros(4, DT))])
        for meth in ("transport", "assign", "potential"):
            sweep(f"ot.SemidiscreteMap.{meth}", lambda z=X, meth=meth: getattr(smap(), meth)(z), {}, "z",
                  [(lbl, v) for lbl, v in bad_queries() if lbl not in ("nan", "inf")])
            # Documented (jittable map): a non-finite query has no Laguerre cell, so it gets no data point:
            # index -1 from assign, NaN from transport and potential (before: a real data point).
            for lbl, v in (("nan", np.array([[np.nan, 0.0]], DT)), ("inf", np.array([[np.inf, 0.0]], DT))):
                add(f"ot.SemidiscreteMap.{meth}", f"z={lbl}", lambda z=v, meth=meth: getattr(smap(), meth)(z), "ok",
                    check=lambda r, meth=meth: None if (np.all(np.asarray(r) == -1) if meth == "assign"
                                                        else np.all(np.isnan(np.asarray(r)))) else
                    f"a non-finite query got a result: {np.asarray(r)}")
        sweep("ot.SemidiscreteMap.transport", lambda tau=0.0: smap().transport(X, tau), {}, "tau",
              [("neg", -1.0), ("nan", float("nan")), ("inf", float("inf"))])
        cmk = {"targets": Y, "heights": np.zeros(3, DT), "key": KEY, "num_samples": 256}
        sweep("ot.cell_masses", O.cell_masses, cmk, "heights",
              [("nan", np.array([np.nan, 0, 0], DT)), ("inf", np.array([np.inf, 0, 0], DT)), ("shape", np.zeros(2, DT))])
        sweep("ot.cell_masses", O.cell_masses, cmk, "num_samples", bad_int())
        sweep("ot.cell_masses", O.cell_masses, cmk, "key", bad_key())
        sk = {"x": Y, "y": X, "epsilon": 0.1}
        sweep("ot.sinkhorn", jo.sinkhorn, sk, "epsilon", bad_pos())
        sweep("ot.sinkhorn", jo.sinkhorn, sk, "x", bad_points())
        sweep("ot.sinkhorn", jo.sinkhorn, sk, "a", bad_weights())
        sweep("ot.sinkhorn", jo.sinkhorn, sk, "threshold", bad_pos())
        sweep("ot.sinkhorn", jo.sinkhorn, sk, "max_iterations", bad_int())
        sweep("ot.sinkhorn_divergence", jo.sinkhorn_divergence, sk, "epsilon", bad_pos())
        sweep("ot.sinkhorn_divergence", jo.sinkhorn_divergence, sk, "y", bad_points())
        sweep("ot.w2_gaussian_to_discrete", jo.w2_gaussian_to_discrete, {"smap_or_targets": Y, "key": KEY,
              "num_samples": 256}, "num_samples", bad_int())
        sweep("ot.w2_gaussian_to_discrete", jo.w2_gaussian_to_discrete, {"smap_or_targets": Y, "key": KEY,
              "num_samples": 256}, "batch_size", bad_int())
        for cls, params in ((O.NewtonSolver, {"growth": bad_int(), "noise_fraction": bad_fraction()}),
                            (O.AdamSolver, {"learning_rate": bad_pos(), "beta1": [(lbl, v) for lbl, v in bad_fraction() if lbl != "zero"], "patience": bad_int()}),
                            (O.OTTSolver, {"num_iterations": bad_int(), "learning_rate": bad_pos()})):
            for arg, gen in params.items():
                sweep(f"ot.{cls.__name__}", cls, {}, arg, gen)

    # ------------------------------------------------------------------------------------ OT-accelerated
    with section('ot_accelerated'):
        pk = {"schedule": jo.VPLinear(), "data_points": Y, "key": KEY, "t_prime": 0.2, "ot_tol": 0.3}
        sweep("samplers.prepare_ot_prior", S.prepare_ot_prior, pk, "t_prime", bad_time())
        sweep("samplers.prepare_ot_prior", S.prepare_ot_prior, pk, "data_points", bad_points())
        sweep("samplers.prepare_ot_prior", S.prepare_ot_prior, pk, "noise_draws", bad_int())
        sweep("samplers.prepare_ot_prior", S.prepare_ot_prior, pk, "ot_tol", bad_pos())
        sweep("samplers.prepare_ot_prior", S.prepare_ot_prior, pk, "key", bad_key())
        sweep("samplers.prepare_ot_prior", S.prepare_ot_prior, pk, "certificate_samples", [("neg", -5)])

        def prior():
            if "prior" not in cache:
                cache["prior"] = S.prepare_ot_prior(jo.VPLinear(), Y, key=KEY, t_prime=0.2, ot_tol=0.3)
            return cache["prior"]

        sweep("samplers.ot_prior_points", lambda z=X, tau=0.0: S.ot_prior_points(prior(), z, tau), {}, "z",
              bad_queries())
        sweep("samplers.ot_prior_points", lambda z=X, tau=0.0: S.ot_prior_points(prior(), z, tau), {}, "tau",
              [("neg", -1.0), ("nan", float("nan")), ("inf", float("inf"))])
        sched_kw = "prior" if "prior" in inspect.signature(S.ot_accelerated_sample).parameters else "schedule"
        oak = {"score": score(jo.VPLinear()), sched_kw: jo.VPLinear(), "data_points": Y, "key": KEY, "t_prime": 0.2,
               "num_samples": 8, "num_steps": 3, "t_end": 1e-3, "ot_tol": 0.3}
        sweep("samplers.ot_accelerated_sample", S.ot_accelerated_sample, oak, "num_samples", bad_int())
        sweep("samplers.ot_accelerated_sample", S.ot_accelerated_sample, oak, "t_end", bad_time())
        sweep("samplers.ot_accelerated_sample", S.ot_accelerated_sample, oak, "tau",
              [("neg", -1.0), ("nan", float("nan")), ("inf", float("inf"))])
        sweep("samplers.GuidedScore", lambda guidance=1.0: S.GuidedScore(score(), score(), guidance), {}, "guidance",
              [("nan", float("nan")), ("inf", float("inf")), ("string", "1")])

    # ------------------------------------------------------------------------------------ metrics
    with section('metrics'):
        P = np.array([[0.9, 0.1], [0.5, 0.5]], DT)
        sweep("metrics.mode_mixture_ratio", M.mode_mixture_ratio, {"probabilities": P}, "probabilities",
              [("negative", np.array([[1.2, -0.2], [0.5, 0.5]], DT)), ("sum2", np.array([[1.0, 1.0], [0.5, 0.5]], DT)),
               ("nan", np.array([[np.nan, 0.5], [0.5, 0.5]], DT)), ("1d", np.array([0.5, 0.5], DT)), ("string", "p")])
        sweep("metrics.mode_mixture_ratio", M.mode_mixture_ratio, {"probabilities": P}, "threshold", bad_fraction())
        sweep("metrics.frechet_distance", M.frechet_distance, {"mean1": MEAN, "cov1": COV, "mean2": MEAN, "cov2": COV},
              "cov1", bad_cov())
        sweep("metrics.frechet_distance", M.frechet_distance, {"mean1": MEAN, "cov1": COV, "mean2": MEAN, "cov2": COV},
              "cov2", bad_cov())
        mk = {"x": Y, "y": X}
        sweep("metrics.sinkhorn_estimate", M.sinkhorn_estimate, mk, "epsilon", bad_pos())
        sweep("metrics.sinkhorn_estimate", M.sinkhorn_estimate, mk, "x", bad_points())
        sweep("metrics.sinkhorn_estimate", M.sinkhorn_estimate, mk, "a", bad_weights())
        sweep("metrics.wasserstein2", M.wasserstein2, mk, "epsilon", bad_pos())
        sweep("metrics.wasserstein2", M.wasserstein2, mk, "b", bad_weights(4))
        sweep("metrics.precision_recall", M.precision_recall, {"samples": X, "reference": Y}, "k", bad_int())
        sweep("metrics.precision_recall", M.precision_recall, {"samples": X, "reference": Y}, "samples", bad_points())
        sweep("metrics.memorisation", M.memorisation, {"samples": X, "train": Y, "heldout": Y}, "ratio_threshold",
              bad_pos())
        sweep("metrics.nearest_neighbour_distance", M.nearest_neighbour_distance, {"queries": X, "points": Y},
              "queries", bad_points())
        sweep("metrics.nearest_neighbour_distance", M.nearest_neighbour_distance, {"queries": X, "points": Y},
              "chunk_size", bad_int())
        sweep("metrics.kth_neighbour_distance", M.kth_neighbour_distance, {"queries": X, "points": Y}, "k",
              list(bad_int()) + [("too_large", 10)])
        ck = {"x": np.concatenate([Y, Y + 0.1]), "labels": np.array([0, 1, 2, 0, 1, 2]), "key": KEY, "num_steps": 5,
              "batch_size": 4, "hidden": (8,)}
        sweep("metrics.train_classifier", M.train_classifier, ck, "labels",
              [("negative", np.array([0, -1, 2, 0, 1, 2])), ("float", np.array([0.5] * 6)), ("shape", np.array([0, 1]))])
        sweep("metrics.train_classifier", M.train_classifier, ck, "learning_rate", bad_pos())
        sweep("metrics.train_classifier", M.train_classifier, ck, "num_steps", bad_int())
        sweep("metrics.train_classifier", M.train_classifier, ck, "batch_size", bad_int())
        sweep("metrics.train_classifier", M.train_classifier, ck, "num_classes", [("too_small", 2), ("zero", 0)])

    # ------------------------------------------------------------------------------------ networks
    with section('networks'):
        for arg, gen in (("features", bad_int()), ("depth", bad_int())):
            sweep("networks.MLP", lambda features=16, depth=1, arg=arg: N.ScoreModel(
                N.MLP(features=features, depth=depth), jo.OU()).init(KEY, X), {}, arg, gen)
        ou = jo.OU()
        sweep("networks.ScoreModel", lambda schedule=ou: N.ScoreModel(N.MLP(features=8, depth=1), schedule), {},
              "schedule", bad_schedule())
        sweep("networks.ScoreModel", lambda sigma_data=1.0: N.ScoreModel(N.MLP(features=8, depth=1), jo.OU(),
              sigma_data=sigma_data), {}, "sigma_data",
              [(lbl, v) for lbl, v in bad_pos() if v is not None])  # None: taken from the parametrisation
        add("networks.ScoreModel", "sigma_data=none_from_parametrisation", lambda: N.ScoreModel(
            N.MLP(features=8, depth=1), jo.OU(), N.EDMPreconditioning(0.3)), "ok",
            check=lambda m: None if m.sigma_data == 0.3 else f"sigma_data {m.sigma_data} != the parametrisation's 0.3")
        sweep("networks.EDMPreconditioning", N.EDMPreconditioning, {}, "sigma_data", bad_pos())
        sweep("networks.SinusoidalEmbedding", lambda dim=8: N.ScoreModel(
            N.MLP(features=8, depth=1, embedding=N.SinusoidalEmbedding(dim=dim)), jo.OU()).init(KEY, X), {}, "dim",
            [("zero", 0), ("odd", 7), ("neg", -2)])

        def learned(labels=None, num_classes=3):
            if ("model", num_classes) not in cache:
                model = N.ScoreModel(N.MLP(features=8, depth=1, num_classes=num_classes), jo.OU())
                params = model.init(KEY, X, None if num_classes is None else np.zeros(len(X), np.int32))
                cache[("model", num_classes)] = (model, params)
            model, params = cache[("model", num_classes)]
            return N.LearnedScore(model, params, labels)

        sweep("networks.LearnedScore", lambda t=0.5: learned()(X, t), {}, "t", bad_time())
        sweep("networks.LearnedScore", lambda x=X: learned()(x, 0.5), {}, "x", bad_queries())
        sweep("networks.LearnedScore", lambda labels=None: learned(labels)(X, 0.5), {}, "labels",
              [("too_large", np.array([4])), ("negative", np.array([-1])), ("float", np.array([0.5]))])
        add("networks.LearnedScore", "null_label_ok", lambda: learned(np.array([3]))(X, 0.5), "ok", check=finite)
        add("networks.LearnedScore", "unconditional_ok", lambda: learned(None, None)(X, 0.5), "ok", check=finite)
        sweep("networks.convert_output", lambda t=0.5: N.convert_output(X, X, t, jo.OU(), source=N.NoisePrediction(),
              target=N.DataPrediction()), {}, "t", bad_time())

    # ------------------------------------------------------------------------------------ training
    with section('training'):
        def objective():
            return T.DSMObjective(N.ScoreModel(N.MLP(features=8, depth=1), jo.OU()))

        fk = {"objective": objective(), "data": np.tile(Y, (4, 1)), "steps": 2, "batch_size": 4}
        sweep("training.fit", T.fit, fk, "learning_rate", bad_pos())
        sweep("training.fit", T.fit, fk, "steps", bad_int())
        sweep("training.fit", T.fit, fk, "batch_size", list(bad_int()) + [("above_n", 100)])
        sweep("training.fit", T.fit, fk, "ema_decay", [("neg", -0.1), ("above", 1.5), ("nan", float("nan"))])
        sweep("training.fit", T.fit, fk, "data", bad_points())
        sweep("training.fit", T.fit, fk, "checkpoint_every", [("zero", 0), ("neg", -1), ("float", 1.5)])
        sweep("training.fit", T.fit, fk, "eval_every", [("zero", 0), ("neg", -1)])

        def fit_overwrites():
            d = tempfile.mkdtemp()
            T.fit(**fk, checkpoint_dir=d, checkpoint_every=1)
            return T.fit(**{**fk, "steps": 1}, checkpoint_dir=d, checkpoint_every=1, resume=False)

        add("training.fit", "resume_false_existing_checkpoint", fit_overwrites, "error", ("resume", "checkpoint"),
            timeout=180)
        sweep("training.DSMObjective", lambda label_dropout=0.1: T.DSMObjective(
            N.ScoreModel(N.MLP(features=8, depth=1), jo.OU()), label_dropout=label_dropout), {}, "label_dropout",
            [("neg", -0.1), ("above", 1.5), ("nan", float("nan"))])
        sweep("training.UniformTime", getattr(T, "UniformTimeDistribution", None) or T.UniformTime, {}, "t_min", [("neg", -1.0), ("zero", 0.0), ("above_max", 2.0)])
        sweep("training.UniformLogSNR", getattr(T, "UniformLogSNRDistribution", None) or T.UniformLogSNR, {}, "log_snr_min", [("above_max", 20.0), ("nan", float("nan"))])
        sweep("training.LogNormalSigma", T.LogNormalSigma, {}, "p_std", [("zero", 0.0), ("neg", -1.0), ("inf", float("inf"))])
        sweep("training.MinSNRWeighting", T.MinSNRWeighting, {}, "gamma", [("zero", 0.0), ("neg", -1.0), ("nan", float("nan"))])
        sweep("training.EDMWeighting", T.EDMWeighting, {}, "sigma_data", [("zero", 0.0), ("neg", -1.0)])
        sweep("training.epoch_batch_indices", lambda num_examples=10, batch_size=4: T.epoch_batch_indices(
            KEY, 0, num_examples, batch_size), {}, "batch_size", [("zero", 0), ("above_n", 20), ("neg", -1)])
        sweep("training.load_checkpoint", lambda path="/nonexistent/ckpt.msgpack": T.load_checkpoint(path, None), {},
              "path", [("missing", "/nonexistent/ckpt.msgpack"), ("none", None)])
        sweep("training.score_relative_error", lambda t=0.5: T.score_relative_error(score(), score(), Y, t, jo.OU(),
              key=KEY, num_samples=16), {}, "t", bad_time())

    # ------------------------------------------------------------------------------------ verify
    with section('verify'):
        vk = {"measure": mu(), "schedule": jo.OU(), "termination_times": [1.0, 2.0], "key": KEY, "num_samples": 16}
        sweep("verify.convergence_to_brenier", VF.convergence_to_brenier, vk, "termination_times",
              [("neg", [-1.0, 2.0]), ("nan", [float("nan")]), ("empty", []), ("string", "1,2")])
        sweep("verify.convergence_to_brenier", VF.convergence_to_brenier, vk, "eps", bad_time())
        sweep("verify.convergence_to_brenier", VF.convergence_to_brenier, vk, "num_samples", bad_int())
        sweep("verify.convergence_to_brenier", VF.convergence_to_brenier, vk, "direction", [("bogus", "sideways")])
        sweep("verify.OTResolution", VF.OTResolution, {}, "tol", bad_fraction())
        sweep("verify.convergence_to_brenier", VF.convergence_to_brenier, vk, "ot", [("dict", {"tol": 0.1}), ("number", 0.1)])
        sweep("verify.convergence_to_brenier", VF.convergence_to_brenier, vk, "rtol", bad_pos())
        add("verify.convergence_to_brenier", "eps_above_T", lambda: VF.convergence_to_brenier(**{**vk, "eps": 5.0}),
            "error", ("eps",))
        pek = {"measure": mu(), "schedule": jo.OU(), "T": 2.0, "key": KEY, "num_samples": 16}
        sweep("verify.prior_error", VF.prior_error, pek, "T", bad_time())
        sweep("verify.prior_error", VF.prior_error, pek, "eps", bad_time())
        sweep("verify.prior_error", VF.prior_error, pek, "num_samples", bad_int())
        sweep("verify.PriorEstimators", VF.PriorEstimators, {}, "null_quantile", bad_fraction())
        sweep("verify.prior_error", VF.prior_error, pek, "estimators", [("dict", {"sample_points": 0}), ("number", 8)])
        sweep("verify.prior_error", VF.prior_error, pek, "ode", [("dict", {"rtol": 1e-6}), ("number", 1e-6)])
        ock = {"measure": mu(), "schedule": jo.OU(), "T": 2.0, "key": KEY, "num_samples": 64}
        sweep("verify.ot_correction", VF.ot_correction, ock, "T", bad_time())
        sweep("verify.ot_correction", VF.ot_correction, ock, "taus", [("neg", (-0.1,)), ("empty", ()), ("nan", (float("nan"),))])
        sweep("verify.ot_correction", VF.ot_correction, ock, "tolerances", [("neg", (-0.1,)), ("empty", ())])
        xs = np.array([1.0, 2.0, 3.0, 4.0])
        ys = np.exp(-xs)
        sweep("verify.fit_exponential", lambda values=ys: VF.fit_exponential(xs, values), {}, "values",
              [("neg", -np.exp(-xs)), ("shape", np.ones(3))])
        # Documented: NaNs and zeros are left out of the fit, and the result says which points it used.
        add("verify.fit_exponential", "values=nan", lambda: VF.fit_exponential(xs, np.array([1.0, np.nan, 0.1, 0.01])),
            "ok", check=lambda r: None if r.num_points == 3 and not r.mask[1] else "NaN point not reported as left out")
        add("verify.fit_exponential", "values=zeros", lambda: VF.fit_exponential(xs, np.zeros(4)),
            "ok", check=lambda r: None if r.num_points == 0 and np.isnan(r.rate) else "zeros fitted")
        sweep("verify.fit_exponential", lambda level=0.95: VF.fit_exponential(xs, np.exp(-xs), level=level), {}, "level",
              bad_fraction())

    # ------------------------------------------------------------------------------------ data
    sweep("data.toy_2d", D.toy_2d, {"name": "moons", "num_points": 8}, "name", [("bogus", "spiral"), ("none", None)])
    sweep("data.toy_2d", D.toy_2d, {"name": "moons", "num_points": 8}, "num_points", bad_int())
    sweep("data.toy_2d", D.toy_2d, {"name": "moons", "num_points": 8}, "seed", [("neg", -1), ("float", 1.5),
          ("string", "0")])
    sweep("data.to_unit_interval", D.to_unit_interval, {"x": Y, "lo": 0.0, "hi": 1.0}, "hi",
          [("equal_lo", 0.0), ("below_lo", -1.0), ("nan", float("nan")), ("inf", float("inf"))])
    sweep("data.from_unit_interval", D.from_unit_interval, {"x": Y, "lo": 0.0, "hi": 1.0}, "lo",
          [("equal_hi", 1.0), ("nan", float("nan"))])
    sweep("data.to_unit_interval", D.to_unit_interval, {"x": Y, "lo": 0.0, "hi": 1.0}, "x",
          [("nan", nan2), ("string", "x")])
    sweep("data.train_test_split", D.train_test_split, {"x": np.zeros((10, 2))}, "test_fraction", bad_fraction())
    sweep("data.train_test_split", D.train_test_split, {"x": np.zeros((10, 2))}, "seed", [("neg", -1), ("float", 0.5)])
    add("data.train_test_split", "x=scalar", lambda: D.train_test_split(3.0), "error", ("x",))
    add("data.train_test_split", "x=one_point", lambda: D.train_test_split(np.zeros((1, 2))), "error", ("x",))
    sweep("data.image_shape_for", D.image_shape_for, {"dim": 64}, "dim", [("zero", 0), ("neg", -4), ("float", 4.5),
          ("string", "64")])
    tmp = tempfile.mkdtemp(prefix="sweep-data-")

    def write(name, arr):
        p = os.path.join(tmp, name)
        np.save(p, arr) if name.endswith(".npy") else open(p, "w").write(arr)  # noqa: SIM115
        return p

    sweep("data.load_points", D.load_points, {"path": write("ok.npy", Y)}, "path",
          [("missing", os.path.join(tmp, "none.npy")), ("dir", tmp), ("suffix", write("x.txt", "1,2")),
           ("nan_file", write("nan.npy", nan2)), ("string_array", write("s.npy", np.array(["a", "b"]))),
           ("1d", write("one.npy", np.zeros(3))), ("corrupt", write("bad.npy", "not numpy")), ("none", None)])
    sweep("data.load_points", D.load_points, {"path": write("ok2.npy", Y)}, "dtype", [("int", np.int32), ("string", "x")])
    sweep("data.load_points", D.load_points, {"path": write("ok3.npy", Y)}, "dim", [("wrong", 3), ("zero", 0),
          ("neg", -1)])
    sweep("data.load_labels", D.load_labels, {"path": write("lab.npy", np.array([0, 1, 2]))}, "num_points",
          [("wrong", 5), ("neg", -1)])
    sweep("data.load_labels", D.load_labels, {"path": write("lab2.npy", np.array([0, 1, 2]))}, "path",
          [("float_labels", write("fl.npy", np.array([0.5, 1.0]))), ("negative", write("neg.npy", np.array([-1, 0]))),
           ("missing", os.path.join(tmp, "none.npy"))])

    # ------------------------------------------------------------------------------------ more kinds (issue 23)
    # Every public callable the sweep did not reach, and the kinds the other sections lacked: types, ranges,
    # NaN/inf, shapes, empty inputs and files, one bad argument per case.
    def bad_array_1d(n=3):
        yield "nan", np.array([np.nan] + [1.0] * (n - 1), DT)
        yield "inf", np.array([np.inf] + [1.0] * (n - 1), DT)
        yield "2d", np.ones((n, 2), DT)
        yield "empty", np.zeros(0, DT)
        yield "string", "values"
        yield "none", None

    with section("schedules.methods"):
        for cls in (jo.OU, jo.VPLinear, jo.SubVP, jo.Cosine, jo.VE, jo.EDM):
            s = cls()
            for meth in ("alpha", "sigma", "log_snr", "drift", "diffusion2", "marginal"):
                call = lambda t=0.5, s=s, meth=meth: getattr(s, meth)(t)
                kinds = [("neg", -1.0), ("nan", float("nan")), ("string", "0.5"), ("none", None),
                         ("array_with_neg", np.array([0.5, -0.5], DT)), ("jax_neg", jnp.asarray(-0.25, DT))]
                if math.isfinite(s.t_max):
                    kinds.append(("above_tmax", s.t_max + 0.5))
                sweep(f"schedules.methods.{cls.__name__}", call, {}, "t", kinds)
                add(f"schedules.methods.{cls.__name__}", f"{meth}.ok", lambda call=call: call(DT(0.5)), "ok",
                    check=finite)
            sweep(f"schedules.methods.{cls.__name__}", lambda log_snr=0.0, s=s: s.t_from_log_snr(log_snr), {},
                  "log_snr", [("string", "0"), ("none", None)])

    with section("training.train_step"):
        def step_call(x0=None, labels=None, ema_decay=0.999, state=None, objective=None, optimizer=None):
            model = N.ScoreModel(N.MLP(features=8, depth=1), jo.OU())
            opt = T.default_optimizer_for(1e-3)
            st = T.init_train_state(model, opt, X, key=KEY) if state is None else state
            return T.train_step(st, X if x0 is None else x0, labels, objective=objective or T.DSMObjective(model),
                                optimizer=optimizer or opt, ema_decay=ema_decay)

        sweep("training.train_step", step_call, {}, "ema_decay",
              [("above", 1.5), ("one", 1.0), ("neg", -0.1), ("nan", float("nan")), ("string", "0.9")])
        sweep("training.train_step", step_call, {}, "x0",
              [("wrong_dim", np.zeros((4, 3), DT)), ("1d", np.zeros(4, DT)), ("nan", nan2), ("string", "x"),
               ("empty", np.zeros((0, 2), DT)), ("complex", np.zeros((4, 2), np.complex64))])
        sweep("training.train_step", step_call, {}, "labels", [("wrong_shape", np.zeros(7, np.int32))])
        sweep("training.train_step", step_call, {}, "state", [("int", 3), ("string", "state")])
        sweep("training.train_step", step_call, {}, "optimizer", [("string", "adam")])
        add("training.train_step", "ok", lambda: step_call()[1]["loss"], "ok", check=finite)
        ik = {"model": N.ScoreModel(N.MLP(features=8, depth=1), jo.OU()), "optimizer": T.default_optimizer_for(1e-3),
              "x_example": X, "key": KEY}
        sweep("training.init_train_state", T.init_train_state, ik, "x_example",
              [("1d", np.zeros(3, DT)), ("string", "x"), ("none", None), ("empty", np.zeros((0, 2), DT)),
               ("complex", np.zeros((2, 2), np.complex64))])
        sweep("training.init_train_state", T.init_train_state, ik, "key", bad_key())
        sweep("training.init_train_state", T.init_train_state, ik, "optimizer", [("none", None), ("string", "adam")])
        sweep("training.train_steps", lambda ema_decay=0.999: T.train_steps(
            T.init_train_state(ik["model"], ik["optimizer"], X, key=KEY), np.tile(Y, (4, 1)), None, KEY, 4, length=1,
            objective=T.DSMObjective(ik["model"]), optimizer=ik["optimizer"], batch_size=4, ema_decay=ema_decay),
            {}, "ema_decay", [("above", 1.5), ("nan", float("nan"))])
        fk2 = {"objective": T.DSMObjective(ik["model"]), "data": np.tile(Y, (4, 1)), "steps": 1, "batch_size": 4}
        sweep("training.fit.types", T.fit, fk2, "seed", [("string", "abc"), ("float", 1.5), ("none", None),
                                                        ("array", np.zeros(2))])
        sweep("training.fit.types", T.fit, fk2, "ema_decay", [("string", "0.9"), ("one", 1.0), ("inf", float("inf"))])
        sweep("training.fit.types", T.fit, fk2, "data", [("inf", np.where(np.eye(12, 2) > 0, np.inf, 1.0).astype(DT)),
                                                         ("wrong_dim_labels", np.zeros((12, 2, 2), DT))])
        sweep("training.default_optimizer_for", T.default_optimizer_for, {"learning_rate": 1e-3}, "learning_rate",
              bad_pos())
        sweep("training.save_checkpoint", lambda path=None, state=None: T.save_checkpoint(
            path, state if state is not None else T.init_train_state(ik["model"], ik["optimizer"], X, key=KEY)),
            {}, "path", [("none", None), ("number", 3)])
        sweep("training.save_checkpoint", lambda state=None: T.save_checkpoint(
            os.path.join(tempfile.mkdtemp(), "c.msgpack"), state), {}, "state", [("none", None), ("string", "s")])

    with section("ot.pushforward_w2"):
        pw = {"points": Y, "masses": W}
        sweep("ot.pushforward_w2.more", jo.pushforward_w2, pw, "masses",
              [("sum5", np.full(3, 5 / 3, DT)), ("sum_half", np.full(3, 1 / 6, DT)), ("shape", np.full(4, 0.25, DT)),
               ("string", "uniform"), ("none", None), ("inf", np.array([np.inf, 0, 0], DT))])
        sweep("ot.pushforward_w2.more", jo.pushforward_w2, pw, "points", bad_points())
        sweep("ot.pushforward_w2.more", jo.pushforward_w2, pw, "weights", bad_weights())

    with section("samplers.class_scores"):
        lab = np.array([0, 1, 1])
        ck2 = {"points": Y, "labels": lab, "schedule": jo.OU()}
        sweep("samplers.ExactClassScores", S.ExactClassScores.from_data, ck2, "points", bad_points())
        sweep("samplers.ExactClassScores", S.ExactClassScores.from_data, ck2, "labels",
              [("none", None), ("string", "abc"), ("float", np.array([0.5, 1.0, 1.0])), ("negative", np.array([0, -1, 1])),
               ("shape", np.array([0, 1]))])
        sweep("samplers.ExactClassScores", S.ExactClassScores.from_data, ck2, "schedule", bad_schedule())
        sweep("samplers.ExactClassScores.for_class", lambda label=0: S.ExactClassScores.from_data(
            Y, lab, jo.OU()).for_class(label), {}, "label", [("absent", 5), ("string", "0"), ("float", 0.5), ("none", None)])
        sweep("samplers.ExactClassScores.for_class", lambda guidance=0.0: S.ExactClassScores.from_data(
            Y, lab, jo.OU()).for_class(0, guidance), {}, "guidance", [("nan", float("nan")), ("inf", float("inf")),
                                                                   ("string", "1")])
        pck = {"schedule": jo.VPLinear(), "data_points": Y, "labels": lab, "key": KEY, "t_prime": 0.2, "ot_tol": 0.3}
        sweep("samplers.prepare_conditional_ot_prior", S.prepare_conditional_ot_prior, pck, "data_points",
              bad_points())
        sweep("samplers.prepare_conditional_ot_prior", S.prepare_conditional_ot_prior, pck, "labels",
              [("none", None), ("negative", np.array([0, -1, 1])), ("shape", np.array([0, 1]))])
        sweep("samplers.prepare_conditional_ot_prior", S.prepare_conditional_ot_prior, pck, "t_prime", bad_time())
        sweep("samplers.prepare_conditional_ot_prior", S.prepare_conditional_ot_prior, pck, "key", bad_key())

    with section("data.files"):
        def text(name, body):
            p = os.path.join(tmp, name)
            with open(p, "w") as fh:
                fh.write(body)
            return p

        sweep("data.load_points.files", D.load_points, {"path": write("okf.npy", Y)}, "path",
              [("csv_header", text("h.csv", "x,y\n1,2\n3,4\n")), ("csv_semicolon", text("s.csv", "1;2\n3;4\n")),
               ("csv_tabs", text("t.csv", "1\t2\n3\t4\n")), ("csv_empty", text("e.csv", "")),
               ("csv_blank_lines", text("b.csv", "\n\n")), ("csv_ragged", text("r.csv", "1,2\n3\n")),
               ("csv_text_body", text("tb.csv", "1,2\n3,x\n")), ("npy_empty", write("e.npy", np.zeros((0, 2), DT))),
               ("npy_inf", write("inf.npy", np.array([[np.inf, 0.0]], DT))), ("number", 3),
               ("txt_suffix", text("p.txt", "1,2\n"))])
        sweep("data.load_points.files", D.load_points, {"path": write("okk.npy", Y)}, "key",
              [("on_npy", "x"), ("number", 3)])
        sweep("data.load_points.files", D.load_points, {"path": text("okk.csv", "1,2\n3,4\n")}, "key",
              [("on_csv", "x")])
        sweep("data.load_labels.files", D.load_labels, {"path": write("labk.npy", np.array([0, 1, 2]))}, "key",
              [("on_npy", "y")])
        sweep("data.load_labels.files", D.load_labels, {"path": write("labk2.npy", np.array([0, 1, 2]))}, "path",
              [("csv_header", text("lh.csv", "label\n1\n2\n")), ("csv_empty", text("le.csv", "")),
               ("nan", write("ln.npy", np.array([0.0, np.nan])))])
        for fn in (D.load_digits, D.load_mnist_subset):
            for arg in ("scaled", "return_labels"):
                sweep(f"data.{fn.__name__}", fn, {}, arg, [("string", "yes"), ("none", None), ("int", 1)])

    with section("networks.more"):
        sweep("networks.classifier_free_guidance", lambda guidance=1.0: N.classifier_free_guidance(
            jnp.ones(2, DT), jnp.zeros(2, DT), guidance), {}, "guidance",
            [("nan", float("nan")), ("inf", float("inf")), ("string", "1"), ("none", None)])
        sweep("networks.FourierEmbedding", lambda dim=8, scale=1.0: N.ScoreModel(
            N.MLP(features=8, depth=1, embedding=N.FourierEmbedding(dim=dim, scale=scale)), jo.OU()).init(KEY, X), {},
            "dim", [("zero", 0), ("odd", 7), ("neg", -2), ("string", "8")])
        sweep("networks.FourierEmbedding", lambda dim=8, scale=1.0: N.ScoreModel(
            N.MLP(features=8, depth=1, embedding=N.FourierEmbedding(dim=dim, scale=scale)), jo.OU()).init(KEY, X), {},
            "scale", [("neg", -1.0), ("nan", float("nan")), ("zero", 0.0)])
        sweep("networks.as_network", N.as_network, {"obj": lambda x, log_snr: x}, "obj",
              [("number", 3), ("string", "mlp"), ("none", None), ("wrong_signature", lambda x: x)])
        sweep("networks.as_network", N.as_network, {"obj": lambda x, log_snr: x}, "conditioning",
              [("number", 1.0), ("string", "t")])
        sweep("networks.as_network", N.as_network, {"obj": lambda x, log_snr: x}, "num_classes",
              [("zero", 0), ("neg", -1), ("float", 2.5), ("string", "3")])
        sweep("networks.ScoreModel.sigma_data", lambda sigma_data=0.5: N.ScoreModel(
            N.MLP(features=8, depth=1), jo.OU(), N.EDMPreconditioning(0.5), sigma_data=sigma_data), {}, "sigma_data",
            [("disagrees", 1.0)])
        sweep("networks.load_model", N.load_model, {"folder": tmp}, "folder",
              [("missing", os.path.join(tmp, "nope")), ("file", write("f.npy", Y)), ("none", None), ("number", 3),
               ("empty_folder", tempfile.mkdtemp())])
        sweep("networks.save_model", lambda folder=None, params=None, data=None: N.save_model(
            folder if folder is not None else tempfile.mkdtemp(), N.ScoreModel(N.MLP(features=8, depth=1), jo.OU()),
            params if params is not None else {"w": np.zeros(2)}, data={"dim": 2} if data is None else data), {},
            "folder", [("number", 3)])
        sweep("networks.save_model", lambda params=None: N.save_model(
            tempfile.mkdtemp(), N.ScoreModel(N.MLP(features=8, depth=1), jo.OU()), params, data={"dim": 2}), {},
            "params", [("empty", {}), ("none", None)])
        sweep("networks.save_model", lambda data=None: N.save_model(
            tempfile.mkdtemp(), N.ScoreModel(N.MLP(features=8, depth=1), jo.OU()), {"w": np.zeros(2)}, data=data), {},
            "data", [("no_dim", {"scale": [0, 1]})])
        sweep("networks.model_from_config", N.model_from_config, {"cfg": {}}, "cfg",
              [("empty", {}), ("none", None), ("string", "mlp")], names=("cfg", "model.json", "network"))

    with section("verify.more"):
        sweep("verify.monotone_map_1d", VF.monotone_map_1d, {"points": np.array([[-1.0], [0.0], [2.0]])}, "points",
              [("nan", np.array([np.nan, 0.0, 1.0])), ("2d", np.zeros((3, 2))), ("empty", np.zeros(0)),
               ("string", "x"), ("none", None)])
        sweep("verify.monotone_map_1d", VF.monotone_map_1d, {"points": np.array([[-1.0], [0.0], [2.0]])}, "weights",
              [("sum2", np.full(3, 2 / 3)), ("neg", np.array([1.5, -0.5, 0.0])), ("shape", np.full(4, 0.25))])
        rk = {"ns": (2, 3), "ds": (1, 2), "key": KEY}
        sweep("verify.random_clouds", VF.random_clouds, rk, "ns", [("zero", (0, 3)), ("neg", (-2,)), ("empty", ()),
                                                                   ("float", (2.5,)), ("string", "2,3")])
        sweep("verify.random_clouds", VF.random_clouds, rk, "ds", [("zero", (0,)), ("empty", ())])
        sweep("verify.random_clouds", VF.random_clouds, rk, "scale", bad_pos())
        sweep("verify.random_clouds", VF.random_clouds, rk, "key", bad_key())
        sweep("verify.random_clouds", VF.random_clouds, rk, "weightings", [("bogus", ("uniform",)), ("empty", ())])
        z = np.zeros((4, 2))
        zo = np.ones((4, 2))
        sweep("verify.transport_cost_gap", lambda z=z, map_points=z, ot_points=zo: VF.transport_cost_gap(
            z, map_points, ot_points), {}, "z", [("nan", np.full((4, 2), np.nan)), ("string", "z")])
        sweep("verify.transport_cost_gap", lambda map_points=z: VF.transport_cost_gap(z, map_points, zo), {},
              "map_points", [("shape", np.zeros((3, 2))), ("nan", np.full((4, 2), np.nan))])
        sweep("verify.monotone_control", lambda num_points=5: VF.monotone_control(key=KEY, num_points=num_points,
              times=(4.0,), num_samples=16), {}, "num_points", bad_int())
        sweep("verify.monotone_control", lambda spacing=0.3: VF.monotone_control(key=KEY, num_points=5, spacing=spacing,
              times=(4.0,), num_samples=16), {}, "spacing", bad_pos())
        sweep("verify.prior_error_curve", lambda times=(1.0,): VF.prior_error_curve(mu(), jo.OU(), times, key=KEY,
              num_samples=16), {}, "times", [("neg", (-1.0,)), ("empty", ()), ("nan", (float("nan"),)),
                                             ("string", "1,2")])

    with section("plotting"):
        import matplotlib

        matplotlib.use("Agg")
        from jaxotdm import plotting as P

        pts = np.random.default_rng(0).standard_normal((10, 2))
        sweep("plotting.samples_2d", P.samples_2d, {"samples": pts}, "samples",
              [("1d", np.zeros(5)), ("3d_points", np.zeros((5, 3))), ("string", "x"), ("none", None),
               ("nan", np.full((5, 2), np.nan)), ("empty", np.zeros((0, 2)))])
        sweep("plotting.samples_2d", P.samples_2d, {"samples": pts}, "max_points", bad_int())
        sweep("plotting.image_grid", P.image_grid, {"images": np.zeros((4, 64)), "shape": (8, 8)}, "images",
              [("string", "x"), ("none", None), ("wrong_size", np.zeros((4, 63))), ("empty", np.zeros((0, 64)))])
        sweep("plotting.image_grid", P.image_grid, {"images": np.zeros((4, 64)), "shape": (8, 8)}, "ncol", bad_int())
        sweep("plotting.image_grid", P.image_grid, {"images": np.zeros((4, 64)), "shape": (8, 8)}, "value_range",
              [("reversed", (1.0, -1.0)), ("nan", (float("nan"), 1.0)), ("string", "0,1")])
        sweep("plotting.loss_curve", P.loss_curve, {"losses": np.ones(10)}, "losses",
              [("string", "x"), ("none", None), ("empty", np.zeros(0)), ("2d", np.ones((3, 3)))])
        sweep("plotting.loss_curve", P.loss_curve, {"losses": np.ones(10)}, "smooth", [("zero", 0), ("neg", -2),
                                                                                       ("float", 2.5)])
        sweep("plotting.convergence_curve", P.convergence_curve, {"x": np.arange(1.0, 4.0), "y": np.ones(3)}, "y",
              [("shape", np.ones(4)), ("string", "y"), ("none", None)])
        sweep("plotting.convergence_curve", P.convergence_curve, {"x": np.arange(1.0, 4.0), "y": np.ones(3)}, "level",
              bad_fraction())

    with section("ot.more"):
        sweep("ot.CandidateNewtonSolver", O.CandidateNewtonSolver, {}, "candidates", bad_int())
        sweep("ot.CandidateNewtonSolver", O.CandidateNewtonSolver, {}, "bandwidth", bad_pos())
        sweep("ot.CandidateNewtonSolver", O.CandidateNewtonSolver, {}, "noise_fraction", bad_fraction())
        sweep("ot.CandidateNewtonSolver", O.CandidateNewtonSolver, {}, "max_iterations", bad_int())

    # ------------------------------------------------------------------------------------ sharding
    sweep("sharding.PointSharding", lambda axis="points": jo.PointSharding(
        jax.make_mesh((1,), ("points",)), axis), {}, "axis", [("bogus", "rows"), ("none", None), ("number", 0)])
    sweep("sharding.PointSharding", lambda mesh=None: jo.PointSharding(mesh, "points"), {}, "mesh",
          [("none", None), ("string", "mesh")])
    return cases


def _cli_cases(add):
    import numpy as np

    tmp = tempfile.mkdtemp(prefix="sweep-cli-")
    pts = os.path.join(tmp, "pts.npy")
    np.save(pts, np.random.default_rng(0).standard_normal((8, 2)).astype(np.float32))
    existing = os.path.join(tmp, "existing")
    os.makedirs(existing, exist_ok=True)
    with open(os.path.join(existing, "flow.json"), "w") as fh:
        fh.write("{}")

    def cli(argv):
        return lambda: ("cli", argv)

    flow = ["flow", "--dataset", "two_points", "--num-samples", "4"]
    for label, extra, names in [
        ("t_end_above_T", ["--t-end", "20", "--T", "3"], ("--t-end", "--T")),
        ("T_neg", ["--T", "-1"], ("--T",)),
        ("T_zero", ["--T", "0"], ("--T",)),
        ("T_nan", ["--T", "nan"], ("--T",)),
        ("T_inf", ["--T", "inf"], ("--T",)),
        ("T_string", ["--T", "abc"], ("--T",)),
        ("T_cosine_above", ["--schedule", "cosine", "--T", "2"], ("--T",)),
        ("t_end_zero", ["--t-end", "0"], ("--t-end",)),
        ("t_end_neg", ["--t-end", "-1e-3"], ("--t-end",)),
        ("t_end_nan", ["--t-end", "nan"], ("--t-end",)),
        ("t_end_subnormal", ["--t-end", "1e-40"], ("--t-end",)),
        ("rtol_zero", ["--rtol", "0"], ("--rtol",)),
        ("rtol_inf", ["--rtol", "inf"], ("--rtol",)),
        ("rtol_neg", ["--rtol", "-1"], ("--rtol",)),
        ("num_samples_zero", ["--num-samples", "0"], ("--num-samples",)),
        ("num_samples_neg", ["--num-samples", "-4"], ("--num-samples",)),
        ("max_points_zero", ["--max-points", "0"], ("--max-points",)),
        ("schedule_bogus", ["--schedule", "linear"], ("--schedule",)),
        ("dataset_bogus", ["--dataset", "nope"], ("--dataset",)),
        ("dataset_missing", ["--dataset", os.path.join(tmp, "missing.npy")], ("--dataset",)),
        ("seed_neg", ["--seed", "-1"], ("--seed",)),
        ("seed_float", ["--seed", "1.5"], ("--seed",)),
        ("out_existing", ["--out", existing], ("--out", "--overwrite")),
    ]:
        add("cli.flow", label, cli(flow + extra + ([] if "--out" in extra else ["--out", os.path.join(tmp, "f-" + label)])),
            "error", names, timeout=60, cli=True)
    add("cli.flow", "ok", cli(flow + ["--T", "3", "--t-end", "0.01", "--out", os.path.join(tmp, "flow-ok")]), "ok",
        timeout=240, cli=True)
    add("cli.flow", "ok_npy", cli(["flow", "--dataset", pts, "--num-samples", "4", "--T", "3", "--out",
                                    os.path.join(tmp, "flow-ok2")]), "ok", timeout=240, cli=True)

    # files given as --dataset / --checkpoint (issue 23 item 7): one line naming the option, before any work
    def cli_file(name, body):
        p = os.path.join(tmp, name)
        if isinstance(body, str):
            with open(p, "w") as fh:
                fh.write(body)
        else:
            np.save(p, body)
        return p

    for label, argv, names in [
        ("csv_header", ["--dataset", cli_file("h.csv", "x,y\n1,2\n3,4\n")], ("--dataset",)),
        ("csv_semicolon", ["--dataset", cli_file("s.csv", "1;2\n3;4\n")], ("--dataset",)),
        ("csv_empty", ["--dataset", cli_file("e.csv", "")], ("--dataset",)),
        ("npz_key_on_npy", ["--dataset", pts, "--npz-key", "x"], ("--npz-key",)),
        ("npy_nan", ["--dataset", cli_file("nan.npy", np.array([[np.nan, 0.0], [1.0, 1.0]]))], ("--dataset",)),
    ]:
        add("cli.flow.files", label, cli(["flow", *argv, "--num-samples", "4", "--out",
                                           os.path.join(tmp, "ff-" + label)]), "error", names, timeout=60, cli=True)
        add("cli.train.files", label, cli(["train", *argv, "--steps", "1", "--no-progress", "--out",
                                            os.path.join(tmp, "tf-" + label)]), "error", names, timeout=60, cli=True)
    gen = ["generate", "--no-progress"]
    for label, argv, names in [
        ("checkpoint_file", ["--checkpoint", pts, "--out", os.path.join(tmp, "g1.npy")], ("--checkpoint",)),
        ("checkpoint_missing", ["--checkpoint", os.path.join(tmp, "nope"), "--out", os.path.join(tmp, "g2.npy")],
         ("--checkpoint",)),
        ("out_not_npy", ["--checkpoint", existing, "--out", os.path.join(tmp, "g3.txt")], ("--out",)),
        ("nfe_zero", ["--checkpoint", existing, "--nfe", "0", "--out", os.path.join(tmp, "g4.npy")], ("--nfe",)),
        ("T_nan", ["--checkpoint", existing, "--T", "nan", "--out", os.path.join(tmp, "g5.npy")], ("--T",)),
        ("tau_without_ot_prior", ["--checkpoint", existing, "--tau", "0.1", "--out", os.path.join(tmp, "g6.npy")],
         ("--tau",)),
        ("checkpoint_missing_arg", ["--out", os.path.join(tmp, "g7.npy")], ("--checkpoint",)),
    ]:
        add("cli.generate", label, cli(gen + argv), "error", names, timeout=60, cli=True)

    sample = ["sample", "--dataset", "two_points", "--num-samples", "4", "--train-size", "8", "--no-progress",
              "--classifier-steps", "2"]
    for label, extra, names in [
        ("nfe_odd_heun", ["--nfe", "3,4", "--samplers", "ddim,heun"], ("--nfe",)),
        ("nfe_zero", ["--nfe", "0"], ("--nfe",)),
        ("nfe_string", ["--nfe", "a,b"], ("--nfe",)),
        ("samplers_bogus", ["--samplers", "rk4"], ("--samplers",)),
        ("train_size_neg", ["--train-size", "-3"], ("--train-size",)),
        ("num_samples_zero", ["--num-samples", "0"], ("--num-samples",)),
        ("T_neg", ["--T", "-1"], ("--T",)),
        ("t_end_neg", ["--t-end", "-1"], ("--t-end",)),
        ("t_end_above_T", ["--t-end", "2", "--T", "1"], ("--t-end",)),
        ("t_prime_zero", ["--t-prime", "0.2,0.0"], ("--t-prime",)),
        ("t_prime_tiny", ["--t-prime", "0.2,0.0001"], ("--t-prime",)),
        ("tau_neg", ["--tau", "-1"], ("--tau",)),
        ("ot_nfe_zero", ["--ot-nfe", "0"], ("--ot-nfe",)),
        ("ot_tol_zero", ["--ot-tol", "0"], ("--ot-tol",)),
        ("ot_tol_inf", ["--ot-tol", "inf"], ("--ot-tol",)),
        ("guidance_nan", ["--guidance", "nan"], ("--guidance",)),
        ("guidance_inf", ["--guidance", "inf"], ("--guidance",)),
        ("ddpm_steps_zero", ["--ddpm-steps", "0"], ("--ddpm-steps",)),
        ("classifier_steps_neg", ["--classifier-steps", "-1"], ("--classifier-steps",)),
        ("dataset_bogus", ["--dataset", "nope"], ("--dataset",)),
    ]:
        add("cli.sample", label, cli(sample + extra + ["--out", os.path.join(tmp, "s-" + label)]), "error", names,
            timeout=60, cli=True)

    train = ["train", "--data", "moons", "--num-points", "64", "--steps", "2", "--no-progress", "--eval-every", "1",
             "--eval-samples", "8", "--checkpoint-every", "1", "--batch-size", "8"]
    for label, extra, names in [
        ("steps_zero", ["--steps", "0"], ("--steps",)),
        ("batch_zero", ["--batch-size", "0"], ("--batch-size",)),
        ("batch_above_n", ["--batch-size", "100000"], ("--batch-size",)),
        ("lr_zero", ["--lr", "0"], ("--lr",)),
        ("lr_inf", ["--lr", "inf"], ("--lr",)),
        ("lr_nan", ["--lr", "nan"], ("--lr",)),
        ("ema_above", ["--ema-decay", "1.5"], ("--ema-decay",)),
        ("depth_neg", ["--depth", "-1"], ("--depth",)),
        ("features_zero", ["--features", "0"], ("--features",)),
        ("max_train_neg", ["--max-train", "-5"], ("--max-train",)),
        ("num_points_zero", ["--num-points", "0"], ("--num-points",)),
        ("test_fraction_one", ["--test-fraction", "1"], ("--test-fraction",)),
        ("t_min_neg", ["--t-min", "-1"], ("--t-min",)),
        ("t_max_below_min", ["--t-min", "0.5", "--t-max", "0.1"], ("--t-max", "--t-min")),
        ("eval_samples_zero", ["--eval-samples", "0"], ("--eval-samples",)),
        ("checkpoint_every_zero", ["--checkpoint-every", "0"], ("--checkpoint-every",)),
        ("label_dropout_above", ["--label-dropout", "2"], ("--label-dropout",)),
        ("scale_bad", ["--data", pts, "--scale", "1,1"], ("--scale",)),
        ("image_shape_bad", ["--data", pts, "--image-shape", "a,b"], ("--image-shape",)),
        ("data_missing", ["--data", os.path.join(tmp, "missing.npy")], ("--data",)),
    ]:
        add("cli.train", label, cli(train + extra + ["--out", os.path.join(tmp, "t-" + label)]), "error", names,
            timeout=60, cli=True)

    verify = ["verify", "--quick", "--no-progress", "--toy", "two_points", "--num-samples", "16"]
    for label, extra, names in [
        ("times_above_cosine", ["--schedules", "ou,cosine", "--times", "1,2"], ("--times",)),
        ("times_neg", ["--times", "-1,2"], ("--times",)),
        ("times_string", ["--times", "a"], ("--times",)),
        ("eps_large", ["--eps", "5"], ("--eps",)),
        ("eps_zero", ["--eps", "0"], ("--eps",)),
        ("schedules_bogus", ["--schedules", "linear"], ("--schedules",)),
        ("toy_bogus", ["--toy", "spiral"], ("--toy",)),
        ("num_samples_zero", ["--num-samples", "0"], ("--num-samples",)),
        ("ot_tol_zero", ["--ot-tol", "0"], ("--ot-tol",)),
        ("toy_points_zero", ["--toy-points", "0"], ("--toy-points",)),
    ]:
        add("cli.verify", label, cli(verify + extra + ["--out", os.path.join(tmp, "v-" + label)]), "error", names,
            timeout=60, cli=True)
    add("cli", "no_command", cli([]), "error", ("COMMAND", "usage"), timeout=30, cli=True)
    add("cli", "unknown_command", cli(["bogus"]), "error", ("bogus", "invalid choice"), timeout=30, cli=True)


# ============================================================================================== running
def _names_in(msg: str, names) -> bool:
    for n in names:
        if n.startswith("-") or " " in n:
            if n in msg:
                return True
        elif re.search(rf"[`'\"]{re.escape(n)}[`'\"\[=( ]", msg) or re.search(rf"`{re.escape(n)}", msg):
            return True
        elif len(n) >= 4 and re.search(rf"(?<![\w]){re.escape(n)}(?![\w])", msg):
            return True
    return False


def _from_package(tb) -> bool:
    frames = traceback.extract_tb(tb)
    if not frames:
        return False
    last = frames[-1].filename.replace(os.sep, "/")
    return "/jaxotdm/" in last or last.endswith("argparse.py")


def _run_cli(argv):
    from jaxotdm.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(list(argv))
        except SystemExit as exc:
            rc = exc.code if isinstance(exc.code, int) else 1
    return rc, out.getvalue(), err.getvalue()


class _Timeout(BaseException):
    pass


def _alarm(signum, frame):
    raise _Timeout()


def run_case(c: Case) -> dict:
    import jax
    import numpy as np

    rec = {"id": c.id, "group": c.group, "expect": c.expect}
    t0 = time.perf_counter()
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(int(c.timeout))
    caught = []
    try:
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            result = c.fn()
            if isinstance(result, tuple) and len(result) == 2 and result[0] == "cli":
                result = ("cli-result",) + _run_cli(result[1])
            else:
                result = jax.block_until_ready(result)
            caught = [f"{type(x.message).__name__}: {x.message}" for x in w
                      if not issubclass(x.category, DeprecationWarning)]
    except _Timeout:
        signal.alarm(0)
        rec.update(outcome="late" if c.expect == "error" else "hang",
                   detail=f"exceeded {c.timeout} s", seconds=round(time.perf_counter() - t0, 2))
        return rec
    except BaseException as exc:  # noqa: BLE001 - classify everything
        signal.alarm(0)
        dt = time.perf_counter() - t0
        msg = f"{type(exc).__name__}: {exc}"
        tb = exc.__traceback__
        frames = traceback.extract_tb(tb)
        from_status = bool(frames) and frames[-1].filename.replace(os.sep, "/").endswith("jaxotdm/_status.py")
        kind_ok = isinstance(exc, (ValueError, TypeError)) or (isinstance(exc, RuntimeError) and from_status)
        clear = kind_ok and _from_package(tb) and (_names_in(str(exc), c.names) if c.names else True)
        outcome = ("clear" if clear else "unclear") if c.expect == "error" else "refused_valid"
        if clear and c.cli and dt > LATE_SECONDS:
            outcome = "late"
        rec.update(outcome=outcome, detail=msg[:400], seconds=round(dt, 2),
                   raised_in=(traceback.extract_tb(tb)[-1].filename if traceback.extract_tb(tb) else ""))
        return rec
    signal.alarm(0)
    dt = time.perf_counter() - t0
    rec["seconds"] = round(dt, 2)
    if caught:
        rec["warnings"] = caught[:3]
    if isinstance(result, tuple) and result and result[0] == "cli-result":
        rc, out, err = result[1:]
        rec["rc"] = rc
        if c.expect == "ok":
            rec.update(outcome="ok" if rc == 0 else "refused_valid", detail=(err or out)[-300:])
        elif rc == 0:
            rec.update(outcome="silent", detail="exit 0 on a bad option: " + out[-200:])
        else:
            text = err + out  # argparse and the commands write errors to stderr; bare `jaxotdm` prints help
            clear = _names_in(text, c.names) and "Traceback" not in text
            outcome = "clear" if clear else "unclear"
            if clear and dt > LATE_SECONDS:
                outcome = "late"
            rec.update(outcome=outcome, detail=err[-400:])
        return rec
    if c.expect == "error":
        nonfinite = False
        try:
            leaves = [np.asarray(v) for v in jax.tree.leaves(result) if hasattr(v, "dtype")]
            nonfinite = any(np.issubdtype(v.dtype, np.floating) and not np.all(np.isfinite(v)) for v in leaves)
        except Exception:  # noqa: BLE001
            pass
        rec.update(outcome="silent", detail=("returned NaN/inf" if nonfinite else "returned a result")
                   + (f"; warned: {caught[0]}" if caught else ""))
        return rec
    problem = c.check(result) if c.check is not None else None
    if problem:
        rec.update(outcome="clear" if caught else "silent", detail=problem + (f"; warned: {caught[0]}" if caught else ""))
    else:
        rec.update(outcome="ok")
    return rec


def child(mode: str, start: int, out_path: str, groups) -> None:
    import jax

    jax.config.update("jax_enable_x64", mode != "f32")
    os.environ.setdefault("MPLBACKEND", "Agg")
    cases = build_cases(mode)
    with open(out_path, "a") as fh:
        for i, c in enumerate(cases):
            if i < start or (groups and not any(c.group == g or c.group.startswith(g + ".") for g in groups)):
                continue
            fh.write(json.dumps({"start": i, "id": c.id}) + "\n")
            fh.flush()
            rec = run_case(c)
            rec["mode"] = mode
            rec["index"] = i
            fh.write(json.dumps(rec) + "\n")
            fh.flush()
            jax.clear_caches() if i % 50 == 49 else None
        fh.write(json.dumps({"done": len(cases)}) + "\n")


def drive(modes, groups, out_json, by_group: bool, watchdog: float) -> dict:
    results = []
    for mode in modes:
        start = 0
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as tf:
            path = tf.name
        while True:
            cmd = [sys.executable, os.path.abspath(__file__), "--child", mode, "--start", str(start), "--jsonl", path]
            if groups:
                cmd += ["--groups", ",".join(groups)]
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            last_size, last_change = -1, time.time()
            killed = False
            while proc.poll() is None:
                time.sleep(1.0)
                size = os.path.getsize(path)
                if size != last_size:
                    last_size, last_change = size, time.time()
                elif time.time() - last_change > watchdog:
                    proc.kill()
                    killed = True
                    break
            proc.wait()
            lines = [json.loads(x) for x in open(path) if x.strip()]
            done = any("done" in x for x in lines)
            finished = {x["index"] for x in lines if "outcome" in x}
            started = [x for x in lines if "start" in x]
            if done:
                break
            last = started[-1] if started else None
            if last is None or last["start"] in finished:  # died outside a case (e.g. while building cases)
                err = proc.stderr.read()[-2000:] if proc.stderr else ""
                raise SystemExit(f"sweep child for {mode} died outside a case:\n{err}")
            with open(path, "a") as fh:
                fh.write(json.dumps({"id": last["id"], "group": last["id"].split(":")[0], "mode": mode,
                                     "index": last["start"], "outcome": "hang" if killed else "crash",
                                     "detail": f"process {'killed after no progress' if killed else 'died'} "
                                               f"(exit {proc.returncode})"}) + "\n")
            start = last["start"] + 1
        results += [x for x in (json.loads(x) for x in open(path) if x.strip()) if "outcome" in x]
        os.unlink(path)
    counts = collections.Counter(r["outcome"] for r in results)
    summary = {"total": len(results), "counts": {k: counts.get(k, 0) for k in CATEGORIES},
               "by_mode": {m: dict(collections.Counter(r["outcome"] for r in results if r["mode"] == m)) for m in modes}}
    groups_count = collections.defaultdict(collections.Counter)
    for r in results:
        groups_count[r["group"]][r["outcome"]] += 1
    summary["by_group"] = {g: dict(c) for g, c in sorted(groups_count.items())}
    if out_json:
        with open(out_json, "w") as fh:
            json.dump({"summary": summary, "cases": results}, fh, indent=1)
    total = len(results)
    print(f"hostile sweep: {total} cases ({', '.join(modes)})")  # noqa: T201
    for k in CATEGORIES:
        print(f"  {k:14s} {counts.get(k, 0):5d}  ({100.0 * counts.get(k, 0) / max(total, 1):5.1f}%)")  # noqa: T201
    if by_group:
        for g, c in sorted(groups_count.items()):
            bad = {k: v for k, v in c.items() if k not in ("ok", "clear")}
            if bad:
                print(f"  {g:48s} {bad}")  # noqa: T201
    return summary


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--modes", default="f32,f64,cli", help="comma-separated among f32, f64, cli")
    p.add_argument("--groups", default="", help="only these case groups (prefixes), comma-separated")
    p.add_argument("--out", default="hostile_sweep.json", help="JSON file with every case")
    p.add_argument("--by-group", action="store_true", help="print the non-ok outcomes per group")
    p.add_argument("--watchdog", type=float, default=400.0, help="kill a child after this long without progress")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--start", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--jsonl", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    groups = [g for g in args.groups.split(",") if g]
    if args.child:
        child(args.child, args.start, args.jsonl, groups)
        return 0
    drive([m for m in args.modes.split(",") if m], groups, args.out, args.by_group, args.watchdog)
    return 0


if __name__ == "__main__":
    sys.exit(main())
