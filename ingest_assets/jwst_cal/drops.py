"""Daily drop files: discovery by name (spec 2.1, D2) and reading with clear input errors (spec 2.4, 2.5, D6).

A drop is `YYYY-MM-DD_DDD.csv` (DDD = zero-padded day of year of that date), CSV text in UTF-8 (a byte-order mark
is allowed) with RFC 4180 quoting: records end with LF, CRLF or CR; a field holding a comma, a line break or a
quote is enclosed in quotes, each quote in it doubled. Reading keeps every cell as text, reports bad input as
`DropError` (file, physical line of the file counted from 1, column), then types the numeric columns as floats.

Bad input: a record with fewer or more fields than the header (a row or file cut short included); an empty line
inside the data (empty lines at the end of the file are ignored); a quote that does not enclose a whole field, or a
quoted field the file ends in; more than MAX_EXTRA_COLUMNS columns beyond REQUIRED_COLS and OPTIONAL_COLS (decided
on the header alone, before the body is parsed); a missing required column; a non-numeric number; an ImageSize
that is not positive; an empty Dataset; an L1/L3 Dataset without a program number. Accepted but reported by
`drop_oddities`: L3 rows without an ImageSize (spec 2.4 allows them; they never become training rows, Q7).
"""

from __future__ import annotations

import csv
import datetime as dt
import fnmatch
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from .constants import BUCKETS, MAX_EXTRA_COLUMNS, NUMERIC_COLS, OPTIONAL_COLS, REQUIRED_COLS
from .scrub import has_program_id, is_level1, is_level3, product_names

DROP_NAME = re.compile(r"(\d{4}-\d{2}-\d{2})_(\d{3})\.csv", re.ASCII)
# Files the ingest writes (spec 4.2); an output folder may be the drop folder itself (Q1).
OUTPUT_NAMES = frozenset(
    {"ingest.csv", "training.csv", "mosaics.csv", "level1.csv", "category_codes.csv"}
    | {f"{kind}-{bucket.lower()}.csv" for kind in ("train", "raw", "rem") for bucket in BUCKETS}
)
KNOWN_COLS = frozenset(REQUIRED_COLS) | frozenset(OPTIONAL_COLS)
# Cell texts that mean "no value" in a numeric column.
MISSING_NUMBERS = ("", "NONE")
SHOWN_EXTRA_NAMES = 5

BOM = b"\xef\xbb\xbf"
LF, CR, QUOTE, COMMA = b"\n\r\","
# What may precede a quote opening a field and follow a quote closing one (a quote: the two form a doubled quote).
FIELD_EDGES = np.array([COMMA, LF, CR, QUOTE], dtype=np.uint8)


class PrefixError(ValueError):
    """A drop prefix (spacekit's -p) that is a path instead of the start of a file name."""


def _located(path: Path, line: int | None, column: str | None, reason: str) -> str:
    """`name: line N, column C: reason`, leaving out what is unknown."""
    where = [f"line {line}"] if line is not None else []
    where += [f"column {column}"] if column is not None else []
    return ": ".join([Path(path).name, *([", ".join(where)] if where else []), reason])


class DropError(ValueError):
    """Bad input in a drop file."""

    def __init__(self, path: Path, line: int | None, column: str | None, reason: str) -> None:
        super().__init__(path, line, column, reason)
        self.path = Path(path)
        self.line = line
        self.column = column
        self.reason = reason

    def __str__(self) -> str:
        return _located(self.path, self.line, self.column, self.reason)


@dataclass(frozen=True)
class DropOddity:
    """Input that is accepted but deserves a warning, with where it is."""

    path: Path
    line: int
    column: str
    reason: str

    def __str__(self) -> str:
        return _located(self.path, self.line, self.column, self.reason)


@dataclass(frozen=True)
class DropText:
    """Every cell of a drop as text (columns in file order, RangeIndex) and the physical line each row starts on."""

    path: Path
    cells: pd.DataFrame
    lines: np.ndarray

    @cached_property
    def numbers(self) -> Numbers:
        """Values and bad-cell mask of each numeric column present, in file order (parsed once, for the checks and
        the typing)."""
        return {col: _numbers(self.cells[col]) for col in self.cells.columns if col in NUMERIC_COLS}


# --- names -----------------------------------------------------------------------------------------------------------

def _parse_name(name: str) -> tuple[dt.date | None, str | None]:
    """(date, None) for a valid drop name, else (None, reason)."""
    match = DROP_NAME.fullmatch(name)
    if match is None:
        return None, "not named YYYY-MM-DD_DDD.csv"
    text, doy = match.groups()
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        return None, f"{text} is not a calendar date"
    expected = f"{day.timetuple().tm_yday:03d}"
    if doy != expected:
        return None, f"day of year {doy} does not match {text} ({expected})"
    return day, None


def drop_date(name: str) -> dt.date | None:
    """Date of a drop named YYYY-MM-DD_DDD.csv whose day of year agrees with the date; else None."""
    return _parse_name(name)[0]


def drop_name_problem(name: str) -> str | None:
    """None for a valid drop name, else a short reason."""
    return _parse_name(name)[1]


def drop_file_name(day: dt.date | str) -> str:
    """The drop name of a day: "2024-02-29" -> "2024-02-29_060.csv"."""
    day = dt.date.fromisoformat(day) if isinstance(day, str) else day
    return f"{day.isoformat()}_{day.timetuple().tm_yday:03d}.csv"


def _check_prefix(pfx: str) -> None:
    """A prefix is the start of a file name: no folder separator, not `.` or `..`."""
    if "/" in pfx or "\\" in pfx or pfx in (".", ".."):
        raise PrefixError(f"drop prefix {pfx!r} is a path: it must be the start of a file name in the input folder "
                          "(glob wildcards * ? [...] allowed)")


def _entry_problem(path: Path) -> str | None:
    """Why a matched folder entry is not a drop file, or None."""
    if path.is_dir():
        return "a directory, not a file"
    if not path.is_file():
        return "not a regular file"
    return drop_name_problem(path.name)


def discover_drops(input_dir: Path, pfx: str = "") -> tuple[list[Path], list[tuple[str, str]]]:
    """Drops among the entries directly in `input_dir` whose name matches `{pfx}*.csv`, sorted by date, and the
    other matching names with why they are ignored; the ingest's own output files are in neither list.

    `pfx` is a file-name prefix that may hold the glob wildcards `*`, `?`, `[...]`, matched with fnmatch against
    the entries' names; a path raises PrefixError. As spacekit's glob, names starting with `.` match only a prefix
    that does.
    """
    _check_prefix(pfx)
    input_dir = Path(input_dir)
    if not input_dir.is_dir():
        raise FileNotFoundError(f"drop folder {input_dir} does not exist")
    pattern = f"{pfx}*.csv"
    drops: list[Path] = []
    ignored: list[tuple[str, str]] = []
    for path in sorted(input_dir.iterdir()):  # name order is date order
        name = path.name
        hidden = name.startswith(".") and not pfx.startswith(".")
        if hidden or name in OUTPUT_NAMES or not fnmatch.fnmatch(name, pattern):
            continue
        problem = _entry_problem(path)
        if problem is None:
            drops.append(path)
        else:
            ignored.append((name, problem))
    return drops, ignored


# --- records ---------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Layout:
    """A CSV text's bytes with the offsets of its physical line ends (LF, CR not before LF) and of its quotes."""

    data: np.ndarray
    breaks: np.ndarray
    quotes: np.ndarray

    def line(self, offsets: int | np.ndarray) -> np.ndarray:
        """Physical line (from 1) of byte offsets: one more than the line ends before them."""
        return np.searchsorted(self.breaks, offsets) + 1

    def quoted(self, offsets: np.ndarray) -> np.ndarray:
        """Which offsets (of non-quote bytes) lie inside a quoted field: an odd number of quotes precedes them."""
        return np.searchsorted(self.quotes, offsets) % 2 == 1


def _layout(data: bytes) -> _Layout:
    """Line ends and quotes of a text that does not end with a line break."""
    b = np.frombuffer(data, dtype=np.uint8)
    breaks = np.flatnonzero(b == LF)
    if b"\r" in data:  # a CR alone ends a line too, as in pandas' tokenizer
        cr = np.flatnonzero(b == CR)
        breaks = np.union1d(breaks, cr[b[cr + 1] != LF])
    quotes = np.flatnonzero(b == QUOTE) if b'"' in data else np.empty(0, dtype=np.intp)
    return _Layout(b, breaks, quotes)


def _content(path: Path) -> tuple[bytes, _Layout]:
    """The file's UTF-8 bytes without a byte-order mark and trailing line breaks, and their layout; an empty,
    binary or non-UTF-8 file is an error."""
    data = path.read_bytes().removeprefix(BOM).rstrip(b"\r\n")
    if not data or data.isspace():
        raise DropError(path, None, None, "empty file")
    layout = _layout(data)
    if b"\0" in data:
        raise DropError(path, int(layout.line(data.index(b"\0"))), None, "not a CSV text file (binary data)")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DropError(path, int(layout.line(err.start)), None, "not a CSV text file (not UTF-8 text)") from None
    return data, layout


def _check_quotes(layout: _Layout, path: Path) -> None:
    """Quotes open a field, close it, or come doubled inside it; every quoted field is closed."""
    b, quotes = layout.data, layout.quotes
    opening, closing = quotes[0::2], quotes[1::2]
    # A quote at either end of the text reads itself here, which is allowed.
    before = b[np.maximum(opening - 1, 0)]
    after = b[np.minimum(closing + 1, len(b) - 1)]
    stray = np.concatenate([opening[~np.isin(before, FIELD_EDGES)], closing[~np.isin(after, FIELD_EDGES)]])
    if len(stray):
        raise DropError(path, int(layout.line(stray.min())), None,
                        'stray quote: a field holding " must be enclosed in quotes, each " in it doubled')
    if len(quotes) % 2:
        raise DropError(path, int(layout.line(quotes[-1])), None, "quoted field never closed (the file ends in it)")


def _record_starts(layout: _Layout) -> np.ndarray:
    """Byte offset of every record, the header first: after each line end outside quotes."""
    ends = layout.breaks[~layout.quoted(layout.breaks)] if len(layout.quotes) else layout.breaks
    return np.concatenate([[0], ends + 1])


def _field_counts(layout: _Layout, starts: np.ndarray) -> np.ndarray:
    """Fields of the records starting at `starts` (the last one ending the text): commas outside quotes + 1."""
    commas = np.flatnonzero(layout.data == COMMA)
    if len(layout.quotes):
        commas = commas[~layout.quoted(commas)]
    return np.diff(np.searchsorted(commas, np.append(starts, len(layout.data)))) + 1


def _check_records(layout: _Layout, starts: np.ndarray, width: int, path: Path) -> None:
    """Every data record (starting at `starts`) is a non-empty line of `width` fields."""
    fields = _field_counts(layout, starts)
    empty = np.isin(layout.data[starts], (LF, CR))
    bad = empty | (fields != width)
    if bad.any():
        first = int(bad.argmax())
        count = int(fields[first])
        reason = "empty line" if empty[first] else (
            f"{count} field{'' if count == 1 else 's'} where the header has {width}")
        raise DropError(path, int(layout.line(starts[first])), None, reason)


# --- header and body -------------------------------------------------------------------------------------------------

def _header(data: bytes, end: int, path: Path) -> list[str]:
    """Column names of the first record (ending at byte `end`): each non-empty and unique, at most
    MAX_EXTRA_COLUMNS of them outside the known columns."""
    text = data[:end].decode("utf-8").removesuffix("\r")
    try:
        names = next(csv.reader(io.StringIO(text, newline="")), [""])
    except csv.Error as err:  # a name longer than csv.field_size_limit()
        raise DropError(path, 1, None, f"header is not CSV text ({err})") from None
    for position, name in enumerate(names, start=1):
        if not name.strip():
            raise DropError(path, 1, None, f"header field {position} has no column name")
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise DropError(path, 1, name, f"duplicate column name {name!r}")
        seen.add(name)
    extra = [name for name in names if name not in KNOWN_COLS]
    if len(extra) > MAX_EXTRA_COLUMNS:
        shown = ", ".join(extra[:SHOWN_EXTRA_NAMES]) + (", ..." if len(extra) > SHOWN_EXTRA_NAMES else "")
        raise DropError(path, 1, None,
                        f"{len(extra)} columns beyond the known ones (at most {MAX_EXTRA_COLUMNS}): {shown}")
    return names


def read_drop_text(path: Path) -> DropText:
    """Every cell of a drop as text, verbatim, and the line of each row; structural problems raise DropError.

    Checked in this order, so that the costs stay proportional to the file's size: bytes (empty, binary, UTF-8),
    quotes, header (names, extra columns), records (empty lines, field counts); only then is the body parsed.
    """
    path = Path(path)
    data, layout = _content(path)
    _check_quotes(layout, path)
    starts = _record_starts(layout)
    header_end = int(starts[1]) - 1 if len(starts) > 1 else len(data)
    names = _header(data, header_end, path)
    if len(starts) == 1:
        raise DropError(path, None, None, "header only, no data rows")
    _check_records(layout, starts[1:], len(names), path)
    cells = pd.read_csv(
        io.BytesIO(data), header=0, dtype=object, keep_default_na=False, na_filter=False, skip_blank_lines=False,
        encoding="utf-8",
    )
    cells.columns = names  # the same names; passing them to read_csv makes it slower
    return DropText(path, cells, layout.line(starts[1:]))


# --- checking and typing ---------------------------------------------------------------------------------------------

Numbers = dict[str, tuple[pd.Series, pd.Series]]


def _numbers(cells: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(float64 values, mask of cells that are neither a finite number nor a missing value)."""
    missing = cells.isin(MISSING_NUMBERS)
    filled = cells.where(~missing, "nan")
    try:
        values = filled.astype("float64")
    except (TypeError, ValueError):
        values = pd.to_numeric(filled, errors="coerce").astype("float64")
    return values, ~missing & ~np.isfinite(values)


def _cell_rules(cells: pd.DataFrame, numbers: Numbers) -> Iterator[tuple[str, pd.Series, pd.Series, str]]:
    """(column, values shown, mask of bad cells, reason with {value}) of every rule on single cells."""
    if "Dataset" in cells:
        dataset = cells["Dataset"]
        empty = dataset.str.strip().eq("")
        yield "Dataset", dataset, empty, "empty Dataset"
        if "DagNodeName" in cells:
            dname = product_names(dataset)
            science = is_level1(cells["DagNodeName"]) | is_level3(cells["DagNodeName"])
            yield ("Dataset", dname, science & ~empty & ~has_program_id(dname),
                   "{value!r} does not carry a 5-digit program number at characters 3-7")
    for col, (_, bad) in numbers.items():
        yield col, cells[col], bad, "{value!r} is not a number"
    if "ImageSize" in numbers:
        yield ("ImageSize", cells["ImageSize"], numbers["ImageSize"][0].le(0),
               "{value!r} is not a memory footprint (it must be positive)")


def _cell_error(text: DropText, column: str, shown: pd.Series, mask: pd.Series, reason: str) -> DropError | None:
    """The error of a rule's first flagged cell (reason formatted with its value), counting the others."""
    flags = mask.to_numpy(dtype=bool)
    if not flags.any():
        return None
    first = int(flags.argmax())
    count = int(flags.sum())
    more = f" ({count} bad cells in this column)" if count > 1 else ""
    return DropError(text.path, int(text.lines[first]), column, reason.format(value=shown.iloc[first]) + more)


def drop_problems(text: DropText) -> list[DropError]:
    """Every problem of a drop's cells in file order: missing required columns, then per line and column an empty
    Dataset, an L1/L3 Dataset without a program number, a non-numeric number, an ImageSize that is not positive
    (the first bad cell of each rule, counting the others)."""
    cells = text.cells
    problems: list[DropError] = []
    missing = [col for col in REQUIRED_COLS if col not in cells.columns]
    if missing:
        problems.append(DropError(text.path, None, missing[0], "missing required columns: " + ", ".join(missing)))
    found = (_cell_error(text, *rule) for rule in _cell_rules(cells, text.numbers))
    order = {col: i for i, col in enumerate(cells.columns)}
    problems += sorted((e for e in found if e is not None), key=lambda e: (e.line, order[e.column]))
    return problems


def drop_oddities(text: DropText) -> list[DropOddity]:
    """Accepted input worth a warning, in file order: L3 rows without an ImageSize (empty or NONE; spec 2.4 allows
    it, but such a product never becomes a training row, Q7). Empty when a column it needs is missing."""
    cells = text.cells
    if not {"Dataset", "DagNodeName", "ImageSize"} <= set(cells.columns):
        return []
    rows = np.flatnonzero(is_level3(cells["DagNodeName"]) & cells["ImageSize"].isin(MISSING_NUMBERS))
    reason = "L3 product {!r} has no ImageSize: it is ingested but cannot become a training row"
    return [DropOddity(text.path, int(text.lines[r]), "ImageSize", reason.format(cells["Dataset"].iat[r]))
            for r in rows]


def type_drop(text: DropText) -> pd.DataFrame:
    """Typed drop: numeric columns float64 ("" / NONE -> NaN); other columns Python str, "" -> "NONE" (D6)."""
    cells, numbers = text.cells, text.numbers
    others = [col for col in cells.columns if col not in numbers]
    values = cells[others].to_numpy(dtype=object)
    typed = pd.DataFrame(np.where(values == "", "NONE", values), index=cells.index, columns=others, dtype=object)
    for col, (floats, _) in numbers.items():  # in file order, so each lands at its file position
        typed.insert(cells.columns.get_loc(col), col, floats)
    return typed


def read_drop(path: Path) -> pd.DataFrame:
    """Read, check and type one drop file; the first problem found raises DropError."""
    text = read_drop_text(path)
    problems = drop_problems(text)
    if problems:
        raise problems[0]
    return type_drop(text)
