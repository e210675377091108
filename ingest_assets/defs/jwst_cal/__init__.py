"""Dagster wiring of the JWST calibration ingest (group `jwst_cal`)."""

import os

import dagster as dg

from ingest_assets.defs.jwst_cal.assets import jwst_ingest_days
from ingest_assets.defs.jwst_cal.automation import jwst_cal_catchup_schedule, jwst_cal_daily_job, jwst_cal_drop_sensor
from ingest_assets.defs.jwst_cal.resources import JwstCalStore
from ingest_assets.jwst_cal.store import DEFAULT_LOCK_TIMEOUT

JWST_ASSETS = [jwst_ingest_days]

defs = dg.Definitions(
    assets=JWST_ASSETS,
    jobs=[jwst_cal_daily_job],
    sensors=[jwst_cal_drop_sensor],
    schedules=[jwst_cal_catchup_schedule],
    resources={"jwst_cal_store": JwstCalStore(
        inbox_dir=dg.EnvVar("JWST_CAL_INBOX"),
        output_dir=dg.EnvVar("JWST_CAL_OUTPUT"),
        save_l1=os.environ.get("JWST_CAL_SAVE_L1", "").lower() in ("1", "true", "yes"),
        lock_timeout=float(os.environ.get("JWST_CAL_LOCK_TIMEOUT", DEFAULT_LOCK_TIMEOUT)),
    )},
    executor=dg.in_process_executor,
)
