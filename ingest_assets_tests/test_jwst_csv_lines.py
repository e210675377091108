"""CSV lines kept from a commit for its export: any subset of the kept rows, in any order, byte for byte as
`to_csv` writes those rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ingest_assets.jwst_cal.csv_lines import FormattedLines, csv_lines, header_line, line_lengths

ROWS = pd.DataFrame({
    "name": ["a", 'quoted "b"', "two\nlines", "comma, d", None],
    "count": [1, 2, 3, 4, 5],
    "size": [0.1, np.nan, 1e-05, 123456789.5, -0.0],
})


def lines_of(rows: pd.DataFrame) -> bytes:
    return csv_lines(rows, ()).encode()


def test_line_lengths_count_bytes_of_each_record_including_quoted_line_breaks():
    text = lines_of(ROWS)
    lengths = line_lengths(text)
    assert len(lengths) == len(ROWS) and lengths.sum() == len(text)
    assert [lines_of(ROWS.iloc[[i]]) for i in range(len(ROWS))] == [
        text[end - size:end] for size, end in zip(lengths, np.cumsum(lengths))]


def test_kept_lines_of_any_rows_in_any_order_equal_those_rows_written():
    kept = FormattedLines()
    positions = np.array([10.0, 11.0, 12.5, 13.0, 20.0])
    kept.add("t", positions[:2], lines_of(ROWS.iloc[:2]))
    kept.add("t", positions[2:], lines_of(ROWS.iloc[2:]))
    assert kept.text("t", positions) == lines_of(ROWS)
    order = [4, 0, 2]
    assert kept.text("t", positions[order]) == lines_of(ROWS.iloc[order])

    assert kept.unknown("t", np.array([11.0, 14.0])).tolist() == [14.0]
    with pytest.raises(KeyError, match="no line kept"):
        kept.text("t", np.array([10.0, 14.0]))


def test_cleared_tables_keep_nothing():
    kept = FormattedLines()
    kept.add("u", np.array([1.0]), lines_of(ROWS.iloc[:1]))
    assert kept.text("u", np.array([1.0])) == lines_of(ROWS.iloc[:1])
    kept.clear()
    assert kept.unknown("u", np.array([1.0])).tolist() == [1.0]
    assert kept.text("u", np.array([])) == b""


def test_rows_formatted_as_another_number_of_lines_are_refused():
    with pytest.raises(ValueError, match="3 rows formatted as 2 CSV lines"):
        FormattedLines().add("t", np.array([1.0, 2.0, 3.0]), lines_of(ROWS.iloc[:2]))


def test_integer_columns_with_missing_values_elsewhere_are_written_as_floats():
    rows = pd.DataFrame({"n": [7, 8]})
    assert header_line(("n",)) == "n\n"
    assert csv_lines(rows, ()) == "7\n8\n"
    assert csv_lines(rows, ("n",)) == "7.0\n8.0\n"
