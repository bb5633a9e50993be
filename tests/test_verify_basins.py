"""Basin map: the OT map's Laguerre cells against the probability flow's basins on a grid of the prior.
Symmetric two points: basins equal cells (nothing misrouted); an asymmetric three-point set keeps a misrouted
region at a large termination time (the floor); in 1-D the flow preserves order, so the basins become the
cells. One computed map per case is shared by the tests (small grids)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxotdm as jo
from jaxotdm import plotting
from jaxotdm.verify import basin_map, monotone_map_1d


@pytest.fixture(scope="module")
def symmetric():
    mu = jo.EmpiricalMeasure(np.array([[-1.0, 0.0], [1.0, 0.0]]))
    exact = jo.SemidiscreteMap(targets=mu.points, weights=mu.weights, heights=jnp.zeros(2))  # cells: z1 < 0, z1 > 0
    return basin_map(mu, jo.OU(), [2.0, 8.0], key=jax.random.key(0), grid_size=24, ot_map=exact)


@pytest.fixture(scope="module")
def asymmetric():
    # heights 0 are the exact OT map onto these points when the weights are their cells' Gaussian masses
    # (numpy Monte Carlo, 2e6 draws: weights exact to ~3e-4), so no solver is needed
    x = np.array([[-1.0, 0.0], [1.2, 0.0], [0.0, 0.6]])
    z = np.random.default_rng(0).normal(size=(2_000_000, 2))
    w = np.bincount(np.argmax(z @ x.T, 1), minlength=3) / len(z)
    mu = jo.EmpiricalMeasure(x, w)
    cells = jo.SemidiscreteMap(targets=mu.points, weights=mu.weights, heights=jnp.zeros(3))
    return basin_map(mu, jo.OU(), [2.0, 8.0], key=jax.random.key(0), grid_size=24, ot_map=cells)


def test_symmetric_two_points_basins_equal_laguerre_cells(symmetric):
    bm = symmetric
    assert bm.flow_index.shape == (2, 24, 24) and bm.ot_index.shape == (24, 24) and np.all(bm.flow_success)
    # equal weights: both split the plane at z1 = 0 (the grid avoids z1 = 0)
    left = bm.axis[None, :] < 0
    np.testing.assert_array_equal(bm.ot_index, np.where(left, 0, 1).repeat(24, 0))
    np.testing.assert_array_equal(bm.flow_index[1], bm.ot_index)
    assert bm.misrouted_mass[1] == 0.0 and not bm.misrouted(1).any()
    assert bm.density.sum() == pytest.approx(1.0) and 0.99 < bm.grid_mass < 1.0


def test_asymmetric_set_keeps_a_misrouted_region(asymmetric):
    bm = asymmetric
    # the floor: at s = 8 the prior's mismatch is exp(-4) small, yet a region is still sent elsewhere
    assert bm.misrouted_mass[1] > 0.01
    mask = bm.misrouted(1)
    assert bm.misrouted_mass[1] == pytest.approx(float(bm.density[mask].sum()))
    # every point is sent somewhere by both maps, and the misrouted region is a small part of the plane
    assert set(np.unique(bm.flow_index)) <= {0, 1, 2} and mask.mean() < 0.3


def test_one_dimensional_basins_become_the_cells():
    mu = jo.EmpiricalMeasure(np.array([[-1.0], [0.0], [0.5], [2.0]]), np.array([0.1, 0.4, 0.3, 0.2]))
    bm = basin_map(mu, jo.OU(), [2.0, 12.0], key=jax.random.key(1), grid_size=200,
                   ot_map=monotone_map_1d(mu.points, mu.weights))  # the exact 1-D OT map
    assert bm.misrouted_mass[1] < bm.misrouted_mass[0] / 10 and bm.misrouted_mass[1] < 0.01
    # what is left at s = 12 sits at the cell boundaries (within two grid steps): the prior's alpha-sized shift
    edges = bm.axis[1:][np.diff(bm.ot_index) != 0]
    step = bm.axis[1] - bm.axis[0]
    assert all(np.min(np.abs(edges - z)) <= 2 * step for z in bm.axis[bm.misrouted(1)])
    assert np.all(np.diff(bm.ot_index) >= 0) and np.all(np.diff(bm.flow_index, axis=1) >= 0)  # order preserved


def test_figure_draws_the_computed_arrays(asymmetric, tmp_path):
    axes = plotting.basin_map(asymmetric, label="three points")
    assert len(axes) == 3
    np.testing.assert_array_equal(axes[0].images[0].get_array(), asymmetric.ot_index)
    np.testing.assert_array_equal(axes[2].images[0].get_array(), asymmetric.flow_index[1])
    red = np.asarray(axes[2].images[1].get_array())[..., 3] > 0  # the overlay is opaque exactly where misrouted
    np.testing.assert_array_equal(red, asymmetric.misrouted(1))
    assert "misrouted" in axes[2].get_title()
    plotting.save(axes[0].figure, tmp_path / "b.png")
    assert (tmp_path / "b.png").stat().st_size > 1000


@pytest.mark.parametrize(("kwargs", "name"), [({"grid_size": 1}, "grid_size"), ({"times": [1e-4]}, "times"),
                                              ({"extent": -1.0}, "extent")])
def test_bad_arguments_are_named(kwargs, name):
    mu = jo.EmpiricalMeasure(np.array([[-1.0, 0.0], [1.0, 0.0]]))
    args = {"times": [2.0], **kwargs}
    times = args.pop("times")
    with pytest.raises(ValueError, match=f"`{name}`"):
        basin_map(mu, jo.OU(), times, key=jax.random.key(0), **args)


def test_three_dimensional_data_is_refused():
    with pytest.raises(ValueError, match="`measure`"):
        basin_map(jo.EmpiricalMeasure(np.eye(3)), jo.OU(), [2.0], key=jax.random.key(0))
