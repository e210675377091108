"""The resource base shared by both ingests: an inbox where data arrives and an output folder."""

# No `from __future__ import annotations`: Dagster reads resource field annotations at class creation.

from pathlib import Path

import dagster as dg


class IngestFolders(dg.ConfigurableResource):
    """Folders of an ingest."""

    inbox_dir: str
    output_dir: str

    @property
    def inbox(self) -> Path:
        return Path(self.inbox_dir)

    @property
    def output(self) -> Path:
        return Path(self.output_dir)
