"""Real Dagster processes for tests of sensors and runs: `dagster dev` on the project's workspace, or any server."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ingest_assets.defs.jwst_cal.assets import STORE_POOL

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT = 90


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def wait_for(condition: Callable[[], bool], timeout: float, server: subprocess.Popen) -> bool:
    """Poll `condition` every second until it holds, the server dies, or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and server.poll() is None:
        if condition():
            return True
        time.sleep(1)
    return False


def stop(server: subprocess.Popen) -> None:
    """Stop a process started by `started` (`dagster dev`, ...) and the processes it started (its process group)."""
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def graphql(port: int, query: str, variables: dict | None = None) -> dict:
    """POST a query to the webserver's GraphQL API; its `data`."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql",
                                     data=json.dumps({"query": query, "variables": variables or {}}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        answer = json.load(response)
    assert "errors" not in answer, answer
    return answer["data"]


def folder_env(tmp_path: Path) -> dict[str, str]:
    """Env vars pointing both ingests at folders under tmp_path (never at the repository's sample data)."""
    return {
        "JWST_CAL_INBOX": str(tmp_path / "jwst" / "inbox"), "JWST_CAL_OUTPUT": str(tmp_path / "jwst" / "out"),
        "HST_SVM_INBOX": str(tmp_path / "svm" / "inbox"), "HST_SVM_OUTPUT": str(tmp_path / "svm" / "out"),
    }


@contextmanager
def dagster_dev(home: Path, env: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen]:
    """Run `dagster dev -w workspace.yaml` with the project's instance settings (as `make ui` installs them).

    The yielded server process carries the webserver's `port`.
    """
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    limit_store_pool(env | {"DAGSTER_HOME": str(home)})
    port = free_port()
    args = [sys.executable, "-m", "dagster", "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)]
    with started(args, env | {"DAGSTER_HOME": str(home)}, log_path, lambda: answers(port)) as server:
        server.port = port
        yield server


def limit_store_pool(env: dict[str, str]) -> None:
    """Set the limit of the output database's pool on the instance of `env`, as a deployment does before its first
    run (deploy/dagster.yaml)."""
    subprocess.run([sys.executable, "-m", "dagster", "instance", "concurrency", "set", STORE_POOL, "1"], cwd=REPO,
                   env=os.environ | env, check=True, capture_output=True, timeout=START_TIMEOUT)


@contextmanager
def started(args: list[str], env: dict[str, str], log_path: Path, ready: Callable[[], bool],
            **popen) -> Iterator[subprocess.Popen]:
    """Run `args` in the repository, in its own process group, with its output in `log_path`.

    Yields the process once `ready()` holds (fails with the log's tail if it does not within START_TIMEOUT) and
    stops it, with its children, when the block ends. `popen`: more `subprocess.Popen` arguments (`user`, ...).
    """
    with log_path.open("w") as log:
        process = subprocess.Popen(args, cwd=REPO, env=os.environ | env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True, **popen)
        try:
            assert wait_for(ready, START_TIMEOUT, process), log_path.read_text()[-3000:]
            yield process
        finally:
            stop(process)
