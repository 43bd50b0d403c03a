"""glov diff: results directories, git revisions and DVC experiment refs."""

import json
import shutil
import subprocess

import pytest
import yaml

from glov.cli import main
from glov.diff import DiffError, load_snapshot

METRICS_A = {"s_temp/pets/test_acc": 40.0, "glov/pets/test_acc": 60.0, "glov_wo_guidance/pets/test_acc": 55.0, "glov/mean/test_acc": 60.0}
METRICS_B = {"s_temp/pets/test_acc": 40.0, "glov/pets/test_acc": 62.5, "glov_wo_guidance/pets/test_acc": 55.0, "glov/mean/test_acc": 62.5,
             "glov/dtd/test_acc": 30.0}


def write_run(root, metrics, alphas):
    (root / "results").mkdir(parents=True, exist_ok=True)
    (root / "results/metrics.json").write_text(json.dumps(metrics))
    (root / "params.yaml").write_text(yaml.safe_dump({"steering": {"alphas": alphas, "layer": None}, "seeds": [0]}))
    return root


def test_diff_of_two_result_directories_with_different_alpha(tmp_path, capsys):
    a = write_run(tmp_path / "a", METRICS_A, [0.0, 1.0])
    b = write_run(tmp_path / "b", METRICS_B, [0.0, 0.5])
    assert main(["diff", str(a), str(b / "results")]) == 0
    out = capsys.readouterr().out
    assert "| pets | +0.0 (40.0 -> 40.0) | +0.0 (55.0 -> 55.0) | +2.5 (60.0 -> 62.5) |" in out
    assert "| dtd | - -> - | - -> - | - -> 30.0 |" in out
    assert "| mean | - -> - | - -> - | +2.5 (60.0 -> 62.5) |" in out
    assert "params that differ:\n  steering.alphas: [0.0, 1.0] -> [0.0, 0.5]\n" in out
    assert "seeds" not in out.split("params that differ:")[1]


def git(repo, *args):
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def test_diff_of_git_revisions_and_dvc_experiment_names(tmp_path, capsys):
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    write_run(repo, METRICS_A, [0.0, 1.0])
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "baseline")
    write_run(repo, METRICS_B, [0.0, 0.5])
    git(repo, "commit", "-qam", "alpha 0.5")
    experiment = git(repo, "rev-parse", "HEAD")
    git(repo, "update-ref", "refs/exps/ab/cdef0123/alpha05", experiment)  # where `dvc exp run -n alpha05` keeps it
    git(repo, "reset", "-q", "--hard", "HEAD~1")

    assert load_snapshot("alpha05", repo).metrics == METRICS_B
    assert main(["diff", "HEAD", "alpha05", "--repo", str(repo)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("A: HEAD (") and "B: alpha05 (" in out and "+2.5 (60.0 -> 62.5)" in out


def test_unknown_runs_are_errors_not_tracebacks(tmp_path, capsys):
    with pytest.raises(DiffError, match="neither a results directory, a git revision nor a DVC experiment"):
        load_snapshot("no-such-run", tmp_path)
    (tmp_path / "empty").mkdir()
    assert main(["diff", str(tmp_path / "empty"), str(tmp_path / "empty")]) == 1
    assert "has no results/metrics.json: run the workflow there first" in capsys.readouterr().err


def test_revisions_read_their_metrics_from_the_dvc_cache_through_dvc_lock(tmp_path, capsys):
    """Results are not in git: an experiment commits dvc.lock, whose md5 of results/metrics.json names
    the blob in .dvc/cache (the layout DVC 3 writes)."""
    import hashlib

    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    for name, metrics in (("a", METRICS_A), ("b", METRICS_B)):
        text = json.dumps(metrics)
        md5 = hashlib.md5(text.encode()).hexdigest()
        blob = repo / ".dvc/cache/files/md5" / md5[:2] / md5[2:]
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_text(text)
        lock = {"schema": "2.0", "stages": {"workflow": {"outs": [{"path": "results/metrics.json", "hash": "md5", "md5": md5}]}}}
        (repo / "dvc.lock").write_text(yaml.safe_dump(lock))
        (repo / "params.yaml").write_text(yaml.safe_dump({"eval": {"ensemble_size": 3 if name == "a" else 1}}))
        git(repo, "add", "dvc.lock", "params.yaml")
        git(repo, "commit", "-qm", name)
    assert load_snapshot("HEAD~1", repo).metrics == METRICS_A and load_snapshot("HEAD", repo).metrics == METRICS_B
    assert main(["diff", "HEAD~1", "HEAD", "--repo", str(repo)]) == 0
    assert "eval.ensemble_size: 3 -> 1" in capsys.readouterr().out

    shutil.rmtree(repo / ".dvc/cache")  # another clone: the experiment's metrics are not here
    assert main(["diff", "HEAD~1", "HEAD", "--repo", str(repo)]) == 1
    assert "records no results/metrics.json in this clone's DVC cache" in capsys.readouterr().err
