import json

import pytest

from glov import tracking
from glov.resume import Terminated


@pytest.fixture
def uri(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.delenv(tracking.PARENT_ENV, raising=False)
    return tracking.tracking_uri()


def test_default_uri_is_absolute_sqlite_in_project(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.tracking_uri(tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"


def test_parent_and_child_runs_with_status(uri, tmp_path):
    from mlflow.tracking import MlflowClient

    parent = tracking.start_workflow_run({"optimizer": {"steps": 2}}, "exp", tmp_path)
    assert parent
    with tracking.job_run("ok", {"a": 1}, True, "exp", tmp_path) as t:
        t.log_metrics({"acc/train": 12.5}, step=3)
        artefact = tmp_path / "step.json"
        artefact.write_text("{}")
        t.log_artifact(artefact)
    with pytest.raises(ValueError):
        with tracking.job_run("bad", {"a": 1}, True, "exp", tmp_path):
            raise ValueError("job failed")
    with pytest.raises(Terminated):
        with tracking.job_run("killed", {"a": 1}, True, "exp", tmp_path):
            raise Terminated("SIGTERM")
    tracking.end_workflow_run("FINISHED", tmp_path)

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("exp")
    runs = {r.data.tags["mlflow.runName"]: r for r in client.search_runs([exp.experiment_id])}
    assert runs["ok"].data.tags["mlflow.parentRunId"] == parent == runs["bad"].data.tags["mlflow.parentRunId"]
    assert runs["ok"].info.status == "FINISHED" and runs["bad"].info.status == "FAILED"
    assert runs["killed"].info.status == "KILLED"
    assert runs["snakemake"].info.status == "FINISHED"
    assert runs["snakemake"].data.params["optimizer.steps"] == "2"
    assert client.get_metric_history(runs["ok"].info.run_id, "acc.train")[0].step == 3
    assert [a.path for a in client.list_artifacts(runs["ok"].info.run_id)] == ["step.json"]
    assert len(runs["ok"].data.tags["params_hash"]) == 12


def test_disabled_tracking_is_a_no_op(tmp_path):
    with tracking.job_run("x", {}, False, "exp", tmp_path) as t:
        assert isinstance(t, tracking.NullTracker)
    assert not (tmp_path / "mlflow.db").exists()


def failing(monkeypatch, *methods: str) -> None:
    """MLflow calls that fail the way a full disk, a lost server or a broken upload does."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    def fail(*_args, **_kwargs):
        raise MlflowException("tracking store unavailable")

    for name in methods:
        monkeypatch.setattr(MlflowClient, name, fail)


def test_a_job_whose_final_tracking_calls_fail_still_succeeds(uri, tmp_path, monkeypatch, caplog):
    """Closing the run and uploading an artefact fail: a warning each, and the job's result stands
    (an exception here would make Snakemake delete the outputs the job has written)."""
    failing(monkeypatch, "set_terminated", "log_artifact")
    out = tmp_path / "result.json"
    with tracking.job_run("ok", {"a": 1}, True, "exp", tmp_path) as t:
        out.write_text("{}")
        t.log_artifact(out)
        t.log_metrics({"acc": 1.0})
    assert out.read_text() == "{}"
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(w.startswith(f"MLflow: could not upload {out}") for w in warnings)
    assert any("could not mark run" in w and "FINISHED" in w for w in warnings)


def test_every_tracking_call_is_best_effort(uri, tmp_path, monkeypatch, caplog):
    """Params, metrics, tags, artefacts, closing: each failing call is a warning, the job runs on."""
    failing(monkeypatch, "log_batch", "set_tag", "log_artifact", "set_terminated")
    with tracking.job_run("ok", {"a": 1}, True, "exp", tmp_path) as t:
        assert isinstance(t, tracking.MlflowTracker)  # the run was created; only what follows fails
        t.log_metrics({"acc": 1.0}, step=1)
        t.set_tags({"k": "v"})
        t.log_artifact(tmp_path)
    whats = [r.getMessage().split(" (ignored")[0] for r in caplog.records if r.getMessage().startswith("MLflow: could not")]
    assert [w.split()[3] for w in whats] == ["log", "log", "set", "upload", "mark"]


def test_the_jobs_own_error_is_raised_not_the_tracking_error(uri, tmp_path, monkeypatch):
    failing(monkeypatch, "set_terminated")
    with pytest.raises(ValueError, match="^the user's own message$") as raised:
        with tracking.job_run("bad", {"a": 1}, True, "exp", tmp_path):
            raise ValueError("the user's own message")
    assert raised.value.__context__ is None and raised.value.__cause__ is None
    with pytest.raises(Terminated):
        with tracking.job_run("killed", {"a": 1}, True, "exp", tmp_path):
            raise Terminated("SIGTERM")


def test_workflow_runs_survive_tracking_failures(uri, tmp_path, monkeypatch, caplog):
    failing(monkeypatch, "log_batch", "set_terminated")
    assert tracking.start_workflow_run({"optimizer": {"steps": 2}}, "exp", tmp_path)  # created; its params are a warning
    tracking.end_workflow_run("FINISHED", tmp_path)
    assert sum("MLflow: could not" in r.getMessage() for r in caplog.records) == 2


@pytest.fixture
def restore_logging():
    """job() configures the root logger for its log file, as a job process does."""
    import logging

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level


def test_a_real_job_keeps_its_outputs_and_its_error_message_when_tracking_fails(uri, tmp_path, monkeypatch, capsys, restore_logging):
    """Through job(), as a Snakemake job runs: the manifest is written and the job ends normally;
    a user error still ends the job with its own one-line message, no MLflow error in sight."""
    from types import SimpleNamespace

    from conftest import write_imagefolder
    from glov.jobs.common import job
    from glov.jobs.data import prepare_dataset

    failing(monkeypatch, "set_terminated", "log_artifact")
    write_imagefolder(tmp_path / "toy", {"cat": 4, "dog": 4})
    toy = {"layout": "imagefolder", "path": str(tmp_path / "toy"), "description": "toy pets"}
    config = {"data": {"datasets": ["toy"], "val_per_class": 1, "test_per_class": 1, "custom": {"toy": toy}}}
    smk = SimpleNamespace(log=[str(tmp_path / "job.log")], threads=1, config=config, wildcards=SimpleNamespace(dataset="toy"))
    with job(smk) as params:
        assert params.tracking.mlflow
        prepare_dataset(params, "toy", tmp_path / "manifest.json")
    assert json.loads((tmp_path / "manifest.json").read_text())["classnames"] == ["cat", "dog"]
    assert "could not mark run" in (tmp_path / "job.log").read_text()

    smk.config = {"data": {**config["data"], "custom": {"toy": {**toy, "path": str(tmp_path / "missing")}}}}
    with pytest.raises(SystemExit) as ended:
        with job(smk) as params:
            prepare_dataset(params, "toy", tmp_path / "manifest2.json")
    assert ended.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(tmp_path / "missing") in err and "Mlflow" not in err and "tracking store" not in err
    assert not (tmp_path / "manifest2.json").exists()
