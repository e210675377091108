"""Builder of small synthetic HST SVM visits (astropy FITS, ECSV catalogs, drizzlepac-style QA JSON).

The variants follow section 3.3 of the SVM spec. Run `python -m ingest_assets_tests.svm_fixtures DIR` to write the
sample visits and the offline MAST table used by `make run`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import dagster as dg
import numpy as np
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from ingest_assets.defs import hst_svm

PIXEL_DEG = 0.13 / 3600
A_POSTERIORI = "undistorted a posteriori solution aligned by visit to GAIAeDR3"
DEFAULT_A_PRIORI = "pipeline default a priori solution based on GSC240"


@dataclass(frozen=True)
class ProductSpec:
    """One total product of a synthetic visit; `None` leaves a keyword or file out."""

    instrument: str = "wfc3"
    detector: str = "ir"
    proposal: str = "12286"
    visit_num: str = "38"
    targname: str = "NGC-104"
    ra: float = 6.02
    dec: float = -72.08
    numexp: int = 4
    wcstype: str | None = A_POSTERIORI
    rms_ra: float | None = 0.5
    rms_dec: float | None = 0.4
    nmatches: int | None = 42
    extension: str = "drz"
    point: int = 30
    segment: int = 25
    gaia: int | None = 12
    flag_column: str = "Flags_f160w"
    shape: tuple[int, int] = (64, 64)
    compare_json: bool = False
    nan_payload: bool = False

    def name(self, ipppss: str) -> str:
        """Total product name in a visit."""
        return f"hst_{self.proposal}_{self.visit_num}_{self.instrument}_{self.detector}_total_{ipppss}"


@dataclass(frozen=True)
class VisitSpec:
    """A visit dir name and its total products."""

    name: str
    products: tuple[ProductSpec, ...] = field(default_factory=lambda: (ProductSpec(),))


def product_wcs(spec: ProductSpec) -> WCS:
    """TAN WCS centred on the target, 0.13 arcsec pixels, north up."""
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [spec.ra, spec.dec]
    wcs.wcs.crpix = [(spec.shape[1] + 1) / 2, (spec.shape[0] + 1) / 2]
    wcs.wcs.cdelt = [-PIXEL_DEG, PIXEL_DEG]
    return wcs


def primary_header(spec: ProductSpec, filename: str) -> dict[str, object]:
    """The primary-header keys a total product carries (and its QA JSONs repeat)."""
    return {
        "TELESCOP": "HST", "INSTRUME": spec.instrument.upper(), "DETECTOR": spec.detector.upper(),
        "PROPOSID": int(spec.proposal), "TARGNAME": spec.targname, "RA_TARG": spec.ra, "DEC_TARG": spec.dec,
        "NUMEXP": spec.numexp, "FILENAME": filename, "ROOTNAME": filename.split("_")[6], "FILTER": "F160W",
    }


def write_fits(path: Path, spec: ProductSpec, rng: np.random.Generator) -> None:
    """Primary HDU (no data) + SCI image with WCS and the alignment keywords that are not None."""
    primary = fits.PrimaryHDU()
    primary.header.update(primary_header(spec, path.name))
    sci = fits.ImageHDU(data=rng.normal(1.0, 0.05, spec.shape).astype(np.float32), name="SCI")
    sci.header.update(product_wcs(spec).to_header())
    alignment = {"WCSTYPE": spec.wcstype, "RMS_RA": spec.rms_ra, "RMS_DEC": spec.rms_dec, "NMATCHES": spec.nmatches}
    sci.header.update({k: v for k, v in alignment.items() if v is not None})
    fits.HDUList([primary, sci]).writeto(path, overwrite=True)


def write_catalog(path: Path, spec: ProductSpec, rows: int, rng: np.random.Generator, flags: str | None) -> None:
    """ECSV catalog of `rows` sources inside the footprint, with a flag column when `flags` is given."""
    pixels = rng.uniform(2, min(spec.shape) - 2, (rows, 2))
    world = product_wcs(spec).all_pix2world(pixels, 0)
    table = Table({"RA": world[:, 0], "DEC": world[:, 1], "mag": rng.uniform(18, 24, rows)})
    if flags:
        table[flags] = rng.integers(0, 8, rows)
    table.write(path, format="ascii.ecsv", overwrite=True)


def qa_json(spec: ProductSpec, name: str, image: str, data: dict[str, object]) -> dict[str, object]:
    """HapDiagnostic layout: header, general information, data items."""
    header = primary_header(spec, image) | {"EXPTIME": float("nan")}
    general = {
        "telescope": "HST", "proposal_id": spec.proposal, "instrument": spec.instrument.upper(),
        "detector": spec.detector.upper(), "visit": spec.visit_num, "dataframe_index": name, "imgname": image,
        "generation date": "2024-05-01", "generation time": "12:00:00", "commit id": "3f2a1b0",
        "data_source": "svm_quality_analysis", "description": "synthetic fixture",
    }
    items = {title: {"original format": "<class 'dict'>", "description": title, "data": payload}
             for title, payload in data.items()}
    return {"header": header, "general information": general, "data": items}


def write_jsons(folder: Path, spec: ProductSpec, name: str, image: str) -> None:
    """num_sources JSON, and the gaia / HAP-vs-HLA comparison JSONs the spec asks for."""
    num_sources = {"number_of_sources": {"detector": spec.detector, "point": spec.point, "segment": spec.segment}}
    if spec.nan_payload:
        num_sources["distribution stats"] = {"mean offset": float("nan"), "spread": float("inf")}
    files = {f"{name}_svm_num_sources.json": num_sources}
    if spec.gaia is not None:
        gaia_table = {col: {"dtype": "float64", "unit": "deg", "format": "", "data": [1.0, 2.0]}
                      for col in ("RA", "DEC")}
        files[f"{name}_svm_gaia_sources.json"] = {"GAIA sources": gaia_table,
                                                  "Number of GAIA sources": {"Number of GAIA sources": spec.gaia}}
    if spec.compare_json:
        files[f"{name}_point-cat_svm_compare_sourcelists.json"] = {"Cross-match details": {"number of matches": 7}}
    for filename, data in files.items():
        (folder / filename).write_text(json.dumps(qa_json(spec, name, image, data), indent=1))


def build_visit(root: Path, visit: VisitSpec) -> Path:
    """Write one visit dir under `root` (replacing it) and return its path."""
    folder = root / visit.name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    ipppss = visit.name[:6]
    for spec in visit.products:
        name = spec.name(ipppss)
        rng = np.random.default_rng(zlib.crc32(name.encode()))
        image = f"{name}_{spec.extension}.fits"
        write_fits(folder / image, spec, rng)
        write_catalog(folder / f"{name}_point-cat.ecsv", spec, spec.point, rng, spec.flag_column)
        write_catalog(folder / f"{name}_segment-cat.ecsv", spec, spec.segment, rng, spec.flag_column)
        write_catalog(folder / f"{name}_GAIAeDR3_ref_cat.ecsv", spec, spec.gaia or 12, rng, None)
        write_jsons(folder, spec, name, image)
    return folder


IR = ProductSpec()
SBC_ANY = ProductSpec(instrument="acs", detector="sbc", proposal="10189", visit_num="29", targname="ANY", ra=150.1,
                      dec=2.2, numexp=3, wcstype=DEFAULT_A_PRIORI, rms_ra=1.5, rms_dec=1.25, nmatches=7, point=12,
                      segment=9, gaia=4, flag_column="Flags_f165lp")
UVIS_BARE = ProductSpec(detector="uvis", proposal="11665", visit_num="06", targname="MYSTERY-1", ra=210.8, dec=54.3,
                        numexp=2, wcstype=None, rms_ra=None, rms_dec=None, nmatches=None, extension="drc", point=40,
                        segment=33, gaia=20, flag_column="Flags_f606w")

VARIANTS: dict[str, VisitSpec] = {
    # the spec's golden visit: WFC3/IR, a posteriori, target known by name
    "ibl738": VisitSpec("ibl738", (IR,)),
    # ACS/SBC, TARGNAME=ANY (proposal + position query), pipeline-default a priori WCS
    "j96029": VisitSpec("j96029", (SBC_ANY,)),
    # WFC3/UVIS drc without RMS/NMATCHES/WCSTYPE, target unknown to MAST
    "ib4606": VisitSpec("ib4606", (UVIS_BARE,)),
    # single product without a gaia JSON
    "ibq901": VisitSpec("ibq901", (replace(IR, proposal="13001", visit_num="01", gaia=None),)),
    # two detectors in one visit (UVIS + IR); crashes spacekit's harvest on pandas >= 2
    "ic0k05": VisitSpec("ic0k05", (replace(IR, proposal="12500", visit_num="05", compare_json=True, nan_payload=True),
                                   replace(UVIS_BARE, proposal="12500", visit_num="05", targname="NGC-104",
                                           ra=6.02, dec=-72.08, wcstype=A_POSTERIORI, rms_ra=0.75, rms_dec=0.5,
                                           nmatches=18))),
    # synthetic (crpt) copy of the golden visit
    "ibl738_f160w_all_stoc": VisitSpec("ibl738_f160w_all_stoc", (IR,)),
    # point/segment catalogs with an exact `Flags` column (crashes spacekit's drawing)
    "jdw101": VisitSpec("jdw101", (replace(SBC_ANY, detector="wfc", proposal="14000", visit_num="01",
                                           targname="M31-DISK", ra=10.68, dec=41.27, flag_column="Flags"),)),
    # two ANY targets in one visit, at two positions (crashes spacekit's MAST step)
    "j8cw03": VisitSpec("j8cw03", (
        replace(SBC_ANY, detector="wfc", proposal="9425", visit_num="03", ra=53.1, dec=-27.8),
        replace(SBC_ANY, detector="hrc", proposal="9425", visit_num="03", ra=53.4, dec=-27.5))),
    # one product lacks its gaia JSON, the other has it
    "ic9x02": VisitSpec("ic9x02", (
        replace(IR, proposal="12600", visit_num="02"),
        replace(UVIS_BARE, proposal="12600", visit_num="02", targname="NGC-104", gaia=None))),
}

# MAST observation rows the fixtures resolve against (columns of the offline table).
CATEGORY_ROWS = [
    ("NGC-104", "12286", 6.02, -72.08, ""),
    ("NGC-104", "12286", 6.02, -72.08, "STELLAR CLUSTER;GLOBULAR CLUSTER"),
    ("ANY", "10189", 150.15, 2.25, "GALAXY;SPIRAL"),
    ("M31-DISK", "14000", 10.68, 41.27, "GALAXY"),
    ("ANY", "9425", 53.12, -27.75, "CLUSTER OF GALAXIES"),
    ("ANY", "9425", 53.45, -27.45, "STAR;WHITE DWARF"),
    ("ANY", "9425", 53.0, -27.85, "CALIBRATION"),
]


def write_category_table(path: Path) -> Path:
    """Offline MAST table (MAST observation columns) covering every fixture target except MYSTERY-1."""
    path.parent.mkdir(parents=True, exist_ok=True)
    names = ("target_name", "proposal_id", "s_ra", "s_dec", "target_classification")
    Table(rows=CATEGORY_ROWS, names=names).write(path, format="ascii.csv", overwrite=True)
    return path


SAMPLE_VISITS = ("ibl738", "j96029", "ib4606", "ic0k05", "ibl738_f160w_all_stoc")


def main(argv: list[str] | None = None) -> None:
    """Write the sample visits into DIR/inbox and the offline MAST table into DIR/mast_categories.csv."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("dir", type=Path, help="e.g. data/hst_svm")
    args = parser.parse_args(argv)
    for name in SAMPLE_VISITS:
        build_visit(args.dir / "inbox", VARIANTS[name])
    write_category_table(args.dir / "mast_categories.csv")


def svm_resources(root: Path, allow_unresolved: bool = False, settle_seconds: float = 0) -> dict[str, object]:
    """Dagster resources of the SVM group over `root/inbox`, `root/out` and a fixture MAST table."""
    table = root / "mast_categories.csv"
    if not table.exists():
        write_category_table(table)
    return {
        "hst_svm_storage": hst_svm.SvmStorage(inbox_dir=str(root / "inbox"), output_dir=str(root / "out"),
                                              settle_seconds=settle_seconds),
        "hst_svm_mast": hst_svm.MastCategoryResource(table_path=str(table),
                                                     allow_unresolved_targets=allow_unresolved),
        "hst_svm_io_manager": dg.FilesystemIOManager(base_dir=str(root / "out" / "storage")),
    }


if __name__ == "__main__":
    main()
