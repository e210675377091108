"""Benchmark of a UI backfill: a year of JWST drops backfilled over the whole group through a real `dagster dev`.

Starts the webserver and daemon on a fresh DAGSTER_HOME with deploy/dagster.yaml (as `make ui` does), stops the drop
sensor, links the generated year (see bench_year.py) into an empty inbox, launches the backfill of all 365 days
with the UI's own GraphQL mutation, and waits until it has finished. Prints the wall time from launch to the end,
the runs the daemon made (range, status, duration, and where the time from launch to end went), how many days were
ingested, and writes the figures to benchmarks/results/backfill-N-days.json (git-ignored).

This machine's speed changes by the hour (the same run by 30% and more): before the backfill the benchmark times two
references in this process, so that runs of different hours compare as "in the run / reference": the first 10 drops
ingested one by one (engine and store, no Dagster; median of 3), which runs the code under test (runs of one code
compare by it), and the machine's own, which does not (runs of different codes compare by it): the same 10 drops read,
sorted, grouped, written as CSV text and through DuckDB with pandas and DuckDB alone (median of 5).

Usage: python benchmarks/bench_backfill.py [--inbox DIR] [--days N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

import duckdb
import pandas as pd
from bench_year import CACHE, HERE, REPO, generated_year

sys.path.insert(0, str(REPO))
import dagster as dg  # noqa: E402

from ingest_assets.defs.jwst_cal import JWST_ASSETS  # noqa: E402
from ingest_assets.defs.jwst_cal.assets import PRIORS  # noqa: E402
from ingest_assets.jwst_cal.pipeline import ingest_drop  # noqa: E402
from ingest_assets_tests.dagster_dev import dagster_dev, graphql, wait_for  # noqa: E402
from ingest_assets_tests.test_jwst_ui import LAUNCH, SENSOR, SENSOR_ID, STOP, backfill_finished, day_range  # noqa: E402

TIMEOUT = 3600
REFERENCE_DAYS, REFERENCE_ROUNDS, MACHINE_ROUNDS = 10, 3, 5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inbox", type=Path, help="folder of YYYY-MM-DD_DDD.csv drops (default: the generated year)")
    parser.add_argument("--days", type=int, default=365, help="backfill only the first N days")
    args = parser.parse_args()
    drops = sorted((args.inbox or generated_year()).glob("*_*.csv"))[:args.days]
    days = [p.name.split("_")[0] for p in drops]
    work = CACHE / "backfill"
    shutil.rmtree(work, ignore_errors=True)
    inbox, out, home = work / "inbox", work / "out", work / "dagster_home"
    inbox.mkdir(parents=True)
    reference = reference_seconds(drops[:REFERENCE_DAYS], work / "reference")
    machine = machine_seconds(drops[:REFERENCE_DAYS])
    env = {"JWST_CAL_INBOX": str(inbox), "JWST_CAL_OUTPUT": str(out), "JWST_CAL_SAVE_L1": "1",
           "JWST_CAL_FIRST_DAY": days[0], "JWST_CAL_LAST_DAY": days[-1],
           "HST_SVM_INBOX": str(work / "svm-inbox"), "HST_SVM_OUTPUT": str(work / "svm-out")}
    with dagster_dev(home, env, work / "dagster_dev.log") as server:
        sensor_id = graphql(server.port, SENSOR_ID, {"s": SENSOR})["sensorOrError"]["id"]
        graphql(server.port, STOP, {"id": sensor_id})
        for path in drops:
            os.link(path, inbox / path.name)
        keys = [{"path": key.path} for assets in JWST_ASSETS for key in assets.keys]
        start = time.monotonic()
        answer = graphql(server.port, LAUNCH, {"params": {"partitionNames": days, "assetSelection": keys}})
        backfill_id = answer["launchPartitionBackfill"]["backfillId"]
        with dg.DagsterInstance.from_config(str(home)) as instance:  # one instance for every poll: a light observer
            assert wait_for(lambda: backfill_finished(instance, backfill_id), TIMEOUT, server), \
                "the backfill did not finish"
            seconds = time.monotonic() - start
            backfill = instance.get_backfill(backfill_id)
            runs = sorted(instance.get_run_records(dg.RunsFilter(tags={"dagster/backfill": backfill_id})),
                          key=lambda r: r.start_time)
            ingested = len(instance.get_materialized_partitions(PRIORS) & set(days))
            timelines = [timeline(instance, backfill, record) for record in runs]
    figures = {
        "days": len(days), "days_ingested": ingested, "backfill_status": backfill.status.value,
        "wall_seconds": round(seconds, 1),
        "reference_seconds": round(reference, 2),
        "machine_seconds": round(machine, 2),
        "runs": [{"days": day_range(r.dagster_run), "status": r.dagster_run.status.value,
                  "seconds": round(r.end_time - r.start_time, 1), "timeline": t} for r, t in zip(runs, timelines)],
        "output_csv_mib": round(sum(p.stat().st_size for p in out.glob("*.csv")) / 2**20, 1),
        "measured": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    print(json.dumps(figures, indent=2))
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    (results / f"backfill-{len(days)}-days.json").write_text(json.dumps(figures, indent=2) + "\n")


def reference_seconds(drops: list[Path], folder: Path) -> float:
    """The machine's speed at the time: seconds to ingest `drops` one by one into an empty folder, median of
    REFERENCE_ROUNDS."""
    times = []
    for _ in range(REFERENCE_ROUNDS):
        shutil.rmtree(folder, ignore_errors=True)
        start = time.perf_counter()
        for path in drops:
            ingest_drop(path, folder, save_l1=True)
        times.append(time.perf_counter() - start)
    shutil.rmtree(folder)
    return statistics.median(times)


def machine_seconds(drops: list[Path]) -> float:
    """The machine's speed at the time, whatever the code under test: seconds to read `drops` with pandas, sort and
    group them, write them as CSV text and into a DuckDB table read back, median of MACHINE_ROUNDS."""
    times = []
    for _ in range(MACHINE_ROUNDS):
        start = time.perf_counter()
        with duckdb.connect() as con:
            for path in drops:
                frame = pd.read_csv(path)
                frame = frame.sort_values(list(frame.columns[:2]), kind="stable")
                frame.groupby(frame.columns[0]).size()
                frame.to_csv(io.StringIO(), index=False)
                con.register("incoming", frame)
                con.execute("CREATE OR REPLACE TABLE copy AS SELECT * FROM incoming")
                con.unregister("incoming")
                con.execute("SELECT * FROM copy").fetchnumpy()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def timeline(instance: dg.DagsterInstance, backfill, record: dg.RunRecord) -> dict[str, float | int]:
    """Seconds from the launch to the run's creation by the backfill daemon (its wake-up), recording the run's
    planned materializations, on to the run's start (queue, launch, process start), in the run, and from its end to
    the backfill's (the daemon's next wake-up); with the number of events of each kind and the time to record one."""
    created = record.create_timestamp.timestamp()
    planned = [e.timestamp for e in instance.all_logs(record.dagster_run.run_id,
                                                      of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED)]
    recorded = instance.all_logs(record.dagster_run.run_id, of_type={
        dg.DagsterEventType.ASSET_MATERIALIZATION, dg.DagsterEventType.ASSET_CHECK_EVALUATION})
    gaps = [after.timestamp - before.timestamp for before, after in zip(recorded, recorded[1:])]
    return {
        "launch_to_run_created": round(created - backfill.backfill_timestamp, 1),
        "planned_events": len(planned),
        "recording_planned_events": round(max(planned) - created, 1) if planned else 0.0,
        "run_created_to_started": round(record.start_time - created, 1),
        "in_the_run": round(record.end_time - record.start_time, 1),
        "events_in_the_run": len(recorded),
        # the step yields a day's events back to back (a group's after its commit): the median gap between two
        # consecutive ones is the time Dagster takes to record one
        "recording_one_event": round(statistics.median(gaps), 4) if gaps else None,
        "run_end_to_backfill_end": round(backfill.backfill_end_timestamp - record.end_time, 1)
        if backfill.backfill_end_timestamp else None,
    }


if __name__ == "__main__":
    main()
