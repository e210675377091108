"""Integer encodings of detector, WCS solution type and MAST target category, with stable unknown codes."""

from __future__ import annotations

import pandas as pd

from .constants import (
    CATEGORY_ABBREVIATIONS,
    CATEGORY_CODES,
    DETECTOR_CODES,
    UNKNOWN_CODES,
    WCS_CODES,
)


def lookup_codes(values: pd.Series, table: dict[str, int], unknown: int) -> pd.Series:
    """Codes of `values` from `table`; anything else (other strings, numbers, NaN) gets `unknown`."""
    return values.astype("object").map(table).fillna(unknown).astype("int64")


def category_codes(category: pd.Series) -> pd.Series:
    """MAST classification -> code: first `;` part, abbreviated, then coded."""
    first = category.astype("string").str.split(";").str[0]
    return lookup_codes(first.map(CATEGORY_ABBREVIATIONS), CATEGORY_CODES, UNKNOWN_CODES["cat"])


def encode(raw: pd.DataFrame) -> pd.DataFrame:
    """`raw` plus `cat`, `det`, `wcs` (spacekit's column order)."""
    return raw.assign(
        cat=category_codes(raw["category"]),
        det=lookup_codes(raw["detector"], DETECTOR_CODES, UNKNOWN_CODES["det"]),
        wcs=lookup_codes(raw["wcstype"], WCS_CODES, UNKNOWN_CODES["wcs"]),
    )


ENCODED_SOURCES = {"det": "detector", "wcs": "wcstype", "cat": "category"}


def unknown_values(encoded: pd.DataFrame) -> dict[str, list[str]]:
    """Raw values that got the unknown code, per encoded column (only columns that have some)."""
    found = {
        code: sorted(encoded.loc[encoded[code] == UNKNOWN_CODES[code], source].astype(str).fillna("<missing>").unique())
        for code, source in ENCODED_SOURCES.items()
    }
    return {code: values for code, values in found.items() if values}
