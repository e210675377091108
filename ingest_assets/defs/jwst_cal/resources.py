"""The JWST ingest's storage, as a Dagster resource: the inbox of drops and the output database."""

# No `from __future__ import annotations`: Dagster reads resource field annotations at class creation.

from pathlib import Path

from ingest_assets.defs.folders import IngestFolders
from ingest_assets.jwst_cal.day import DayOutcome
from ingest_assets.jwst_cal.drops import DropError, drop_file_name
from ingest_assets.jwst_cal.pipeline import DropRead, commit_days, open_store, read_day, stage_scrubbed
from ingest_assets.jwst_cal.store import DEFAULT_LOCK_TIMEOUT


class JwstCalStore(IngestFolders):
    """The inbox where daily drops arrive and the output folder (jwst-cal.duckdb and its CSV exports)."""

    save_l1: bool = False
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT

    def drop_path(self, day: str) -> Path:
        return self.inbox / drop_file_name(day)

    def stage(self, day: str) -> DropRead:
        """Read and check the day's drop once; when it is valid, store its scrubbed rows for the commit."""
        path = self.drop_path(day)
        if not path.is_file():
            return DropRead(path, [DropError(path, None, None, f"no such drop in {self.inbox}")])
        read = read_day(path)
        if read.scrubbed is not None:
            stage_scrubbed(read.scrubbed, self.output, lock_timeout=self.lock_timeout)
        return read

    def commit(self, days: list[str]) -> list[DayOutcome]:
        """Commit the staged days in date order; the outcomes of every day written, replayed later days included."""
        return commit_days(days, self.output, save_l1=self.save_l1, lock_timeout=self.lock_timeout)

    def columns(self, tables: list[str]) -> dict[str, tuple[tuple[str, str], ...]]:
        """The stored tables' columns (name, type), as exported."""
        with open_store(self.output, lock_timeout=self.lock_timeout, export=False) as store:
            return {table: store.columns(table) for table in tables}
