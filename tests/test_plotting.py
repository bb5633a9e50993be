"""jaxotdm.plotting: each function draws what it says on small inputs, writes PNGs, and rejects bad input."""

from __future__ import annotations

import ast
import doctest
import inspect
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure

from jaxotdm import plotting as P


def _png(path: Path) -> None:
    assert path.is_file() and path.stat().st_size > 500
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _plotting_modules():
    """The package and its modules (the doctests live in the functions' modules)."""
    import importlib
    import pkgutil

    return [P] + [importlib.import_module(f"{P.__name__}.{m.name}") for m in pkgutil.iter_modules(P.__path__)]


def test_module_doctests_run():
    attempted = failed = 0
    for module in _plotting_modules():
        res = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
        attempted, failed = attempted + res.attempted, failed + res.failed
    res = doctest.TestResults(failed, attempted)
    assert res.attempted >= 10 and res.failed == 0


def test_no_pyplot_global_state():
    """The module builds Figures on the Agg canvas; it never imports pyplot or switches backends."""
    for module in _plotting_modules():
        tree = ast.parse(inspect.getsource(module))
        names = {a.name for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
        modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert "matplotlib.pyplot" not in names | modules and "pyplot" not in names
        assert "matplotlib.use" not in inspect.getsource(module)


def test_subplots_and_save(tmp_path):
    fig, axes = P.subplots(2, 3, figsize=(6, 4))
    assert isinstance(fig, Figure) and axes.shape == (2, 3) and len(fig.axes) == 6
    _png(P.save(fig, tmp_path / "grid.png"))
    with pytest.raises(ValueError, match="`ncols`"):
        P.subplots(1, 0)
    with pytest.raises(ValueError, match="`path`"):
        P.save(fig, tmp_path / "missing" / "x.png")
    with pytest.raises(ValueError, match="`fig`"):
        P.save(axes[0, 0], tmp_path / "x.png")


def test_convergence_curve_band_and_fit(tmp_path):
    s = np.array([1.0, 2.0, 4.0, 8.0])
    y = 2.0 * np.exp(-0.5 * s)
    se = 0.01 * np.ones(4)
    fit = SimpleNamespace(rate=0.5, intercept=np.log(2.0), mask=np.array([True, True, True, False]))
    ax = P.convergence_curve(s, y, se, label="to OT", fit=fit, level=0.9)
    assert len(ax.lines) == 2 and len(ax.collections) == 1 and ax.get_yscale() == "log"
    # the fitted line covers exactly the masked points and follows exp(intercept - rate x)
    xf, yf = ax.lines[1].get_data()
    np.testing.assert_allclose(xf, s[:3])
    np.testing.assert_allclose(yf, y[:3])
    # the band is y +- z_0.9 se
    verts = ax.collections[0].get_paths()[0].vertices
    z = 1.6448536269514722
    assert np.isclose(verts[:, 1].max(), y.max() + z * 0.01)
    # overlay a second curve on the same axes; a fit with a NaN rate (too few points) is skipped
    P.convergence_curve(s, y / 2, ax=ax, label="other", fit=(float("nan"), 0.0))
    assert len(ax.lines) == 3
    _png(P.save(ax.figure, tmp_path / "curve.png"))


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        (dict(x=[1.0, 2.0], y=[1.0]), "`y`"),
        (dict(x=[[1.0, 2.0]], y=[1.0, 2.0]), "`x`"),
        (dict(x=[1.0, np.inf], y=[1.0, 2.0]), "`x`"),
        (dict(x=[1.0, 2.0], y=[1.0, 2.0], se=[0.1, -0.1]), "`se`"),
        (dict(x=[1.0, 2.0], y=[1.0, 2.0], level=1.0), "`level`"),
        (dict(x=[1.0, 2.0], y=[1.0, 2.0], fit="exp"), "`fit`"),
        (dict(x=[1.0, 2.0], y=[1.0, 2.0], ax="axes"), "`ax`"),
        (dict(x=[1.0, 2.0], y=[1.0, 2.0], logy="yes"), "`logy`"),
        (dict(x=[1.0, 2.0], y=[1.0, 2.0], colour="red"), "`colour`"),  # a style keyword matplotlib does not know
    ],
)
def test_convergence_curve_rejects(kwargs, name):
    with pytest.raises(ValueError, match=name):
        P.convergence_curve(**kwargs)


def _fake_convergence(rate: float):
    from jaxotdm.verify import fit_exponential

    times = np.array([0.5, 1.0, 2.0, 4.0, 8.0])
    log_snr = -times + 0.3
    self_conv = np.exp(-rate * times)
    self_conv[-1] = 0.0
    return SimpleNamespace(
        termination_times=times, log_snr=log_snr, l2_to_ot=0.3 + np.exp(-times), l2_to_ot_se=0.01 * np.ones(5),
        self_convergence=self_conv, self_convergence_se=0.005 * np.ones(5),
        fit_log_snr=fit_exponential(-log_snr, self_conv, self_conv > 0),
        fit_time=fit_exponential(times, self_conv, self_conv > 0),
        fit_to_ot=fit_exponential(times, np.exp(-times)),
    )


@pytest.mark.parametrize("against", ["log_snr", "time"])
def test_convergence_panels(tmp_path, against):
    axes = P.convergence_panels(_fake_convergence(0.7), label="OU", against=against)
    P.convergence_panels(_fake_convergence(0.4), axes=axes, label="VE", against=against)
    left, right = axes
    # left: a curve per result (+ the fitted decay against time); right: curve + fit per result
    assert len(left.lines) == (4 if against == "time" else 2) and len(left.collections) == 2
    assert len(right.lines) == 4 and len(right.collections) == 2
    # self-convergence leaves out its last point (zero by definition); the fit recovers the rate
    assert len(right.lines[0].get_xdata()) == 4
    assert "rate 0.7" in right.lines[1].get_label()
    assert right.lines[0].get_color() == left.lines[0].get_color()
    _png(P.save(left.figure, tmp_path / f"panels_{against}.png"))
    with pytest.raises(ValueError, match="`result`"):
        P.convergence_panels(SimpleNamespace(termination_times=[1.0]))
    with pytest.raises(ValueError, match="`against`"):
        P.convergence_panels(_fake_convergence(0.7), against="snr")
    with pytest.raises(ValueError, match="`axes`"):
        P.convergence_panels(_fake_convergence(0.7), axes=[left])


def test_prior_error_brackets_arrays_and_results(tmp_path):
    T = np.array([1.5, 3.0, 4.5])
    alpha = np.exp(-T / 2)
    ax = P.prior_error_brackets(T, 0.9 * alpha, 1.1 * alpha, alpha, reference=alpha)
    assert len(ax.collections) == 1 and len(ax.lines) == 2
    np.testing.assert_allclose(ax.lines[1].get_ydata(), 0.9 * alpha)  # the reference passes through lower[0]
    _png(P.save(ax.figure, tmp_path / "prior.png"))

    results = [SimpleNamespace(T=t, alpha=a, bracket=SimpleNamespace(lower=0.9 * a, upper=1.2 * a, w2=a))
               for t, a in zip(T, alpha, strict=True)]
    ax = P.prior_error_brackets(results, against="alpha", reference="alpha", logx=True)
    np.testing.assert_allclose(ax.lines[0].get_xdata(), alpha)
    np.testing.assert_allclose(ax.lines[0].get_ydata(), alpha)
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "alpha_T"
    with pytest.raises(ValueError, match="`lower`, `upper` and `estimate`"):
        P.prior_error_brackets(results, lower=alpha)
    with pytest.raises(ValueError, match="`against`"):
        P.prior_error_brackets(results, against="sigma")
    with pytest.raises(ValueError, match="`reference`"):
        P.prior_error_brackets(T, alpha, alpha, reference="alpha")
    with pytest.raises(ValueError, match="`upper`"):
        P.prior_error_brackets(T, alpha, alpha[:2])
    with pytest.raises(ValueError, match="`lower` and `upper`"):
        P.prior_error_brackets(T)


def test_image_grid_layout(tmp_path):
    rng = np.random.default_rng(0)
    imgs = rng.uniform(-1, 1, size=(10, 64))
    ax = P.image_grid(imgs, ncol=4, title="samples")
    assert len(ax.images) == 1
    canvas = ax.images[0].get_array()
    assert canvas.shape == (3 * 9 + 1, 4 * 9 + 1)
    # image 5 sits in row 1, column 1, surrounded by masked background
    np.testing.assert_allclose(canvas[10:18, 10:18], imgs[5].reshape(8, 8))
    assert canvas.mask[9, 10] and canvas.mask[-5, -5]  # a separator and an empty slot
    _png(P.save(ax.figure, tmp_path / "grid.png"))
    # (n, h, w) and colour (n, h, w, 3) images; fewer images than ncol shrinks the row
    ax = P.image_grid(rng.uniform(-1, 1, size=(3, 5, 7)), ncol=16)
    assert ax.images[0].get_array().shape == (7, 3 * 8 + 1)
    ax = P.image_grid(rng.uniform(-1, 1, size=(2, 4, 4, 3)), value_range=(-1, 1))
    assert ax.images[0].get_array().shape == (6, 11, 3)
    ax = P.image_grid(rng.uniform(size=(4, 12)), (3, 4), value_range=(0.0, 1.0), pad=0)
    assert ax.images[0].get_array().shape == (3, 16)


@pytest.mark.parametrize(
    ("args", "kwargs", "name"),
    [
        ((np.zeros((4, 10)),), {}, "`shape`"),
        ((np.zeros((4, 12)), (5, 3)), {}, "`shape`"),
        ((np.zeros((4,)),), {}, "`images`"),
        ((np.zeros((2, 4, 4, 2)),), {}, "`images`"),
        ((np.zeros((4, 16)),), {"ncol": 0}, "`ncol`"),
        ((np.zeros((4, 16)),), {"value_range": (1.0, -1.0)}, "`value_range`"),
        ((np.zeros((4, 16)),), {"pad": -1}, "`pad`"),
        ((np.zeros((4, 16)),), {"ax": 3}, "`ax`"),
    ],
)
def test_image_grid_rejects(args, kwargs, name):
    with pytest.raises(ValueError, match=name):
        P.image_grid(*args, **kwargs)


def _two_cell_map():
    import jax.numpy as jnp

    import jaxotdm as jo

    targets = jnp.array([[-1.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    return jo.SemidiscreteMap(targets=targets, weights=jnp.full(3, 1 / 3), heights=jnp.array([0.2, -0.1, -1.0]))


def test_laguerre_cells_map_matches_array_path(tmp_path):
    smap = _two_cell_map()
    z = np.array([[0.5, -0.5], [-2.0, 1.0], [0.1, 2.5], [1.5, 1.5]])
    ax = P.laguerre_cells(smap, points=z, resolution=60, extent=(-3, 3, -3, 3))
    assert len(ax.images) == 1 and len(ax.patches) == 3  # cells; three source circles
    assert len(ax.collections) == 3  # targets, sources, arrows
    arrows = ax.collections[-1]
    # the arrows end at T(z) = the target of the cell containing z
    ends = z + np.column_stack([arrows.U, arrows.V])
    np.testing.assert_allclose(ends, np.asarray(smap.transport(z)), atol=1e-6)
    # plain arrays (numpy argmax of <z, x_i> + h_i) draw the same cells as smap.assign
    ax2 = P.laguerre_cells(np.asarray(smap.targets), np.asarray(smap.heights), points=z, resolution=60,
                           extent=(-3, 3, -3, 3))
    np.testing.assert_array_equal(ax.images[0].get_array(), ax2.images[0].get_array())
    arrows2 = ax2.collections[-1]
    np.testing.assert_allclose(arrows2.U, arrows.U, atol=1e-6)
    _png(P.save(ax.figure, tmp_path / "cells.png"))
    # smoothed arrows end at the softmax average, strictly inside the targets' hull
    ax3 = P.laguerre_cells(smap, points=z, tau=0.5, resolution=20, source_circles=())
    ends = z + np.column_stack([ax3.collections[-1].U, ax3.collections[-1].V])
    np.testing.assert_allclose(ends, np.asarray(smap.transport(z, 0.5)), atol=1e-6)
    assert len(ax3.patches) == 0


@pytest.mark.parametrize(
    ("args", "kwargs", "name"),
    [
        ((np.zeros((3, 3)), np.zeros(3)), {}, "`smap`"),
        ((np.zeros((3, 2)),), {}, "`heights`"),
        ((np.zeros((3, 2)), np.zeros(2)), {}, "`heights`"),
        ((np.zeros((3, 2)), np.zeros(3)), {"points": np.zeros((4, 3))}, "`points`"),
        ((np.zeros((3, 2)), np.zeros(3)), {"tau": -1.0}, "`tau`"),
        ((np.zeros((3, 2)), np.zeros(3)), {"resolution": 1}, "`resolution`"),
        ((np.zeros((3, 2)), np.zeros(3)), {"extent": (1, 0, 0, 1)}, "`extent`"),
        ((np.zeros((3, 2)), np.zeros(3)), {"source_circles": (1.0, -2.0)}, "`source_circles`"),
    ],
)
def test_laguerre_cells_rejects(args, kwargs, name):
    with pytest.raises(ValueError, match=name):
        P.laguerre_cells(*args, **kwargs)


def test_laguerre_cells_rejects_heights_with_map():
    with pytest.raises(ValueError, match="`heights`"):
        P.laguerre_cells(_two_cell_map(), np.zeros(3))


def test_samples_2d(tmp_path):
    rng = np.random.default_rng(0)
    ax = P.samples_2d(rng.normal(size=(50, 2)), rng.normal(size=(5, 2)), colors=np.arange(50) % 5, max_points=20)
    assert len(ax.collections) == 2 and len(ax.collections[0].get_offsets()) == 20
    _png(P.save(ax.figure, tmp_path / "samples.png"))
    with pytest.raises(ValueError, match="`samples`"):
        P.samples_2d(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="`colors`"):
        P.samples_2d(np.zeros((4, 2)), colors=np.zeros(4))
    with pytest.raises(ValueError, match="`data`"):
        P.samples_2d(np.zeros((4, 2)), data=np.zeros(4))


def test_quality_vs_nfe_rows_series_and_controls(tmp_path):
    rows = [
        {"method": "ddpm", "nfe": 100, "w2": 3.2},
        {"method": "ddpm", "nfe": 10, "w2": 4.1},
        {"method": "OT + ddpm", "nfe": 10, "w2": 3.1},
    ]
    ax = P.quality_vs_nfe(rows, controls={"held-out floor": 2.9, "DDPM 1000": 3.05})
    assert [ln.get_label() for ln in ax.lines] == ["ddpm", "OT + ddpm", "held-out floor", "DDPM 1000"]
    np.testing.assert_allclose(ax.lines[0].get_xdata(), [10, 100])  # sorted by NFE
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [4.1, 3.2])
    np.testing.assert_allclose(ax.lines[2].get_ydata(), [2.9, 2.9])
    assert ax.get_xscale() == "log"
    _png(P.save(ax.figure, tmp_path / "quality.png"))
    ax = P.quality_vs_nfe({"smoothed OT": ([0.0, 0.5, 1.0], [0.1, 0.2, 0.4], [0.01, 0.01, 0.02])},
                          controls={"uncorrected": 0.8}, logx=False, xlabel="tau")
    assert len(ax.containers) == 1 and len(ax.lines) >= 2
    ax = P.quality_vs_nfe(rows, group_by=lambda r: r["method"].split()[0], metric="w2")
    assert sorted(ln.get_label() for ln in ax.lines) == ["OT", "ddpm"]


@pytest.mark.parametrize(
    ("series", "kwargs", "name"),
    [
        ([], {}, "`series`"),
        ("rows", {}, "`series`"),
        ([{"method": "a", "nfe": 1}], {}, "'w2'"),
        ({"a": ([1, 2], [1.0])}, {}, "series\\['a'\\] values"),
        ({"a": [1, 2, 3, 4]}, {}, "series\\['a'\\]"),
        ({"a": ([0, 2], [1.0, 2.0])}, {}, "`series` x values must be > 0"),
        ({"a": ([1, 2], [1.0, 2.0])}, {"controls": {"c": float("nan")}}, "`controls\\['c'\\]`"),
        ({"a": ([1, 2], [1.0, 2.0])}, {"logx": 1}, "`logx`"),
    ],
)
def test_quality_vs_nfe_rejects(series, kwargs, name):
    with pytest.raises(ValueError, match=name):
        P.quality_vs_nfe(series, **kwargs)


def test_loss_curve(tmp_path):
    loss = 1.0 / np.arange(1, 201)
    ax = P.loss_curve(loss, eval_steps=[100, 200], eval_values=[0.01, 0.005], smooth=5)
    assert len(ax.lines) == 3 and len(ax.lines[1].get_xdata()) == 196
    _png(P.save(ax.figure, tmp_path / "loss.png"))
    assert len(P.loss_curve(loss[:5]).lines) == 1  # too short for a moving average
    with pytest.raises(ValueError, match="`eval_steps` and `eval_values`"):
        P.loss_curve(loss, eval_steps=[1])
    with pytest.raises(ValueError, match="`smooth`"):
        P.loss_curve(loss, smooth=0)
    with pytest.raises(ValueError, match="`eval_values`"):
        P.loss_curve(loss, eval_steps=[1, 2], eval_values=[1.0])


def test_public_functions_accept_ax_and_return_it():
    fig, axes = P.subplots(2, 3)
    a = axes.ravel()
    assert P.convergence_curve([1, 2], [1, 0.5], ax=a[0]) is a[0]
    assert P.prior_error_brackets([1, 2], [0.5, 0.2], [0.6, 0.3], ax=a[1]) is a[1]
    assert P.image_grid(np.zeros((2, 16)), ax=a[2]) is a[2]
    assert P.laguerre_cells(np.eye(2), np.zeros(2), ax=a[3], resolution=8) is a[3]
    assert P.quality_vs_nfe({"x": ([1, 2], [1, 2])}, ax=a[4]) is a[4]
    assert P.loss_curve([1.0, 0.5], ax=a[5]) is a[5]
    assert len(fig.axes) == 6 and not any(isinstance(c, PolyCollection) for c in a[4].collections)


def _basins(dim: int):
    """A BasinMap-shaped record (the computed ones are checked in tests/test_verify_basins.py)."""
    if dim == 2:
        ot = np.array([[0, 0, 1], [0, 1, 1], [2, 2, 1]])
        fl = np.stack([ot, np.where(ot == 2, 0, ot)])  # at the second time cell 2 flows to point 0
    else:
        ot = np.array([0, 0, 1, 1, 2])
        fl = np.stack([np.array([0, 1, 1, 1, 2]), ot])
    return SimpleNamespace(axis=np.linspace(-1.0, 1.0, len(ot)), points=np.zeros((3, dim)), times=np.array([2.0, 8.0]),
                           ot_index=ot, flow_index=fl, misrouted_mass=np.array([0.1, 0.2]))


@pytest.mark.parametrize("dim", [1, 2])
def test_basin_map_draws_cells_basins_and_the_misrouted_overlay(dim, tmp_path):
    bm = _basins(dim)
    axes = P.basin_map(bm, label="toy")
    assert len(axes) == 3 and "Laguerre" in axes[0].get_title() and "0.2" in axes[2].get_title()
    for i in range(2):
        drawn = np.asarray(axes[i + 1].images[0].get_array()).reshape(bm.ot_index.shape)
        np.testing.assert_array_equal(drawn, bm.flow_index[i])
        alpha = np.asarray(axes[i + 1].images[1].get_array())[..., 3].reshape(bm.ot_index.shape)
        np.testing.assert_array_equal(alpha > 0, bm.flow_index[i] != bm.ot_index)  # red exactly where misrouted
    _png(P.save(axes[0].figure, tmp_path / "basins.png"))


def test_basin_map_rejects():
    fig, axes = P.subplots(1, 2)
    with pytest.raises(ValueError, match="`axes`"):
        P.basin_map(_basins(2), axes=axes)  # needs 1 + 2 axes
    with pytest.raises(ValueError, match="`bm`"):
        P.basin_map(np.zeros((3, 3)))
