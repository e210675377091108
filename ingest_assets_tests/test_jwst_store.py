"""The JWST ingest state store on real DuckDB files: per-day versions, CSV exports, rollback, crash safety."""

from __future__ import annotations

import math
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from ingest_assets.jwst_cal import store as store_module
from ingest_assets.jwst_cal.store import (
    DB_NAME, MARKER_NAME, ExportIncompleteError, IngestStore, StoreCorruptError, StoreError, StoreLockedError,
    StoreMissingError, Tail,
)

REPO = Path(__file__).resolve().parents[1]
DAYS = ("2024-03-01", "2024-03-02", "2024-03-03")


def whole(frame: pd.DataFrame) -> Tail:
    """A state table's whole new content."""
    return Tail(-math.inf, frame)


def training(names: list[str], sizes: list) -> pd.DataFrame:
    return pd.DataFrame({
        "Dataset": names, "dag": "LEVEL_3", "imagesize": sizes,
        "date": "2024-03-01", "pname": [n.upper() for n in names],
    })


def day_inputs(i: int) -> dict:
    """Three days exercising appends, changes, removals, new tables, new columns and type widening."""
    if i == 0:
        return {
            "state": {"training": whole(training(["a", "b", "c", "d"], [10, 20, 30, 40])),
                      "ingest": whole(pd.DataFrame({"Dataset": ["l1", "l2"], "params": ["p1", "p2"]})),
                      "_backlog": whole(pd.DataFrame({"Dataset": ["x"], "age": [1]}))},
            "log": {"mosaics": pd.DataFrame({"Dataset": ["m1"], "imagesize": [5]})},
            "daily": {"rem-image": pd.DataFrame({"Dataset": ["r1", "r2"], "nexposur": [2, 3]})},
            "report": {"day": 1, "matched": np.int64(4)},
        }
    if i == 1:
        return {
            "state": {"training": whole(training(["a", "b", "d", "e"], [10, 21, 40, 50])),
                      "ingest": whole(pd.DataFrame({"Dataset": ["l2"], "params": ["p2"]}))},
            "log": {"mosaics": pd.DataFrame({"Dataset": ["m2"], "imagesize": [6]}),
                    "raw-image": pd.DataFrame({"Dataset": ["B"], "fx_ra": [0.25]})},
            "daily": {"rem-image": pd.DataFrame({"Dataset": pd.Series([], dtype=object),
                                                 "nexposur": pd.Series([], dtype=int)})},
            "report": {"day": 2},
        }
    frame = training(["a", "b", "d", "e", "f"], [10, 21, 40, 50, np.nan])
    frame.insert(2, "NEWCOL", ["n1", np.nan, np.nan, np.nan, "n5"])
    return {
        "state": {"training": whole(frame)},
        "log": {"mosaics": pd.DataFrame({"Dataset": ["m3"], "imagesize": ["big"]})},
        "daily": {"rem-image": pd.DataFrame({"Dataset": ["r9"], "nexposur": [1]})},
        "report": {"day": 3},
    }


def assert_rows(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Equal content; text reads back as object columns of str (pandas 3 builds `str` columns)."""
    text = [c for c in expected.columns if pd.api.types.is_string_dtype(expected[c].dtype)]
    pd.testing.assert_frame_equal(actual, expected.astype(dict.fromkeys(text, object)))


def write(store: IngestStore, i: int) -> None:
    with store.transaction():
        store.write_day(DAYS[i], **day_inputs(i))


def exported(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.csv"))}


def versions(folder: Path, table: str) -> pd.DataFrame:
    """The stored row versions of a table, read from the closed store's DuckDB file."""
    with duckdb.connect(str(folder / DB_NAME), read_only=True) as con:
        return con.execute(f'SELECT * FROM data."{table}" ORDER BY _added, _pos').df()


def write_days(folder: Path, store_days: list[tuple[str, dict]]) -> None:
    with IngestStore(folder) as store:
        for day, inputs in store_days:
            with store.transaction():
                store.write_day(day, **inputs)


def state_day(frame: pd.DataFrame) -> dict:
    return {"state": {"t": whole(frame)}, "log": {}, "daily": {}, "report": {}}


def log_day(table: str, frame: pd.DataFrame) -> dict:
    return {"state": {}, "log": {table: frame}, "daily": {}, "report": {}}


# --- state tables -----------------------------------------------------------------------------------------------------
def test_state_table_keeps_unchanged_rows_and_versions_only_the_changes(tmp_path):
    with IngestStore(tmp_path) as store:
        write(store, 0)
        write(store, 1)
        day2 = day_inputs(1)["state"]["training"].rows
        assert_rows(store.current("training"), day2)
    assert (tmp_path / "training.csv").read_text() == day2.to_csv(index=False)

    rows = versions(tmp_path, "training")
    added_day2 = rows[rows["_added"] == DAYS[1]]
    assert sorted(added_day2["Dataset"]) == ["b", "e"]  # b changed in place, e appended
    removed = rows[rows["_removed"] == DAYS[1]]
    assert sorted(removed["Dataset"]) == ["b", "c"]
    live = rows[rows["_removed"].isna()].sort_values("_pos")
    assert list(live["Dataset"]) == ["a", "b", "d", "e"]  # the changed b sits where the old b was


def test_state_table_insertions_between_rows_and_repeated_rows(tmp_path):
    contents = [
        training(["a", "b", "b", "c"], [1, 2, 2, 3]),
        training(["z", "a", "n1", "n2", "b", "b", "b", "c", "y"], [0, 1, 7, 8, 2, 2, 2, 3, 9]),
        training(["a", "n2", "b", "c", "y"], [1, 8, 2, 3, 9]),
    ]
    with IngestStore(tmp_path) as store:
        for day, frame in zip(DAYS, contents):
            with store.transaction():
                store.write_day(day, **state_day(frame))
            assert_rows(store.current("t"), frame)
            assert (tmp_path / "t.csv").read_text() == frame.to_csv(index=False)
    rows = versions(tmp_path, "t")
    assert sorted(rows.loc[rows["_added"] == DAYS[1], "Dataset"]) == ["b", "n1", "n2", "y", "z"]
    assert rows.loc[rows["_added"] == DAYS[2]].empty  # the third day only removes rows


def test_a_moved_row_is_the_only_new_version(tmp_path):
    first = training(["a", "b", "c", "d", "e"], [1, 2, 3, 4, 5])
    moved_back = first.iloc[[0, 3, 1, 2, 4]].reset_index(drop=True)  # d sorted in before b
    moved_on = moved_back.iloc[[1, 2, 3, 4, 0]].reset_index(drop=True)  # a after e
    with IngestStore(tmp_path) as store:
        for day, frame in zip(DAYS, [first, moved_back, moved_on]):
            with store.transaction():
                store.write_day(day, **state_day(frame))
            assert_rows(store.current("t"), frame)
            assert (tmp_path / "t.csv").read_text() == frame.to_csv(index=False)
    rows = versions(tmp_path, "t")
    for day, name in zip(DAYS[1:], ["d", "a"]):
        assert rows.loc[rows["_added"] == day, "Dataset"].tolist() == [name]
        assert rows.loc[rows["_removed"] == day, "Dataset"].tolist() == [name]


def test_exhausted_gap_falls_back_to_renumbering(tmp_path):
    names = ["first", "last"]
    with IngestStore(tmp_path) as store:
        for day in pd.date_range("2024-01-01", periods=30).strftime("%Y-%m-%d"):
            names.insert(1, f"n{day}")  # always into the same, ever smaller gap
            frame = training(names, list(range(len(names))))
            with store.transaction():
                store.write_day(day, **state_day(frame))
            assert_rows(store.current("t"), frame)
    rows = versions(tmp_path, "t")
    renumbered_days = rows.groupby("_added")["Dataset"].size().loc[lambda n: n > 1].index
    assert len(renumbered_days) >= 2  # the first day, then at least one renumbering


def sorted_unique(frame: pd.DataFrame) -> pd.DataFrame:
    """The engine's sort of the backlog and the training table: by date, stable, the last row of each key kept."""
    return frame.sort_values("date", kind="stable").drop_duplicates("key", keep="last").reset_index(drop=True)


@pytest.mark.parametrize("seed", range(6))
def test_sort_start_leaves_every_row_before_it_in_place(tmp_path, seed):
    """Days append rows (some late, some repeating a key); on some days the table is sorted and a few recent rows
    updated (their date moves to the day), as the engine does."""
    rng = np.random.default_rng(seed)
    days = pd.date_range("2024-01-01", periods=30).strftime("%Y-%m-%d").tolist()
    table = pd.DataFrame({"key": ["k0"], "date": [days[0]], "v": [0.0]})
    with IngestStore(tmp_path, export=False) as store:
        for i, day in enumerate(days):
            if i:
                start = store.sort_start("t", "date", "key")
                kept = len(table) if start is None else store.rows_before("t", start)
                assert sorted_unique(table).iloc[:kept].equals(table.iloc[:kept]), f"day {i}: rows before {start}"
                if rng.random() < 0.4:  # a sort day: sorted, then a few rows updated in place
                    table = sorted_unique(table)
                    hit = (table["date"] >= days[max(i - 3, 0)]) & (rng.random(len(table)) < 0.3)
                    table.loc[hit, "date"], table.loc[hit, "v"] = day, table.loc[hit, "v"] + 1
            n = int(rng.integers(1, 5))
            keys = np.where(rng.random(n) < 0.2, rng.choice(table["key"], n), [f"k{i}-{j}" for j in range(n)])
            late = np.array(days)[np.maximum(i - rng.integers(0, 6, n) * (rng.random() < 0.5), 0)]
            table = pd.concat([table, pd.DataFrame({"key": keys, "date": np.sort(late), "v": float(i)})],
                              ignore_index=True)
            with store.transaction():
                store.write_day(day, **state_day(table))
            assert_rows(store.current("t"), table)


def keyed(rows: str) -> pd.DataFrame:
    """'a1 b2' -> rows with key a and date ...-01, key b and date ...-02."""
    keys, dates = zip(*((row[:-1], f"2024-01-0{row[-1]}") for row in rows.split()))
    return pd.DataFrame({"key": keys, "date": dates})


@pytest.mark.parametrize(("days", "first_moved"), [
    (["a1 b1 c1", "a1 b2 c1"], "b"),  # b's date updated in place: it moves on
    (["x1 a1 b2 c3", "a1 b2 c3", "a1 b2 c3 e2"], "c"),  # e arrives late: c moves on
    (["x1 a1 b2 c3", "a1 b2 c3", "a1 b2 c3 a3"], "a"),  # a arrives again: the first one goes
])
def test_sort_start_is_the_first_row_the_sort_moves(tmp_path, days, first_moved):
    with IngestStore(tmp_path, export=False) as store:
        for day, rows in zip(DAYS, days):
            with store.transaction():
                store.write_day(day, **state_day(keyed(rows)))
        assert store.sort_start("t", "date", "key") == store.first_positions({"t": "key"}, [first_moved])["t"]


def test_first_positions_of_several_tables_come_from_one_lookup(tmp_path):
    with IngestStore(tmp_path, export=False) as store, store.transaction():
        store.write_day(DAYS[0], state={"t": whole(training(["a", "b", "c"], [1, 2, 3])),
                                        "u": whole(training(["c", "d"], [3, 4]))}, log={}, daily={}, report={})
        columns = {"t": "Dataset", "u": "pname", "never": "Dataset", "t2": "missing"}
        assert store.first_positions(columns, ["C", "c", None]) == {"t": 2.0, "u": 0.0, "never": None, "t2": None}
        assert store.first_positions({"t": "Dataset", "u": "Dataset"}, []) == {"t": None, "u": None}


@pytest.mark.parametrize("widened", [False, True])
def test_a_tail_read_then_written_back_versions_only_its_changed_rows(tmp_path, widened):
    first = training(["a", "b", "c", "d"], [1, 2, 3, 4])
    write_days(tmp_path, [(DAYS[0], state_day(first))])
    with IngestStore(tmp_path) as store, store.transaction():
        tail = store.tail("t", store.first_positions({"t": "Dataset"}, ["b"])["t"])
        rows = tail.rows.assign(imagesize=[2, 30.5, 4] if widened else [2, 30, 4])  # BIGINT widened to DOUBLE
        store.write_day(DAYS[1], state={"t": Tail(tail.start, rows)}, log={}, daily={}, report={})
        assert_rows(store.current("t"), pd.concat([first.iloc[:1], rows], ignore_index=True))
    added = versions(tmp_path, "t").set_index("Dataset")["_added"]
    assert list(added[added == DAYS[1]].index) == ["c"]


# --- columns and types ------------------------------------------------------------------------------------------------
def test_a_tail_is_the_live_rows_from_a_position_on_and_none_has_the_columns_without_rows(tmp_path):
    frame = pd.DataFrame({"k": ["a", "b", "c"], "n": [1, 2, 3], "x": [0.5, 1.5, np.nan], "flag": [True, False, True]})
    write_days(tmp_path, [(DAYS[0], state_day(frame))])
    with IngestStore(tmp_path) as store:
        rows = store.current("t")
        start = store.first_positions({"t": "k"}, ["b"])["t"]
        assert_rows(store.tail("t", start).rows, rows.iloc[1:].reset_index(drop=True))
        empty = store.tail("t", None)
        assert empty.start is None
        pd.testing.assert_frame_equal(empty.rows, rows.iloc[:0], check_index_type=False)
        assert list(empty.rows.dtypes) == [object, np.int64, np.float64, bool]


def test_new_columns_land_after_their_predecessor(tmp_path):
    first = pd.DataFrame({"Dataset": ["m1"], "PROGRAM": ["01234"], "date": ["2024-03-01"]})
    second = pd.DataFrame({"LEAD": ["l"], "Dataset": ["m2"], "PROGRAM": ["05678"], "CHANNEL": ["12"],
                           "BAND": ["SHORT"], "date": ["2024-03-02"], "Tail": [1.5]})
    write_days(tmp_path, [(DAYS[0], log_day("mosaics", first)), (DAYS[1], log_day("mosaics", second))])
    assert (tmp_path / "mosaics.csv").read_text() == (
        "LEAD,Dataset,PROGRAM,CHANNEL,BAND,date,Tail\n"
        ",m1,01234,,,2024-03-01,\n"
        "l,m2,05678,12,SHORT,2024-03-02,1.5\n"
    )


def test_types_widen_and_read_back_as_pandas_would_hold_them(tmp_path):
    days = [
        pd.DataFrame({"n": [1, 2], "flag": [True, False], "x": [1, 2], "s": ["a", "b"]}),
        pd.DataFrame({"n": [2.5, np.nan], "flag": ["maybe", "no"], "x": [3, 4], "s": [np.nan, "c"]}),
    ]
    write_days(tmp_path, [(day, log_day("log", frame)) for day, frame in zip(DAYS, days)])
    with IngestStore(tmp_path) as store:
        current = store.current("log")
    expected = pd.DataFrame({
        "n": [1.0, 2.0, 2.5, np.nan],
        "flag": ["True", "False", "maybe", "no"],
        "x": [1, 2, 3, 4],
        "s": pd.Series(["a", "b", np.nan, "c"], dtype=object),
    }).astype({"flag": object})
    assert_rows(current, expected)
    assert all(isinstance(v, str) for v in current["flag"]) and current["s"].dtype == object
    missing = current["s"].iloc[2]
    assert type(missing) is float and np.isnan(missing)  # np.nan, neither None nor pd.NA
    assert (tmp_path / "log.csv").read_text() == "n,flag,x,s\n1.0,True,1,a\n2.0,False,2,b\n2.5,maybe,3,\n,no,4,c\n"


def test_a_text_column_without_values_is_stored_as_text_and_its_rows_stay_unchanged(tmp_path):
    """DuckDB scans a pandas `str` column holding only missing values as NULL-typed: stored as text all the same."""
    first = pd.DataFrame({"k": [1, 2], "s": pd.Series([np.nan, np.nan], dtype="str")})
    second = pd.DataFrame({"k": [1, 2, 3], "s": pd.Series([np.nan, np.nan, "x"], dtype="str")})
    write_days(tmp_path, [(DAYS[0], state_day(first)), (DAYS[1], state_day(second))])
    with IngestStore(tmp_path) as store:
        assert store.columns("t") == (("k", "BIGINT"), ("s", "VARCHAR"))
    assert versions(tmp_path, "t")[["k", "_added", "_removed"]].values.tolist() == [
        [1, DAYS[0], None], [2, DAYS[0], None], [3, DAYS[1], None]]
    assert (tmp_path / "t.csv").read_text() == "k,s\n1,\n2,\n3,x\n"


def test_object_columns_of_other_values_than_text_keep_their_type_and_rows(tmp_path):
    """Object columns of booleans or numbers (a BOOLEAN column with missing values reads back as one) are typed by
    DuckDB from their values, as flags and numbers rather than text: written back unchanged, no row is re-versioned."""
    frame = pd.DataFrame({"k": [1, 2, 3], "flag": pd.Series([True, np.nan, False], dtype=object),
                          "n": pd.Series([4, 5, np.nan], dtype=object)})
    write_days(tmp_path, [(DAYS[0], state_day(frame))])
    with IngestStore(tmp_path) as store:
        assert store.columns("t") == (("k", "BIGINT"), ("flag", "BOOLEAN"), ("n", "BIGINT"))
        back = store.current("t")
        with store.transaction():
            store.write_day(DAYS[1], **state_day(back))
        assert back["flag"].tolist()[::2] == [True, False] and back["n"].tolist()[:2] == [4.0, 5.0]
    assert versions(tmp_path, "t")[["k", "_added", "_removed"]].values.tolist() == [
        [1, DAYS[0], None], [2, DAYS[0], None], [3, DAYS[0], None]]
    assert (tmp_path / "t.csv").read_text() == "k,flag,n\n1,True,4.0\n2,,5.0\n3,False,\n"


def test_int_column_with_missing_values_reads_back_as_float(tmp_path):
    first = pd.DataFrame({"k": ["a"], "v": [7]})
    second = pd.DataFrame({"k": ["b"]})  # lacks v
    write_days(tmp_path, [(DAYS[0], log_day("log", first)), (DAYS[1], log_day("log", second))])
    with IngestStore(tmp_path) as store:
        values = store.current("log")["v"]
    assert values.dtype == np.float64 and values.iloc[0] == 7 and np.isnan(values.iloc[1])


# --- daily and internal tables ----------------------------------------------------------------------------------------
def test_daily_tables_export_the_latest_day_and_internal_tables_stay_internal(tmp_path):
    with IngestStore(tmp_path) as store:
        write(store, 0)
        assert (tmp_path / "rem-image.csv").read_text() == "Dataset,nexposur\nr1,2\nr2,3\n"
        write(store, 1)  # zero rows for rem-image
        assert (tmp_path / "rem-image.csv").read_text() == "Dataset,nexposur\n"
        with store.transaction():
            store.write_day("2024-03-05", state={}, log={}, daily={}, report={})  # rem-image not given at all
        assert (tmp_path / "rem-image.csv").read_text() == "Dataset,nexposur\n"
        assert_rows(store.daily("rem-image", DAYS[0]), day_inputs(0)["daily"]["rem-image"])
        assert_rows(store.current("_backlog"), day_inputs(0)["state"]["_backlog"].rows)
        assert store.days() == [DAYS[0], DAYS[1], "2024-03-05"]
        assert store.report(DAYS[0]) == {"day": 1, "matched": 4}
        assert store.report("2024-03-04") is None
        assert store.current("nothing").empty and list(store.current("nothing").columns) == []
    assert not (tmp_path / "_backlog.csv").exists()
    assert {p.name for p in tmp_path.glob("*.csv")} == {"training.csv", "ingest.csv", "mosaics.csv",
                                                        "raw-image.csv", "rem-image.csv"}


def test_staged_days_read_back_as_staged_and_stay_when_days_roll_back(tmp_path):
    first = {"_rows": pd.DataFrame({"x": [1, 2], "y": ["a", "b"]}), "_none": pd.DataFrame({"z": []})}
    second = {"_rows": pd.DataFrame({"x": [0.5], "w": ["new"]}), "_none": pd.DataFrame({"z": []})}
    with IngestStore(tmp_path) as store:
        store.stage({DAYS[1]: (second, {"file": "second"})})
        store.stage({DAYS[0]: (first, {"file": "first"})})  # staged later, read back as it was
        write(store, 0)
        with store.transaction():
            store.rollback_from(DAYS[0])
        staged = store.staged(DAYS)
        assert sorted(staged) == list(DAYS[:2])  # the third day was never staged
        meta, frames = staged[DAYS[0]]
        assert meta == {"file": "first"}
        assert_rows(frames["_rows"], first["_rows"])  # x stays integer, w is not a column of that day
        assert list(frames["_none"].columns) == ["z"] and frames["_none"].empty
        assert_rows(staged[DAYS[1]][1]["_rows"], second["_rows"])
        assert_rows(store.staged([DAYS[1]])[DAYS[1]][1]["_rows"], second["_rows"])
        with pytest.raises(ValueError, match="internal"):
            store.stage({DAYS[2]: ({"rows": second["_rows"]}, {})})
    assert not list(tmp_path.glob("*.csv"))  # the day's tables are gone with it; staged ones are never exported


# --- rollback, idempotence, atomicity ---------------------------------------------------------------------------------
def test_days_staged_together_read_back_as_days_staged_one_by_one(tmp_path):
    days = {DAYS[0]: {"_rows": pd.DataFrame({"x": [1, 2], "y": ["a", "b"]})},
            DAYS[1]: {"_rows": pd.DataFrame({"x": [0.5], "w": ["new"]})},  # x widened, w added, y absent
            DAYS[2]: {"_rows": pd.DataFrame({"x": [3, 4, 5], "y": ["c", None, "e"]})}}
    with IngestStore(tmp_path / "alone") as store:
        for day, frames in days.items():
            store.stage({day: (frames, {"file": day})})
        alone = store.staged(DAYS)
    with IngestStore(tmp_path / "together") as store:
        store.stage({DAYS[1]: ({"_rows": days[DAYS[2]]["_rows"]}, {"file": "replaced"})})
        store.stage({day: (frames, {"file": day}) for day, frames in days.items()})
        together = store.staged(DAYS)
    assert list(together) == list(DAYS)
    for day in DAYS:
        assert together[day][0] == alone[day][0] == {"file": day}
        pd.testing.assert_frame_equal(together[day][1]["_rows"], alone[day][1]["_rows"], check_exact=True)
        assert_rows(together[day][1]["_rows"], days[day]["_rows"])


def test_days_staged_alike_read_back_together_each_typed_as_alone(tmp_path):
    days = {DAYS[0]: pd.Series([1, None], dtype=object), DAYS[1]: pd.Series([2, 3]),
            DAYS[2]: pd.Series([None, 4], dtype=object)}  # all three staged as BIGINT
    frames = {day: pd.DataFrame({"n": values, "k": ["a", "b"]}) for day, values in days.items()}
    with IngestStore(tmp_path) as store:
        for day in reversed(DAYS):
            store.stage({day: ({"_rows": frames[day]}, {"file": day})})
        alone = {day: store.staged([day])[day][1]["_rows"] for day in DAYS}
        together = store.staged(DAYS)
    assert list(alone[DAYS[1]]["n"]) == [2, 3] and alone[DAYS[1]]["n"].dtype == np.int64
    assert alone[DAYS[0]]["n"].dtype == np.float64  # a BIGINT column with missing values reads back as floats
    for day in DAYS:
        pd.testing.assert_frame_equal(together[day][1]["_rows"], alone[day], check_exact=True)
        assert together[day][0] == {"file": day}


def test_rollback_and_rewrite_of_a_day_gives_byte_identical_exports(tmp_path):
    with IngestStore(tmp_path) as store:
        for i in range(3):
            write(store, i)
        before = exported(tmp_path)
        for i in (2, 1):  # re-run the last day, then the last two days
            with store.transaction():
                store.rollback_from(DAYS[i])
                for j in range(i, 3):
                    store.write_day(DAYS[j], **day_inputs(j))
            assert exported(tmp_path) == before
        assert store.days() == list(DAYS)


def test_rollback_of_several_days_restores_the_earlier_state(tmp_path):
    with IngestStore(tmp_path) as store:
        write(store, 0)
        after_first = exported(tmp_path)
        write(store, 1)
        write(store, 2)
        with store.transaction():
            store.rollback_from(DAYS[1])
        assert exported(tmp_path) == after_first  # raw-image.csv (new on day 2) is gone again
        assert store.days() == [DAYS[0]]
        assert store.report(DAYS[1]) is None
        write(store, 1)  # the column added and the types widened on day 3 are gone too
        write(store, 2)
    fresh = tmp_path / "fresh"
    write_days(fresh, [(DAYS[i], day_inputs(i)) for i in range(3)])
    assert exported(tmp_path) == exported(fresh)


@pytest.mark.parametrize("kept", [True, False], ids=["lines kept", "lines formatted again"])
def test_days_committed_together_then_rolled_back_into_export_as_days_committed_alone(tmp_path, monkeypatch, kept):
    """Five days in one transaction: a row that lives from day 2 is removed on day 4, an int column gets missing
    values on day 3 (its numbers are written as floats from then on). Rolled back to day 3 and days written again
    otherwise (the row stays, a later row changes), one per transaction, the files equal those of these days
    committed one by one; also when the new rows' text is too long to be kept for the export."""
    first = [["a", "b"], ["a", "b", "c"], ["a", "b", "c"], ["a", "b"], ["a", "b", "d"]]
    again = [*first[:3], ["a", "b", "c", "e"], ["a", "b", "c", "e", "f"], ["a", "b", "c", "e", "f"]]

    def inputs(names: list[str], i: int) -> dict:
        sizes = [30 if (name, i) == ("e", 5) else n for n, name in enumerate(names)]
        mosaics = pd.DataFrame({"Dataset": [f"m{i}"], "n": [i]})
        return {"state": {"t": whole(training(names, sizes))},
                "log": {"mosaics": mosaics if i != 2 else mosaics[["Dataset"]]}, "daily": {}, "report": {}}

    days = [f"2024-03-0{i + 1}" for i in range(6)]
    alone = tmp_path / "alone"
    write_days(alone, [(days[i], inputs(names, i)) for i, names in enumerate(again)])
    if not kept:
        monkeypatch.setattr(store_module, "MAX_KEPT_BYTES", 10)
    out = tmp_path / "out"
    with IngestStore(out) as store:
        with store.transaction():
            for i, names in enumerate(first):
                store.write_day(days[i], **inputs(names, i))
        with store.transaction():
            store.rollback_from(days[2])
        for i in range(2, 6):
            with store.transaction():
                store.write_day(days[i], **inputs(again[i], i))
    assert exported(out) == exported(alone)
    assert (alone / "mosaics.csv").read_text().splitlines()[1:3] == ["m0,0.0", "m1,1.0"]


def test_an_error_inside_a_transaction_changes_nothing(tmp_path):
    with IngestStore(tmp_path) as store:
        write(store, 0)
        write(store, 1)
        files = exported(tmp_path)
        marker = (tmp_path / MARKER_NAME).read_bytes()
        with pytest.raises(RuntimeError, match="boom"), store.transaction():
            store.rollback_from(DAYS[0])
            store.write_day(DAYS[0], **day_inputs(2))
            raise RuntimeError("boom")
        assert store.days() == [DAYS[0], DAYS[1]]
        assert_rows(store.current("training"), day_inputs(1)["state"]["training"].rows)
    assert exported(tmp_path) == files and (tmp_path / MARKER_NAME).read_bytes() == marker
    with IngestStore(tmp_path) as store:  # reopening finds the same committed state and rewrites nothing
        assert store.days() == [DAYS[0], DAYS[1]]
    assert exported(tmp_path) == files


def test_invalid_writes_are_rejected(tmp_path):
    with IngestStore(tmp_path) as store:
        with pytest.raises(RuntimeError, match="transaction"):
            store.write_day(DAYS[0], **day_inputs(0))
        write(store, 0)
        with pytest.raises(ValueError, match="roll back first"), store.transaction():
            store.write_day(DAYS[0], **day_inputs(0))
        with pytest.raises(ValueError, match="state table"), store.transaction():
            store.write_day(DAYS[1], state={}, log={"training": training(["q"], [1])}, daily={}, report={})
        with pytest.raises(ValueError, match="YYYY-MM-DD"), store.transaction():
            store.write_day("2024-3-9", state={}, log={}, daily={}, report={})
        with pytest.raises(TypeError, match="unsupported"), store.transaction():
            store.write_day(DAYS[1], state={}, log={"when": pd.DataFrame({"t": pd.to_datetime(["2024-01-01"])})},
                            daily={}, report={})
        assert store.days() == [DAYS[0]]


# --- processes --------------------------------------------------------------------------------------------------------
CHILD_KILLED_IN_EXPORT = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from ingest_assets.jwst_cal.store import IngestStore
    from ingest_assets_tests.test_jwst_store import write

    real_replace = os.replace

    def replace_then_die(src, dst):
        real_replace(src, dst)
        os.kill(os.getpid(), signal.SIGKILL)

    store = IngestStore(Path(sys.argv[1]))
    os.replace = replace_then_die
    write(store, 1)
""")


def test_a_process_killed_during_the_export_is_rolled_forward(tmp_path):
    out, clean = tmp_path / "out", tmp_path / "clean"
    write_days(out, [(DAYS[0], day_inputs(0))])
    write_days(clean, [(DAYS[i], day_inputs(i)) for i in range(2)])
    after_first = exported(out)

    child = subprocess.run([sys.executable, "-c", CHILD_KILLED_IN_EXPORT, str(out)], cwd=REPO,
                           capture_output=True, text=True, timeout=120, check=False)
    assert child.returncode == -signal.SIGKILL, child.stderr
    partial = exported(out)
    assert partial != after_first and partial != exported(clean)  # killed after some files

    with IngestStore(out) as store:
        assert store.days() == [DAYS[0], DAYS[1]]
    assert exported(out) == exported(clean)
    assert not [p for p in out.iterdir() if p.name.startswith(".jwst-cal-tmp")]


def appending_day(i: int) -> dict:
    """Days that only append rows: to a state table and to a log table."""
    rows = training([f"p{i}{j}" for j in range(3)], [i, i + 1, i + 2])
    return {"state": {"training": Tail(None, rows)}, "log": {"mosaics": rows.drop(columns="pname")}, "daily": {},
            "report": {}}


def test_a_day_that_appends_rows_appends_their_text_to_the_files(tmp_path):
    write_days(tmp_path, [(DAYS[0], appending_day(0))])
    before = {name: (tmp_path / name).stat().st_ino for name in exported(tmp_path)}
    first = exported(tmp_path)
    write_days(tmp_path, [(DAYS[1], appending_day(1))])
    for name, content in exported(tmp_path).items():
        assert (tmp_path / name).stat().st_ino == before[name]  # the same file, written in place
        assert content.startswith(first[name]) and len(content) > len(first[name])
    fresh = tmp_path / "fresh"
    with IngestStore(fresh) as store:
        for day in DAYS[:2]:
            with store.transaction():
                store.write_day(day, **appending_day(DAYS.index(day)))
        assert (tmp_path / "training.csv").read_text() == store.current("training").to_csv(index=False)


def test_a_changed_row_rewrites_the_file_from_that_row_on(tmp_path):
    first = training(["a", "b", "c", "d", "e"], [1, 2, 3, 4, 5])
    changed = training(["a", "b", "c", "d", "e", "f"], [1, 2, 30, 4, 5, 6])
    write_days(tmp_path, [(DAYS[0], state_day(first))])
    inode = (tmp_path / "t.csv").stat().st_ino
    with IngestStore(tmp_path) as store, store.transaction():
        start = store.first_positions({"t": "Dataset"}, ["c"])["t"]
        store.write_day(DAYS[1], state={"t": Tail(start, changed.iloc[2:])}, log={}, daily={}, report={})
    assert (tmp_path / "t.csv").read_text() == changed.to_csv(index=False)
    assert (tmp_path / "t.csv").stat().st_ino == inode
    rows = versions(tmp_path, "t")
    assert rows.loc[rows["_added"] == DAYS[1], "Dataset"].tolist() == ["c", "f"]


CHILD_KILLED_MID_APPEND = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from ingest_assets.jwst_cal import store
    from ingest_assets_tests.test_jwst_store import appending_day

    def write_half_then_die(path, offset, data):
        with path.open("r+b") as handle:
            handle.truncate(offset)
            handle.seek(offset)
            handle.write(data[:len(data) // 2])
        os.kill(os.getpid(), signal.SIGKILL)

    with store.IngestStore(Path(sys.argv[1])) as opened:
        store.rewrite_from = write_half_then_die
        with opened.transaction():
            opened.write_day(sys.argv[2], **appending_day(int(sys.argv[3])))
""")


def test_a_process_killed_in_the_middle_of_an_append_is_rolled_forward(tmp_path):
    out, clean = tmp_path / "out", tmp_path / "clean"
    write_days(out, [(DAYS[0], appending_day(0))])
    write_days(clean, [(DAYS[0], appending_day(0)), (DAYS[1], appending_day(1))])
    before = exported(out)

    child = subprocess.run([sys.executable, "-c", CHILD_KILLED_MID_APPEND, str(out), DAYS[1], "1"], cwd=REPO,
                           capture_output=True, text=True, timeout=120, check=False)
    assert child.returncode == -signal.SIGKILL, child.stderr
    torn = {name: content for name, content in exported(out).items() if content != before[name]}
    assert len(torn) == 1  # the first appended file ends in half a row
    (name, content), = torn.items()
    assert len(before[name]) < len(content) < len(exported(clean)[name]) and exported(clean)[name].startswith(content)

    with IngestStore(out) as store:  # rolled forward: the half row is cut off, the rows appended again
        assert store.days() == [DAYS[0], DAYS[1]]
    assert exported(out) == exported(clean)


CHILD_HOLDING_THE_STORE = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from ingest_assets.jwst_cal.store import IngestStore

    with IngestStore(Path(sys.argv[1])):
        print("open", flush=True)
        time.sleep(float(sys.argv[2]))
""")


def hold_store(folder: Path, seconds: float) -> subprocess.Popen:
    """Another process that holds the store for `seconds`, started once it has it."""
    child = subprocess.Popen([sys.executable, "-c", CHILD_HOLDING_THE_STORE, str(folder), str(seconds)], cwd=REPO,
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "open"
    return child


def test_a_second_process_waits_for_the_store_then_gets_a_clear_error(tmp_path):
    holder = hold_store(tmp_path, 60)
    try:
        with pytest.raises(StoreLockedError, match=r"in use by another process .*waited 0.5 s"):
            IngestStore(tmp_path, lock_timeout=0.5)
    finally:
        holder.kill()
        holder.wait()
    holder = hold_store(tmp_path, 1)  # holds the store for one more second from now
    with IngestStore(tmp_path, lock_timeout=30) as store:  # waits for it instead of failing
        assert store.days() == []
    assert holder.wait() == 0


def test_a_notebook_connection_holding_the_database_is_waited_for_then_named(tmp_path):
    IngestStore(tmp_path).close()
    notebook = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); print('open', flush=True);"
         " time.sleep(60)", str(tmp_path / DB_NAME)], stdout=subprocess.PIPE, text=True)
    try:
        assert notebook.stdout.readline().strip() == "open"
        with pytest.raises(StoreLockedError, match=rf"{DB_NAME} is in use by another process \(waited 0.5 s"):
            IngestStore(tmp_path, lock_timeout=0.5)
    finally:
        notebook.kill()
        notebook.wait()


# --- damaged output folders -------------------------------------------------------------------------------------------
def test_a_deleted_database_is_refused_and_the_exports_are_kept(tmp_path):
    write_days(tmp_path, [(DAYS[0], day_inputs(0))])
    files = exported(tmp_path)
    (tmp_path / DB_NAME).unlink()
    with pytest.raises(StoreMissingError, match=f"no {DB_NAME}"):
        IngestStore(tmp_path)
    assert exported(tmp_path) == files and not (tmp_path / DB_NAME).exists()


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_a_corrupt_database_is_refused_and_nothing_changes(tmp_path, damage):
    write_days(tmp_path, [(DAYS[0], day_inputs(0))])
    files, db = exported(tmp_path), tmp_path / DB_NAME
    db.write_bytes({"truncated": db.read_bytes()[:100], "garbage": b"not a database\n" * 500, "empty": b""}[damage])
    damaged = db.read_bytes()
    with pytest.raises(StoreCorruptError, match=f"{DB_NAME} is not a readable DuckDB database"):
        IngestStore(tmp_path)
    assert exported(tmp_path) == files and db.read_bytes() == damaged


def test_exports_get_the_mode_of_a_plain_write(tmp_path):
    previous = os.umask(0o022)
    try:
        write_days(tmp_path, [(DAYS[0], day_inputs(0))])
    finally:
        os.umask(previous)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir() if p.suffix == ".csv"}
    assert modes and set(modes.values()) == {0o644}, modes
    assert stat.S_IMODE((tmp_path / MARKER_NAME).stat().st_mode) == 0o644


def test_a_failed_export_says_the_day_is_committed_and_is_completed_later(tmp_path):
    clean = tmp_path / "clean"
    write_days(clean, [(DAYS[i], day_inputs(i)) for i in range(2)])
    out = tmp_path / "out"
    write_days(out, [(DAYS[0], day_inputs(0))])
    (out / "training.csv").unlink()
    (out / "training.csv").mkdir()  # an export that cannot be written
    with IngestStore(out) as store:
        with pytest.raises(ExportIncompleteError, match="the day is committed .* completed the next time"):
            write(store, 1)
        assert store.days() == [DAYS[0], DAYS[1]]
    with pytest.raises(StoreError, match="export of the last committed day could not be completed: .*training.csv"):
        IngestStore(out)
    (out / "training.csv").rmdir()
    IngestStore(out).close()
    assert exported(out) == exported(clean)


CHILD_WIDENING = textwrap.dedent("""
    import math, resource, sys
    from pathlib import Path
    import pandas as pd
    from ingest_assets.jwst_cal.store import IngestStore, Tail

    base = pd.DataFrame({"Dataset": [f"d{i}" for i in range(40)], "imagesize": 1.0})
    wide = pd.concat([base, pd.DataFrame({f"X{i}": ["v"] * 40 for i in range(2000)})], axis=1)
    with IngestStore(Path(sys.argv[1])) as store:
        for day, frame in (("2024-03-01", base), ("2024-03-02", wide)):
            with store.transaction():
                store.write_day(day, state={"training": Tail(-math.inf, frame)}, log={"level1": frame}, daily={},
                                report={})
        with store.transaction():
            store.rollback_from("2024-03-02")
        assert list(store.current("training").columns) == ["Dataset", "imagesize"]
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
""")


def test_two_thousand_new_columns_need_memory_in_proportion_to_the_data(tmp_path):
    child = subprocess.run([sys.executable, "-c", CHILD_WIDENING, str(tmp_path)], cwd=REPO, capture_output=True,
                           text=True, timeout=300, check=False)
    assert child.returncode == 0, child.stderr
    assert int(child.stdout) < 1024, f"peak RSS {child.stdout.strip()} MiB"
