"""The JWST ingest's storage, as a Dagster resource: the inbox of drops and the output database."""

# No `from __future__ import annotations`: Dagster reads resource field annotations at class creation.

from pathlib import Path

from ingest_assets.defs.folders import IngestFolders
from ingest_assets.jwst_cal.drops import DropError, drop_file_name
from ingest_assets.jwst_cal.pipeline import DropRead, open_store, read_day
from ingest_assets.jwst_cal.store import DEFAULT_LOCK_TIMEOUT, IngestStore


class JwstCalStore(IngestFolders):
    """The inbox where daily drops arrive and the output folder (jwst-cal.duckdb and its CSV exports)."""

    save_l1: bool = False
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    # A range's days are committed and exported in groups of about this many seconds of ingest (0: each day alone).
    group_seconds: float = 10.0

    def drop_path(self, day: str) -> Path:
        return self.inbox / drop_file_name(day)

    def read(self, day: str) -> DropRead:
        """Read and check the day's drop once (scrubbed when it is valid)."""
        path = self.drop_path(day)
        if not path.is_file():
            return DropRead(path, [DropError(path, None, None, f"no such drop in {self.inbox}")])
        return read_day(path)

    def open(self) -> IngestStore:
        """The output database, held by this process (one writer at a time) until it is closed (a `with` block)."""
        return open_store(self.output, lock_timeout=self.lock_timeout)
