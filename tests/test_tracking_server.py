"""The MLflow tracking server a cluster run starts for its jobs (loopback only: tests reach no network)."""

import os
import signal
import subprocess
import sys

import pytest

from conftest import dead_process_id
from glov import tracking_server as ts
from glov.io import write_json
from glov.resume import is_running, process_id


@pytest.fixture
def no_uri(monkeypatch):
    monkeypatch.delenv(ts.URI_ENV, raising=False)


@pytest.mark.parametrize("setting, cluster, expected", [("auto", True, True), ("auto", False, False), (True, False, True), (False, True, False)])
def test_a_server_is_wanted_for_cluster_runs_by_default(no_uri, setting, cluster, expected):
    assert ts.wanted(setting, cluster) is expected


def test_a_store_the_user_chose_is_kept(monkeypatch):
    monkeypatch.setenv(ts.URI_ENV, "sqlite:////elsewhere/mlflow.db")
    assert ts.wanted(True, True) is False


def test_a_server_that_does_not_start_leaves_tracking_as_it_was(no_uri, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(ts, "_command", lambda root, host, port: [sys.executable, "-c", "raise SystemExit(3)"])
    assert ts.start("127.0.0.1", tmp_path, timeout=30) is None
    assert ts.URI_ENV not in os.environ and "the MLflow server did not start" in caplog.text
    assert list((tmp_path / ts.SERVERS).iterdir()) == []


def test_a_host_it_cannot_listen_on_is_a_warning(no_uri, tmp_path, caplog):
    assert ts.start("no-such-host.invalid", tmp_path) is None
    assert "no MLflow server: cannot listen on no-such-host.invalid (tracking.server_host)" in caplog.text
    assert ts.URI_ENV not in os.environ


def detached_sleeper() -> str:
    """A process in its own session whose parent has exited, as a killed run leaves its server: its id."""
    start = ("import subprocess, sys; print(subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'], "
             "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True).pid)")
    pid = int(subprocess.run([sys.executable, "-c", start], capture_output=True, text=True, check=True).stdout)
    return process_id(pid)


def test_the_server_of_a_killed_run_is_stopped_and_a_live_runs_is_kept(tmp_path):
    orphan, kept = detached_sleeper(), detached_sleeper()
    try:
        write_json(tmp_path / ts.SERVERS / "1.json", {"owner": dead_process_id(), "server": orphan, "uri": "http://127.0.0.1:1"})
        write_json(tmp_path / ts.SERVERS / "2.json", {"owner": process_id(), "server": kept, "uri": "http://127.0.0.1:2"})
        assert ts.stop_orphaned(tmp_path) == ["http://127.0.0.1:1"]
        assert is_running(orphan) is False and is_running(kept) is True
        assert sorted(p.name for p in (tmp_path / ts.SERVERS).iterdir()) == ["2.json"]
    finally:
        for server in (orphan, kept):
            if is_running(server):
                os.kill(int(server.split(":")[1]), signal.SIGKILL)


@pytest.mark.slow
def test_jobs_log_through_the_server_into_the_projects_store(no_uri, tmp_path):
    """Started, answering, the jobs' URI exported; a run logged through it lands in the project's
    mlflow.db and its artefact in mlartifacts/; stopped, nothing of it is left running."""
    import sqlite3

    from glov import tracking

    uri = ts.start("127.0.0.1", tmp_path)
    try:
        assert uri and uri.startswith("http://127.0.0.1:") and os.environ[ts.URI_ENV] == uri
        server = next((tmp_path / ts.SERVERS).iterdir())
        pgid = int(server.stem)
        with tracking.job_run("job", {"a": 1}, True, "glov", tmp_path) as t:
            (tmp_path / "out.json").write_text("{}")
            t.log_artifact(tmp_path / "out.json")
            t.log_metrics({"acc": 0.5})
    finally:
        ts.stop()
    assert ts.URI_ENV not in os.environ and not server.exists()
    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)  # the mlflow command, uvicorn and its job runner are all gone
    db = sqlite3.connect(tmp_path / "mlflow.db")
    assert db.execute("select name, status from runs").fetchall() == [("job", "FINISHED")]
    assert db.execute("select key, value from metrics").fetchall() == [("acc", 0.5)]
    assert list(tmp_path.glob("mlartifacts/*/artifacts/out.json"))
    log = (tmp_path / ts.SERVER_LOG).read_text()
    assert '"POST /api/2.0/mlflow/runs/create HTTP/1.1" 200' in log
