"""Product feature tables: the unencoded `raw` records and their encoded training features."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .constants import (
    BOOLEAN_FEATURES, CATEGORICAL_FEATURES, CATEGORICAL_NANS, CONTINUOUS_FEATURES,
    DETECTOR_SHAPES, KEYPAIR_DATA, MIRI_SCALES, NIRCAM_SCALES, PIXEL_SCALES, RAW_FGS_COLS, RAW_OFFSET_COLS,
    SCRAPER_KEYS, TRUEVALS, feature_cols,
)
from .skyoffsets import product_offsets

FIDUCIAL_KEYS = {"IMAGE": ("CRVAL1", "CRVAL2"), "SPEC": ("RA_REF", "DEC_REF"), "TAC": ("RA_REF", "DEC_REF")}
SUBARRAY_PREFIXES = ("MASK", "SUB", "WFSS")


class IngestError(ValueError):
    """A value the ingest cannot process, named by dataset and column."""


def scraper_fields(exp: pd.DataFrame) -> pd.DataFrame:
    """The scraper's 29 keys per exposure; an absent column reads as the text 'NaN', as in the reference."""
    return pd.DataFrame({k: exp[k] if k in exp else "NaN" for k in SCRAPER_KEYS}, index=exp.index)


def pixel_geometry(exp: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel scale (arcsec/pix) and detector shape of each exposure."""
    instr = exp["INSTRUME"].astype(str).str.upper()
    channel = exp["CHANNEL"].astype(str).str.upper()
    nircam = ((instr == "NIRCAM") & channel.isin(list(NIRCAM_SCALES))).to_numpy()
    miri = (instr == "MIRI").to_numpy()
    mrs = (exp["EXP_TYPE"] == "MIR_MRS").to_numpy()
    scale = np.select(
        [nircam, miri],
        [channel.map(NIRCAM_SCALES).to_numpy(float), np.where(mrs, MIRI_SCALES["MIR_MRS"], MIRI_SCALES["GEN"])],
        instr.map(PIXEL_SCALES).to_numpy(float))
    nx = instr.map({k: v[0] for k, v in DETECTOR_SHAPES.items()}).to_numpy(float)
    ny = instr.map({k: v[1] for k, v in DETECTOR_SHAPES.items()}).to_numpy(float)
    bad = np.isnan(scale) | np.isnan(nx)
    if bad.any():
        row = exp.loc[bad].iloc[0]
        raise IngestError(
            f"exposure {row['dname']}: no pixel scale/shape for INSTRUME {row['INSTRUME']!r} with CHANNEL "
            f"{row['CHANNEL']!r} (NIRCam needs CHANNEL SHORT or LONG)"
        )
    return scale, nx, ny


def _joined_distinct(values: np.ndarray, group: np.ndarray, *, descending: bool = False) -> np.ndarray:
    """'|'-join of the distinct values of each group 0..n-1 (every one present), sorted (or in reverse)."""
    codes, distinct = pd.factorize(values, sort=True)
    pairs = np.unique(group.astype(np.int64) * len(distinct) + (len(distinct) - 1 - codes if descending else codes))
    owner, code = np.divmod(pairs, max(len(distinct), 1))
    if not len(owner):
        return np.array([], dtype=object)
    last = np.r_[owner[1:] != owner[:-1], True]  # the last value of its group: no '|' after it
    text = np.asarray(distinct, dtype=object)[len(distinct) - 1 - code if descending else code]
    text = text + np.where(last, "", "|").astype(object)
    return np.add.reduceat(text, np.flatnonzero(np.r_[True, last[:-1]]))


def joined_detectors(detector: pd.Series, group: np.ndarray) -> np.ndarray:
    """Distinct upper-cased detectors per group; several are sorted and '|'-joined."""
    return _joined_distinct(detector.astype(str).str.upper().to_numpy(dtype=object), group)


def joined_bands(band: pd.Series, group: np.ndarray) -> np.ndarray:
    """Distinct upper-cased bands per group (values split on '-'); several are sorted descending and '|'-joined."""
    parts = pd.Series(band.astype(str).str.upper().to_numpy(dtype=object)).str.split("-").explode()
    return _joined_distinct(parts.to_numpy(dtype=object), group[parts.index.to_numpy()], descending=True)


def build_raw(bucket: str, exp: pd.DataFrame) -> pd.DataFrame:
    """Unencoded product records of one bucket; `exp` holds its exposures sorted by product `order`.

    Indexed by constructed product name, in product order, with the reference's raw-file columns.
    """
    group = exp["order"].rank(method="dense").astype(np.int64).to_numpy() - 1
    fields = scraper_fields(exp)
    first = np.flatnonzero(np.r_[True, group[1:] != group[:-1]]) if len(group) else np.array([], int)
    names = exp["product"].to_numpy()[first]
    if bucket == "FGS":
        raw = fields.iloc[first][list(RAW_FGS_COLS[:-1])].reset_index(drop=True)
        raw["NEXPOSUR"] = np.bincount(group)
        return raw.set_axis(pd.Index(names, name="product"))

    ra_key, dec_key = FIDUCIAL_KEYS[bucket]
    scale, nx, ny = pixel_geometry(exp)
    off = product_offsets(
        group, exp[ra_key].to_numpy(float), exp[dec_key].to_numpy(float), exp["TARG_RA"].to_numpy(float),
        exp["TARG_DEC"].to_numpy(float), exp["GS_RA"].to_numpy(float), exp["GS_DEC"].to_numpy(float), scale, nx, ny,
    )
    ref = fields.iloc[off["ref"].to_numpy()].reset_index(drop=True)
    raw = pd.concat([off.drop(columns=["n_valid", "ref"]), ref], axis=1)
    raw["NEXPOSUR"] = off["n_valid"].to_numpy()
    raw["scale"] = scale[off["ref"].to_numpy()]
    raw["DETECTOR"] = joined_detectors(exp["DETECTOR"], group)
    raw["BAND"] = joined_bands(exp["BAND"], group)
    return raw[list(RAW_OFFSET_COLS)].set_axis(pd.Index(names, name="product"))


def _nircam_detector_group(detector: pd.Series) -> pd.Series:
    a = detector.str.contains("NRCA", regex=False)
    b = detector.str.contains("NRCB", regex=False)
    multi = detector.str.contains("|", regex=False)
    grouped = np.select([a & b, (a ^ b) & ~multi, a & multi, b & multi], ["NRC-M", "NRC-S", "NRCA-M", "NRCB-M"], "")
    return detector.where(grouped == "", grouped)


_text = np.frompyfunc(str, 1, 1)  # str() of each value of an object array, kept as object


def unencoded_features(bucket: str, raw: pd.DataFrame) -> pd.DataFrame:
    """The reference's feature frame before categorical encoding (NaNdler and value grouping applied)."""
    source = {c.lower(): c for c in raw.columns} | {"instr": "INSTRUME"}
    names = feature_cols(bucket)
    columns = {c: pd.to_numeric(raw[source[c]], errors="coerce").fillna(0.0) if c in CONTINUOUS_FEATURES
               else raw[source[c]] for c in names}
    # The boolean and the categorical columns each in one block, as the text of their values (str(), as astype(str)).
    flags = [c for c in names if c in BOOLEAN_FEATURES]
    flagged = np.isin(_text(raw[[source[c] for c in flags]].to_numpy(dtype=object)), list(TRUEVALS)).astype(np.int64)
    columns |= {c: flagged[:, i] for i, c in enumerate(flags)}
    categories = [c for c in names if c in CATEGORICAL_FEATURES]
    values = raw[[source[c] for c in categories]].to_numpy(dtype=object)
    text = _text(values)
    named = np.where(pd.isna(values) | np.isin(text, list(CATEGORICAL_NANS)), "NONE", text)
    named = pd.DataFrame(named, index=raw.index, columns=categories).astype(str)
    columns |= {c: named[c] for c in categories}
    columns["detector"] = _nircam_detector_group(columns["detector"])
    sub = columns["subarray"]
    for prefix in SUBARRAY_PREFIXES:
        sub = sub.where(~sub.str.startswith(prefix), prefix)
    columns["subarray"] = sub
    return pd.DataFrame({c: columns[c] for c in names}, index=raw.index)


def encode_features(
    features: dict[str, pd.DataFrame], codes: pd.DataFrame,
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Encode the categorical columns of every bucket's features.

    `codes` holds the codes given to unseen values on earlier days (columns column/value/code). Values still unseen
    get max+1, max+2, ... per column in sorted order (D12); they are returned as new code rows.
    """
    new_rows = []
    encoded = {b: f.copy() for b, f in features.items()}
    for col in CATEGORICAL_FEATURES:
        table = dict(KEYPAIR_DATA[col])
        known = codes.loc[codes["column"] == col] if len(codes) else codes
        table.update(zip(known.get("value", []), known.get("code", [])))
        values = pd.concat([f[col] for f in encoded.values()]) if encoded else pd.Series([], dtype=object)
        unseen = sorted(v for v in pd.unique(values) if v not in table)
        start = max(table.values()) + 1
        for offset, value in enumerate(unseen):
            table[value] = start + offset
            new_rows.append({"column": col, "value": value, "code": start + offset})
        coded = values.map(table).astype(np.int64).to_numpy()  # every bucket's column in one lookup
        for frame, part in zip(encoded.values(), np.split(coded, np.cumsum([len(f) for f in encoded.values()])[:-1])):
            frame[col] = part
    return encoded, pd.DataFrame(new_rows, columns=["column", "value", "code"])
