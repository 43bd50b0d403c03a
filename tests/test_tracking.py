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
