"""The Snakemake workflow end to end on a tiny configuration, offline (sockets blocked)."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO

TINY = [".test/params.yaml"]
BLOCK_NETWORK = '''
import ipaddress, socket
_connect = socket.socket.connect
def _loopback(host):
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
def _guard(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address[0]):
        raise OSError(f"network access attempted in offline test: {address}")
    return _connect(self, address)
socket.socket.connect = _guard
'''  # this machine only: a cluster run's jobs reach their MLflow server on the loopback address


def tracked_copy(dest: Path) -> Path:
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        if (REPO / f).is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / f, dest / f)
    return dest


def reference_copy(workdir: Path, dest: Path, without: list[str]) -> Path:
    """A copy of the project holding the reference run's models and results (hard links are safe:
    every write replaces a file, never edits it), less the result folders/files ``without``."""
    copy = tracked_copy(dest)
    shutil.rmtree(copy / "results")
    for folder in ("resources", "results"):
        shutil.copytree(workdir / folder, copy / folder, copy_function=os.link)
    for gone in (copy / "results" / name for name in without):
        if gone.is_dir():
            shutil.rmtree(gone)
        else:
            gone.unlink()
    return copy


def copy_records(workdir: Path, dest: Path) -> None:
    """Snakemake's records and the result store of ``workdir`` into ``dest``. The store is linked
    (every store write replaces a file), Snakemake's records are copied: Snakemake rewrites its
    metadata files in place, so a link would let the copy's run edit ``workdir``'s records."""
    shutil.copytree(workdir / ".snakemake", dest / ".snakemake", ignore=shutil.ignore_patterns("locks", "log", "store"))
    shutil.copytree(workdir / ".snakemake/glov/store", dest / ".snakemake/glov/store", copy_function=os.link)


def snakemake(cwd: Path, *args: str, env=None, extra_config: Path | None = None) -> subprocess.CompletedProcess:
    configs = [*TINY, *([str(extra_config)] if extra_config else [])]
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", *configs, *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env, timeout=1500)


def planned_jobs(result: subprocess.CompletedProcess) -> dict[str, int]:
    """Parse Snakemake's 'Job stats' table of a dry run; the per-block rules glov_steps_<first>_<last>
    count as glov_steps (their protocol-ablation twins as glov_steps_variant)."""
    lines = result.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Job stats"))
    out = {}
    for line in lines[start + 3 :]:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        name = parts[0]
        if name.startswith("glov_steps"):  # per block: glov_steps_<first>_<last>[_variant]
            name = "glov_steps_variant" if name.endswith("_variant") else "glov_steps"
        out[name] = out.get(name, 0) + int(parts[1])
    return out


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tracked_copy(tmp_path_factory.mktemp("wf"))


def test_lint_is_clean():
    r = subprocess.run([sys.executable, "-m", "snakemake", "--lint"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Lints for" not in r.stdout + r.stderr


def test_main_versions_no_result_file():
    """Results are versioned per DVC experiment, never in git: a committed metrics.json, curve or
    dvc.lock would describe another machine's run of other code."""
    tracked = subprocess.run(["git", "ls-files", "results", "dvc.lock"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    assert tracked == ["results/README.md"]


def test_bad_config_stops_before_any_job_naming_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("optimizer: {steps: 0}\n")
    r = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--configfile", str(bad)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode != 0
    assert "optimizer.steps: 0 is less than the minimum of 1" in r.stdout + r.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    "configs, expected",
    [
        (["config/paper.yaml"], {"fetch_released": 1, "fetch_official": 1, "prep_dataset": 16 * 3, "embed_images": 16 * 3, "describe_classes": 16 * 3, "baselines": 16 * 3,
                                 "train_llamp": 16, "glov_steps": 15 * 3, "score": 16 * 3, "aggregate": 1, "all": 1}),
        (["config/paper.yaml", "config/paper_clean.yaml"], {"fetch_released": 1, "prep_dataset": 16, "embed_images": 16, "describe_classes": 16 * 3,
                                                            "baselines": 16, "baselines_later_seeds": 16 * 2, "glov_steps": 16 * 3,
                                                            "train_llamp": 16,
                                                            "score": 16 * 3, "aggregate": 1, "all": 1}),
        (["config/paper.yaml", "config/paper_llava.yaml"], {"fetch_released": 1, "fetch_official": 1, "prep_dataset": 16 * 3, "baselines": 16 * 3, "glov_steps": 15 * 3 * 26,
                                                            "score": 16 * 3, "aggregate": 1, "all": 1}),
    ],
)
def test_the_paper_configurations_plan_their_whole_dag_without_data_or_weights(configs, expected):
    """16 datasets, 5 alphas, 3 seeds, 100 (CLIP) or 25 (LLaVA) steps; every method of Table 1 and the
    baselines (S-TEMP/DS-TEMP once, the LLM-based ones per seed); a LLaVA needs no embedding cache.
    One job runs all steps of the 5 alpha chains of a (dataset, seed) for CLIP, one step of them for LLaVA;
    one job embeds a dataset's three splits, one scores the chains of a (dataset, seed), one its baselines.
    The GLOV authors' released prompts are fetched once (methods glov_released, glov_wo_guidance_released), and
    under the official protocol the released code's wording too (rule fetch_official).
    The official protocol gives ImageNet-V2 no chain of its own: it scores ImageNet's prompts (row 15); and
    each seed draws its own splits, so data preparation, embedding and S-TEMP/DS-TEMP run per seed (row 17)."""
    r = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "all", "--configfile", *configs],
                       cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert planned_jobs(r) == expected


@pytest.mark.slow
def test_the_protocol_ablation_plans_each_variant_with_the_run_rules():
    """config/ablation_protocol.yaml over config/lab.yaml: glyphs x 3 seeds; 14 variants run chains of
    their own (clean and final_set alone score the run's); fitness_loader, val_split, split_seed and
    official draw their own splits (1 + 1 + 3 + 3), precision embeds the run's images itself (1);
    every variant's chains are scored; one table compares them."""
    r = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--forceall", "--cores", "all", "--configfile", "config/lab.yaml",
                        "config/ablation_protocol.yaml"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert planned_jobs(r) == {"export_bundled_dataset": 1, "cache_llm": 1, "train_lab_vlm": 1, "fetch_official": 1, "prep_dataset": 1,
                               "embed_images": 1, "glov_steps": 3, "score": 3, "oracle": 3, "prep_dataset_variant": 8,
                               "embed_images_variant": 9, "glov_steps_variant": 14 * 3, "score_variant": 16 * 3, "aggregate": 1,
                               "protocol_table": 1, "all": 1}


@pytest.fixture(scope="module")
def offline_env(tmp_path_factory):
    """The environment of every end-to-end run: any attempt to open a network socket fails."""
    site = tmp_path_factory.mktemp("offline")
    (site / "sitecustomize.py").write_text(BLOCK_NETWORK)
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "HF_HUB_OFFLINE": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


@pytest.fixture(scope="module")
def reference_run(workdir, offline_env):
    """One uninterrupted run of the tiny configuration (two datasets, two alphas, 2 cores)."""
    first = snakemake(workdir, env=offline_env)
    assert first.returncode == 0, first.stderr[-4000:]
    return {str(p.relative_to(workdir)): p.read_bytes() for p in results_files(workdir)}


def results_files(root: Path) -> list[Path]:
    """Every result whose bytes must not depend on how the run got there (interrupted or not)."""
    return sorted([*(root / "results/runs").rglob("*.json"), *(root / "results/curves").glob("*.csv"),
                   *(root / "results/baselines").rglob("*.json"), *(root / "results/descriptions").rglob("*.json"),
                   *(root / "results/oracle").rglob("*.json"),
                   *(root / "results/tables").glob("*.*"), root / "results/metrics.json"])


@pytest.mark.slow
def test_end_to_end_offline_resume_and_determinism(workdir, offline_env, reference_run, tmp_path):
    env = offline_env
    tables = {p: reference_run[p] for p in ("results/tables/glov.md", "results/tables/glov.csv", "results/metrics.json")}
    md = tables["results/tables/glov.md"].decode()
    from glov.tables import LABELS

    offline = {m: label for m, label in LABELS.items() if not m.endswith("_released")}  # released prompts: paper datasets only
    assert all(f"| {label} |" in md for label in offline.values())  # every method of the offline configuration
    metrics = json.loads(tables["results/metrics.json"])
    assert {f"{m}/{d}/test_acc" for m in offline for d in ("animal_mnist", "toy", "mean")} <= set(metrics)
    baselines = workdir / "results/baselines/animal_mnist/lab-minilm/smollm2-135m-instruct"
    llm_opt = json.loads((baselines / "llm_opt/s0.json").read_text())
    assert len(llm_opt["search"]["iterations"]) == 2 and llm_opt["templates"] == [llm_opt["search"]["best"]]
    assert json.loads((baselines / "awt/s0.json").read_text())["views"] == 3
    proapo = json.loads((baselines / "proapo/s0.json").read_text())
    assert len(proapo["search"]["raw"]) == 4 and [i["stage"] for i in proapo["search"]["iterations"]] == ["templates"] * 2 + ["descriptions"] * 2
    assert proapo["templates"] and proapo["search"]["template_candidates"][0] == "a photo of a {}."
    llamp = json.loads((baselines / "llamp/s0.json").read_text())
    assert llamp["shots"] == 1 and llamp["n_trainable"] > 0
    assert (workdir / "results/llamp/animal_mnist/lab-minilm/smollm2-135m-instruct/1shot/knowledge.pt").is_file()
    assert "rebuilding" not in (workdir / "logs/train_llamp/animal_mnist/lab-minilm/smollm2-135m-instruct/1shot.log").read_text()
    cupl_texts = json.loads((workdir / "results/descriptions/toy/smollm2-135m-instruct/sentences/s0.json").read_text())
    assert all(len(c["raw"]) == 2 for c in cupl_texts["classes"].values())
    assert all((workdir / f"results/plots/{d}.png").stat().st_size > 1000 for d in ("animal_mnist", "toy"))
    run = workdir / "results/runs/animal_mnist/lab-minilm/smollm2-135m-instruct/a1.0/s0"
    step2 = json.loads((run / "step_002.json").read_text())
    assert len(step2["candidates"]) == 4 and {"meta_prompt", "steering", "state", "n_failed"} <= set(step2)
    assert step2["steering"]["layer"] == 16
    lab = reference_run["results/tables/lab.md"].decode()  # animal_mnist is a lab task, toy is not
    assert "| animal_mnist | 10.0 |" in lab and "| toy |" not in lab and "trained on 256 animal_mnist images" in lab
    assert "- animal_mnist: S-TEMP is" in lab and "S-TEMP (" in lab
    assert "## Controls and intervals" in lab and "| animal_mnist | " in lab.split("## Controls and intervals")[1]
    oracle = json.loads((workdir / "results/oracle/animal_mnist/lab-minilm/smollm2-135m-instruct/s0.json").read_text())
    assert oracle["n_templates"] > 80 and oracle["test_acc"] >= llm_opt["test_acc"]  # single templates: DS-TEMP's 80 are in the pool
    wordings = dict(oracle["wordings"])
    assert [w for w, _ in oracle["wordings"]][:2] == ["{}", "a photo of a {}."] and len(wordings) == 6
    assert wordings["a photo of a {}."] == pytest.approx(json.loads((baselines / "s_temp/s0.json").read_text())["test_acc"], abs=0.01)
    assert "## Diagnostic wordings" in lab and "| `{}` | `a photo of a {}.` |" in lab
    search = json.loads((baselines / "random_search/s0.json").read_text())
    assert len(search["candidates"]) == 2 and all(len(c) == 4 for c in search["candidates"]) and "test_correct" in search

    nothing = snakemake(workdir, "-n", env=env)
    assert "Nothing to be done" in nothing.stdout + nothing.stderr

    report = snakemake(workdir, "--report", "report.html", env=env)
    assert report.returncode == 0, report.stderr[-3000:]
    html = (workdir / "report.html").read_text()
    assert all(name in html for name in ("glov.html", "paper_table1.html", "lab.html", "animal_mnist.png", "toy.png", "Optimisation curves"))

    # a new alpha plans only its own chain: other runs' params did not change
    more = tmp_path / "more_alphas.yaml"
    more.write_text("steering: {alphas: [0.0, 1.0, 0.5]}\n")
    # (and the oracle, whose pool holds every chain's templates)
    assert planned_jobs(snakemake(workdir, "-n", env=env, extra_config=more)) == {"glov_steps": 2, "score": 2, "oracle": 1, "aggregate": 1, "all": 1}

    (run / "step_001.json").unlink()  # the job that made it runs again: its steps come back from the result store
    plan = planned_jobs(snakemake(workdir, "-n", env=env))
    assert plan == {"glov_steps": 1, "score": 1, "oracle": 1, "aggregate": 1, "all": 1}

    again = snakemake(workdir, env=env)
    assert again.returncode == 0, again.stderr[-4000:]
    assert {p: (workdir / p).read_bytes() for p in tables} == tables  # resumed run == uninterrupted run
    assert {str(p.relative_to(workdir)): p.read_bytes() for p in results_files(workdir)} == reference_run

    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("glov").experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("mlflow.runName") == "snakemake"]
    assert len(parents) == 2 and all(r.info.status == "FINISHED" for r in runs)  # concurrent jobs: none lost or stuck
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    first_parent = min(parents, key=lambda r: r.info.start_time).info.run_id
    n_first = sum(r.data.tags["mlflow.parentRunId"] == first_parent for r in children)
    # one child per job: export, train_lab_vlm, cache_llm, 2 preps, 2 embeds (3 splits each), 2 glov_steps (all steps of
    # both alphas), 2 scores (both alphas), aggregate, 2 describe_classes (both styles), 2 baselines (every method of a
    # dataset and seed), 2 train_llamp (knowledge cache and training), 1 oracle (animal_mnist: the lab task)
    assert n_first == 1 + 1 + 1 + 2 + 2 + 2 + 2 + 1 + 2 + 2 + 2 + 1
    second_parent = max(parents, key=lambda r: r.info.start_time).info.run_id
    resumed = [r for r in children if r.data.tags["mlflow.parentRunId"] == second_parent]
    assert len(resumed) == 1 + 1 + 1 + 1  # the glov_steps job of the deleted step, its score job, the oracle, aggregate
    steps_job = next(r for r in resumed if r.data.tags["mlflow.runName"].startswith("glov_steps/"))
    assert steps_job.data.metrics["restored_steps"] == 6 and steps_job.data.metrics["computed_steps"] == 0  # from the store
    curve = client.get_metric_history(steps_job.info.run_id, "best_train_acc.a1.0")  # per-chain metrics on the step axis
    assert [m.step for m in sorted(curve, key=lambda m: m.step)] == [0, 1, 2]
    aggregate = next(r for r in children if r.data.tags["mlflow.runName"] == "aggregate")
    assert {a.path for a in client.list_artifacts(aggregate.info.run_id)} == {"glov.md", "glov.csv", "paper_table1.md", "lab.md", "metrics.json", "animal_mnist.png", "toy.png"}
    training = next(r for r in children if r.data.tags["mlflow.runName"] == "train_lab_vlm/lab-minilm")
    losses = [m.value for m in client.get_metric_history(training.info.run_id, "train_loss")]
    assert len(losses) == 3 and losses[2] < losses[0]  # the loss curve of the 3 epochs of .test/params.yaml


@pytest.mark.slow
def test_a_moved_project_plans_nothing_and_reads_its_images_from_the_new_place(workdir, offline_env, reference_run, tmp_path_factory):
    """Issue 29 item 5: results record paths relative to the project (the manifests' image roots,
    the lab VLM's text tower), so a project moved with `mv` is complete where it lands: nothing to
    do, and a forced job reads the images and the model from the new place."""
    base = tmp_path_factory.mktemp("moved")
    copy = reference_copy(workdir, base / "before", [])
    copy_records(workdir, copy)
    moved = base / "after"
    os.rename(copy, moved)  # what `mv` does on one file system
    nothing = snakemake(moved, "-n", env=offline_env)
    assert "Nothing to be done" in nothing.stdout + nothing.stderr
    manifest = json.loads((moved / "results/data/toy/manifest.json").read_text())
    assert manifest["image_root"] == ".test/data/toy"
    config = json.loads((moved / "resources/models/vlm/lab-minilm/open_clip_config.json").read_text())
    assert config["model_cfg"]["text_cfg"]["hf_model_name"] == "resources/models/vlm/lab-minilm"
    target = "results/embeddings/toy/lab-minilm/train.pt"
    before = (moved / target).read_bytes()
    forced = subprocess.run([sys.executable, "-m", "snakemake", target, "--cores", "2", "--forcerun", "embed_images", "--configfile", *TINY],
                            cwd=moved, capture_output=True, text=True, env=offline_env, timeout=900)  # reads the toy images and the lab VLM
    assert forced.returncode == 0, forced.stderr[-3000:]
    assert (moved / target).read_bytes() == before and not (base / "before").exists()


def start_snakemake(cwd: Path, env: dict, out: Path) -> subprocess.Popen:
    """Snakemake in its own process group, as a shell, SLURM or Kubernetes would start (and kill) it."""
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", *TINY]
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out.open("w"), stderr=subprocess.STDOUT, start_new_session=True)


def kill_mid_job(cwd: Path, env: dict, sig: signal.Signals) -> None:
    """Start the workflow, wait until a glov_steps job has finished step 1 of its chains and is
    working on step 2, then send ``sig`` to the whole process group (Snakemake and its jobs)."""
    proc = start_snakemake(cwd, env, cwd / f"killed_{sig.name}.out")
    deadline = time.monotonic() + 900
    while not list((cwd / "results/runs").rglob("step_001.json")):
        assert proc.poll() is None and time.monotonic() < deadline, (cwd / f"killed_{sig.name}.out").read_text()[-3000:]
        time.sleep(0.2)
    time.sleep(2)  # inside the job: generating step 2
    os.killpg(proc.pid, sig)
    proc.wait(timeout=120)


def job_logs(cwd: Path) -> str:
    return "\n".join(p.read_text() for p in sorted((cwd / "logs/glov_steps").rglob("*.log")))


@pytest.mark.slow
def test_killed_mid_job_with_sigterm_then_sigkill_resumes_to_identical_results(workdir, offline_env, reference_run, tmp_path_factory):
    # models, data, embeddings, descriptions and baselines are not what is tested: only the GLOV chains
    # (and what reads them) are computed, killed and resumed
    killed = reference_copy(workdir, tmp_path_factory.mktemp("killed"), ["runs", "oracle", "tables", "curves", "plots", "metrics.json"])

    kill_mid_job(killed, offline_env, signal.SIGTERM)
    assert "interrupted: terminated by signal 15; finished steps are kept" in job_logs(killed)
    stored = [p for p in (killed / ".snakemake/glov/store").rglob("step_001/*.json")]
    assert stored  # Snakemake removed the failed job's step files; the store kept the finished ones

    kill_mid_job(killed, offline_env, signal.SIGKILL)
    assert list((killed / ".snakemake/locks").iterdir())  # SIGKILL leaves Snakemake's lock behind ...

    final = snakemake(killed, env=offline_env)  # ... and a plain rerun resumes anyway
    assert final.returncode == 0, final.stderr[-4000:]
    assert "removed the Snakemake lock left by a killed run" in final.stderr
    assert "restored from the result store" in job_logs(killed)
    assert {str(p.relative_to(killed)): p.read_bytes() for p in results_files(killed)} == reference_run
    assert not [p for p in (killed / "results").rglob("*.tmp")]  # no half-written leftovers
    exact = subprocess.run([sys.executable, "-m", "glov", "diff", "--exact", str(workdir), str(killed)], capture_output=True, text=True)
    assert exact.returncode == 0 and "identical:" in exact.stdout, exact.stdout[-2000:]  # the user's check of the same

    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{killed / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("glov").experiment_id], max_results=1000)
    status = {r.info.status for r in runs}
    assert "RUNNING" not in status and "KILLED" in status  # SIGKILLed runs closed by the next invocation
    parents = sorted((r for r in runs if r.data.tags["mlflow.runName"] == "snakemake"), key=lambda r: r.info.start_time)
    assert [r.info.status for r in parents] == ["FAILED", "KILLED", "FINISHED"]
    steps_jobs = [r for r in runs if r.data.tags["mlflow.runName"].startswith("glov_steps/") and r.info.status == "FINISHED"]
    assert sum(r.data.metrics["restored_steps"] for r in steps_jobs) >= 4  # steps 0 and 1 of both alphas, at least once


@pytest.mark.slow
def test_jobs_are_self_contained_under_a_cluster_executor(workdir, offline_env, reference_run, tmp_path_factory):
    """Every job of one dataset (embeddings, descriptions, baselines, the GLOV job, scores) and the
    aggregation again, each submitted as its own detached process by the cluster-generic executor
    (profiles/local-cluster): the same bytes as the local run."""
    cluster = reference_copy(workdir, tmp_path_factory.mktemp("cluster"), ["runs/toy", "descriptions/toy", "baselines/toy", "embeddings/toy", "tables"])
    r = snakemake(cluster, "--profile", "profiles/local-cluster", env=offline_env)
    assert r.returncode == 0, r.stderr[-4000:]
    assert "Using profiles profiles/local-cluster" in r.stderr + r.stdout
    submitted = re.findall(r"^rule (\w+):", r.stderr + r.stdout, re.M)  # a local job shows as "localrule"
    assert {"embed_images", "describe_classes", "baselines", "glov_steps", "score", "aggregate"} <= set(submitted)
    assert {str(p.relative_to(cluster)): p.read_bytes() for p in results_files(cluster)} == reference_run

    # MLflow: the run started a tracking server on the loopback address (the profile's server_host), every
    # job's run reached it over HTTP (none wrote mlflow.db itself), and it was stopped at the end
    assert re.search(r"MLflow tracking server for this run's jobs: http://127\.0\.0\.1:\d+", r.stderr)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{cluster / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("glov").experiment_id], max_results=1000)
    parent = next(r for r in runs if r.data.tags["mlflow.runName"] == "snakemake")
    children = [r for r in runs if r is not parent]
    assert len(children) == len(submitted) and all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in children)
    assert {r.info.status for r in runs} == {"FINISHED"}
    served = (cluster / "logs/mlflow_server.log").read_text()
    assert served.count('"POST /api/2.0/mlflow/runs/create HTTP/1.1" 200') == len(runs)
    aggregate = next(r for r in children if r.data.tags["mlflow.runName"] == "aggregate")
    assert "glov.md" in {a.path for a in client.list_artifacts(aggregate.info.run_id)}
    assert not list((cluster / ".snakemake/glov/mlflow_servers").iterdir())  # stopped: its record is gone
    processes = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    assert f"sqlite:///{cluster}/mlflow.db" not in processes  # nor is the server process left running
    owners = [json.loads(p.read_text()) for p in (cluster / ".snakemake/glov/lock_owners").iterdir()]
    assert owners and all(o["cluster"] is True for o in owners)  # its lock is never removed automatically (its jobs outlive it)


HOLD = """
import os, sys, time
_hold = os.environ.get("GLOV_TEST_HOLD")
if _hold and "/.snakemake/scripts/" in (sys.argv[0] if sys.argv else ""):  # a job's script: wait for the test
    open(_hold + ".started", "w").close()
    _until = time.monotonic() + 300
    while not os.path.exists(_hold) and time.monotonic() < _until:
        time.sleep(0.1)
"""
TWO_TOYS = "data: {datasets: [toy, toy2], custom: {toy2: {layout: imagefolder, path: .test/data/toy, description: the same squares}}}\n" \
           "tracking: {mlflow: false}\n"


@pytest.fixture
def held(offline_env, tmp_path):
    """A fresh copy of the project, an extra config with a second cheap dataset, and an environment
    in which every job waits, once started, until the test creates its hold file."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCK_NETWORK + HOLD)
    (tmp_path / "two.yaml").write_text(TWO_TOYS)
    env = {**offline_env, "PYTHONPATH": f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    repo = tracked_copy(tmp_path / "repo")
    return repo, env, [*TINY, str(tmp_path / "two.yaml")]


def smk_cmd(target: str, configs: list[str], *args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", target, "--cores", "1", *args, "--configfile", *configs]


def start_held(repo: Path, env: dict, configs: list[str], target: str, hold: Path, *args: str) -> subprocess.Popen:
    """A run of ``target`` whose job waits for ``hold``; returns once the job is waiting (the run has locked)."""
    out = hold.with_suffix(".out")
    proc = subprocess.Popen(smk_cmd(target, configs, *args), cwd=repo, env={**env, "GLOV_TEST_HOLD": str(hold)},
                            stdout=out.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 300
    while not Path(f"{hold}.started").exists():
        assert proc.poll() is None and time.monotonic() < deadline, out.read_text()[-3000:]
        time.sleep(0.1)
    return proc


def lock_files(repo: Path) -> dict[str, str]:
    locks = repo / ".snakemake/locks"
    return {p.name: p.read_text() for p in locks.iterdir()} if locks.is_dir() else {}


@pytest.mark.slow
def test_concurrent_runs_with_disjoint_targets_keep_their_own_locks(held, tmp_path):
    """Runs A and B share the folder (disjoint outputs), each with its own lock. A third invocation
    plans while both run, and again after B is killed with SIGKILL: only B's lock goes. B runs again
    and ends while A runs: A's lock stays. Both outputs are written."""
    repo, env, configs = held
    toy, toy2 = "results/data/toy/manifest.json", "results/data/toy2/manifest.json"
    a = start_held(repo, env, configs, toy, tmp_path / "a")
    try:
        locks_a = lock_files(repo)
        b = start_held(repo, env, configs, toy2, tmp_path / "b")
        locks_b = {k: v for k, v in lock_files(repo).items() if k not in locks_a}
        assert locks_a and locks_b and toy in "".join(locks_a.values()) and toy2 in "".join(locks_b.values())

        third = subprocess.run(smk_cmd(toy2, configs, "-n"), cwd=repo, env=env, capture_output=True, text=True, timeout=300)
        assert third.returncode == 0 and lock_files(repo) == {**locks_a, **locks_b}  # both alive: nothing removed

        os.killpg(b.pid, signal.SIGKILL)  # B and its job die; A runs on
        b.wait(timeout=60)
        third = subprocess.run(smk_cmd(toy2, configs, "-n"), cwd=repo, env=env, capture_output=True, text=True, timeout=300)
        assert "removed the Snakemake lock left by a killed run" in third.stderr
        assert lock_files(repo) == locks_a  # B's lock is gone, A's is not

        b = start_held(repo, env, configs, toy2, tmp_path / "b2")
        (tmp_path / "b2").touch()
        assert b.wait(timeout=300) == 0, (tmp_path / "b2.out").read_text()[-3000:]
        assert lock_files(repo) == locks_a  # B's end removed its own lock only
    finally:
        for hold in ("a", "b", "b2"):
            (tmp_path / hold).touch()
    assert a.wait(timeout=300) == 0, (tmp_path / "a.out").read_text()[-3000:]
    assert lock_files(repo) == {}
    assert [json.loads((repo / t).read_text())["dataset"] for t in (toy, toy2)] == ["toy", "toy2"]


@pytest.mark.slow
def test_the_lock_of_a_killed_cluster_run_is_kept_while_its_jobs_may_run(held, tmp_path):
    """The main process of a cluster run dies; its job, submitted as its own process, runs on. A new
    invocation keeps the lock (a rerun would delete the job's outputs as incomplete) and says what to
    do; the job finishes its output."""
    repo, env, configs = held
    toy = "results/data/toy/manifest.json"
    main = start_held(repo, env, configs, toy, tmp_path / "job", "--profile", "profiles/local-cluster")
    try:
        os.kill(main.pid, signal.SIGKILL)  # the main process only: the job was detached from it, as on a cluster
        main.wait(timeout=60)
        locks = lock_files(repo)
        third = subprocess.run(smk_cmd(toy, configs, "-n"), cwd=repo, env=env, capture_output=True, text=True, timeout=300)
        assert locks and lock_files(repo) == locks
        assert "sent its jobs to a cluster: they may still be running" in third.stderr
        assert "squeue" in third.stderr and "snakemake --unlock" in third.stderr
    finally:
        (tmp_path / "job").touch()
    deadline = time.monotonic() + 300
    while not (repo / toy).exists():
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert json.loads((repo / toy).read_text())["dataset"] == "toy"


@pytest.mark.slow
def test_exact_names_the_first_diverging_step_of_a_run_with_one_changed_param(workdir, offline_env, reference_run, tmp_path_factory):
    """Issue 30: `glov diff --exact` between the reference run and the same project run again with
    one param changed (3 candidates instead of 4): exit 1, the first diverging artefact in the
    workflow's order is the first chain's step 1 (its step 0 is the same), its fourth candidate
    is missing, and the job's provenance records show the param side by side."""
    changed = reference_copy(workdir, tmp_path_factory.mktemp("changed"), [])
    # Snakemake's records (a changed param reruns the jobs that read it) and the result store
    copy_records(workdir, changed)
    extra = changed / "three.yaml"
    extra.write_text("optimizer: {candidates: 3}\n")
    r = snakemake(changed, env=offline_env, extra_config=extra)
    assert r.returncode == 0, r.stderr[-4000:]
    exact = subprocess.run([sys.executable, "-m", "glov", "diff", "--exact", str(workdir), str(changed)], capture_output=True, text=True,
                           cwd=changed)
    assert exact.returncode == 1, exact.stdout[-3000:] + exact.stderr[-2000:]
    out = exact.stdout
    first = "results/runs/animal_mnist/lab-minilm/smollm2-135m-instruct/a0.0/s0/step_001.json"
    assert f"first difference, in the workflow's order: {first}" in out
    assert "step 1, candidate 4: only in A (4 vs 3 candidates)" in out
    assert "the job that wrote it: glov_steps" in out and "optimizer.candidates: 4 | 3" in out


def test_slurm_profile_sets_resources_of_real_rules():
    import yaml

    profile = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())
    rules = set()  # the rules of the default run and of the paper's with its run seeds sharing splits, loop-generated ones included
    for configs in ([], ["--configfile", "config/paper.yaml", "config/paper_clean.yaml"]):
        listed = subprocess.run([sys.executable, "-m", "snakemake", "--list-rules", *configs], cwd=REPO, capture_output=True, text=True, timeout=300)
        rules |= set(listed.stdout.split())
    assert profile["executor"] == "slurm"
    assert set(profile["set-resources"]) <= rules and {"glov_steps", "baselines", "baselines_later_seeds"} <= set(profile["set-resources"])


@pytest.mark.slow
def test_a_dataset_folder_that_changes_reruns_prep_by_itself(tmp_path):
    """A user's image folder with an empty and a corrupt image: prep_dataset names both at once;
    deleting them and running again is enough (the folder's listing is a param of prep_dataset)."""
    from conftest import write_imagefolder

    copy = tracked_copy(tmp_path / "wf")
    root = write_imagefolder(tmp_path / "pets", {"cat": 4, "dog": 4})
    (root / "cat/000.png").write_bytes(b"")
    (root / "dog/001.png").write_bytes(b"\x89PNG broken")
    cfg = tmp_path / "pets.yaml"
    cfg.write_text(f"data: {{datasets: [pets], val_per_class: 1, test_per_class: 1, custom: {{pets: {{layout: imagefolder, "
                   f"path: {root}, description: pets}}}}}}\ntracking: {{mlflow: false}}\n")

    def prep(*args):
        cmd = [sys.executable, "-m", "snakemake", "results/data/pets/manifest.json", "--cores", "1", "--configfile", str(cfg), *args]
        return subprocess.run(cmd, cwd=copy, capture_output=True, text=True, timeout=600)

    failed = prep()
    assert failed.returncode != 0
    log = (copy / "logs/prep_dataset/pets.log").read_text()
    assert "2 of the 6 images of dataset 'pets' cannot be read" in log and "cat/000.png" in log and "dog/001.png" in log
    (root / "cat/000.png").unlink()
    (root / "dog/001.png").unlink()
    assert prep().returncode == 0  # no manifest to delete, no flag to pass
    assert "Nothing to be done" in prep("-n").stdout
    (root / "dog/002.png").unlink()
    assert "prep_dataset" in planned_jobs(prep("-n"))


# --------------------------------------------------------------------------- the README, as a user runs it

README_NOT_RUN = {  # every fenced README command that this test does not run, and why
    'pip install -e ".[test]" && pip install --no-deps -r requirements-offline.txt && glov fetch-data':
        "the install: .ci/run runs it on a fresh machine",
    "python3 -m pytest -q": "this test suite",
    "snakemake --cores all --configfile config/paper.yaml": "needs the 16 datasets and the weights (its DAG: the paper-configuration test)",
    "pip install snakemake-executor-plugin-slurm": "needs the internet",
    "snakemake --profile profiles/slurm --configfile config/paper.yaml": "needs a SLURM cluster (the profile: test_slurm_profile_*)",
    "snakemake --cores all --configfile config/paper.yaml config/paper_llava.yaml": "needs LLaVA-OneVision and the datasets",
    "mlflow ui --backend-store-uri sqlite:///$PWD/mlflow.db": "a server that runs until stopped (its store: the MLflow assertions above)",
    "python benchmarks/run_all.py": "the benchmarks (about 20 minutes, not a test)",
    'git clone ~/glov-pipeline ~/glov-rerun && cd ~/glov-rerun && pip install -e ".[test]" && glov fetch-data --from ~/glov-pipeline/resources/sources':
        "a second install and full run: the kill-and-resume test reruns the same commit and checks `glov diff --exact` exits 0",
    "snakemake --cores all && glov diff --exact ~/glov-pipeline ~/glov-rerun": "(the same)",
    "glov fetch-official --from PATH_OF_THE_CLONE": "needs a clone of the official repository (tests read a fixture of its structure)",
}


def readme_commands() -> list[str]:
    """Each line of the README's ```bash blocks, in order, as a user would paste it."""
    blocks = re.findall(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip() and not line.startswith("#")]


def deep_merge(base: dict, over: dict) -> dict:
    """Snakemake's merge of a --configfile over the default one: mappings merge, other values replace."""
    out = dict(base)
    for k, v in over.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


@pytest.fixture(scope="module")
def user_repo(workdir, offline_env, reference_run, tmp_path_factory):
    """A git clone as a user has it after the quick start, on the tiny configuration written into
    params.yaml (so that the README's commands apply as written): the reference run's results,
    models and Snakemake records are hard-linked in, so its `snakemake --cores all` has nothing to do."""
    import yaml

    repo = tracked_copy(tmp_path_factory.mktemp("user"))
    merged = deep_merge(yaml.safe_load((REPO / "params.yaml").read_text()), yaml.safe_load((REPO / ".test/params.yaml").read_text()))
    (repo / "params.yaml").write_text(yaml.safe_dump(merged, sort_keys=False))
    git = ["git", "-c", "user.name=user", "-c", "user.email=user@example.org"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "clone"], cwd=repo, check=True)
    shutil.rmtree(repo / "results")
    for folder in ("resources", "results"):
        shutil.copytree(workdir / folder, repo / folder, copy_function=os.link)
    copy_records(workdir, repo)
    shutil.copy2(workdir / "mlflow.db", repo / "mlflow.db")
    env = {**offline_env, "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "user", "GIT_AUTHOR_EMAIL": "user@example.org",
           "GIT_COMMITTER_NAME": "user", "GIT_COMMITTER_EMAIL": "user@example.org"}
    return repo, env


def finished_work(root: Path) -> dict[str, tuple[int, bytes]]:
    """(inode, content) of every step, baseline and description file: what must survive any command.
    A rewritten or recomputed file gets a new inode (writes are atomic renames); a job that reruns
    takes its unchanged results back from the result store as the same file (a hard link), whose
    mtime Snakemake then touches, so mtimes are not compared.
    Random search's result is left out: like GLOV's score.json it holds a top-k choice (eval.ensemble_size)."""
    files = [*(root / "results/runs").rglob("step_*.json"),
             *(p for p in (root / "results/baselines").rglob("*.json") if p.parent.name != "random_search"),
             *(root / "results/descriptions").rglob("*.json")]
    return {str(p.relative_to(root)): (p.stat().st_ino, p.read_bytes()) for p in files}


@pytest.mark.slow
def test_every_readme_command_works_as_written_and_no_dvc_command_deletes_finished_work(user_repo, reference_run):
    """The README's fenced commands, verbatim, in the README's order, on the tiny configuration;
    then `dvc repro` and `snakemake --cores all` again. Finished work is never deleted or recomputed,
    and git sees no result files (main versions none)."""
    repo, env = user_repo
    commands = readme_commands()
    unknown = set(README_NOT_RUN) - set(commands)
    assert not unknown, f"README_NOT_RUN lists commands the README no longer has: {unknown}"
    before = finished_work(repo)
    assert before and len(before) == len([p for p in reference_run if "/step_" in p or ("baselines/" in p and "/random_search/" not in p)
                                          or "descriptions/" in p])
    out = {}
    for command in [c for c in commands if c not in README_NOT_RUN] + ["dvc repro", "snakemake --cores all"]:
        r = subprocess.run(["bash", "-c", command], cwd=repo, env=env, capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, f"README command failed: {command}\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
        bare = command.split("  #")[0].strip()
        out.setdefault(bare, []).append(r.stdout + r.stderr)
        if bare == "snakemake --cores all" and len(out[bare]) == 1:  # the quick start, as a user ran it
            assert "Nothing to be done" in out[bare][0]
            status = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True).stdout
            assert status == "", f"a run leaves files git tracks or shows:\n{status}"
        log_file = repo / "logs/baselines/toy/lab-minilm/smollm2-135m-instruct/s0.log"
        baselines_log = log_file.read_text() if log_file.exists() else ""  # the quick start's run left no logs here
        if "optimizer.topk=1" in bare:  # another experiment: its steps are new files ...
            assert finished_work(repo) != before
            continue
        assert finished_work(repo) == before, f"{command} deleted or rewrote finished work"  # ... and switching back restores the old ones
        if "eval.ensemble_size=1" in bare:  # the baselines job ran again, and computed random search alone
            assert re.findall(r"INFO (\w+) took", baselines_log) == ["random_search"]
        if bare.startswith("dvc exp run -n back") or bare == "snakemake --cores all" and len(out[bare]) == 2:  # the first experiment's
            # params again, then ens1's after `dvc exp apply`: the jobs ran, every result came back from the store
            assert not re.findall(r"INFO (\w+) took", baselines_log), baselines_log[-2000:]
            steps_logs = "".join(p.read_text() for p in (repo / "logs/glov_steps").rglob("*.log"))
            assert set(re.findall(r"(\d+) chain steps computed", steps_logs)) == {"0"}, steps_logs[-2000:]

    ran = re.compile(r"^(?:local)?rule (glov_steps\w*|baselines\w*|describe_classes|embed_images|score|aggregate):", re.M)
    assert set(ran.findall(out["dvc exp run -n baseline"][0])) == {"aggregate"}  # DVC removed only the cached tables
    assert set(ran.findall(out["dvc exp run -n ens1 -S 'eval.ensemble_size=1'"][0])) == {"score", "baselines", "aggregate"}  # random search recomputed, the other baselines restored
    assert {"glov_steps", "baselines"} <= set(ran.findall(out["dvc exp run -n back -S 'optimizer.topk=5' -S 'eval.ensemble_size=3'"][0]))
    assert "identical:" in out["glov diff --exact baseline back"][0]
    assert "<table>" in (repo / "diff.html").read_text() and "wrote diff.html" in out["glov diff baseline ens1 --html diff.html"][0]
    shown = out["dvc exp show --only-changed"][0]
    assert "baseline" in shown and "ens1" in shown and "ensemble_size" in shown
    assert "glov/animal_mnist/test_acc" in out["dvc metrics diff baseline ens1 --all"][0]
    assert "eval.ensemble_size: 3 -> 1" in out["glov diff baseline ens1"][0]
    assert "Nothing to be done" in out["snakemake --cores all"][-1]
    assert (repo / "report.html").stat().st_size > 10_000 and (repo / "dvc_plots/index.html").exists()
    assert not subprocess.run(["git", "ls-files", "results", "dvc.lock"], cwd=repo, capture_output=True, text=True).stdout.strip() \
        .replace("results/README.md", "")  # main versions no result file


BROWSER = "/usr/bin/chromium"
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"]  # no network: nothing to wait for


@pytest.mark.slow
@pytest.mark.skipif(not Path(BROWSER).exists(), reason="needs Debian's chromium (`apt-get install chromium`; .ci/run installs it)")
def test_the_report_shows_the_tables_and_curves_in_a_browser(user_repo, offline_env):
    """report.html opened headless in Chromium (driven by Playwright): the results table's text is in
    the rendered page and an optimisation curve is a loaded image, as a reader sees them."""
    playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright (in the test extras)")
    repo, env = user_repo
    if not (repo / "report.html").exists():
        assert subprocess.run(["snakemake", "--report", "report.html"], cwd=repo, env=env, capture_output=True, timeout=600).returncode == 0
    md = (repo / "results/tables/glov.md").read_text()
    s_temp_row = next(line for line in md.splitlines() if line.startswith("| S-TEMP"))
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=BROWSER, args=BROWSER_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto((repo / "report.html").as_uri())
        assert "Tables" in page.inner_text("body") and "Optimisation curves" in page.inner_text("body")

        page.get_by_text("Tables", exact=True).click()
        page.locator("tr", has_text="results/tables/glov.html").locator("a").first.click()
        frame = page.frame_locator("iframe").first
        table = frame.locator("table").first
        table.wait_for(timeout=30_000)
        cells = [c.strip() for c in s_temp_row.strip("|").split("|")]
        row_text = next(t for t in table.locator("tr").all_inner_texts() if t.strip().startswith("S-TEMP"))
        assert all(c in row_text for c in cells), (row_text, cells)  # the same numbers as glov.md, rendered as a table
        assert "GLOV (alpha chosen on val)" in table.inner_text()

        page.locator("a", has_text="Results").first.click()
        page.get_by_text("Optimisation curves", exact=True).click()
        page.locator("tr", has_text="results/plots/animal_mnist.png").locator("a").first.click()
        image = page.locator('img[src^="data:image/png"]').first
        image.wait_for(timeout=30_000)
        assert page.evaluate("img => img.complete && img.naturalWidth", image.element_handle()) == 640  # decoded, not broken
        browser.close()


@pytest.mark.slow
@pytest.mark.skipif(not Path(BROWSER).exists(), reason="needs Debian's chromium (`apt-get install chromium`; .ci/run installs it)")
def test_the_diff_page_highlights_changed_cells_in_a_browser(tmp_path):
    """`glov diff A B --html`: opened headless in Chromium, the changed cell (its interval excludes 0)
    is highlighted and an unchanged one is not, with the interval's text as the terminal prints it."""
    playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright (in the test extras)")
    from test_diff import METRICS_A5, METRICS_B5, RUN_A, RUN_B, write_run

    a = write_run(tmp_path / "a", METRICS_A5, [0.0, 1.0], RUN_A)
    b = write_run(tmp_path / "b", METRICS_B5, [0.0, 1.0], RUN_B)
    r = subprocess.run([sys.executable, "-m", "glov", "diff", str(a), str(b), "--html", str(tmp_path / "diff.html")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    glov_cell = next(line for line in r.stdout.splitlines() if line.startswith("| pets")).split(" | ")[3].rstrip(" |")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=BROWSER, args=BROWSER_ARGS)
        page = browser.new_page()
        page.goto((tmp_path / "diff.html").as_uri())
        changed = page.locator("td.changed")
        assert changed.count() == 1 and changed.first.inner_text().strip() == glov_cell.strip()
        assert page.evaluate("e => getComputedStyle(e).backgroundColor", changed.first.element_handle()) == "rgb(253, 230, 138)"
        plain = page.locator("td:not(.changed)").first
        assert page.evaluate("e => getComputedStyle(e).backgroundColor", plain.element_handle()) != "rgb(253, 230, 138)"
        browser.close()
