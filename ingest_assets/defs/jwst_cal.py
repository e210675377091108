"""Dagster wiring of the JWST calibration ingest (group `jwst_cal`): daily assets, checks, job, sensor, schedule.

raw drop -> scrubbed exposures -> priors (self-dependent: the day's state transition, committed to the output
database) -> matched products (L3 match-rate checks) -> training tables.
"""

# No `from __future__ import annotations`: Dagster resolves resource and input annotations at decoration time.

import datetime as dt
import json
import os

import dagster as dg
import pandas as pd

from ingest_assets.defs.folders import IngestFolders
from ingest_assets.defs.partitioned_pickle import PartitionedPickleIOManager
from ingest_assets.jwst_cal.day import DayOutcome
from ingest_assets.jwst_cal.drops import (
    DropError, discover_drops, drop_date, drop_file_name, drop_oddities, drop_problems, read_drop_text, type_drop,
)
from ingest_assets.jwst_cal.features import IngestError
from ingest_assets.jwst_cal.pipeline import ingest_scrubbed
from ingest_assets.jwst_cal.store import DEFAULT_LOCK_TIMEOUT, ExportIncompleteError, StoreError
from ingest_assets.jwst_cal.scrub import ScrubbedDrop, is_level1, is_level3, scrub_drop

GROUP = "jwst_cal"
IO_MANAGER = "jwst_cal_io_manager"
SERIAL_TAG = {"ingest/serial": "jwst_cal"}
# JWST's launch day: every drop is later. end_offset=1 lets a drop named for today run today.
daily_partitions = dg.DailyPartitionsDefinition(start_date="2021-12-25", timezone="UTC", end_offset=1)
PREVIOUS_DAY = dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=-1)
LISTED_ODDITIES = 100  # rows listed in a WARN check's metadata; n_rows counts them all


class JwstCalPaths(IngestFolders):
    """Where the daily drops arrive and where the output database (CSV files + jwst-cal.duckdb) lives."""

    save_l1: bool = False
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT


def _failure(err: Exception, **metadata) -> dg.Failure:
    if isinstance(err, DropError):
        metadata.update(file=err.path.name, line=err.line or 0, column=err.column or "")
    return dg.Failure(description=str(err), metadata=metadata)


@dg.asset(
    partitions_def=daily_partitions, group_name=GROUP, io_manager_key=IO_MANAGER, kinds={"csv", "pandas"},
    check_specs=[
        dg.AssetCheckSpec(
            "drop_is_valid", asset="jwst_raw_drop", blocking=True,
            description="Required columns present; ImageSize and the coordinate columns numeric, ImageSize positive; "
                        "Dataset never empty, with a program number on L1/L3 rows.",
        ),
        dg.AssetCheckSpec(
            "l3_rows_have_image_size", asset="jwst_raw_drop",
            description="Every L3 row has an ImageSize (one without is ingested but never becomes a training row).",
        ),
    ],
)
def jwst_raw_drop(context: dg.AssetExecutionContext, jwst_cal_paths: JwstCalPaths):
    """The day's raw drop `YYYY-MM-DD_DDD.csv` from the inbox, typed (text columns stay text, D6)."""
    path = jwst_cal_paths.inbox / drop_file_name(context.partition_key)
    if not path.exists():
        raise dg.Failure(description=f"no drop {path.name} in {jwst_cal_paths.inbox}", metadata={"file": path.name})
    try:
        text = read_drop_text(path)
    except DropError as err:
        raise _failure(err) from err
    problems = drop_problems(text)
    oddities = drop_oddities(text)
    frame = text.cells if problems else type_drop(text)
    dag = frame["DagNodeName"] if "DagNodeName" in frame else pd.Series(dtype=str)
    yield dg.Output(frame, metadata={
        "file": dg.MetadataValue.path(str(path)), "dagster/row_count": len(frame), "columns": len(frame.columns),
        "rows_l1_dag": int(is_level1(dag).sum()), "rows_l3_dag": int(is_level3(dag).sum()),
    })
    yield dg.AssetCheckResult(
        check_name="drop_is_valid", passed=not problems, severity=dg.AssetCheckSeverity.ERROR,
        metadata={"problems": dg.MetadataValue.json([str(p) for p in problems]), "n_problems": len(problems)},
    )
    yield dg.AssetCheckResult(
        check_name="l3_rows_have_image_size", passed=not oddities, severity=dg.AssetCheckSeverity.WARN,
        metadata={"rows": dg.MetadataValue.json([str(o) for o in oddities[:LISTED_ODDITIES]]),
                  "n_rows": len(oddities)},
    )


@dg.asset(partitions_def=daily_partitions, group_name=GROUP, io_manager_key=IO_MANAGER, kinds={"pandas"})
def jwst_scrubbed_exposures(context: dg.AssetExecutionContext, jwst_raw_drop: pd.DataFrame) -> ScrubbedDrop:
    """The drop's science rows: L1/L3 by DagNodeName, deduplicated, L3 exposure types only, `params`, MIRI MRS
    channels; mosaic rows split off."""
    day = dt.date.fromisoformat(context.partition_key)
    try:
        scrubbed = scrub_drop(jwst_raw_drop, day, drop_file_name(day))
    except DropError as err:
        raise _failure(err) from err
    context.add_output_metadata({
        "rows_in": scrubbed.rows_read, "dagster/row_count": len(scrubbed.science), "rows_l1": scrubbed.n_l1,
        "rows_l3": scrubbed.n_l3, "mosaics": len(scrubbed.mosaics), "mrs_ch24_dropped": scrubbed.mrs_ch24_dropped,
    })
    return scrubbed


def _day_metadata(outcome: DayOutcome) -> dict:
    r = outcome.report
    return {
        "priors_pulled": r["priors_pulled"], "backlog": r["backlog"], "products": r["products"],
        "products_matched": r["products_matched"], "l3_matched": r["l3_matched"], "l3_total": r["l3_total"],
        "match_rate": float(r["match_rate"]), "reprocessed": len(r["reprocessed"]),
        "training_rows": r["training_rows"],
    }


@dg.asset(
    partitions_def=daily_partitions, group_name=GROUP, io_manager_key=IO_MANAGER, kinds={"duckdb", "csv"},
    deps=[dg.AssetDep("jwst_priors", partition_mapping=PREVIOUS_DAY)],
    backfill_policy=dg.BackfillPolicy.single_run(),
)
def jwst_priors(context: dg.AssetExecutionContext, jwst_scrubbed_exposures, jwst_cal_paths: JwstCalPaths):
    """The exposures carried between days, and the day's state transition that moves them.

    Pulls the backlog rows whose params equal an L3 of the day, groups the working set into products, matches them,
    applies reprocessed products and commits the day to the output database (one transaction, then the CSV
    export). Depends on its own previous day; a range runs in one step, day by day in date order.
    """
    keys = sorted(context.partition_keys)
    scrubbed = jwst_scrubbed_exposures if len(keys) > 1 else {keys[0]: jwst_scrubbed_exposures}
    outcomes = {}
    for key in keys:
        try:
            outcome = ingest_scrubbed(scrubbed[key], jwst_cal_paths.output, save_l1=jwst_cal_paths.save_l1,
                                      lock_timeout=jwst_cal_paths.lock_timeout)
        except (DropError, IngestError, StoreError, ExportIncompleteError) as err:
            raise _failure(err, day=key) from err
        context.add_asset_metadata(_day_metadata(outcome), partition_key=key)
        context.log.info(f"{key}: {_day_metadata(outcome)}")
        outcomes[key] = outcome.delta()
    return outcomes if len(keys) > 1 else outcomes[keys[0]]


@dg.asset(
    partitions_def=daily_partitions, group_name=GROUP, io_manager_key=IO_MANAGER, kinds={"pandas"},
    check_specs=[
        dg.AssetCheckSpec("l3_match_rate_is_100pct", asset="jwst_matched_products",
                          description="Every L3 product of the day's working set matched a group or is reprocessed."),
        dg.AssetCheckSpec("no_duplicate_l3_claims", asset="jwst_matched_products",
                          description="No L3 product is claimed by more than one constructed product."),
    ],
)
def jwst_matched_products(context: dg.AssetExecutionContext, jwst_priors: DayOutcome):
    """The day's constructed products with the L3 product each matched (`pname`), bucket and exposure count."""
    r = jwst_priors.report
    products = jwst_priors.products
    yield dg.Output(products, metadata={
        "dagster/row_count": len(products), **_day_metadata(jwst_priors),
        "preview": dg.MetadataValue.md(products.head(20).to_markdown(index=False)),
    })
    yield dg.AssetCheckResult(
        check_name="l3_match_rate_is_100pct", passed=not r["l3_unmatched"], severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "match_rate": float(r["match_rate"]), "l3_total": r["l3_total"], "l3_matched": r["l3_matched"],
            "unmatched": dg.MetadataValue.json(r["l3_unmatched"]),
            "multi_match_losers": dg.MetadataValue.json(r["multi_match_losers"]),
        },
    )
    yield dg.AssetCheckResult(
        check_name="no_duplicate_l3_claims", passed=not r["duplicate_claims"], severity=dg.AssetCheckSeverity.WARN,
        metadata={"claims": dg.MetadataValue.json(r["duplicate_claims"])},
    )


@dg.asset(partitions_def=daily_partitions, group_name=GROUP, io_manager_key=IO_MANAGER, kinds={"csv", "pandas"})
def jwst_training_tables(context: dg.AssetExecutionContext, jwst_priors: DayOutcome,
                         jwst_cal_paths: JwstCalPaths) -> dict:
    """The encoded training rows the day added to train-{image,spec,tac,fgs}.csv (the files hold every day)."""
    rows = jwst_priors.train_rows
    context.add_output_metadata({
        **{f"rows_{name}": len(frame) for name, frame in rows.items()},
        "output_dir": dg.MetadataValue.path(str(jwst_cal_paths.output.resolve())),
    })
    return rows


JWST_ASSETS = [jwst_raw_drop, jwst_scrubbed_exposures, jwst_priors, jwst_matched_products, jwst_training_tables]

jwst_cal_daily_job = dg.define_asset_job(
    "jwst_cal_daily_job", selection=dg.AssetSelection.groups(GROUP), tags=SERIAL_TAG,
    description="Ingest one day's drop (runs carry the ingest/serial tag: one day at a time, in submission order).",
)


@dg.sensor(job=jwst_cal_daily_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
def jwst_cal_drop_sensor(context: dg.SensorEvaluationContext, jwst_cal_paths: JwstCalPaths):
    """Request a run for every new or re-delivered `YYYY-MM-DD_DDD.csv` in the inbox, oldest day first."""
    seen = json.loads(context.cursor) if context.cursor else {}
    if not jwst_cal_paths.inbox.is_dir():
        return dg.SkipReason(f"no inbox {jwst_cal_paths.inbox}")
    drops, ignored = discover_drops(jwst_cal_paths.inbox)
    if ignored:
        skipped = "; ".join(f"{name} ({reason})" for name, reason in ignored)
        context.log.warning(f"ignoring files not named YYYY-MM-DD_DDD.csv: {skipped}")
    requests = []
    for path in drops:
        mtime = os.path.getmtime(path)
        if seen.get(path.name) == mtime:
            continue
        seen[path.name] = mtime
        day = drop_date(path.name).isoformat()
        requests.append(dg.RunRequest(partition_key=day, run_key=f"{path.name}:{mtime}"))
    if not requests:
        return dg.SensorResult(skip_reason="no new drops", cursor=json.dumps(seen, sort_keys=True))
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(seen, sort_keys=True))


@dg.schedule(job=jwst_cal_daily_job, cron_schedule="0 6 * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.STOPPED)
def jwst_cal_catchup_schedule(context: dg.ScheduleEvaluationContext, jwst_cal_paths: JwstCalPaths):
    """At 06:00 UTC, ingest yesterday's drop if it is in the inbox and the sensor has not ingested it yet."""
    day = (context.scheduled_execution_time - dt.timedelta(days=1)).date()
    if not (jwst_cal_paths.inbox / drop_file_name(day)).exists():
        return dg.SkipReason(f"no drop {drop_file_name(day)} in the inbox")
    done = context.instance.get_materialized_partitions(dg.AssetKey("jwst_training_tables"))
    if day.isoformat() in done:
        return dg.SkipReason(f"{day} already ingested")
    return dg.RunRequest(partition_key=day.isoformat(), run_key=f"catchup:{day}")


def jwst_cal_resources(inbox_dir: str, output_dir: str, storage_dir: str, save_l1: bool = False,
                       lock_timeout: float = DEFAULT_LOCK_TIMEOUT) -> dict:
    """The resources of this group for given folders."""
    return {
        "jwst_cal_paths": JwstCalPaths(inbox_dir=inbox_dir, output_dir=output_dir, save_l1=save_l1,
                                       lock_timeout=lock_timeout),
        IO_MANAGER: PartitionedPickleIOManager(base_dir=storage_dir),
    }


defs = dg.Definitions(
    assets=JWST_ASSETS,
    jobs=[jwst_cal_daily_job],
    sensors=[jwst_cal_drop_sensor],
    schedules=[jwst_cal_catchup_schedule],
    resources=jwst_cal_resources(
        inbox_dir=os.environ.get("JWST_CAL_INBOX", "data/jwst_cal/inbox"),
        output_dir=os.environ.get("JWST_CAL_OUTPUT", "data/jwst_cal/out"),
        storage_dir=os.environ.get("JWST_CAL_STORAGE", "data/jwst_cal/storage"),
        save_l1=os.environ.get("JWST_CAL_SAVE_L1", "").lower() in ("1", "true", "yes"),
        lock_timeout=float(os.environ.get("JWST_CAL_LOCK_TIMEOUT", DEFAULT_LOCK_TIMEOUT)),
    ),
)
