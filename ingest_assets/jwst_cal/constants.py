"""Static vocabularies of the JWST calibration ingest (spacekit 1.1.4 semantics)."""

from __future__ import annotations

# Values that count as "missing" in product naming and fake target ids.
NANVALS = frozenset({"NaN", "nan", "N/A", "NONE", "None", "none"})
# Values skipped when building `params`.
FALSEVALS = NANVALS | {"False", "f", "F", "false", "FALSE", "0"}
# Boolean truth, for routing and encoding alike (D11).
TRUEVALS = frozenset({"True", "true", "TRUE", "T", "t", "1"})
# Categorical NaNdler: these (and real NaN) become "NONE".
CATEGORICAL_NANS = frozenset({"N/A", "NaN", "NAN", "nan"})
# Subarray values that add no `-<subarray>` to a product name.
SUBNAN = NANVALS | {"FULL"}

L3_TYPES = (
    "FGS_IMAGE", "MIR_IMAGE", "NRC_IMAGE", "MIR_LRS-FIXEDSLIT", "MIR_MRS", "MIR_LYOT", "MIR_4QPM",
    "MIR_LRS-SLITLESS", "MIR_WFSS", "NRC_CORON", "NRC_WFSS", "NRC_TSIMAGE", "NRC_TSGRISM", "NIS_IMAGE",
    "NIS_AMI", "NIS_WFSS", "NIS_SOSS", "NRS_FIXEDSLIT", "NRS_IFU", "NRS_MSASPEC", "NRS_BRIGHTOBJ",
)
SOURCE_BASED_TYPES = frozenset({"MIR_WFSS", "NRC_WFSS", "NIS_WFSS", "NRS_MSASPEC", "NRS_FIXEDSLIT"})
TAC_TYPES = frozenset({"MIR_4QPM", "MIR_LYOT", "NRC_CORON", "NIS_AMI", "NRS_BRIGHTOBJ", "NRC_TSGRISM", "NRC_TSIMAGE"})
WFSC_VISITYPES = frozenset({"PRIME_WFSC_SENSING_ONLY", "PRIME_WFSC_ROUTINE", "PRIME_WFSC_SENSING_CONTROL"})
PTF = "PRIME_TARGETED_FIXED"
PARALLEL_PURE = "PARALLEL_PURE"
SOURCE_TNUM = "s000000001"

BUCKETS = ("IMAGE", "SPEC", "TAC", "FGS")

# --- raw drop columns -----------------------------------------------------------------------------------------------
FLOAT_COLS = ("CRVAL1", "CRVAL2", "RA_REF", "DEC_REF", "GS_RA", "GS_DEC", "GS_MAG", "TARG_RA", "TARG_DEC")
NUMERIC_COLS = ("ImageSize",) + FLOAT_COLS
REQUIRED_COLS = (
    "Dataset", "DagNodeName", "ImageSize", "PROGRAM", "OBSERVTN", "EXP_TYPE", "VISITYPE", "FILTER", "GRATING",
    "PUPIL", "SUBARRAY", "FXD_SLIT", "BAND", "DETECTOR", "CHANNEL", "TARGNAME", "INSTRUME",
) + FLOAT_COLS
# Read when present; an absent one reads as the string "NaN", as in the reference scraper.
OPTIONAL_COLS = ("TSOVISIT", "BKGDTARG", "IS_IMPRT", "CROWDFLD", "NUMDTHPT", "NEXPOSUR")
# Columns a drop may carry beyond REQUIRED_COLS and OPTIONAL_COLS. They pass through to ingest.csv, training.csv,
# level1.csv and mosaics.csv (spec 2.4); a drop with more is bad input, so that stray columns cannot swell the store.
MAX_EXTRA_COLUMNS = 100

# The scraper's key order; it fixes the column order of raw-*.csv.
SCRAPER_KEYS = (
    "PROGRAM", "OBSERVTN", "NEXPOSUR", "BKGDTARG", "IS_IMPRT", "VISITYPE", "TSOVISIT", "TARGNAME", "TARG_RA",
    "TARG_DEC", "INSTRUME", "DETECTOR", "FILTER", "PUPIL", "GRATING", "FXD_SLIT", "EXP_TYPE", "CHANNEL", "BAND",
    "SUBARRAY", "NUMDTHPT", "GS_RA", "GS_DEC", "GS_MAG", "CROWDFLD", "RA_REF", "DEC_REF", "CRVAL1", "CRVAL2",
)

# --- derived columns --------------------------------------------------------------------------------------------------
OFFSET_STATS = ("max_offset", "mean_offset", "sigma_offset", "err_offset", "sigma1_mean", "frac")
TARG_STATS = tuple(f"targ_{c}" for c in OFFSET_STATS)

RAW_OFFSET_COLS = (
    ("NEXPOSUR", "fx_ra", "fy_dec")
    + tuple(k for k in SCRAPER_KEYS if k not in ("NEXPOSUR", "DETECTOR", "BAND"))
    + ("scale", "offset", "targ_offset", "DETECTOR", "BAND")
    + OFFSET_STATS + TARG_STATS + ("t_offset", "gs_offset")
)
RAW_FGS_COLS = tuple(k for k in SCRAPER_KEYS if k != "NEXPOSUR") + ("NEXPOSUR",)

FEATURE_COLS = (
    "instr", "detector", "exp_type", "visitype", "filter", "pupil", "grating", "fxd_slit", "channel", "subarray",
    "bkgdtarg", "is_imprt", "tsovisit", "nexposur", "numdthpt", "band", "targ_max_offset", "offset", "max_offset",
    "mean_offset", "sigma_offset", "err_offset", "sigma1_mean", "frac", "targ_frac", "gs_mag", "crowdfld",
)
OFFSET_FEATURES = frozenset({
    "targ_max_offset", "offset", "max_offset", "mean_offset", "sigma_offset", "err_offset", "sigma1_mean", "frac",
    "targ_frac",
})
FGS_FEATURE_COLS = tuple(c for c in FEATURE_COLS if c not in OFFSET_FEATURES)
CONTINUOUS_FEATURES = frozenset({
    "nexposur", "numdthpt", "targ_max_offset", "offset", "max_offset", "mean_offset", "sigma_offset", "err_offset",
    "sigma1_mean", "frac", "targ_frac", "gs_mag",
})
CATEGORICAL_FEATURES = ("instr", "detector", "filter", "pupil", "grating", "exp_type", "channel", "band", "subarray",
                        "visitype")
BOOLEAN_FEATURES = frozenset({"bkgdtarg", "tsovisit", "is_imprt", "crowdfld"})


def feature_cols(bucket: str) -> tuple[str, ...]:
    """Encoded feature columns of a bucket's train/rem table, in file order."""
    return FGS_FEATURE_COLS if bucket == "FGS" else FEATURE_COLS


# --- instrument geometry (arcsec / pixel, detector shape) -----------------------------------------------------------
NIRCAM_SCALES = {"SHORT": 0.03, "LONG": 0.06}
PIXEL_SCALES = {"NIRISS": 0.06, "NIRSPEC": 0.12, "FGS": 0.069}
MIRI_SCALES = {"MIR_MRS": 0.196, "GEN": 0.11}
DETECTOR_SHAPES = {"NIRCAM": (2048, 2048), "MIRI": (1032, 1024), "NIRISS": (2048, 2048), "NIRSPEC": (2048, 2048)}
ARCSEC_TO_DEG = 0.0002777777777777778

# --- static categorical codes (KEYPAIR_DATA); unseen values get max+1 codes persisted per store (D12) --------------
def _codes(*names: str) -> dict[str, int]:
    return {n: i for i, n in enumerate(names)}


KEYPAIR_DATA: dict[str, dict[str, int]] = {
    "instr": _codes("FGS", "MIRI", "NIRCAM", "NIRISS", "NIRSPEC"),
    "detector": _codes(
        "NONE", "GUIDER1", "GUIDER1|GUIDER2", "GUIDER2", "MIRIFULONG", "MIRIFULONG|MIRIFUSHORT",
        "MIRIFULONG|MIRIFUSHORT|MIRIMAGE", "MIRIFUSHORT", "MIRIMAGE", "NIS", "NRC-M", "NRC-S", "NRCA-M", "NRCB-M",
        "NRS1", "NRS1|NRS2", "NRS2",
    ),
    "filter": _codes(
        "NONE", "CLEAR", "F070LP", "F070W", "F090W", "F1000W", "F100LP", "F1065C", "F110W", "F1130W", "F1140C",
        "F115W", "F1280W", "F140M", "F140X", "F1500W", "F150W", "F150W2", "F1550C", "F170LP", "F1800W", "F182M",
        "F187N", "F200W", "F2100W", "F210M", "F212N", "F2300C", "F250M", "F2550W", "F2550WR", "F277W", "F290LP",
        "F300M", "F322W2", "F335M", "F356W", "F360M", "F380M", "F410M", "F430M", "F444W", "F460M", "F480M", "F560W",
        "F770W", "FND", "GR150C", "GR150R", "OPAQUE", "P750L", "WLP4",
    ),
    "pupil": _codes(
        "NONE", "CLEAR", "CLEARP", "F090W", "F115W", "F140M", "F150W", "F158M", "F162M", "F164N", "F200W", "F323N",
        "F405N", "F466N", "F470N", "FLAT", "GDHS0", "GDHS60", "GR700XD", "GRISMC", "GRISMR", "MASKBAR", "MASKIPR",
        "MASKRND", "NRM", "WLM8", "WLP8",
    ),
    "grating": _codes("NONE", "MIRROR", "PRISM", "G140M", "G235M", "G395M", "G395H", "G140H", "G235H"),
    "exp_type": _codes(
        "NONE", "FGS_IMAGE", "MIR_4QPM", "MIR_IMAGE", "MIR_LRS-FIXEDSLIT", "MIR_LRS-SLITLESS", "MIR_LYOT", "MIR_MRS",
        "NIS_AMI", "NIS_IMAGE", "NIS_SOSS", "NIS_WFSS", "NRC_CORON", "NRC_IMAGE", "NRC_TSGRISM", "NRC_TSIMAGE",
        "NRC_WFSS", "NRS_BRIGHTOBJ", "NRS_FIXEDSLIT", "NRS_IFU", "NRS_MSASPEC", "MIR_WFSS",
    ),
    "channel": _codes("NONE", "12", "34", "LONG", "SHORT"),
    "band": {
        "NONE": 0, "LONG": 0, "MEDIUM": 0, "SHORT": 0, "SHORT|LONG": 0, "SHORT|MEDIUM": 0, "MEDIUM|LONG": 0,
        "SHORT|MEDIUM|LONG": 1,
    },
    "subarray": {
        "NONE": 0, "ALLSLITS": 1, "BRIGHTSKY": 2, "FULL": 3, "MASK": 4, "SLITLESSPRISM": 5, "SUB": 6, "WFSS": 7,
    },
    "visitype": {
        "NONE": 0, "PRIME_WFSC_ROUTINE": 1, "PRIME_WFSC_SENSING_CONTROL": 1, "PRIME_WFSC_SENSING_ONLY": 1,
        "PARALLEL_PURE": 2, "PARALLEL_SLEW_CALIBRATION": 3, "PRIME_TARGETED_FIXED": 4, "PRIME_TARGETED_MOVING": 5,
        "PRIME_UNTARGETED": 6,
    },
}
