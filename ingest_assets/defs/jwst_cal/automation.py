"""How days get ingested without a person: the drop sensor, the catch-up schedule and the job they launch."""

import datetime as dt
import json
import os

import dagster as dg

from ingest_assets.defs.jwst_cal.assets import GROUP, PRIORS
from ingest_assets.defs.jwst_cal.resources import JwstCalStore
from ingest_assets.jwst_cal.drops import discover_drops, drop_date, drop_file_name

SERIAL_TAG = {"ingest/serial": "jwst_cal"}
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"

jwst_cal_daily_job = dg.define_asset_job(
    "jwst_cal_daily_job", selection=dg.AssetSelection.groups(GROUP), tags=SERIAL_TAG,
    executor_def=dg.in_process_executor,
    description="Ingest a day, or a range of consecutive days, in one process (runs carry the ingest/serial tag: "
                "one at a time, in submission order).",
)


def consecutive_runs(days: list[dt.date]) -> list[tuple[dt.date, dt.date]]:
    """Sorted days grouped into runs of consecutive dates, as (first, last)."""
    runs: list[tuple[dt.date, dt.date]] = []
    for day in sorted(days):
        if runs and day - runs[-1][1] == dt.timedelta(days=1):
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


def range_request(first: dt.date, last: dt.date, run_key: str) -> dg.RunRequest:
    """A run of the daily job over the days first..last (one partition when they are equal)."""
    if first == last:
        return dg.RunRequest(partition_key=first.isoformat(), run_key=run_key)
    return dg.RunRequest(run_key=run_key, tags={RANGE_START: first.isoformat(), RANGE_END: last.isoformat()})


@dg.sensor(job=jwst_cal_daily_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
def jwst_cal_drop_sensor(context: dg.SensorEvaluationContext, jwst_cal_store: JwstCalStore):
    """Ingest new or re-delivered drops: one run per block of consecutive days, oldest first."""
    if not jwst_cal_store.inbox.is_dir():
        return dg.SkipReason(f"no inbox {jwst_cal_store.inbox}")
    seen = json.loads(context.cursor) if context.cursor else {}
    drops, ignored = discover_drops(jwst_cal_store.inbox)
    if ignored:
        context.log.warning("ignoring " + "; ".join(f"{name} ({reason})" for name, reason in ignored))
    new = {path.name: os.path.getmtime(path) for path in drops if seen.get(path.name) != os.path.getmtime(path)}
    seen.update(new)
    cursor = json.dumps(seen, sort_keys=True)
    if not new:
        return dg.SensorResult(skip_reason="no new drops", cursor=cursor)
    requests = []
    for first, last in consecutive_runs([drop_date(name) for name in new]):
        names = [drop_file_name(first + dt.timedelta(days=i)) for i in range((last - first).days + 1)]
        run_key = ";".join(f"{name}:{new[name]}" for name in names)
        requests.append(range_request(first, last, run_key))
    return dg.SensorResult(run_requests=requests, cursor=cursor)


@dg.schedule(job=jwst_cal_daily_job, cron_schedule="0 6 * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.STOPPED)
def jwst_cal_catchup_schedule(context: dg.ScheduleEvaluationContext, jwst_cal_store: JwstCalStore):
    """At 06:00 UTC, ingest yesterday's drop if it is in the inbox and the sensor has not ingested it yet."""
    day = (context.scheduled_execution_time - dt.timedelta(days=1)).date()
    if not jwst_cal_store.drop_path(day.isoformat()).exists():
        return dg.SkipReason(f"no drop {drop_file_name(day)} in the inbox")
    if day.isoformat() in context.instance.get_materialized_partitions(PRIORS):
        return dg.SkipReason(f"{day} already ingested")
    return dg.RunRequest(partition_key=day.isoformat(), run_key=f"catchup:{day}")
