"""The JWST ingest's storage, as a Dagster resource: the inbox of drops and the output database."""

# No `from __future__ import annotations`: Dagster reads resource field annotations at class creation.

from collections.abc import Iterator
from pathlib import Path

from ingest_assets.defs.folders import IngestFolders
from ingest_assets.jwst_cal.drops import drop_file_name
from ingest_assets.jwst_cal.ranges import CommittedDay, RangeRequest, StagedDay, ingest_range
from ingest_assets.jwst_cal.store import DEFAULT_LOCK_TIMEOUT
from ingest_assets.jwst_cal.worker import ingest_in_worker


class JwstCalStore(IngestFolders):
    """The inbox where daily drops arrive and the output folder (jwst-cal.duckdb and its CSV exports)."""

    save_l1: bool = False
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    # A range's days are committed and exported in groups of about this many seconds of ingest (0: each day alone).
    group_seconds: float = 10.0

    def drop_path(self, day: str) -> Path:
        return self.inbox / drop_file_name(day)

    def ingest(self, days: list[str], *, commit: bool) -> Iterator[StagedDay | CommittedDay]:
        """Stage the days' drops, then (`commit`) commit them in date order, holding the output database throughout
        (one writer at a time). A range of several days is ingested in a worker process, ahead of the caller's
        recording of each day; a single day in this process."""
        request = RangeRequest(self.inbox, self.output, tuple(days), commit=commit, save_l1=self.save_l1,
                               lock_timeout=self.lock_timeout, group_seconds=self.group_seconds)
        return ingest_in_worker(request) if len(days) > 1 else ingest_range(request)
