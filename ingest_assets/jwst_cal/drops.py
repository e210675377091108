"""Daily drop files: discovery by name (spec 2.1, D2) and reading with clear input errors (spec 2.4, 2.5, D6).

A drop is `YYYY-MM-DD_DDD.csv` (DDD = zero-padded day of year of that date). Reading keeps every cell as text,
reports bad input as `DropError` (file, 1-based line, column), then types the numeric columns as floats.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd

from .constants import BUCKETS, NUMERIC_COLS, REQUIRED_COLS

DROP_NAME = re.compile(r"(\d{4}-\d{2}-\d{2})_(\d{3})\.csv", re.ASCII)
# Files the ingest writes (spec 4.2); an output folder may be the drop folder itself (Q1).
OUTPUT_NAMES = frozenset(
    {"ingest.csv", "training.csv", "mosaics.csv", "level1.csv", "category_codes.csv"}
    | {f"{kind}-{bucket.lower()}.csv" for kind in ("train", "raw", "rem") for bucket in BUCKETS}
)
# Cell texts that mean "no value" in a numeric column.
MISSING_NUMBERS = ("", "NONE")
PARSER_FIELDS = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


class DropError(ValueError):
    """Bad input in a drop file."""

    def __init__(self, path: Path, line: int | None, column: str | None, reason: str) -> None:
        super().__init__(path, line, column, reason)
        self.path = Path(path)
        self.line = line
        self.column = column
        self.reason = reason

    def __str__(self) -> str:
        where = [f"line {self.line}"] if self.line is not None else []
        where += [f"column {self.column}"] if self.column is not None else []
        return ": ".join([self.path.name, *([", ".join(where)] if where else []), self.reason])


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


def discover_drops(input_dir: Path, pfx: str = "") -> tuple[list[Path], list[tuple[str, str]]]:
    """Drops matching `{pfx}*.csv` (pfx may hold glob wildcards) sorted by date, and the other matched names with
    why they are ignored. The ingest's own output files are in neither list."""
    input_dir = Path(input_dir)
    if not input_dir.is_dir():
        raise FileNotFoundError(f"drop folder {input_dir} does not exist")
    drops: list[Path] = []
    ignored: list[tuple[str, str]] = []
    for path in sorted(p for p in input_dir.glob(f"{pfx}*.csv") if p.is_file()):  # name order is date order
        if path.name in OUTPUT_NAMES:
            continue
        problem = drop_name_problem(path.name)
        if problem is None:
            drops.append(path)
        else:
            ignored.append((path.name, problem))
    return drops, ignored


# --- reading ---------------------------------------------------------------------------------------------------------

def _content(path: Path) -> bytes:
    """The file's bytes without trailing line breaks; empty and binary files are errors."""
    data = path.read_bytes().rstrip(b"\r\n")
    if not data or data.isspace():
        raise DropError(path, None, None, "empty file")
    if b"\0" in data:
        line = data.count(b"\n", 0, data.index(b"\0")) + 1
        raise DropError(path, line, None, "not a CSV text file (binary data)")
    return data


def _parse_rows(data: bytes, path: Path) -> pd.DataFrame:
    """Every record, header included, as text; undecodable text or a row wider than the header is an error."""
    try:
        return pd.read_csv(
            io.BytesIO(data), header=None, dtype=object, keep_default_na=False, na_filter=False,
            skip_blank_lines=False, encoding="utf-8",
        )
    except UnicodeDecodeError:
        raise DropError(path, _undecodable_line(data), None, "not a CSV text file (not UTF-8 text)") from None
    except pd.errors.ParserError as err:
        fields = PARSER_FIELDS.search(str(err))
        if fields is None:
            raise DropError(path, None, None, f"not a CSV text file ({err})") from None
        expected, line, saw = fields.groups()
        raise DropError(path, int(line), None, f"{saw} fields where the header has {expected}") from None


def _undecodable_line(data: bytes) -> int | None:
    """1-based line of the first byte that is not UTF-8, if any."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        return data.count(b"\n", 0, err.start) + 1
    return None


def _check_header(names: list[str], path: Path) -> None:
    """Every column needs a name of its own."""
    for position, name in enumerate(names, start=1):
        if not name.strip():
            raise DropError(path, 1, None, f"header field {position} has no column name")
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise DropError(path, 1, name, f"duplicate column name {name!r}")
        seen.add(name)


def read_drop_text(path: Path) -> pd.DataFrame:
    """Every cell of a drop as text, verbatim, columns in file order; structural problems raise DropError."""
    path = Path(path)
    rows = _parse_rows(_content(path), path)
    names = rows.iloc[0].tolist()
    _check_header(names, path)
    if len(rows) == 1:
        raise DropError(path, None, None, "header only, no data rows")
    text = rows.iloc[1:].reset_index(drop=True)
    text.columns = names
    return text


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


def _parse_numbers(text: pd.DataFrame) -> Numbers:
    """Values and bad-cell mask of each numeric column present, in file order."""
    return {col: _numbers(text[col]) for col in text.columns if col in NUMERIC_COLS}


def _first_bad(mask: pd.Series) -> int | None:
    """Row position of the first True of a mask, or None."""
    flags = mask.to_numpy(dtype=bool)
    return int(flags.argmax()) if flags.any() else None


def _cell_error(path: Path, column: str, cells: pd.Series, mask: pd.Series, reason: str) -> DropError | None:
    """The error of a column's first flagged cell (reason formatted with its value), counting the others."""
    first = _first_bad(mask)
    if first is None:
        return None
    count = int(mask.sum())
    more = f" ({count} bad cells in this column)" if count > 1 else ""
    return DropError(path, first + 2, column, reason.format(value=cells.iloc[first]) + more)


def _problems(text: pd.DataFrame, path: Path, numbers: Numbers) -> list[DropError]:
    """See `drop_problems`; `numbers` is `_parse_numbers(text)`."""
    problems: list[DropError] = []
    missing = [col for col in REQUIRED_COLS if col not in text.columns]
    if missing:
        problems.append(DropError(path, None, missing[0], "missing required columns: " + ", ".join(missing)))
    cells: list[DropError | None] = []
    if "Dataset" in text.columns:
        dataset = text["Dataset"]
        cells.append(_cell_error(path, "Dataset", dataset, dataset.str.strip().eq(""), "empty Dataset"))
    for col, (_, bad) in numbers.items():
        cells.append(_cell_error(path, col, text[col], bad, "{value!r} is not a number"))
    order = {col: i for i, col in enumerate(text.columns)}
    problems += sorted((e for e in cells if e is not None), key=lambda e: (e.line, order[e.column]))
    return problems


def _typed(text: pd.DataFrame, numbers: Numbers) -> pd.DataFrame:
    """See `type_drop`; `numbers` is `_parse_numbers(text)`."""
    others = [col for col in text.columns if col not in numbers]
    cells = text[others].to_numpy(dtype=object)
    typed = pd.DataFrame(np.where(cells == "", "NONE", cells), index=text.index, columns=others, dtype=object)
    for col, (values, _) in numbers.items():  # in file order, so each lands at its file position
        typed.insert(text.columns.get_loc(col), col, values)
    return typed


def drop_problems(text: pd.DataFrame, path: Path) -> list[DropError]:
    """Every problem of a text frame in file order: missing required columns, empty Dataset, non-numeric numbers."""
    return _problems(text, Path(path), _parse_numbers(text))


def type_drop(text: pd.DataFrame) -> pd.DataFrame:
    """Typed drop: numeric columns float64 ("" / NONE -> NaN); other columns Python str, "" -> "NONE" (D6)."""
    return _typed(text, _parse_numbers(text))


def read_drop(path: Path) -> pd.DataFrame:
    """Read, check and type one drop file; the first problem found raises DropError."""
    path = Path(path)
    text = read_drop_text(path)
    numbers = _parse_numbers(text)
    problems = _problems(text, path, numbers)
    if problems:
        raise problems[0]
    return _typed(text, numbers)
