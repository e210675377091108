"""Alerts on the JWST ingest's failures: a day whose L3 products stay unmatched and a day whose drop is invalid."""

from __future__ import annotations

import shutil

import dagster as dg

from ingest_assets.defs.alerts import AlertSinks
from ingest_assets.defs.jwst_cal import JWST_ASSETS
from ingest_assets.defs.jwst_cal.assets import DROP_IS_VALID, MATCH_RATE
from ingest_assets.defs.jwst_cal.resources import JwstCalStore
from ingest_assets.definitions import defs
from ingest_assets_tests.golden import golden_days
from ingest_assets_tests.test_alerts import sent, tick

UNMATCHED, INVALID = golden_days("small-s2")[:2]  # small-s2's first day leaves L3 products unmatched


def run_day(instance: dg.DagsterInstance, store: JwstCalStore, day: str) -> dg.ExecuteInProcessResult:
    result = dg.materialize(JWST_ASSETS, partition_key=day, resources={"jwst_cal_store": store}, instance=instance,
                            raise_on_error=False)
    assert not result.success
    return result


def evaluation(result: dg.ExecuteInProcessResult, key: dg.AssetCheckKey) -> dg.AssetCheckEvaluation:
    (found,) = [e for e in result.get_asset_check_evaluations() if e.asset_check_key == key]
    return found


def failure(result: dg.ExecuteInProcessResult) -> str:
    (event,) = result.get_step_failure_events()
    return event.step_failure_data.user_failure_data.description


def test_each_failed_check_and_run_of_a_day_is_alerted_once_with_what_failed(tmp_path):
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    shutil.copy(UNMATCHED.drop, inbox)
    header, rest = INVALID.drop.read_text().split("\n", 1)
    (inbox / INVALID.drop.name).write_text(header.replace("ImageSize", "ImageSiz") + "\n" + rest)
    store = JwstCalStore(inbox_dir=str(inbox), output_dir=str(out))
    sinks = AlertSinks(file=str(out / "alerts.jsonl"))
    with dg.instance_for_test() as instance:
        cursor = tick(instance, sinks, None)
        unmatched = run_day(instance, store, UNMATCHED.date)
        invalid = run_day(instance, store, INVALID.date)
        cursor = tick(instance, sinks, cursor)
        alerts = sent(out / "alerts.jsonl")
        assert tick(instance, sinks, cursor) == cursor
    assert len(sent(out / "alerts.jsonl")) == len(alerts), "no alert is sent twice"
    assert [(a.kind, a.day, a.check, a.run_id) for a in alerts] == [
        ("check", UNMATCHED.date, MATCH_RATE.name, unmatched.run_id), ("run", UNMATCHED.date, None, unmatched.run_id),
        ("check", INVALID.date, DROP_IS_VALID.name, invalid.run_id), ("run", INVALID.date, None, invalid.run_id)]
    match_rate, unmatched_run, drop_check, invalid_run = alerts
    products = evaluation(unmatched, MATCH_RATE).metadata["unmatched"].value
    assert products and match_rate.lists["unmatched"] == products
    assert (match_rate.asset, match_rate.severity) == (MATCH_RATE.asset_key.to_user_string(), "ERROR")
    assert match_rate.message == f"unmatched: {', '.join(products[:5])}"
    assert unmatched_run.message == failure(unmatched) and unmatched_run.job == "__ephemeral_asset_job__"
    problems = evaluation(invalid, DROP_IS_VALID).metadata["problems"].value
    assert drop_check.lists["problems"] == problems and "missing required columns: ImageSize" in problems[0]
    assert drop_check.message == problems[0]
    assert invalid_run.message == failure(invalid) == f"not ingested: {problems[0]}"


def test_the_code_location_runs_the_alert_sensor_by_default():
    sensor = defs.resolve_sensor_def("ingest_alerts_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING and sensor.minimum_interval_seconds == 30
    assert "ingest_alerts" in sensor.required_resource_keys
