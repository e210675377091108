"""The JWST ingest on a real `dagster dev` (webserver + daemon): the drop sensor, a UI backfill, serialized writers."""

from __future__ import annotations

import shutil

import dagster as dg
import pytest

from ingest_assets.defs.jwst_cal import JWST_ASSETS
from ingest_assets.defs.jwst_cal.assets import MATCH_RATE, PRIORS
from ingest_assets.defs.jwst_cal.automation import RANGE_END, RANGE_START
from ingest_assets_tests.dagster_dev import dagster_dev, folder_env, graphql, wait_for
from ingest_assets_tests.golden import compare_outputs, golden_days

SMALL = golden_days("small-s2")
TIMEOUT = 300
SENSOR = {"repositoryLocationName": "ingest_assets", "repositoryName": "__repository__",
          "sensorName": "jwst_cal_drop_sensor"}
SENSOR_ID = "query ($s: SensorSelector!) { sensorOrError(sensorSelector: $s) { ... on Sensor { id } } }"
STOP = "mutation ($id: String) { stopSensor(id: $id) { ... on StopSensorMutationResult { instigationState { status } } } }"
START = "mutation ($s: SensorSelector!) { startSensor(sensorSelector: $s) { ... on Sensor { sensorState { status } } } }"
LAUNCH_RUNS = """
mutation Launch($runs: [ExecutionParams!]!) {
  launchMultipleRuns(executionParamsList: $runs) {
    __typename ... on LaunchMultipleRunsResult { launchMultipleRunsResult { __typename } }
    ... on PythonError { message }
  }
}
"""
LAUNCH = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message }
  }
}
"""


def partitions(home, key: dg.AssetKey) -> set[str]:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return instance.get_materialized_partitions(key)


def store_runs(home) -> list[dg.RunRecord]:
    """Finished runs that wrote the output database, in start order."""
    with dg.DagsterInstance.from_config(str(home)) as instance:
        records = [r for r in instance.get_run_records() if r.dagster_run.is_finished and r.start_time]
    return sorted(records, key=lambda r: r.start_time)


UNFINISHED = [dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTING,
              dg.DagsterRunStatus.STARTED]


def idle(home) -> bool:
    """No run queued or in progress."""
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return not instance.get_runs(dg.RunsFilter(statuses=UNFINISHED))


def backfill_finished(instance: dg.DagsterInstance, backfill_id: str) -> bool:
    return instance.get_backfill(backfill_id).status.value not in ("REQUESTED", "CANCELING", "FAILING")


def backfill_done(home, backfill_id: str) -> bool:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return backfill_finished(instance, backfill_id)


def day_range(run: dg.DagsterRun) -> tuple[str, str]:
    tags = run.tags
    return tags.get(RANGE_START, tags.get("dagster/partition")), tags.get(RANGE_END, tags.get("dagster/partition"))


@pytest.mark.ui
def test_drops_landing_at_once_are_ingested_in_one_run(tmp_path):
    home, inbox, out = tmp_path / "dagster_home", tmp_path / "jwst" / "inbox", tmp_path / "jwst" / "out"
    inbox.mkdir(parents=True)
    days = SMALL[:2]
    log = tmp_path / "dagster_dev.log"
    with dagster_dev(home, folder_env(tmp_path) | {"JWST_CAL_SAVE_L1": "1"}, log) as server:
        for day in days:
            shutil.copy(day.drop, inbox)
        done = wait_for(lambda: partitions(home, PRIORS) == {d.date for d in days} and idle(home), TIMEOUT, server)
        assert done, log.read_text()[-3000:]
        runs = store_runs(home)
    assert [day_range(r.dagster_run) for r in runs] == [(days[0].date, days[-1].date)]
    # the first day leaves L3 products unmatched: ingested, and the run fails on that day's ERROR check
    assert runs[0].dagster_run.status == dg.DagsterRunStatus.FAILURE
    with dg.DagsterInstance.from_config(str(home)) as instance:
        history = instance.event_log_storage.get_asset_check_execution_history(MATCH_RATE, limit=10)
    assert {h.partition: h.status.value for h in history} == {days[0].date: "FAILED", days[1].date: "SUCCEEDED"}
    last = days[-1]
    assert compare_outputs(last.expected_dir, out, previous_expected_dir=last.previous_expected_dir, run=last.run) == []


@pytest.mark.ui
def test_two_runs_launched_together_on_a_new_instance_run_one_after_the_other(tmp_path):
    """Two day runs of the asset graph launched in one request (as the UI's Materialize launches them: no
    `ingest/serial` tag, only the store's pool), the first runs of the pool on a new instance. Without the pool's
    limit set before the first run, the daemon often launched both at once (one run in four here)."""
    home, inbox = tmp_path / "dagster_home", tmp_path / "jwst" / "inbox"
    inbox.mkdir(parents=True)
    log = tmp_path / "dagster_dev.log"
    with dagster_dev(home, folder_env(tmp_path) | {"JWST_CAL_SAVE_L1": "1"}, log) as server:
        graphql(server.port, STOP, {"id": graphql(server.port, SENSOR_ID, {"s": SENSOR})["sensorOrError"]["id"]})
        for day in SMALL[:2]:
            shutil.copy(day.drop, inbox)
        job = {key: SENSOR[key] for key in ("repositoryLocationName", "repositoryName")} | {
            "jobName": "__ASSET_JOB", "assetSelection": [{"path": k.path} for a in JWST_ASSETS for k in a.keys]}
        runs = [{"selector": job, "executionMetadata": {"tags": [{"key": "dagster/partition", "value": day.date}]}}
                for day in SMALL[:2]]
        answer = graphql(server.port, LAUNCH_RUNS, {"runs": runs})["launchMultipleRuns"]
        assert [r["__typename"] for r in answer["launchMultipleRunsResult"]] == ["LaunchRunSuccess"] * 2, answer
        done = wait_for(lambda: partitions(home, PRIORS) == {d.date for d in SMALL[:2]} and idle(home), TIMEOUT,
                        server)
        assert done, log.read_text()[-3000:]
        first, second = store_runs(home)
    assert first.end_time <= second.start_time, "two runs wrote the store at once"


@pytest.mark.ui
def test_a_ui_backfill_runs_the_range_in_one_run_never_beside_a_sensor_run(tmp_path):
    home, inbox, out = tmp_path / "dagster_home", tmp_path / "jwst" / "inbox", tmp_path / "jwst" / "out"
    inbox.mkdir(parents=True)
    backfilled, sensed = SMALL[:3], SMALL[3:]
    log = tmp_path / "dagster_dev.log"
    with dagster_dev(home, folder_env(tmp_path) | {"JWST_CAL_SAVE_L1": "1"}, log) as server:
        sensor_id = graphql(server.port, SENSOR_ID, {"s": SENSOR})["sensorOrError"]["id"]
        assert graphql(server.port, STOP, {"id": sensor_id})["stopSensor"]["instigationState"]["status"] == "STOPPED"
        for day in SMALL:
            shutil.copy(day.drop, inbox)
        keys = [{"path": key.path} for assets in JWST_ASSETS for key in assets.keys]
        params = {"partitionNames": [d.date for d in backfilled], "assetSelection": keys}
        answer = graphql(server.port, LAUNCH, {"params": params})["launchPartitionBackfill"]
        assert answer["__typename"] == "LaunchBackfillSuccess", answer
        # the sensor wakes up meanwhile and requests every drop it has not seen, the backfill's days included
        graphql(server.port, START, {"s": SENSOR})
        done = wait_for(lambda: partitions(home, PRIORS) >= {d.date for d in SMALL}
                        and backfill_done(home, answer["backfillId"]) and idle(home), TIMEOUT, server)
        assert done, log.read_text()[-3000:]
        with dg.DagsterInstance.from_config(str(home)) as instance:
            backfill_runs = instance.get_run_records(dg.RunsFilter(tags={"dagster/backfill": answer["backfillId"]}))
        runs = store_runs(home)
    assert [day_range(r.dagster_run) for r in backfill_runs] == [(backfilled[0].date, backfilled[-1].date)]
    assert all(a.end_time <= b.start_time for a, b in zip(runs, runs[1:])), "two runs wrote the store at once"
    last = SMALL[-1]
    assert compare_outputs(last.expected_dir, out, previous_expected_dir=last.previous_expected_dir, run=last.run) == []
