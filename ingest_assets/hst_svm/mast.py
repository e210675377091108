"""MAST target classification (spacekit's HstSvmRadio): an offline table, a live astroquery client, and the
resolution of a visit's products to raw category strings."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from .constants import ANY_TARGET, POSITION_BOX_DEG, UNRESOLVED_CATEGORY
from .visits import first_line

# Columns of a MAST CAOM observation row that the lookup uses; the offline table has exactly these.
TABLE_COLS = ("target_name", "proposal_id", "s_ra", "s_dec", "target_classification")


class MastConfigError(ValueError):
    """The lookup is misconfigured (offline table unreadable, astroquery missing)."""


class MastLookupError(RuntimeError):
    """MAST could not be queried (after retries); the visit should be retried later."""


class UnresolvedCategoryError(LookupError):
    """Some targets have no classification and unresolved categories are not allowed."""


class CategorySource(Protocol):
    """Anything that classifies category queries (columns targname, proposal, ra, dec)."""

    def classify(self, queries: pd.DataFrame) -> pd.Series:
        """First non-empty classification per query row (missing when none), aligned with `queries`."""

    def __str__(self) -> str:
        """Where the classifications come from, for messages."""


def category_queries(scrubbed: pd.DataFrame) -> pd.DataFrame:
    """One query per product: its target name, and proposal + RA/Dec for `ANY` targets (index token 1)."""
    return pd.DataFrame({
        "targname": scrubbed["targname"].astype(str),
        "proposal": scrubbed.index.to_series().str.split("_").str[1],
        "ra": scrubbed["ra_targ"].astype(float),
        "dec": scrubbed["dec_targ"].astype(float),
    }, index=scrubbed.index)


def first_classification(rows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """First non-empty `target_classification` per key group, keeping table order."""
    named = rows[rows["target_classification"].fillna("").astype(str).str.strip() != ""]
    return named.groupby(keys, sort=False, as_index=False)["target_classification"].first()


class OfflineCategoryTable:
    """Classifications from a local CSV of MAST observation rows (columns TABLE_COLS), queried like MAST."""

    def __init__(self, path: Path):
        try:
            table = pd.read_csv(path, dtype={"target_name": str, "proposal_id": str, "target_classification": str})
        except (OSError, ValueError) as exc:
            raise MastConfigError(f"cannot read the offline MAST category table {path}: {exc}") from exc
        absent = [c for c in TABLE_COLS if c not in table.columns]
        if absent:
            raise MastConfigError(f"offline MAST category table {path} lacks columns {absent}")
        self.table = table[list(TABLE_COLS)]
        self.path = path

    def __str__(self) -> str:
        return f"the offline MAST table {self.path}"

    def classify(self, queries: pd.DataFrame) -> pd.Series:
        """By name for named targets; by proposal and the [ra, ra+0.1] x [dec, dec+0.1] box for `ANY`."""
        by_name = first_classification(self.table, ["target_name"]).set_index("target_name")["target_classification"]
        result = queries["targname"].map(by_name)
        anys = queries[queries["targname"] == ANY_TARGET].rename_axis("query").reset_index()
        boxed = anys.merge(self.table, left_on="proposal", right_on="proposal_id")
        inside = boxed["s_ra"].between(boxed["ra"], boxed["ra"] + POSITION_BOX_DEG) & boxed["s_dec"].between(
            boxed["dec"], boxed["dec"] + POSITION_BOX_DEG)
        by_box = first_classification(boxed[inside], ["query"]).set_index("query")["target_classification"]
        return result.where(queries["targname"] != ANY_TARGET, by_box.reindex(queries.index))


Query = Callable[..., Any]


def astroquery_criteria() -> Query:
    """astroquery's `Observations.query_criteria` (needs the `mast` extra)."""
    try:
        from astroquery.mast import Observations
    except ImportError as exc:
        raise MastConfigError("the live MAST lookup needs astroquery: pip install 'ingest_assets[mast]'") from exc
    return Observations.query_criteria


def classification_of(table: Any) -> str | None:
    """First non-empty `target_classification` of an astroquery result table, or None."""
    if table is None or len(table) == 0 or "target_classification" not in table.colnames:
        return None
    column = table["target_classification"]
    values = pd.Series(np.asarray(column.filled("") if hasattr(column, "filled") else column), dtype=str).str.strip()
    values = values[(values != "") & (values != "--")]
    return values.iloc[0] if len(values) else None


class LiveMastCategories:
    """astroquery MAST lookups with retries and a persistent JSON cache (found and not-found answers)."""

    def __init__(self, cache_path: Path, retries: int = 3, wait_seconds: float = 5.0, query: Query | None = None):
        self.cache_path = cache_path
        self.retries = max(1, retries)
        self.wait_seconds = wait_seconds
        self.query = query
        self.cache: dict[str, str | None] = json.loads(cache_path.read_text()) if cache_path.is_file() else {}

    def __str__(self) -> str:
        return "live MAST"

    @staticmethod
    def cache_key(query: pd.Series) -> str:
        """Cache key: the target name, or proposal and position for `ANY`."""
        if query["targname"] != ANY_TARGET:
            return f"target:{query['targname']}"
        return f"box:{query['proposal']}:{query['ra']:.6f}:{query['dec']:.6f}"

    @staticmethod
    def describe(query: pd.Series) -> str:
        """The query in words, for messages."""
        if query["targname"] != ANY_TARGET:
            return f"target {query['targname']}"
        return f"ANY target of proposal {query['proposal']} at RA {query['ra']:.6f}, Dec {query['dec']:.6f}"

    def criteria(self, query: pd.Series) -> dict[str, Any]:
        """query_criteria keywords of one query (spacekit's box is not centred on the target)."""
        if query["targname"] != ANY_TARGET:
            return {"target_name": query["targname"]}
        ra, dec = query["ra"], query["dec"]
        return {"proposal_id": query["proposal"], "s_ra": [ra, ra + POSITION_BOX_DEG],
                "s_dec": [dec, dec + POSITION_BOX_DEG]}

    def ask(self, query: pd.Series) -> str | None:
        """One MAST query with up to `retries` attempts, `wait_seconds` apart."""
        run = self.query or astroquery_criteria()
        errors: list[str] = []
        while len(errors) < self.retries:
            if errors:
                time.sleep(self.wait_seconds)
            try:
                return classification_of(run(**self.criteria(query)))
            except Exception as exc:  # noqa: BLE001 -- network and service errors alike mean "try again"
                errors.append(f"{type(exc).__name__}: {first_line(exc)}")
        raise MastLookupError(f"MAST lookup of {self.describe(query)} failed {self.retries} times: {errors[-1]}")

    def classify(self, queries: pd.DataFrame) -> pd.Series:
        """Classify each distinct query once, from the cache when possible, then save the cache."""
        keys = queries.apply(self.cache_key, axis=1)
        for key, (_, query) in zip(keys, queries.iterrows()):
            if key not in self.cache:
                self.cache[key] = self.ask(query)
                self.save()
        return keys.map(self.cache)

    def save(self) -> None:
        """Write the cache atomically."""
        self.cache_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.cache_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.cache, indent=1, sort_keys=True))
        os.replace(tmp, self.cache_path)


def resolve_categories(queries: pd.DataFrame, source: CategorySource, allow_unresolved: bool) -> pd.Series:
    """Raw MAST category per product; an unresolved one becomes "None" (spacekit) when allowed, else raises."""
    found = source.classify(queries)
    unresolved = found.isna()
    if unresolved.any() and not allow_unresolved:
        targets = sorted(set(queries.loc[unresolved, "targname"]))
        plural = "s" if len(targets) > 1 else ""
        raise UnresolvedCategoryError(f"no MAST classification for target{plural} {', '.join(targets)} in {source}")
    return found.fillna(UNRESOLVED_CATEGORY).astype(str).rename("category")
