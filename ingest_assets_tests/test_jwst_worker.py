"""A range of days ingested in a worker process: the same days and files as in the caller's process, no day
committed before its caller took the days sent before it, failures raised as they were, a killed worker named."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import replace
from pathlib import Path

import pytest

from ingest_assets.jwst_cal.pipeline import open_store
from ingest_assets.jwst_cal.ranges import CommittedDay, RangeRequest, StagedDay, ingest_range
from ingest_assets.jwst_cal.store import StoreLockedError, lock_folder
from ingest_assets.jwst_cal.worker import WorkerError, ingest_in_worker

from .jwst_rows import l1, l3, write_drop

DAYS = ("2025-06-01", "2025-06-02", "2025-06-03", "2025-06-04", "2025-06-05")


def product(obs: str, filt: str) -> list[dict]:
    exposures = [l1(f"jw01234{obs}001_02101_0000{i}_nrca{i}", CRVAL1=10 + i * 1e-4, DETECTOR=f"NRCA{i}",
                    OBSERVTN=obs, FILTER=filt, PUPIL="NONE") for i in (1, 2, 3)]
    return exposures + [l3(f"jw01234-o{obs}_t001_nircam_{filt.lower()}", 1e6, OBSERVTN=obs, FILTER=filt,
                           PUPIL="NONE")]


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    """Five days: products on four, and no drop on 2025-06-04."""
    for n, day in enumerate(DAYS):
        if day != "2025-06-04":
            write_drop(tmp_path / "inbox", day, product(f"00{n}", "F200W") + product(f"01{n}", "F150W"))
    return tmp_path / "inbox"


def request(inbox: Path, out: Path, **settings) -> RangeRequest:
    return RangeRequest(inbox, out, DAYS, save_l1=True, **settings)


def untimed(item: StagedDay | CommittedDay) -> tuple:
    """What a caller records of an item, but its seconds (and problems by their message)."""
    if isinstance(item, StagedDay):
        return replace(item, seconds=0.0, problems=()), [str(problem) for problem in item.problems]
    return replace(item, seconds=0.0), []


def csv_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.csv"))}


def worker_pid() -> int:
    """The worker process this test's process started."""
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        for pid in (task / "children").read_text().split():
            if b"ingest_assets.jwst_cal.worker" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return int(pid)
    raise AssertionError("no worker process")


def test_a_range_in_the_worker_yields_and_writes_what_it_does_in_process(inbox: Path, tmp_path: Path):
    alone = [untimed(item) for item in ingest_range(request(inbox, tmp_path / "alone"))]
    ahead = [untimed(item) for item in ingest_in_worker(request(inbox, tmp_path / "ahead", group_seconds=10.0))]
    assert ahead == alone
    assert [item.day for item, _ in ahead] == [*DAYS, "2025-06-01", "2025-06-02", "2025-06-03", "2025-06-05"]
    assert ahead[3][1] == [f"2025-06-04_155.csv: no such drop in {inbox}"]
    assert csv_files(tmp_path / "ahead") == csv_files(tmp_path / "alone") != {}


def test_the_worker_commits_no_day_before_its_caller_took_the_days_sent_before(inbox: Path, tmp_path: Path):
    items = ingest_in_worker(request(inbox, tmp_path / "out"))  # each day its own transaction
    taken = [next(items) for _ in range(len(DAYS) + 1)]
    assert isinstance(taken[-1], CommittedDay) and taken[-1].day == "2025-06-01"
    time.sleep(3)  # the worker ingests the next days in a fraction of this, but must not commit them
    items.close()  # the caller stops, as an interrupted step does
    with open_store(tmp_path / "out") as store:
        assert store.days() == ["2025-06-01"]
    list(ingest_in_worker(request(inbox, tmp_path / "out")))
    list(ingest_range(request(inbox, tmp_path / "straight")))
    assert csv_files(tmp_path / "out") == csv_files(tmp_path / "straight")


def test_a_failure_in_the_worker_is_raised_as_it_is_in_process(inbox: Path, tmp_path: Path):
    out = tmp_path / "out"
    out.mkdir()
    lock = lock_folder(out, 0)  # another ingest holds the output folder
    try:
        with pytest.raises(StoreLockedError) as alone:
            list(ingest_range(request(inbox, out, lock_timeout=0)))
        with pytest.raises(StoreLockedError) as ahead:
            list(ingest_in_worker(request(inbox, out, lock_timeout=0)))
    finally:
        os.close(lock)
    assert str(ahead.value) == str(alone.value)


def test_a_killed_worker_fails_the_range_in_one_line_and_loses_no_committed_day(inbox: Path, tmp_path: Path):
    items = ingest_in_worker(request(inbox, tmp_path / "out"))
    taken = [next(items) for _ in range(len(DAYS) + 1)]
    os.kill(worker_pid(), signal.SIGKILL)
    with pytest.raises(WorkerError, match="^the ingest's worker process was killed by SIGKILL before the end of "
                                          "its range$"):
        next(items)
    with open_store(tmp_path / "out") as store:
        assert store.days() == [taken[-1].day]
    assert [item.day for item in ingest_in_worker(request(inbox, tmp_path / "out"))][-1] == "2025-06-05"
