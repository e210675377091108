"""State store of the JWST calibration ingest (D7, D8, D10, D14): one DuckDB file, exported as CSV files.

The DuckDB file `jwst-cal.duckdb` in the output folder is the source of truth; `{table}.csv` files are exports of it,
rewritten whole after every commit. One process at a time uses a store: it holds an exclusive lock on
`.jwst-cal.lock` while open, and waits up to `lock_timeout` seconds for it (and for DuckDB's own file lock). Every stored row is a version: `_added` (day), `_removed` (day, NULL while live)
and `_pos` (order), so a day costs O(changed rows) and any suffix of days can be forgotten. Table kinds:

* state: each day brings the full new content, diffed against the live rows by row content;
* log: each day brings rows to append;
* daily: each day brings its own rows; the export shows the latest ingested day.

Tables whose name starts with "_" are stored but never exported.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from functools import partial
from pathlib import Path
from typing import IO

import duckdb
import numpy as np
import pandas as pd

DB_NAME = "jwst-cal.duckdb"
MARKER_NAME = ".jwst-cal-export"
LOCK_NAME = ".jwst-cal.lock"
TMP_PREFIX = ".jwst-cal-tmp-"
DEFAULT_LOCK_TIMEOUT = 10.0  # seconds a store waits for another process to release the output folder
LOCK_POLL = 0.1
# Beyond this many column changes in one table, the table is rebuilt in one statement: DuckDB's ALTER TABLE
# costs memory in proportion to the table's width each time within a transaction (quadratic in the changes).
MAX_ALTERS = 16
DATA_SCHEMA = "data"
ROW_COLS = ("_added", "_removed", "_pos")
MIN_GAP = 1e-6  # smallest spacing of new positions inside a gap before renumbering
TABLE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*")
DOUBLE, BIGINT, BOOLEAN, VARCHAR = "DOUBLE", "BIGINT", "BOOLEAN", "VARCHAR"
# How DuckDB sees incoming pandas columns -> stored type; None: every value is missing (an object column of NaN).
SCAN_TYPES = {
    "DOUBLE": DOUBLE, "FLOAT": DOUBLE, "BIGINT": BIGINT, "INTEGER": BIGINT, "SMALLINT": BIGINT, "TINYINT": BIGINT,
    "UINTEGER": BIGINT, "USMALLINT": BIGINT, "UTINYINT": BIGINT, "BOOLEAN": BOOLEAN, "VARCHAR": VARCHAR, '"NULL"': None,
}
META_DDL = (
    "CREATE TABLE IF NOT EXISTS schemas (tbl VARCHAR, day VARCHAR, kind VARCHAR, columns VARCHAR)",
    "CREATE TABLE IF NOT EXISTS ledger (day VARCHAR, report VARCHAR)",
    "CREATE TABLE IF NOT EXISTS generation (value BIGINT)",
    "INSERT INTO generation SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM generation)",
    "CREATE TABLE IF NOT EXISTS identity (id VARCHAR)",
    f"CREATE SCHEMA IF NOT EXISTS {DATA_SCHEMA}",
)


class StoreError(RuntimeError):
    """The output database cannot be used (an environment failure); nothing was written."""


class StoreLockedError(StoreError):
    """Another process holds the output folder or its DuckDB file."""


class StoreMissingError(StoreError):
    """The output folder holds exported tables but no database."""


class StoreCorruptError(StoreError):
    """The DuckDB file cannot be read as a database."""


class ExportIncompleteError(RuntimeError):
    """A day was committed to the database, but its CSV export did not finish."""


@dataclass(frozen=True)
class TableSchema:
    """A table's kind and its columns (name, DuckDB type) in recorded order."""

    kind: str
    columns: tuple[tuple[str, str], ...]

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.columns]


@dataclass(frozen=True)
class RowDiff:
    """How a state table's new content differs from its live rows."""

    new_rows: np.ndarray  # positional indices into the new content
    new_pos: np.ndarray  # their `_pos`
    gone_pos: np.ndarray  # `_pos` of the live rows that vanish


# --- pure helpers -----------------------------------------------------------------------------------------------------
def quote(name: str) -> str:
    """A DuckDB identifier."""
    return '"' + name.replace('"', '""') + '"'


def table_ref(table: str) -> str:
    return f"{DATA_SCHEMA}.{quote(table)}"


def check_day(day: str) -> None:
    """Days are ISO dates 'YYYY-MM-DD' (they compare as text)."""
    try:
        valid = date.fromisoformat(day).isoformat() == day
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise ValueError(f"day must be 'YYYY-MM-DD', got {day!r}")


def check_frame(table: str, frame: pd.DataFrame) -> None:
    """Table names are file-name safe; columns are unique (case-insensitively, as in DuckDB) and not reserved."""
    if not TABLE_NAME.fullmatch(table):
        raise ValueError(f"invalid table name {table!r}")
    names = list(frame.columns)
    if not all(isinstance(n, str) for n in names):
        raise ValueError(f"{table}: column names must be strings")
    if len({n.lower() for n in names}) != len(names):
        raise ValueError(f"{table}: duplicate column names {names}")
    if reserved := sorted(set(names) & set(ROW_COLS)):
        raise ValueError(f"{table}: reserved column names {reserved}")
    if not names and len(frame):
        raise ValueError(f"{table}: rows without columns")


def widen(stored: str, incoming: str) -> str:
    """Common type of two column types: BIGINT and DOUBLE give DOUBLE, any other mix gives VARCHAR."""
    if stored == incoming:
        return stored
    return DOUBLE if {stored, incoming} == {BIGINT, DOUBLE} else VARCHAR


def cast_expr(expr: str, source: str | None, target: str) -> str:
    """SQL converting `expr` from `source` to `target`; booleans become 'True'/'False' text as pandas writes them."""
    if source == target:
        return expr
    if source == BOOLEAN and target == VARCHAR:
        return f"CASE WHEN {expr} THEN 'True' WHEN NOT {expr} THEN 'False' END"
    return f"CAST({expr} AS {target})"


def convert_expr(expr: str, stored: str, target: str) -> str:
    """SQL converting a stored column to a new type: widening, or narrowing back to the type of its live rows.

    Narrowing back happens on rollback. DuckDB also converts the rows the transaction deleted (values of the
    rolled-back days); those may fail and become NULL. Live rows came from `target` and convert back.
    """
    if stored != target and widen(stored, target) == stored:
        return f"TRY_CAST({expr} AS {target})"
    return cast_expr(expr, stored, target)


def insert_position(order: list[str], preceding: list[str]) -> int:
    """Index right after the nearest of `preceding` (incoming order) that `order` has; 0 when none."""
    known = {name: i for i, name in enumerate(order)}
    return next((known[name] + 1 for name in reversed(preceding) if name in known), 0)


def evolve_columns(columns: tuple[tuple[str, str], ...], frame: pd.DataFrame,
                   types: Mapping[str, str | None]) -> tuple[tuple[str, str], ...]:
    """Columns after `frame` is written: types widened, new columns placed after their incoming predecessor.

    A column that is entirely missing in `frame` keeps its stored type (a new one defaults to VARCHAR).
    """
    order = [name for name, _ in columns]
    stored = dict(columns)
    incoming = list(frame.columns)
    for i, name in enumerate(incoming):
        typ = types[name]
        if name not in stored:
            stored[name] = typ or VARCHAR
            order.insert(insert_position(order, incoming[:i]), name)
        elif typ not in (None, stored[name]) and frame[name].notna().any():
            stored[name] = widen(stored[name], typ)
    return tuple((name, stored[name]) for name in order)


def occurrence(hashes: np.ndarray) -> np.ndarray:
    """0, 1, 2... over the successive occurrences of each hash."""
    return pd.Series(hashes).groupby(hashes, sort=False).cumcount().to_numpy()


def match_positions(stored_h: np.ndarray, stored_pos: np.ndarray, new_h: np.ndarray) -> np.ndarray:
    """`_pos` of the live row each new row equals (occurrences paired in order); NaN for new rows."""
    stored = pd.DataFrame({"h": stored_h, "k": occurrence(stored_h), "pos": stored_pos})
    new = pd.DataFrame({"h": new_h, "k": occurrence(new_h)})
    return new.merge(stored, on=["h", "k"], how="left")["pos"].to_numpy(dtype=np.float64)


def place_new_rows(matched: np.ndarray) -> np.ndarray | None:
    """Positions of all rows given the kept rows' positions (NaN = new); None when a renumbering is needed
    (kept rows out of order, or a gap too small).

    New rows go between their kept neighbours, evenly spaced; before the first kept row at -1, -2...; after the last
    at +1, +2...; none kept: 0, 1, 2...
    """
    kept = ~np.isnan(matched)
    series = pd.Series(matched)
    new = ~kept
    run = np.cumsum(kept)[new]  # new rows sharing a gap share a run id
    rank = pd.Series(run).groupby(run, sort=False).cumcount().to_numpy() + 1
    size = np.bincount(run)[run]
    prev, nxt = series.ffill().to_numpy()[new], series.bfill().to_numpy()[new]
    step = (nxt - prev) / (size + 1)
    if np.any(step < MIN_GAP):
        return None
    positions = matched.copy()
    positions[new] = np.where(
        np.isnan(prev),
        np.where(np.isnan(nxt), rank - 1.0, nxt - (size + 1 - rank)),
        np.where(np.isnan(nxt), prev + rank, prev + step * rank),
    )
    return positions if np.all(np.diff(positions) > 0) else None


def diff_rows(stored_h: np.ndarray, stored_pos: np.ndarray, new_h: np.ndarray) -> RowDiff | None:
    """Diff of a state table by row hashes (live rows in `_pos` order); None when it must be renumbered."""
    n = len(stored_h)
    if len(new_h) >= n and np.array_equal(new_h[:n], stored_h):  # the usual day: rows appended
        last = stored_pos[-1] if n else -1.0
        added = np.arange(n, len(new_h))
        return RowDiff(added, last + 1.0 + np.arange(len(added)), stored_pos[:0])
    matched = match_positions(stored_h, stored_pos, new_h)
    positions = place_new_rows(matched)
    if positions is None:
        return None
    added = np.flatnonzero(np.isnan(matched))
    return RowDiff(added, positions[added], stored_pos[~np.isin(stored_pos, matched)])


def read_back(values: pd.Series, typ: str) -> pd.Series:
    """A stored column as pandas holds it: text as object str with np.nan; BIGINT with missing values as float64,
    BOOLEAN with missing values as object."""
    if typ == DOUBLE:
        return values.astype(np.float64)
    if typ == VARCHAR and isinstance(values.dtype, pd.StringDtype) and isinstance(values.dtype.na_value, float):
        return values.astype(object)  # pandas' str dtype already marks missing values with np.nan
    missing = values.isna()
    if not missing.any():
        return values.astype({BIGINT: np.int64, BOOLEAN: bool}.get(typ, object))
    if typ == BIGINT:
        return values.astype(np.float64)
    return values.astype(object).where(~missing, np.nan)


def to_pandas(frame: pd.DataFrame, schema: TableSchema) -> pd.DataFrame:
    """The recorded columns of a DuckDB result, in recorded order, with read-back types."""
    columns = {name: read_back(frame[name], typ) for name, typ in schema.columns}
    return pd.DataFrame(columns, columns=schema.names, copy=False).reset_index(drop=True)


def json_default(value):
    """numpy values in reports."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"report value of type {type(value).__name__} is not JSON serializable")


def write_atomic(path: Path, write: Callable[[IO[str]], None]) -> None:
    """Write through a temp file in the same folder, fsync, then os.replace; no temp file survives an error.

    The file gets the mode a plain write would give (0666 less the process umask), not a private temp file's 0600.
    """
    tmp = path.parent / f"{TMP_PREFIX}{secrets.token_hex(8)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def first_line(err: BaseException) -> str:
    """An exception's message on one line (its type when it has none)."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def lock_folder(folder: Path, timeout: float) -> int:
    """An exclusive lock on the folder's lock file, waited for up to `timeout` s; returns its descriptor."""
    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666)
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                raise StoreLockedError(
                    f"{folder} is in use by another process (an ingest holds {LOCK_NAME}; waited {timeout:g} s)"
                ) from None
            time.sleep(LOCK_POLL)


def connect(db_path: Path, timeout: float) -> duckdb.DuckDBPyConnection:
    """Open the DuckDB file, waiting up to `timeout` s while another process holds it; clear errors otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return duckdb.connect(str(db_path))
        except duckdb.IOException as exc:
            cause = first_line(exc)
            if "lock" not in cause.lower():
                if "not a valid DuckDB database" in cause or "Could not read enough bytes" in cause:
                    raise StoreCorruptError(f"{db_path} is not a readable DuckDB database ({cause})") from exc
                raise StoreError(f"cannot open {db_path}: {cause}") from exc
            if time.monotonic() >= deadline:
                raise StoreLockedError(
                    f"{db_path} is in use by another process (waited {timeout:g} s; one writer at a time): "
                    f"{cause}") from exc
            time.sleep(LOCK_POLL)


# --- the store --------------------------------------------------------------------------------------------------------
class IngestStore:
    """Per-day versioned tables in `output_dir/jwst-cal.duckdb`, exported as `output_dir/{table}.csv`."""

    def __init__(self, output_dir: Path, *, lock_timeout: float = DEFAULT_LOCK_TIMEOUT, export: bool = True):
        """Open (or create) the store; `export=False` keeps the CSV files as they are (a database built aside)."""
        self.output_dir = Path(output_dir)
        self._exports = export
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self._lock = lock_folder(self.output_dir, lock_timeout)
        self._con = None
        self._in_transaction = False
        try:
            db_path = self.output_dir / DB_NAME
            if not db_path.exists() and (self.output_dir / MARKER_NAME).exists():
                raise StoreMissingError(
                    f"{self.output_dir} holds exported tables ({MARKER_NAME}) but no {DB_NAME}: the database was "
                    "deleted or moved")
            self._con = connect(db_path, max(0.0, lock_timeout))
            for statement in META_DDL:
                self._sql(statement)
            self._sql("INSERT INTO identity SELECT ? WHERE NOT EXISTS (SELECT 1 FROM identity)", [str(uuid.uuid4())])
            for stale in self.output_dir.glob(TMP_PREFIX + "*"):
                stale.unlink()
            if export and self._marker().get("export") != self._export_id():  # a commit not fully exported
                try:
                    self._export()
                except Exception as err:
                    raise StoreError(
                        f"the CSV export of the last committed day could not be completed: {first_line(err)}"
                    ) from err
        except duckdb.IOException as err:
            self.close()
            raise StoreError(f"cannot use {db_path}: {first_line(err)}") from err
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None
        if self._lock is not None:
            os.close(self._lock)  # releases the folder lock
            self._lock = None

    def __enter__(self) -> IngestStore:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # --- reading ------------------------------------------------------------------------------------------------------
    def days(self) -> list[str]:
        """Ingested days, ascending."""
        return [row[0] for row in self._sql("SELECT day FROM ledger ORDER BY day")]

    def report(self, day: str) -> dict | None:
        rows = self._sql("SELECT report FROM ledger WHERE day = ?", [day])
        return json.loads(rows[0][0]) if rows else None

    def current(self, table: str) -> pd.DataFrame:
        """Live rows in order (for a daily table: the latest ingested day's rows); unknown table -> empty frame."""
        schema = self._schema(table)
        if schema is None:
            return pd.DataFrame()
        if schema.kind == "daily":
            return self._rows(table, schema, "_added = (SELECT max(day) FROM ledger)")
        return self._rows(table, schema, "_removed IS NULL")

    def daily(self, table: str, day: str) -> pd.DataFrame:
        """The rows a daily table received on `day`."""
        schema = self._schema(table)
        if schema is None:
            return pd.DataFrame()
        if schema.kind != "daily":
            raise ValueError(f"{table} is a {schema.kind} table, not a daily one")
        return self._rows(table, schema, "_added = ?", [day])

    # --- writing ------------------------------------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN ... COMMIT (ROLLBACK and re-raise on error), then export every non-internal table.

        A DuckDB I/O failure (full disk, permissions) raises StoreError; a failure or interruption after the commit
        raises ExportIncompleteError: the day is stored and its export is completed when the store is next opened.
        """
        if self._in_transaction:
            raise RuntimeError("a transaction is already open")
        self._sql("BEGIN TRANSACTION")
        self._in_transaction = True
        try:
            yield
            self._sql("UPDATE generation SET value = value + 1")
            self._sql("COMMIT")
        except duckdb.IOException as err:
            self._rollback()
            raise StoreError(f"writing {self.output_dir / DB_NAME} failed: {first_line(err)}") from err
        except BaseException:
            self._rollback()
            raise
        finally:
            self._in_transaction = False
        if not self._exports:
            return
        try:
            self._export()
        except BaseException as err:
            raise ExportIncompleteError(
                f"the day is committed to {self.output_dir / DB_NAME}, but exporting its CSV files failed "
                f"({first_line(err)}); the export is completed the next time this output folder is ingested into"
            ) from err

    def rollback_from(self, day: str) -> None:
        """Forget every contribution of the days >= `day` (rows, removals, schema changes, ledger entries)."""
        self._require_transaction()
        check_day(day)
        for table in self._tables():
            self._sql(f"DELETE FROM {table_ref(table)} WHERE _added >= ?", [day])
            self._sql(f"UPDATE {table_ref(table)} SET _removed = NULL WHERE _removed >= ?", [day])
        changed = self._sql("SELECT DISTINCT tbl FROM schemas WHERE day >= ?", [day])
        self._sql("DELETE FROM schemas WHERE day >= ?", [day])
        for (table,) in changed:
            self._restore_table(table)
        self._sql("DELETE FROM ledger WHERE day >= ?", [day])

    def write_day(self, day: str, *, state: Mapping[str, pd.DataFrame], log: Mapping[str, pd.DataFrame],
                  daily: Mapping[str, pd.DataFrame], report: dict) -> None:
        """Store one day: full content of state tables, rows appended to log tables, the day's daily rows."""
        self._require_transaction()
        check_day(day)
        stored = self.days()
        if stored and day <= stored[-1]:
            raise ValueError(f"day {day} is not after the last stored day {stored[-1]}; roll back first")
        writes = [(t, "state", f) for t, f in state.items()] + [(t, "log", f) for t, f in log.items()] + [
            (t, "daily", f) for t, f in daily.items()]
        names = [table for table, _, _ in writes]
        if len(set(names)) != len(names):
            raise ValueError(f"a table is given more than once: {sorted(names)}")
        writers = {"state": self._write_state, "log": self._append, "daily": self._append}
        for table, kind, frame in writes:
            check_frame(table, frame)
            types = self._frame_types(frame)
            schema = self._evolve_schema(table, kind, frame, types, day)
            if schema is not None:
                writers[kind](table, schema, frame, types, day)
        self._sql("INSERT INTO ledger VALUES (?, ?)", [day, json.dumps(report, default=json_default)])

    def _sql(self, sql: str, params: list | None = None) -> list[tuple]:
        """Run one statement to completion (DuckDB refuses new work while a result is unfinished)."""
        return self._con.execute(sql, params or []).fetchall()

    # --- schema -------------------------------------------------------------------------------------------------------
    def _schema(self, table: str) -> TableSchema | None:
        rows = self._sql("SELECT kind, columns FROM schemas WHERE tbl = ? ORDER BY day DESC LIMIT 1", [table])
        return TableSchema(rows[0][0], tuple(tuple(c) for c in json.loads(rows[0][1]))) if rows else None

    def _tables(self) -> list[str]:
        return [row[0] for row in self._sql("SELECT DISTINCT tbl FROM schemas ORDER BY tbl")]

    def _evolve_schema(self, table: str, kind: str, frame: pd.DataFrame, types: Mapping[str, str | None],
                       day: str) -> TableSchema | None:
        """Create or alter the table for `frame`, record the new schema.

        A frame without rows changes no schema (its column types are unknown): it creates no table (None when the
        table is new) and adds no column.
        """
        old = self._schema(table)
        if old is not None and old.kind != kind:
            raise ValueError(f"{table} is a {old.kind} table; cannot write it as {kind}")
        if not len(frame):
            return old
        new = TableSchema(kind, evolve_columns(old.columns if old else (), frame, types))
        if new == old:
            return old
        if old is None:
            columns = ", ".join(f"{quote(n)} {t}" for n, t in new.columns)
            self._sql(
                f"CREATE TABLE {table_ref(table)} ({columns}, _added VARCHAR, _removed VARCHAR, _pos DOUBLE)")
        else:
            self._alter_columns(table, dict(old.columns), new)
        self._sql("INSERT INTO schemas VALUES (?, ?, ?, ?)", [table, day, kind, json.dumps(new.columns)])
        return new

    def _alter_columns(self, table: str, physical: Mapping[str, str], target: TableSchema) -> None:
        """Add, convert (widen or narrow back) and drop physical columns to match `target`."""
        ref, wanted = table_ref(table), dict(target.columns)
        changes = len(physical.keys() - wanted.keys()) + sum(physical.get(n) != t for n, t in target.columns)
        if changes > MAX_ALTERS:
            self._rebuild_table(table, physical, target)
            return
        for name in physical.keys() - wanted.keys():
            self._sql(f"ALTER TABLE {ref} DROP COLUMN {quote(name)}")
        for name, typ in target.columns:
            if name not in physical:
                self._sql(f"ALTER TABLE {ref} ADD COLUMN {quote(name)} {typ}")
            elif physical[name] != typ:
                using = convert_expr(quote(name), physical[name], typ)
                self._sql(f"ALTER TABLE {ref} ALTER COLUMN {quote(name)} SET DATA TYPE {typ} USING {using}")

    def _rebuild_table(self, table: str, physical: Mapping[str, str], target: TableSchema) -> None:
        """Replace the table by a copy with `target`'s columns (converted as `_alter_columns` would), in one pass."""
        columns = [
            f"{convert_expr(quote(name), physical[name], typ) if name in physical else f'NULL::{typ}'} AS {quote(name)}"
            for name, typ in target.columns
        ]
        ref, scratch = table_ref(table), quote(f"{table}__rebuilt")
        self._sql(f"CREATE TABLE {DATA_SCHEMA}.{scratch} AS SELECT {', '.join(columns)}, {', '.join(ROW_COLS)} "
                  f"FROM {ref}")
        self._sql(f"DROP TABLE {ref}")
        self._sql(f"ALTER TABLE {DATA_SCHEMA}.{scratch} RENAME TO {quote(table)}")

    def _restore_table(self, table: str) -> None:
        """After a rollback: drop the table if no schema remains, else bring its columns back to the recorded ones."""
        schema = self._schema(table)
        if schema is None:
            self._sql(f"DROP TABLE {table_ref(table)}")
            return
        physical = self._sql(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
            [DATA_SCHEMA, table])
        self._alter_columns(table, {n: t for n, t in physical if n not in ROW_COLS}, schema)

    # --- rows ---------------------------------------------------------------------------------------------------------
    def _rows(self, table: str, schema: TableSchema, where: str, params: list | None = None) -> pd.DataFrame:
        """Selected rows in `_pos` order (sorted here: DuckDB's ORDER BY moves every wide row)."""
        columns = ", ".join(quote(n) for n in schema.names)
        frame = self._con.execute(f"SELECT {columns}, _pos FROM {table_ref(table)} WHERE {where}", params or []).df()
        positions = frame["_pos"].to_numpy()
        if np.any(np.diff(positions) < 0):
            frame = frame.take(np.argsort(positions, kind="stable"))
        return to_pandas(frame, schema)

    def _frame_types(self, frame: pd.DataFrame) -> dict[str, str | None]:
        """Stored type of each incoming column, as DuckDB scans it (float, int, bool, text; None: all missing)."""
        if not len(frame.columns):
            return {}
        scanned = self._query_frame(frame, "DESCRIBE incoming")["column_type"]
        unsupported = [f"{n}: {t}" for n, t in zip(frame.columns, scanned) if t not in SCAN_TYPES]
        if unsupported:
            raise TypeError(f"unsupported column types {unsupported} (float, int, bool and text only)")
        return {name: SCAN_TYPES[t] for name, t in zip(frame.columns, scanned)}

    @staticmethod
    def _select_list(schema: TableSchema, types: Mapping[str, str | None]) -> list[str]:
        """SQL giving each recorded column from the incoming frame (its `types`) in the stored type, NULL if absent."""
        return [cast_expr(quote(n), types[n], t) if n in types else f"NULL::{t}" for n, t in schema.columns]

    def _query_frame(self, frame: pd.DataFrame, sql: str, params: list | None = None) -> dict[str, np.ndarray]:
        """Run `sql` with `frame` visible as the view `incoming`; the result as numpy arrays."""
        self._con.register("incoming", frame)
        try:
            return self._con.execute(sql, params or []).fetchnumpy()
        finally:
            self._con.unregister("incoming")

    def _insert(self, table: str, schema: TableSchema, frame: pd.DataFrame, types: Mapping[str, str | None],
                positions: np.ndarray, day: str) -> None:
        """Insert `frame`'s rows as versions added on `day` at `positions`."""
        if not len(frame):
            return
        rows = frame.assign(_pos=positions)
        values = ", ".join(self._select_list(schema, types))
        columns = ", ".join(quote(n) for n in schema.names)
        self._query_frame(rows, f"INSERT INTO {table_ref(table)} ({columns}, _added, _removed, _pos) "
                                f"SELECT {values}, ?, NULL, _pos FROM incoming", [day])

    def _append(self, table: str, schema: TableSchema, frame: pd.DataFrame, types: Mapping[str, str | None],
                day: str) -> None:
        """Log and daily tables: the rows follow every stored row."""
        start = self._sql(f"SELECT coalesce(max(_pos) + 1, 0) FROM {table_ref(table)}")[0][0]
        self._insert(table, schema, frame, types, start + np.arange(len(frame), dtype=np.float64), day)

    def _write_state(self, table: str, schema: TableSchema, frame: pd.DataFrame, types: Mapping[str, str | None],
                     day: str) -> None:
        """Keep unchanged live rows, remove vanished ones, insert new or changed ones between their neighbours."""
        values = ", ".join(self._select_list(schema, types))
        stored = self._live_hashes(table, schema)
        new_h = np.empty(0, dtype=np.uint64)
        if len(frame):
            new_h = self._query_frame(frame, f"SELECT hash({values}) AS h FROM incoming")["h"]
        diff = diff_rows(stored["h"], stored["_pos"], new_h)
        if diff is None:  # order changed or a gap is exhausted: re-version every live row
            self._sql(f"UPDATE {table_ref(table)} SET _removed = ? WHERE _removed IS NULL", [day])
            self._insert(table, schema, frame, types, np.arange(len(frame), dtype=np.float64), day)
            return
        if len(diff.gone_pos):
            self._query_frame(pd.DataFrame({"_pos": diff.gone_pos}),
                              f"UPDATE {table_ref(table)} AS t SET _removed = ? FROM incoming "
                              "WHERE t._removed IS NULL AND t._pos = incoming._pos", [day])
        self._insert(table, schema, frame.iloc[diff.new_rows], types, diff.new_pos, day)

    def _live_hashes(self, table: str, schema: TableSchema) -> dict[str, np.ndarray]:
        """Row hashes and positions of a state table's live rows, in order."""
        columns = ", ".join(quote(n) for n in schema.names)
        return self._con.execute(
            f"SELECT hash({columns}) AS h, _pos FROM {table_ref(table)} WHERE _removed IS NULL ORDER BY _pos"
        ).fetchnumpy()

    # --- transactions and export --------------------------------------------------------------------------------------
    def _require_transaction(self) -> None:
        if not self._in_transaction:
            raise RuntimeError("writes need an open transaction: use `with store.transaction():`")

    def _rollback(self) -> None:
        try:
            self._sql("ROLLBACK")
        except duckdb.TransactionException:  # a failed COMMIT already ended the transaction
            pass

    def _export_id(self) -> str:
        """Identifies the committed content: the database's identity and its commit count."""
        identity = self._sql("SELECT id FROM identity")[0][0]
        return f"{identity}:{self._sql('SELECT value FROM generation')[0][0]}"

    def _marker(self) -> dict:
        try:
            return json.loads((self.output_dir / MARKER_NAME).read_text())
        except (FileNotFoundError, ValueError):
            return {}

    def _export(self) -> None:
        """Rewrite every exported CSV atomically, delete those of dropped tables, then record the generation."""
        tables = [t for t in self._tables() if not t.startswith("_")]
        for table in tables:
            write_atomic(self.output_dir / f"{table}.csv", partial(self.current(table).to_csv, index=False))
        for dropped in set(self._marker().get("tables", [])) - set(tables):
            if TABLE_NAME.fullmatch(dropped):
                (self.output_dir / f"{dropped}.csv").unlink(missing_ok=True)
        marker = json.dumps({"export": self._export_id(), "tables": tables})
        write_atomic(self.output_dir / MARKER_NAME, lambda handle: handle.write(marker + "\n"))
        fsync_dir(self.output_dir)
