"""The one validation module: property tests (hypothesis) for every validator and its tolerance policy."""

import math

import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxotdm as jo
from jaxotdm import _validation as V

SETTINGS = settings(max_examples=60, deadline=None)
DTYPES = st.sampled_from([np.float32, np.float64])


def _simplex(draw, n, dtype):
    raw = draw(hnp.arrays(np.float64, n, elements=st.floats(0.0, 1e3, allow_nan=False)))
    if raw.sum() == 0:
        raw[0] = 1.0
    return (raw / raw.sum()).astype(dtype)


# ------------------------------------------------------------------------------------------ weights
@st.composite
def normalised_weights(draw):
    n = draw(st.integers(1, 300))
    dtype = draw(DTYPES)
    return _simplex(draw, n, dtype), dtype


@SETTINGS
@given(normalised_weights())
def test_weights_normalised_in_their_own_dtype_always_pass(case):
    w, dtype = case
    out = V.weights(w, w.shape[0], "weights", dtype=jnp.float64)
    np.testing.assert_array_equal(np.asarray(out), w.astype(np.float64))  # used as given, never renormalised
    assert np.asarray(V.np_weights(w, w.shape[0], "weights")).sum() == pytest.approx(1.0, abs=1e-5)


@SETTINGS
@given(normalised_weights(), st.floats(1e-3, 0.5))
def test_weights_off_by_more_than_the_tolerance_always_fail(case, rel):
    w, dtype = case
    bad = (w.astype(np.float64) * (1.0 + rel)).astype(dtype)
    with pytest.raises(ValueError, match="`weights` must sum to one"):
        V.weights(bad, w.shape[0], "weights", dtype=jnp.float64)
    with pytest.raises(ValueError, match="`weights` must sum to one"):
        V.np_weights(bad, w.shape[0], "weights")


@SETTINGS
@given(normalised_weights(), st.integers(0, 299))
def test_negative_or_nonfinite_weights_always_fail(case, i):
    w, _ = case
    i = i % w.shape[0]
    neg = w.copy()
    neg[i] = -abs(neg[i]) - 0.1
    with pytest.raises(ValueError, match="`w`"):
        V.weights(neg, w.shape[0], "w", dtype=jnp.float64)
    nan = w.copy()
    nan[i] = np.nan
    with pytest.raises(ValueError, match="`w`.*non-finite"):
        V.weights(nan, w.shape[0], "w", dtype=jnp.float64)


def test_tolerance_policy_is_one_function_of_dtype_and_size():
    assert V.sum_tolerance(np.float32, 100) == pytest.approx(32 * 10 * np.finfo(np.float32).eps)
    assert V.sum_tolerance(np.float64, 1) == pytest.approx(32 * np.finfo(np.float64).eps)
    assert V.sum_tolerance(np.float32, 4) > V.sum_tolerance(np.float64, 4)
    # float32-normalised weights pass a float64 entry point: the coarser dtype decides
    w = (np.ones(7) / 7).astype(np.float32)
    assert abs(float(w.astype(np.float64).sum()) - 1) > V.sum_tolerance(np.float64, 7)
    V.weights(w, 7, "weights", dtype=jnp.float64)
    jo.EmpiricalMeasure(np.zeros((7, 2)), w)


def test_weights_default_uniform_and_shape():
    np.testing.assert_allclose(V.weights(None, 4, "w", dtype=jnp.float64), 0.25)
    with pytest.raises(ValueError, match=r"`w` must have shape \(4,\)"):
        V.weights(np.ones(3) / 3, 4, "w")
    with pytest.raises(TypeError, match="`w`"):  # ArgumentTypeError is a TypeError ...
        V.weights("uniform", 4, "w")
    with pytest.raises(ValueError, match="`w`"):  # ... and a ValueError
        V.weights("uniform", 4, "w")
    with pytest.raises(ValueError, match="> 0"):
        V.weights(np.array([1.0, 0.0]), 2, "w", positive=True)


# -------------------------------------------------------------------------------------- probabilities
@st.composite
def probability_rows(draw):
    m, c = draw(st.integers(1, 20)), draw(st.integers(1, 12))
    dtype = draw(DTYPES)
    return np.stack([_simplex(draw, c, dtype) for _ in range(m)]), dtype


@SETTINGS
@given(probability_rows())
def test_probability_rows_pass_and_perturbed_rows_fail(case):
    p, _ = case
    V.probabilities(p, "probabilities")
    bad = p.astype(np.float64).copy()
    bad[-1] *= 1.01
    with pytest.raises(ValueError, match="`probabilities` must sum to one"):
        V.probabilities(bad, "probabilities")
    neg = p.astype(np.float64).copy()
    neg[0, 0] = -0.5
    with pytest.raises(ValueError, match="non-negative"):
        V.probabilities(neg, "probabilities")


# ---------------------------------------------------------------------------------------- covariances
@st.composite
def covariances(draw):
    d = draw(st.integers(1, 6))
    dtype = draw(DTYPES)
    a = draw(hnp.arrays(np.float64, (d, d + draw(st.integers(0, 3))), elements=st.floats(-3, 3)))
    return (a @ a.T).astype(dtype), dtype


@SETTINGS
@given(covariances())
def test_psd_covariances_pass_and_negative_directions_fail(case):
    c, dtype = case
    d = c.shape[0]
    V.covariance(c, "cov", d)
    # push one direction clearly negative: fails, whatever the dtype
    lam, v = np.linalg.eigh(c.astype(np.float64))
    scale = max(1.0, float(np.abs(c).max()))
    bad = (v @ np.diag(np.r_[-0.1 * scale, lam[1:]]) @ v.T).astype(dtype)
    bad = 0.5 * (bad + bad.T)
    with pytest.raises(ValueError, match="`cov` must be positive semi-definite"):
        V.covariance(bad, "cov", d)


@SETTINGS
@given(covariances())
def test_asymmetric_covariances_fail(case):
    c, _ = case
    d = c.shape[0]
    if d < 2:
        return
    bad = c.astype(np.float64).copy()
    bad[0, 1] += 0.05 * max(1.0, float(np.abs(c).max()))
    with pytest.raises(ValueError, match="`cov` must be symmetric"):
        V.covariance(bad, "cov", d)


def test_definite_covariance():
    V.covariance(np.eye(2), "c", 2, definite=True)
    with pytest.raises(ValueError, match="positive definite"):
        V.covariance(np.diag([1.0, 0.0]), "c", 2, definite=True)


# ------------------------------------------------------------------------------------------ times
@SETTINGS
@given(st.floats(allow_nan=True, allow_infinity=True))
def test_time_check_accepts_exactly_the_representable_positive_times(t):
    for dtype in (np.float32, np.float64):
        ok = math.isfinite(t) and float(np.finfo(dtype).tiny) <= t <= float(np.finfo(dtype).max)
        if ok:
            V.check_time(t, "t", dtype=dtype)
        else:
            with pytest.raises(ValueError, match="`t`"):
                V.check_time(t, "t", dtype=dtype)


def test_time_below_float32_resolution_is_rejected_not_nan():
    """t = 1e-40 passes ``t > 0`` but is a float32 subnormal (flushed to zero by XLA): rejected."""
    with pytest.raises(ValueError, match="smallest normal float32"):
        V.check_time(1e-40, "t", dtype=np.float32)
    V.check_time(1e-40, "t", dtype=np.float64)
    # schedule-aware: EDM's sigma^2 = t^2 underflows in float32 at t = 1e-20 although t itself is normal
    with pytest.raises(ValueError, match="EDM"):
        V.check_time(1e-20, "t", dtype=np.float32, schedule=jo.EDM())
    V.check_time(1e-20, "t", dtype=np.float64, schedule=jo.EDM())
    with pytest.raises(ValueError, match="< 1.0"):
        V.check_time(1.0, "t", schedule=jo.Cosine())


def test_time_check_is_skipped_for_tracers():
    jax.jit(lambda t: V.check_time(t, "t") or t)(-1.0)  # jitted code never raises on values


# ------------------------------------------------------------------------------------------ scalars
@SETTINGS
@given(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**6, 10**6)))
def test_positive_scalar_policy(v):
    ok = math.isfinite(v) and v > 0
    if ok:
        assert V.positive_scalar(v, "rtol") == float(v)
    else:
        with pytest.raises(ValueError, match="`rtol`"):
            V.positive_scalar(v, "rtol")
    if math.isfinite(v) and v >= 0:
        V.nonnegative_scalar(v, "c")
    else:
        with pytest.raises(ValueError, match="`c`"):
            V.nonnegative_scalar(v, "c")
    if math.isfinite(v) and 0 < v < 1:
        V.fraction(v, "q")
    else:
        with pytest.raises(ValueError, match="`q`"):
            V.fraction(v, "q")


@pytest.mark.parametrize("bad", ["1", None, True, np.bool_(True), [1.0], np.ones(2), 1 + 2j])
def test_scalars_reject_wrong_types(bad):
    with pytest.raises((TypeError, ValueError), match="`x`"):
        V.positive_scalar(bad, "x")


def test_scalars_accept_numpy_and_jax_scalars_and_skip_tracers():
    assert V.positive_scalar(np.float32(0.5), "x") == 0.5
    assert V.positive_scalar(jnp.asarray(2.0), "x") == 2.0
    assert V.positive_scalar(np.int64(3), "x") == 3.0
    jax.jit(lambda a: V.positive_scalar(a, "x"))(-1.0)


@SETTINGS
@given(st.one_of(st.integers(-50, 50), st.floats(-5, 5), st.booleans(), st.text(max_size=3)))
def test_integer_policy(n):
    is_int = isinstance(n, int) and not isinstance(n, bool)
    if is_int and n >= 1:
        assert V.check_positive_int(n, "n") == n
    else:
        with pytest.raises(ValueError, match="`n`"):
            V.check_positive_int(n, "n")
    if not is_int:
        with pytest.raises(TypeError):
            V.check_int(n, "n")


# ------------------------------------------------------------------------------------------ arrays
def test_as_float_array_never_copies_a_device_array_of_the_right_dtype():
    x = jnp.arange(12.0).reshape(6, 2)
    assert V.as_float_array(x, "x") is x
    assert V.points(x, "x") is x
    mu = jo.EmpiricalMeasure(x)
    assert mu.points is x
    assert V.as_float_array(x, "x", dtype=jnp.float32).dtype == jnp.float32  # a cast when asked


@SETTINGS
@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=5),
                  elements=st.floats(allow_nan=True, allow_infinity=True, width=64)))
def test_points_accept_exactly_the_finite_clouds(x):
    if np.all(np.isfinite(x)):
        np.testing.assert_array_equal(np.asarray(V.points(x, "points")), x)
        np.testing.assert_array_equal(V.np_points(x, "points"), x)
    else:
        with pytest.raises(ValueError, match="`points` has .* non-finite"):
            V.points(x, "points")
        with pytest.raises(ValueError, match="`points` has .* non-finite"):
            V.np_points(x, "points")


@pytest.mark.parametrize("bad", ["abc", None, np.zeros((2, 2), complex), np.zeros((2, 2), bool),
                                 np.array([["a", "b"]]), [[1.0, 2.0], [3.0]]])
def test_points_reject_non_real_inputs_with_a_type_error(bad):
    with pytest.raises(TypeError, match="`points`"):
        V.points(bad, "points")


def test_finite_check_of_captured_device_arrays_inside_jit():
    bad = jnp.array([1.0, jnp.nan])

    def f(y):
        V.check_finite(bad, "captured")
        return y

    with pytest.raises(ValueError, match="`captured` has 1 non-finite"):
        jax.jit(f)(1.0)


# ------------------------------------------------------------------------------------------ keys
@pytest.mark.parametrize("bad", [None, 0, np.zeros(2, np.float32), "key", np.zeros(3, np.uint32)])
def test_keys(bad):
    with pytest.raises(ValueError, match="`key`"):
        V.check_key(bad)
    V.check_key(jax.random.key(0))
    V.check_key(jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="single PRNG key"):
        V.check_key(jax.random.split(jax.random.key(0), 3))
