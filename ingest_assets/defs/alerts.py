"""Alerts on failed runs and failed asset checks (open-source Dagster has no check alerts of its own).

`ingest_alerts_sensor` reads the instance's event log after the last event it handled, and turns every failed run
and every failed ERROR or WARN check evaluation into one `Alert`, sent once through the `ingest_alerts` resource:

- always a log line on the sensor's tick, then the JSON-lines file (`INGEST_ALERTS_FILE`, by default
  `$JWST_CAL_OUTPUT/alerts.jsonl`), written first;
- then Slack (dagster-slack) and e-mail (smtplib), each only when configured.

Delivery: an alert counts as delivered once the file holds it (without a file sink: once one other configured sink
took it, or when the log is the only sink). The sensor stops at the first alert it could not deliver and keeps its
cursor before it, so the alert is retried on the next tick; a tick that cannot get past its first event fails.
Slack and e-mail are best effort: a failure is logged, never blocks the file, is not retried (the file holds the
alert), and skips that sink for the rest of the tick (one time-out per tick, not one per alert).
"""

# No `from __future__ import annotations`: Dagster reads resource field annotations at class creation.

import datetime as dt
import enum
import json
import os
import smtplib
import socket
import ssl
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Literal

import dagster as dg
from dagster._core.events.log import EventLogEntry
from dagster_slack import SlackResource

FILE_ENV = "INGEST_ALERTS_FILE"
SLACK_CHANNEL_ENV, SLACK_TOKEN_ENV = "INGEST_ALERTS_SLACK_CHANNEL", "INGEST_ALERTS_SLACK_TOKEN"
SLACK_API_URL_ENV = "INGEST_ALERTS_SLACK_API_URL"
SMTP_HOST_ENV, SMTP_PORT_ENV, SMTP_SECURITY_ENV = "INGEST_ALERTS_SMTP_HOST", "INGEST_ALERTS_SMTP_PORT", \
    "INGEST_ALERTS_SMTP_SECURITY"
SMTP_FROM_ENV, SMTP_TO_ENV = "INGEST_ALERTS_SMTP_FROM", "INGEST_ALERTS_SMTP_TO"
SMTP_USER_ENV, SMTP_PASSWORD_ENV = "INGEST_ALERTS_SMTP_USER", "INGEST_ALERTS_SMTP_PASSWORD"

WATCHED = (dg.DagsterEventType.RUN_FAILURE, dg.DagsterEventType.ASSET_CHECK_EVALUATION)
BATCH = 100  # events of each watched type read per tick
LISTED = 20  # list items shown in a Slack or e-mail text (the file holds them all)
PARTITION, RANGE_START, RANGE_END = ("dagster/partition", "dagster/asset_partition_range_start",
                                     "dagster/asset_partition_range_end")


@dataclass(frozen=True)
class Alert:
    """One failure: a failed check evaluation (`kind="check"`) or a failed run (`kind="run"`).

    `day`..`last_day` is the check's partition, else its run's partition or partition range (a visit for HST SVM);
    `message` is the check's description or the run's first step failure; `lists` are the check's list metadata
    (`unmatched` products, `problems` of a drop, ...); `event_id` is the event-log storage id (unique).
    """

    kind: Literal["check", "run"]
    severity: str
    day: str | None
    last_day: str | None
    asset: str | None
    check: str | None
    job: str | None
    run_id: str | None
    message: str
    lists: Mapping[str, list[str]]
    event_id: int
    at: str

    def headline(self) -> str:
        days = "" if self.day is None else f" on {self.day}" if self.last_day == self.day else \
            f" on {self.day}..{self.last_day}"
        what = f"check {self.asset}:{self.check}" if self.kind == "check" else f"run {self.run_id} of {self.job}"
        return f"{self.severity} {what} failed{days}: {self.message}"

    def text(self) -> str:
        lines = [self.headline()]
        for name, items in self.lists.items():
            more = f" ... ({len(items)} listed)" if len(items) > LISTED else ""
            lines.append(f"{name}: {', '.join(items[:LISTED])}{more}")
        if self.kind == "check":
            lines.append(f"run {self.run_id} of {self.job}")
        return "\n".join(lines)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


class AlertNotDelivered(Exception):
    """No sink that counts took the alert: it stays after the sensor's cursor."""


class SmtpSecurity(enum.Enum):
    STARTTLS = "starttls"
    SSL = "ssl"
    NONE = "none"


class AlertSinks(dg.ConfigurableResource):
    """Where alerts go besides the log: a JSON-lines file, Slack, e-mail; each is off while its settings are empty."""

    file: str = ""
    slack_channel: str = ""
    slack_token: str = ""
    slack_api_url: str = ""  # a Slack-compatible Web API; empty: slack_sdk's default
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_security: SmtpSecurity = SmtpSecurity.STARTTLS
    smtp_sender: str = ""
    smtp_recipients: list[str] = []
    smtp_user: str = ""
    smtp_password: str = ""
    timeout: int = 10  # seconds, for Slack and SMTP

    def write_file(self, alert: Alert) -> None:
        """Append the alert as one line, in one write, fsynced; a failed write leaves the file as it was."""
        path = Path(self.file)
        path.parent.mkdir(parents=True, exist_ok=True)
        line = (alert.to_json() + "\n").encode()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            size = os.fstat(fd).st_size
            try:
                if os.write(fd, line) != len(line):
                    raise OSError(f"short write to {path}")
                os.fsync(fd)
            except OSError:
                os.ftruncate(fd, size)
                raise
        finally:
            os.close(fd)

    def post_slack(self, alert: Alert) -> None:
        client = SlackResource(token=self.slack_token).get_client()
        if self.slack_api_url:
            client.base_url = self.slack_api_url.rstrip("/") + "/"
        client.timeout = self.timeout
        client.chat_postMessage(channel=self.slack_channel, text=alert.text())

    def send_email(self, alert: Alert) -> None:
        message = EmailMessage()
        message["Subject"] = f"[ingest alert] {alert.headline()}"[:200]
        message["From"] = self.smtp_sender or f"ingest-alerts@{socket.gethostname()}"
        message["To"] = ", ".join(self.smtp_recipients)
        message.set_content(alert.text() + "\n\n" + alert.to_json() + "\n")
        connect = smtplib.SMTP_SSL if self.smtp_security is SmtpSecurity.SSL else smtplib.SMTP
        with connect(self.smtp_host, self.smtp_port, timeout=self.timeout) as smtp:
            if self.smtp_security is SmtpSecurity.STARTTLS:
                smtp.starttls(context=ssl.create_default_context())
            if self.smtp_user:
                smtp.login(self.smtp_user, self.smtp_password)
            smtp.send_message(message)

    def optional_sinks(self) -> list[tuple[str, Callable[[Alert], None]]]:
        sinks = []
        if self.slack_channel and self.slack_token:
            sinks.append(("Slack", self.post_slack))
        if self.smtp_host and self.smtp_recipients:
            sinks.append(("e-mail", self.send_email))
        return sinks


@dataclass
class Outbox:
    """The sinks during one tick: remembers the optional sinks that failed, to skip them for the rest of it."""

    sinks: AlertSinks
    log: dg.DagsterLogManager
    down: set[str] = field(default_factory=set)

    def send(self, alert: Alert) -> None:
        """Log the alert, write it to the file, then the optional sinks; AlertNotDelivered when none counts."""
        self.log.warning(alert.headline())
        if self.sinks.file:
            try:
                self.sinks.write_file(alert)
            except OSError as err:
                raise AlertNotDelivered(f"not written to {self.sinks.file}: {err}") from err
        optional = self.sinks.optional_sinks()
        delivered = bool(self.sinks.file) or not optional
        for name, send in optional:
            if name in self.down:
                continue
            try:
                send(alert)
                delivered = True
            except Exception as err:  # noqa: BLE001 - any failure of a best-effort sink is only logged
                self.down.add(name)
                self.log.error(f"alert of event {alert.event_id} not sent to {name} ({type(err).__name__}: "
                               f"{first_line(str(err))}); {name} is skipped for the rest of this tick")
        if not delivered:
            raise AlertNotDelivered(f"no sink took the alert of event {alert.event_id}: {', '.join(sorted(self.down))}"
                                    " failed")


def first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def run_days(run: dg.DagsterRun | None) -> tuple[str | None, str | None]:
    """A run's partition, or its partition range, as (first, last)."""
    if run is None:
        return None, None
    if PARTITION in run.tags:
        return run.tags[PARTITION], run.tags[PARTITION]
    return run.tags.get(RANGE_START), run.tags.get(RANGE_END)


def metadata_lists(metadata: Mapping[str, dg.MetadataValue]) -> dict[str, list[str]]:
    """The non-empty JSON list values of a check's metadata, items as text."""
    return {name: [item if isinstance(item, str) else json.dumps(item, sort_keys=True) for item in value.data]
            for name, value in metadata.items()
            if isinstance(value, dg.JsonMetadataValue) and isinstance(value.data, list) and value.data}


def check_alert(event_id: int, entry: EventLogEntry, run: dg.DagsterRun | None) -> Alert | None:
    """The alert of a failed check evaluation; None when it passed."""
    evaluation = entry.dagster_event.event_specific_data
    if evaluation.passed:
        return None
    day, last_day = (evaluation.partition, evaluation.partition) if evaluation.partition else run_days(run)
    return Alert(kind="check", severity=evaluation.severity.value, day=day, last_day=last_day,
                 asset=evaluation.asset_key.to_user_string(), check=evaluation.check_name, job=entry.job_name,
                 run_id=entry.run_id or None,
                 message=first_line(evaluation.description or "") or f"{evaluation.check_name} failed",
                 lists=metadata_lists(evaluation.metadata), event_id=event_id, at=_iso(entry.timestamp))


def run_alert(event_id: int, entry: EventLogEntry, run: dg.DagsterRun | None) -> Alert:
    """The alert of a failed run: its first step failure (a dagster.Failure's description), else the run's error."""
    failure = entry.dagster_event.event_specific_data
    step = failure.first_step_failure_event.step_failure_data if failure and failure.first_step_failure_event else None
    if step is not None and step.user_failure_data is not None:
        message = step.user_failure_data.description or ""
    elif step is not None and step.error is not None:
        message = step.error.message
    else:
        message = failure.error.message if failure and failure.error else entry.message
    day, last_day = run_days(run)
    return Alert(kind="run", severity=dg.AssetCheckSeverity.ERROR.value, day=day, last_day=last_day, asset=None,
                 check=None, job=entry.job_name, run_id=entry.run_id, message=first_line(message) or "run failed",
                 lists={}, event_id=event_id, at=_iso(entry.timestamp))


def _iso(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, tz=dt.timezone.utc).isoformat(timespec="seconds")


def new_events(instance: dg.DagsterInstance, after: int) -> list[tuple[int, EventLogEntry]]:
    """The watched events after storage id `after`, ascending; up to the end of any type's full batch (the rest
    comes on the next tick, so no event of the other type is skipped)."""
    batches = [instance.event_log_storage.get_logs_for_all_runs_by_log_id(
        after_cursor=after, dagster_event_type=event_type, limit=BATCH) for event_type in WATCHED]
    horizon = min((max(batch) for batch in batches if len(batch) == BATCH), default=None)
    return sorted(((event_id, entry) for batch in batches for event_id, entry in batch.items()
                   if horizon is None or event_id <= horizon), key=lambda event: event[0])


@dg.sensor(minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
def ingest_alerts_sensor(context: dg.SensorEvaluationContext, ingest_alerts: AlertSinks):
    """Alert once on every failed run and every failed ERROR or WARN check evaluation since the sensor first ran."""
    instance = context.instance
    if context.cursor is None:  # the first tick: failures from now on, not the instance's history
        start = instance.event_log_storage.get_maximum_record_id() or 0
        context.update_cursor(str(start))
        return dg.SkipReason(f"alerting on failures after event {start}")
    cursor = reached = int(context.cursor)
    outbox, sent = Outbox(ingest_alerts, context.log), 0
    for event_id, entry in new_events(instance, cursor):
        try:
            run = instance.get_run_by_id(entry.run_id)
            if entry.dagster_event_type == dg.DagsterEventType.RUN_FAILURE:
                alert = run_alert(event_id, entry, run)
            else:
                alert = check_alert(event_id, entry, run)
            if alert is not None:
                outbox.send(alert)
                sent += 1
        except Exception as err:
            if reached == cursor:
                raise
            context.log.error(f"stopped before event {event_id}, retried on the next tick: {err}")
            break
        reached = event_id
    context.update_cursor(str(reached))
    return dg.SkipReason(f"{sent} alerts sent, up to event {reached}")


def _secret(name: str) -> str:
    """The variable itself when set, so the UI shows its name, never its value."""
    return dg.EnvVar(name) if os.environ.get(name) else ""


def alert_sinks_from_env() -> AlertSinks:
    """The sinks configured by INGEST_ALERTS_* (and JWST_CAL_OUTPUT for the default file)."""
    env = os.environ.get
    output = env("JWST_CAL_OUTPUT")
    return AlertSinks(
        file=env(FILE_ENV) or (str(Path(output) / "alerts.jsonl") if output else ""),
        slack_channel=env(SLACK_CHANNEL_ENV, ""), slack_token=_secret(SLACK_TOKEN_ENV),
        slack_api_url=env(SLACK_API_URL_ENV, ""),
        smtp_host=env(SMTP_HOST_ENV, ""), smtp_port=int(env(SMTP_PORT_ENV) or 587),
        smtp_security=SmtpSecurity(env(SMTP_SECURITY_ENV) or "starttls"), smtp_sender=env(SMTP_FROM_ENV, ""),
        smtp_recipients=[a.strip() for a in env(SMTP_TO_ENV, "").split(",") if a.strip()],
        smtp_user=env(SMTP_USER_ENV, ""), smtp_password=_secret(SMTP_PASSWORD_ENV),
    )


defs = dg.Definitions(sensors=[ingest_alerts_sensor], resources={"ingest_alerts": alert_sinks_from_env()})
