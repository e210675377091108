"""A visit folder dropped into the SVM inbox is ingested by the sensor of a running `dagster dev`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pytest

from ingest_assets_tests.svm_fixtures import VARIANTS, build_visit, write_category_table

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT = 90
INGEST_TIMEOUT = 150


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition: Callable[[], bool], timeout: float, server: subprocess.Popen) -> bool:
    """Poll `condition` every second until it holds, the server dies, or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and server.poll() is None:
        if condition():
            return True
        time.sleep(1)
    return False


def answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def materialized(home: Path, visit: str) -> bool:
    """True once the visit's images (the last per-visit asset) are materialized in the instance."""
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return visit in instance.get_materialized_partitions(dg.AssetKey("svm_mosaic_images"))


def stop(server: subprocess.Popen) -> None:
    """Stop `dagster dev` and the processes it started (its own process group)."""
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


@pytest.mark.ui
def test_a_dropped_visit_is_ingested_by_the_sensor(tmp_path):
    home, inbox, out = tmp_path / "dagster_home", tmp_path / "inbox", tmp_path / "out"
    for folder in (home, inbox, tmp_path / "jwst" / "inbox"):
        folder.mkdir(parents=True)
    # the project's instance settings (as `make ui` installs them), with the run queue polled every second
    (home / "dagster.yaml").write_text((REPO / "deploy" / "dagster.yaml").read_text()
                                       + "\nrun_queue:\n  dequeue_interval_seconds: 1\n")
    env = os.environ | {
        "DAGSTER_HOME": str(home), "HST_SVM_INBOX": str(inbox), "HST_SVM_OUTPUT": str(out),
        "HST_SVM_SETTLE_SECONDS": "1", "HST_SVM_MAST_TABLE": str(write_category_table(tmp_path / "mast.csv")),
        # keep the JWST group's sensor away from the repository's sample data
        "JWST_CAL_INBOX": str(tmp_path / "jwst" / "inbox"), "JWST_CAL_OUTPUT": str(tmp_path / "jwst" / "out"),
        "JWST_CAL_STORAGE": str(tmp_path / "jwst" / "storage"),
    }
    port = free_port()
    log = (tmp_path / "dagster_dev.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "dagster", "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        assert wait_for(lambda: answers(port), START_TIMEOUT, server), "dagster dev did not start"
        build_visit(tmp_path / "drop", VARIANTS["ibl738"]).rename(inbox / "ibl738")
        ingested = wait_for(lambda: materialized(home, "ibl738"), INGEST_TIMEOUT, server)
    finally:
        stop(server)
        log.close()
    assert ingested, (tmp_path / "dagster_dev.log").read_text()[-3000:]
    features = (out / "svm_features" / "ibl738.csv").read_text().splitlines()
    assert features[1] == "4,0.5,0.4,42,30,25,12,1,0,4,hst_12286_38_wfc3_ir_total_ibl738"
    assert len(list((out / "img" / "hst_12286_38_wfc3_ir_total_ibl738").glob("*.png"))) == 3
