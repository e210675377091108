"""One day's stateful ingest: priors, grouping, features, matching, reprocessed products, new table contents.

`ingest_day` is a pure function. It reads the category codes and, of each state table, only a tail: the live rows
from some position on, which must hold every row the day can change. It returns the new content of those tails
(their rows as the day leaves them, then the rows it appends), the rows it appends to the log tables, its daily
tables and its report. Given whole tables as tails, it returns the whole new tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from .constants import BUCKETS, feature_cols
from .features import build_raw, encode_features, unencoded_features
from .matching import assign_modes, match_products
from .products import group_exposures
from .scrub import ScrubbedDrop, is_level1, is_level3

TRAIN_TABLES = tuple(f"train-{b.lower()}" for b in BUCKETS)
STATE_TABLES = ("ingest", "training", *TRAIN_TABLES)
CODES_TABLE = "category_codes"
MODE_COLS = ("expmode", "pname", "Dataset")


@dataclass(frozen=True)
class DayReport:
    """The facts of one ingested day (stored in the ledger as its `asdict`)."""

    day: str
    file: str
    save_l1: bool
    rows_read: int
    rows_l1: int
    rows_l3: int
    mosaics: int
    mrs_ch24_dropped: int
    priors_pulled: int
    products: int
    products_matched: int
    l3_total: int
    l3_matched: int
    l3_unmatched: tuple[str, ...]  # in the working set, matched by no product and not reprocessed
    multi_match_losers: tuple[str, ...]
    duplicate_claims: dict[str, tuple[str, ...]]  # L3 name -> the products that claim it
    reprocessed: tuple[str, ...]
    backlog: int  # rows of `ingest` after the day
    training_rows: int  # rows of `training` after the day
    match_rate: float

    @classmethod
    def from_dict(cls, data: dict) -> DayReport:
        """A report read back from its JSON form."""
        lists = ("l3_unmatched", "multi_match_losers", "reprocessed")
        return cls(**{**data, **{k: tuple(data[k]) for k in lists},
                      "duplicate_claims": {p: tuple(g) for p, g in data["duplicate_claims"].items()}})


@dataclass(frozen=True)
class DayOutcome:
    """What one day did: its report, its constructed products, the encoded rows it added to each train table, and
    what committing it observed."""

    day: str
    report: DayReport
    products: pd.DataFrame = field(repr=False)
    train_rows: dict[str, pd.DataFrame] = field(repr=False)
    backlog_since: str | None = None  # the drop day of the oldest exposure in the backlog after the day
    seconds: float = 0.0  # reading the day's tables, ingesting it and writing it
    # the columns (name, stored type) of each table the day wrote, as they are after the day
    columns: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class DayTables:
    """What a day reads: per state table a tail (every live row the day can change, and all rows after them), the
    number of live rows before each tail, and the category codes."""

    tails: dict[str, pd.DataFrame]
    codes: pd.DataFrame
    rows_before: dict[str, int] = field(default_factory=dict)

    @classmethod
    def empty(cls) -> DayTables:
        """The tables before the first day."""
        return cls({t: pd.DataFrame() for t in STATE_TABLES}, pd.DataFrame(columns=["column", "value", "code"]))


@dataclass(frozen=True)
class DayResult:
    """What a day writes: the new content of each state table's tail, rows appended to log tables, its daily
    tables; and its outcome."""

    outcome: DayOutcome
    tails: dict[str, pd.DataFrame] = field(repr=False)
    log: dict[str, pd.DataFrame] = field(repr=False)
    daily: dict[str, pd.DataFrame] = field(repr=False)


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
    l3params = l3_params(df)
    deduped = backlog.sort_values("date", kind="stable").drop_duplicates("dname", keep="last")
    wanted = deduped["params"].isin(l3params)
    if not wanted.any():
        return df, backlog, backlog.iloc[:0]
    pulled = deduped.loc[wanted]
    merged = append_rows(df, pulled.drop(columns="Dataset"))
    merged = merged.sort_values("date", kind="stable").drop_duplicates("dname", keep="last").reset_index(drop=True)
    return merged, deduped.loc[~wanted].reset_index(drop=True), pulled.reset_index(drop=True)


def l3_params(science: pd.DataFrame) -> pd.Series:
    """The params of the day's L3 rows: the backlog rows with these params are pulled back (and only those)."""
    return science.loc[is_level3(science["dag"]), "params"]


def working_l3_names(science: pd.DataFrame, backlog: pd.DataFrame) -> pd.Series:
    """Names of the L3 rows of the day's working set (its rows and the priors pulled back from `backlog`): the only
    products the day can update in the training tables."""
    df = pull_priors(science, backlog)[0]
    return df.loc[is_level3(df["dag"]), "dname"]


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


def update_repro(df: pd.DataFrame, tails: dict[str, pd.DataFrame]) -> tuple[pd.DataFrame, dict, list[str]]:
    """Apply reprocessed products: unmatched L3s already in training.csv update it and their train file.

    Returns df without the reprocessed rows, the updated tails and the reprocessed names.
    """
    training = tails["training"]
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
        table = tails[name]
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


def ingest_day(scrubbed: ScrubbedDrop, tables: DayTables, *, save_l1: bool) -> DayResult:
    """Ingest one scrubbed drop on top of the tails of the state tables and the category codes."""
    df, backlog, pulled = pull_priors(scrubbed.science, tables.tails["ingest"])
    exposures = df.loc[is_level1(df["dag"])]
    exp = group_exposures(exposures) if len(exposures) else exposures.assign(product=[], bucket=[], order=[])
    match = match_products(df, exp, is_level3(df["dag"]))
    df = assign_modes(df, exp, match)
    train, raw, rem, new_codes, summary = product_tables(df, exp, match.products, tables.codes)

    l3_working = df.loc[is_level3(df["dag"]), "dname"]
    df, repro_tails, reprocessed = update_repro(df, tables.tails)
    tails = {**tables.tails, **repro_tails}

    df = df.assign(Dataset=df["dname"])
    base = [c for c in df.columns if c not in MODE_COLS]
    unmatched = df["pname"].isna()
    level1 = is_level1(df["dag"])
    new_tails = {
        "ingest": append_rows(backlog, df.loc[unmatched, [*base, "expmode", "Dataset"]]),
        "training": append_rows(tails["training"], df.loc[~unmatched & ~level1, [*base, *MODE_COLS]]),
    }
    for name in TRAIN_TABLES:
        new_tails[name] = append_rows(tails[name], train[name]) if name in train else tails[name]
    log = {"mosaics": scrubbed.mosaics, CODES_TABLE: new_codes, **raw}
    if save_l1:
        log["level1"] = df.loc[~unmatched & level1, [*base, *MODE_COLS]]

    unmatched_l3 = tuple(sorted(df.loc[unmatched & is_level3(df["dag"]), "dname"]))
    claims = summary.dropna(subset=["pname"])
    claims = claims.loc[claims.duplicated("pname", keep=False)]
    l3_total = len(l3_working) - len(reprocessed)
    report = DayReport(
        day=scrubbed.day, file=scrubbed.file, save_l1=save_l1, rows_read=scrubbed.rows_read,
        rows_l1=scrubbed.n_l1, rows_l3=scrubbed.n_l3, mosaics=len(scrubbed.mosaics),
        mrs_ch24_dropped=scrubbed.mrs_ch24_dropped, priors_pulled=len(pulled),
        products=len(summary), products_matched=int(summary["pname"].notna().sum()),
        l3_total=l3_total, l3_matched=l3_total - len(unmatched_l3), l3_unmatched=unmatched_l3,
        multi_match_losers=tuple(match.losers),
        duplicate_claims={p: tuple(sorted(g)) for p, g in claims.groupby("pname")["product"]},
        reprocessed=tuple(reprocessed),
        backlog=tables.rows_before.get("ingest", 0) + len(new_tails["ingest"]),
        training_rows=tables.rows_before.get("training", 0) + len(new_tails["training"]),
        match_rate=(l3_total - len(unmatched_l3)) / l3_total if l3_total else 1.0,
    )
    outcome = DayOutcome(day=scrubbed.day, report=report, products=summary, train_rows=train)
    return DayResult(outcome=outcome, tails=new_tails, log=log, daily=rem)
