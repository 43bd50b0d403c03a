"""An MLflow tracking server for a run whose jobs go through a cluster executor.

By default every job writes to one SQLite file (``mlflow.db``). Jobs on several nodes writing that
file over a shared file system (the SLURM profile queues up to 64) rely on the file system's
locking, which SQLite documents as unreliable over NFS. For such runs the workflow's ``onstart``
starts ``mlflow server`` on the submitting node instead, on the same SQLite store, which then only
that process touches; jobs reach it over HTTP through ``MLFLOW_TRACKING_URI``, which the executor
passes on with the rest of the environment (sbatch: ``--export=ALL``). Artefacts stay files that
each job writes into its run's own folder of ``mlartifacts/`` in the project (no locking involved),
so runs with and without a server share one experiment. ``onsuccess``/``onerror`` stop it; a
server left by a killed run is stopped by the next run that starts.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from glov.resume import is_running, process_id

log = logging.getLogger(__name__)

URI_ENV = "MLFLOW_TRACKING_URI"
SERVER_LOG = Path("logs/mlflow_server.log")
SERVERS = Path(".snakemake/glov/mlflow_servers")  # one record per server: its owner, process group and address


@dataclass
class _Server:
    proc: subprocess.Popen
    record: Path
    previous_uri: str | None


_started: list[_Server] = []  # the server this process started (at most one)


def wanted(setting: str | bool, cluster: bool) -> bool:
    """``tracking.server``: ``auto`` starts one when the jobs run through a cluster executor. Never
    when ``MLFLOW_TRACKING_URI`` names a store: that is the user's choice."""
    if os.environ.get(URI_ENV):
        return False
    return cluster if setting == "auto" else bool(setting)


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _answers(uri: str) -> bool:
    try:
        with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _command(root: Path, host: str, port: int) -> list[str]:
    """One worker: SQLite takes one writer at a time anyway, and every worker costs an MLflow import."""
    return [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{(root / 'mlflow.db').as_posix()}",
            "--serve-artifacts", "--artifacts-destination", str(root / "mlartifacts"), "--host", host, "--port", str(port),
            "--workers", "1", "--allowed-hosts", f"{host},{host}:{port}"]


def start(host: str | None = None, root: str | Path = ".", timeout: float = 120.0) -> str | None:
    """Start a server on ``host`` (default: this node's name, which jobs on other nodes can reach),
    wait until it answers and point this process's jobs at it; its URI. None, with a warning, if it
    does not answer: jobs then write to the SQLite file as without a server."""
    root = Path(root).resolve()
    host = host or socket.getfqdn()
    (root / SERVER_LOG).parent.mkdir(parents=True, exist_ok=True)
    try:
        port = _free_port(host)
        with open(root / SERVER_LOG, "ab") as out:  # its own session: Ctrl-C reaches Snakemake, whose onerror stops it
            proc = subprocess.Popen(_command(root, host, port), cwd=root, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
    except OSError as exc:  # a host name that does not resolve here, or an address of another machine
        log.warning("no MLflow server: cannot listen on %s (tracking.server_host): %s; jobs write to the SQLite store directly", host, exc)
        return None
    uri = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    record = root / SERVERS / f"{proc.pid}.json"
    from glov.io import write_json

    write_json(record, {"owner": process_id(), "server": process_id(proc.pid), "uri": uri})
    deadline = time.monotonic() + timeout
    while not _answers(uri):
        if proc.poll() is not None or time.monotonic() > deadline:
            _terminate(proc.pid, proc.poll)
            record.unlink(missing_ok=True)
            log.warning("the MLflow server did not start (see %s); jobs write to the SQLite store directly", SERVER_LOG)
            return None
        time.sleep(0.25)
    _started.append(_Server(proc, record, os.environ.get(URI_ENV)))
    os.environ[URI_ENV] = uri
    log.warning("MLflow tracking server for this run's jobs: %s (log: %s)", uri, SERVER_LOG)
    return uri


def stop() -> None:
    """Stop the server this process started, if any (``onsuccess``/``onerror``)."""
    while _started:
        server = _started.pop()
        _terminate(server.proc.pid, server.proc.poll)
        server.record.unlink(missing_ok=True)
        if server.previous_uri is None:
            os.environ.pop(URI_ENV, None)
        else:
            os.environ[URI_ENV] = server.previous_uri


def stop_orphaned(root: str | Path = ".") -> list[str]:
    """Stop the servers whose run was killed before it could (SIGKILL, a lost login session); their
    URIs. A server whose run is alive, or ran on another host, is left."""
    from glov.io import read_json

    stopped = []
    for record in sorted((Path(root) / SERVERS).glob("*.json")):
        try:
            entry = read_json(record)
            owner, server, uri = entry["owner"], entry["server"], entry["uri"]
        except (OSError, ValueError, KeyError, TypeError):
            record.unlink(missing_ok=True)
            continue
        if is_running(owner) is not False:
            continue
        if is_running(server):
            _terminate(int(server.rsplit(":", 2)[1]))
            stopped.append(uri)
        record.unlink(missing_ok=True)
    if stopped:
        log.warning("stopped the MLflow server(s) of a killed run: %s", ", ".join(stopped))
    return stopped


def _terminate(pgid: int, reap: Callable[[], object] = lambda: None, grace: float = 10.0) -> None:
    """SIGTERM the server's process group (the mlflow command, uvicorn and its job runner), then
    SIGKILL what is left after ``grace`` seconds. ``reap`` collects our own child's exit status
    (a zombie still counts as a member of the group)."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            reap()
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
