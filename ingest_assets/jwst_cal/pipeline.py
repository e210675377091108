"""Ingest a day into an output database: scrub, stateful day ingest, commit and CSV export in one transaction."""

from __future__ import annotations

from pathlib import Path

from .day import CODES_TABLE, STATE_TABLES, DayOutcome, ingest_day
from .drops import DropError, drop_date, drop_name_problem, read_drop
from .scrub import ScrubbedDrop, scrub_drop
from .store import IngestStore


def scrub_file(path: Path) -> ScrubbedDrop:
    """Read and scrub one drop file; a bad name or content raises DropError."""
    path = Path(path)
    day = drop_date(path.name)
    if day is None:
        raise DropError(path, None, None, drop_name_problem(path.name) or "not a drop file")
    return scrub_drop(read_drop(path), day, path.name)


def ingest_scrubbed(scrubbed: ScrubbedDrop, output_dir: Path, *, save_l1: bool = False) -> DayOutcome:
    """Ingest one scrubbed day into OUTPUT_DIR's store and export its CSV files.

    Ingesting a day again replaces its contribution (D14); days after it that were already ingested are replayed
    from their stored inputs on top of it, so the outputs always equal a run of every day in date order. The whole
    operation is one transaction: it happens completely or not at all (D8).
    """
    with IngestStore(Path(output_dir)) as store, store.transaction():
        later = [d for d in store.days() if d >= scrubbed.day]
        replays = [(_stored_drop(store, d), store.report(d)["save_l1"]) for d in later if d != scrubbed.day]
        if later:
            store.rollback_from(later[0])
        outcome = _ingest_one(store, scrubbed, save_l1)
        for stored, stored_save_l1 in replays:
            _ingest_one(store, stored, stored_save_l1)
    return outcome


def ingest_drop(path: Path, output_dir: Path, *, save_l1: bool = False) -> DayOutcome:
    """Read, scrub and ingest one drop file (the spacekit-equivalent of one run on one day)."""
    return ingest_scrubbed(scrub_file(path), output_dir, save_l1=save_l1)


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
