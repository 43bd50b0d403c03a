"""The protocol switches: one per results-changing row of OFFICIAL.md, clean by default, official in
config/paper.yaml, clean again with config/paper_clean.yaml, and each reaching the code it switches.
The official behaviour of each switch is pinned where it lives (steering: tests/test_official_steering.py)."""

import re

import numpy as np
from pathlib import Path

import pytest
import yaml

from glov import config as C
from glov.jobs.optimize import step_config
from glov.protocol import CLEAN, OFFICIAL, SWITCHES

REPO = Path(__file__).resolve().parents[1]
OFFICIAL_MD = REPO.parent / "shared" / "OFFICIAL.md"
NOT_RESULTS = {11: "the same in both", 19: "released prompts, not behaviour", 20: "options that are off"}


def merged(*files: str) -> dict:
    out: dict = yaml.safe_load((REPO / "params.yaml").read_text())
    for f in files:
        for key, value in yaml.safe_load((REPO / f).read_text()).items():
            out[key] = {**out[key], **value} if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def test_every_results_changing_row_has_a_switch():
    rows = set(range(1, 25))  # the notes' rows as of 2026-12-05 (21-24 added then)
    if OFFICIAL_MD.exists():  # the shared notes sit beside the checkout in this project's workspace
        rows = {int(m) for m in re.findall(r"^\| (\d+) \|", OFFICIAL_MD.read_text(), flags=re.M)}
    switched = [r for s in SWITCHES.values() for r in s.rows]
    assert sorted(switched) == sorted(rows - set(NOT_RESULTS))  # each row once


def test_the_switch_names_agree_everywhere():
    """The switches are named in glov.protocol, the params dataclass and the schema (protocol keys and
    the ablation's variants): a switch added in one place and not the others fails here."""
    from dataclasses import fields

    schema = yaml.safe_load((REPO / "glov" / "schemas" / "params.schema.yaml").read_text())["properties"]
    assert {f.name for f in fields(C.ProtocolConfig)} == set(SWITCHES)
    assert set(schema["protocol"]["properties"]) == set(SWITCHES)
    assert set(schema["ablation"]["properties"]["variants"]["items"]["enum"]) == {CLEAN, OFFICIAL, *SWITCHES}


def test_switches_default_to_clean_and_the_paper_configs_set_them():
    schema = C.schema()["properties"]["protocol"]["properties"]
    assert set(schema) == set(SWITCHES)
    assert merged()["protocol"] == {name: CLEAN for name in SWITCHES}  # params.yaml names each (DVC reads the section from it)
    assert all(getattr(C.from_dict({}).protocol, name) == CLEAN for name in SWITCHES)
    paper = C.from_dict(merged("config/paper.yaml")).protocol
    assert all(getattr(paper, name) == OFFICIAL for name in SWITCHES)
    clean = C.from_dict(merged("config/paper.yaml", "config/paper_clean.yaml")).protocol
    assert all(getattr(clean, name) == CLEAN for name in SWITCHES)


def test_a_bad_switch_value_names_the_key():
    with pytest.raises(C.ConfigError, match=r"protocol.steering_position: 'cached' is not one of \['clean', 'official'\]"):
        C.from_dict({"protocol": {"steering_position": "cached"}})


@pytest.mark.parametrize("value, semantics, compound", [(CLEAN, "cached", False), (OFFICIAL, "recomputed", True)])
def test_the_steering_switches_reach_the_optimiser(value, semantics, compound):
    params = C.from_dict({"protocol": {"steering_position": value, "alpha_compounding": value}})
    cfg = step_config(params, 0.5, 0, 30)
    assert (cfg.semantics, cfg.compound) == (semantics, compound)


def test_the_optimiser_hands_the_switches_to_the_llm_and_records_them():
    from test_optimizer import ACC, TASK, TableFitness

    from glov.llm import FakeLLM
    from glov.optimizer import StepConfig, init_state, step

    fit = TableFitness(ACC)
    for semantics, compound in [("cached", False), ("recomputed", True)]:
        llm = FakeLLM(["a sketch of a <category>.", "a toy <category>."])
        cfg = StepConfig(candidates=1, alpha=0.5, layer=2, semantics=semantics, compound=compound)
        state, _ = init_state("a photo of a {}.", fit)
        state, _ = step(state, llm, fit, TASK, cfg)
        state, record = step(state, llm, fit, TASK, cfg)
        steer = llm.calls[-1][1]
        assert (steer.semantics, steer.compound, steer.alpha) == (semantics, compound, 0.5)
        assert ("semantics" in record["steering"]) == (semantics != "cached")


def test_the_protocol_doc_lists_every_switch():
    doc = (REPO / "docs/PROTOCOL.md").read_text()
    assert all(f"| `{name}` | {s.label} |" in doc for name, s in SWITCHES.items())


def test_the_official_final_set_is_the_top_k_of_the_step_own_candidates():
    """OFFICIAL.md row 16 on a hand-built chain: step 2 improves nothing, so the clean set stays the
    history's best three while the official set is step 2's own; step 3 scored no candidate."""
    from glov.jobs.evaluate import score_chain
    from glov.optimizer.state import Candidate, State

    history = (Candidate("a photo of a {}.", 40.0, 0), Candidate("A {}.", 60.0, 1), Candidate("B {}.", 50.0, 1),
               Candidate("C {}.", 30.0, 2), Candidate("D {}.", 20.0, 2), Candidate("E {}.", 10.0, 2))
    state = State(step=3, history=history, best=history[1])
    val = {"a photo of a {}.": 1.0, "A {}.": 2.0, "B {}.": 3.0, "C {}.": 9.0, "D {}.": 8.0, "E {}.": 7.0}
    fit = {split: (lambda ts, split=split: sum(val[t] for t in ts) / len(ts) + (split == "test")) for split in ("train", "val", "test")}
    manifest = {"dataset": "toy"}
    clean = score_chain(C.from_dict({}), manifest, state, fit)
    official = score_chain(C.from_dict({"protocol": {"final_set": "official"}}), manifest, state, fit)
    assert clean["templates"] == ["A {}.", "B {}.", "a photo of a {}."] and clean["chosen_step"] == 1
    assert official["templates"] == ["C {}.", "D {}.", "E {}."] and official["chosen_step"] == 2
    assert official["test_acc"] == 9.0 and [p["step"] for p in official["curve"]] == [0, 1, 2, 3]
    assert official["curve"][3]["topk_val"] == official["curve"][2]["topk_val"]  # step 3: nothing of its own


def test_the_official_loader_and_val_split_on_a_hand_built_folder(tmp_path, monkeypatch):
    """Rows 12 and 13 through the prep job: 60 classes, 1 shot each -> 50 fitness images (a seeded
    subset, the same every time), 1 val image per class; 40 classes stay whole."""
    from conftest import write_imagefolder

    from glov.data.splits import drop_last_batch
    from glov.io import read_json
    from glov.jobs.data import prepare_dataset

    assert drop_last_batch(list(range(49)), 50, 0) == list(range(49))
    kept = drop_last_batch(list(range(120)), 50, 0)
    assert len(kept) == 100 and kept == sorted(kept) and kept == drop_last_batch(list(range(120)), 50, 0)
    for n_classes, expected_train in [(60, 50), (40, 40)]:
        root = write_imagefolder(tmp_path / f"c{n_classes}", {f"class{i:02d}": 4 for i in range(n_classes)}, size=4)
        custom = {"custom": {"toy": {"layout": "imagefolder", "path": str(root), "description": "toy"}}}
        sizes = {}
        for value in (CLEAN, OFFICIAL):
            params = C.from_dict({"data": {"root": str(tmp_path), "datasets": ["toy"], "val_per_class": 2, "test_per_class": 1, **custom},
                                  "protocol": {"fitness_loader": value, "val_split": value}, "tracking": {"mlflow": False}})
            out = tmp_path / f"{n_classes}-{value}.json"
            prepare_dataset(params, "toy", out)
            sizes[value] = {k: len(v) for k, v in read_json(out)["splits"].items()}
        assert sizes[CLEAN] == {"train": n_classes, "val": 2 * n_classes, "test": n_classes}
        assert sizes[OFFICIAL] == {"train": expected_train, "val": n_classes, "test": n_classes}


@pytest.mark.parametrize("alpha", [1.0, 0.0])
def test_the_official_chat_header_and_token_budget_reach_the_requests(alpha):
    """Rows 4 and 5: without the generation prompt; once the first improvement has happened, every
    request takes the guided loop's 75 tokens to the tokenizer's EOS only, alpha = 0 too (the
    released loop sends it through the guided decoding with a zero offset); before that, as clean."""
    from test_optimizer import ACC, TASK, TableFitness

    from glov.llm import FakeLLM
    from glov.optimizer import advance, init_state, propose

    fit = TableFitness(ACC)
    for value in (CLEAN, OFFICIAL):
        params = C.from_dict({"protocol": {"chat_header": value, "token_budget": value}})
        cfg = step_config(params, alpha, 0, 4)
        llm = FakeLLM(["a sketch of a <category>."])
        state, _ = init_state("a photo of a {}.", fit)
        first = propose(state, llm, TASK, cfg)  # no improvement yet: unguided
        state, _ = advance(state, first, ["a toy <category>."], fit, cfg)
        no_gain = propose(state, llm, TASK, cfg)  # toy (30) did not beat the base (40): still unguided
        state, _ = advance(state, no_gain, ["a sketch of a <category>."], fit, cfg)
        second = propose(state, llm, TASK, cfg)  # sketch (55) did: guided, steered where alpha > 0
        assert first.request.steer is None and no_gain.request.steer is None and (second.request.steer is not None) == (alpha > 0)
        assert {first.request.generation_prompt, second.request.generation_prompt} == {value == CLEAN}
        for unguided in (first, no_gain):
            assert (unguided.request.sampling.max_new_tokens, unguided.request.sampling.eos) == (50, "model")
        expected = (75, "tokenizer") if value == OFFICIAL else (50, "model")
        assert (second.request.sampling.max_new_tokens, second.request.sampling.eos) == expected


def test_an_llm_request_without_the_header_and_stopping_at_the_tokenizer_eos(tiny_llm_dir, monkeypatch):
    import glov.generation
    from glov.llm import HFLLM, Request, Sampling
    from glov.registry import LLMSpec

    llm = HFLLM.load(LLMSpec(str(tiny_llm_dir)))
    llm.tokenizer.eos_token = llm.tokenizer.sep_token  # MiniLM's tokenizer names none; a chat LLM's does
    msgs = [{"role": "user", "content": "name a template"}]
    with_header, without = llm.encode_chat(msgs)[0].tolist(), llm.encode_chat(msgs, generation_prompt=False)[0].tolist()
    assert llm.tokenizer.decode(with_header).rstrip().endswith("assistant :") and "assistant" not in llm.tokenizer.decode(without)
    seen = []
    monkeypatch.setattr(glov.generation, "sample_rows", lambda model, rows, *a, **k: seen.extend(rows) or [[] for _ in rows])
    llm.sample([Request(msgs, (1,), Sampling()), Request(msgs, (2,), Sampling(eos="tokenizer"), generation_prompt=False)])
    assert [list(r.prompt) for r in seen] == [with_header, without]
    assert [r.eos for r in seen] == [None, (llm.tokenizer.sep_token_id,)]


def test_the_official_steering_vector_on_a_hand_built_case(tiny_llm_dir):
    """Row 8: <category> forms with BOS, the shorter padded with end-of-turn strings to equal length,
    every position averaged (BOS and padding included), float16; clean: {} forms, BOS left out, float32."""
    import torch

    from glov.llm import HFLLM

    from glov.registry import LLMSpec

    llm = HFLLM.load(LLMSpec(str(tiny_llm_dir)))
    llm.tokenizer.eos_token = llm.tokenizer.sep_token  # the end-of-turn string a chat tokenizer names
    pos, neg, layer = "a blurry photo of a <category>.", "a <category>.", 2
    ids = [llm.tokenizer(t)["input_ids"] for t in (pos, neg)]
    assert len(ids[0]) > len(ids[1])
    padded = [ids[0], ids[1] + [llm.tokenizer.sep_token_id] * (len(ids[0]) - len(ids[1]))]
    with torch.no_grad():
        means = [llm.model(input_ids=torch.tensor([i]), output_hidden_states=True).hidden_states[layer + 1][0].mean(0).half() for i in padded]
    official = llm.official_difference(pos, neg, layer)
    assert official.vector.dtype == torch.float16 and official.layer == layer
    torch.testing.assert_close(official.vector, means[0] - means[1], rtol=0, atol=1e-3)
    clean = llm.mean_hidden("a blurry photo of a {}.", layer) - llm.mean_hidden("a {}.", layer)
    assert clean.vector.dtype == torch.float32 and not torch.allclose(clean.vector, official.vector.float(), atol=1e-2)
    cfg = step_config(C.from_dict({"protocol": {"steering_vector": OFFICIAL}}), 1.0, 0, 4)
    assert cfg.official_vector and not step_config(C.from_dict({}), 1.0, 0, 4).official_vector


def test_the_official_meta_prompt_reaches_the_llm_with_the_official_dataset_name(official_fixture):
    from test_optimizer import ACC, TableFitness

    from glov.jobs.optimize import task_of
    from glov.llm import FakeLLM
    from glov.optimizer import init_state, step

    for value in (CLEAN, OFFICIAL):
        params = C.from_dict({"protocol": {"meta_prompt": value}})
        llm = FakeLLM(["a sketch of a <category>."])
        cfg = step_config(params, 0.0, 0, 30)
        step(init_state("a photo of a {}.", TableFitness(ACC))[0], llm, TableFitness(ACC), task_of(params, "eurosat", "Sentinel-2 images"), cfg)
        user = llm.calls[-1][0][1]["content"]
        assert ("Collection: EuroSAT\nAbout it: Fixture description" in user) == (value == OFFICIAL)  # the fixture's words
        assert ("Dataset: eurosat.\nDescription: Sentinel-2 images." in user) == (value == CLEAN)


@pytest.mark.parametrize("completion, text", [
    ("assistant\n\nNew template: a blurry photo of a <category>.", " a blurry photo of a <category>."),
    ('Template: "a <category> in the wild" - I think this works!', ' "a <category> in the wild" - I think this works!'),
    ("Here it is: a <category> next to a <category>", " a <category> next to a <category>"),
    ("Prompt 3: a photo of a <category> taken from above with", " a photo of a <category> taken from above with"),
    ("no colon and no placeholder", "no colon and no placeholder"),
    ("Accuracy: 55", " 55"),
    ("", ""),
    ("Sure: a {} literally", " a {} literally"),
])
def test_the_official_parser_keeps_the_text_after_the_last_colon(completion, text):
    """Row 6: nothing is cleaned beyond newlines and the word 'assistant' (not even the spaces around
    it); no length limit. The LLM sees the text as it was (a literal {} stays {}); the template has {}."""
    from glov.optimizer.parse import official_line, parse_official

    assert official_line(completion) == text
    parsed = parse_official(completion)
    template = text.replace("<category>", "{}")
    assert parsed.template == (template if "{}" in template else None)
    assert parsed.shown == (text if "{}" in text or "{}" not in template else None)
    assert parse_official("x: " + "a long <category> " * 40).template == " " + "a long {} " * 40


def test_the_official_handling_of_invalid_and_duplicate_candidates():
    """Row 7 on a hand-built step: an unparsable completion enters as its text, a duplicate is scored
    again, the step ends with an empty template; a template without {} scores the share of class 0."""
    from glov.optimizer import score_completions
    from glov.optimizer.state import Candidate

    calls = []

    def fitness(t):
        calls.append(t)
        return 25.0 if "{}" not in t else 60.0

    history = (Candidate("a photo of a {}.", 50.0, 0),)
    outputs = ["Template: a photo of a <category>.", "Sure: a nice picture", "Template: a sketch of a <category>."]
    clean, records, failed = score_completions(outputs, history, fitness, 1)
    assert [c.template for c in clean] == ["a photo of a {}.", "a sketch of a {}."] and failed == 1
    assert [r["status"] for r in records] == ["duplicate", "invalid", "scored"]
    calls.clear()
    official, records, failed = score_completions(outputs, history, fitness, 1, official_parser=True, keep_invalid=True)
    assert [(c.template, c.accuracy) for c in official[1:]] == [(" a photo of a {}.", 60.0), (" a nice picture", 25.0),
                                                                (" a sketch of a {}.", 60.0), ("", 25.0)]
    assert [r["status"] for r in records] == ["scored", "scored_invalid", "scored", "scored_invalid"] and failed == 1
    assert calls == [" a photo of a {}.", " a nice picture", " a sketch of a {}.", ""]
    dup, records, _ = score_completions(outputs[:1] * 2, history, fitness, 1, official_parser=True, keep_invalid=True)
    assert [c.template for c in dup[1:]] == [" a photo of a {}."] * 2 + [""] and records[1]["duplicate"]
    _, _, _ = score_completions(outputs[1:2], history, fitness, 1, keep_invalid=True)  # clean parser: the empty template
    assert calls[-2:] == ["", ""]


def test_final_sets_never_hold_a_template_without_placeholder():
    from glov.optimizer.state import Candidate
    from glov.scoring import top_templates

    history = [Candidate("a {}.", 40.0, 0), Candidate("", 90.0, 1), Candidate("b {}.", 50.0, 1)]
    assert top_templates(history, 3, 1, needs_placeholder=True) == ["b {}.", "a {}."]
    assert top_templates(history, 3, 1, own_step_only=True, needs_placeholder=True) == ["b {}."]


def test_the_official_variant_split_draws_everything_from_the_target_set(tmp_path):
    """Row 14 on a hand-built ImageNet-R: 20 images -> 12 / 4 / 4 (fitness 1-shot from the 12), all
    from the target folder and disjoint; clean keeps ImageNet's photos for fitness and val."""
    from test_data import fake_imagenet
    from conftest import write_imagefolder

    from glov.data import prepare
    from glov.data.splits import split_target

    fake_imagenet(tmp_path)
    write_imagefolder(tmp_path / "imagenet-rendition" / "imagenet-r", {"n03": 10, "n01": 10})
    clean = prepare("imagenet_r", tmp_path, 1, 1, None, 0)
    assert all(p.startswith("../imagenet/") for p, _ in clean["splits"]["train"]) and len(clean["splits"]["test"]) == 20
    official = prepare("imagenet_r", tmp_path, 1, 1, None, 0, target_split=True)
    splits = {k: [p for p, _ in v] for k, v in official["splits"].items()}
    assert {k: len(v) for k, v in splits.items()} == {"train": 2, "val": 4, "test": 4}
    assert all(p.startswith("imagenet-r/") for v in splits.values() for p in v)
    assert len(set(sum(splits.values(), []))) == 10
    items = [(f"x{i}", i % 2) for i in range(10)]
    train, val, test = split_target(items, 0)
    assert (len(train), len(val), len(test)) == (6, 2, 2) and sorted(train + val + test) == sorted(items)
    assert split_target(items, 0) == (train, val, test) and split_target(items, 1) != (train, val, test)


def test_the_official_split_seed_draws_one_split_per_run_seed(tmp_path):
    """Row 17: each run seed reads its own manifest, drawn with that seed (data.seed is unused)."""
    from conftest import write_imagefolder

    from glov.io import read_json
    from glov.jobs.common import manifest_path
    from glov.jobs.data import prepare_dataset
    from glov.protocol import split_seed

    root = write_imagefolder(tmp_path / "toy", {f"c{i}": 6 for i in range(5)}, size=4)
    custom = {"custom": {"toy": {"layout": "imagefolder", "path": str(root), "description": "toy"}}}
    trains = {}
    for value in (CLEAN, OFFICIAL):
        params = C.from_dict({"data": {"root": str(tmp_path), "datasets": ["toy"], "seed": 7, **custom},
                              "protocol": {"split_seed": value}, "tracking": {"mlflow": False}})
        for seed in (0, 1):
            out = tmp_path / f"{value}{seed}.json"
            prepare_dataset(params, "toy", out, split_seed(params, seed))
            trains[value, seed] = read_json(out)["splits"]["train"]
        assert manifest_path(params, "toy", 1) == ("results/data/toy/split1/manifest.json" if value == OFFICIAL else "results/data/toy/manifest.json")
    assert trains[CLEAN, 0] == trains[CLEAN, 1] != trains[OFFICIAL, 0] != trains[OFFICIAL, 1]


def test_the_official_imagenet_v2_reuses_imagenet_chains():
    """Row 15 (the paper DAG test checks the workflow: no ImageNet-V2 chain under config/paper.yaml)."""
    from glov.protocol import chain_dataset

    official, clean = C.from_dict({"protocol": {"imagenet_v2_prompts": OFFICIAL}}).protocol, C.from_dict({}).protocol
    assert [chain_dataset(d, official) for d in ("imagenetv2", "imagenet", "imagenet_r")] == ["imagenet", "imagenet", "imagenet_r"]
    assert chain_dataset("imagenetv2", clean) == "imagenetv2"


# ---------------------------------------------------------------- rows 16, 21, 22, 23 (second pass)


def literal_ranking(history):
    """OFFICIAL.md row 22, literally: the released loop sorts its history with NumPy's default
    argsort; its best and worst blocks are the ends of that order, p+ the argmax of the sorted
    accuracies, p- the last entry strictly below it."""
    accs = np.array([c.accuracy for c in history])
    order = np.argsort(accs)
    sorted_accs = accs[order]
    best = int(np.argmax(sorted_accs))
    below = [i for i, a in enumerate(sorted_accs) if a < sorted_accs[best]]
    return [history[i] for i in order], history[order[best]], history[order[below[-1]]] if below else None


@pytest.mark.parametrize("n", [6, 16, 17, 40])
def test_official_ranking_is_numpy_argsort_in_found_order(n):
    from glov.optimizer import guidance_after
    from glov.optimizer.prompts import ranked
    from glov.optimizer.state import Candidate

    rng = np.random.default_rng(n)
    history = tuple(Candidate(f"t{i} {{}}", float(rng.choice([20.0, 40.0, 60.0])), i // 5) for i in range(n))
    order, best, below = literal_ranking(history)
    assert ranked(history, "official") == order
    base = Candidate("base {}", 0.0, 0)
    found, guidance = guidance_after(history, base, None, "official")
    assert found == best and guidance.positive == best.template and guidance.negative == below.template
    early, late = Candidate("early {}", 50.0, 1), Candidate("late {}", 50.0, 2)
    assert ranked((early, late))[-1] == early and ranked((early, late), "official")[-1] == late  # ties: who counts as better


def test_the_official_final_set_takes_the_step_top_three_then_drops_placeholder_less_ones():
    """Row 16 corrected: top 3 of the step's own candidates, and only then those without {} removed
    (a step may ensemble fewer than 3); the first LLM step is never a final set."""
    from glov.jobs.evaluate import score_chain
    from glov.optimizer.state import Candidate, State
    from glov.scoring import top_templates

    step2 = [Candidate("x", 90.0, 2), Candidate("A {}.", 80.0, 2), Candidate("B {}.", 70.0, 2), Candidate("C {}.", 60.0, 2),
             Candidate("{ } spaced", 85.0, 2)]
    assert top_templates(step2, 3, 2, own_step_only=True, needs_placeholder=True, ranking="official") == ["{ } spaced", "A {}."]
    assert top_templates(step2, 3, 2, needs_placeholder=True) == ["A {}.", "B {}.", "C {}."]  # clean: the filter comes first
    history = (Candidate("a photo of a {}.", 40.0, 0), Candidate("best {}.", 99.0, 1), *step2)
    val = {"a photo of a {}.": 1.0, "best {}.": 50.0, "A {}.": 9.0, "{ } spaced": 9.0}
    fit = {s: (lambda ts: sum(val.get(t, 0.0) for t in ts) / len(ts)) for s in ("train", "val", "test")}
    official = score_chain(C.from_dict({"protocol": {"final_set": "official"}}), {"dataset": "toy"}, State(2, history, history[1]), fit)
    assert official["chosen_step"] == 2 and official["templates"] == ["{ } spaced", "A {}."]  # step 1 (val 50) is never a set
    assert official["curve"][1]["topk_val"] == official["curve"][0]["topk_val"]


def test_the_released_scorer_drops_templates_format_rejects(tiny_clip_dir):
    """Row 7 corrected: under the official handling a template whose braces break str.format (one
    {} and a stray brace) is dropped for every class, so alone it sends every image to class 0."""
    import torch

    from glov.embeddings import ImageEmbeddings
    from glov.jobs.embed import TemplateFitness, official_usable
    from glov.registry import VLMSpec
    from glov.vlm import load_vlm

    assert [official_usable(t) for t in ["a {}.", "a {} {", "{} and {}", "none", "{ }", "{0} {}"]] == [True, False, True, False, True, False]
    vlm = load_vlm(VLMSpec(f"local-dir:{tiny_clip_dir}"))
    features = torch.nn.functional.normalize(torch.randn(6, 32, generator=torch.Generator().manual_seed(0)), dim=-1)
    emb = ImageEmbeddings(features, torch.tensor([1, 1, 1, 0, 0, 0]), [f"{i}.png" for i in range(6)])
    official = TemplateFitness(vlm, ["cat", "dog"], emb, official=True)
    assert official("a {} photo {") == 50.0 and official.correct("a {} photo {") == "000111"  # class 0 for every image
    clean = TemplateFitness(vlm, ["cat", "dog"], emb)
    assert official(["a {}.", "a {} photo {"]) == clean("a {}.")  # in an ensemble: the broken one is left out


def test_class_names_as_the_official_loaders_give_them(tmp_path):
    """Row 21: underscores stay in the names of CoOp split files and image folders under official;
    clean reads them as spaces."""
    import json

    from conftest import write_imagefolder

    from glov.data import prepare

    root = write_imagefolder(tmp_path / "pets" / "images", {"american_bulldog": 3, "Abyssinian": 3}, size=4)
    items = [[f"{c}/{i:03d}.png", label, c] for label, c in enumerate(["american_bulldog", "Abyssinian"]) for i in range(3)]
    (tmp_path / "pets" / "split.json").write_text(json.dumps({"train": items, "val": items[:1], "test": items}))
    custom = {"pets": {"layout": "coop_json", "path": str(tmp_path / "pets"), "image_dir": "images", "split_file": "split.json",
                       "description": "pets"},
              "folder": {"layout": "imagefolder", "path": str(root), "description": "pets"}}
    for name in custom:
        clean = prepare(name, tmp_path, 1, 1, 1, 0, custom)
        official = prepare(name, tmp_path, 1, 1, 1, 0, custom, names_as_given=True)
        assert sorted(clean["classnames"]) == ["Abyssinian", "american bulldog"]
        assert sorted(official["classnames"]) == ["Abyssinian", "american_bulldog"]
        assert official["splits"] == clean["splits"]
    params = C.from_dict({"protocol": {"class_names": OFFICIAL}})
    assert "class_names" in {k for k, v in params.protocol.__dict__.items() if v == OFFICIAL}


def test_official_precision_reaches_the_forward_passes(tiny_llm_dir, tiny_clip_dir):
    """Row 23: the LLM's decoder layers and the VLM's two towers compute in float16 under official,
    float32 under clean (the dtypes their forward passes receive); the features come back float32."""
    import torch

    from glov.jobs.common import load_llm, vlm_dtype
    from glov.llm import Request, Sampling
    from glov.registry import VLMSpec
    from glov.vlm import load_vlm

    for value, want in ((CLEAN, torch.float32), (OFFICIAL, torch.float16)):
        params = C.from_dict({"llm": {"name": "tiny", "path": str(tiny_llm_dir)}, "protocol": {"precision": value}})
        llm = load_llm(params)
        seen = []
        hooks = [layer.register_forward_pre_hook(lambda _m, args: seen.append(args[0].dtype)) for layer in llm.model.model.layers]
        llm.sample([Request([{"role": "user", "content": "name a template"}], (1, 2), Sampling(max_new_tokens=3))])
        for h in hooks:
            h.remove()
        assert seen and set(seen) == {want}
        vlm = load_vlm(VLMSpec(f"local-dir:{tiny_clip_dir}"), dtype=vlm_dtype(params))
        towers = []
        vlm.model.visual.conv1.register_forward_pre_hook(lambda _m, args: towers.append(("image", args[0].dtype)))
        vlm.model.transformer.register_forward_pre_hook(lambda _m, args: towers.append(("text", args[0].dtype)))
        image = vlm.encode_images(torch.zeros(1, 3, 32, 32))
        text = vlm.encode_texts(["a cat"])
        assert towers == [("image", want), ("text", want)] and image.dtype == text.dtype == torch.float32
        assert abs(float(image.norm()) - 1) < 1e-2
