"""The candidate top-k of the streaming layer (:func:`jaxotdm._streaming.topk`) against a dense reference."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxotdm import _streaming as S


def _data(n=203, d=5, q=37, seed=0):
    rng = np.random.default_rng(seed)
    return (jnp.asarray(rng.normal(size=(q, d))), jnp.asarray(rng.normal(size=(n, d))),
            jnp.asarray(rng.normal(size=(n,))))


@pytest.mark.parametrize("chunk", [16, 64, 100, 4096])
def test_topk_values_indices_and_bound_against_dense(chunk):
    z, y, b = _data()
    k = 6
    v, i, u = S.topk(z, y, b, k, per_chunk=2, streaming=S.Streaming(chunk, 8))
    s = np.asarray(z @ y.T + b)
    v, i, u = np.asarray(v), np.asarray(i), np.asarray(u)
    assert v.shape == (37, k) and i.shape == (37, k) and u.shape == (37,)
    # listed values are the scores of the listed indices, descending
    listed = i >= 0
    assert np.all(listed[:, :2]) and np.all(np.isneginf(v[~listed]))
    np.testing.assert_allclose(v[listed], np.take_along_axis(s, np.maximum(i, 0), axis=1)[listed], rtol=1e-12)
    assert np.all(np.diff(np.where(listed, v, -1e300), axis=1) <= 0)
    # every point not listed scores at most the bound; the best listed is the exact best when above the bound
    for q in range(s.shape[0]):
        rest = np.delete(s[q], i[q][i[q] >= 0])
        assert rest.max() <= u[q] + 1e-12
        assert i[q, 0] == np.argmax(s[q])


def test_topk_is_exact_with_enough_per_group_and_independent_of_the_chunking():
    z, y, b = _data(n=150)
    k = 5
    s = np.asarray(z @ y.T + b)
    ref_i = np.argsort(-s, axis=1)[:, :k]
    outs = [S.topk(z, y, b, k, per_chunk=k, streaming=S.Streaming(c, 16)) for c in (64, 128, 1024)]
    for _v, i, u in outs:
        np.testing.assert_array_equal(np.asarray(i), ref_i)
        np.testing.assert_allclose(np.asarray(u), -np.sort(-s, axis=1)[:, k], rtol=1e-12)
    # groups of min(512, chunk) points: the same candidates and bound with per_chunk=2 for chunks >= 512
    z, y, b = _data(n=1300, seed=1)
    few = [S.topk(z, y, b, k, per_chunk=2, streaming=S.Streaming(c, 16)) for c in (512, 1024, 4096)]
    for _v, i, u in few[1:]:
        np.testing.assert_array_equal(np.asarray(i), np.asarray(few[0][1]))
        np.testing.assert_array_equal(np.asarray(u), np.asarray(few[0][2]))


def test_topk_fewer_points_than_k_pads():
    z, y, b = _data(n=3)
    v, i, u = S.topk(z, y, b, 5, per_chunk=5, streaming=S.Streaming(64, 16))
    assert np.all(np.asarray(i[:, 3:]) == -1) and np.all(np.isneginf(np.asarray(v[:, 3:])))
    assert np.all(np.isneginf(np.asarray(u)))  # every point listed: nothing left to bound
    # two extracted per group: the third point is not listed, and the bound is its score
    v, i, u = S.topk(z, y, b, 5, per_chunk=2, streaming=S.Streaming(64, 16))
    s = np.asarray(z @ y.T + b)
    np.testing.assert_allclose(np.asarray(u), np.sort(s, axis=1)[:, 0], rtol=1e-12)
    assert jax.jit(lambda z: S.topk(z, y, b, 5, streaming=S.Streaming(64, 16))[1])(z).shape == (37, 5)
