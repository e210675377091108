"""Builders of small, hand-readable JWST drops for rule tests."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from ingest_assets.jwst_cal.drops import drop_file_name

COLUMNS = (
    "Dataset", "DagNodeName", "ImageSize", "PROGRAM", "OBSERVTN", "NEXPOSUR", "BKGDTARG", "IS_IMPRT", "VISITYPE",
    "TSOVISIT", "TARGNAME", "TARG_RA", "TARG_DEC", "INSTRUME", "DETECTOR", "FILTER", "PUPIL", "GRATING", "EXP_TYPE",
    "FXD_SLIT", "CHANNEL", "BAND", "SUBARRAY", "NUMDTHPT", "GS_RA", "GS_DEC", "CROWDFLD", "GS_MAG", "RA_REF",
    "DEC_REF", "CRVAL1", "CRVAL2",
)
NIRCAM_IMAGE = {
    "PROGRAM": "01234", "OBSERVTN": "001", "NEXPOSUR": "4", "BKGDTARG": "False", "IS_IMPRT": "False",
    "VISITYPE": "PRIME_TARGETED_FIXED", "TSOVISIT": "False", "TARGNAME": "NGC-1", "TARG_RA": 10.0, "TARG_DEC": 20.0,
    "INSTRUME": "NIRCAM", "DETECTOR": "NRCA1", "FILTER": "F200W", "PUPIL": "CLEAR", "GRATING": "NONE",
    "EXP_TYPE": "NRC_IMAGE", "FXD_SLIT": "NONE", "CHANNEL": "SHORT", "BAND": "NONE", "SUBARRAY": "FULL",
    "NUMDTHPT": "4", "GS_RA": 10.1, "GS_DEC": 20.1, "CROWDFLD": "False", "GS_MAG": 15.5, "RA_REF": 10.0,
    "DEC_REF": 20.0, "CRVAL1": 10.0, "CRVAL2": 20.0,
}


def l1(name: str, **values) -> dict:
    """An L1 exposure row (NIRCam image defaults)."""
    return {**NIRCAM_IMAGE, "Dataset": name, "DagNodeName": "LEVEL_1", "ImageSize": float("nan"), **values}


def l3(name: str, size: float, **values) -> dict:
    """An L3 product row (NIRCam image defaults)."""
    return {**NIRCAM_IMAGE, "Dataset": name, "DagNodeName": "LEVEL_3", "ImageSize": size, **values}


def frame(rows: list[dict]) -> pd.DataFrame:
    """A typed drop frame, as `drops.read_drop` returns it."""
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    for col in df.columns:
        if col not in ("ImageSize", "TARG_RA", "TARG_DEC", "GS_RA", "GS_DEC", "GS_MAG", "RA_REF", "DEC_REF",
                       "CRVAL1", "CRVAL2"):
            df[col] = df[col].astype(object)
        else:
            df[col] = df[col].astype(float)
    return df


def write_drop(folder: Path, day: str, rows: list[dict]) -> Path:
    """Write rows as the drop file of `day` (empty ImageSize and NaN floats as empty cells)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / drop_file_name(dt.date.fromisoformat(day))
    frame(rows).to_csv(path, index=False)
    return path
