"""The SVM inbox sensor: registers complete visits as partitions, waits for incomplete ones, re-ingests changes."""

from __future__ import annotations

import json
import os

import dagster as dg
import pytest

from ingest_assets.defs.hst_svm import hst_svm_training_sets_sensor, hst_svm_visit_job, hst_svm_visit_sensor
from ingest_assets_tests.svm_fixtures import VARIANTS, build_visit, svm_resources


def tick(root, instance, cursor=None, settle_seconds=0):
    context = dg.build_sensor_context(instance=instance, cursor=cursor,
                                      resources=svm_resources(root, settle_seconds=settle_seconds))
    return hst_svm_visit_sensor(context)


@pytest.fixture
def instance():
    with dg.instance_for_test() as test_instance:
        yield test_instance


def test_new_complete_visits_become_partitions_and_runs(tmp_path, instance):
    build_visit(tmp_path / "inbox", VARIANTS["ibl738"])
    build_visit(tmp_path / "inbox", VARIANTS["ibl738_f160w_all_stoc"])
    result = tick(tmp_path, instance)
    assert [r.partition_key for r in result.run_requests] == ["ibl738", "ibl738_f160w_all_stoc"]
    assert result.run_requests[0].run_key.startswith("ibl738:")
    assert [sorted(r.partition_keys) for r in result.dynamic_partitions_requests] == [
        ["ibl738", "ibl738_f160w_all_stoc"]]
    assert set(json.loads(result.cursor)) == {"ibl738", "ibl738_f160w_all_stoc"}


def test_nothing_new_is_skipped(tmp_path, instance):
    build_visit(tmp_path / "inbox", VARIANTS["ibl738"])
    first = tick(tmp_path, instance)
    again = tick(tmp_path, instance, cursor=first.cursor)
    assert not again.run_requests and "no new or changed visit" in again.skip_reason.skip_message


def test_incomplete_or_unsettled_visits_wait(tmp_path, instance):
    folder = build_visit(tmp_path / "inbox", VARIANTS["ic0k05"])
    (folder / "hst_12500_05_wfc3_ir_total_ic0k05_svm_num_sources.json").unlink()
    (tmp_path / "inbox" / "not_a_visit").mkdir()
    assert not tick(tmp_path, instance).run_requests
    build_visit(tmp_path / "inbox", VARIANTS["ic0k05"])
    assert not tick(tmp_path, instance, settle_seconds=3600).run_requests
    assert [r.partition_key for r in tick(tmp_path, instance).run_requests] == ["ic0k05"]


def test_a_changed_visit_is_ingested_again_without_a_new_partition(tmp_path, instance):
    folder = build_visit(tmp_path / "inbox", VARIANTS["ibl738"])
    first = tick(tmp_path, instance)
    instance.add_dynamic_partitions("hst_svm_visit", ["ibl738"])  # what the daemon does with the add request
    changed = folder / "hst_12286_38_wfc3_ir_total_ibl738_svm_num_sources.json"
    os.utime(changed, ns=(0, changed.stat().st_mtime_ns - 10**9))
    second = tick(tmp_path, instance, cursor=first.cursor)
    assert [r.partition_key for r in second.run_requests] == ["ibl738"]
    assert second.run_requests[0].run_key != first.run_requests[0].run_key
    assert not second.dynamic_partitions_requests


def test_training_sets_are_rebuilt_after_visit_runs_succeed_or_fail(instance):
    def rebuild(cursor=None):
        return hst_svm_training_sets_sensor(dg.build_sensor_context(instance=instance, cursor=cursor))

    first = rebuild()
    assert not first.run_requests
    for event_type in (dg.DagsterEventType.RUN_SUCCESS, dg.DagsterEventType.RUN_FAILURE):  # a failure withdrew
        run = instance.add_run(dg.DagsterRun(job_name=hst_svm_visit_job.name))
        instance.report_dagster_event(dg.DagsterEvent(event_type.value, job_name=run.job_name), run.run_id)
        requested = rebuild(first.cursor)
        assert len(requested.run_requests) == 1
        assert not rebuild(requested.cursor).run_requests
        first = requested
