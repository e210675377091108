"""State store of the JWST calibration ingest (D7, D8, D10, D14): one DuckDB file, exported as CSV files.

The DuckDB file `jwst-cal.duckdb` in the output folder is the source of truth; `{table}.csv` files are exports of it.
One process at a time uses a store: it holds an exclusive lock on `.jwst-cal.lock` while open, and waits up to
`lock_timeout` seconds for it (and for DuckDB's own file lock). Every stored row is a version: `_added` (day),
`_removed` (day, NULL while live), `_pos` (order) and `_len` (bytes of its exported CSV line), so a day costs
O(changed rows) and any suffix of days can be forgotten. Table kinds:

* state: each day replaces a tail of the live rows (those from some position on) by new content; unchanged rows
  keep their version, the others are removed or inserted between their neighbours;
* log: each day brings rows to append;
* daily: each day brings its own rows; the export shows the latest ingested day;
* staged: a day's input rows, replaced when the day is staged again; never rolled back with the days.

Tables whose name starts with "_" are stored but never exported. A transaction may hold several days; just before
its commit, the new rows of each table it changed get their line length (their text, formatted once, is kept for
the export). Each commit records, per table, the first position it changed; the export that follows cuts each file
back to the first changed row and appends the rows from there on. New tables, daily tables and tables whose header
or number formatting changed are rewritten whole, atomically. The marker `.jwst-cal-export` names the exported
commit and each file's length; a commit whose export did not finish is exported again when the store is next
opened, which also cuts off a half-written append.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from .csv_lines import FormattedLines, csv_lines, header_line, line_lengths

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
ROW_COLS = ("_added", "_removed", "_pos", "_len")
LAID_OUT = ("state", "log")  # kinds exported piecewise, with a line length per row
MIN_GAP = 1e-6  # smallest spacing of new positions inside a gap before renumbering
MAX_BUFFERED_ROWS = 50_000  # rows appended to a table by a transaction that wait in memory for one INSERT
MAX_KEPT_BYTES = 128 << 20  # text of a table's new rows kept for the export; more (a long replay) is formatted again
TABLE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*")
DOUBLE, BIGINT, BOOLEAN, VARCHAR = "DOUBLE", "BIGINT", "BOOLEAN", "VARCHAR"
# How DuckDB sees incoming pandas columns -> stored type; None: every value is missing (an object column of NaN).
SCAN_TYPES = {
    "DOUBLE": DOUBLE, "FLOAT": DOUBLE, "BIGINT": BIGINT, "INTEGER": BIGINT, "SMALLINT": BIGINT, "TINYINT": BIGINT,
    "UINTEGER": BIGINT, "USMALLINT": BIGINT, "UTINYINT": BIGINT, "BOOLEAN": BOOLEAN, "VARCHAR": VARCHAR, '"NULL"': None,
}
# Stored type of pandas columns by dtype, as DuckDB scans them (SCAN_TYPES) without looking at their values.
DTYPE_TYPES = {"float64": DOUBLE, "float32": DOUBLE, "bool": BOOLEAN, "str": VARCHAR} | dict.fromkeys(
    ("int64", "int32", "int16", "int8", "uint32", "uint16", "uint8"), BIGINT)
# Stored type of object columns by the kind of their values, as DuckDB scans them (None: every value missing).
OBJECT_TYPES = {"string": VARCHAR, "empty": None}
UNKNOWN = "?"  # a column whose type only DuckDB's scan of its values tells
SAMPLED_VALUES = 1000  # values of an object column DuckDB looks at to type it (its default), for UNKNOWN columns
META_DDL = (
    "CREATE TABLE IF NOT EXISTS schemas (tbl VARCHAR, day VARCHAR, kind VARCHAR, columns VARCHAR, float_ints VARCHAR)",
    "CREATE TABLE IF NOT EXISTS ledger (day VARCHAR, report VARCHAR)",
    "CREATE TABLE IF NOT EXISTS generation (value BIGINT)",
    "INSERT INTO generation SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM generation)",
    "CREATE TABLE IF NOT EXISTS identity (id VARCHAR)",
    "CREATE TABLE IF NOT EXISTS pending (gen BIGINT, tbl VARCHAR, from_pos DOUBLE, appended BOOLEAN, whole BOOLEAN)",
    "CREATE TABLE IF NOT EXISTS staged (day VARCHAR, meta VARCHAR, columns VARCHAR)",
    f"CREATE SCHEMA IF NOT EXISTS {DATA_SCHEMA}",
)


class StoreError(RuntimeError):
    """The output database cannot be used (an environment failure); nothing was written."""


class StoreLockedError(StoreError):
    """Another process holds the output folder or its DuckDB file."""


class StoreMissingError(StoreError):
    """The output folder holds exported tables but no database."""


class StoreCorruptError(StoreError):
    """The DuckDB file cannot be read as a database of this ingest."""


class ExportIncompleteError(RuntimeError):
    """A day was committed to the database, but its CSV export did not finish."""


@dataclass(frozen=True)
class TableSchema:
    """A table's kind, its columns (name, DuckDB type) in recorded order, and the BIGINT columns with missing values
    among its live rows (pandas reads, hence writes, those as floats: `7.0`)."""

    kind: str
    columns: tuple[tuple[str, str], ...]
    float_ints: tuple[str, ...] = ()

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.columns]


@dataclass(frozen=True)
class Tail:
    """The live rows of a state table from position `start` on, in order; `start` None: none (the table's end).

    Written back, the content replaces those rows: `Tail(-math.inf, frame)` replaces the whole table.
    """

    start: float | None
    rows: pd.DataFrame


@dataclass(frozen=True)
class TailRead:
    """What reading a tail saw, for writing that tail back without reading it again: its start, the schema it was
    read with, and its rows' positions and hashes."""

    start: float
    schema: TableSchema
    positions: np.ndarray
    hashes: np.ndarray


@dataclass(frozen=True)
class DayRows:
    """A day's rows of a table waiting for their INSERT: a frame's `columns_of` and their stored types."""

    day: str
    arrays: dict[str, np.ndarray]
    types: Mapping[str, str | None]

    @property
    def rows(self) -> int:
        return rows_in(self.arrays)

    @property
    def kind(self) -> tuple:
        """What rows inserted together share: the columns' names, stored types and numpy dtypes."""
        return tuple((name, self.types[name], values.dtype) for name, values in self.arrays.items())


def alike_runs(parts: list[DayRows]) -> Iterator[list[DayRows]]:
    """The parts in runs of consecutive parts of the same kind (each run one INSERT)."""
    while parts:
        same = next((i for i, part in enumerate(parts) if part.kind != parts[0].kind), len(parts))
        yield parts[:same]
        parts = parts[same:]


@dataclass(frozen=True)
class RowDiff:
    """How new content of a tail differs from its live rows."""

    new_rows: np.ndarray  # positional indices into the new content
    new_pos: np.ndarray  # their `_pos`
    gone_pos: np.ndarray  # `_pos` of the live rows that vanish


@dataclass
class Appended:
    """Rows appended to a log or daily table by the open transaction, waiting for their INSERT: each day's, and the
    position of the first of them."""

    start: float
    parts: list[DayRows]

    @property
    def rows(self) -> int:
        return sum(part.rows for part in self.parts)


@dataclass(frozen=True)
class Unsettled:
    """A laid-out table the open transaction wrote: whether its columns changed (every line did), whether rows of
    it were removed."""

    reflow: bool = False
    removed: bool = False

    def __or__(self, other: Unsettled) -> Unsettled:
        return Unsettled(self.reflow or other.reflow, self.removed or other.removed)


@dataclass(frozen=True)
class Change:
    """What the commits since the last export did to a table: the first position they changed, whether they only
    appended rows, whether its file must be written whole."""

    start: float | None
    appended: bool
    whole: bool


# --- pure helpers -----------------------------------------------------------------------------------------------------
def quote(name: str) -> str:
    """A DuckDB identifier."""
    return '"' + name.replace('"', '""') + '"'


def row_hash(exprs: Sequence[str]) -> str:
    """SQL hashing a row's values (the stored columns, or incoming ones cast to their stored types): rows whose
    hashes differ changed."""
    return f"hash({', '.join(exprs)})"


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


def columns_of(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """A frame's columns as numpy arrays, as the store hands incoming rows to DuckDB: it scans them in about 60% of
    the time it takes for the DataFrame. Values scan alike; a pandas text column without values scans as NULL-typed
    rather than VARCHAR, which changes nothing here: the store types incoming columns itself (`column_type`)."""
    return {name: column.to_numpy() for name, column in frame.items()}


def rows_in(columns: Mapping[str, np.ndarray]) -> int:
    """How many rows the columns hold (0 without columns)."""
    return len(next(iter(columns.values()), ()))


def column_type(dtype: np.dtype, values: np.ndarray) -> str | None:
    """Stored type of an incoming column (its pandas `dtype`, its `values` as numpy holds them), told by its dtype
    or, for objects, by the kind of its values; UNKNOWN when only DuckDB's scan can tell."""
    if dtype == object:
        return OBJECT_TYPES.get(pd.api.types.infer_dtype(values, skipna=True), UNKNOWN)
    return DTYPE_TYPES.get(str(dtype), UNKNOWN)


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
    """SQL converting a stored column to a type: widening, or narrowing back to the type its values came from.

    Narrowing back happens on rollback and when a staged day is read. DuckDB also converts the rows the transaction
    deleted (values of the rolled-back days); those may fail and become NULL. Live rows came from `target` and
    convert back.
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


def keep_in_order(matched: np.ndarray) -> np.ndarray:
    """Which matched rows (NaN: none) keep their position: a subset whose positions increase in the new order.

    The larger of two greedy subsets: the rows below no earlier row (right when rows moved back, as a late row sorted
    into its date) and the rows above no later row (right when rows moved on, as a row whose date was updated).
    """
    unmatched = np.isnan(matched)
    not_below = ~unmatched & (matched >= np.maximum.accumulate(np.where(unmatched, -np.inf, matched)))
    not_above = ~unmatched & (matched <= np.minimum.accumulate(np.where(unmatched, np.inf, matched)[::-1])[::-1])
    return not_below if not_below.sum() >= not_above.sum() else not_above


def place_new_rows(matched: np.ndarray, lower: float | None) -> np.ndarray | None:
    """Positions of all rows given the kept rows' positions (NaN = new, kept ones increasing) and the position of
    the live row before them (None: none); None when a gap is too small (renumbering is needed).

    New rows go between their kept neighbours (the row before them counts as one), evenly spaced; after the last at
    +1, +2...; before the first when no row precedes them at -1, -2...; no neighbour at all: 0, 1, 2...
    """
    kept = ~np.isnan(matched)
    new = ~kept
    bounded = pd.Series(np.concatenate([[np.nan if lower is None else lower], matched]))
    run = np.cumsum(kept)[new]  # new rows sharing a gap share a run id
    rank = pd.Series(run).groupby(run, sort=False).cumcount().to_numpy() + 1
    size = np.bincount(run)[run]
    prev, nxt = bounded.ffill().to_numpy()[1:][new], bounded.bfill().to_numpy()[1:][new]
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


def diff_rows(stored_h: np.ndarray, stored_pos: np.ndarray, new_h: np.ndarray, lower: float | None) -> RowDiff | None:
    """Diff of a tail by row hashes (its live rows in `_pos` order, `lower` the position before them); None when it
    must be renumbered."""
    matched = match_positions(stored_h, stored_pos, new_h)
    matched = np.where(keep_in_order(matched), matched, np.nan)
    positions = place_new_rows(matched, lower)
    if positions is None:
        return None
    added = np.flatnonzero(np.isnan(matched))
    return RowDiff(added, positions[added], stored_pos[~np.isin(stored_pos, matched)])


def read_back(values: np.ndarray, typ: str) -> np.ndarray:
    """A stored column (a DuckDB result array, masked where NULL) as pandas holds it: text as object str with
    np.nan; BIGINT with missing values as float64, BOOLEAN with missing values as object."""
    data = np.ma.getdata(values)
    missing = np.ma.getmaskarray(values) if np.ma.is_masked(values) else None
    if missing is None and typ in (BIGINT, BOOLEAN):
        return data.astype({BIGINT: np.int64, BOOLEAN: bool}[typ], copy=False)
    column = data.astype(np.float64 if typ in (DOUBLE, BIGINT) else object, copy=False)
    if missing is not None:
        column[missing] = np.nan
    return column


def to_pandas(arrays: Mapping[str, np.ndarray], schema: TableSchema, order: np.ndarray | None = None
              ) -> pd.DataFrame:
    """The recorded columns of a DuckDB result (`fetchnumpy`), in recorded order (rows in `order`), with read-back
    types (text stays object: pandas would make it its str dtype).

    Built one block per dtype, as pandas holds a frame: a frame of one Series per column costs ~0.05 ms a column
    to build and every later operation on it pays per block.
    """
    by_dtype: dict[np.dtype, dict[str, np.ndarray]] = {}
    for name, typ in schema.columns:
        column = read_back(arrays[name] if order is None else arrays[name][order], typ)
        by_dtype.setdefault(column.dtype, {})[name] = column
    blocks = [pd.DataFrame(np.stack(list(columns.values()), axis=1), columns=list(columns), dtype=dtype)
              for dtype, columns in by_dtype.items()]
    if not blocks:
        return pd.DataFrame()
    return (pd.concat(blocks, axis=1) if len(blocks) > 1 else blocks[0])[schema.names]


def no_rows(schema: TableSchema) -> pd.DataFrame:
    """A frame of the schema's columns without rows, typed as a read of no rows is."""
    return to_pandas({name: np.empty(0, dtype=object) for name in schema.names}, schema)


def json_default(value):
    """numpy values in reports."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"report value of type {type(value).__name__} is not JSON serializable")


def write_atomic(path: Path, data: bytes) -> None:
    """Write through a temp file in the same folder, fsync, then os.replace; no temp file survives an error.

    The file gets the mode a plain write would give (0666 less the process umask), not a private temp file's 0600.
    """
    tmp = path.parent / f"{TMP_PREFIX}{secrets.token_hex(8)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def file_matches(path: Path, header: bytes, size: int, *, exact: bool = False) -> bool:
    """Whether `path` is a regular file that starts with `header` and holds `size` bytes (at least, unless `exact`)."""
    try:
        if not path.is_file() or size < len(header):
            return False
        with path.open("rb") as handle:
            actual = os.fstat(handle.fileno()).st_size
            return (actual == size if exact else actual >= size) and handle.read(len(header)) == header
    except OSError:
        return False


def rewrite_from(path: Path, offset: int, data: bytes) -> int:
    """Cut a file back to `offset` bytes, append `data`, fsync; its new length."""
    with path.open("r+b") as handle:
        handle.truncate(offset)
        handle.seek(offset)
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return offset + len(data)


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
    """Open the DuckDB file, waiting up to `timeout` s while another process holds it; clear errors otherwise.

    The connection reads the object columns of incoming rows as text without sampling their values first (DuckDB's
    default samples 1,000 values a column, ~0.1 ms a column and statement: half the cost of a write of a few hundred
    rows); text and missing values read the same either way.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            return duckdb.connect(str(db_path), config={"pandas_analyze_sample": 0})
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
        self._generation = 0  # of the commit a transaction prepares
        self._schemas: dict[str, TableSchema] | None = None  # each table's latest schema, read once
        self._lines = FormattedLines()  # by the open transaction, for its export
        self._unsettled: dict[str, Unsettled] = {}  # laid-out tables the open transaction changed
        self._appended: dict[str, Appended] = {}  # rows the open transaction appended, not inserted yet
        self._pending_rows: list[tuple] = []  # rows of `pending` the open transaction noted, recorded before its commit
        self._tails_read: dict[str, TailRead] = {}  # the last tail read of each state table, until it is written
        try:
            db_path = self.output_dir / DB_NAME
            if not db_path.exists() and (self.output_dir / MARKER_NAME).exists():
                raise StoreMissingError(
                    f"{self.output_dir} holds exported tables ({MARKER_NAME}) but no {DB_NAME}: the database was "
                    "deleted or moved")
            self._con = connect(db_path, max(0.0, lock_timeout))
            self._check_layout(db_path)
            with self._atomic():  # one commit
                for statement in META_DDL:
                    self._sql(statement)
                self._sql("INSERT INTO identity SELECT ? WHERE NOT EXISTS (SELECT 1 FROM identity)",
                          [str(uuid.uuid4())])
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
        self._flush(table)
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
        self._flush(table)
        return self._rows(table, schema, "_added = ?", [day])

    def tail(self, table: str, start: float | None) -> Tail:
        """The live rows of a state table from position `start` on; for None, no row (with the table's columns)."""
        self._flush(table)
        schema = self._schema(table)
        if schema is None:
            return Tail(None, pd.DataFrame())
        if start is None:
            return Tail(None, no_rows(schema))
        rows, positions, hashes = self._select(table, schema, "_removed IS NULL AND _pos >= ?", [start], hashed=True)
        self._tails_read[table] = TailRead(start, schema, positions, hashes)
        return Tail(start, rows)

    def rows_before(self, table: str, start: float | None) -> int:
        """How many live rows precede position `start` (None: all live rows)."""
        self._flush(table)
        if self._schema(table) is None:
            return 0
        where, params = ("", []) if start is None else (" AND _pos < ?", [start])
        return self._sql(f"SELECT count(*) FROM {table_ref(table)} WHERE _removed IS NULL{where}", params)[0][0]

    def columns(self, table: str) -> tuple[tuple[str, str], ...]:
        """A table's columns (name, DuckDB type) in export order; none for a table never written."""
        schema = self._schema(table)
        return schema.columns if schema else ()

    def oldest(self, table: str, column: str) -> str | None:
        """The smallest value of a text column over the live rows of a state table (None: no such row)."""
        self._flush(table)
        schema = self._schema(table)
        if schema is None or column not in schema.names:
            return None
        return self._sql(f"SELECT min({quote(column)}) FROM {table_ref(table)} WHERE _removed IS NULL")[0][0]

    def first_positions(self, columns: Mapping[str, str], values: Sequence) -> dict[str, float | None]:
        """Per table, the position of its first live row whose column (`columns`: table -> column) holds one of
        `values` (as text); None when none does. One statement for all the tables."""
        wanted = pd.Series(values, dtype=object).dropna().astype(str).unique().tolist()
        found = dict.fromkeys(columns)
        for table in columns:
            self._flush(table)
        asked = [(table, column) for table, column in columns.items()
                 if wanted and (schema := self._schema(table)) is not None and column in schema.names]
        if asked:
            firsts = ", ".join(f"(SELECT min(_pos) FROM {table_ref(table)} WHERE _removed IS NULL AND "
                               f"{quote(column)} IN (SELECT unnest($wanted::VARCHAR[])))" for table, column in asked)
            found |= dict(zip([table for table, _ in asked], self._sql(f"SELECT {firsts}", {"wanted": wanted})[0]))
        return found

    def sort_start(self, table: str, order_by: str, unique: str) -> float | None:
        """Position of the first live row that a stable sort of the live rows by `order_by`, keeping the last row of
        each `unique` value, could move or remove; None when that sort leaves every row in place.

        Exact for a table sorted that way on each day that removes rows from it: the live rows added before the
        latest such day are then in order and unique, so only the rows added since, the rows they sort before and
        the rows they repeat can move.
        """
        self._flush(table)
        if self._schema(table) is None:
            return None
        ref, order, key = table_ref(table), quote(order_by), quote(unique)
        since = self._sql(f"SELECT coalesce(max(_removed), '') FROM {ref}")[0][0]
        return self._sql(f"""
            WITH live AS (SELECT _pos, _added, {order} AS o, {key} AS u FROM {ref} WHERE _removed IS NULL),
            recent AS (SELECT o, u FROM live WHERE _added >= ?)
            SELECT min(_pos) FROM live
            WHERE _added >= ? OR o > (SELECT min(o) FROM recent) OR u IN (SELECT u FROM recent)
                OR (o IS NULL AND EXISTS (SELECT 1 FROM recent WHERE o IS NOT NULL))
                OR (u IS NULL AND EXISTS (SELECT 1 FROM recent WHERE u IS NULL))""", [since, since])[0][0]

    def staged_days(self) -> list[str]:
        """The days whose input rows are staged, ascending."""
        return [row[0] for row in self._sql("SELECT day FROM staged ORDER BY day")]

    def staged(self, days: Sequence[str]) -> dict[str, tuple[dict, dict[str, pd.DataFrame]]]:
        """The staged days among `days`: each one's description and its tables, each with the columns and types it
        was staged with. One read per table for the days staged with the same columns."""
        rows = self._sql("SELECT day, meta, columns FROM staged WHERE day IN (SELECT unnest(?::VARCHAR[])) "
                         "ORDER BY day", [list(days)])
        found = {day: (json.loads(meta), {}) for day, meta, _ in rows}
        alike: dict[tuple[str, str], list[str]] = {}  # (table, its columns as staged) -> those days
        for day, _, columns in rows:
            for table, staged_columns in json.loads(columns).items():
                alike.setdefault((table, json.dumps(staged_columns)), []).append(day)
        for (table, staged_columns), group in alike.items():
            wanted = TableSchema("staged", tuple((name, typ) for name, typ in json.loads(staged_columns)))
            for day, frame in zip(group, self._staged_rows(table, wanted, group)):
                found[day][1][table] = frame
        return found

    def _staged_rows(self, table: str, wanted: TableSchema, days: list[str]) -> list[pd.DataFrame]:
        """Each day's rows of a staged table (`days` ascending, staged with the columns and types of `wanted`)."""
        stored = self._schema(table)
        if stored is None:  # only ever staged without rows
            return [no_rows(wanted) for _ in days]
        physical = dict(stored.columns)
        exprs = ", ".join(f"{convert_expr(quote(name), physical[name], typ)} AS {quote(name)}"
                          for name, typ in wanted.columns)
        result = self._con.execute(f"SELECT {exprs}, _added, _pos FROM {table_ref(table)} "
                                   "WHERE _added IN (SELECT unnest(?::VARCHAR[]))", [days]).fetchnumpy()
        order = np.lexsort((result["_pos"], result["_added"]))
        added = result["_added"][order]
        bounds = np.r_[np.searchsorted(added, days), len(added)]  # each day's first row, then the end
        # typed day by day, as a read of the day alone types it (a BIGINT column is float64 where it misses values)
        return [to_pandas(result, wanted, order[lo:hi]) for lo, hi in zip(bounds[:-1], bounds[1:])]

    # --- writing ------------------------------------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN ... COMMIT (ROLLBACK and re-raise on error), then export what the commit changed.

        A DuckDB I/O failure (full disk, permissions) raises StoreError; a failure or interruption after the commit
        raises ExportIncompleteError: the day is stored and its export is completed when the store is next opened.
        """
        with self._atomic():
            self._generation = self._sql("SELECT value FROM generation")[0][0] + 1
            exported = self._exported_generation(self._marker())
            if exported is not None:
                self._sql("DELETE FROM pending WHERE gen <= ?", [exported])
            yield
            self._settle_all()
            self._record_pending()
            self._sql("UPDATE generation SET value = ?", [self._generation])
        try:
            if self._exports:
                self._export()
        except BaseException as err:
            raise ExportIncompleteError(
                f"the day is committed to {self.output_dir / DB_NAME}, but exporting its CSV files failed "
                f"({first_line(err)}); the export is completed the next time this output folder is ingested into"
            ) from err
        finally:
            self._lines.clear()

    def stage(self, days: Mapping[str, tuple[Mapping[str, pd.DataFrame], Mapping]]) -> None:
        """Store days' input rows (tables named `_...`) and descriptions (`days`: day -> (tables, description)),
        replacing any staged before, in a transaction of their own: staging is never exported and never rolled back
        with the days. A table's rows are inserted after its columns evolved for every day (as the columns of earlier
        days would have been converted), one INSERT per run of alike days."""
        for day, (frames, _) in days.items():
            check_day(day)
            if bad := [table for table in frames if not table.startswith("_")]:
                raise ValueError(f"staged tables are internal: their names start with '_', got {bad}")
        listed = list(days)
        if not listed:
            return
        with self._atomic():
            self._sql("DELETE FROM staged WHERE day IN (SELECT unnest(?::VARCHAR[]))", [listed])
            for table in dict.fromkeys(table for frames, _ in days.values() for table in frames):
                if self._schema(table) is not None:
                    self._sql(f"DELETE FROM {table_ref(table)} WHERE _added IN (SELECT unnest(?::VARCHAR[]))",
                              [listed])
            waiting: dict[str, list[DayRows]] = {}  # rows to insert, by table
            described = []
            for day, (frames, meta) in days.items():
                columns = {}
                for table, frame in frames.items():
                    check_frame(table, frame)
                    arrays = columns_of(frame)
                    types = self._frame_types(frame, arrays)
                    columns[table] = [(name, types[name] or VARCHAR) for name in frame.columns]
                    if self._evolve_schema(table, "staged", frame, types, day) is not None:
                        waiting.setdefault(table, []).append(DayRows(day, arrays, types))
                described += [day, json.dumps(dict(meta), default=json_default), json.dumps(columns)]
            for table, parts in waiting.items():  # each day's positions from 0
                for run in alike_runs(parts):
                    positions = np.concatenate([np.arange(part.rows, dtype=np.float64) for part in run])
                    self._insert_run(table, self._schema(table), run, positions)
            self._sql(f"INSERT INTO staged VALUES {', '.join(['(?, ?, ?)'] * len(days))}", described)

    def rollback_from(self, day: str) -> None:
        """Forget every contribution of the days >= `day` (rows, removals, schema changes, ledger entries)."""
        self._require_transaction()
        check_day(day)
        self._flush()
        self._tails_read.clear()
        for table in self._tables():
            ref = table_ref(table)
            first = self._sql(f"SELECT min(_pos) FROM {ref} WHERE _added >= ? OR _removed >= ?", [day, day])[0][0]
            if first is not None:
                self._pending(table, first)
                if self._schema(table).kind in LAID_OUT:  # rows live again need their line length
                    self._unsettle(table, Unsettled(removed=True))
            self._sql(f"DELETE FROM {ref} WHERE _added >= ?", [day])
            self._sql(f"UPDATE {ref} SET _removed = NULL WHERE _removed >= ?", [day])
        changed = self._sql("SELECT DISTINCT tbl FROM schemas WHERE day >= ? AND kind <> 'staged'", [day])
        self._sql("DELETE FROM schemas WHERE day >= ? AND kind <> 'staged'", [day])
        self._schemas = None
        for (table,) in changed:
            self._restore_table(table)
        self._sql("DELETE FROM ledger WHERE day >= ?", [day])

    def write_day(self, day: str, *, state: Mapping[str, Tail], log: Mapping[str, pd.DataFrame],
                  daily: Mapping[str, pd.DataFrame], report: Mapping) -> None:
        """Store one day: new content of a tail of each state table, rows appended to log tables, the day's daily
        rows."""
        self._require_transaction()
        check_day(day)
        stored = self.days()
        if stored and day <= stored[-1]:
            raise ValueError(f"day {day} is not after the last stored day {stored[-1]}; roll back first")
        if not all(isinstance(tail, Tail) for tail in state.values()):
            raise TypeError("state tables are written as a Tail: the new content of their rows from a position on")
        writes = [(t, "state", tail.rows, tail.start) for t, tail in state.items()] + [
            (t, "log", f, None) for t, f in log.items()] + [(t, "daily", f, None) for t, f in daily.items()]
        names = [table for table, _, _, _ in writes]
        if len(set(names)) != len(names):
            raise ValueError(f"a table is given more than once: {sorted(names)}")
        for table, kind, frame, start in writes:
            check_frame(table, frame)
            columns = columns_of(frame)
            types = self._frame_types(frame, columns)
            old = self._schema(table)
            schema = self._evolve_schema(table, kind, frame, types, day)
            if schema is None:
                continue
            if kind == "state":
                inserted, removed = self._write_state(table, schema, columns, start, types, day)
            else:
                inserted, removed = self._append(table, schema, DayRows(day, columns, types)), False
            reflow = old is not None and old.columns != schema.columns
            if kind in LAID_OUT and (inserted or removed or reflow):
                self._unsettle(table, Unsettled(reflow, removed))
        self._sql("INSERT INTO ledger VALUES (?, ?)", [day, json.dumps(dict(report), default=json_default)])

    def _sql(self, sql: str, params: list | None = None) -> list[tuple]:
        """Run one statement to completion (DuckDB refuses new work while a result is unfinished)."""
        return self._con.execute(sql, params or []).fetchall()

    @contextmanager
    def _atomic(self) -> Iterator[None]:
        """BEGIN ... COMMIT; ROLLBACK and re-raise on error, a DuckDB I/O failure as StoreError."""
        if self._in_transaction:
            raise RuntimeError("a transaction is already open")
        self._sql("BEGIN TRANSACTION")
        self._in_transaction = True
        try:
            yield
            self._sql("COMMIT")
        except duckdb.IOException as err:
            self._rollback()
            raise StoreError(f"writing {self.output_dir / DB_NAME} failed: {first_line(err)}") from err
        except BaseException:
            self._rollback()
            raise
        finally:
            self._in_transaction = False

    def _check_layout(self, db_path: Path) -> None:
        """Refuse a database written by an earlier version of the store (no export layout)."""
        columns = {name for (name,) in self._sql("SELECT column_name FROM information_schema.columns "
                                                 "WHERE table_schema = 'main' AND table_name = 'schemas'")}
        if columns and "float_ints" not in columns:
            raise StoreCorruptError(f"{db_path} was written by an earlier version of this ingest, without the layout "
                                    "its exports are now kept up to date with")

    # --- schema -------------------------------------------------------------------------------------------------------
    def _schema(self, table: str) -> TableSchema | None:
        """The table's latest recorded schema (None: no such table)."""
        return self._latest_schemas().get(table)

    def _latest_schemas(self) -> dict[str, TableSchema]:
        """Every table's latest schema, read from the database once and kept up to date by the writes."""
        if self._schemas is None:
            rows = self._sql("SELECT tbl, kind, columns, float_ints FROM schemas "
                             "QUALIFY row_number() OVER (PARTITION BY tbl ORDER BY day DESC) = 1")
            self._schemas = {
                table: TableSchema(kind, tuple(tuple(c) for c in json.loads(columns)), tuple(json.loads(float_ints)))
                for table, kind, columns, float_ints in rows}
        return self._schemas

    def _tables(self) -> list[str]:
        """The day-versioned tables (staged ones aside)."""
        return sorted(table for table, schema in self._latest_schemas().items() if schema.kind != "staged")

    def _record_schema(self, table: str, day: str, schema: TableSchema) -> None:
        """The table's schema from `day` on (a staged table keeps one schema, whatever the day)."""
        self._sql("DELETE FROM schemas WHERE tbl = ? AND (day = ? OR kind = 'staged')", [table, day])
        self._sql("INSERT INTO schemas VALUES (?, ?, ?, ?, ?)",
                  [table, day, schema.kind, json.dumps(schema.columns), json.dumps(schema.float_ints)])
        self._latest_schemas()[table] = schema

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
        new = TableSchema(kind, evolve_columns(old.columns if old else (), frame, types),
                          old.float_ints if old else ())
        if new == old:
            return old
        if old is None:
            columns = ", ".join(f"{quote(n)} {t}" for n, t in new.columns)
            self._sql(f"CREATE TABLE {table_ref(table)} ({columns}, _added VARCHAR, _removed VARCHAR, _pos DOUBLE, "
                      "_len BIGINT)")
        else:
            self._alter_columns(table, dict(old.columns), new)
        self._record_schema(table, day, new)
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
        """After a rollback: drop the table if no schema remains, else bring its columns back to the recorded ones
        (and the exported lines of its rows with them)."""
        schema = self._schema(table)
        if schema is None:
            self._sql(f"DROP TABLE {table_ref(table)}")
            return
        physical = self._sql(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
            [DATA_SCHEMA, table])
        self._alter_columns(table, {n: t for n, t in physical if n not in ROW_COLS}, schema)
        if schema.kind in LAID_OUT:
            self._unsettle(table, Unsettled(reflow=True))

    # --- rows ---------------------------------------------------------------------------------------------------------
    def _select(self, table: str, schema: TableSchema, where: str, params: list | None = None, *,
                hashed: bool = False) -> tuple[pd.DataFrame, np.ndarray, np.ndarray | None]:
        """Selected rows in `_pos` order (sorted here: DuckDB's ORDER BY moves every wide row), their positions and
        (`hashed`) the hash of each row's stored values, as `_write_state` compares them."""
        names = [quote(n) for n in schema.names]
        select = ", ".join(names) + (f", {row_hash(names)} AS _h" if hashed else "")
        result = self._con.execute(f"SELECT {select}, _pos FROM {table_ref(table)} WHERE {where}",
                                   params or []).fetchnumpy()
        positions, hashes, order = result["_pos"], result["_h"] if hashed else None, None
        if np.any(np.diff(positions) < 0):
            order = np.argsort(positions, kind="stable")
            positions = positions[order]
            hashes = None if hashes is None else hashes[order]
        return to_pandas(result, schema, order), positions, hashes

    def _rows(self, table: str, schema: TableSchema, where: str, params: list | None = None) -> pd.DataFrame:
        return self._select(table, schema, where, params)[0]

    def _frame_types(self, frame: pd.DataFrame, columns: Mapping[str, np.ndarray]) -> dict[str, str | None]:
        """Stored type of each incoming column (of `frame`, its `columns_of`), as DuckDB scans it (float, int, bool,
        text; None: all missing)."""
        types = {name: column_type(dtype, columns[name]) for name, dtype in frame.dtypes.items()}
        scan = [name for name, typ in types.items() if typ == UNKNOWN]  # as DuckDB sees their values
        if scan:
            scanned = self._query_columns({name: columns[name] for name in scan}, "DESCRIBE incoming")["column_type"]
            if unsupported := [f"{n}: {t}" for n, t in zip(scan, scanned) if t not in SCAN_TYPES]:
                raise TypeError(f"unsupported column types {unsupported} (float, int, bool and text only)")
            types |= {name: SCAN_TYPES[t] for name, t in zip(scan, scanned)}
        return types

    @staticmethod
    def _select_list(schema: TableSchema, types: Mapping[str, str | None]) -> list[str]:
        """SQL giving each recorded column from the incoming frame (its `types`) in the stored type, NULL if absent."""
        return [cast_expr(quote(n), types[n], t) if n in types else f"NULL::{t}" for n, t in schema.columns]

    def _query_columns(self, columns: Mapping[str, np.ndarray], sql: str, params: list | None = None
                       ) -> dict[str, np.ndarray]:
        """Run `sql` with `columns` visible as the view `incoming`; the result as numpy arrays.

        The store's connection reads object columns as text without sampling their values (`connect`); DuckDB samples
        them only for columns whose values are not all text or missing, the ones it types itself (UNKNOWN).
        """
        sampled = any(values.dtype == object and column_type(values.dtype, values) == UNKNOWN
                      for values in columns.values())
        if sampled:
            self._sql(f"SET pandas_analyze_sample = {SAMPLED_VALUES}")
        self._con.register("incoming", columns)
        try:
            return self._con.execute(sql, params or []).fetchnumpy()
        finally:
            self._con.unregister("incoming")
            if sampled:
                self._sql("SET pandas_analyze_sample = 0")

    def _insert(self, table: str, schema: TableSchema, columns: Mapping[str, np.ndarray],
                types: Mapping[str, str | None], positions: np.ndarray, day: str | np.ndarray) -> None:
        """Insert rows (a frame's `columns_of`) as versions added on `day` (one for all, or one per row) at
        `positions`, one per row (their line length still unknown)."""
        if not len(positions):
            return
        added = np.full(len(positions), day, dtype=object) if isinstance(day, str) else np.asarray(day, dtype=object)
        rows = dict(columns) | {"_pos": positions, "_added": added}
        values = ", ".join(self._select_list(schema, types))
        names = ", ".join(quote(n) for n in schema.names)
        self._query_columns(rows, f"INSERT INTO {table_ref(table)} ({names}, _added, _removed, _pos) "
                                  f"SELECT {values}, _added, NULL, _pos FROM incoming")

    def _insert_run(self, table: str, schema: TableSchema, run: list[DayRows], positions: np.ndarray) -> None:
        """Insert a run of alike days' rows (`alike_runs`) in one statement, at `positions`."""
        arrays = {name: np.concatenate([part.arrays[name] for part in run]) for name in run[0].arrays}
        days = np.repeat([part.day for part in run], [part.rows for part in run])
        self._insert(table, schema, arrays, run[0].types, positions, days)

    def _last_position(self, table: str, before: float | None = None) -> float | None:
        """Position of the last live row (before position `before`); None when there is none."""
        where, params = ("", []) if before is None else (" AND _pos < ?", [before])
        return self._sql(f"SELECT max(_pos) FROM {table_ref(table)} WHERE _removed IS NULL{where}", params)[0][0]

    def _append(self, table: str, schema: TableSchema, rows: DayRows) -> int:
        """Log and daily tables: the rows follow every stored row. They wait in memory, with the other rows the
        transaction appends to the table, until the table is read, the transaction commits or they are many. How
        many rows."""
        if not rows.rows:
            return 0
        if table not in self._appended:
            last = self._last_position(table)
            self._appended[table] = Appended(0.0 if last is None else last + 1.0, [])
            if schema.kind in LAID_OUT:
                self._pending(table, self._appended[table].start, appended=True)
        self._appended[table].parts.append(rows)
        if self._appended[table].rows >= MAX_BUFFERED_ROWS:
            self._flush(table)
        return rows.rows

    def _flush(self, *tables: str) -> None:
        """Insert the appended rows of `tables` (of every table: none given), one INSERT per run of alike days."""
        for table in tables or list(self._appended):
            appended = self._appended.pop(table, None)
            if appended is None:
                continue
            schema, start = self._schema(table), appended.start
            for run in alike_runs(appended.parts):
                rows = sum(part.rows for part in run)
                self._insert_run(table, schema, run, start + np.arange(rows, dtype=np.float64))
                start += rows

    def _write_state(self, table: str, schema: TableSchema, columns: Mapping[str, np.ndarray], start: float | None,
                     types: Mapping[str, str | None], day: str) -> tuple[int, bool]:
        """Replace the live rows from `start` on by new content (a frame's `columns_of`): keep unchanged rows, remove
        vanished ones, insert new or changed ones between their neighbours. How many rows were inserted, whether rows
        were removed."""
        ref, length = table_ref(table), rows_in(columns)
        stored_h, stored_pos = np.empty(0, dtype=np.uint64), np.empty(0)
        read = self._tails_read.pop(table, None)
        if read is not None and read.start == start and read.schema.columns == schema.columns:
            stored_h, stored_pos = read.hashes, read.positions
        elif start is not None:
            names = [quote(n) for n in schema.names]
            stored = self._con.execute(f"SELECT {row_hash(names)} AS h, _pos FROM {ref} "
                                       "WHERE _removed IS NULL AND _pos >= ? ORDER BY _pos", [start]).fetchnumpy()
            stored_h, stored_pos = stored["h"], stored["_pos"]
        n, new_h = len(stored_h), np.empty(0, dtype=np.uint64)
        if n and length:  # hashed only to be compared with stored rows
            incoming_hash = row_hash(self._select_list(schema, types))
            new_h = self._query_columns(columns, f"SELECT {incoming_hash} AS h FROM incoming")["h"]
        appended = n == 0 or (len(new_h) >= n and np.array_equal(new_h[:n], stored_h))
        if appended:  # the usual day: rows appended
            last = stored_pos[-1] if n else self._last_position(table)
            base = -1.0 if last is None else last
            diff = RowDiff(np.arange(n, length), base + 1.0 + np.arange(length - n), stored_pos[:0])
        else:
            lower = self._last_position(table, before=start)
            diff = diff_rows(stored_h, stored_pos, new_h, lower)
            if diff is None:  # a gap is exhausted: re-version the whole tail
                base = -1.0 if lower is None else lower
                diff = RowDiff(np.arange(len(new_h)), base + 1.0 + np.arange(len(new_h), dtype=np.float64),
                               stored_pos)
        if len(diff.gone_pos):
            self._query_columns({"_pos": diff.gone_pos},
                                f"UPDATE {ref} AS t SET _removed = ? FROM incoming "
                                "WHERE t._removed IS NULL AND t._pos = incoming._pos", [day])
        self._insert(table, schema, {name: values[diff.new_rows] for name, values in columns.items()}, types,
                     diff.new_pos, day)
        touched = np.concatenate([diff.gone_pos, diff.new_pos])
        if len(touched):
            self._pending(table, float(touched.min()), appended=appended)
        return len(diff.new_rows), bool(len(diff.gone_pos))

    # --- export layout ------------------------------------------------------------------------------------------------
    def _unsettle(self, table: str, change: Unsettled) -> None:
        self._unsettled[table] = self._unsettled.get(table, Unsettled()) | change

    def _settle_all(self) -> None:
        """Before a commit: settle each laid-out table the transaction changed, once, whatever its days."""
        self._flush()
        days = self.days()
        for table, change in sorted(self._unsettled.items()):
            schema = self._schema(table)
            if schema is not None and days:
                self._settle(table, schema, days[-1], reflow=change.reflow, removed=change.removed)
        self._unsettled.clear()

    def _settle(self, table: str, schema: TableSchema, day: str, *, reflow: bool, removed: bool) -> None:
        """After rows are written to a state or log table: record (as of `day`) which BIGINT columns now have
        missing values, and give each live row without one its line length. `reflow`: the table's columns changed,
        so every line did (as it does when the BIGINT columns with missing values change)."""
        ints = [name for name, typ in schema.columns if typ == BIGINT]
        if reflow:
            self._clear_lengths(table)
        missing = self._with_missing(table, ints, "_len IS NULL")  # among the rows without a length
        earlier = set() if reflow else set(schema.float_ints) & set(ints)
        if removed and earlier:
            earlier = self._with_missing(table, sorted(earlier), "TRUE")
        float_ints = tuple(name for name in ints if name in missing | earlier)
        if float_ints != schema.float_ints:
            schema = replace(schema, float_ints=float_ints)
            self._record_schema(table, day, schema)
            if not reflow:
                self._clear_lengths(table)
                reflow = True
        self._fill_lengths(table, schema)
        if reflow:
            self._pending(table, None, whole=True)

    def _with_missing(self, table: str, columns: list[str], where: str) -> set[str]:
        """Those of `columns` with a missing value among the live rows that satisfy `where`."""
        if not columns:
            return set()
        counts = self._sql(f"SELECT {', '.join(f'count(*) - count({quote(c)})' for c in columns)} "
                           f"FROM {table_ref(table)} WHERE _removed IS NULL AND {where}")[0]
        return {column for column, count in zip(columns, counts) if count}

    def _clear_lengths(self, table: str) -> None:
        self._sql(f"UPDATE {table_ref(table)} SET _len = NULL WHERE _removed IS NULL")

    def _fill_lengths(self, table: str, schema: TableSchema) -> None:
        """The line length of each live row that has none, as the export writes the line (kept for the export)."""
        rows, positions, _ = self._select(table, schema, "_removed IS NULL AND _len IS NULL")
        if not len(rows):
            return
        text = csv_lines(rows, schema.float_ints).encode()
        kept = len(text) <= MAX_KEPT_BYTES
        lengths = self._lines.add(table, positions, text) if kept else line_lengths(text)
        self._query_columns({"_pos": positions, "_len": lengths}, f"UPDATE {table_ref(table)} AS t SET _len = "
                            "incoming._len FROM incoming WHERE t._removed IS NULL AND t._pos = incoming._pos")

    def _pending(self, table: str, start: float | None, *, appended: bool = False, whole: bool = False) -> None:
        """Note for the export what this commit changes in a table: from position `start` on, or all of it."""
        self._pending_rows.append((self._generation, table, start, appended, whole))

    def _record_pending(self) -> None:
        """Record the rows of `pending` the commit noted, in one statement."""
        if self._pending_rows:
            rows = ", ".join(["(?, ?, ?, ?, ?)"] * len(self._pending_rows))
            self._sql(f"INSERT INTO pending VALUES {rows}", [value for row in self._pending_rows for value in row])
            self._pending_rows.clear()

    def _lines_from(self, table: str, schema: TableSchema, start: float) -> bytes:
        """The CSV lines of the live rows from position `start` on: those the commit formatted, and the others."""
        positions = self._con.execute(f"SELECT _pos FROM {table_ref(table)} WHERE _removed IS NULL AND _pos >= ? "
                                      "ORDER BY _pos", [start]).fetchnumpy()["_pos"]
        unknown = self._lines.unknown(table, positions)
        if 2 * len(unknown) > len(positions):  # mostly unknown: all formatted, no long list of positions to look up
            return csv_lines(self._rows(table, schema, "_removed IS NULL AND _pos >= ?", [start]),
                             schema.float_ints).encode()
        if len(unknown):
            # `_pos >= start` lets DuckDB skip the row groups of older versions: the cost stays that of the tail.
            rows, unknown, _ = self._select(
                table, schema, "_removed IS NULL AND _pos >= ? AND _pos IN (SELECT unnest(?::DOUBLE[]))",
                [start, unknown.tolist()])
            self._lines.add(table, unknown, csv_lines(rows, schema.float_ints).encode())
        return self._lines.text(table, positions)

    # --- transactions and export --------------------------------------------------------------------------------------
    def _require_transaction(self) -> None:
        if not self._in_transaction:
            raise RuntimeError("writes need an open transaction: use `with store.transaction():`")

    def _rollback(self) -> None:
        self._schemas = None  # read again: the transaction may have recorded some
        self._tails_read.clear()
        self._lines.clear()
        self._unsettled.clear()
        self._appended.clear()
        self._pending_rows.clear()
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

    def _exported_generation(self, marker: dict) -> int | None:
        """The commit the CSV files were last exported from (per their marker), if from this database."""
        identity, _, generation = str(marker.get("export", "")).rpartition(":")
        if identity != self._sql("SELECT id FROM identity")[0][0]:
            return None
        return int(generation)

    def _export(self) -> None:
        """Bring every exported CSV up to date with the last commit, delete those of dropped tables, then write the
        marker naming that commit and the length of each file."""
        marker = self._marker()
        exported = self._exported_generation(marker)
        lengths = marker.get("bytes", {}) if exported is not None else {}
        changes = {} if exported is None else {
            table: Change(start, bool(appended), bool(whole)) for table, start, appended, whole in self._sql(
                "SELECT tbl, min(from_pos), bool_and(appended), bool_or(whole) FROM pending WHERE gen > ? "
                "GROUP BY tbl", [exported])}
        tables = [t for t in self._tables() if not t.startswith("_")]
        written = {}
        for table in tables:
            schema = self._schema(table)
            path = self.output_dir / f"{table}.csv"
            if schema.kind in LAID_OUT:
                written[table] = self._export_table(table, schema, path, lengths.get(table), changes.get(table))
            else:
                write_atomic(path, self.current(table).to_csv(index=False).encode())
        for dropped in set(marker.get("tables", [])) - set(tables):
            if TABLE_NAME.fullmatch(dropped):
                (self.output_dir / f"{dropped}.csv").unlink(missing_ok=True)
        text = json.dumps({"export": self._export_id(), "tables": tables, "bytes": written})
        write_atomic(self.output_dir / MARKER_NAME, (text + "\n").encode())
        fsync_dir(self.output_dir)

    def _export_table(self, table: str, schema: TableSchema, path: Path, length: int | None,
                      change: Change | None) -> int:
        """Bring a state or log table's file up to date: cut it back to where the change starts and append the rows
        from there on; written whole when it is new, its layout changed or it is not as exported. Its new length."""
        header = header_line(tuple(schema.names)).encode()
        if length is not None and change is None and file_matches(path, header, length, exact=True):
            return length
        if length is not None and change is not None and not change.whole:
            offset = length if change.appended else len(header) + self._sql(
                f"SELECT coalesce(sum(_len), 0) FROM {table_ref(table)} WHERE _removed IS NULL AND _pos < ?",
                [change.start])[0][0]
            if file_matches(path, header, offset):
                return rewrite_from(path, offset, self._lines_from(table, schema, change.start))
        data = header + self._lines_from(table, schema, -np.inf)
        write_atomic(path, data)
        return len(data)
