"""Retrace guards on the hot entry points: a second call with new arrays of the same shapes and dtypes
(and new scalar times) must neither retrace nor recompile anything.

Traces and compilations are counted with JAX's monitoring events (every ``jit`` trace and every XLA
compile, including the small eager ops of input validation), so a guard fails on any recompilation
on the call path, not just in the function under test.
"""

import contextlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxotdm as jo
from jaxotdm.ot import SemidiscreteMap
from jaxotdm.ot import _kernels as K
from jaxotdm.samplers import EulerMaruyama, Heun, sample

EVENTS = ("/jax/core/compile/jaxpr_trace_duration", "/jax/core/compile/backend_compile_duration")


@contextlib.contextmanager
def compile_events():
    """Collects ``(event, function name)`` for every trace/compile while active."""
    seen = []

    def listener(event, duration, **kwargs):
        if event in EVENTS:
            seen.append((event.rsplit("/", 1)[-1], kwargs.get("fun_name")))

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield seen
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


def assert_no_recompile(call):
    """``call(i)`` builds fresh inputs from ``i`` and runs the entry point; the second call must be free."""
    jax.block_until_ready(call(0))
    with compile_events() as seen:
        jax.block_until_ready(call(1))
    assert not seen, f"retraced/recompiled on a call with the same shapes: {seen}"


def _points(i, shape=(7, 3)):
    return jnp.asarray(np.random.default_rng(100 + i).normal(size=shape))


@pytest.fixture(scope="module")
def setup():
    y = np.random.default_rng(0).normal(size=(50, 3))
    score = jo.exact_score(jo.EmpiricalMeasure(y), jo.OU(), chunk_size=16, query_chunk_size=8)
    return y, score


def test_guard_detects_a_recompile():
    f = jax.jit(lambda x: jnp.sin(x) * 2)
    f(jnp.ones(3))
    with compile_events() as seen:
        f(jnp.ones(4))  # new shape: must be seen
    assert any(e == "backend_compile_duration" for e, _ in seen)


def test_exact_score(setup):
    y, score = setup
    assert_no_recompile(lambda i: score(_points(i, (20, 3)), 0.3 + 0.1 * i))  # 20 queries: 3 query blocks
    assert_no_recompile(lambda i: score.denoiser(_points(i), 0.3 + 0.1 * i))
    assert_no_recompile(lambda i: score.log_density(_points(i), jnp.full((7,), 0.2 + i)))
    assert_no_recompile(lambda i: score.posterior_mode(_points(i), 0.3 + 0.1 * i))
    # a new measure of the same shapes, a new score object: same compiled code
    assert_no_recompile(
        lambda i: jo.exact_score(jo.EmpiricalMeasure(y + i), jo.OU(), chunk_size=16, query_chunk_size=8)(_points(i), 0.5)
    )
    # under the caller's jit
    f = jax.jit(lambda sc, x, t: sc(x, t))
    assert_no_recompile(lambda i: f(score, _points(i), 0.3 + i))


def test_sharded_exact_score_with_fresh_equal_sharding(setup):
    y, _ = setup
    mesh = jax.make_mesh((1,), ("points",))

    def call(i):  # a new (equal) PointSharding each call: it is static, so it must hash equal
        sc = jo.exact_score(jo.EmpiricalMeasure(y), jo.OU(), sharding=jo.PointSharding(mesh, "points"))
        return sc(_points(i), 0.4 + i)

    assert_no_recompile(call)


def test_flow_map(setup):
    _, score = setup
    sched = jo.OU()
    assert_no_recompile(lambda i: jo.flow_map(score, sched, _points(i), 2.0 + i, 0.1).points)
    assert_no_recompile(
        lambda i: jo.flow_map(score, sched, _points(i), 2.0, 0.1 + 0.01 * i, ode=jo.ODESettings(solver="heun", num_steps=8)).points
    )


def test_samplers_sample(setup):
    _, score = setup
    sched = jo.OU()
    heun = Heun()
    assert_no_recompile(lambda i: sample(heun, score, sched, _points(i), t_start=2.0 + i, t_end=0.1, num_steps=8).points)
    em = EulerMaruyama()
    assert_no_recompile(
        lambda i: sample(em, score, sched, _points(i), t_start=2.0, t_end=0.1, num_steps=8, key=jax.random.key(i)).points
    )


@pytest.mark.parametrize("query_chunk_size", [4096, 4])  # one block; several blocks (map_queries loop)
def test_semidiscrete_map_transport_assign(setup, query_chunk_size):
    y, _ = setup
    n = y.shape[0]
    h = jnp.asarray(np.random.default_rng(1).normal(size=n) * 0.1)
    smap = SemidiscreteMap(jnp.asarray(y), jnp.full((n,), 1.0 / n), h - h.mean(), chunk_size=16,
                           query_chunk_size=query_chunk_size)
    assert_no_recompile(lambda i: smap.assign(_points(i)))
    assert_no_recompile(lambda i: smap.transport(_points(i)))
    assert_no_recompile(lambda i: smap.transport(_points(i), tau=0.1))
    assert_no_recompile(lambda i: smap.potential(_points(i)))


def test_kernels_eager():
    y, h = _points(0, (30, 3)), jnp.zeros(30)
    assert_no_recompile(lambda i: K.counts(_points(i), y, h, 8))
    assert_no_recompile(lambda i: K.top2(_points(i), y, h, 8))
    assert_no_recompile(lambda i: K.soft(_points(i), y, h, 0.1 + i, 8))
