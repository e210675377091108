"""Grouping of L1 exposures into constructed L3 products: fake target ids, naming, routing, target splits."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .constants import (
    BUCKETS, FALSEVALS, L3_TYPES, NANVALS, PARALLEL_PURE, PTF, SOURCE_BASED_TYPES, SOURCE_TNUM, SUBNAN,
    TAC_TYPES, TRUEVALS,
)
from .scrub import distinct_rows

TARGETED_TYPES = frozenset(L3_TYPES) - SOURCE_BASED_TYPES
PUPIL_FIRST = frozenset({"CLEAR", "CLEARP", "F405N"})
FILTER_PUPIL_SPEC = frozenset({"NRC_WFSS", "NIS_SOSS", "NRC_TSGRISM"})


def _numbering(values: pd.Series) -> dict:
    """Deterministic fake ids (D1): the sorted distinct values numbered t1..tN."""
    return {v: f"t{i}" for i, v in enumerate(sorted(values.dropna().unique()), start=1)}


def fake_target_ids(exp: pd.DataFrame) -> tuple[pd.Series, frozenset[str]]:
    """Per-exposure target token and the set of non-PTF target names (the `tn` map's keys)."""
    targeted = exp["EXP_TYPE"].isin(TARGETED_TYPES)
    ptf = exp["VISITYPE"] == PTF
    named = ~exp["TARGNAME"].isin(NANVALS)
    rn = _numbering(exp.loc[targeted & ptf, "targra"])
    tn = _numbering(exp.loc[targeted & ~ptf & named, "TARGNAME"])
    gn_rows = targeted & ~exp["TARGNAME"].isin(tn.keys()) & ~exp["VISITYPE"].isin([PTF, PARALLEL_PURE])
    gn = _numbering(exp.loc[gn_rows, "GS_MAG"])

    tnum = exp["TARGNAME"].map(tn)
    tnum = tnum.fillna(exp["targra"].map(rn)).fillna(exp["GS_MAG"].map(gn)).fillna("t0")
    source = exp["EXP_TYPE"].isin(SOURCE_BASED_TYPES)
    tnum = tnum.where(~source, np.where(exp["VISITYPE"] == PARALLEL_PURE, "t0", SOURCE_TNUM))
    return tnum.astype(object), frozenset(tn)


def _present(values: pd.Series, missing=NANVALS) -> pd.Series:
    """The value's text, or '' when it counts as missing."""
    text = values.astype(str)
    return text.where(~text.isin(missing), "")


NAMING_KEYS = ("PROGRAM", "OBSERVTN", "INSTRUME", "FILTER", "PUPIL", "GRATING", "SUBARRAY", "FXD_SLIT", "EXP_TYPE",
               "VISITYPE", "TSOVISIT", "DETECTOR", "CHANNEL", "BAND")


def name_products(exp: pd.DataFrame, tnum: pd.Series) -> pd.DataFrame:
    """Constructed product name and bucket per exposure (both NaN for exposures that form no product).

    Names depend only on a few columns, so they are built once per distinct combination and joined back.
    """
    keys = exp[[k for k in NAMING_KEYS if k in exp]].astype(str).assign(tnum=tnum.to_numpy())
    distinct, group = distinct_rows(keys)
    return _name_distinct(distinct, distinct["tnum"]).iloc[group].set_axis(exp.index)


def _name_distinct(exp: pd.DataFrame, tnum: pd.Series) -> pd.DataFrame:
    fltr, pupil, grating = _present(exp["FILTER"]), _present(exp["PUPIL"]), _present(exp["GRATING"])
    sub = ("-" + exp["SUBARRAY"].astype(str)).where(~exp["SUBARRAY"].astype(str).isin(SUBNAN), "")
    base = "jw" + exp["PROGRAM"] + "-o" + exp["OBSERVTN"] + "_" + tnum + "_" + exp["INSTRUME"].astype(str) + "_"
    exp_type = exp["EXP_TYPE"]
    tso = exp["TSOVISIT"].astype(str).isin(TRUEVALS) if "TSOVISIT" in exp else pd.Series(False, index=exp.index)
    tac = exp_type.isin(TAC_TYPES) | tso
    fgs = exp["INSTRUME"] == "FGS"

    # image naming
    img_optelem = np.select([pupil == "", pupil.isin(PUPIL_FIRST)], [fltr, pupil + "-" + fltr], fltr + "-" + pupil)
    img_optelem = pd.Series(img_optelem, index=exp.index, dtype=object)
    wfsc = exp["VISITYPE"].astype(str).str.contains("WFSC", regex=False)
    img_name = (base + img_optelem).where(
        ~wfsc, (base + img_optelem + "-" + exp["DETECTOR"].astype(str)).where(sub == "")
    )
    img_name = img_name.where(wfsc, base + img_optelem + sub)
    img_bucket = np.select([tac & ~fgs, fgs], ["TAC", "FGS"], "IMAGE")  # D15: FGS never routes to TAC

    # spec naming
    spec_optelem = np.select(
        [(pupil != "") & exp_type.isin(FILTER_PUPIL_SPEC), pupil != "",
         (grating != "") & (exp_type == "NRS_IFU"), grating != ""],
        [fltr + "-" + pupil, pupil + "-" + fltr, grating + "-" + fltr, fltr + "-" + grating],
        fltr,
    )
    spec_optelem = pd.Series(spec_optelem, index=exp.index, dtype=object)
    slit = ("-" + exp["FXD_SLIT"].astype(str)).where(~exp["FXD_SLIT"].isin(NANVALS), "")
    band = ("ch" + exp["CHANNEL"].astype(str).str[0] + "-" + exp["BAND"].astype(str)).where(
        ~exp["BAND"].isin(NANVALS), ""
    )
    clear_prism = tac & (exp["FILTER"] == "CLEAR") & (exp["GRATING"] == "PRISM")
    spec_name = (base + spec_optelem + slit + sub + band).where(~clear_prism, base + spec_optelem + sub)
    spec_name = spec_name.where(~(tac & (exp_type == "NRC_CORON")), spec_name + "-image3")
    lrs_skip = (exp_type == "MIR_LRS-SLITLESS") & (
        exp["TSOVISIT"].astype(str).isin(FALSEVALS) if "TSOVISIT" in exp else True
    )
    spec_name = spec_name.where(~lrs_skip)
    spec_bucket = np.where(tac, "TAC", "SPEC")

    image_path = exp_type.str.rsplit("_", n=1).str[-1].str.contains("IMAGE", regex=False)
    name = img_name.where(image_path, spec_name).str.lower()
    bucket = pd.Series(np.where(image_path, img_bucket, spec_bucket), index=exp.index, dtype=object)
    return pd.DataFrame({"name": name, "bucket": bucket.where(name.notna())})


def split_target_groups(exp: pd.DataFrame, names: pd.Series, tnum: pd.Series,
                        targetnames: frozenset[str]) -> tuple[pd.Series, pd.Series]:
    """Split PTF products pointing at several targets whose name also occurs outside PTF (`t{n}x{i}`).

    Returns the new names and a rank per exposure ordering split products after the others (0 for unsplit).
    """
    frame = pd.DataFrame({"name": names, "ra": exp["targra"], "dec": np.round(exp["TARG_DEC"].to_numpy(float), 6)})
    grouped = frame.groupby("name", sort=False)
    first = exp.loc[grouped["ra"].head(1).index].set_index(names.loc[grouped["ra"].head(1).index])
    split = (
        (grouped["ra"].nunique() > 1) & (grouped["dec"].nunique() > 1)
        & (first["VISITYPE"] == PTF) & first["TARGNAME"].isin(targetnames)
    )
    rows = names.map(split).fillna(False).astype(bool)
    rank = pd.Series(0, index=names.index)
    if not rows.any():
        return names, rank
    sub = frame.loc[rows]
    index = sub.groupby("name", sort=False)["ra"].rank(method="dense").astype(int) - 1
    token = tnum.loc[sub.index].str.lower()
    # The reference replaces every occurrence of the token; only the split products' exposures pass through here.
    new = [n.replace(t, f"{t}x{i}") for n, t, i in zip(sub["name"], token, index)]
    names = names.copy()
    names.loc[sub.index] = new
    rank.loc[sub.index] = index + 1
    return names, rank


def group_exposures(exp: pd.DataFrame) -> pd.DataFrame:
    """Assign every L1 exposure (rows in df order) to its constructed product.

    Returns `exp` with the columns `product` (name), `bucket`, `tnum` and `order`, sorted by `order`: products are
    numbered in processing order (buckets IMAGE, SPEC, TAC, FGS; within a bucket by first exposure, with target
    splits after the others, by original product and target index). Exposures that form no product are dropped.
    """
    tnum, targetnames = fake_target_ids(exp)
    named = name_products(exp, tnum)
    names, split_rank = split_target_groups(exp, named["name"], tnum, targetnames)
    out = exp.assign(product=names, bucket=named["bucket"], tnum=tnum)
    keep = out["product"].notna()
    out = out.loc[keep]
    original_first = (
        pd.Series(np.arange(len(out)), index=out.index).groupby(named["name"].loc[keep], sort=False).transform("min")
    )
    key = pd.DataFrame({
        "bucket": out["bucket"].map({b: i for i, b in enumerate(BUCKETS)}),
        "split": split_rank.loc[out.index] > 0,
        "first": original_first,
        "rank": split_rank.loc[out.index],
    })
    out["order"] = key.groupby(list(key.columns), sort=True).ngroup()
    return out.sort_values("order", kind="stable")
