"""The JWST Dagster assets, checks, sensor and schedule on a real Dagster instance."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

import dagster as dg
import pytest

from ingest_assets.defs.jwst_cal import JWST_ASSETS, assets
from ingest_assets.defs.jwst_cal.assets import (
    DROP_IS_VALID, IMAGE_SIZES, MATCH_RATE, PRIORS, RAW_DROP, SCRUBBED, STORE_POOL, TABLES, TRAINING_TABLES,
)
from ingest_assets.defs.jwst_cal.automation import (
    RANGE_END, RANGE_START, jwst_cal_catchup_schedule, jwst_cal_drop_sensor,
)
from ingest_assets.defs.jwst_cal.resources import JwstCalStore
from ingest_assets.definitions import defs

from .golden import compare_outputs, golden_days
from .jwst_rows import l1, l3, write_drop

SMALL = golden_days("small-s2")


@pytest.fixture()
def folders(tmp_path: Path) -> dict[str, Path]:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for day in SMALL:
        shutil.copy(day.drop, inbox)
    return {"inbox": inbox, "out": tmp_path / "out"}


def resources(folders, save_l1=True) -> dict:
    return {"jwst_cal_store": JwstCalStore(inbox_dir=str(folders["inbox"]), output_dir=str(folders["out"]),
                                           save_l1=save_l1)}


def materialize(folders, instance, *days: str) -> dg.ExecuteInProcessResult:
    """One run over `days` (consecutive), as the sensor and the backfill daemon launch them."""
    tags = {RANGE_START: days[0], RANGE_END: days[-1]} if len(days) > 1 else {}
    return dg.materialize(JWST_ASSETS, partition_key=days[0] if len(days) == 1 else None, tags=tags,
                          resources=resources(folders), instance=instance, raise_on_error=False)


def checks(result) -> dict[tuple[str, str], dg.AssetCheckEvaluation]:
    return {(c.check_name, c.partition): c for c in result.get_asset_check_evaluations()}


def materialized(result, key: dg.AssetKey) -> list[str]:
    return [e.partition for e in result.get_asset_materialization_events() if e.asset_key == key]


def failure(result) -> str:
    (event,) = result.get_step_failure_events()
    return event.step_failure_data.user_failure_data.description


def test_definitions_load_and_only_the_backlog_depends_on_its_previous_day():
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    assert graph.get(PRIORS).has_self_dependency
    for key in graph.get_all_asset_keys():
        for parent in graph.get(key).parent_keys:
            mapping = graph.get_partition_mapping(key, parent)
            offsets = (getattr(mapping, "start_offset", 0), getattr(mapping, "end_offset", 0))
            shifted = isinstance(mapping, dg.TimeWindowPartitionMapping) and offsets != (0, 0)
            assert not shifted or parent == key, f"{parent.to_user_string()} -> {key.to_user_string()} is offset"
    for assets in JWST_ASSETS:  # a backfill range runs in one run per step, and every step writes through the pool
        assert assets.backfill_policy == dg.BackfillPolicy.single_run()
        assert assets.node_def.pool == STORE_POOL
    assert set(graph.get(TRAINING_TABLES).parent_keys) == {SCRUBBED}
    assert [assets.node_def.name for assets in JWST_ASSETS] == ["jwst_ingest_days"]  # one step: one process per run
    job = defs.resolve_job_def("jwst_cal_daily_job")
    assert job.executor_def.name == "in_process"


def test_days_materialize_in_order_with_checks_and_metadata_per_day(folders):
    with dg.instance_for_test() as instance:
        for day in SMALL[:3]:
            result = materialize(folders, instance, day.date)
            unmatched = sorted(day.run["l3_unmatched"])
            assert result.success == (unmatched == []), failure(result) if not result.success else ""
            found = checks(result)
            assert found[(DROP_IS_VALID.name, day.date)].passed
            gate = found[(MATCH_RATE.name, day.date)]
            assert gate.passed == (unmatched == []) and gate.severity == dg.AssetCheckSeverity.ERROR
            assert sorted(gate.metadata["unmatched"].value) == unmatched
            if unmatched:  # ingested, but the run says the day failed its ERROR check
                assert "stayed unmatched" in failure(result)
            for key in (RAW_DROP, SCRUBBED, *TABLES):
                assert materialized(result, key) == [day.date]
            assert compare_outputs(day.expected_dir, folders["out"], previous_expected_dir=day.previous_expected_dir,
                                   run=day.run) == []
        events = instance.fetch_materializations(PRIORS, limit=10).records
        meta = {r.partition_key: r.asset_materialization.metadata for r in events}
        assert set(meta) == {d.date for d in SMALL[:3]}
        assert meta[SMALL[1].date]["priors_pulled"].value == SMALL[1].run["prior_rows_in_df"]
        # the per-day figures the Partitions plots show: numbers for every day
        for day in SMALL[:3]:
            assert meta[day.date]["oldest_exposure_age_days"].value >= 0 and meta[day.date]["commit_seconds"].value > 0
        assert meta[SMALL[2].date]["oldest_exposure_age_days"].value == 2  # day 1's unmatched exposures still wait
        columns = [c.name for c in meta[SMALL[2].date]["dagster/column_schema"].value.columns]
        assert columns == (folders["out"] / "ingest.csv").read_text().splitlines()[0].split(",")
        history = instance.event_log_storage.get_asset_check_execution_history(MATCH_RATE, limit=10)
        assert sorted(h.partition for h in history) == sorted(d.date for d in SMALL[:3])
        # each day's result checks that day's materialization: the check's partitions show as current, not missing
        infos = instance.event_log_storage.get_asset_check_partition_info([MATCH_RATE],
                                                                          partition_keys=[d.date for d in SMALL[:3]])
        assert {i.partition_key: (i.latest_execution_status.value, i.is_current) for i in infos} == {
            d.date: ("FAILED" if d.run["l3_unmatched"] else "SUCCEEDED", True) for d in SMALL[:3]}


@pytest.mark.parametrize("checked_together", [3, assets.CHECKED_TOGETHER])
def test_a_range_of_days_runs_in_one_step_in_date_order(folders, monkeypatch, checked_together):
    monkeypatch.setattr(assets, "CHECKED_TOGETHER", checked_together)  # 3: targets looked up in the middle of the run
    days = [d.date for d in SMALL]
    with dg.instance_for_test() as instance:
        result = materialize(folders, instance, *days)
        assert len(result.get_step_success_events()) + len(result.get_step_failure_events()) == 1
        for key in TABLES:
            assert materialized(result, key) == days
        found = checks(result)
        assert [found[(MATCH_RATE.name, d.date)].passed for d in SMALL] == [not d.run["l3_unmatched"] for d in SMALL]
        # every day's check results name that day's materialization: current in the UI, for every day of the range
        infos = instance.event_log_storage.get_asset_check_partition_info([MATCH_RATE, DROP_IS_VALID],
                                                                          partition_keys=days)
        assert {(i.check_key.name, i.partition_key): i.is_current for i in infos} == {
            (check.name, day): True for check in (MATCH_RATE, DROP_IS_VALID) for day in days}
    last = SMALL[-1]
    assert compare_outputs(last.expected_dir, folders["out"], previous_expected_dir=last.previous_expected_dir,
                           run=last.run) == []


def test_a_late_drop_replays_the_later_days_and_records_them(folders):
    with dg.instance_for_test() as instance:
        materialize(folders, instance, *(d.date for d in SMALL[:3]))
        redelivered = materialize(folders, instance, SMALL[0].date)
        assert materialized(redelivered, PRIORS) == [d.date for d in SMALL[:3]]
        assert sorted(p for _, p in checks(redelivered) if p) == sorted(
            [SMALL[0].date] * 2 + [d.date for d in SMALL[:3]] * 2)
    third = SMALL[2]
    assert compare_outputs(third.expected_dir, folders["out"], previous_expected_dir=third.previous_expected_dir,
                           run=third.run) == []


def break_drop(folders, day) -> None:
    bad = folders["inbox"] / day.drop.name
    lines = bad.read_text().splitlines()
    lines[0] = lines[0].replace("ImageSize", "ImageSiz")
    bad.write_text("\n".join(lines) + "\n")


def test_an_invalid_drop_fails_its_day_in_one_line_and_ingests_nothing(folders):
    break_drop(folders, SMALL[1])
    with dg.instance_for_test() as instance:
        materialize(folders, instance, SMALL[0].date)
        before = {p.name: p.read_bytes() for p in folders["out"].glob("*.csv")}
        result = materialize(folders, instance, SMALL[1].date)
        assert not result.success
        assert failure(result) == f"not ingested: {SMALL[1].drop.name}: column ImageSize: missing required " \
                                  "columns: ImageSize"
        check = checks(result)[(DROP_IS_VALID.name, SMALL[1].date)]
        assert not check.passed and "ImageSize" in check.description
        assert SMALL[1].date not in instance.get_materialized_partitions(RAW_DROP)
        assert SMALL[1].date not in instance.get_materialized_partitions(PRIORS)
        assert {p.name: p.read_bytes() for p in folders["out"].glob("*.csv")} == before


def test_a_range_with_an_invalid_day_ingests_the_others_and_fails_the_run(folders):
    break_drop(folders, SMALL[2])
    with dg.instance_for_test() as instance:
        result = materialize(folders, instance, *(d.date for d in SMALL))
        assert not result.success
        assert failure(result) == (f"1 of {len(SMALL)} days not ingested, their drop failed drop_is_valid: "
                                   f"{SMALL[2].drop.name}: column ImageSize: missing required columns: ImageSize")
        good = [d.date for d in SMALL if d is not SMALL[2]]
        assert materialized(result, PRIORS) == good
        assert sorted(instance.get_materialized_partitions(RAW_DROP)) == good


def nircam_product(obs: str, channel: str) -> list[dict]:
    """Three NIRCam exposures of CHANNEL `channel` and their L3 product."""
    return [l1(f"jw01234{obs}001_02101_0000{i}_nrca{i}", CRVAL1=10 + i * 1e-4, DETECTOR=f"NRCA{i}", OBSERVTN=obs,
               FILTER="F200W", PUPIL="NONE", CHANNEL=channel) for i in (1, 2, 3)] + [
        l3(f"jw01234-o{obs}_t001_nircam_f200w", 1e6, OBSERVTN=obs, FILTER="F200W", PUPIL="NONE")]


def test_a_day_the_engine_cannot_ingest_fails_the_run_after_the_days_before_it(tmp_path):
    inbox, days = tmp_path / "inbox", ["2025-06-01", "2025-06-02", "2025-06-03"]
    drops = [write_drop(inbox, day, nircam_product(f"00{i}", "MIDDLE" if i == 2 else "SHORT"))
             for i, day in enumerate(days, start=1)]
    with dg.instance_for_test() as instance:
        result = materialize({"inbox": inbox, "out": tmp_path / "out"}, instance, *days)
        assert not result.success
        assert failure(result) == (f"{drops[1].name}: exposure jw01234002001_02101_00001_nrca1: no pixel "
                                   "scale/shape for INSTRUME 'NIRCAM' with CHANNEL 'MIDDLE' (NIRCam needs CHANNEL "
                                   "SHORT or LONG)")
        assert materialized(result, PRIORS) == days[:1]
        assert sorted(instance.get_materialized_partitions(PRIORS)) == days[:1]


def test_the_stage_warns_about_l3_rows_without_image_size(tmp_path):
    inbox = tmp_path / "inbox"
    product = "jw01234-o001_t001_nircam_clear-f200w"
    path = write_drop(inbox, "2025-06-01", [l1("jw01234001001_02101_00001_nrca1"), l3(product, float("nan"))])
    line = path.read_text().splitlines().index(next(x for x in path.read_text().splitlines() if x.startswith(product)))
    result = dg.materialize(JWST_ASSETS, partition_key="2025-06-01", selection=[RAW_DROP, SCRUBBED],
                            resources=resources({"inbox": inbox, "out": tmp_path / "out"}))
    assert result.success
    found = checks(result)
    assert found[(DROP_IS_VALID.name, "2025-06-01")].passed
    warning = found[(IMAGE_SIZES.name, "2025-06-01")]
    assert not warning.passed and warning.severity == dg.AssetCheckSeverity.WARN
    assert warning.metadata["n_rows"].value == 1
    assert warning.metadata["rows"].value == [
        f"{path.name}: line {line + 1}, column ImageSize: L3 product {product!r} has no ImageSize: "
        "it is ingested but cannot become a training row"
    ]


def test_a_deleted_database_fails_the_day_with_its_cause_and_keeps_the_exports(folders):
    with dg.instance_for_test() as instance:
        materialize(folders, instance, SMALL[1].date)
        (folders["out"] / "jwst-cal.duckdb").unlink()
        before = {p.name: p.read_bytes() for p in folders["out"].glob("*.csv")}
        result = materialize(folders, instance, SMALL[2].date)
        assert not result.success
        assert "but no jwst-cal.duckdb: the database was deleted or moved" in failure(result)
        assert {p.name: p.read_bytes() for p in folders["out"].glob("*.csv")} == before


def sensor_tick(folders, instance, cursor=None) -> dg.SensorResult:
    return jwst_cal_drop_sensor(dg.build_sensor_context(instance=instance, resources=resources(folders),
                                                        cursor=cursor))


def test_sensor_requests_one_ordered_range_per_block_of_new_days(folders):
    (folders["inbox"] / "notes.csv").write_text("x\n")
    with dg.instance_for_test() as instance:
        first = sensor_tick(folders, instance)
        (request,) = first.run_requests  # an archive of consecutive days: one run over the range
        assert (request.tags[RANGE_START], request.tags[RANGE_END]) == (SMALL[0].date, SMALL[-1].date)
        assert not sensor_tick(folders, instance, first.cursor).run_requests
        for day in (SMALL[0], SMALL[2], SMALL[3]):  # re-delivered: two blocks, oldest first
            os.utime(folders["inbox"] / day.drop.name, (1, 1))
        again = sensor_tick(folders, instance, first.cursor)
        assert [r.partition_key for r in again.run_requests[:1]] == [SMALL[0].date]
        assert (again.run_requests[1].tags[RANGE_START], again.run_requests[1].tags[RANGE_END]) == (
            SMALL[2].date, SMALL[3].date)


def test_catchup_schedule_runs_yesterday_once(folders):
    tick = dt.datetime.fromisoformat(SMALL[1].date + "T06:00:00+00:00")
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(instance=instance, resources=resources(folders),
                                            scheduled_execution_time=tick)
        request = jwst_cal_catchup_schedule(context)
        assert isinstance(request, dg.RunRequest) and request.partition_key == SMALL[0].date
        materialize(folders, instance, SMALL[0].date)
        skip = jwst_cal_catchup_schedule(dg.build_schedule_context(
            instance=instance, resources=resources(folders), scheduled_execution_time=tick))
        assert isinstance(skip, dg.SkipReason) and "already ingested" in skip.skip_message
        late = dg.build_schedule_context(instance=instance, resources=resources(folders),
                                         scheduled_execution_time=tick + dt.timedelta(days=30))
        assert isinstance(jwst_cal_catchup_schedule(late), dg.SkipReason)
