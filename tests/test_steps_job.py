"""The optimisation job (rule glov_steps) called directly: every alpha chain of a (dataset, seed)
in one process, on a tiny CLIP and a tiny LLM loaded through the real loaders."""

import pytest

from conftest import toy_job_params
from glov.jobs.embed import embed_images
from glov.jobs.optimize import run_steps
from glov.io import read_json
from glov.store import ResultStore

ALPHAS = (0.0, 1.0)
STEPS = 4


@pytest.fixture
def params(tmp_path, tiny_clip_dir, tiny_llm_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = toy_job_params(tmp_path, 4, 2, {"name": "tiny", "arch": f"local-dir:{tiny_clip_dir}"},
                       llm={"name": "tiny-llm", "path": str(tiny_llm_dir)},
                       optimizer={"steps": STEPS, "candidates": 4, "max_new_tokens": 12}, steering={"alphas": list(ALPHAS), "layer": 2})
    embed_images(p, "manifest.json", {"train": "train.pt"})
    return p


def outputs(root, alphas=ALPHAS, steps=range(STEPS + 1)):
    return {(a, t): f"{root}/a{a}/step_{t:03d}.json" for a in alphas for t in steps}


def run_blocks(params, root, size, alphas=ALPHAS):
    """The job as the workflow runs it with optimizer.steps_per_job = ``size``."""
    from glov.config import step_blocks

    for block in step_blocks(STEPS, size):
        prev = {a: f"{root}/a{a}/step_{block[0] - 1:03d}.json" for a in alphas} if block[0] else {}
        run_steps(params, "manifest.json", "train.pt", 0, block, prev, outputs(root, alphas, block))
    return {k: open(v, "rb").read() for k, v in outputs(root, alphas).items()}


def test_step_files_do_not_depend_on_steps_per_job_or_on_the_other_chains(params, tmp_path):
    all_in_one = run_blocks(params, "one", None)
    record = read_json("one/a0.0/step_001.json")
    assert len(record["candidates"]) == 4 and record["state"]["step"] == 1
    assert run_blocks(params, "each", 1) == all_in_one
    assert run_blocks(params, "pairs", 2) == all_in_one
    alone = {(a, t): v for a in ALPHAS for (_, t), v in run_blocks(params, f"alone{a}", None, alphas=(a,)).items()}
    assert alone == all_in_one  # a chain batched beside another samples what it samples alone


class Killed(BaseException):
    pass


def test_a_killed_job_loses_only_the_step_in_progress(params, monkeypatch):
    import os
    import shutil

    from glov import optimizer

    reference = run_blocks(params, "ref", None)
    shutil.rmtree(".snakemake")  # forget the reference's steps: the next run must compute its own
    calls = {"n": 0}
    original = optimizer.step_chains

    def dies_at_step_3(chains, llm, task):
        calls["n"] += 1
        if chains[0][0].step == 2:
            raise Killed()
        return original(chains, llm, task)

    monkeypatch.setattr(optimizer, "step_chains", dies_at_step_3)
    with pytest.raises(Killed):
        run_blocks(params, "ref", None)
    assert calls["n"] == 3  # steps 1, 2, then 3 died
    monkeypatch.setattr(optimizer, "step_chains", original)
    for path in outputs("ref").values():  # what Snakemake does before it runs the job again
        if os.path.exists(path):
            os.remove(path)
    computed = []
    monkeypatch.setattr(optimizer, "step_chains", lambda chains, llm, task: computed.append(chains[0][0].step) or original(chains, llm, task))
    assert run_blocks(params, "ref", None) == reference
    assert computed == [2, 3]  # steps 3 and 4 (continuing from states 2 and 3); 0-2 came from the store
    store = [p for p in ResultStore().root.rglob("*.json") if p.is_file()]
    assert len(store) == len(outputs("ref"))  # one entry per step file
    assert all(p.stat().st_nlink == 2 for p in store)  # hard links to the step files: no extra space


def count_computed(monkeypatch) -> list:
    """Record every step the job computes (rather than restores from the store)."""
    from glov import optimizer

    computed, original = [], optimizer.step_chains
    monkeypatch.setattr(optimizer, "step_chains", lambda chains, llm, task: computed.append(chains[0][0].step + 1) or original(chains, llm, task))
    return computed


def test_a_retrained_vlm_or_an_edited_description_recomputes_every_step(params, tmp_path, tiny_clip_dir, monkeypatch):
    """Issue 29 item 1: a step's key holds the digests of what it read. The same params with the
    VLM's weights changed (retrained with another seed) or the dataset's description edited
    restore nothing: every step is computed again. Unchanged, everything is restored."""
    import dataclasses
    import os
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    from glov.jobs.data import prepare_dataset

    def rerun(p):  # Snakemake deletes a job's outputs before it runs the job again
        for path in outputs("run").values():
            if os.path.exists(path):
                os.remove(path)
        return run_blocks(p, "run", None)

    first = rerun(params)
    computed = count_computed(monkeypatch)
    assert rerun(params) == first and computed == []  # the same inputs: all restored

    vlm_dir = tmp_path / "vlm_copy"
    shutil.copytree(tiny_clip_dir, vlm_dir)
    retrained = {k: v + 0.01 * torch.randn(v.shape, generator=torch.Generator().manual_seed(1)) if v.is_floating_point() else v
                 for k, v in load_file(str(vlm_dir / "open_clip_model.safetensors")).items()}
    save_file(retrained, str(vlm_dir / "open_clip_model.safetensors"))
    rerun(dataclasses.replace(params, vlm=dataclasses.replace(params.vlm, arch=f"local-dir:{vlm_dir}")))
    assert computed == [1, 2, 3, 4]  # every LLM step (step 0 scores the base template, no LLM)

    computed.clear()
    custom = {"toy": {**params.data.custom["toy"], "description": "pets, edited"}}
    described = dataclasses.replace(params, data=dataclasses.replace(params.data, custom=custom))
    prepare_dataset(described, "toy", "manifest.json")
    rerun(described)
    assert computed == [1, 2, 3, 4]


def test_steps_computed_with_a_hub_llm_are_kept_under_the_commit_loaded(params, monkeypatch):
    """A hub LLM not yet downloaded is known by its name when the job looks for its steps, and by
    its commit once loaded: the steps are saved under the commit, so the next run restores them,
    and a new commit downloaded later computes them again."""
    import os

    from glov.jobs import optimize

    cache = {"commit": None}  # what the local hub cache holds
    monkeypatch.setattr(optimize, "llm_digest", lambda p: f"hub:org/llm@{cache['commit']}" if cache["commit"] else "id:org/llm")
    load = optimize.load_llm
    monkeypatch.setattr(optimize, "load_llm", lambda p: cache.update(commit=cache["commit"] or "c1") or load(p))
    computed = count_computed(monkeypatch)

    def rerun():
        for path in outputs("hub").values():
            if os.path.exists(path):
                os.remove(path)
        return run_blocks(params, "hub", None)

    first = rerun()
    assert computed == [1, 2, 3, 4] and cache["commit"] == "c1"
    computed.clear()
    assert rerun() == first and computed == []  # saved under the commit loaded: all restored
    cache["commit"] = "c2"
    rerun()
    assert computed == [1, 2, 3, 4]
