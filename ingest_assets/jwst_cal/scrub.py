"""Initial scrub of one day's drop: level classification, recast, dedupe, params, MIRI channels, mosaics.

Everything here depends on the drop alone (no state), so it is the stateless first stage of a day.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .constants import FALSEVALS, L3_TYPES, WFSC_VISITYPES

PARAM_KEYS = ("pid", "OBSERVTN", "FILTER", "GRATING", "PUPIL", "SUBARRAY", "FXD_SLIT", "EXP_TYPE", "BAND")
WFSC_PARAM_KEYS = ("pid", "OBSERVTN", "FILTER", "PUPIL", "DETECTOR")
PROGRAM_ID = re.compile(r"..[0-9]{5}", re.DOTALL)


@dataclass(frozen=True)
class ScrubbedDrop:
    """The science rows of one day (L1 exposures and L3 products) and its mosaic rows."""

    day: str
    file: str
    rows_read: int
    science: pd.DataFrame
    mosaics: pd.DataFrame
    mrs_ch24_dropped: int

    @property
    def n_l1(self) -> int:
        return int(is_level1(self.science["dag"]).sum()) if len(self.science) else 0

    @property
    def n_l3(self) -> int:
        return int(is_level3(self.science["dag"]).sum()) if len(self.science) else 0

    def counts(self) -> ScrubCounts:
        return ScrubCounts(self.rows_read, len(self.science), self.n_l1, self.n_l3, len(self.mosaics),
                           self.mrs_ch24_dropped)


@dataclass(frozen=True)
class ScrubCounts:
    """A scrubbed drop's rows: read from the file, kept as science rows (of them L1 and L3), split off as mosaics,
    and MIRI MRS channel 2-4 rows dropped."""

    rows_read: int
    science: int
    l1: int
    l3: int
    mosaics: int
    mrs_ch24_dropped: int


def _by_value(dag: pd.Series, rule) -> pd.Series:
    """Apply a rule to each distinct DagNodeName once (a drop has a handful) and map it onto the rows."""
    values = pd.unique(dag)
    return dag.map(dict(zip(values, (rule(str(v)) for v in values)))).astype(bool)


def is_level1(dag: pd.Series) -> pd.Series:
    """L1 rows: the DagNodeName contains a '1'."""
    return _by_value(dag, lambda v: "1" in v)


def is_level3(dag: pd.Series) -> pd.Series:
    """L3 rows: the DagNodeName contains a '3' and is not a memory estimate."""
    return _by_value(dag, lambda v: "3" in v and "MEMORY" not in v)


def product_names(dataset: pd.Series) -> pd.Series:
    """`dname` of each Dataset: without its last `_`-token when it ends in "fits" (`..._nrca1_uncal.fits`)."""
    fits = dataset.str.endswith("fits")
    return dataset.mask(fits, dataset[fits].str.rsplit("_", n=1).str[0])


def has_program_id(dname: pd.Series) -> pd.Series:
    """Names with a 5-digit program number at characters 3-7 (`jw01234...`)."""
    return dname.str.match(PROGRAM_ID)


def program_ids(dname: pd.Series) -> pd.Series:
    """The program number of names that have one (see `has_program_id`): `jw01234...` -> 1234."""
    return dname.str.slice(2, 7).astype(np.int64)


def distinct_rows(frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """A frame's distinct rows in order of first appearance, and each row's number among them."""
    group = frame.groupby(list(frame.columns), sort=False, dropna=False).ngroup().to_numpy()
    return frame.iloc[np.unique(group, return_index=True)[1]], group


def join_params(frame: pd.DataFrame, keys: tuple[str, ...]) -> pd.Series:
    """'-'-join of the keys' values, skipping values whose text is in FALSEVALS (built once per distinct key set)."""
    distinct, group = distinct_rows(frame[list(keys)].astype(str).astype(object))
    joined, started = np.full(len(distinct), "", dtype=object), np.zeros(len(distinct), dtype=bool)
    for key in keys:
        values = distinct[key].to_numpy()
        kept = ~distinct[key].isin(FALSEVALS).to_numpy()
        joined = joined + np.where(kept & started, "-", "").astype(object) + np.where(kept, values, "").astype(object)
        started |= kept
    return pd.Series(joined[group], index=frame.index, dtype=object)


def scrub_drop(drop: pd.DataFrame, day: dt.date, file: str) -> ScrubbedDrop:
    """Run the reference's initial scrub on one typed drop that passed its checks (see `drops.read_drop`)."""
    dag = drop["DagNodeName"]
    science = drop.loc[is_level1(dag) | is_level3(dag)].copy()
    science["date"] = day.isoformat()
    science["year"] = np.int64(day.year)
    science["doy"] = np.int64(day.timetuple().tm_yday)

    science["dname"] = product_names(science["Dataset"].astype(str))
    science = science.rename(columns={"ImageSize": "imagesize", "DagNodeName": "dag"})
    science["pid"] = program_ids(science["dname"])
    science["OBSERVTN"] = science["OBSERVTN"].astype(str).str.rjust(3, "0")
    science["PROGRAM"] = science["PROGRAM"].astype(str).str.rjust(5, "0")
    science["TARG_RA"] = np.round(science["TARG_RA"].to_numpy(float), 8)
    science["targra"] = np.round(science["TARG_RA"].to_numpy(float), 6)

    science = science.sort_values("imagesize", kind="stable", na_position="last")
    science = science.drop_duplicates("dname", keep="last")
    science = science.loc[science["EXP_TYPE"].isin(L3_TYPES)]

    wfsc = science["VISITYPE"].isin(WFSC_VISITYPES)
    params = np.empty(len(science), dtype=object)  # each row's, with the keys of its kind
    params[~wfsc.to_numpy()] = join_params(science.loc[~wfsc], PARAM_KEYS).to_numpy()
    params[wfsc.to_numpy()] = join_params(science.loc[wfsc], WFSC_PARAM_KEYS).to_numpy()
    science["params"] = params
    science = pd.concat([science.loc[~wfsc], science.loc[wfsc]])

    detector = science["DETECTOR"]
    science["params"] = science["params"] + np.select(
        [detector == "MIRIFUSHORT", detector == "MIRIFULONG"], ["-12", "-34"], ""
    )
    ch24 = is_level3(science["dag"]) & (science["EXP_TYPE"] == "MIR_MRS") & science["CHANNEL"].isin(["2", "4"])
    science = science.loc[~ch24]

    mosaic = science["dname"].str.contains(r"^[^-]*-c", regex=True)  # the part after the first '-' starts with c
    mosaics = science.loc[mosaic]
    mosaics = pd.concat([mosaics.drop(columns="Dataset"), mosaics[["Dataset"]]], axis=1)
    science = science.loc[~mosaic].drop(columns="Dataset").reset_index(drop=True)
    return ScrubbedDrop(
        day=day.isoformat(), file=file, rows_read=len(drop), science=science,
        mosaics=mosaics.reset_index(drop=True), mrs_ch24_dropped=int(ch24.sum()),
    )

