"""The pipeline on a real output database: state kept between days, staging and commits, replay, codes persisted
(D12, D14, D16), a day reading only what it can change, incremental exports equal to whole ones."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from ingest_assets.jwst_cal.day import STATE_TABLES, DayReport
from ingest_assets.jwst_cal.drops import DropError
from ingest_assets.jwst_cal.pipeline import commit_staged, ingest_drop, open_store, scrub_file, stage
from ingest_assets.jwst_cal.store import MARKER_NAME, IngestStore

from .golden import golden_days
from .jwst_rows import l1, l3, write_drop


def group(prefix: str, obs: str, **values) -> list[dict]:
    return [l1(f"{prefix}_0000{i}_nrca{i}", CRVAL1=10 + i * 1e-4, DETECTOR=f"NRCA{i}", OBSERVTN=obs, **values)
            for i in (1, 2, 3)]


def product(obs: str, filt: str) -> list[dict]:
    return group(f"jw01234{obs}001_02101", obs, FILTER=filt, PUPIL="NONE") + [
        l3(f"jw01234-o{obs}_t001_nircam_{filt.lower()}", 1e6, OBSERVTN=obs, FILTER=filt, PUPIL="NONE")]


def test_codes_and_state_survive_the_database_and_replays(tmp_path: Path):
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    drops = [
        write_drop(inbox, "2025-06-01", [{**l1("jw01234001001_02101_00001_nrca1"), "DagNodeName": "LEVEL_2"}]),
        write_drop(inbox, "2025-06-02", product("001", "F200W")),
        write_drop(inbox, "2025-06-03", product("002", "F999X")),
        write_drop(inbox, "2025-06-04", product("003", "F998X") + product("004", "F999X")),
    ]
    reports = [ingest_drop(d, out).report for d in drops]
    assert reports[0].l3_total == 0 and all(r.match_rate == 1.0 for r in reports)
    files = {p.name: p.read_bytes() for p in out.glob("*.csv")}
    assert files["category_codes.csv"].decode().splitlines() == ["column,value,code", "filter,F999X,52",
                                                                 "filter,F998X,53"]
    train = files["train-image.csv"].decode().splitlines()
    assert [line.split(",")[4] for line in train[1:]] == ["23", "52", "53", "52"]

    ingest_drop(drops[0], out)  # re-ingesting the first day replays the three later ones
    assert {p.name: p.read_bytes() for p in out.glob("*.csv")} == files
    with IngestStore(out) as store:
        assert store.days() == ["2025-06-01", "2025-06-02", "2025-06-03", "2025-06-04"]


def repro(obs: str, filt: str, size: float) -> list[dict]:
    return [l3(f"jw01234-o{obs}_t001_nircam_{filt.lower()}", size, OBSERVTN=obs, FILTER=filt, PUPIL="NONE")]


def csv_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.csv"))}


def test_a_day_reads_only_the_rows_it_can_change(tmp_path: Path, monkeypatch):
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    days = [f"2025-06-{d:02d}" for d in range(1, 13)]
    rows = {day: product(f"{i:03d}", "F200W") for i, day in enumerate(days, start=1)}
    rows[days[5]] = repro("005", "F200W", 2e6)  # day 6 reprocesses day 5's product
    rows[days[11]] = repro("011", "F200W", 3e6)  # day 12 reprocesses day 11's product
    drops = [write_drop(inbox, day, rows[day]) for day in days]
    for drop in drops[:-1]:
        ingest_drop(drop, out)

    read: dict[str, int] = {}
    tail, current = IngestStore.tail, IngestStore.current

    def counted_tail(store, table, start):
        result = tail(store, table, start)
        read[table] = read.get(table, 0) + len(result.rows)
        return result

    def no_whole_state_table(store, table):
        assert table not in STATE_TABLES, f"{table} read whole"
        return current(store, table)

    monkeypatch.setattr(IngestStore, "tail", counted_tail)
    monkeypatch.setattr(IngestStore, "current", no_whole_state_table)
    outcome = ingest_drop(drops[-1], out)
    assert outcome.report.reprocessed == ("jw01234-o011_t001_nircam_f200w",)
    assert outcome.report.training_rows == 10
    assert read["train-image"] == 1  # the reprocessed product's row
    assert 0 < read["training"] < 10 and read["ingest"] == 0  # not the products settled before day 6
    monkeypatch.undo()
    assert_whole_exports(out, "the last day")


def commit_days(days: list[str], out: Path, *, save_l1: bool = False) -> list:
    """Commit staged days in one visit of the store; the outcomes it yielded."""
    with open_store(out) as store:
        return list(commit_staged(store, days, save_l1=save_l1))


def assert_whole_exports(out: Path, when: str) -> None:
    """Every exported file equals its table exported whole."""
    with IngestStore(out) as store:
        for table in json.loads((out / MARKER_NAME).read_text())["tables"]:
            whole = store.current(table).to_csv(index=False).encode()
            assert (out / f"{table}.csv").read_bytes() == whole, f"{table}.csv after {when}"


@pytest.mark.parametrize("set_name", [
    "small-s2", pytest.param("week-s3", marks=pytest.mark.slow)])
def test_incremental_exports_equal_whole_exports_and_replays_change_no_byte(tmp_path: Path, set_name: str):
    days, out = golden_days(set_name), tmp_path / "out"
    for day in days:
        ingest_drop(day.drop, out, save_l1=True)
        assert_whole_exports(out, day.date)
    files = csv_files(out)
    outcomes = commit_days([days[1].date], out, save_l1=True)  # re-ingest day 2: days 3.. are replayed
    assert [o.day for o in outcomes] == [day.date for day in days[1:]]
    assert csv_files(out) == files


def test_staged_days_commit_later_in_date_order_with_their_recorded_save_l1(tmp_path: Path):
    days, out, per_day = golden_days("small-s2"), tmp_path / "out", tmp_path / "per-day"
    for day in days:
        ingest_drop(day.drop, per_day, save_l1=day.date != days[1].date)
    with open_store(out) as store:
        for day in reversed(days):  # staged out of order
            stage(store, [scrub_file(day.drop)])
    assert not csv_files(out)

    assert [o.day for o in commit_days([days[0].date], out, save_l1=True)] == [days[0].date]
    assert [o.day for o in commit_days([days[1].date], out, save_l1=False)] == [days[1].date]
    rest = commit_days([d.date for d in reversed(days[2:])], out, save_l1=True)
    assert [o.day for o in rest] == [d.date for d in days[2:]]
    replayed = commit_days([days[0].date], out, save_l1=True)  # day 2 replays with save_l1 off, as ingested
    assert [o.day for o in replayed] == [d.date for d in days]
    assert csv_files(out) == csv_files(per_day)
    with IngestStore(out) as store:
        assert [DayReport.from_dict(store.report(d.date)) for d in days] == [o.report for o in replayed]
        assert [store.report(d.date)["save_l1"] for d in days] == [d.date != days[1].date for d in days]


def test_each_committed_day_is_exported_before_the_next_is_ingested(tmp_path: Path):
    days, out, per_day = golden_days("small-s2"), tmp_path / "out", tmp_path / "per-day"
    after = []
    for day in days:
        ingest_drop(day.drop, per_day, save_l1=True)
        after.append(csv_files(per_day))
    with open_store(out) as store:
        for day in days:
            stage(store, [scrub_file(day.drop)])
        commits = commit_staged(store, [day.date for day in days], save_l1=True)
        for i, outcome in enumerate(commits):
            assert outcome.day == days[i].date
            assert store.days() == [day.date for day in days[:i + 1]]
            assert csv_files(out) == after[i], f"the outputs as the day {outcome.day} is yielded"


def test_days_committed_in_one_group_equal_days_committed_alone(tmp_path: Path):
    days, out, per_day = golden_days("small-s2"), tmp_path / "out", tmp_path / "per-day"
    reports = [ingest_drop(day.drop, per_day, save_l1=True).report for day in days]
    with open_store(out) as store:
        for day in days:
            stage(store, [scrub_file(day.drop)])
        for outcome in commit_staged(store, [day.date for day in days], save_l1=True, group_seconds=math.inf):
            assert store.days() == [day.date for day in days]  # yielded once the whole group is committed
            assert csv_files(out) == csv_files(per_day)
            assert outcome.report == reports[[day.date for day in days].index(outcome.day)]


def test_a_failing_day_ends_its_group_after_committing_the_days_before_it(tmp_path: Path):
    inbox, out, alone = tmp_path / "inbox", tmp_path / "out", tmp_path / "alone"
    bad = [{**row, "CHANNEL": "MIDDLE"} if row["DagNodeName"] == "LEVEL_1" else row for row in product("003", "F200W")]
    drops = [write_drop(inbox, "2025-06-01", product("001", "F200W")),
             write_drop(inbox, "2025-06-02", product("002", "F150W")),
             write_drop(inbox, "2025-06-03", bad), write_drop(inbox, "2025-06-04", product("004", "F200W"))]
    for drop in drops[:2]:
        ingest_drop(drop, alone)
    committed = []
    with open_store(out) as store:
        for drop in drops:
            stage(store, [scrub_file(drop)])
        failure = f"{drops[2].name}: exposure jw01234003001_02101_00001_nrca1: no pixel scale"
        with pytest.raises(DropError, match=failure):
            for outcome in commit_staged(store, ["2025-06-01", "2025-06-02", "2025-06-03", "2025-06-04"],
                                         group_seconds=math.inf):
                committed.append(outcome.day)
        assert committed == store.days() == ["2025-06-01", "2025-06-02"]
    assert csv_files(out) == csv_files(alone)


def test_committing_a_day_that_is_not_staged_changes_nothing(tmp_path: Path):
    days, out = golden_days("small-s2"), tmp_path / "out"
    ingest_drop(days[0].drop, out)
    files = csv_files(out)
    with pytest.raises(ValueError, match=f"{days[1].date} is not staged"):
        commit_days([days[1].date], out)
    with IngestStore(out) as store:
        assert store.days() == [days[0].date]
    assert csv_files(out) == files
