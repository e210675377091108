"""One day's stateful ingest: priors, grouping, features, matching, reprocessed products, new table contents.

`ingest_day` is a pure function: the current tables in, the day's new tables and report out.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pandas as pd

from .constants import BUCKETS, feature_cols
from .features import build_raw, encode_features, unencoded_features
from .matching import assign_modes, match_products
from .products import group_exposures
from .scrub import ScrubbedDrop, is_level1, is_level3

STATE_TABLES = ("ingest", "training", *(f"train-{b.lower()}" for b in BUCKETS))
CODES_TABLE = "category_codes"
MODE_COLS = ("expmode", "pname", "Dataset")


@dataclass(frozen=True)
class DayOutcome:
    """New contents of the tables after one day, the day's report and the frames the Dagster assets show."""

    state: dict[str, pd.DataFrame]
    log: dict[str, pd.DataFrame]
    daily: dict[str, pd.DataFrame]
    report: dict
    pulled: pd.DataFrame = field(repr=False)
    products: pd.DataFrame = field(repr=False)
    train_rows: dict[str, pd.DataFrame] = field(repr=False)

    def delta(self) -> DayOutcome:
        """The outcome without the accumulated state tables: what the day itself contributed."""
        return replace(self, state={})


def union_columns(old: list[str], new: list[str]) -> list[str]:
    """`old` plus the columns only in `new`, each placed after its nearest predecessor in `new` (D10)."""
    out = list(old)
    for i, col in enumerate(new):
        if col not in out:
            before = next((c for c in reversed(new[:i]) if c in out), None)
            out.insert(out.index(before) + 1 if before else 0, col)
    return out


def append_rows(table: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """`table` followed by `rows`, columns aligned by name."""
    if table.columns.empty:
        return rows.reset_index(drop=True)
    cols = union_columns(list(table.columns), list(rows.columns))
    return pd.concat([table, rows], ignore_index=True)[cols]


def pull_priors(df: pd.DataFrame, backlog: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Pull back the backlog rows whose params equal an L3 params of the day (returns df, backlog, pulled)."""
    if backlog.empty:
        return df, backlog, backlog
    l3params = df.loc[is_level3(df["dag"]), "params"]
    deduped = backlog.sort_values("date", kind="stable").drop_duplicates("dname", keep="last")
    wanted = deduped["params"].isin(l3params)
    if not wanted.any():
        return df, backlog, backlog.iloc[:0]
    pulled = deduped.loc[wanted]
    merged = append_rows(df, pulled.drop(columns="Dataset"))
    merged = merged.sort_values("date", kind="stable").drop_duplicates("dname", keep="last").reset_index(drop=True)
    return merged, deduped.loc[~wanted].reset_index(drop=True), pulled.reset_index(drop=True)


def product_tables(df: pd.DataFrame, exp: pd.DataFrame, products: pd.DataFrame, codes: pd.DataFrame):
    """Per bucket: encoded train rows, raw rows and rem rows; plus new category codes and a product summary."""
    l3 = df.loc[is_level3(df["dag"])].set_index("dname")
    raw, unencoded = {}, {}
    for bucket in BUCKETS:
        rows = exp.loc[exp["bucket"] == bucket]
        if rows.empty:
            continue
        raw[bucket] = build_raw(bucket, rows)
        unencoded[bucket] = unencoded_features(bucket, raw[bucket])
    encoded, new_codes = encode_features(unencoded, codes)

    train, raw_out, rem, summary = {}, {}, {}, []
    for bucket in BUCKETS:
        key = f"-{bucket.lower()}"
        cols = list(feature_cols(bucket))
        if bucket not in raw:
            rem["rem" + key] = pd.DataFrame(columns=[*cols, "dname", "Dataset"])
            continue
        pname = products.loc[products["bucket"] == bucket].set_index("name")["pname"].reindex(raw[bucket].index)
        target = pd.DataFrame({
            "imagesize": pname.map(l3["imagesize"]), "date": pname.map(l3["date"]), "pname": pname,
        })
        target["imgsize_gb"] = target["imagesize"] / 1e6
        ok = target["imagesize"].notna().to_numpy()  # a matched L3 without ImageSize stays out of training (Q7)
        names = raw[bucket].index.to_series()
        features = encoded[bucket].assign(dname=names)
        train["train" + key] = pd.concat([features, target[["pname", "imagesize", "date", "imgsize_gb"]]], axis=1)[
            ok].assign(Dataset=target["pname"][ok])
        raw_out["raw" + key] = pd.concat([raw[bucket], target], axis=1)[ok].assign(Dataset=target["pname"][ok])
        rem["rem" + key] = features.loc[~ok, [*cols, "dname"]].assign(Dataset=names[~ok])
        summary.append(pd.DataFrame({
            "product": names.to_numpy(), "bucket": bucket, "pname": pname.to_numpy(),
            "n_exposures": raw[bucket]["NEXPOSUR"].to_numpy(), "in_training": ok,
        }))
    summary = pd.concat(summary, ignore_index=True) if summary else pd.DataFrame(
        columns=["product", "bucket", "pname", "n_exposures", "in_training"])
    return train, raw_out, rem, new_codes, summary


def update_repro(df: pd.DataFrame, state: dict[str, pd.DataFrame]) -> tuple[pd.DataFrame, dict, list[str]]:
    """Apply reprocessed products: unmatched L3s already in training.csv update it and their train file.

    Returns df without the reprocessed rows, the updated state tables and the reprocessed names.
    """
    training = state["training"]
    unmatched = df.loc[is_level3(df["dag"]) & df["pname"].isna()]
    if training.empty or not unmatched["dname"].isin(training["Dataset"]).any():
        return df, {}, []
    training = training.sort_values("date", kind="stable").drop_duplicates("pname", keep="last")
    new = unmatched.loc[unmatched["dname"].isin(training["Dataset"])].set_index("dname")
    rows = training["Dataset"].isin(new.index)
    hit = training.loc[rows, "Dataset"]
    for col in ("imagesize", "doy", "date", "year"):
        training.loc[rows, col] = hit.map(new[col]).to_numpy()
    updated = {"training": training.reset_index(drop=True)}
    modes = training.loc[rows].set_index("Dataset")["expmode"]
    for bucket in BUCKETS:
        name = f"train-{bucket.lower()}"
        table = state[name]
        products = modes.index[modes == bucket]
        if table.empty or products.empty:
            continue
        table = table.copy()
        sel = table["pname"].isin(products)
        table.loc[sel, "imagesize"] = table.loc[sel, "pname"].map(new["imagesize"]).to_numpy()
        table.loc[sel, "date"] = table.loc[sel, "pname"].map(new["date"]).to_numpy()
        table["imgsize_gb"] = table["imagesize"] / 1e6
        updated[name] = table
    return df.loc[~df["dname"].isin(new.index)], updated, sorted(new.index)


def ingest_day(scrubbed: ScrubbedDrop, state: dict[str, pd.DataFrame], *, save_l1: bool) -> DayOutcome:
    """Ingest one scrubbed drop on top of the current tables (`STATE_TABLES` and `CODES_TABLE`)."""
    df, backlog, pulled = pull_priors(scrubbed.science, state["ingest"])
    exposures = df.loc[is_level1(df["dag"])]
    exp = group_exposures(exposures) if len(exposures) else exposures.assign(product=[], bucket=[], order=[])
    match = match_products(df, exp, is_level3(df["dag"]))
    df = assign_modes(df, exp, match)
    train, raw, rem, new_codes, summary = product_tables(df, exp, match.products, state[CODES_TABLE])

    l3_working = df.loc[is_level3(df["dag"]), "dname"]
    df, repro_state, reprocessed = update_repro(df, state)
    tables = {**state, **repro_state}

    df = df.assign(Dataset=df["dname"])
    base = [c for c in df.columns if c not in MODE_COLS]
    unmatched = df["pname"].isna()
    level1 = is_level1(df["dag"])
    new_state = {
        "ingest": append_rows(backlog, df.loc[unmatched, [*base, "expmode", "Dataset"]]),
        "training": append_rows(tables["training"], df.loc[~unmatched & ~level1, [*base, *MODE_COLS]]),
    }
    for bucket in BUCKETS:
        name = f"train-{bucket.lower()}"
        new_state[name] = append_rows(tables[name], train[name]) if name in train else tables[name]
    log = {"mosaics": scrubbed.mosaics, CODES_TABLE: new_codes, **raw}
    if save_l1:
        log["level1"] = df.loc[~unmatched & level1, [*base, *MODE_COLS]]

    unmatched_l3 = sorted(df.loc[unmatched & is_level3(df["dag"]), "dname"])
    claims = summary.dropna(subset=["pname"])
    claims = claims.loc[claims.duplicated("pname", keep=False)]
    report = {
        "day": scrubbed.day, "file": scrubbed.file, "save_l1": save_l1, "rows_read": scrubbed.rows_read,
        "rows_l1": scrubbed.n_l1, "rows_l3": scrubbed.n_l3, "mosaics": len(scrubbed.mosaics),
        "mrs_ch24_dropped": scrubbed.mrs_ch24_dropped, "priors_pulled": len(pulled),
        "products": len(summary), "products_matched": int(summary["pname"].notna().sum()),
        "l3_total": len(l3_working) - len(reprocessed), "l3_unmatched": unmatched_l3,
        "l3_matched": len(l3_working) - len(reprocessed) - len(unmatched_l3),
        "multi_match_losers": list(match.losers),
        "duplicate_claims": {p: sorted(g) for p, g in claims.groupby("pname")["product"]},
        "reprocessed": reprocessed, "backlog": len(new_state["ingest"]),
        "training_rows": len(new_state["training"]),
    }
    report["match_rate"] = report["l3_matched"] / report["l3_total"] if report["l3_total"] else 1.0
    return DayOutcome(
        state=new_state, log=log, daily={**rem, "_science": scrubbed.science, "_mosaics": scrubbed.mosaics},
        report=report, pulled=pulled, products=summary, train_rows=train,
    )


def empty_state() -> dict[str, pd.DataFrame]:
    """The tables before the first day."""
    return {**{t: pd.DataFrame() for t in STATE_TABLES}, CODES_TABLE: pd.DataFrame(columns=["column", "value", "code"])}

