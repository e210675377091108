"""Drop files: naming and discovery (spec 2.1, D2), reading with clear input errors and typing (spec 2.4, 2.5, D6)."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from ingest_assets.jwst_cal.constants import MAX_EXTRA_COLUMNS, NUMERIC_COLS, OPTIONAL_COLS, REQUIRED_COLS
from ingest_assets.jwst_cal.drops import (
    DropError,
    PrefixError,
    discover_drops,
    drop_date,
    drop_file_name,
    drop_name_problem,
    drop_oddities,
    drop_problems,
    read_drop,
    read_drop_text,
    type_drop,
)

INBOX = Path(__file__).resolve().parents[1] / "data" / "jwst_cal" / "inbox"
NAME = "2025-03-01_060.csv"


def good_row(**overrides: str) -> dict[str, str]:
    """One valid NIRCam L1 row, every required column as text."""
    row = {
        "Dataset": "jw01234001001_02101_00001_nrca1", "DagNodeName": "CALWEBB_IMAGE2", "ImageSize": "4599768",
        "PROGRAM": "01234", "OBSERVTN": "001", "EXP_TYPE": "NRC_IMAGE", "VISITYPE": "PRIME_TARGETED_FIXED",
        "FILTER": "F200W", "GRATING": "NONE", "PUPIL": "CLEAR", "SUBARRAY": "FULL", "FXD_SLIT": "NONE",
        "BAND": "NONE", "DETECTOR": "NRCA1", "CHANNEL": "SHORT", "TARGNAME": "NGC-1234", "INSTRUME": "NIRCAM",
        "CRVAL1": "325.079669243", "CRVAL2": "7.179075797", "RA_REF": "325.07976", "DEC_REF": "7.1792068",
        "GS_RA": "324.98735273", "GS_DEC": "7.24465905", "GS_MAG": "11.32", "TARG_RA": "325.0970455",
        "TARG_DEC": "7.188726",
    }
    return row | overrides


def write_drop(folder: Path, rows: list[dict[str, str]], name: str = NAME, drop: tuple[str, ...] = ()) -> Path:
    """Write rows as a CSV drop (columns of the first row, minus `drop`)."""
    columns = [c for c in rows[0] if c not in drop]
    path = folder / name
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_records(folder: Path, rows: list[dict[str, str]], newline: str = "\n") -> Path:
    """Write rows (columns of the first row) with the given line break, quoting fields only where needed."""
    path = folder / NAME
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator=newline)
        writer.writerow(list(rows[0]))
        writer.writerows([list(row.values()) for row in rows])
    return path


def raised(path: Path) -> DropError:
    with pytest.raises(DropError) as info:
        read_drop(path)
    assert str(info.value).startswith(path.name + ":")
    return info.value


# --- names and discovery ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "day"), [
    ("2025-03-01_060.csv", dt.date(2025, 3, 1)),
    ("2024-02-29_060.csv", dt.date(2024, 2, 29)),
    ("2024-03-01_061.csv", dt.date(2024, 3, 1)),
    ("2024-12-31_366.csv", dt.date(2024, 12, 31)),
    ("2025-01-01_001.csv", dt.date(2025, 1, 1)),
])
def test_valid_drop_names(name, day):
    assert drop_date(name) == day
    assert drop_name_problem(name) is None
    assert drop_file_name(day) == name
    assert drop_file_name(day.isoformat()) == name


def test_day_of_year_must_agree_with_the_date():
    assert drop_date("2025-03-01_061.csv") is None
    assert drop_date("2024-03-01_060.csv") is None  # 060 is Feb 29 in a leap year
    problem = drop_name_problem("2025-03-01_061.csv")
    assert "061" in problem and "2025-03-01" in problem and "060" in problem


@pytest.mark.parametrize("name", [
    "training.csv", "ingest.csv", "2025-03-01.csv", "2025-03-01_60.csv", "2025-03-01_060_x.csv", "x2025-03-01_060.csv",
    "2025-3-01_060.csv", "2025-02-30_061.csv", "2025-03-01_060.txt", "2025-03-01_060.csv.bak",
])
def test_other_names_are_not_drops(name):
    assert drop_date(name) is None
    assert drop_name_problem(name)


def test_every_day_of_a_leap_year_round_trips():
    days = [dt.date(2024, 1, 1) + dt.timedelta(days=n) for n in range(366)]
    names = [drop_file_name(day) for day in days]
    assert [drop_date(name) for name in names] == days
    assert names[-1] == "2024-12-31_366.csv"


def make_inbox(folder: Path) -> None:
    for name in ("2025-03-03_062.csv", "2025-03-01_060.csv", "2025-03-02_061.csv", "2025-03-02_062.csv", "notes.csv",
                 "training.csv", "ingest.csv", "mosaics.csv", "level1.csv", "train-image.csv", "raw-tac.csv",
                 "rem-fgs.csv", "2025-03-04_063.txt"):
        (folder / name).write_text("Dataset\nx\n")
    (folder / "2025-03-05_064.csv").mkdir()


def test_discover_sorts_drops_by_date_and_explains_ignored_files(tmp_path):
    make_inbox(tmp_path)
    drops, ignored = discover_drops(tmp_path)
    assert [p.name for p in drops] == ["2025-03-01_060.csv", "2025-03-02_061.csv", "2025-03-03_062.csv"]
    assert all(p.parent == tmp_path for p in drops)
    reasons = dict(ignored)
    assert set(reasons) == {"2025-03-02_062.csv", "notes.csv", "2025-03-05_064.csv"}
    assert reasons["2025-03-05_064.csv"] == "a directory, not a file"
    assert "062" in reasons["2025-03-02_062.csv"] and "061" in reasons["2025-03-02_062.csv"]
    assert "YYYY-MM-DD_DDD.csv" in reasons["notes.csv"]


@pytest.mark.parametrize(("pfx", "expected"), [
    ("2025-03-0[1-2]", ["2025-03-01_060.csv", "2025-03-02_061.csv"]),
    ("*_06[01]", ["2025-03-01_060.csv", "2025-03-02_061.csv"]),
    ("2025-03-03", ["2025-03-03_062.csv"]),
    ("2025-03-0*", ["2025-03-01_060.csv", "2025-03-02_061.csv", "2025-03-03_062.csv"]),
    ("2025-03-0?_06?", ["2025-03-01_060.csv", "2025-03-02_061.csv", "2025-03-03_062.csv"]),
    ("2024", []),
])
def test_discover_prefix_is_a_glob(tmp_path, pfx, expected):
    make_inbox(tmp_path)
    drops, ignored = discover_drops(tmp_path, pfx)
    assert [p.name for p in drops] == expected
    assert "notes.csv" not in dict(ignored)


@pytest.mark.parametrize("pfx", [
    "../*", "/etc/", "../2025-03-09_068", "inbox/2025", "..", "..\\2025", "*/2025", "sub/../2025",
])
def test_discover_prefix_that_is_a_path_is_refused(tmp_path, pfx):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    make_inbox(inbox)
    (tmp_path / "2025-03-09_068.csv").write_text("Dataset\nx\n")
    with pytest.raises(PrefixError) as info:
        discover_drops(inbox, pfx)
    assert isinstance(info.value, ValueError)
    assert repr(pfx) in str(info.value) and "\n" not in str(info.value)


def test_discover_skips_hidden_files_as_glob_does(tmp_path):
    make_inbox(tmp_path)
    (tmp_path / ".2025-03-06_065.csv").write_text("Dataset\nx\n")
    drops, ignored = discover_drops(tmp_path)
    assert ".2025-03-06_065.csv" not in [p.name for p in drops] + [name for name, _ in ignored]
    assert [name for name, _ in discover_drops(tmp_path, ".2025")[1]] == [".2025-03-06_065.csv"]


def test_discover_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        discover_drops(tmp_path / "nowhere")


# --- bad input -------------------------------------------------------------------------------------------------------

def test_missing_required_columns_are_listed_together(tmp_path):
    path = write_drop(tmp_path, [good_row()], drop=("CRVAL2", "TARGNAME"))
    err = raised(path)
    assert err.column == "TARGNAME"  # first in REQUIRED_COLS order
    assert "TARGNAME" in str(err) and "CRVAL2" in str(err)


def test_non_numeric_image_size_names_line_and_column(tmp_path):
    rows = [good_row(), good_row(), good_row(ImageSize="12kB"), good_row(ImageSize="also bad")]
    err = raised(write_drop(tmp_path, rows))
    assert (err.path.name, err.line, err.column) == (NAME, 4, "ImageSize")
    assert str(err).startswith(f"{NAME}: line 4, column ImageSize: '12kB'")


@pytest.mark.parametrize("value", ["abc", "None", "N/A", "nan", "1,5", "inf"])
def test_non_numeric_float_cell(tmp_path, value):
    err = raised(write_drop(tmp_path, [good_row(), good_row(CRVAL1=value)]))
    assert (err.line, err.column) == (3, "CRVAL1")
    assert f"line 3, column CRVAL1: {value!r} is not a number" in str(err)


@pytest.mark.parametrize("content", [b"", b"\n\n", b"  \r\n"])
def test_empty_file(tmp_path, content):
    path = tmp_path / NAME
    path.write_bytes(content)
    assert "empty" in str(raised(path))


def test_header_only_file(tmp_path):
    path = tmp_path / NAME
    path.write_text(",".join(REQUIRED_COLS) + "\n")
    err = raised(path)
    assert "no data rows" in str(err)


def test_binary_file(tmp_path):
    path = tmp_path / NAME
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00")
    assert "not a CSV text file" in str(raised(path))


def test_undecodable_text_names_the_line(tmp_path):
    path = write_drop(tmp_path, [good_row(), good_row(TARGNAME="caf\u00e9")])
    path.write_bytes(path.read_text(encoding="utf-8").encode("latin-1"))
    err = raised(path)
    assert err.line == 3 and "not a CSV text file" in str(err)


def test_row_wider_than_header_names_the_line(tmp_path):
    path = write_drop(tmp_path, [good_row()] * 3)
    lines = path.read_text().splitlines()
    lines[2] += ",surplus"
    path.write_text("\n".join(lines) + "\n")
    err = raised(path)
    assert err.line == 3 and str(err).startswith(f"{NAME}: line 3:")


def test_row_shorter_than_header_names_the_line(tmp_path):
    rows = [good_row(), good_row(DagNodeName="CALWEBB_IMAGE3", ImageSize="123"), good_row()]
    path = write_drop(tmp_path, rows)
    lines = path.read_text().splitlines()
    lines[2] = lines[2].rsplit(",", 2)[0]
    path.write_text("\n".join(lines) + "\n")
    err = raised(path)
    n = len(good_row())
    assert (err.line, err.column) == (3, None)
    assert str(err) == f"{NAME}: line 3: {n - 2} fields where the header has {n}"


def test_file_cut_off_mid_row(tmp_path):
    path = write_drop(tmp_path, [good_row()] * 4)
    text = path.read_text()
    path.write_text(text[: len(text) - len(text.splitlines()[-1]) // 2])
    err = raised(path)
    assert err.line == 5 and "fields where the header has" in str(err)


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
@pytest.mark.parametrize(("fault", "column", "reason"), [
    ({"ImageSize": "12kB"}, "ImageSize", "'12kB' is not a number"),
    ({"Dataset": ""}, "Dataset", "empty Dataset"),
    ({"ImageSize": "-4"}, "ImageSize", "'-4' is not a memory footprint"),
    ({"Dataset": "jwXY001_uncal.fits", "DagNodeName": "CALWEBB_DETECTOR1"}, "Dataset", "5-digit program number"),
    (None, None, "fields where the header has"),
])
def test_lines_are_physical_lines_of_the_file(tmp_path, newline, fault, column, reason):
    quoted = good_row(TARGNAME=f"NGC{newline}1234", FILTER="F200W,F444W")  # a line break and a comma inside quotes
    last = good_row(**(fault or {}))
    if fault is None:
        del last["GS_MAG"]
    path = write_records(tmp_path, [good_row(), quoted, good_row(), last], newline)
    err = raised(path)
    assert (err.line, err.column) == (6, column)  # header 1, rows on 2, 3-4, 5, 6
    assert reason in str(err)


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_quoted_fields_read_verbatim(tmp_path, newline):
    rows = [good_row(TARGNAME=f'NGC "a"{newline}b', FILTER="F200W,F444W"), good_row(TARGNAME="")]
    path = write_records(tmp_path, rows, newline)
    text = read_drop_text(path)
    assert text.cells["TARGNAME"].tolist() == [f'NGC "a"{newline}b', ""]
    assert text.cells["FILTER"].iloc[0] == "F200W,F444W"
    assert text.lines.tolist() == [2, 4]


def test_unterminated_quoted_field_names_its_line(tmp_path):
    path = write_drop(tmp_path, [good_row()] * 3)
    lines = path.read_text().splitlines()
    lines[2] = lines[2].replace("NGC-1234", '"NGC-1234')
    path.write_text("\n".join(lines + [lines[1]]) + "\n")
    err = raised(path)
    assert err.line == 3 and "quoted field" in str(err) and "never closed" in str(err)


@pytest.mark.parametrize("targname", ['NGC "1234"', '"NGC" 1234'])
def test_stray_quote_is_bad_input(tmp_path, targname):
    path = write_drop(tmp_path, [good_row()] * 3)
    lines = path.read_text().splitlines()
    lines[2] = lines[2].replace("NGC-1234", targname)
    path.write_text("\n".join(lines) + "\n")
    err = raised(path)
    assert err.line == 3 and "quote" in str(err)


def test_extra_columns_up_to_the_limit_are_kept(tmp_path):
    extra = {f"X{i}": str(i) for i in range(MAX_EXTRA_COLUMNS)}
    known = {c: "1" for c in OPTIONAL_COLS}
    drop = read_drop(write_drop(tmp_path, [good_row() | known | extra]))
    assert list(drop.columns) == list(good_row() | known | extra)


def test_too_many_extra_columns_is_refused_from_the_header_alone(tmp_path, monkeypatch):
    extra = {f"X{i}": "" for i in range(MAX_EXTRA_COLUMNS + 1)}
    path = write_drop(tmp_path, [good_row() | extra] * 2)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines + ["too,short"]) + "\n")
    monkeypatch.setattr(pd, "read_csv", lambda *a, **k: pytest.fail("the body was parsed"))
    err = raised(path)
    assert err.line == 1
    assert str(err) == (
        f"{NAME}: line 1: {MAX_EXTRA_COLUMNS + 1} columns beyond the known ones (at most {MAX_EXTRA_COLUMNS}): "
        "X0, X1, X2, X3, X4, ..."
    )


def test_program_number_is_checked_on_science_rows_only(tmp_path):
    rows = [good_row(Dataset="memory_estimate", DagNodeName="ESTIMATE_LEVEL_3_MEMORY"),
            good_row(Dataset="jw0123x001001_02101_00001_nrca1", DagNodeName="CALWEBB_DETECTOR1")]
    err = raised(write_drop(tmp_path, rows))
    assert (err.line, err.column) == (3, "Dataset")
    assert "'jw0123x001001_02101_00001_nrca1' does not carry a 5-digit program number" in str(err)


@pytest.mark.parametrize("size", ["-5", "0", "-0.0", "-1e3"])
def test_image_size_must_be_positive(tmp_path, size):
    err = raised(write_drop(tmp_path, [good_row(), good_row(DagNodeName="CALWEBB_IMAGE3", ImageSize=size)]))
    assert (err.line, err.column) == (3, "ImageSize")
    assert f"line 3, column ImageSize: {size!r} is not a memory footprint (it must be positive)" in str(err)


def test_l3_rows_without_image_size_are_kept_and_reported(tmp_path):
    rows = [
        good_row(Dataset="jw01234-o001_t001_nircam_clear-f200w", DagNodeName="CALWEBB_IMAGE3", ImageSize=""),
        good_row(ImageSize=""),  # not an L3 row
        good_row(Dataset="jw01234-o002_t001_nircam_clear-f200w", DagNodeName="CALWEBB_IMAGE3", ImageSize="NONE"),
        good_row(Dataset="jw01234-o003_t001_nircam_clear-f200w", DagNodeName="CALWEBB_IMAGE3"),
    ]
    path = write_drop(tmp_path, rows)
    assert len(read_drop(path)) == 4
    oddities = drop_oddities(read_drop_text(path))
    assert [(o.line, o.column) for o in oddities] == [(2, "ImageSize"), (4, "ImageSize")]
    assert str(oddities[0]) == (
        f"{NAME}: line 2, column ImageSize: L3 product 'jw01234-o001_t001_nircam_clear-f200w' has no ImageSize: "
        "it is ingested but cannot become a training row"
    )


def test_duplicate_column_names(tmp_path):
    path = write_drop(tmp_path, [good_row()])
    lines = path.read_text().splitlines()
    path.write_text(f"{lines[0]},GS_MAG\n{lines[1]},12.0\n")
    err = raised(path)
    assert err.column == "GS_MAG" and "duplicate" in str(err)


def test_empty_dataset_names_the_line(tmp_path):
    err = raised(write_drop(tmp_path, [good_row(), good_row(), good_row(Dataset="")]))
    assert (err.line, err.column) == (4, "Dataset")


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_blank_line_inside_the_data_is_bad_input_trailing_ones_are_not(tmp_path, newline):
    path = write_drop(tmp_path, [good_row()] * 3)
    lines = path.read_text().splitlines()
    path.write_bytes(newline.join(lines[:2] + [""] + lines[2:] + ["", ""]).encode())
    err = raised(path)
    assert (err.line, str(err)) == (3, f"{NAME}: line 3: empty line")
    path.write_bytes(newline.join(lines + ["", ""]).encode())
    assert len(read_drop(path)) == 3


def test_all_problems_in_file_order(tmp_path):
    rows = [good_row(), good_row(ImageSize="x"), good_row(Dataset="", CRVAL1="y"), good_row(TARG_DEC="z")]
    path = write_drop(tmp_path, rows, drop=("GS_MAG",))
    problems = drop_problems(read_drop_text(path))
    assert [(p.line, p.column) for p in problems] == [
        (None, "GS_MAG"), (3, "ImageSize"), (4, "Dataset"), (4, "CRVAL1"), (5, "TARG_DEC"),
    ]


# --- typing ----------------------------------------------------------------------------------------------------------

def test_missing_numbers_become_nan(tmp_path):
    rows = [good_row(CRVAL1="NONE", ImageSize=""), good_row(CRVAL1="", GS_MAG="NONE"), good_row(CRVAL1="-1.5e-3")]
    drop = read_drop(write_drop(tmp_path, rows))
    assert all(drop[c].dtype == np.float64 for c in NUMERIC_COLS)
    assert drop["CRVAL1"].isna().tolist() == [True, True, False]
    assert drop["CRVAL1"].iloc[2] == -0.0015
    assert np.isnan(drop["ImageSize"].iloc[0]) and drop["ImageSize"].iloc[1] == 4599768.0
    assert np.isnan(drop["GS_MAG"].iloc[1])


def test_text_columns_stay_verbatim_strings(tmp_path):
    rows = [
        good_row(CHANNEL="12", PROGRAM="01234", OBSERVTN="007", FILTER=" f200w ", SUBARRAY="", TARGNAME="N/A"),
        good_row(CHANNEL="34", PROGRAM="00042", OBSERVTN="100", BAND=""),
    ]
    drop = read_drop(write_drop(tmp_path, rows))
    text_cols = [c for c in drop.columns if c not in NUMERIC_COLS]
    assert all(drop[c].dtype == object for c in text_cols)
    assert all(isinstance(v, str) for c in text_cols for v in drop[c])
    assert drop["CHANNEL"].tolist() == ["12", "34"]
    assert drop["PROGRAM"].tolist() == ["01234", "00042"]
    assert drop["OBSERVTN"].tolist() == ["007", "100"]
    assert drop["FILTER"].iloc[0] == " f200w "
    assert drop["SUBARRAY"].tolist() == ["NONE", "FULL"]
    assert drop["BAND"].tolist() == ["NONE", "NONE"]
    assert drop["TARGNAME"].iloc[0] == "N/A"


def test_optional_columns_absent_and_extra_columns_kept(tmp_path):
    rows = [good_row(NOTES="first") | {"TSOVISIT": "True"}, good_row(NOTES="") | {"TSOVISIT": "F"}]
    path = write_drop(tmp_path, rows)
    drop = read_drop(path)
    header = path.read_text().splitlines()[0].split(",")
    assert list(drop.columns) == header  # no absent optional column is added
    assert set(OPTIONAL_COLS) - set(drop.columns)
    assert drop["NOTES"].tolist() == ["first", "NONE"]
    assert drop["TSOVISIT"].tolist() == ["True", "F"]
    assert isinstance(drop.index, pd.RangeIndex) and len(drop) == 2


def test_utf8_byte_order_mark_is_not_part_of_the_first_name(tmp_path):
    path = write_drop(tmp_path, [good_row()])
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert read_drop(path).columns[0] == "Dataset"


def test_text_frame_keeps_cells_as_written(tmp_path):
    path = write_drop(tmp_path, [good_row(CRVAL1="NONE", SUBARRAY="", ImageSize="007")])
    text = read_drop_text(path)
    cells = text.cells
    assert cells.loc[0, "CRVAL1"] == "NONE" and cells.loc[0, "SUBARRAY"] == "" and cells.loc[0, "ImageSize"] == "007"
    assert drop_problems(text) == []
    typed = type_drop(text)
    assert typed.loc[0, "ImageSize"] == 7.0 and typed.loc[0, "SUBARRAY"] == "NONE"


def test_real_drop_reads_with_expected_types():
    path = INBOX / NAME
    with path.open(newline="") as handle:
        records = list(csv.DictReader(handle))
    drop = read_drop(path)
    assert len(drop) == len(records)
    assert list(drop.columns) == list(records[0])
    assert set(REQUIRED_COLS) <= set(drop.columns)
    assert all(drop[c].dtype == np.float64 for c in NUMERIC_COLS)
    assert all(drop[c].dtype == object for c in drop.columns if c not in NUMERIC_COLS)
    assert drop["TARG_RA"].isna().sum() == sum(r["TARG_RA"] == "NONE" for r in records)
    assert drop["CHANNEL"].tolist() == [r["CHANNEL"] for r in records]
    assert drop["PROGRAM"].tolist() == [r["PROGRAM"] for r in records]
    assert drop["CRVAL1"].iloc[0] == float(records[0]["CRVAL1"])
