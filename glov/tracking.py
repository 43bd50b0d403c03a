"""MLflow provenance: one parent run per workflow invocation, one child run per job.

The parent run is started by Snakemake's ``onstart`` handler and its id handed to jobs through
the environment (``GLOV_MLFLOW_PARENT_RUN_ID``); each job opens a child run, logs its params,
metrics per step and artefacts, and is marked FAILED if the job raises (KILLED if interrupted).
Runs are tagged with their process; a run left RUNNING by a killed process is marked KILLED by
the next invocation. The tracking URI is an
absolute sqlite path in the project (``mlflow.db``) unless ``MLFLOW_TRACKING_URI`` is set.
Library code defaults to :class:`NullTracker`; tracking never decides whether work is kept: every
MLflow call is best-effort (a warning in the job's log), so an unreachable store, a full disk or a
failed upload never fails a job whose outputs are written (Snakemake would delete them), and a
job's own error is the one it ends with.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, TypeVar

from glov.resume import Terminated, is_running, process_id

log = logging.getLogger(__name__)

PARENT_ENV = "GLOV_MLFLOW_PARENT_RUN_ID"
PROCESS_TAG = "glov.process"
T = TypeVar("T")


class NullTracker:
    """Does nothing: the default, and what a job falls back to if MLflow is unreachable."""

    run_id: str | None = None

    def log_params(self, params: Mapping[str, Any]) -> None: ...

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None: ...

    def log_artifact(self, path: str | Path) -> None: ...

    def set_tags(self, tags: Mapping[str, str]) -> None: ...


def tracking_uri(root: str | Path = ".") -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(Path(root).resolve() / 'mlflow.db').as_posix()}"


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = json.dumps(v) if not isinstance(v, str) else v
    return out


def params_hash(params: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]


def git_commit(root: str | Path = ".") -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _retry(fn: Callable[[], T], tries: int = 6) -> T:
    """sqlite allows one writer: concurrent jobs may see 'database is locked' for a moment."""
    for i in range(tries):
        try:
            return fn()
        except Exception as exc:  # MlflowException / sqlalchemy OperationalError
            if i == tries - 1 or "locked" not in str(exc).lower():
                raise
            time.sleep(0.2 * 2**i)
    raise AssertionError("unreachable")


def best_effort(what: str, fn: Callable[[], T], tries: int = 6) -> T | None:
    """Run one tracking call; if it still fails after ``tries``, log a warning and return None.
    Tracking records work; it must never undo it."""
    try:
        return _retry(fn, tries)
    except Exception as exc:
        log.warning("MLflow: could not %s (ignored, the job's result stands): %s", what, exc)
        return None


class MlflowTracker:
    """One MLflow run. Every method is best-effort (see :func:`best_effort`)."""

    def __init__(self, client: Any, run_id: str):
        self.client = client
        self.run_id = run_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, v[:6000]) for k, v in sorted(flatten(params).items())]
        for i in range(0, len(items), 100):
            best_effort("log params", lambda: self.client.log_batch(self.run_id, params=items[i : i + 100]))

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k.replace("/", "."), float(v), now, step or 0) for k, v in sorted(metrics.items())]
        best_effort("log metrics", lambda: self.client.log_batch(self.run_id, metrics=items))

    def log_artifact(self, path: str | Path) -> None:
        best_effort(f"upload {path}", lambda: self.client.log_artifact(self.run_id, str(path)))

    def set_tags(self, tags: Mapping[str, str]) -> None:
        for k, v in tags.items():
            best_effort(f"set tag {k}", lambda: self.client.set_tag(self.run_id, k, v))

    def end(self, status: str) -> None:
        best_effort(f"mark run {self.run_id} {status}", lambda: self.client.set_terminated(self.run_id, status))


def _client_and_experiment(experiment: str, root: str | Path) -> tuple[Any, str]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri(root))
    found = _retry(lambda: client.get_experiment_by_name(experiment))
    if found is not None:
        return client, found.experiment_id
    try:
        # artefacts are files in the project (a folder per run), written by the job itself, also
        # through a tracking server: runs with and without one share the experiment
        artifacts = (Path(root).resolve() / "mlartifacts").as_uri()
        return client, _retry(lambda: client.create_experiment(experiment, artifact_location=artifacts))
    except Exception:  # another job created it first
        return client, _retry(lambda: client.get_experiment_by_name(experiment)).experiment_id


def _run_tags(name: str, params: Mapping[str, Any], root: str | Path) -> dict[str, str]:
    return {"mlflow.runName": name, "git_commit": git_commit(root), "params_hash": params_hash(params), PROCESS_TAG: process_id()}


def close_orphaned_runs(client: Any, experiment_id: str) -> list[str]:
    """Mark KILLED the runs still RUNNING whose process is known to be dead (killed with SIGKILL,
    out of memory, power loss); returns their ids. Runs of live or remote processes are left."""
    running = _retry(lambda: client.search_runs([experiment_id], "attributes.status = 'RUNNING'", max_results=10000))
    dead = [r.info.run_id for r in running if is_running(r.data.tags.get(PROCESS_TAG, "")) is False]
    for run_id in dead:
        _retry(lambda: client.set_terminated(run_id, "KILLED"))
    return dead


def start_workflow_run(params: Mapping[str, Any], experiment: str, root: str | Path = ".") -> str | None:
    """Close runs orphaned by a killed invocation, open the parent run and export its id to the
    jobs this process starts. None (and a warning) where MLflow cannot be reached."""
    run = _open_run("snakemake", params, experiment, root, workflow=True)
    if run is None:
        return None
    os.environ[PARENT_ENV] = run.run_id
    return run.run_id


def end_workflow_run(status: str, root: str | Path = ".") -> None:
    run_id = os.environ.get(PARENT_ENV)
    if not run_id:
        return
    try:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=tracking_uri(root))
    except Exception as exc:
        log.warning("could not close MLflow run %s: %s", run_id, exc)
        return
    MlflowTracker(client, run_id).end(status)


def _open_run(name: str, params: Mapping[str, Any], experiment: str, root: str | Path, workflow: bool = False) -> MlflowTracker | None:
    """A new run with its tags and params: the workflow's (after closing orphaned runs) or a job's
    (a child of the workflow's run). None where no run could be created; params that fail to log
    are only a warning."""
    try:
        client, exp_id = _client_and_experiment(experiment, root)
        # tries=1: close_orphaned_runs retries each of its own calls
        if workflow and (orphans := best_effort("close orphaned runs", lambda: close_orphaned_runs(client, exp_id), tries=1)):
            log.warning("marked %d MLflow run(s) of a killed invocation as KILLED", len(orphans))
        tags = _run_tags(name, params, root)
        if not workflow and os.environ.get(PARENT_ENV):
            tags["mlflow.parentRunId"] = os.environ[PARENT_ENV]
        run_id = _retry(lambda: client.create_run(exp_id, tags=tags)).info.run_id
    except Exception as exc:
        log.warning("MLflow unavailable, %s runs untracked: %s", name, exc)
        return None
    tracker = MlflowTracker(client, run_id)
    tracker.log_params(params)
    return tracker


@contextmanager
def job_run(name: str, params: Mapping[str, Any], enabled: bool, experiment: str, root: str | Path = ".") -> Iterator[NullTracker | MlflowTracker]:
    """A child run for one job; FAILED if the body raises, KILLED if it is interrupted. The body's
    exception propagates unchanged, and nothing MLflow does (or fails to do) changes the outcome."""
    tracker = _open_run(name, params, experiment, root) if enabled else None
    if tracker is None:
        yield NullTracker()
        return
    try:
        yield tracker
    except BaseException as exc:
        tracker.end("KILLED" if isinstance(exc, (Terminated, KeyboardInterrupt)) else "FAILED")
        raise
    tracker.end("FINISHED")
