"""The lbp extractor: values against skimage LBP codes histogrammed cell by cell with numpy."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from skimage import data
from skimage.feature import local_binary_pattern

import featkit
import featkit.extractors.lbp  # registers "lbp"
from featkit.extractors.lbp import LBPExtractor
from featkit.io import read_image
from featkit.testing import check_extractor, extractor_checks
from tests.conftest import PACS


def reference_lbp(gray, radii, points, method, grid, normalize=True):
    """skimage codes on a reflect-padded image, np.histogram per np.array_split cell."""
    pad = int(np.ceil(max(radii))) + 1
    padded = np.pad(gray, pad, mode="reflect")
    out = []
    for radius, p in zip(radii, points, strict=True):
        codes = local_binary_pattern(padded, p, radius, method)[pad:-pad, pad:-pad]
        if method == "uniform":
            edges = np.arange(p + 3)
        elif method == "nri_uniform":
            edges = np.arange(p * (p - 1) + 4)
        elif method == "default":
            edges = np.arange(2**p + 1)
        else:  # ror: one bin per rotation class, named by its smallest rotation
            edges = np.append(rotation_classes(p), 2**p)
        for band in np.array_split(codes, grid[0], axis=0):
            for cell in np.array_split(band, grid[1], axis=1):
                hist, _ = np.histogram(cell, bins=edges)
                out.append(hist / cell.size if normalize else hist)
    return np.concatenate(out)


def rotation_classes(p):
    """Smallest rotation of every p-bit string, by string rotation (independent of featkit)."""
    minima = set()
    for code in range(2**p):
        s = format(code, f"0{p}b")
        minima.add(min(int(s[k:] + s[:k], 2) for k in range(p)))
    return np.array(sorted(minima))


def _pacs_photo():
    path = PACS / "photo" / "dog" / "056_0001.jpg"
    if not path.is_file():
        pytest.skip(f"PACS image not found at {path}")
    return read_image(path, mode="gray")


@pytest.mark.parametrize("check", [name for name, _ in extractor_checks("lbp")])
def test_conformance_default(check):
    dict(extractor_checks(LBPExtractor()))[check]()


def test_conformance_native_size_nri():
    check_extractor(
        LBPExtractor(radii=(1, 2.5), points=(8, 12), method="nri_uniform", grid=(3, 2), size=None)
    )


def test_default_dimension_and_names():
    ex = featkit.create_extractor("lbp")
    assert ex.feature_dim == 16 * (10 + 18 + 26) == 864
    names = ex.get_feature_names_out()
    assert names[0] == "lbp_r1_c0_0_b0" and names[9] == "lbp_r1_c0_0_b9"
    assert names[10] == "lbp_r1_c0_1_b0" and names[160] == "lbp_r2_c0_0_b0"
    assert names[-1] == "lbp_r3_c3_3_b25"
    assert LBPExtractor(radii=1.5, grid=(1, 1)).get_feature_names_out()[0] == "lbp_r1.5_c0_0_b0"


@pytest.mark.parametrize(
    ("image", "params"),
    [
        ("camera", dict(radii=(1, 2, 3), method="uniform", grid=(4, 4), size=None)),
        (
            "camera",
            dict(radii=(1, 3), points=(4, 16), method="nri_uniform", grid=(3, 5), size=None),
        ),
        ("astronaut", dict(radii=1.5, points=12, method="uniform", grid=(5, 3), size=(97, 130))),
        ("astronaut", dict(radii=(1, 2), points=(8, 8), method="default", grid=(2, 2))),
        ("pacs", dict(radii=(1, 2), points=(8, 12), method="ror", grid=(2, 3), size=(100, 90))),
        ("pacs", dict(radii=(2,), method="nri_uniform", grid=(1, 1), size=None)),
    ],
)
def test_matches_skimage_histograms_per_cell(image, params):
    ex = featkit.create_extractor("lbp", **params)
    source = {"camera": data.camera, "astronaut": data.astronaut, "pacs": _pacs_photo}[image]()
    gray = ex.prepare(source)
    assert gray.dtype == np.uint8 and gray.ndim == 2
    radii = params["radii"] if isinstance(params["radii"], tuple) else (params["radii"],)
    points = params.get("points", tuple(round(8 * r) for r in radii))
    points = points if isinstance(points, tuple) else (points,) * len(radii)
    expected = reference_lbp(gray, radii, points, params["method"], params["grid"])
    got = ex.transform([source])[0]
    assert got.shape == expected.shape == (ex.feature_dim,)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    # every (radius, cell) histogram is L1-normalised: the sums add up to radii x cells
    n_cells = params["grid"][0] * params["grid"][1]
    assert got.sum() == pytest.approx(len(radii) * n_cells, rel=1e-5)


def test_normalize_none_gives_pixel_counts():
    gray = data.camera()[:101, :67]
    ex = LBPExtractor(radii=1, method="uniform", grid=(2, 3), size=None, normalize="none")
    got = ex.transform([gray])[0]
    expected = reference_lbp(gray, (1,), (8,), "uniform", (2, 3), normalize=False)
    np.testing.assert_array_equal(got, expected)
    assert got.sum() == 101 * 67


def test_ror_bins_are_rotation_classes():
    assert featkit.extractors.lbp.lbp_n_bins(8, "ror") == 36
    np.testing.assert_array_equal(featkit.extractors.lbp._ror_codes(8), rotation_classes(8))
    names = LBPExtractor(radii=1, method="ror", grid=(1, 1)).get_feature_names_out()
    assert names[-1] == "lbp_r1_c0_0_b255" and names[1] == "lbp_r1_c0_0_b1"


def test_no_float_warning_from_skimage():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        LBPExtractor().transform([data.astronaut()])


def _rot90_cells(hist, grid, n_bins):
    """Per-cell histograms of an image rotated by np.rot90, moved back to the original cells.

    np.rot90 (counter-clockwise) sends original cell (c, n - 1 - r) to cell (r, c).
    """
    n = grid
    cells = hist.reshape(n, n, n_bins)
    back = np.empty_like(cells)
    for r in range(n):
        for c in range(n):
            back[c, n - 1 - r] = cells[r, c]
    return back.reshape(-1)


def test_uniform_is_rotation_invariant_nri_is_not():
    brick = data.brick()  # 512 x 512 texture
    grid = 4
    distances = {}
    for method in ("uniform", "nri_uniform"):
        ex = LBPExtractor(radii=(1, 2, 3), method=method, grid=(grid, grid), size=(128, 128))
        a, b = ex.transform([brick, np.rot90(brick)])
        bins = ex._n_bins()
        # per radius: undo the cell permutation, then mean L1 distance between cell histograms
        offset, per_radius = 0, []
        for n_bins in bins:
            size = grid * grid * n_bins
            ha = a[offset : offset + size]
            hb = _rot90_cells(b[offset : offset + size], grid, n_bins)
            per_radius.append(np.abs(ha - hb).reshape(grid * grid, n_bins).sum(axis=1).mean())
            offset += size
        distances[method] = max(per_radius)
    # Measured (L1, maximum 2): uniform 0.0004 (float ties in flat areas), nri_uniform 0.64.
    assert distances["uniform"] < 0.005
    assert distances["nri_uniform"] > 0.5


@pytest.mark.parametrize(
    ("params", "match"),
    [
        (dict(radii=0), "radii must be positive"),
        (dict(radii=(1, -2)), "radii must be positive"),
        (dict(radii=True), "radii must be positive"),
        (dict(radii=()), "at least one radius"),
        (dict(radii=(1, 1)), "distinct"),
        (dict(method="var"), "method must be one of"),
        (dict(points=(8, 16)), "one count per radius"),
        (dict(points=8.0), "points must be None"),
        (dict(radii=1, points=0), "1..64 points"),
        (dict(radii=2, method="default"), r"1..12 points.*2 \*\* P"),
        (dict(method="ror"), "1..16 points"),
        (dict(grid=(0, 4)), "grid must be a"),
        (dict(grid=(4,)), "grid must be a"),
        (dict(grid=(200, 4)), "more cells than size"),
        (dict(size=(0, 8)), "size must be None"),
        (dict(normalize="l2"), "normalize must be"),
    ],
)
def test_bad_parameters_fail_at_creation(params, match):
    with pytest.raises(featkit.InvalidParameterError, match=f"^lbp: .*{match}"):
        featkit.create_extractor("lbp", **params)


def test_image_smaller_than_grid_is_a_clear_error():
    ex = LBPExtractor(grid=(4, 4), size=None)
    with pytest.raises(ValueError, match="3x20 pixels is smaller than the grid of 4x4"):
        ex.transform([np.zeros((3, 20), dtype=np.uint8)])
    # one pixel per cell is enough
    assert ex.transform([np.zeros((4, 4), dtype=np.uint8)]).shape == (1, 864)


def test_cells_only_see_their_pixels():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (64, 64), dtype=np.uint8)
    ex = LBPExtractor(radii=2, grid=(2, 2), size=None)
    before = ex.transform([image])[0].reshape(4, 18)  # cells, bins
    changed = image.copy()
    changed[36:, 36:] = rng.integers(0, 256, (28, 28), dtype=np.uint8)  # > 2 px from cell (0,0)
    after = ex.transform([changed])[0].reshape(4, 18)
    np.testing.assert_array_equal(after[0], before[0])  # top-left cell
    assert not np.array_equal(after[3], before[3])  # bottom-right cell
