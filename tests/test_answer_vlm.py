"""The encoder-decoder (LLaVA-style) path: a tiny LLaVA built here and loaded like llava-hf models,
answers mapped to classes by sentence embeddings, and GLOV optimising whole prompts."""

import pytest
import torch
from PIL import Image

from glov.answer_vlm import AnswerFitness, AnswerVLM, SentenceEncoder, nearest_class
from glov.llm import FakeLLM, Sampling
from glov.optimizer import StepConfig, Task, init_state, step
from glov.optimizer.parse import parse_question
from glov.optimizer.prompts import QUESTION, meta_prompt
from glov.registry import VLMError

IMAGES = [Image.new("RGB", (40, 30), (255, 0, 0)), Image.new("RGB", (20, 20), (0, 0, 255)), Image.new("RGB", (33, 33), (0, 255, 0))]


@pytest.fixture(scope="module")
def encoder():
    return SentenceEncoder()


class ScriptedVLM:
    """Answers from a table (prompt -> one answer per image), counting the calls."""

    def __init__(self, table):
        self.table, self.calls = table, 0

    def answer(self, images, prompt, batch_size=8):
        self.calls += 1
        return list(self.table[prompt][: len(images)])


def test_the_tiny_llava_loads_like_a_hub_model_and_answers_deterministically(tiny_llava_dir):
    vlm = AnswerVLM.load(str(tiny_llava_dir), max_new_tokens=5)
    first = vlm.answer(IMAGES, "What is in the image?", batch_size=2)
    assert len(first) == 3 and all(isinstance(a, str) for a in first)
    assert vlm.answer(IMAGES, "What is in the image?", batch_size=3) == first  # greedy, and batching changes nothing


def test_a_missing_model_names_the_fix(tmp_path):
    with pytest.raises(VLMError, match="vlm.path to a local folder"):
        AnswerVLM.load(str(tmp_path / "nothing"))


def test_answers_map_to_the_nearest_class_name(encoder):
    classes = ["cat", "dog", "airplane"]
    answers = ["It is a small cat sleeping.", "An aeroplane in the sky.", "a puppy"]
    assert nearest_class(encoder.encode(answers), encoder.encode(classes)).tolist() == [0, 2, 1]


def test_fitness_is_the_accuracy_of_the_mapped_answers_and_caches_each_prompt(encoder):
    vlm = ScriptedVLM({"good?": ["a cat", "a dog", "an airplane"], "bad?": ["a cat", "a cat", "a cat"]})
    fitness = AnswerFitness(vlm, encoder, ["cat", "dog", "airplane"], IMAGES, torch.tensor([0, 1, 2]))
    assert fitness("good?") == 100.0
    assert fitness("bad?") == pytest.approx(100 / 3)
    assert fitness(["good?", "bad?"]) == 100.0 and vlm.calls == 2  # the first prompt of a list; nothing re-answered


def test_fitness_on_the_tiny_llava_is_a_valid_accuracy(tiny_llava_dir, encoder):
    fitness = AnswerFitness(AnswerVLM.load(str(tiny_llava_dir), max_new_tokens=4), encoder, ["red", "blue", "green"], IMAGES, torch.tensor([0, 1, 2]))
    acc = fitness("What colour is this?")
    assert acc == pytest.approx(round(acc * 3 / 100) * 100 / 3)  # k of the 3 images right
    assert len(fitness.answers["What colour is this?"]) == 3


def test_parse_question():
    assert parse_question('1. "What animal is shown? Answer in one word."').template == "What animal is shown? Answer in one word."
    assert parse_question("\n\nPrompt: Name the object.").template == "Name the object."
    assert parse_question("What is this <category>?").template is None
    assert parse_question("   ").template is None


def test_glov_optimises_whole_prompts_for_an_answering_vlm(encoder):
    table = {"What is in the image?": ["a cat", "a cat", "a cat"], "Which animal is this?": ["a cat", "a dog", "an airplane"]}
    fitness = AnswerFitness(ScriptedVLM(table), encoder, ["cat", "dog", "airplane"], IMAGES, torch.tensor([0, 1, 2]))
    state, _ = init_state("What is in the image?", fitness)
    llm = FakeLLM(['"Which animal is this?"', "a photo of a <category>."])
    state, record = step(state, llm, fitness, Task("pets", "pets"), StepConfig(candidates=2, kind=QUESTION))
    assert state.best.template == "Which animal is this?" and state.best.accuracy == 100.0
    assert [c["status"] for c in record["candidates"]] == ["scored", "invalid"]
    system, user = llm.calls[0][0]
    assert "vision-language assistant" in system["content"] and "Prompts and their accuracies" in user["content"]
    assert "<category>" not in meta_prompt("pets", "pets", state.history, 3, QUESTION)[1]["content"].split("e.g.")[0]


# ---------------------------------------------------------------- the workflow's jobs with an answering VLM
@pytest.fixture
def answering_params(tmp_path, tiny_llava_dir, monkeypatch):
    from conftest import toy_job_params

    monkeypatch.chdir(tmp_path)
    return toy_job_params(tmp_path, 3, 1, {"name": "tiny-llava", "path": str(tiny_llava_dir), "max_new_tokens": 3},
                          methods=["s_temp", "glov_wo_guidance"], steering={"alphas": [0.0]})


def test_jobs_score_prompts_on_the_images_with_an_answering_vlm(answering_params, tmp_path):
    from glov.io import read_json
    from glov.jobs.baselines import run_baselines
    from glov.jobs.common import answering
    from glov.jobs.evaluate import score_runs
    from glov.jobs.optimize import run_steps
    from glov.jobs.tables import aggregate_tables

    assert answering(answering_params)
    run_steps(answering_params, "manifest.json", None, 0, [0], {}, {(0.0, 0): "step_000.json"})
    step0 = read_json("step_000.json")
    assert step0["base_template"] == "What is the main object in this image? Answer with its name."
    none = {"train": None, "val": None, "test": None}
    score_runs(answering_params, "manifest.json", 0, {0.0: "step_000.json"}, none, {0.0: "score.json"})
    score = read_json("score.json")
    assert score["templates"] == [step0["base_template"]]  # one prompt: an answer has no ensemble
    run_baselines(answering_params, 0, "manifest.json", none, {}, {"s_temp": "s_temp.json"})
    s_temp = read_json("s_temp.json")
    assert (s_temp["val_acc"], s_temp["test_acc"]) == (score["val_acc"], score["test_acc"])
    aggregate_tables(answering_params, [("toy", 0.0, 0)], ["score.json"], ["s_temp.json"])
    paper = open("results/tables/paper_table1.md").read()  # the paper's LLaVA numbers, not its CLIP table
    assert paper.startswith("# GLOV with LLaVA-OneVision") and "| - / 53.0 |" in paper and "CLIP" not in paper


def test_methods_that_need_text_embeddings_are_refused_for_an_answering_vlm(tiny_llava_dir):
    from glov import config as C
    from glov.jobs.common import check

    params = C.from_dict({"vlm": {"name": "x", "path": str(tiny_llava_dir)}, "methods": ["s_temp", "cupl", "glov"]})
    with pytest.raises(C.ConfigError, match="methods: with an answering VLM .* drop cupl"):
        check(params)


def test_the_official_llava_prompt_details(tiny_llava_dir, monkeypatch, official_fixture):
    """Row 18: the released base prompt (read from its main_llava.py: here our fixture of it), double
    quotes removed and '?' appended to every question, 50 greedy answer tokens, and candidate
    prompts of any length."""
    from glov import config as C
    from glov.jobs.common import base_prompt
    from glov.jobs.embed import Scorer
    from glov.official import LLAVA, wording
    from glov.protocol import LLAVA_NEW_TOKENS

    vlm = {"name": "tiny-llava", "path": str(tiny_llava_dir)}
    clean = C.from_dict({"vlm": vlm})
    official = C.from_dict({"vlm": vlm, "protocol": {"llava_prompt": "official"}})
    assert (base_prompt(clean), base_prompt(official)) == (clean.optimizer.base_prompt, wording(LLAVA).base_stored)
    assert base_prompt(official).startswith("Fixture base question")
    manifest = {"classnames": ["a", "b"], "image_root": ".", "splits": {}}
    loaded = {name: Scorer(params, manifest).vlm for name, params in (("clean", clean), ("official", official))}
    assert (loaded["clean"].max_new_tokens, loaded["official"].max_new_tokens) == (clean.vlm.max_new_tokens, LLAVA_NEW_TOKENS)
    seen = []
    processor = loaded["official"].processor
    monkeypatch.setattr(processor, "apply_chat_template", lambda chat, **kw: seen.append(chat[0]["content"][1]["text"]) or "x")
    assert loaded["official"].answer([], 'What is "it"') == [] and seen == ["What is it?"]  # the chat is built before any image
    long = "Look at the image carefully and " * 10 + "name the object"
    assert parse_question(long).template is None and parse_question(long, None).template == long
    from glov.jobs.optimize import step_config

    assert (step_config(clean, 1.0, 0, 4).question_chars, step_config(official, 1.0, 0, 4).question_chars) == (200, None)
