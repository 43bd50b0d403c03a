"""Rule train_llamp: LLaMP's knowledge cache and its training on the run's labelled few-shot set,
every seed of a dataset in one job; rule baselines then scores the learnt class weights on val
and test like every other method."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from glov import config as C
from glov.io import read_json, write_torch
from glov.jobs.common import load_llm, track, vlm_spec
from glov.jobs.embed import load_split
from glov.llamp import (LastLayer, LLaMP, class_texts, class_weights, knowledge_cache, knowledge_query, text_layers,
                        train, trainable)
from glov.vlm import load_vlm
from glov.registry import VLMError


def save(obj: dict, out: str | Path) -> None:
    write_torch(out, obj)


def load_checked(path: str | Path, classnames: list[str], what: str) -> dict:
    """A saved LLaMP file of these classes, or an error that says how to rebuild it."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated or not a torch file
        raise VLMError(f"{path}: unreadable {what} ({exc}); delete it and run snakemake again to rebuild it") from None
    if saved.get("classnames") != classnames:
        raise VLMError(f"{path}: {what} of other classes than the manifest's; delete it and run snakemake again")
    return saved


def build_knowledge(llm, manifest: dict) -> list[torch.Tensor]:
    """Per class, the query's hidden states at the LLM's last layer input (the frozen part, run once)."""
    return knowledge_cache(llm.model, [llm.token_ids(knowledge_query(n, manifest["dataset"], manifest["description"]))[0]
                                       for n in manifest["classnames"]])


def train_job(params: C.Params, manifests: list[str | Path], train_embeddings: list[str | Path | None], descriptors: list[str | Path],
              seeds: list[int], knowledge_out: str | Path, outs: list[str | Path]) -> None:
    """Rule train_llamp, every seed of a dataset in one job, so the LLM loads once: the knowledge
    cache (saved beside what is learnt), then per seed training on that seed's few-shot split's
    cached embeddings; saves the trainable parameters, the loss curve and the class weights the
    baselines job scores. Each seed seeds its own initialisation: a seed's file does not depend on
    which other seeds share the job."""
    read = [read_json(p) for p in manifests]
    first, names = read[0], read[0]["classnames"]
    cfg, shots = params.baselines.llamp, C.split_sizes(params.data, first["dataset"]).shots
    with track(params, f"train_llamp/{first['dataset']}", {"dataset": first["dataset"], "seeds": seeds}) as tracker:
        llm = load_llm(params, params.llm.dtype)  # LLaMP's own precision under either protocol (glov.protocol: precision)
        caches = build_knowledge(llm, first)
        save({"classnames": names, "llm": params.llm.name, "caches": caches}, knowledge_out)
        vlm = load_vlm(vlm_spec(params), params.vlm.device)
        layers, width, _ = text_layers(vlm)
        for seed, manifest_path, manifest, embeddings, described, out in zip(seeds, manifests, read, train_embeddings, descriptors, outs,
                                                                            strict=True):
            if manifest["classnames"] != names:
                raise VLMError(f"{manifest_path}: other classes than {manifests[0]}; delete both and run snakemake again")
            by_class = read_json(described)["classes"]
            texts = [class_texts(n, by_class[n]["texts"]) for n in names]
            split = load_split(params, vlm, manifest, "train", embeddings)
            torch.manual_seed(seed)  # LoRA's initial A (B starts at zero, so it does not change the start)
            model = LLaMP(LastLayer(llm.model, cfg.lora_rank), caches[0].shape[1], width, min(cfg.depth, len(layers)), cfg, seed)
            losses = train(vlm, model, caches, texts, split.features, split.labels, cfg, seed)
            for i in range(0, len(losses), max(1, len(losses) // 50)):
                tracker.log_metrics({f"loss.s{seed}": losses[i]}, step=i)
            with torch.no_grad():
                weights = class_weights(vlm, model, caches, texts)
            kept = {n for n, p in model.named_parameters() if p.requires_grad}
            save({"classnames": names, "shots": shots, "seed": seed, "settings": asdict(cfg), "texts": texts, "losses": losses,
                  "class_weights": weights, "trainable": {n: t for n, t in model.state_dict().items() if n in kept},
                  "n_trainable": sum(p.numel() for p in trainable(model))}, out)
            tracker.log_artifact(out)
