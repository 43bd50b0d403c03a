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


def write_run(root, metrics, alphas, correct=None):
    (root / "results").mkdir(parents=True, exist_ok=True)
    (root / "results/metrics.json").write_text(json.dumps(metrics))
    (root / "params.yaml").write_text(yaml.safe_dump({"steering": {"alphas": alphas, "layer": None}, "seeds": [0]}))
    if correct is not None:
        (root / "results/correct.json").write_text(json.dumps(correct_file(correct)))
    return root


def bits(right: int, n: int = 1000) -> str:
    return "1" * right + "0" * (n - right)


def correct_file(runs):
    """results/correct.json from {(method, dataset, seed): (test_correct, test_set)}."""
    from glov.stats import correctness_file

    return correctness_file({k: {"test_correct": c, "test_set": t} for k, (c, t) in runs.items()})


SEEDS = range(5)
# A: GLOV 60 % in every seed; GLOV w/o guidance 55 %; S-TEMP 40 %, run once
RUN_A = {**{("glov", "pets", s): (bits(600), "t") for s in SEEDS}, **{("glov_wo_guidance", "pets", s): (bits(550), "t") for s in SEEDS},
         ("s_temp", "pets", 0): (bits(400), "t")}
# B: GLOV right on 25 more of the same images in every seed (+2.5); GLOV w/o guidance scored on other test images
RUN_B = {**{("glov", "pets", s): (bits(625), "t") for s in SEEDS}, **{("glov_wo_guidance", "pets", s): (bits(550), "u") for s in SEEDS},
         ("s_temp", "pets", 0): (bits(400), "t")}
METRICS_A5 = {"s_temp/pets/test_acc": 40.0, "glov/pets/test_acc": 60.0, "glov_wo_guidance/pets/test_acc": 55.0}
METRICS_B5 = {"s_temp/pets/test_acc": 40.0, "glov/pets/test_acc": 62.5, "glov_wo_guidance/pets/test_acc": 55.0}


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


def test_diff_gives_intervals_seeds_and_changed_marks_between_result_directories(tmp_path, capsys):
    a = write_run(tmp_path / "a", METRICS_A5, [0.0, 1.0], RUN_A)
    b = write_run(tmp_path / "b", METRICS_B5, [0.0, 1.0], RUN_B)
    assert main(["diff", str(a), str(b)]) == 0  # changed cells are findings, not errors
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("| pets |")).split(" | ")
    s_temp, wo, glov = row[1], row[2], row[3].rstrip(" |")
    assert s_temp == "+0.0 [+0.0, +0.0] (40.0 -> 40.0; deterministic)"
    assert glov.startswith("+2.5 [+") and glov.endswith("] * (60.0 -> 62.5; 5 seeds)")  # 25 images better in every seed
    assert wo.startswith("+0.0 [-") and wo.endswith("(55.0 -> 55.0; 5 seeds, unpaired images)")  # other images: drawn independently
    low, high = (float(x) for x in wo.split("[")[1].split("]")[0].split(", "))
    assert -7 < low < -3 and 3 < high < 7  # two independent draws of 1,000 images, widened for 5 seeds
    assert "* = changed: the interval excludes 0" in out and "no per-image records" not in out
    assert main(["diff", str(a), str(b)]) == 0 and capsys.readouterr().out == out  # seeded by the cell: same output


def test_a_directory_without_correct_json_is_read_from_its_result_files(tmp_path):
    """A run made before results/correct.json: the score and baseline files its params name."""
    from glov.diff import load_snapshot

    root = write_run(tmp_path / "old", METRICS_A, [0.0, 1.0])
    (root / "params.yaml").write_text(yaml.safe_dump({"data": {"datasets": ["pets"]}, "seeds": [0], "steering": {"alphas": [0.0, 1.0]},
                                                      "methods": ["s_temp", "glov_wo_guidance", "glov"]}))
    params = yaml.safe_load((root / "params.yaml").read_text())
    from glov import config as C

    run = C.from_dict(params)
    chain = root / f"results/runs/pets/{run.vlm.name}/{run.llm.name}"
    for alpha, right, val in (("0.0", 550, 50.0), ("1.0", 600, 60.0)):
        (chain / f"a{alpha}/s0").mkdir(parents=True)
        (chain / f"a{alpha}/s0/score.json").write_text(json.dumps({"test_acc": right / 10, "val_acc": val, "test_correct": bits(right), "test_set": "t"}))
    baseline = root / f"results/baselines/pets/{run.vlm.name}/{run.llm.name}/s_temp/s0.json"
    baseline.parent.mkdir(parents=True)
    baseline.write_text(json.dumps({"method": "s_temp", "dataset": "pets", "seed": 0, "test_acc": 40.0, "test_correct": bits(400), "test_set": "t"}))
    assert load_snapshot(str(root)).correct == {"glov": {"pets": {0: (bits(600), "t")}}, "glov_wo_guidance": {"pets": {0: (bits(550), "t")}},
                                                "s_temp": {"pets": {0: (bits(400), "t")}}}


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


def dvc_repo(tmp_path, commits):
    """A git repository whose commits record their outputs only in dvc.lock, with the blobs in .dvc/cache."""
    import hashlib

    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    for name, outputs in commits:
        outs = []
        for path, content in outputs.items():
            text = json.dumps(content)
            md5 = hashlib.md5(text.encode()).hexdigest()
            blob = repo / ".dvc/cache/files/md5" / md5[:2] / md5[2:]
            blob.parent.mkdir(parents=True, exist_ok=True)
            blob.write_text(text)
            outs.append({"path": path, "hash": "md5", "md5": md5})
        (repo / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": {"workflow": {"outs": outs}}}))
        (repo / "params.yaml").write_text(yaml.safe_dump({"eval": {"ensemble_size": 3 if name == "a" else 1}}))
        git(repo, "add", "dvc.lock", "params.yaml")
        git(repo, "commit", "-qm", name)
    return repo


def test_intervals_between_a_revision_an_experiment_and_the_working_tree(tmp_path, capsys):
    """results/correct.json is DVC-cached like metrics.json: a revision and an experiment have it too."""
    repo = dvc_repo(tmp_path, [("a", {"results/metrics.json": METRICS_A5, "results/correct.json": correct_file(RUN_A)}),
                               ("b", {"results/metrics.json": METRICS_B5, "results/correct.json": correct_file(RUN_B)})])
    git(repo, "update-ref", "refs/exps/ab/cdef0123/ens1", git(repo, "rev-parse", "HEAD"))
    git(repo, "reset", "-q", "--hard", "HEAD~1")
    write_run(tmp_path / "work", METRICS_B5, [0.0, 1.0], RUN_B)
    assert main(["diff", "HEAD", "ens1", "--repo", str(repo)]) == 0
    experiment = capsys.readouterr().out
    assert main(["diff", "HEAD", str(tmp_path / "work"), "--repo", str(repo)]) == 0
    working_tree = capsys.readouterr().out
    for out in (experiment, working_tree):
        assert "] * (60.0 -> 62.5; 5 seeds)" in out and "(55.0 -> 55.0; 5 seeds, unpaired images)" in out
    assert [l for l in experiment.splitlines() if l.startswith("| pets")] == [l for l in working_tree.splitlines() if l.startswith("| pets")]


def test_revisions_read_their_metrics_from_the_dvc_cache_through_dvc_lock(tmp_path, capsys):
    """Results are not in git: an experiment commits dvc.lock, whose md5 of results/metrics.json names
    the blob in .dvc/cache (the layout DVC 3 writes)."""
    repo = dvc_repo(tmp_path, [("a", {"results/metrics.json": METRICS_A}), ("b", {"results/metrics.json": METRICS_B})])
    assert load_snapshot("HEAD~1", repo).metrics == METRICS_A and load_snapshot("HEAD", repo).metrics == METRICS_B
    assert load_snapshot("HEAD", repo).correct is None
    assert main(["diff", "HEAD~1", "HEAD", "--repo", str(repo)]) == 0
    out = capsys.readouterr().out
    assert "eval.ensemble_size: 3 -> 1" in out and "+2.5 (60.0 -> 62.5)" in out  # no correct.json: the plain difference
    assert "no per-image records (results/correct.json) in HEAD~1 (" in out and "no intervals" in out

    shutil.rmtree(repo / ".dvc/cache")  # another clone: the experiment's metrics are not here
    assert main(["diff", "HEAD~1", "HEAD", "--repo", str(repo)]) == 1
    assert "records no results/metrics.json in this clone's DVC cache" in capsys.readouterr().err
