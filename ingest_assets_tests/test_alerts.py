"""The alert sensor and its sinks on a real Dagster instance, with toy assets (the JWST ones: test_alerts_jwst.py)."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from ingest_assets.defs import alerts
from ingest_assets.defs.alerts import (
    Alert, AlertNotDelivered, AlertSinks, SmtpSecurity, alert_sinks_from_env, ingest_alerts_sensor,
)
from ingest_assets_tests.alert_servers import slack_server, smtp_server
from ingest_assets_tests.dagster_dev import free_port

DAY = "2025-06-01"
LAST_DAY = "2025-06-02"
days = dg.StaticPartitionsDefinition([DAY, LAST_DAY])
SINGLE_RUN = dg.BackfillPolicy.single_run()


@dg.asset(partitions_def=days, check_specs=[dg.AssetCheckSpec("rows_valid", asset="toy")], backfill_policy=SINGLE_RUN)
def toy() -> dg.MaterializeResult:
    return dg.MaterializeResult(check_results=[dg.AssetCheckResult(
        check_name="rows_valid", passed=False, severity=dg.AssetCheckSeverity.WARN, description="2 rows invalid",
        metadata={"rows": ["row 3", "row 7"], "empty": [], "n_rows": 2})])


@dg.asset(partitions_def=days, deps=[toy], backfill_policy=SINGLE_RUN)
def toy_report() -> None:
    raise dg.Failure(description="toy report failed: no rows")


def fail_once(instance: dg.DagsterInstance, day: str = DAY, tags: dict[str, str] | None = None
              ) -> dg.ExecuteInProcessResult:
    """One run whose WARN check and whose second step fail: of `day`, or of the range in `tags`."""
    result = dg.materialize([toy, toy_report], partition_key=None if tags else day, tags=tags, instance=instance,
                            raise_on_error=False)
    assert not result.success
    return result


def tick(instance: dg.DagsterInstance, sinks: AlertSinks, cursor: str | None) -> str:
    """One evaluation of the sensor; its new cursor."""
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"ingest_alerts": sinks})
    return ingest_alerts_sensor.evaluate_tick(context).cursor


def sent(path: Path) -> list[Alert]:
    return [Alert(**json.loads(line)) for line in path.read_text().splitlines()] if path.exists() else []


def test_a_failed_warn_check_and_a_failed_run_are_alerted_once(tmp_path):
    path = tmp_path / "out" / "alerts.jsonl"
    sinks = AlertSinks(file=str(path))
    with dg.instance_for_test() as instance:
        fail_once(instance)  # before the sensor's first tick: history, not alerted
        cursor = tick(instance, sinks, None)
        assert tick(instance, sinks, cursor) == cursor and sent(path) == []
        result = fail_once(instance)
        cursor = tick(instance, sinks, cursor)
        check, run = sent(path)
        assert tick(instance, sinks, cursor) == cursor
    assert len(sent(path)) == 2
    assert (check.kind, check.severity, check.day, check.last_day) == ("check", "WARN", DAY, DAY)
    assert (check.asset, check.check, check.job, check.run_id) == ("toy", "rows_valid", result.job_def.name,
                                                                   result.run_id)
    assert check.message == "2 rows invalid" and check.lists == {"rows": ["row 3", "row 7"]}
    assert (run.kind, run.severity, run.day, run.run_id, run.asset) == ("run", "ERROR", DAY, result.run_id, None)
    assert run.message == "toy report failed: no rows" and run.event_id > check.event_id
    assert check.headline() == f"WARN check toy:rows_valid failed on {DAY}: 2 rows invalid"


def test_a_ranged_run_names_its_days(tmp_path):
    path = tmp_path / "alerts.jsonl"
    sinks = AlertSinks(file=str(path))
    with dg.instance_for_test() as instance:
        cursor = tick(instance, sinks, None)
        fail_once(instance, tags={alerts.RANGE_START: DAY, alerts.RANGE_END: LAST_DAY})
        tick(instance, sinks, cursor)
    (check, run) = sent(path)
    assert (check.day, check.last_day, run.day, run.last_day) == (DAY, LAST_DAY, DAY, LAST_DAY)
    assert run.headline().startswith(f"ERROR run {run.run_id} of __ephemeral_asset_job__ failed on {DAY}..{LAST_DAY}:")


def test_every_sink_gets_the_alert_slack_and_email_on_loopback_servers(tmp_path):
    with smtp_server() as (smtp_port, mailbox), slack_server() as (slack_url, posts):
        sinks = AlertSinks(file=str(tmp_path / "alerts.jsonl"), slack_channel="#ingest", slack_token="xoxb-test",
                           slack_api_url=slack_url, smtp_host="127.0.0.1", smtp_port=smtp_port,
                           smtp_security=SmtpSecurity.NONE, smtp_sender="dagster@example.org",
                           smtp_recipients=["ops@example.org", "ml@example.org"], smtp_user="alerts",
                           smtp_password="secret")
        with dg.instance_for_test() as instance:
            cursor = tick(instance, sinks, None)
            fail_once(instance)
            cursor = tick(instance, sinks, cursor)
            tick(instance, sinks, cursor)
    check, run = sent(tmp_path / "alerts.jsonl")
    assert [(p.path, p.authorization, p.channel) for p in posts] == [
        ("/api/chat.postMessage", "Bearer xoxb-test", "#ingest")] * 2
    assert [p.text for p in posts] == [check.text(), run.text()]
    assert "rows: row 3, row 7" in posts[0].text
    assert mailbox.recipients == [["ops@example.org", "ml@example.org"]] * 2
    assert mailbox.logins == [("alerts", "secret")] * 2
    mail = mailbox.messages[0]
    assert mail["Subject"].strip() == f"[ingest alert] {check.headline()}" and mail["From"] == "dagster@example.org"
    assert check.text() in mail.get_content().replace("\r\n", "\n")


def test_failing_optional_sinks_are_logged_and_never_block_the_file_or_repeat(tmp_path, capfd):
    path = tmp_path / "alerts.jsonl"
    with slack_server(status=500) as (slack_url, posts):
        sinks = AlertSinks(file=str(path), slack_channel="#ingest", slack_token="xoxb-test", slack_api_url=slack_url,
                           smtp_host="127.0.0.1", smtp_port=free_port(), smtp_security=SmtpSecurity.NONE,
                           smtp_recipients=["ops@example.org"])
        with dg.instance_for_test() as instance:
            cursor = tick(instance, sinks, None)
            fail_once(instance)
            cursor = tick(instance, sinks, cursor)
            assert tick(instance, sinks, cursor) == cursor
    assert [a.kind for a in sent(path)] == ["check", "run"]
    assert len(posts) == 1, "a sink that failed is skipped for the rest of the tick, and not retried"
    logged = capfd.readouterr().err
    assert "alert of event" in logged and "not sent to Slack (SlackApiError" in logged
    assert "not sent to e-mail (ConnectionRefusedError" in logged


def test_an_alert_the_file_cannot_take_is_retried_on_the_next_tick(tmp_path):
    blocker = tmp_path / "out"
    blocker.write_text("a file where the alerts folder should be")
    sinks = AlertSinks(file=str(blocker / "alerts.jsonl"))
    with dg.instance_for_test() as instance:
        cursor = tick(instance, sinks, None)
        fail_once(instance)
        with pytest.raises(AlertNotDelivered, match="not written to"):
            tick(instance, sinks, cursor)
        blocker.unlink()
        cursor = tick(instance, sinks, cursor)
        assert [a.kind for a in sent(blocker / "alerts.jsonl")] == ["check", "run"]
        assert tick(instance, sinks, cursor) == cursor


def test_a_tick_reads_a_bounded_batch_and_loses_nothing_across_ticks(tmp_path, monkeypatch):
    monkeypatch.setattr(alerts, "BATCH", 1)
    path = tmp_path / "alerts.jsonl"
    sinks = AlertSinks(file=str(path))
    with dg.instance_for_test() as instance:
        cursor = tick(instance, sinks, None)
        runs = [fail_once(instance, day).run_id for day in (DAY, LAST_DAY)]
        cursors = []
        for _ in range(6):
            cursors.append(cursor := tick(instance, sinks, cursor))
    assert [(a.kind, a.run_id) for a in sent(path)] == [(kind, run) for run in runs for kind in ("check", "run")]
    assert cursors[3] == cursors[-1], "one event per tick: four ticks for two runs"


def test_sinks_from_the_environment_are_off_by_default_and_keep_secrets_out_of_the_config(monkeypatch):
    for name in ("INGEST_ALERTS_FILE", "INGEST_ALERTS_SLACK_CHANNEL", "INGEST_ALERTS_SLACK_TOKEN",
                 "INGEST_ALERTS_SMTP_HOST", "INGEST_ALERTS_SMTP_TO", "INGEST_ALERTS_SMTP_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("JWST_CAL_OUTPUT", "/data/out")
    sinks = alert_sinks_from_env()
    assert sinks.file == "/data/out/alerts.jsonl" and sinks.optional_sinks() == []
    monkeypatch.setenv("INGEST_ALERTS_FILE", "/var/alerts.jsonl")
    monkeypatch.setenv("INGEST_ALERTS_SLACK_CHANNEL", "#ingest")
    monkeypatch.setenv("INGEST_ALERTS_SLACK_TOKEN", "xoxb-secret")
    monkeypatch.setenv("INGEST_ALERTS_SMTP_HOST", "smtp.example.org")
    monkeypatch.setenv("INGEST_ALERTS_SMTP_TO", "ops@example.org, ml@example.org")
    monkeypatch.setenv("INGEST_ALERTS_SMTP_SECURITY", "ssl")
    monkeypatch.setenv("INGEST_ALERTS_SMTP_PORT", "465")
    monkeypatch.setenv("INGEST_ALERTS_SMTP_PASSWORD", "hunter2")
    sinks = alert_sinks_from_env()
    assert sinks.file == "/var/alerts.jsonl"
    assert [name for name, _ in sinks.optional_sinks()] == ["Slack", "e-mail"]
    assert sinks.smtp_recipients == ["ops@example.org", "ml@example.org"]
    assert (sinks.smtp_security, sinks.smtp_port) == (SmtpSecurity.SSL, 465)
    assert sinks.slack_token == dg.EnvVar("INGEST_ALERTS_SLACK_TOKEN")
    assert sinks.smtp_password == dg.EnvVar("INGEST_ALERTS_SMTP_PASSWORD")
