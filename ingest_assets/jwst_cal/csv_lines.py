"""CSV lines of stored rows, as pandas' `to_csv` writes them, and the lines a commit formatted, kept for its export."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import pandas as pd


@cache
def header_line(names: tuple[str, ...]) -> str:
    """A table's CSV header, as `to_csv` writes it."""
    return pd.DataFrame(columns=list(names)).to_csv(index=False)


def csv_lines(rows: pd.DataFrame, float_ints: tuple[str, ...]) -> str:
    """Rows (read back) as `to_csv` writes them inside their whole table: the BIGINT columns `float_ints`, which
    have missing values somewhere in the table, are written as floats."""
    return rows.astype(dict.fromkeys(float_ints, np.float64)).to_csv(index=False, header=False)


def line_lengths(text: bytes) -> np.ndarray:
    """Bytes of each CSV record of `text`, its line break included (a line break inside quotes is part of a field)."""
    data = np.frombuffer(text, dtype=np.uint8)
    breaks = data == ord("\n")
    if b'"' in text:
        breaks &= ~np.logical_xor.accumulate(data == ord('"'))  # inside quotes after an odd number of them
    return np.diff(np.flatnonzero(breaks), prepend=-1)


@dataclass
class Lines:
    """The CSV lines of some rows of a table, by row position: one byte buffer, each row's offset and length."""

    positions: np.ndarray
    offsets: np.ndarray
    lengths: np.ndarray
    data: np.ndarray  # uint8

    @classmethod
    def empty(cls) -> Lines:
        none = np.empty(0, dtype=np.int64)
        return cls(np.empty(0), none, none, np.empty(0, dtype=np.uint8))


class FormattedLines:
    """The lines formatted as a transaction settles (after all its writes, as its new rows get their line length),
    per table and row position, so that the export after its commit formats no row a second time."""

    def __init__(self) -> None:
        self._tables: dict[str, Lines] = {}

    def clear(self) -> None:
        self._tables.clear()

    def add(self, table: str, positions: np.ndarray, text: bytes) -> np.ndarray:
        """Keep the lines `text` of the rows at `positions` (in that order); their lengths."""
        lengths = line_lengths(text)
        if len(lengths) != len(positions):
            raise ValueError(f"{table}: {len(positions)} rows formatted as {len(lengths)} CSV lines")
        known = self._tables.get(table, Lines.empty())
        offsets = len(known.data) + np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        self._tables[table] = Lines(
            np.concatenate([known.positions, positions]), np.concatenate([known.offsets, offsets]),
            np.concatenate([known.lengths, lengths]),
            np.concatenate([known.data, np.frombuffer(text, dtype=np.uint8)]))
        return lengths

    def unknown(self, table: str, positions: np.ndarray) -> np.ndarray:
        """Those of `positions` whose line is not kept."""
        known = self._tables.get(table)
        return positions if known is None else positions[~np.isin(positions, known.positions)]

    def text(self, table: str, positions: np.ndarray) -> bytes:
        """The lines of the rows at `positions` (all kept), in that order."""
        known = self._tables.get(table, Lines.empty())
        index = pd.Index(known.positions).get_indexer(positions)
        if np.any(index < 0):
            raise KeyError(f"{table}: no line kept for the rows at {positions[index < 0][:3].tolist()}")
        offsets, lengths = known.offsets[index], known.lengths[index]
        if len(index) == len(known.positions) and np.all(np.diff(index) == 1) and len(known.data) == lengths.sum():
            return known.data.tobytes()  # the usual day: the rows appended, in the order they were formatted
        ends = np.cumsum(lengths)
        gather = np.repeat(offsets - (ends - lengths), lengths) + np.arange(ends[-1] if len(ends) else 0)
        return known.data[gather].tobytes()
