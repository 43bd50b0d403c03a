"""The Snakemake workflow end to end on a tiny configuration, offline (sockets blocked)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

TINY = [".test/params.yaml"]
BLOCK_NETWORK = '''
import socket
_connect = socket.socket.connect
def _guard(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        raise OSError(f"network access attempted in offline test: {address}")
    return _connect(self, address)
socket.socket.connect = _guard
'''


def tracked_copy(dest: Path) -> Path:
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        if (REPO / f).is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / f, dest / f)
    return dest


def snakemake(cwd: Path, *args: str, env=None, extra_config: Path | None = None) -> subprocess.CompletedProcess:
    configs = [*TINY, *([str(extra_config)] if extra_config else [])]
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", *configs, *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env, timeout=1500)


def planned_jobs(result: subprocess.CompletedProcess) -> dict[str, int]:
    """Parse Snakemake's 'Job stats' table of a dry run."""
    lines = result.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Job stats"))
    out = {}
    for line in lines[start + 3 :]:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        out[parts[0]] = int(parts[1])
    return out


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tracked_copy(tmp_path_factory.mktemp("wf"))


def test_lint_is_clean():
    r = subprocess.run([sys.executable, "-m", "snakemake", "--lint"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Lints for" not in r.stdout + r.stderr


def test_bad_config_stops_before_any_job_naming_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("optimizer: {steps: 0}\n")
    r = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--configfile", str(bad)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode != 0
    assert "optimizer.steps: 0 is less than the minimum of 1" in r.stdout + r.stderr


@pytest.mark.slow
def test_end_to_end_offline_resume_and_determinism(workdir, tmp_path):
    (tmp_path / "sitecustomize.py").write_text(BLOCK_NETWORK)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "HF_HUB_OFFLINE": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)

    first = snakemake(workdir, env=env)
    assert first.returncode == 0, first.stderr[-4000:]
    tables = {p: (workdir / p).read_bytes() for p in ("results/tables/glov.md", "results/tables/glov.csv", "results/metrics.json")}
    md = tables["results/tables/glov.md"].decode()
    for row in ("S-TEMP", "GLOV w/o guidance", "GLOV (alpha chosen on val)"):
        assert row in md
    metrics = json.loads(tables["results/metrics.json"])
    assert {"s_temp/animal_mnist/test_acc", "glov/animal_mnist/test_acc", "glov_wo_guidance/mean/test_acc"} <= set(metrics)
    assert (workdir / "results/plots/animal_mnist.png").stat().st_size > 1000
    run = workdir / "results/runs/animal_mnist/lab-minilm-untrained/smollm2-135m-instruct/a1.0/s0"
    step2 = json.loads((run / "step_002.json").read_text())
    assert len(step2["candidates"]) == 4 and {"meta_prompt", "steering", "state", "n_failed"} <= set(step2)
    assert step2["steering"]["layer"] == 16

    nothing = snakemake(workdir, "-n", env=env)
    assert "Nothing to be done" in nothing.stdout + nothing.stderr

    # a new alpha plans only its own chain: other runs' params did not change
    more = tmp_path / "more_alphas.yaml"
    more.write_text("steering: {alphas: [0.0, 1.0, 0.5]}\n")
    assert planned_jobs(snakemake(workdir, "-n", env=env, extra_config=more)) == {"glov_step": 3, "score": 1, "aggregate": 1, "all": 1}

    (run / "step_001.json").unlink()
    plan = planned_jobs(snakemake(workdir, "-n", env=env))
    assert plan == {"glov_step": 2, "score": 1, "aggregate": 1, "all": 1}

    again = snakemake(workdir, env=env)
    assert again.returncode == 0, again.stderr[-4000:]
    assert {p: (workdir / p).read_bytes() for p in tables} == tables  # resumed run == uninterrupted run

    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("glov").experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("mlflow.runName") == "snakemake"]
    assert len(parents) == 2 and all(r.info.status == "FINISHED" for r in parents)
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    first_parent = min(parents, key=lambda r: r.info.start_time).info.run_id
    n_first = sum(r.data.tags["mlflow.parentRunId"] == first_parent for r in children)
    # one child per job: export, build_vlm, cache_llm, prep, 3 embeds, 2 x 3 steps, 2 scores, aggregate
    assert n_first == 1 + 1 + 1 + 1 + 3 + 6 + 2 + 1
    second_parent = max(parents, key=lambda r: r.info.start_time).info.run_id
    assert sum(r.data.tags["mlflow.parentRunId"] == second_parent for r in children) == 2 + 1 + 1  # the resumed jobs
    aggregate = next(r for r in children if r.data.tags["mlflow.runName"] == "aggregate")
    assert {a.path for a in client.list_artifacts(aggregate.info.run_id)} == {"glov.md", "glov.csv", "metrics.json", "animal_mnist.png"}
