"""Ingest a day into an output database: scrub, stateful day ingest, commit and CSV export in one transaction."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

from .day import CODES_TABLE, STATE_TABLES, DayOutcome, ingest_day
from .features import IngestError
from .drops import OUTPUT_NAMES, DropError, drop_date, drop_name_problem, read_drop
from .scrub import ScrubbedDrop, scrub_drop
from .store import (
    DB_NAME, DEFAULT_LOCK_TIMEOUT, ExportIncompleteError, IngestStore, StoreError, StoreMissingError, lock_folder,
)

REBUILD_DIR = ".jwst-cal-rebuild"


def scrub_file(path: Path) -> ScrubbedDrop:
    """Read and scrub one drop file; a bad name or content raises DropError."""
    path = Path(path)
    day = drop_date(path.name)
    if day is None:
        raise DropError(path, None, None, drop_name_problem(path.name) or "not a drop file")
    return scrub_drop(read_drop(path), day, path.name)


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
    """Ingest one scrubbed day into OUTPUT_DIR's store and export its CSV files.

    Ingesting a day again replaces its contribution (D14); days after it that were already ingested are replayed
    from their stored inputs on top of it, so the outputs always equal a run of every day in date order. The whole
    operation is one transaction: it happens completely or not at all (D8). `export=False` leaves the CSV files
    to a later export.
    """
    with open_store(output_dir, lock_timeout=lock_timeout, export=export) as store, store.transaction():
        later = [d for d in store.days() if d >= scrubbed.day]
        replays = [(_stored_drop(store, d), store.report(d)["save_l1"]) for d in later if d != scrubbed.day]
        if later:
            store.rollback_from(later[0])
        outcome = _ingest_one(store, scrubbed, save_l1)
        for stored, stored_save_l1 in replays:
            _ingest_one(store, stored, stored_save_l1)
    return outcome


def ingest_drop(path: Path, output_dir: Path, *, save_l1: bool = False,
                lock_timeout: float = DEFAULT_LOCK_TIMEOUT, export: bool = True) -> DayOutcome:
    """Read, scrub and ingest one drop file (the spacekit-equivalent of one run on one day).

    Bad input raises DropError naming the file, also for values found unusable during the day's ingest.
    """
    scrubbed = scrub_file(path)
    try:
        return ingest_scrubbed(scrubbed, output_dir, save_l1=save_l1, lock_timeout=lock_timeout, export=export)
    except IngestError as err:
        raise DropError(path, None, None, str(err)) from err


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


def _ingest_one(store: IngestStore, scrubbed: ScrubbedDrop, save_l1: bool) -> DayOutcome:
    state = {name: store.current(name) for name in (*STATE_TABLES, CODES_TABLE)}
    outcome = ingest_day(scrubbed, state, save_l1=save_l1)
    store.write_day(scrubbed.day, state=outcome.state, log=outcome.log, daily=outcome.daily, report=outcome.report)
    return outcome


def _stored_drop(store: IngestStore, day: str) -> ScrubbedDrop:
    report = store.report(day)
    return ScrubbedDrop(
        day=day, file=report["file"], rows_read=report["rows_read"], science=store.daily("_science", day),
        mosaics=store.daily("_mosaics", day), mrs_ch24_dropped=report["mrs_ch24_dropped"],
    )
