"""An IO manager that pickles one file per asset partition and handles steps spanning several partitions."""

# No `from __future__ import annotations`: Dagster reads resource field annotations at class creation.

import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import dagster as dg


class PartitionedPickleIOManager(dg.ConfigurableIOManager):
    """Stores `base_dir/<asset key>/<partition>.pkl`, written atomically.

    A step materializing several partitions (a single-run backfill) returns a dict keyed by partition; an input
    spanning several partitions loads as such a dict.
    """

    base_dir: str

    def _path(self, key: dg.AssetKey, partition: str) -> Path:
        return Path(self.base_dir, *key.path, f"{partition}.pkl")

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        keys = sorted(context.asset_partition_keys)
        values = obj if len(keys) > 1 else {keys[0]: obj}
        missing = set(keys) - set(values)
        if missing:
            raise dg.Failure(f"{context.asset_key.to_user_string()}: no value for partitions {sorted(missing)}")
        for key in keys:
            path = self._path(context.asset_key, key)
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, suffix=".tmp") as tmp:
                pickle.dump(values[key], tmp, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp.name, path)

    def load_input(self, context: dg.InputContext) -> Any:
        keys = sorted(context.asset_partition_keys)
        values = {}
        for key in keys:
            path = self._path(context.asset_key, key)
            if not path.exists():
                raise dg.Failure(f"{context.asset_key.to_user_string()} partition {key} was never materialized")
            with path.open("rb") as handle:
                values[key] = pickle.load(handle)
        return values if len(keys) > 1 else values[keys[0]]
