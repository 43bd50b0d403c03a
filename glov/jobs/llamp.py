"""Rules llamp_knowledge and train_llamp: LLaMP's knowledge cache (once per dataset and LLM) and
its training (per dataset and seed, on the run's labelled few-shot set); rule baselines then
scores the learnt class weights on val and test like every other method."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from glov import config as C
from glov.io import atomic_path, read_json
from glov.jobs.common import load_llm, track, vlm_spec
from glov.jobs.embed import load_split
from glov.llamp import (LastLayer, LLaMP, class_texts, class_weights, knowledge_cache, knowledge_query, text_layers,
                        train, trainable)
from glov.vlm import VLMError, load_vlm


def save(obj: dict, out: str | Path) -> None:
    with atomic_path(out) as tmp:
        torch.save(obj, tmp)


def load_checked(path: str | Path, classnames: list[str], what: str) -> dict:
    """A saved LLaMP file of these classes, or an error that says how to rebuild it."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated or not a torch file
        raise VLMError(f"{path}: unreadable {what} ({exc}); delete it and run snakemake again to rebuild it") from None
    if saved.get("classnames") != classnames:
        raise VLMError(f"{path}: {what} of other classes than the manifest's; delete it and run snakemake again")
    return saved


def build_knowledge(params: C.Params, manifest_path: str | Path, out: str | Path) -> None:
    """Rule llamp_knowledge: per class, the query's hidden states at the LLM's last layer input."""
    manifest = read_json(manifest_path)
    names = manifest["classnames"]
    with track(params, f"llamp_knowledge/{manifest['dataset']}", {"dataset": manifest["dataset"], "classes": len(names)}):
        llm = load_llm(params)
        ids = [llm.token_ids(knowledge_query(n, manifest["dataset"], manifest["description"]))[0] for n in names]
        save({"classnames": names, "llm": params.llm.name, "caches": knowledge_cache(llm.model, ids)}, out)


def train_job(params: C.Params, manifest_path: str | Path, train_embeddings: str | Path, descriptors: str | Path,
              knowledge: str | Path, seed: int, out: str | Path) -> None:
    """Rule train_llamp: train on the few-shot split's cached embeddings; save the trainable
    parameters, the loss curve and the class weights the baselines job scores."""
    manifest = read_json(manifest_path)
    names = manifest["classnames"]
    cfg = params.baselines.llamp
    described = read_json(descriptors)["classes"]
    texts = [class_texts(n, described[n]["texts"]) for n in names]
    with track(params, f"train_llamp/{manifest['dataset']}/s{seed}", {"dataset": manifest["dataset"], "seed": seed}) as tracker:
        caches = [c.float() for c in load_checked(knowledge, names, "LLaMP knowledge cache")["caches"]]
        vlm = load_vlm(vlm_spec(params), params.vlm.device)
        split = load_split(params, vlm, manifest, "train", train_embeddings)
        layers, width, _ = text_layers(vlm)
        torch.manual_seed(seed)  # LoRA's initial A (B starts at zero, so it does not change the start)
        model = LLaMP(LastLayer(load_llm(params).model, cfg.lora_rank), caches[0].shape[1], width, min(cfg.depth, len(layers)), cfg, seed)
        losses = train(vlm, model, caches, texts, split.features, split.labels, cfg, seed)
        for i in range(0, len(losses), max(1, len(losses) // 50)):
            tracker.log_metrics({"loss": losses[i]}, step=i)
        with torch.no_grad():
            weights = class_weights(vlm, model, caches, texts)
        kept = {n for n, p in model.named_parameters() if p.requires_grad}
        save({"classnames": names, "shots": params.data.shots, "seed": seed, "settings": asdict(cfg), "texts": texts, "losses": losses,
              "class_weights": weights, "trainable": {n: t for n, t in model.state_dict().items() if n in kept},
              "n_trainable": sum(p.numel() for p in trainable(model))}, out)
        tracker.log_artifact(out)
