"""A UI backfill of a day range on a running `dagster dev`: the priors chain runs in order, the range in one run."""

from __future__ import annotations

import shutil

import dagster as dg
import pytest

from ingest_assets.defs.jwst_cal import JWST_ASSETS
from ingest_assets_tests.dagster_dev import dagster_dev, folder_env, graphql, wait_for
from ingest_assets_tests.golden import compare_outputs, golden_days

DAYS = golden_days("small-s2")[:3]
BACKFILL_TIMEOUT = 300
SENSOR = """
query { sensorOrError(sensorSelector: {repositoryLocationName: "ingest_assets", repositoryName: "__repository__",
                                        sensorName: "jwst_cal_drop_sensor"}) { ... on Sensor { id } } }
"""
STOP = """
mutation Stop($id: String) {
  stopSensor(id: $id) { __typename ... on StopSensorMutationResult { instigationState { status } } }
}
"""
LAUNCH = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
  }
}
"""


def finished(home, backfill_id: str) -> bool:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return instance.get_backfill(backfill_id).status.value not in ("REQUESTED", "CANCELING", "FAILING")


@pytest.mark.ui
def test_a_ui_backfill_ingests_the_range_in_order(tmp_path):
    home, inbox, out = tmp_path / "dagster_home", tmp_path / "jwst" / "inbox", tmp_path / "jwst" / "out"
    inbox.mkdir(parents=True)
    env = folder_env(tmp_path) | {"JWST_CAL_SAVE_L1": "1"}
    log = tmp_path / "dagster_dev.log"
    with dagster_dev(home, env, log) as server:
        # the backfill, not the drop sensor, must ingest these days: stop the sensor before they land
        sensor_id = graphql(server.port, SENSOR)["sensorOrError"]["id"]
        stopped = graphql(server.port, STOP, {"id": sensor_id})["stopSensor"]
        assert stopped["instigationState"]["status"] == "STOPPED", stopped
        for day in DAYS:
            shutil.copy(day.drop, inbox)
        params = {"partitionNames": [d.date for d in DAYS],
                  "assetSelection": [{"path": [a.key.path[0]]} for a in JWST_ASSETS]}
        answer = graphql(server.port, LAUNCH, {"params": params})["launchPartitionBackfill"]
        assert answer["__typename"] == "LaunchBackfillSuccess", answer
        done = wait_for(lambda: finished(home, answer["backfillId"]), BACKFILL_TIMEOUT, server)
    assert done, log.read_text()[-3000:]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_backfill(answer["backfillId"]).status.value == "COMPLETED_SUCCESS"
        priors_runs = [r.dagster_run for r in instance.get_run_records()
                       if "jwst_priors" in {k.path[0] for k in r.dagster_run.asset_selection or []}]
    ranges = sorted((r.tags.get("dagster/asset_partition_range_start", r.tags.get("dagster/partition")),
                     r.tags.get("dagster/asset_partition_range_end", r.tags.get("dagster/partition")))
                    for r in priors_runs)
    assert ranges[0][0] == DAYS[0].date and ranges[-1][1] == DAYS[-1].date
    assert len(ranges) < len(DAYS), f"the priors chain ran one run per day: {ranges}"
    last = DAYS[-1]
    assert compare_outputs(last.expected_dir, out, previous_expected_dir=last.previous_expected_dir, run=last.run) == []
