"""The JWST Dagster assets, checks, sensor and schedule on a real Dagster instance."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

import dagster as dg
import pytest

from ingest_assets.defs.jwst_cal import (
    JWST_ASSETS, jwst_cal_catchup_schedule, jwst_cal_drop_sensor, jwst_cal_resources,
)
from ingest_assets.definitions import defs

from .golden import compare_outputs, golden_days

SMALL = golden_days("small-s2")


@pytest.fixture()
def folders(tmp_path: Path) -> dict[str, Path]:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for day in SMALL:
        shutil.copy(day.drop, inbox)
    return {"inbox": inbox, "out": tmp_path / "out", "storage": tmp_path / "storage"}


def resources(folders, save_l1=True):
    return jwst_cal_resources(str(folders["inbox"]), str(folders["out"]), str(folders["storage"]), save_l1=save_l1)


def checks(result) -> dict[str, dg.AssetCheckEvaluation]:
    return {c.check_name: c for c in result.get_asset_check_evaluations()}


def test_definitions_load_and_only_the_priors_chain_is_offset():
    dg.Definitions.validate_loadable(defs)
    defs.resolve_job_def("jwst_cal_daily_job")
    graph = defs.resolve_asset_graph()
    assert graph.get(dg.AssetKey("jwst_priors")).has_self_dependency
    for key in graph.get_all_asset_keys():
        for parent in graph.get(key).parent_keys:
            mapping = graph.get_partition_mapping(key, parent)
            offsets = (getattr(mapping, "start_offset", 0), getattr(mapping, "end_offset", 0))
            shifted = isinstance(mapping, dg.TimeWindowPartitionMapping) and offsets != (0, 0)
            assert not shifted or parent == key, f"{parent.to_user_string()} -> {key.to_user_string()} is offset"


def test_days_materialize_in_order_with_checks_and_metadata(folders):
    with dg.instance_for_test() as instance:
        for day in SMALL[:3]:
            result = dg.materialize(JWST_ASSETS, partition_key=day.date, resources=resources(folders),
                                    instance=instance)
            assert result.success
            found = checks(result)
            assert found["drop_is_valid"].passed
            assert found["l3_match_rate_is_100pct"].passed == (day.run["l3_unmatched"] == [])
            assert found["l3_match_rate_is_100pct"].severity == dg.AssetCheckSeverity.ERROR
            unmatched = found["l3_match_rate_is_100pct"].metadata["unmatched"].value
            assert sorted(unmatched) == sorted(day.run["l3_unmatched"])
            assert compare_outputs(day.expected_dir, folders["out"], previous_expected_dir=day.previous_expected_dir,
                                   run=day.run) == []
        priors = instance.fetch_materializations(dg.AssetKey("jwst_priors"), limit=10).records
        meta = {r.partition_key: r.asset_materialization.metadata for r in priors}
        assert set(meta) == {d.date for d in SMALL[:3]}
        assert meta[SMALL[1].date]["priors_pulled"].value == SMALL[1].run["prior_rows_in_df"]
        assert 0 < meta[SMALL[0].date]["match_rate"].value < 1


def test_a_range_of_days_runs_in_one_step_in_date_order(folders):
    with dg.instance_for_test() as instance:
        for day in SMALL:
            assert dg.materialize(JWST_ASSETS[:2], partition_key=day.date, resources=resources(folders),
                                  instance=instance).success
        # A single-run backfill: one step receives every partition key of the range.
        job = dg.define_asset_job("range", selection=["jwst_priors"]).resolve(
            asset_graph=dg.Definitions(assets=JWST_ASSETS, resources=resources(folders)).resolve_asset_graph())
        run = job.execute_in_process(
            instance=instance, resources=resources(folders),
            tags={"dagster/asset_partition_range_start": SMALL[0].date,
                  "dagster/asset_partition_range_end": SMALL[-1].date},
        )
        assert run.success
        done = instance.get_materialized_partitions(dg.AssetKey("jwst_priors"))
        assert done == {d.date for d in SMALL}
        last = SMALL[-1]
        assert compare_outputs(last.expected_dir, folders["out"], previous_expected_dir=last.previous_expected_dir,
                               run=last.run) == []


def test_invalid_drop_fails_its_check_and_ingests_nothing(folders):
    bad = folders["inbox"] / "2025-06-02_153.csv"
    lines = bad.read_text().splitlines()
    lines[0] = lines[0].replace("ImageSize", "ImageSiz")
    bad.write_text("\n".join(lines) + "\n")
    with dg.instance_for_test() as instance:
        assert dg.materialize(JWST_ASSETS, partition_key=SMALL[0].date, resources=resources(folders),
                              instance=instance).success
        before = {p.name: p.read_bytes() for p in folders["out"].glob("*.csv")}
        result = dg.materialize(JWST_ASSETS, partition_key=SMALL[1].date, resources=resources(folders),
                                instance=instance, raise_on_error=False)
        assert not result.success
        check = checks(result)["drop_is_valid"]
        assert not check.passed and "ImageSize" in " ".join(check.metadata["problems"].value)
        assert SMALL[1].date not in instance.get_materialized_partitions(dg.AssetKey("jwst_priors"))
        assert {p.name: p.read_bytes() for p in folders["out"].glob("*.csv")} == before


def test_a_deleted_database_fails_the_day_with_its_cause_and_keeps_the_exports(folders):
    with dg.instance_for_test() as instance:
        dg.materialize(JWST_ASSETS, partition_key=SMALL[0].date, resources=resources(folders), instance=instance)
        (folders["out"] / "jwst-cal.duckdb").unlink()
        before = {p.name: p.read_bytes() for p in folders["out"].glob("*.csv")}
        result = dg.materialize(JWST_ASSETS, partition_key=SMALL[1].date, resources=resources(folders),
                                instance=instance, raise_on_error=False)
        assert not result.success
        (failure,) = result.get_step_failure_events()
        description = failure.step_failure_data.user_failure_data.description
        assert "but no jwst-cal.duckdb: the database was deleted or moved" in description
        assert {p.name: p.read_bytes() for p in folders["out"].glob("*.csv")} == before


def test_sensor_requests_new_drops_oldest_first_and_once(folders):
    (folders["inbox"] / "notes.csv").write_text("x\n")
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, resources=resources(folders))
        result = jwst_cal_drop_sensor(context)
        assert [r.partition_key for r in result.run_requests] == [d.date for d in SMALL]
        again = jwst_cal_drop_sensor(dg.build_sensor_context(instance=instance, resources=resources(folders),
                                                             cursor=result.cursor))
        assert not again.run_requests
        os.utime(folders["inbox"] / SMALL[2].drop.name, (1, 1))
        redelivered = jwst_cal_drop_sensor(dg.build_sensor_context(instance=instance, resources=resources(folders),
                                                                   cursor=result.cursor))
        assert [r.partition_key for r in redelivered.run_requests] == [SMALL[2].date]


def test_catchup_schedule_runs_yesterday_once(folders):
    tick = dt.datetime.fromisoformat(SMALL[1].date + "T06:00:00+00:00")
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(instance=instance, resources=resources(folders),
                                            scheduled_execution_time=tick)
        request = jwst_cal_catchup_schedule(context)
        assert isinstance(request, dg.RunRequest) and request.partition_key == SMALL[0].date
        assert dg.materialize(JWST_ASSETS, partition_key=SMALL[0].date, resources=resources(folders),
                              instance=instance).success
        skip = jwst_cal_catchup_schedule(dg.build_schedule_context(
            instance=instance, resources=resources(folders), scheduled_execution_time=tick))
        assert isinstance(skip, dg.SkipReason) and "already ingested" in skip.skip_message
        late = dg.build_schedule_context(instance=instance, resources=resources(folders),
                                         scheduled_execution_time=tick + dt.timedelta(days=30))
        assert isinstance(jwst_cal_catchup_schedule(late), dg.SkipReason)
