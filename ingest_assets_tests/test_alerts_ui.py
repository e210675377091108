"""Alerts from a real `dagster dev`: a drop whose L3 products stay unmatched lands in the inbox, the daemon ingests
it, and the alert sensor writes the failed check and the failed run to alerts.jsonl."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ingest_assets.defs.jwst_cal.assets import MATCH_RATE
from ingest_assets_tests.dagster_dev import dagster_dev, folder_env, wait_for
from ingest_assets_tests.golden import golden_days
from ingest_assets_tests.test_alerts import sent

UNMATCHED = golden_days("small-s2")[0]
TIMEOUT = 120


@pytest.mark.ui
def test_a_failing_drop_is_alerted_by_the_running_daemon(tmp_path):
    env = folder_env(tmp_path)
    inbox, alerts_file = Path(env["JWST_CAL_INBOX"]), Path(env["JWST_CAL_OUTPUT"]) / "alerts.jsonl"
    inbox.mkdir(parents=True)
    shutil.copy(UNMATCHED.drop, inbox)  # the drop sensor's first tick launches its run
    log = tmp_path / "dagster_dev.log"
    with dagster_dev(tmp_path / "dagster_home", env, log) as server:
        done = wait_for(lambda: {a.kind for a in sent(alerts_file)} == {"check", "run"}, TIMEOUT, server)
        assert done, log.read_text()[-3000:]
    check, run = sent(alerts_file)
    assert (check.day, check.check, check.severity) == (UNMATCHED.date, MATCH_RATE.name, "ERROR")
    assert sorted(check.lists["unmatched"]) == sorted(UNMATCHED.run["l3_unmatched"])
    assert (run.day, run.job, run.run_id) == (UNMATCHED.date, "jwst_cal_daily_job", check.run_id)
    assert run.message.startswith(f"L3 products stayed unmatched on {UNMATCHED.date}")
