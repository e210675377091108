"""Drops landing in the JWST inbox are ingested by the sensor of a running `dagster dev`, one day at a time."""

from __future__ import annotations

import shutil

import dagster as dg
import pytest

from ingest_assets_tests.dagster_dev import dagster_dev, folder_env, wait_for
from ingest_assets_tests.golden import compare_outputs, golden_days

INGEST_TIMEOUT = 240
DAYS = golden_days("small-s2")[:2]


def ingested(home) -> set[str]:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return instance.get_materialized_partitions(dg.AssetKey("jwst_training_tables"))


@pytest.mark.ui
def test_new_drops_are_ingested_by_the_sensor_in_order(tmp_path):
    home, inbox, out = tmp_path / "dagster_home", tmp_path / "jwst" / "inbox", tmp_path / "jwst" / "out"
    inbox.mkdir(parents=True)
    log = tmp_path / "dagster_dev.log"
    with dagster_dev(home, folder_env(tmp_path) | {"JWST_CAL_SAVE_L1": "1"}, log) as server:
        for day in DAYS:  # all land at once: the sensor requests them oldest first, the tag limit serializes them
            shutil.copy(day.drop, inbox)
        done = wait_for(lambda: ingested(home) == {d.date for d in DAYS}, INGEST_TIMEOUT, server)
    assert done, log.read_text()[-3000:]
    last = DAYS[-1]
    assert compare_outputs(last.expected_dir, out, previous_expected_dir=last.previous_expected_dir, run=last.run) == []
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = sorted(instance.get_run_records(dg.RunsFilter(tags={"ingest/serial": "jwst_cal"})),
                      key=lambda r: r.start_time)
    assert [r.dagster_run.tags["dagster/partition"] for r in runs] == [d.date for d in DAYS]
    assert all(a.end_time <= b.start_time for a, b in zip(runs, runs[1:])), "daily runs overlapped"
