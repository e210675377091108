"""Scrub of the harvested rows, SCI-header alignment metrics and assembly of the raw and final feature tables."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from astropy.io import fits

from .constants import (
    FEATURE_COLS,
    FITS_METRICS,
    GAIA_FIELD,
    INDEX_COL,
    LABEL_COL,
    PRODUCT_RE,
    RAW_COLS,
    REQUIRED_FIELDS,
    SCRUB_KEEP,
)
from .encode import encode
from .visits import SvmInputError, crpt_suffix, is_crpt


def short_names(harvest: pd.DataFrame) -> pd.DataFrame:
    """Harvest with each column renamed to its last dotted part, lower-cased (spacekit's scrub_columns)."""
    return harvest.rename(columns=lambda c: str(c).rsplit(".", 1)[-1].lower())


def missing_required(harvest: pd.DataFrame) -> dict[str, list[str]]:
    """Required fields that are absent or null, per product (empty when every product is complete)."""
    short = short_names(harvest).reindex(columns=list(REQUIRED_FIELDS))
    short = short.loc[:, ~short.columns.duplicated()]
    nulls = short.isna().rename_axis(index="product", columns="field").stack()
    return nulls[nulls].reset_index().groupby("product", sort=False)["field"].agg(list).to_dict()


def require_images(harvest: pd.DataFrame, visit_dir: Path) -> None:
    """Bad input when a FITS named by a harvested `imgname` is not in the visit dir (a missing `imgname` is left to
    the required-fields check)."""
    short = short_names(harvest)
    short = short.loc[:, ~short.columns.duplicated()]
    names = short["imgname"].dropna().astype(str).unique() if "imgname" in short.columns else []
    absent = sorted(name for name in names if not (visit_dir / name).is_file())
    if absent:
        named_by = "its QA JSON" if len(absent) == 1 else "their QA JSONs"
        raise SvmInputError(f"missing FITS {', '.join(absent)} (named by {named_by})")


def scrub(harvest: pd.DataFrame, visit: str) -> pd.DataFrame:
    """The ten scrubbed columns `detector, dataset, targname, ..., segment, gaia`, keyed by product index."""
    short = short_names(harvest)
    kept = short.columns[short.columns.isin(SCRUB_KEEP)]
    if kept.duplicated().any():
        sources = [c for c, s in zip(harvest.columns, short.columns) if s in set(kept[kept.duplicated()])]
        raise SvmInputError(f"harvested columns collide after renaming: {sources}")
    incomplete = missing_required(harvest)
    if incomplete:
        raise SvmInputError(f"Dataframe is missing some data: {incomplete}")
    products = harvest.index.astype(str).str.removesuffix(crpt_suffix(visit))
    if not products.str.match(PRODUCT_RE).all():
        raise SvmInputError(f"not total product names: {list(harvest.index[~products.str.match(PRODUCT_RE)])}")
    frame = short.loc[:, kept].reindex(columns=list(SCRUB_KEEP))
    gaia = frame[GAIA_FIELD].fillna(0).astype("int64")
    tokens = frame.index.to_series().str.split("_")
    return frame.drop(columns=GAIA_FIELD).assign(gaia=gaia).assign(
        detector=tokens.str[4], dataset=tokens.str[6:].str.join("_")
    )[["detector", "dataset", *SCRUB_KEEP[:-1], "gaia"]]


def reduce_wcstype(value: object) -> object:
    """WCSTYPE phrase -> its 2nd and 3rd space-separated words; a missing keyword (0) stays 0."""
    return " ".join(value.split(" ")[1:3]) if isinstance(value, str) else value


def read_fits_metrics(fits_path: Path) -> dict[str, object]:
    """RMS_RA, RMS_DEC, NMATCHES, WCSTYPE of extension 1 (0 when a keyword is missing), WCSTYPE reduced."""
    try:
        header = fits.getheader(fits_path, 1)
    except (OSError, IndexError, ValueError) as exc:
        raise SvmInputError(f"cannot read the SCI header of {fits_path.name}: {exc}") from exc
    metrics = {key: header.get(key, 0) for key in FITS_METRICS}
    return metrics | {"wcstype": reduce_wcstype(metrics["wcstype"])}


def fits_metrics(scrubbed: pd.DataFrame, visit_dir: Path) -> pd.DataFrame:
    """Header metrics of every product's `imgname` in the visit dir, keyed like `scrubbed`."""
    rows = [read_fits_metrics(visit_dir / str(name)) for name in scrubbed["imgname"]]
    return pd.DataFrame(rows, index=scrubbed.index, columns=list(FITS_METRICS))


def raw_features(scrubbed: pd.DataFrame, metrics: pd.DataFrame, category: pd.Series) -> pd.DataFrame:
    """The 18 raw columns (spacekit's raw_<F>.csv without `index`)."""
    joined = scrubbed.join(metrics).assign(category=category.reindex(scrubbed.index))
    return encode(joined)[list(RAW_COLS)]


def final_features(raw: pd.DataFrame, visit: str) -> pd.DataFrame:
    """The ten feature columns, plus `label` = 1 for a synthetic visit (spacekit's <F>.csv without `index`)."""
    final = raw[list(FEATURE_COLS)]
    return final.assign(**{LABEL_COL: 1}) if is_crpt(visit) else final


def with_index_column(frame: pd.DataFrame) -> pd.DataFrame:
    """Frame with its product index moved to a last `index` column (the CSV layout)."""
    return frame.assign(**{INDEX_COL: frame.index.astype(str)}).reset_index(drop=True)
