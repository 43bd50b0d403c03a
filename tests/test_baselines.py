"""The baselines' scoring on hand-made cases with known answers, their LLM parts with a scripted
LLM, and each method's job on a tiny model (no Snakemake)."""

import json

import pytest
import torch
import torch.nn.functional as F

from glov import config as C
from glov.baselines import DESCRIPTION_STYLE
from glov.jobs.baselines import run_baselines
from glov.jobs.embed import embed_images
from glov.awt import awt_logits, image_view_weights, pad_texts, sinkhorn, text_view_weights
from glov.config import AWTConfig, LLMOptConfig
from glov.descriptions import (
    DESCRIPTORS, SENTENCES, describe_classes, descriptor_text, parse_descriptors, parse_sentence, sentence_text,
)
from glov.io import read_json
from glov.llm import FakeLLM, Sampling
from glov.llm_opt import good_and_bad, llm_opt
from glov.optimizer import Task
from glov.optimizer.state import Candidate
from glov.scoring import accuracy, class_means, descriptor_logits
from glov.tables import RunScore, per_seed_results

from test_pipeline import job_inputs  # noqa: F401  (fixture)


# ---------------------------------------------------------------- AWT
@pytest.mark.parametrize(
    "a, b, exact",
    [
        ([0.5, 0.5], [0.5, 0.5], [[0.5, 0.0], [0.0, 0.5]]),
        ([0.7, 0.3], [0.4, 0.6], [[0.4, 0.3], [0.0, 0.3]]),  # as much mass as fits stays on the free diagonal
    ],
)
def test_sinkhorn_equals_the_exact_transport_on_a_2x2_case(a, b, exact):
    cost = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    plan = sinkhorn(cost, torch.tensor(a), torch.tensor(b), epsilon=0.01, iterations=200)
    assert torch.allclose(plan, torch.tensor(exact), atol=1e-4)


def test_sinkhorn_keeps_both_marginals_and_gives_padding_no_mass():
    g = torch.Generator().manual_seed(0)
    cost = torch.rand(3, 4, 5, generator=g)
    a = torch.softmax(torch.randn(3, 4, generator=g), -1)
    b = torch.softmax(torch.randn(3, 5, generator=g), -1)
    b[:, -1] = 0  # a padded text
    b = b / b.sum(-1, keepdim=True)
    plan = sinkhorn(cost, a, b, epsilon=0.1, iterations=300)
    assert torch.allclose(plan.sum(-1), a, atol=1e-5) and torch.allclose(plan.sum(-2), b, atol=1e-5)
    assert float(plan[..., -1].abs().max()) == 0.0


def test_a_confident_view_and_a_confident_text_weigh_more():
    # 1 image, 2 views, 2 classes, 2 texts each. View 0 is sure it is class 0; view 1 cannot tell.
    sims = torch.tensor([[[[0.9, 0.5], [0.1, 0.1]], [[0.5, 0.5], [0.5, 0.5]]]])  # [N=1, V=2, C=2, T=2]
    mask = torch.ones(2, 2)
    views = image_view_weights(sims, mask, scale=10.0, temperature=0.5)
    assert views[0, 0] > views[0, 1] and torch.allclose(views.sum(-1), torch.ones(1))
    texts = text_view_weights(sims, mask, scale=10.0, temperature=0.5)
    assert texts[0, 0, 0] > texts[0, 0, 1]  # text 0 of class 0 makes the prediction sure
    padded = text_view_weights(sims, torch.tensor([[1.0, 0.0], [1.0, 1.0]]), 10.0, 0.5)
    assert padded[0, 0].tolist() == [1.0, 0.0]


def test_awt_with_one_view_and_one_text_is_plain_zero_shot():
    g = torch.Generator().manual_seed(1)
    images = F.normalize(torch.randn(6, 1, 8, generator=g), dim=-1)
    texts = F.normalize(torch.randn(3, 1, 8, generator=g), dim=-1)
    logits = awt_logits(images, texts, torch.ones(3, 1), scale=100.0, cfg=AWTConfig(), chunk=4)
    assert torch.allclose(logits, images[:, 0] @ texts[:, 0].T, atol=1e-6)


def test_pad_texts_masks_what_a_class_does_not_have():
    texts, mask = pad_texts([torch.ones(1, 4), torch.ones(3, 4)])
    assert texts.shape == (2, 3, 4) and mask.tolist() == [[1, 0, 0], [1, 1, 1]]
    assert float(texts[0, 1:].abs().sum()) == 0.0


# ---------------------------------------------------------------- CuPL / DCLIP
def test_cupl_averages_embeddings_and_dclip_averages_scores():
    # class 0 has two texts pointing at e0 and e1, class 1 one text at (e0 + e1)/sqrt2 rotated a little
    e = torch.eye(3)
    per_class = [torch.stack([e[0], e[1]]), F.normalize(torch.tensor([[1.0, 1.0, 0.2]]), dim=-1)]
    image = F.normalize(torch.tensor([[1.0, 1.0, 0.0]]), dim=-1)
    cupl = image @ class_means(per_class).T
    dclip = descriptor_logits(image, per_class)
    assert torch.allclose(class_means(per_class)[0], F.normalize(e[0] + e[1], dim=-1))
    assert torch.allclose(dclip[0, 0], (image[0] @ e[0] + image[0] @ e[1]) / 2)
    assert int(cupl.argmax()) == 0 and int(dclip.argmax()) == 1  # the two rules really differ
    assert accuracy(dclip, torch.tensor([1])) == 100.0


# ---------------------------------------------------------------- descriptions
def test_parse_sentence_and_descriptors():
    assert parse_sentence("\n\"A bear is a large mammal. It has fur.\"") == "A bear is a large mammal."
    assert parse_sentence("Bear.") is None and parse_sentence("") is None
    assert parse_descriptors("Features:\n- thick brown fur.\n* a short tail\n2. Thick brown fur\n- \nplain line") == ["thick brown fur", "a short tail"]
    assert sentence_text("bear", "It is a large mammal.") == "bear: It is a large mammal."
    assert sentence_text("bear", "A Bear is large.") == "A Bear is large."
    assert descriptor_text("bear", "fur") == "bear which (is/has/etc) fur"


def test_describe_classes_records_unusable_answers_and_asks_once_per_class():
    llm = FakeLLM(["A cat has whiskers.", "???", "- it has four legs\n- a tail"])
    rec = describe_classes(llm, ["cat", "dog"], "pets", "photos of pets", [SENTENCES], 3, Sampling(), seed=0)[SENTENCES]
    assert len(llm.calls) == 2 and "cat" in llm.calls[0][0][-1]["content"]
    assert rec["classes"]["cat"]["texts"] == ["A cat has whiskers.", "cat: it has four legs"]
    assert rec["classes"]["cat"]["n_unusable"] == 1
    rec = describe_classes(FakeLLM(["- four legs\n- a tail", "no list"]), ["dog"], "pets", "pets", [DESCRIPTORS], 2, Sampling(), 0)[DESCRIPTORS]
    assert rec["classes"]["dog"]["texts"] == ["dog which (is/has/etc) four legs", "dog which (is/has/etc) a tail"]
    assert rec["classes"]["dog"]["n_unusable"] == 1


# ---------------------------------------------------------------- LLM-Opt
def test_llm_opt_climbs_hides_accuracies_and_rejects_long_templates():
    scores = {"a photo of a {}.": 40.0, "a good photo of a {}.": 70.0, "a bad {}.": 10.0}
    answers = ["a good photo of a <category>.", "a bad <category>.", "no placeholder here",
               "a " + "very " * 20 + "long <category>."]
    llm = FakeLLM(answers)
    record = llm_opt(llm, lambda t: scores.get(t, 0.0), Task("pets", "pets"), "a photo of a {}.",
                     LLMOptConfig(iterations=2, pool=2, max_words=15), Sampling(), seed=0)
    assert record["best"] == "a good photo of a {}." and record["best_train_acc"] == 70.0
    assert record["failures"] == 2  # no placeholder, and more than 15 words
    second = record["iterations"][1]
    assert second["good"] == ["a good photo of a {}.", "a photo of a {}."] and second["bad"] == ["a bad {}."]
    prompt = llm.calls[1][0][-1]["content"]
    assert "<category>" in prompt and "70" not in prompt and "ccuracy" not in prompt
    assert all(steer is None for _, steer in llm.calls)


def test_good_and_bad_never_overlap():
    history = [Candidate(f"t{i} {{}}", float(i), 0) for i in range(3)]
    good, bad = good_and_bad(history, 3)
    assert [c.accuracy for c in good] == [2.0, 1.0, 0.0] and bad == []


# ---------------------------------------------------------------- config and tables
def test_methods_are_checked_against_the_alphas():
    with pytest.raises(C.ConfigError, match="methods: glov needs an alpha > 0"):
        C.from_dict({"steering": {"alphas": [0.0]}})
    with pytest.raises(C.ConfigError, match="methods: glov_wo_guidance needs 0.0"):
        C.from_dict({"steering": {"alphas": [0.5]}})
    with pytest.raises(C.ConfigError, match=r"methods\.0"):
        C.from_dict({"methods": ["coop"]})
    only_glov = C.from_dict({"methods": ["glov"], "steering": {"alphas": [0.0, 0.5, 1.0]}})
    assert C.glov_alphas(only_glov) == (0.5, 1.0)
    assert C.glov_alphas(C.from_dict({"methods": ["cupl"]})) == ()


def test_baseline_results_enter_the_tables_beside_glov():
    scores = [RunScore("pets", 0.0, 0, {"test_acc": 50.0, "val_acc": 1.0})]
    baselines = [{"method": "awt", "dataset": "pets", "seed": 0, "test_acc": 61.0},
                 {"method": "awt", "dataset": "pets", "seed": 1, "test_acc": 63.0},
                 {"method": "s_temp", "dataset": "pets", "seed": 0, "test_acc": 40.0}]
    results = per_seed_results(scores, baselines)
    assert results == {"s_temp": {"pets": {0: 40.0}}, "awt": {"pets": {0: 61.0, 1: 63.0}}, "glov_wo_guidance": {"pets": {0: 50.0}}}


# ---------------------------------------------------------------- each method's job on a tiny model
def _run(params, method, tmp_path, descriptions=None):
    """One method's result, computed (the result store is emptied first)."""
    import shutil

    shutil.rmtree(".snakemake/glov", ignore_errors=True)
    embed_images(params, "manifest.json", {"val": "val.pt", "test": "test.pt"})
    embeddings = {s: f"{s}.pt" for s in ("train", "val", "test")}
    out = tmp_path / f"{method}.json"
    run_baselines(params, 0, "manifest.json", embeddings, {DESCRIPTION_STYLE[method]: descriptions} if descriptions else {}, {method: out})
    return read_json(out)


def _descriptions(tmp_path, texts: dict) -> str:
    path = tmp_path / "descriptions.json"
    path.write_text(json.dumps({"classes": {c: {"texts": t, "raw": [], "n_unusable": 0} for c, t in texts.items()}}))
    return str(path)


def test_description_methods_with_s_temp_texts_reduce_to_s_temp(job_inputs, tmp_path):  # noqa: F811
    s_temp = _run(job_inputs, "s_temp", tmp_path)
    assert s_temp["method"] == "s_temp" and s_temp["templates"] == ["a photo of a {}."]
    same = _descriptions(tmp_path, {"cat": ["a photo of a cat."], "dog": ["a photo of a dog."]})
    for method in ("cupl", "dclip"):
        result = _run(job_inputs, method, tmp_path, same)
        assert (result["val_acc"], result["test_acc"]) == (s_temp["val_acc"], s_temp["test_acc"]), method
    fallback = _descriptions(tmp_path, {"cat": [], "dog": []})  # the LLM gave nothing usable: S-TEMP alone
    awt = _run(job_inputs, "awt", tmp_path, fallback)
    assert awt["classes_without_text"] == 2
    one_view = C.from_dict({**json.loads(json.dumps(_as_raw(job_inputs))), "baselines": {"awt": {"views": 1}}})
    assert _run(one_view, "awt", tmp_path, fallback)["test_acc"] == s_temp["test_acc"]


def test_awt_job_is_deterministic_and_ds_temp_scores(job_inputs, tmp_path):  # noqa: F811
    texts = _descriptions(tmp_path, {"cat": ["A cat has whiskers.", "cat: small and furry"], "dog": ["A dog barks."]})
    first, second = (_run(job_inputs, "awt", tmp_path, texts) for _ in range(2))
    assert first == second and first["views"] == 8
    ds_temp = _run(job_inputs, "ds_temp", tmp_path)
    assert len(ds_temp["templates"]) == 80 and 0.0 <= ds_temp["test_acc"] <= 100.0


def _as_raw(params: C.Params) -> dict:
    from dataclasses import asdict

    return asdict(params)


def test_a_rerun_computes_only_the_methods_it_has_not_finished_with_these_params(job_inputs, tmp_path, monkeypatch):  # noqa: F811
    from glov.jobs import baselines as jobs

    embed_images(job_inputs, "manifest.json", {"val": "val.pt", "test": "test.pt"})
    embeddings = {s: f"{s}.pt" for s in ("train", "val", "test")}
    outputs = {"s_temp": tmp_path / "s_temp.json", "ds_temp": tmp_path / "ds_temp.json"}
    computed = []
    for method, fn in list(jobs.BASELINES.items()):
        monkeypatch.setitem(jobs.BASELINES, method, lambda inputs, m=method, fn=fn: computed.append(m) or fn(inputs))

    def fail(_inputs):
        raise RuntimeError("killed")

    with monkeypatch.context() as m:  # the job dies in its second method: the first is kept
        m.setitem(jobs.BASELINES, "ds_temp", fail)
        with pytest.raises(RuntimeError):
            run_baselines(job_inputs, 0, "manifest.json", embeddings, {}, outputs)
    s_temp = read_json(outputs["s_temp"])
    outputs["s_temp"].unlink()  # Snakemake deletes a failed job's outputs before rerunning it
    computed.clear()
    run_baselines(job_inputs, 0, "manifest.json", embeddings, {}, outputs)
    assert computed == ["ds_temp"] and read_json(outputs["s_temp"]) == s_temp

    raw = json.loads(json.dumps(_as_raw(job_inputs)))  # S-TEMP's template changes: DS-TEMP's result is kept
    changed = C.from_dict({**raw, "optimizer": {**raw["optimizer"], "base_template": "a picture of a {}."}})
    ds_temp = read_json(outputs["ds_temp"])
    for out in outputs.values():
        out.unlink()
    computed.clear()
    run_baselines(changed, 0, "manifest.json", embeddings, {}, outputs)
    assert computed == ["s_temp"] and read_json(outputs["ds_temp"]) == ds_temp
    assert read_json(outputs["s_temp"])["templates"] == ["a picture of a {}."]


def test_an_llm_baseline_computed_with_a_hub_llm_is_kept_under_the_commit_loaded(job_inputs, tmp_path, monkeypatch):  # noqa: F811
    """As for GLOV's steps: the LLM's key part is taken again once the job has loaded (downloaded)
    the hub model, so the next run restores the result."""
    from glov.jobs import baselines as jobs

    embed_images(job_inputs, "manifest.json", {"val": "val.pt", "test": "test.pt"})
    embeddings = {s: f"{s}.pt" for s in ("train", "val", "test")}
    cache, computed = {"commit": None}, []
    monkeypatch.setattr(jobs, "llm_digest", lambda p: f"hub:org/llm@{cache['commit']}" if cache["commit"] else "id:org/llm")
    monkeypatch.setattr(jobs, "load_llm", lambda p: cache.update(commit="c1"))
    s_temp = jobs.BASELINES["s_temp"]
    monkeypatch.setitem(jobs.BASELINES, "random_search", lambda inputs: computed.append(1) or inputs.llm() or s_temp(inputs))
    out = tmp_path / "random_search.json"
    for _ in range(2):
        out.unlink(missing_ok=True)
        run_baselines(job_inputs, 0, "manifest.json", embeddings, {}, {"random_search": out})
    assert computed == [1] and cache["commit"] == "c1"
