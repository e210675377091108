"""Ingest days into an output database: scrub a drop, stage its rows, then commit staged days one transaction each.

A day reads only what it can change: the backlog rows its L3 products pull back, the training and train rows of
the products it can reprocess, and everything after the first of those (with, for the two tables the engine sorts
by date, every row that sort can move). It writes only the difference, and the export rewrites only the end of the
files from the first changed row.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from .day import (
    CODES_TABLE, TRAIN_TABLES, DayOutcome, DayReport, DayTables, ingest_day, l3_params, working_l3_names,
)
from .drops import (
    OUTPUT_NAMES, DropError, DropOddity, drop_date, drop_file_name, drop_name_problem, drop_oddities, drop_problems,
    read_drop_text, type_drop,
)
from .features import IngestError
from .scrub import ScrubbedDrop, scrub_drop
from .store import (
    DB_NAME, DEFAULT_LOCK_TIMEOUT, ExportIncompleteError, IngestStore, StoreError, StoreMissingError, Tail,
    lock_folder,
)

REBUILD_DIR = ".jwst-cal-rebuild"
STAGED_SCIENCE, STAGED_MOSAICS = "_science", "_mosaics"
STAGED_READ = 8  # staged days read back together


@dataclass(frozen=True)
class DropRead:
    """A drop file read and checked once: its problems (bad input: nothing of it is ingested), the oddities accepted
    in it, the number of its columns, and its scrubbed rows when it has no problem."""

    path: Path
    problems: list[DropError]
    oddities: list[DropOddity] = field(default_factory=list)
    scrubbed: ScrubbedDrop | None = None
    columns: int = 0

    @property
    def day(self) -> str:
        return self.path.name.split("_")[0]


def read_day(path: Path) -> DropRead:
    """Read, check and (when it has no problem) scrub one drop file, reading it once."""
    path = Path(path)
    day = drop_date(path.name)
    if day is None:
        return DropRead(path, [DropError(path, None, None, drop_name_problem(path.name) or "not a drop file")])
    try:
        text = read_drop_text(path)
    except DropError as err:
        return DropRead(path, [err])
    columns, oddities = len(text.cells.columns), drop_oddities(text)
    problems = drop_problems(text)
    if problems:
        return DropRead(path, problems, oddities, None, columns)
    return DropRead(path, [], oddities, scrub_drop(type_drop(text), day, path.name), columns)


def read_inbox_day(inbox: Path, day: str) -> DropRead:
    """Read, check and scrub the day's drop in `inbox`; a missing drop is its problem."""
    path = Path(inbox) / drop_file_name(day)
    if not path.is_file():
        return DropRead(path, [DropError(path, None, None, f"no such drop in {inbox}")])
    return read_day(path)


def scrub_file(path: Path) -> ScrubbedDrop:
    """Read and scrub one drop file; a bad name or content raises DropError (its first problem)."""
    read = read_day(path)
    if read.problems:
        raise read.problems[0]
    return read.scrubbed


def open_store(output_dir: Path, *, lock_timeout: float = DEFAULT_LOCK_TIMEOUT, export: bool = True) -> IngestStore:
    """The output folder's store; refused when the folder holds ingest outputs but no database (never overwritten)."""
    output_dir = Path(output_dir)
    if not (output_dir / DB_NAME).exists():
        found = sorted(name for name in OUTPUT_NAMES if (output_dir / name).exists())
        if found:
            raise StoreMissingError(
                f"{output_dir} holds {', '.join(found[:3])}{' ...' if len(found) > 3 else ''} but no {DB_NAME}: "
                "the database was deleted or moved, or these files come from another tool")
    return IngestStore(output_dir, lock_timeout=lock_timeout, export=export)


def ingest_scrubbed(scrubbed: ScrubbedDrop, output_dir: Path, *, save_l1: bool = False,
                    lock_timeout: float = DEFAULT_LOCK_TIMEOUT, export: bool = True) -> DayOutcome:
    """Stage and commit one scrubbed day in one visit of the store (the spacekit-equivalent of one run on one day).

    Bad input raises DropError naming the file, also for values found unusable during the day's ingest.
    """
    with open_store(output_dir, lock_timeout=lock_timeout, export=export) as store:
        stage(store, [scrubbed])
        outcomes = list(commit_staged(store, [scrubbed.day], save_l1=save_l1))
    return next(outcome for outcome in outcomes if outcome.day == scrubbed.day)


def ingest_drop(path: Path, output_dir: Path, *, save_l1: bool = False,
                lock_timeout: float = DEFAULT_LOCK_TIMEOUT, export: bool = True) -> DayOutcome:
    """Read, scrub, stage and commit one drop file; bad input raises DropError."""
    return ingest_scrubbed(scrub_file(path), output_dir, save_l1=save_l1, lock_timeout=lock_timeout, export=export)


def rebuild_store(drops: Iterable[Path], output_dir: Path, *, save_l1: bool = False,
                  lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
                  on_day: Callable[[Path, DayOutcome], None] = lambda path, outcome: None) -> None:
    """Rebuild OUTPUT_DIR's database from the drops, in date order, then swap it in and export it.

    The new database is built aside in OUTPUT_DIR/.jwst-cal-rebuild while OUTPUT_DIR stays locked; any failure
    there leaves OUTPUT_DIR as it was. The swap is one rename of the database file; the CSV files follow it (an
    export that fails then raises ExportIncompleteError and is completed when the store is next opened).
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    aside = output_dir / REBUILD_DIR
    lock = lock_folder(output_dir, lock_timeout)
    try:
        shutil.rmtree(aside, ignore_errors=True)
        for path in sorted(drops, key=lambda p: p.name):
            on_day(path, ingest_drop(path, aside, save_l1=save_l1, export=False))
        (output_dir / f"{DB_NAME}.wal").unlink(missing_ok=True)
        os.replace(aside / DB_NAME, output_dir / DB_NAME)
    finally:
        shutil.rmtree(aside, ignore_errors=True)
        os.close(lock)
    try:
        IngestStore(output_dir, lock_timeout=lock_timeout).close()  # exports the rebuilt tables
    except StoreError as err:
        raise ExportIncompleteError(
            f"the rebuilt database is in place in {output_dir}, but {err}; the export is completed the next time "
            "this output folder is ingested into") from err


def stage(store: IngestStore, drops: Sequence[ScrubbedDrop]) -> None:
    """Store (replace) days' scrubbed rows in the store's staging area, for `commit_staged` to ingest.

    Staging is its own transaction, is never exported and is not undone when days are rolled back: a replay of a
    day reads these rows.
    """
    store.stage({drop.day: ({STAGED_SCIENCE: drop.science, STAGED_MOSAICS: drop.mosaics},
                            {"file": drop.file, "rows_read": drop.rows_read, "mrs_ch24_dropped": drop.mrs_ch24_dropped})
                 for drop in drops})


def commit_staged(store: IngestStore, days: list[str], *, save_l1: bool = False, group_seconds: float = 0.0,
                  before_commit: Callable[[], None] = lambda: None) -> Iterator[DayOutcome]:
    """Ingest staged days in date order; yields each day's outcome once it is committed and exported (D8).

    Days after the last ingested one are committed in groups: each group is one transaction, closed as soon as its
    days took `group_seconds` (0: each day alone), then exported. A day whose values the engine cannot ingest ends
    its group: the days before it are committed, then a DropError naming its file is raised (a failure of the store
    rolls the whole group back, its days stay staged). A day not after the last ingested one replaces that
    day's contribution (D14): the days from it on are rolled back and ingested again from their staged rows, later
    ones with the `save_l1` they were ingested with, all in one transaction, so the outputs always equal a run of
    every day in date order. Yields the outcome of every day written, requested or replayed, in date order.
    `before_commit` is called before each transaction commits (an exception from it rolls the transaction back).
    """
    requested = sorted(set(days))
    if unstaged := sorted(set(requested) - set(store.staged_days())):
        raise ValueError(f"{_named(unstaged)} not staged in {store.output_dir}: stage their scrubbed rows first")
    replayed = [day for day in store.days() if requested and day >= requested[0]]
    flags = {day: DayReport.from_dict(store.report(day)).save_l1 for day in replayed}
    flags |= dict.fromkeys(requested, save_l1)
    if replayed:
        again = sorted(set(replayed) | {day for day in requested if day <= replayed[-1]})
        with store.transaction():
            store.rollback_from(again[0])
            outcomes = [_ingest_one(store, drop, flags[drop.day]) for drop in _staged_drops(store, again)]
            before_commit()
        yield from outcomes
    new = [day for day in requested if not replayed or day > replayed[-1]]
    drops, left = _staged_drops(store, new), len(new)
    while left:
        left -= len((yield from _commit_group(store, drops, save_l1, group_seconds, before_commit)))


def _commit_group(store: IngestStore, drops: Iterator[ScrubbedDrop], save_l1: bool, group_seconds: float,
                  before_commit: Callable[[], None]) -> Generator[DayOutcome, None, list[DayOutcome]]:
    """Commit the next days of `drops` in one transaction, until they took `group_seconds`; yields and returns their
    outcomes. When a day's values cannot be ingested, the days before it are committed on their own, then its
    DropError is raised."""
    start, done, outcomes = time.perf_counter(), [], []
    try:
        with store.transaction():
            for drop in drops:
                done.append(drop)
                outcomes.append(_ingest_one(store, drop, save_l1))
                if time.perf_counter() - start >= group_seconds:
                    break
            before_commit()
    except DropError:
        if outcomes:  # the group was rolled back with the failing day: commit the days before it alone
            with store.transaction():
                outcomes = [_ingest_one(store, drop, save_l1) for drop in done[:len(outcomes)]]
                before_commit()
            yield from outcomes
        raise
    yield from outcomes
    return outcomes


def _named(days: list[str]) -> str:
    return ", ".join(days[:3]) + (" ..." if len(days) > 3 else "") + (" is" if len(days) == 1 else " are")


def _staged_drops(store: IngestStore, days: list[str]) -> Iterator[ScrubbedDrop]:
    """The staged days, in order, read STAGED_READ days at a time."""
    for first in range(0, len(days), STAGED_READ):
        staged = store.staged(days[first:first + STAGED_READ])
        for day in days[first:first + STAGED_READ]:
            meta, frames = staged[day]
            yield ScrubbedDrop(day=day, file=meta["file"], rows_read=meta["rows_read"],
                               science=frames[STAGED_SCIENCE], mosaics=frames[STAGED_MOSAICS],
                               mrs_ch24_dropped=meta["mrs_ch24_dropped"])


def _ingest_one(store: IngestStore, scrubbed: ScrubbedDrop, save_l1: bool) -> DayOutcome:
    """Ingest one day inside the open transaction: read the tails it can change, write what it changed."""
    start = time.perf_counter()
    backlog = _tails(store, {"ingest": "params"}, l3_params(scrubbed.science), sorted_by={"ingest": "dname"})["ingest"]
    names = working_l3_names(scrubbed.science, backlog.rows)
    tails = {"ingest": backlog} | _tails(store, {"training": "Dataset"} | dict.fromkeys(TRAIN_TABLES, "pname"), names,
                                         sorted_by={"training": "pname"})
    tables = DayTables(
        tails={table: tail.rows for table, tail in tails.items()}, codes=store.current(CODES_TABLE),
        rows_before={table: store.rows_before(table, tails[table].start) for table in ("ingest", "training")},
    )
    try:
        result = ingest_day(scrubbed, tables, save_l1=save_l1)
    except IngestError as err:
        raise DropError(Path(scrubbed.file), None, None, str(err)) from err
    state = {table: Tail(tails[table].start, rows) for table, rows in result.tails.items()}
    store.write_day(scrubbed.day, state=state, log=result.log, daily=result.daily,
                    report=asdict(result.outcome.report))
    written = [*result.tails, *result.log, *result.daily]
    return replace(result.outcome, backlog_since=store.oldest("ingest", "date"), seconds=time.perf_counter() - start,
                   columns={table: store.columns(table) for table in written})


def _tails(store: IngestStore, columns: dict[str, str], values, *, sorted_by: dict[str, str]) -> dict[str, Tail]:
    """The tail of each state table (`columns`: table -> column) a day can change: from its first row whose column
    is in `values` (when none is, no row: the day only appends). The engine changes the backlog and the training
    table only on days it pulls or reprocesses such a row, and then sorts the table by date, keeping the last row of
    each `sorted_by[table]`: their tail also starts at the first row that sort can move.
    """
    starts = store.first_positions(columns, values)
    for table, unique in sorted_by.items():
        if starts[table] is not None:
            moved = store.sort_start(table, "date", unique)
            starts[table] = starts[table] if moved is None else min(starts[table], moved)
    return {table: store.tail(table, start) for table, start in starts.items()}
