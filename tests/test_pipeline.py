"""Pipeline jobs called directly (no Snakemake) on a tiny model and a tiny image folder."""

import pytest
import torch

from conftest import toy_job_params
from glov.embeddings import ImageEmbeddings, load_embeddings, save_embeddings
from glov.jobs.embed import embed_images
from glov.jobs.optimize import run_steps
from glov.io import read_json


@pytest.fixture
def job_inputs(tmp_path, tiny_clip_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = toy_job_params(tmp_path, 4, 2, {"name": "tiny", "arch": f"local-dir:{tiny_clip_dir}"})
    embed_images(params, "manifest.json", {"train": "train.pt"})
    return params


@pytest.mark.parametrize("damage", ["truncate", "empty", "delete", "other_images"])
def test_a_damaged_embedding_cache_is_rebuilt_not_used(job_inputs, tmp_path, damage):
    cache = tmp_path / "train.pt"
    original = load_embeddings(cache)
    if damage == "truncate":
        cache.write_bytes(cache.read_bytes()[: cache.stat().st_size // 2])
    elif damage == "empty":
        cache.write_bytes(b"")
    elif damage == "delete":
        cache.unlink()
    else:  # a valid cache of the wrong images (stale after the manifest changed)
        save_embeddings(cache, ImageEmbeddings(original.features[:1], original.labels[:1], original.paths[:1]))

    run_steps(job_inputs, "manifest.json", cache, 0, [0], {}, {(0.0, 0): tmp_path / "step_000.json"})

    rebuilt = load_embeddings(cache, original.paths)  # valid again ...
    assert torch.equal(rebuilt.features, original.features)  # ... and holds what it should have held
    record = read_json(tmp_path / "step_000.json")
    assert record["state"]["history"][0]["template"] == "a photo of a {}."
