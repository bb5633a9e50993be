"""The status contract (:mod:`jaxotdm._status`, CONTRIBUTING "The status contract") at the two entry points
that joined it last (issue 21): ``samplers.sample`` and ``semidiscrete_ot``. Called eagerly, a failure raises
a ``RuntimeError`` naming the function (``throw=True``, the default); ``throw=False`` returns the result with
its status and warns; the removed keywords (``sample(dtype=...)``, ``semidiscrete_ot(warn=...)``) are
TypeErrors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxotdm as jo
from jaxotdm import samplers as S
from jaxotdm._status import ConvergenceWarning, Status

SCHED = jo.VPLinear()
SCORE = jo.exact_score(jo.GaussianMeasure(np.array([0.5, -1.0]), np.eye(2)), SCHED)
NAN_SCORE = lambda x, t: jnp.nan * x  # every step goes non-finite
X = np.zeros((3, 2))
KW = dict(t_start=1.0, t_end=1e-2, num_steps=3)
TARGETS = np.array([[-1.0, 0.0], [1.0, 0.0], [0.0, 2.0], [0.5, 0.5]])
BUDGET_OF_ONE = jo.NewtonSolver(max_iterations=1)  # cannot reach tol 0.01


def test_sample_raises_by_default():
    with pytest.raises(RuntimeError, match=r"^sample \(Euler\): a non-finite value"):
        S.sample(S.Euler(), NAN_SCORE, SCHED, X, **KW)


def test_sample_throw_false_warns_and_returns_the_status():
    with pytest.warns(ConvergenceWarning, match=r"sample \(Euler\): a non-finite value"):
        out = S.sample(S.Euler(), NAN_SCORE, SCHED, X, **KW, throw=False)
    assert Status(int(out.status)) == Status.NONFINITE
    assert out.points.shape == X.shape


def test_sample_under_jit_returns_the_status():
    out = jax.jit(lambda x: S.sample(S.Euler(), NAN_SCORE, SCHED, x, **KW))(X)
    assert Status(int(out.status)) == Status.NONFINITE


def test_sample_success_neither_raises_nor_warns():
    out = S.sample(S.Euler(), SCORE, SCHED, X, **KW)  # warnings are errors in the test suite
    assert Status(int(out.status)) == Status.SUCCESS


def test_sample_shape_carries_the_prior_draws_dtype():
    key = jax.random.key(0)
    out = S.sample(S.Euler(), SCORE, SCHED, **KW, key=key, shape=jax.ShapeDtypeStruct((5, 2), jnp.float32))
    assert out.points.shape == (5, 2) and out.points.dtype == jnp.float32
    plain = S.sample(S.Euler(), SCORE, SCHED, **KW, key=key, shape=(5, 2))
    assert plain.points.dtype == jnp.result_type(float)
    # an integer ``x`` runs in the default float, a floating ``x`` in its own dtype
    from_int = S.sample(S.Euler(), SCORE, SCHED, np.zeros((3, 2), np.int32), **KW)
    assert from_int.points.dtype == jnp.result_type(float)
    assert S.sample(S.Euler(), SCORE, SCHED, X.astype(np.float32), **KW).points.dtype == jnp.float32


@pytest.mark.parametrize("bad", [jax.ShapeDtypeStruct((5, 2), jnp.int32), jax.ShapeDtypeStruct((5, 2), jnp.bool_),
                                 jax.ShapeDtypeStruct((5, 0), jnp.float32), (5, -2), 5, "ab"],
                         ids=["int", "bool", "zero-d", "negative", "int-not-tuple", "string"])
def test_sample_refuses_a_bad_shape_before_any_work(bad):
    with pytest.raises(ValueError, match=r"`shape` must be a tuple of positive ints \(\.\.\., d\) or a "
                                         r"jax.ShapeDtypeStruct with a floating dtype"):
        S.sample(S.Euler(), SCORE, SCHED, **KW, key=jax.random.key(0), shape=bad)


def test_sample_removed_dtype_and_bad_throw():
    with pytest.raises(TypeError, match="dtype"):
        S.sample(S.Euler(), SCORE, SCHED, X, **KW, dtype=np.float32)
    with pytest.raises(ValueError, match="`throw`"):
        S.sample(S.Euler(), SCORE, SCHED, X, **KW, throw="no")


def test_semidiscrete_ot_raises_by_default():
    with pytest.raises(RuntimeError, match=r"^semidiscrete_ot: the iteration budget ran out.*throw=False"):
        jo.semidiscrete_ot(TARGETS, key=jax.random.key(0), tol=0.01, solver=BUDGET_OF_ONE)


def test_semidiscrete_ot_throw_false_warns_and_returns_the_map():
    with pytest.warns(ConvergenceWarning, match=r"semidiscrete_ot: the iteration budget ran out"):
        smap = jo.semidiscrete_ot(TARGETS, key=jax.random.key(0), tol=0.01, solver=BUDGET_OF_ONE, throw=False)
    assert Status(int(smap.diagnostics.status)) == Status.MAX_ITERATIONS
    assert smap.heights.shape == (4,)


def test_semidiscrete_ot_removed_warn_and_bad_throw():
    with pytest.raises(TypeError, match="warn"):
        jo.semidiscrete_ot(TARGETS, key=jax.random.key(0), tol=0.2, warn=False)
    with pytest.raises(ValueError, match="`throw`"):
        jo.semidiscrete_ot(TARGETS, key=jax.random.key(0), tol=0.2, throw=1)


def test_semidiscrete_ot_under_jit_checks_by_default_and_returns_the_status_with_throw_false():
    """Under ``jit`` ``throw=True`` (the default) is an equinox run-time check; ``throw=False`` returns the
    status in ``diagnostics.status``."""
    def solve(x, throw):
        return jo.semidiscrete_ot(x, key=jax.random.key(0), tol=0.01, solver=BUDGET_OF_ONE,
                                  throw=throw).diagnostics.status

    assert Status(int(jax.jit(lambda x: solve(x, False))(TARGETS))) == Status.MAX_ITERATIONS
    with pytest.raises(RuntimeError, match="semidiscrete_ot: the iteration budget ran out"):
        jax.jit(lambda x: solve(x, True))(TARGETS)
