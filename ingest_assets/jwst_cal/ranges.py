"""Ingest a range of days from an inbox: stage every drop, then commit the staged days in date order.

`ingest_range` yields what a caller records of each day, as it happens: `StagedDay` for each drop read, checked and
(when valid) staged, then `CommittedDay` for each day committed. Both are small and picklable, so the same
generator also runs in a worker process (`worker.ingest_in_worker`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .day import DayOutcome, DayReport
from .drops import DropError, DropOddity
from .pipeline import DropRead, commit_staged, open_store, read_inbox_day, stage
from .scrub import ScrubCounts
from .store import DEFAULT_LOCK_TIMEOUT

STAGED_TOGETHER = 8  # days read, then staged in one transaction


@dataclass(frozen=True)
class RangeRequest:
    """Days to ingest from `inbox` into the store in `output`; `commit`: also commit them (else only stage)."""

    inbox: Path
    output: Path
    days: tuple[str, ...]
    commit: bool = True
    save_l1: bool = False
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    group_seconds: float = 0.0  # days committed and exported together for about this long (0: each day alone)


@dataclass(frozen=True)
class StagedDay:
    """A day's drop read and checked: its problems (nothing of it is staged), the oddities accepted in it, its
    number of columns, its scrubbed rows' counts when staged, and the seconds its read and staging took."""

    day: str
    path: Path
    problems: tuple[DropError, ...]
    oddities: tuple[DropOddity, ...]
    columns: int
    counts: ScrubCounts | None
    seconds: float

    @classmethod
    def of(cls, read: DropRead, seconds: float) -> StagedDay:
        counts = read.scrubbed.counts() if read.scrubbed is not None else None
        return cls(read.day, read.path, tuple(read.problems), tuple(read.oddities), read.columns, counts, seconds)


@dataclass(frozen=True)
class CommittedDay:
    """A day committed and exported: its report, the rows it added to each train table, the drop day of the oldest
    exposure left in the backlog, the seconds its commit took, and the columns (name, stored type) of each table it
    wrote."""

    day: str
    report: DayReport
    train_rows_added: dict[str, int]
    backlog_since: str | None
    seconds: float
    columns: dict[str, tuple[tuple[str, str], ...]]

    @classmethod
    def of(cls, outcome: DayOutcome) -> CommittedDay:
        return cls(outcome.day, outcome.report, {table: len(rows) for table, rows in outcome.train_rows.items()},
                   outcome.backlog_since, outcome.seconds, outcome.columns)


def ingest_range(request: RangeRequest, *, before_commit: Callable[[], None] = lambda: None
                 ) -> Iterator[StagedDay | CommittedDay]:
    """Read and stage each day (STAGED_TOGETHER days per transaction), then (`request.commit`) commit the valid
    ones (`commit_staged`, which calls `before_commit` before each of its commits). The store is held throughout.
    A day's seconds are its read and its share of its days' staging."""
    with open_store(request.output, lock_timeout=request.lock_timeout) as store:
        days, valid = request.days, []
        for first in range(0, len(days), STAGED_TOGETHER):
            reads = []
            for day in days[first:first + STAGED_TOGETHER]:
                start = time.perf_counter()
                reads.append((read_inbox_day(request.inbox, day), time.perf_counter() - start))
            start, scrubbed = time.perf_counter(), [read.scrubbed for read, _ in reads if read.scrubbed is not None]
            if scrubbed:
                stage(store, scrubbed)
            share = (time.perf_counter() - start) / max(len(scrubbed), 1)
            for read, seconds in reads:
                valid += [read.day] if read.scrubbed is not None else []
                yield StagedDay.of(read, seconds + (share if read.scrubbed is not None else 0.0))
        if request.commit:
            for outcome in commit_staged(store, valid, save_l1=request.save_l1, group_seconds=request.group_seconds,
                                         before_commit=before_commit):
                yield CommittedDay.of(outcome)
