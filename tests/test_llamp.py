"""LLaMP (glov.llamp): the knowledge cache equals a full forward, the deep-prompt hooks replace
exactly the reserved positions (lab MiniLM tower and open_clip's CLIP tower), gradients reach only
the trainable parameters, and a training run fits its few-shot set (sanity, not a claim)."""

import pytest
import torch
import torch.nn.functional as F

from glov.config import LLaMPConfig

from glov.llamp import (LastLayer, LLaMP, class_texts, class_weights, encode_prompted, knowledge_cache,
                        knowledge_query, text_layers, train, trainable)
from glov.llm import HFLLM
from glov.registry import LLMSpec
from glov.vlm import load_vlm
from glov.registry import VLMSpec


@pytest.fixture(scope="module")
def llm(tiny_llm_dir):
    return HFLLM.load(LLMSpec(str(tiny_llm_dir)))


@pytest.fixture(scope="module")
def lab_vlm(tmp_path_factory):
    from glov.lab_vlm import build_untrained_minilm

    out = build_untrained_minilm(tmp_path_factory.mktemp("minilm"), progress=False)
    return load_vlm(VLMSpec(f"local-dir:{out}"))


@pytest.fixture(scope="module")
def clip_vlm(tiny_clip_dir):
    return load_vlm(VLMSpec(f"local-dir:{tiny_clip_dir}"))


def queries(llm, names):
    return [llm.token_ids(knowledge_query(n, "toy", "toy animals"))[0] for n in names]


def test_the_knowledge_cache_through_the_last_layer_equals_a_full_forward(llm):
    ids = queries(llm, ["cat", "hedgehog with spines"])  # two lengths: the batched last layer pads
    caches = knowledge_cache(llm.model, ids)
    last = LastLayer(llm.model, lora_rank=0)
    outs = last(caches, torch.zeros(0, caches[0].shape[1]))
    for row, out in zip(ids, outs):
        full = llm.model(row[None], output_hidden_states=True).hidden_states[-1][0]
        torch.testing.assert_close(out, full.float(), atol=1e-5, rtol=1e-5)
    # LoRA starts at zero: the adapted layer is the frozen one until it trains
    torch.testing.assert_close(LastLayer(llm.model, lora_rank=2)(caches, torch.zeros(0, 16))[0], outs[0])
    # keeping only the trailing positions (the prompt tokens) gives exactly those rows of the full output
    extra = torch.randn(3, 16)
    full, kept = last(caches, extra), last(caches, extra, keep=3)
    for f, k in zip(full, kept):
        torch.testing.assert_close(k, f[-3:], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("which", ["lab_vlm", "clip_vlm"])
def test_prompts_equal_to_the_slot_states_change_nothing(which, request):
    """Feeding each layer's own input at the reserved positions back as prompts is the identity:
    the hooks touch those positions and nothing else, in both text-tower kinds."""
    vlm = request.getfixturevalue(which)
    layers, width, batch_first = text_layers(vlm)
    texts, slots = ["a photo of a cat.", "a photo of a small dog."], 3
    seen = []
    hooks = [layer.register_forward_pre_hook(lambda m, a, k: seen.append(a[0] if a else k["hidden_states"]), with_kwargs=True) for layer in layers]
    zero = torch.zeros(len(texts), 0, slots, width)
    plain = encode_prompted(vlm, texts, zero)
    for h in hooks:
        h.remove()
    states = torch.stack([(s if batch_first else s.transpose(0, 1))[:, 1 : 1 + slots] for s in seen], dim=1)
    torch.testing.assert_close(encode_prompted(vlm, texts, states), plain, atol=1e-5, rtol=1e-5)
    changed = encode_prompted(vlm, texts, states + torch.randn(states.shape, generator=torch.Generator().manual_seed(0)))  # not a constant: LayerNorm removes those
    assert not torch.allclose(changed, plain, atol=1e-3)


def small_llamp(llm, vlm, cfg, names):
    caches = knowledge_cache(llm.model, queries(llm, names))
    _, width, _ = text_layers(vlm)
    depth = min(cfg.depth, len(text_layers(vlm)[0]))
    return LLaMP(LastLayer(llm.model, cfg.lora_rank), caches[0].shape[1], width, depth, cfg, seed=0), caches


def test_gradients_reach_only_the_trainable_parameters(llm, clip_vlm):
    cfg = LLaMPConfig(prompt_tokens=2, text_prompts=1, depth=1, lora_rank=2)
    model, caches = small_llamp(llm, clip_vlm, cfg, ["cat", "dog"])
    weights = class_weights(clip_vlm, model, caches, [["a photo of a cat."], ["a photo of a dog."]])
    (weights @ torch.randn(weights.shape[1])).sum().backward()
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    assert names == {"tokens", "project.weight", "project.bias", "shared"} | {n for n in names if n.endswith((".a", ".b"))}
    assert any(n.endswith(".b") for n in names)  # the last layer's LoRA updates
    assert all(p.grad is not None for p in trainable(model))
    assert all(p.grad is None for n, p in model.named_parameters() if not p.requires_grad)
    assert all(p.grad is None for p in clip_vlm.model.parameters()) and all(p.grad is None for p in llm.model.parameters())


def test_a_training_run_fits_its_few_shot_set_better_than_s_temp(llm, lab_vlm):
    names = ["cat", "dog", "fox"]
    g = torch.Generator().manual_seed(0)
    features = F.normalize(torch.randn(16 * len(names), lab_vlm.model.text.proj.out_features, generator=g), dim=-1)
    labels = torch.arange(len(names)).repeat_interleave(16)
    s_temp = F.normalize(lab_vlm.encode_texts([f"a photo of a {n}." for n in names]), dim=-1)
    s_temp_acc = float(((features @ s_temp.T).argmax(-1) == labels).float().mean())
    cfg = LLaMPConfig(prompt_tokens=2, text_prompts=2, depth=2, lora_rank=2, iterations=40, lr=0.01)
    model, caches = small_llamp(llm, lab_vlm, cfg, names)
    texts = [class_texts(n, [f"{n} which (is/has/etc) has fur"]) for n in names]
    assert texts[0] == ["a photo of a cat.", "a photo of a cat with fur."]
    losses = train(lab_vlm, model, caches, texts, features, labels, cfg, seed=0, progress=False)
    assert losses[-1] < losses[0] - 0.1
    with torch.no_grad():
        acc = float(((features @ class_weights(lab_vlm, model, caches, texts).T).argmax(-1) == labels).float().mean())
    assert acc > s_temp_acc + 0.1, (acc, s_temp_acc)


def test_the_job_trains_every_seed_after_one_knowledge_pass_and_a_seed_does_not_depend_on_the_others(
        tmp_path, tiny_clip_dir, tiny_llm_dir, monkeypatch):
    """Rule train_llamp called directly: one job per dataset; seed 0 learns the same whether it is
    trained alone or after seed 1 in the same job (each seed seeds its own start)."""
    from conftest import toy_job_params
    from glov.io import write_json
    from glov.jobs.embed import embed_images
    from glov.jobs.llamp import train_job

    monkeypatch.chdir(tmp_path)
    params = toy_job_params(tmp_path, 3, 1, {"name": "tiny", "arch": f"local-dir:{tiny_clip_dir}"},
                            llm={"name": "tiny-llm", "path": str(tiny_llm_dir)},
                            baselines={"llamp": {"prompt_tokens": 2, "text_prompts": 1, "depth": 1, "lora_rank": 2, "iterations": 3}})
    embed_images(params, "manifest.json", {"train": "train.pt"})
    for seed in (0, 1):
        write_json(f"desc{seed}.json", {"classes": {n: {"texts": [f"{n} which (is/has/etc) has fur {seed}"]} for n in ("cat", "dog")}})
    train_job(params, ["manifest.json"], ["train.pt"], ["desc0.json"], [0], "k_alone.pt", ["alone0.pt"])
    train_job(params, ["manifest.json"] * 2, ["train.pt"] * 2, ["desc1.json", "desc0.json"], [1, 0], "k_both.pt", ["both1.pt", "both0.pt"])
    alone, both, other = (torch.load(p, weights_only=True) for p in ("alone0.pt", "both0.pt", "both1.pt"))
    assert alone["losses"] == both["losses"] and len(alone["losses"]) == 3 and other["losses"] != alone["losses"]
    assert torch.equal(alone["class_weights"], both["class_weights"])
    assert alone["trainable"].keys() == both["trainable"].keys()
    assert all(torch.equal(alone["trainable"][k], both["trainable"][k]) for k in alone["trainable"])
    knowledge = torch.load("k_both.pt", weights_only=True)
    assert knowledge["classnames"] == ["cat", "dog"] and len(knowledge["caches"]) == 2
    assert all(torch.equal(a, b) for a, b in zip(knowledge["caches"], torch.load("k_alone.pt", weights_only=True)["caches"]))
