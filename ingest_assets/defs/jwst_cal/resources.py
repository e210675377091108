"""The JWST ingest's storage, as a Dagster resource: the inbox of drops and the output database."""

# No `from __future__ import annotations`: Dagster reads resource field annotations at class creation.

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from ingest_assets.jwst_cal.day import DayOutcome
from ingest_assets.jwst_cal.drops import (
    DropError, DropOddity, drop_file_name, drop_oddities, drop_problems, read_drop_text, type_drop,
)
from ingest_assets.jwst_cal.pipeline import commit_days, stage_scrubbed
from ingest_assets.jwst_cal.scrub import ScrubbedDrop, scrub_drop
from ingest_assets.jwst_cal.store import DEFAULT_LOCK_TIMEOUT


@dataclass(frozen=True)
class StagedDay:
    """What staging one day's drop found: its problems (none when staged), oddities and scrubbed rows."""

    day: str
    path: Path
    problems: list[DropError]
    oddities: list[DropOddity]
    scrubbed: ScrubbedDrop | None
    columns: int = 0

    @property
    def staged(self) -> bool:
        return self.scrubbed is not None


class JwstCalStore(dg.ConfigurableResource):
    """The inbox where daily drops arrive and the output folder (jwst-cal.duckdb and its CSV exports)."""

    inbox_dir: str
    output_dir: str
    save_l1: bool = False
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT

    @property
    def inbox(self) -> Path:
        return Path(self.inbox_dir)

    @property
    def output(self) -> Path:
        return Path(self.output_dir)

    def drop_path(self, day: str) -> Path:
        return self.inbox / drop_file_name(day)

    def stage(self, day: str) -> StagedDay:
        """Read and check the day's drop once; when it is valid, scrub it and store its rows for the commit."""
        path = self.drop_path(day)
        if not path.is_file():
            return StagedDay(day, path, [DropError(path, None, None, f"no such drop in {self.inbox}")], [], None)
        try:
            text = read_drop_text(path)
        except DropError as err:
            return StagedDay(day, path, [err], [], None)
        problems = drop_problems(text)
        if problems:
            return StagedDay(day, path, problems, drop_oddities(text), None, len(text.cells.columns))
        scrubbed = scrub_drop(type_drop(text), dt.date.fromisoformat(day), path.name)
        stage_scrubbed(scrubbed, self.output, lock_timeout=self.lock_timeout)
        return StagedDay(day, path, [], drop_oddities(text), scrubbed, len(text.cells.columns))

    def commit(self, days: list[str]) -> list[DayOutcome]:
        """Commit the staged days in date order; the outcomes of every day written, replayed later days included."""
        return commit_days(days, self.output, save_l1=self.save_l1, lock_timeout=self.lock_timeout)
