"""Matching constructed products to the day's L3 rows, and the resulting `expmode`/`pname` of every df row."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .constants import PTF

QUERY_KEYS = ("TARGNAME", "targra", "GS_MAG")


@dataclass(frozen=True)
class MatchResult:
    """Outcome of matching the day's products.

    `products`: one row per product (index = product order) with name, bucket, first (df label of its first
    exposure) and pname (NaN when unmatched). `candidates`: every (product order, L3 df label) pair that ended a
    query (the multi-match losers included). `losers`: L3 names that lost a multi-match.
    """

    products: pd.DataFrame
    candidates: pd.DataFrame
    losers: tuple[str, ...]


def query_parameter(info: pd.DataFrame) -> pd.Series:
    """TARGNAME, or for an unnamed target targra (PTF visits) / GS_MAG (others)."""
    unnamed = info["TARGNAME"].isna() | (info["TARGNAME"] == "NONE")
    fallback = np.where(info["VISITYPE"] == PTF, "targra", "GS_MAG")
    return pd.Series(np.where(unnamed, fallback, "TARGNAME"), index=info.index)


def match_products(df: pd.DataFrame, exp: pd.DataFrame, l3: pd.Series) -> MatchResult:
    """Match each product (exposures `exp`, sorted by `order`) to one L3 row of `df` (rows where `l3` is true)."""
    firsts = exp.drop_duplicates("order")
    info = df.loc[firsts.index, ["params", *QUERY_KEYS, "VISITYPE"]]
    products = pd.DataFrame({
        "name": firsts["product"].to_numpy(), "bucket": firsts["bucket"].to_numpy(), "first": firsts.index,
    }, index=pd.Index(firsts["order"].to_numpy(), name="order"))
    qp = query_parameter(info).to_numpy()

    l3rows = df.loc[l3, ["params", *QUERY_KEYS, "dname"]].rename_axis("l3").reset_index()
    pairs = info.reset_index(drop=True).assign(order=products.index, qp=qp).merge(
        l3rows, on="params", suffixes=("", "_l3"))
    equal = {k: (pairs[k] == pairs[f"{k}_l3"]).to_numpy() for k in QUERY_KEYS}
    by_qp = np.select([pairs["qp"] == k for k in QUERY_KEYS], [equal[k] for k in QUERY_KEYS], False)

    keep = _narrow(pairs["order"], by_qp)
    retry = (pairs["qp"] == "TARGNAME").to_numpy() & (pairs["VISITYPE"] == PTF).to_numpy()
    many = pairs["order"].map(pd.Series(keep).groupby(pairs["order"]).sum()).to_numpy() > 1
    requery = _narrow(pairs["order"], equal["targra"])
    keep = np.where(retry & many, requery, keep)

    candidates = pairs.loc[keep, ["order", "l3", "dname"]].sort_values(["order", "dname"], kind="stable")
    winners = candidates.drop_duplicates("order")
    products["pname"] = winners.set_index("order")["dname"].reindex(products.index)
    flagged = candidates.merge(winners[["order", "l3"]].assign(won=True), on=["order", "l3"], how="left")
    lost = flagged.loc[flagged["won"].isna(), "dname"]
    losers = tuple(sorted(set(lost) - set(winners["dname"])))
    return MatchResult(products=products, candidates=candidates[["order", "l3"]], losers=losers)


def _narrow(order: pd.Series, subset: np.ndarray) -> np.ndarray:
    """Per product: its pairs in `subset` if it has any there, otherwise all its pairs (the params-only query)."""
    return np.where(pd.Series(subset).groupby(order.to_numpy()).transform("any").to_numpy(), subset, True)


def assign_modes(df: pd.DataFrame, exp: pd.DataFrame, match: MatchResult) -> pd.DataFrame:
    """Set `expmode` and `pname` on df as the reference's product-by-product loop leaves them.

    A product's exposures take its bucket; when it matched L3 `L`, every row carrying pname `L` (the L3 itself and
    exposures of products matched to `L`) takes the bucket of the last product matched to `L`, and each L3 row takes
    the bucket of the last product that had it as a candidate.
    """
    df = df.copy()
    if "expmode" not in df:
        df["expmode"] = np.nan
    df["expmode"] = df["expmode"].astype(object)
    products = match.products
    bucket = products["bucket"]
    last_match = products.reset_index().dropna(subset=["pname"]).groupby("pname")["order"].max()

    exp_order = exp["order"]
    exp_pname = exp_order.map(products["pname"])
    final_order = exp_pname.map(last_match).fillna(exp_order).astype(int)
    df.loc[exp.index, "expmode"] = final_order.map(bucket).to_numpy()
    df["pname"] = np.nan
    df["pname"] = df["pname"].astype(object)
    df.loc[exp.index, "pname"] = exp_pname.to_numpy()

    last_candidate = match.candidates.groupby("l3")["order"].max()
    df.loc[last_candidate.index, "expmode"] = last_candidate.map(bucket).to_numpy()
    matched_l3 = df.loc[last_candidate.index, "dname"].isin(last_match.index)
    matched_labels = last_candidate.index[matched_l3.to_numpy()]
    df.loc[matched_labels, "pname"] = df.loc[matched_labels, "dname"].to_numpy()
    return df
