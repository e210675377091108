"""The drawn PNGs, pinned against the spec's drawing rules (section 2.7) computed here independently:

- grey, linear from 0 to 2 x the ZScale upper limit, clipped;
- axes limits from the footprint's max/min RA and Dec mapped to pixels with FITS origin 1 (north at the bottom);
- hollow circles: point sources red (flag <= 1) or green (<= 5), segment sources blue or green, alpha 0.5, flag =
  min over the `*Flags*` columns with NaN as 100, nothing above 5; Gaia sources cyan, opaque.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.visualization import ZScaleInterval
from astropy.wcs import WCS
from PIL import Image

from ingest_assets.hst_svm.draw import draw_product, product_files
from ingest_assets_tests.svm_fixtures import VARIANTS, build_visit

PRODUCT = "hst_12286_38_wfc3_ir_total_ibl738"
PAD_PX = 10  # savefig's 0.1-inch pad around the tight box, at 100 dpi
NAN = float("nan")
RGB = {"red": (255, 0, 0), "green": (0, 128, 0), "blue": (0, 0, 255), "cyan": (0, 255, 255)}

# Sources at data pixel (x, y), 0-based, with their flag columns and the expected circle colour (None: not drawn).
POINT = [((8, 8), (0, 9), "red"), ((8, 24), (1, 9), "red"), ((8, 40), (2, 9), "green"), ((8, 56), (5, 9), "green"),
         ((24, 8), (6, 9), None), ((24, 24), (7, 1), "red"), ((24, 40), (NAN, NAN), None)]
SEGMENT = [((40, 8), (1, 9), "blue"), ((40, 24), (5, 9), "green"), ((40, 40), (6, 6), None)]
GAIA = [((56, 8), "cyan"), ((56, 40), "cyan")]


@dataclass(frozen=True)
class Drawn:
    """The three PNGs (RGB arrays) of one product and the SCI image and header they come from."""

    plain: np.ndarray
    source: np.ndarray
    gaia: np.ndarray
    data: np.ndarray
    header: fits.Header


def write_sources(path: Path, wcs: WCS, sources: list, flag_names: tuple[str, ...]) -> None:
    """ECSV catalog with RA/DEC at the given data pixels and the given flag columns."""
    ra, dec = wcs.all_pix2world(np.array([xy for xy, *_ in sources], dtype=float), 0).T
    columns = {"RA": ra, "DEC": dec}
    columns |= {name: [flags[i] for _, flags, *_ in sources] for i, name in enumerate(flag_names)}
    Table(columns).write(path, format="ascii.ecsv", overwrite=True)


@pytest.fixture(scope="module")
def drawn(tmp_path_factory) -> Drawn:
    root = tmp_path_factory.mktemp("svm_images")
    folder = build_visit(root, VARIANTS["ibl738"])
    fits_path = folder / f"{PRODUCT}_drz.fits"
    with fits.open(fits_path) as hdus:
        data, header = np.asarray(hdus[1].data, dtype=float), hdus[1].header.copy()
    wcs = WCS(header)
    write_sources(folder / f"{PRODUCT}_point-cat.ecsv", wcs, POINT, ("Flags_f160w", "Flags_f110w"))
    write_sources(folder / f"{PRODUCT}_segment-cat.ecsv", wcs, SEGMENT, ("Flags_f160w", "Flags_f110w"))
    write_sources(folder / f"{PRODUCT}_GAIAeDR3_ref_cat.ecsv", wcs, [(xy, ()) for xy, _ in GAIA], ())
    pngs = [np.asarray(Image.open(p).convert("RGB"), dtype=float)
            for p in draw_product(product_files(fits_path, PRODUCT), root / "img", PRODUCT)]
    return Drawn(*pngs, data=data, header=header)


def png_position(drawn: Drawn, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PNG column and row of data pixel coordinates, from the spec's framing rule."""
    wcs = WCS(drawn.header)
    footprint = wcs.calc_footprint(drawn.header)
    (x_left, x_right), (y_bottom, y_top) = wcs.wcs_world2pix(
        [footprint.max(axis=0), footprint.min(axis=0)], 1).T  # FITS origin 1, as the reference
    height, width = drawn.plain.shape[:2]
    col = PAD_PX + (x - x_left) / (x_right - x_left) * (width - 2 * PAD_PX)
    row = height - PAD_PX - (y - y_bottom) / (y_top - y_bottom) * (height - 2 * PAD_PX)
    return col, row


def test_the_image_is_grey_from_zero_to_twice_the_zscale_upper_limit(drawn):
    y, x = np.mgrid[: drawn.data.shape[0], : drawn.data.shape[1]]
    col, row = png_position(drawn, x, y)
    height, width = drawn.plain.shape[:2]
    margin = PAD_PX + 16  # about half a data pixel: sample only pixels fully inside the axes
    inside = (col > margin) & (col < width - margin) & (row > margin) & (row < height - margin)
    assert inside.sum() > 3500
    pixels = drawn.plain[np.rint(row[inside]).astype(int), np.rint(col[inside]).astype(int)]
    assert (pixels == pixels[:, :1]).all()  # grey: R = G = B
    vmax = 2 * ZScaleInterval().get_limits(drawn.data)[1]
    expected = np.clip(drawn.data[inside] / vmax, 0, 1) * 255
    error = pixels[:, 0] - expected
    assert np.abs(error).max() <= 2 and abs(error.mean()) <= 1  # quantisation to 256 grey levels


def circle_fit(drawn: Drawn, image: np.ndarray, xy: tuple[int, int], color: str) -> tuple[int, float, float]:
    """Changed pixels around a source against the plain image: count, largest blend weight of `color` over the
    background, and the worst residual of that blend model (0 when every change is `color` blended in)."""
    col, row = (int(np.rint(v)) for v in png_position(drawn, np.array(xy[0]), np.array(xy[1])))
    window = np.s_[row - 9: row + 10, col - 9: col + 10]
    delta = image[window] - drawn.plain[window]
    changed = np.abs(delta).sum(axis=-1) > 0
    if not changed.any():
        return 0, 0.0, 0.0
    towards = np.array(RGB[color]) - drawn.plain[window][changed]
    weight = (delta[changed] * towards).sum(axis=-1) / (towards * towards).sum(axis=-1)
    residual = np.abs(delta[changed] - weight[:, None] * towards).max()
    return int(changed.sum()), float(weight.max()), float(residual)


@pytest.mark.parametrize("xy, flags, color", POINT + SEGMENT, ids=lambda v: str(v))
def test_source_circles_are_coloured_by_flag(drawn, xy, flags, color):
    changed, weight, residual = circle_fit(drawn, drawn.source, xy, color or "red")
    if color is None:
        assert changed == 0
    else:
        assert changed >= 10 and residual <= 3 and abs(weight - 0.5) <= 0.05  # `color` at alpha 0.5


@pytest.mark.parametrize("xy, color", GAIA)
def test_gaia_circles_are_cyan_and_opaque(drawn, xy, color):
    changed, weight, residual = circle_fit(drawn, drawn.gaia, xy, color)
    assert changed >= 10 and residual <= 3 and abs(weight - 1) <= 0.05


def test_sources_appear_only_on_their_own_image(drawn):
    assert circle_fit(drawn, drawn.gaia, POINT[0][0], "red")[0] == 0
    assert circle_fit(drawn, drawn.source, GAIA[0][0], "cyan")[0] == 0
