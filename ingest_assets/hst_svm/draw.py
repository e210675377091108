"""The three PNGs per total product (spacekit's DrawMosaics): image, image + point/segment sources, image + Gaia."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from astropy.io import ascii as astro_ascii
from astropy.io import fits
from astropy.visualization import ImageNormalize, ZScaleInterval
from astropy.wcs import WCS
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .visits import SvmInputError, first_line

# Flag threshold -> edge colour per catalog; sources with a flag above 5 are not drawn.
FLAG_COLORS = {"point": ("red", "green"), "segment": ("blue", "green")}
MISSING_FLAG = 100
COORDINATES = ("RA", "DEC")


@dataclass(frozen=True)
class ProductFiles:
    """The files drawn for one total product (catalogs may be absent)."""

    fits_path: Path
    point: Path | None
    segment: Path | None
    gaia: Path | None


def product_files(fits_path: Path, product: str) -> ProductFiles:
    """Catalogs next to a total product: its point/segment catalogs and its first `*G*_ref_cat.ecsv`."""
    folder = fits_path.parent

    def existing(name: str) -> Path | None:
        return folder / name if (folder / name).is_file() else None

    gaia = sorted(folder.glob(f"{product}_*G*_ref_cat.ecsv"))
    return ProductFiles(fits_path, existing(f"{product}_point-cat.ecsv"), existing(f"{product}_segment-cat.ecsv"),
                        gaia[0] if gaia else None)


def read_catalog(path: Path | None) -> pd.DataFrame:
    """An ECSV catalog as a frame (empty when absent); an unreadable one, or one without RA/DEC, is bad input."""
    if path is None:
        return pd.DataFrame()
    try:
        catalog = astro_ascii.read(path, format="ecsv").to_pandas()
    except Exception as exc:  # noqa: BLE001 -- astropy raises many types (table, YAML, Unicode) for a broken file
        raise SvmInputError(f"cannot read catalog {path.name}: {first_line(exc)}") from exc
    absent = [c for c in COORDINATES if c not in catalog.columns]
    if absent:
        raise SvmInputError(f"catalog {path.name} lacks the column(s) {absent}")
    return catalog


def flag_colors(catalog: pd.DataFrame, kind: str) -> pd.Series:
    """Edge colour per source: min over every column whose name contains `Flags` (NaN -> 100); None above 5."""
    flag_cols = [c for c in catalog.columns if "Flags" in str(c)]
    if catalog.empty or not flag_cols:
        return pd.Series(None, index=catalog.index, dtype=object)
    flags = catalog[flag_cols].fillna(MISSING_FLAG).min(axis=1)
    low, mid = FLAG_COLORS[kind]
    return pd.Series(np.select([flags <= 1, flags <= 5], [low, mid], None), index=catalog.index, dtype=object)


def scatter_sources(ax: Axes, catalog: pd.DataFrame, colors: pd.Series, alpha: float | None) -> None:
    """Hollow circles (size 15) at the catalog's RA/Dec, one scatter per edge colour."""
    for color in colors.dropna().unique():
        chosen = catalog[colors == color]
        ax.scatter(chosen["RA"], chosen["DEC"], edgecolor=color, facecolor="none", marker="o", s=15, alpha=alpha,
                   transform=ax.get_transform("fk5"))


def new_image_axes(hdu: fits.ImageHDU, figsize: float, dpi: int) -> tuple[Figure, Axes]:
    """Frameless WCS axes showing the data: grey, linear 0..2 x ZScale upper limit, clipped."""
    wcs = WCS(hdu.header)
    fig = Figure(figsize=(figsize, figsize), dpi=dpi)
    ax = fig.add_subplot(111, projection=wcs, frameon=False)
    ax.set_axis_off()
    _, zmax = ZScaleInterval().get_limits(hdu.data)
    ax.imshow(hdu.data, origin="lower", cmap="gray", norm=ImageNormalize(hdu.data, vmin=0, vmax=zmax * 2, clip=True))
    return fig, ax


def frame_footprint(ax: Axes, hdu: fits.ImageHDU) -> None:
    """Axis limits from the footprint's max/min RA and Dec, mapped back to pixels (FITS origin, as spacekit)."""
    wcs = WCS(hdu.header)
    footprint = wcs.calc_footprint(hdu.header)
    corners = np.array([[footprint[:, 0].max(), footprint[:, 1].max()], [footprint[:, 0].min(), footprint[:, 1].min()]])
    xlim, ylim = wcs.wcs_world2pix(corners, 1).T
    ax.set_xlim(xlim)
    ax.set_ylim(ylim)


def draw_product(files: ProductFiles, out_dir: Path, name: str, figsize: float = 24, dpi: int = 100) -> list[Path]:
    """Write `<name>.png`, `<name>_source.png`, `<name>_gaia.png` into `out_dir`; return their paths."""
    try:
        with fits.open(files.fits_path) as hdus:
            hdu = fits.ImageHDU(data=np.asarray(hdus[1].data, dtype=float), header=hdus[1].header)
    except (OSError, IndexError, ValueError, TypeError) as exc:
        raise SvmInputError(f"cannot read the SCI image of {files.fits_path.name}: {exc}") from exc
    point, segment, gaia = read_catalog(files.point), read_catalog(files.segment), read_catalog(files.gaia)
    overlays = {
        "": [],
        "_source": [(point, flag_colors(point, "point"), 0.5), (segment, flag_colors(segment, "segment"), 0.5)],
        "_gaia": [(gaia, pd.Series("cyan", index=gaia.index, dtype=object), None)],
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for suffix, layers in overlays.items():
        fig, ax = new_image_axes(hdu, figsize, dpi)
        for catalog, colors, alpha in layers:
            if not catalog.empty:
                scatter_sources(ax, catalog, colors, alpha)
        frame_footprint(ax, hdu)
        path = out_dir / f"{name}{suffix}.png"
        fig.savefig(path, format="png", bbox_inches="tight")
        written.append(path)
    return written
