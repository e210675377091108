"""The day partitions of the JWST calibration ingest: one per drop `YYYY-MM-DD_DDD.csv`."""

import datetime as dt
import os

import dagster as dg

# The start of JWST science operations: the first day a drop can be named for. JWST_CAL_FIRST_DAY moves it and
# JWST_CAL_LAST_DAY (inclusive) closes the range, so that a deployment shows only the days it holds.
SCIENCE_START = "2022-07-12"


def day_partitions(first_day: str, last_day: str | None) -> dg.DailyPartitionsDefinition:
    """Daily partitions from `first_day` to `last_day` (open-ended: up to today, whose drop may already run)."""
    if last_day is None:
        return dg.DailyPartitionsDefinition(start_date=first_day, timezone="UTC", end_offset=1)
    end = dt.date.fromisoformat(last_day) + dt.timedelta(days=1)
    return dg.DailyPartitionsDefinition(start_date=first_day, end_date=end.isoformat(), timezone="UTC")


daily_partitions = day_partitions(os.environ.get("JWST_CAL_FIRST_DAY", SCIENCE_START),
                                  os.environ.get("JWST_CAL_LAST_DAY") or None)
PREVIOUS_DAY = dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=-1)
