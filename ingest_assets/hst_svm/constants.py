"""Static vocabularies, column orders and file patterns of the HST SVM ingest (spacekit 1.1.4 semantics)."""

from __future__ import annotations

# drizzlepac QA JSONs of total products (spacekit's default glob); comma-separated patterns are allowed.
DEFAULT_JSON_PATTERN = "*_total*_svm_*.json"
# A real visit dir is the 6-character ipppss; synthetic (crpt) sets are <ipppss>_<filter>_<all|sub>_<stat|stoc>.
VISIT_DIR_RE = r"^[a-z0-9]{6}(_[a-z0-9_]+_(all|sub)_(stat|stoc))?$"
CRPT_DIR_RE = r"^[a-z0-9]{6}_[a-z0-9_]+_(all|sub)_(stat|stoc)$"
# QA JSON of a total product with its point/segment counts: a visit needs one per total FITS.
NUM_SOURCES_SUFFIX = "_svm_num_sources.json"
# Total product name: hst_<proposal>_<vv>_<instr>_<det>_total_<ipppss>.
PRODUCT_RE = r"^hst_\d+_[0-9a-z]{2}_(acs|wfc3|wfpc2)_[a-z]+_total_[0-9a-z]{6}$"

# Harvest: header keys and general-information keys kept from the first JSON of a product.
HEADER_KEYS = ("TARGNAME", "RA_TARG", "DEC_TARG", "NUMEXP")
GEN_INFO_KEYS = ("imgname",)
SKIPPED_LEAVES = frozenset({"data", "unit", "format", "dtype"})
# JSON file suffix -> column prefix for the HAP-vs-HLA comparison files.
COMPARE_PREFIXES = {
    "_point-cat_svm_compare_sourcelists.json": "hap_vs_hla_point_",
    "_segment-cat_svm_compare_sourcelists.json": "hap_vs_hla_segment_",
}

# Scrub: short names kept from the harvest, and the required ones (gaia may be absent).
SCRUB_KEEP = ("targname", "ra_targ", "dec_targ", "numexp", "imgname", "point", "segment", "number_of_gaia_sources")
REQUIRED_FIELDS = ("targname", "ra_targ", "dec_targ", "numexp", "imgname", "point", "segment")
GAIA_FIELD = "number_of_gaia_sources"

# SCI-extension header metrics; a missing keyword reads as integer 0.
FITS_METRICS = ("rms_ra", "rms_dec", "nmatches", "wcstype")

# Column orders of the output files (spec section 2.6); `index` (product name) is always the last CSV column.
RAW_COLS = (
    "detector", "dataset", "targname", "ra_targ", "dec_targ", "numexp", "imgname", "point", "segment", "gaia",
    "rms_ra", "rms_dec", "nmatches", "wcstype", "category", "cat", "det", "wcs",
)
FEATURE_COLS = ("numexp", "rms_ra", "rms_dec", "nmatches", "point", "segment", "gaia", "det", "wcs", "cat")
LABEL_COL = "label"
INDEX_COL = "index"

# Encodings of known values (spacekit's HstSvmEncoder tables).
DETECTOR_CODES = {"hrc": 0, "ir": 1, "sbc": 2, "uvis": 3, "wfc": 4}
WCS_CODES = {"a posteriori": 0, "a priori": 1, "default a": 2, "not aligned": 3}
CATEGORY_ABBREVIATIONS = {
    "CALIBRATION": "C", "SOLAR SYSTEM": "SS", "ISM": "I", "EXT-MEDIUM": "I", "UNIDENTIFIED": "U", "None": "U",
    "STELLAR CLUSTER": "SC", "EXT-CLUSTER": "SC", "STAR": "S", "EXT-STAR": "S", "CLUSTER OF GALAXIES": "GC",
    "GALAXY": "G",
}
CATEGORY_CODES = {"C": 0, "SS": 1, "I": 2, "U": 3, "SC": 4, "S": 5, "GC": 6, "G": 7}
# Every value outside a table gets one stable code: the table's maximum + 1 (spacekit's codes depend on the run).
UNKNOWN_CODES = {"det": 5, "wcs": 4, "cat": 8}
# spacekit's stand-in for a target MAST cannot classify.
UNRESOLVED_CATEGORY = "None"
# Target name that makes spacekit query MAST by proposal and position instead of by name.
ANY_TARGET = "ANY"
# Half-open RA/Dec box (degrees) of the position query: [ra, ra + 0.1] x [dec, dec + 0.1], as in spacekit.
POSITION_BOX_DEG = 0.1

# Images: one folder per product under img/, three PNGs named <index><suffix>.png.
IMAGE_SUFFIXES = ("", "_source", "_gaia")
