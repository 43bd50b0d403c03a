"""The official protocol against literal references of the released code's loops (OFFICIAL.md rows
1-7, 16, 22, 24), with the released source files replaced by our fixture of the same structure
(tests/fixtures/official: invented sentences). The fixture's own functions, imported here, are the
literal reference of what the released functions return; glov reads the same files as data only."""

from __future__ import annotations

import hashlib
import importlib.util
import random
from pathlib import Path

import numpy as np
import pytest

from conftest import OFFICIAL_FIXTURE
from glov import config as C
from glov.llm import FakeLLM
from glov.official import CLIP, LLAVA, OfficialSourceError, fetch_official, read_file, wording
from glov.optimizer import StepConfig, Task, init_state, step
from glov.optimizer.prompts import QUESTION, display, official_base_shown, official_meta_prompt
from glov.optimizer.state import Candidate


def fixture_module(path: str):
    """Import one of our fixture files: the literal reference (the real files are never imported)."""
    spec = importlib.util.spec_from_file_location(Path(path).stem, OFFICIAL_FIXTURE / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def literal_meta_prompt(module, name: str, info: dict, base_prompt: str, base_acc: float, history: list[tuple[str, float]] | None,
                        step: int, topk: int):
    """What the released loop passes its meta-prompt function at loop index ``step``: its history
    sorted by NumPy's default argsort (row 22), the step-0 accuracy as a NumPy array (row 2)."""
    responses = accuracies = None
    if history is not None:
        order = np.argsort(np.array([a for _, a in history]))
        responses, accuracies = np.array([t for t, _ in history])[order], np.array([a for _, a in history])[order]
    return module.generate_meta_prompt_llama(name, base_prompt, step, np.array([base_acc]), info, responses, accuracies, topk)[0]


def hashed_fitness(levels: int = 7):
    """A deterministic fitness with many ties (accuracies in steps of 100/(levels-1)). Like CLIP's
    tokenizer it ignores case and surrounding spaces: the released code scores its base prompt as
    'A photo of a <category>.', we score optimizer.base_template, and CLIP sees the same text."""
    def fitness(template: str) -> float:
        return (int(hashlib.sha256(template.strip().lower().encode()).hexdigest(), 16) % levels) / (levels - 1) * 100

    return fitness


# ------------------------------------------------------------------------------------------ the reader


@pytest.mark.parametrize("kind, path", [(CLIP, "utils/opt_utils.py"), (LLAVA, "utils/opt_utils_llava.py")])
def test_the_meta_prompt_read_as_data_equals_the_fixture_functions_character_for_character(official_fixture, kind, path):
    words = wording(kind)
    module = fixture_module(path)
    info = fixture_module("utils/utils.py").dataset_info
    rng = random.Random(0)
    template = "a photo of a {}." if kind == CLIP else words.base_stored
    base = Candidate(template, 45.833333333333336, 0, official_base_shown(template, words))
    for n, topk in [(1, 5), (2, 5), (3, 5), (7, 5), (12, 5), (30, 3), (40, 5)]:
        history = [base] + [Candidate(rng.choice([" a {} here", "the {}.", "x <category> y", " odd {} : z"]) + str(i),
                                      rng.choice([10.0, 33.333333333333336, 50.0, 99.99]), 1 + i // 10) for i in range(n - 1)]
        for step in ([1] if n == 1 else [2, 7]):
            ours = official_meta_prompt(words, "EuroSAT", info["EuroSAT"], history, topk, step, "official")
            shown = [(display(c), c.accuracy) for c in history]
            expected = literal_meta_prompt(module, "EuroSAT", info, words.base_first, base.accuracy, None if step == 1 else shown,
                                           step - 1, topk)
            assert ours == expected
    assert "Its score: 45.833333333333336\n" in official_meta_prompt(words, "EuroSAT", "d", [base], 5, 1)[1]["content"]


def test_the_zero_k_quirk_is_the_released_slicing(official_fixture):
    """k = min(topk, int(n/2)) = 0 after a first step none of whose candidates entered the history
    (clean invalid handling): the released slicing [-0:] puts the whole history in the best block."""
    words = wording(CLIP)
    base = Candidate("a photo of a {}.", 40.0, 0, "A photo of a <category>.")
    user = official_meta_prompt(words, "EuroSAT", "d", [base], 5, 2)[1]["content"]
    assert "Good wordings:\n [1] A photo of a <category>. ~ scored 40\n\nPoor wordings:\n Reply" in user


def test_the_real_files_are_never_imported(official_fixture):
    """The fixture's main_*.py files raise on import, as a guard: glov reads their base prompts all the same."""
    assert wording(CLIP).base_stored == "A photo of a <category>." and wording(CLIP).base_first == "a photo of a <category>."
    with pytest.raises(RuntimeError, match="never imported"):
        fixture_module("main_clip.py")


def test_fetching_checks_every_file_against_its_pinned_digest(official_fixture, tmp_path, monkeypatch):
    import glov.official as official

    altered = tmp_path / "altered"
    for p in official.PINNED:
        (altered / p).parent.mkdir(parents=True, exist_ok=True)
        (altered / p).write_bytes((OFFICIAL_FIXTURE / p).read_bytes())
    (altered / "utils/utils.py").write_text("dataset_info = {'EuroSAT': 'changed'}\n")
    with pytest.raises(OfficialSourceError, match=r"utils/utils.py is not utils/utils.py of jmiemirza/GLOV at 4c4fe64 \(sha256 differs\)"):
        fetch_official(tmp_path / "out", altered)
    assert not (tmp_path / "out").exists()
    fetched = official.source_dir() / "utils/utils.py"
    fetched.write_text("dataset_info = {}\n")  # changed after fetching: refused at run time too
    with pytest.raises(OfficialSourceError, match="not the pinned file.*glov fetch-official"):
        read_file("utils/utils.py")
    fetched.unlink()
    with pytest.raises(OfficialSourceError, match=r"missing.*`glov fetch-official --from PATH`"):
        read_file("utils/utils.py")


def test_the_official_meta_prompt_names_the_dataset_as_the_released_code(official_fixture):
    from glov.jobs.optimize import task_of

    info = fixture_module("utils/utils.py").dataset_info
    official = C.from_dict({"protocol": {"meta_prompt": "official"}})
    for ours, name in [("eurosat", "EuroSAT"), ("oxford_pets", "OxfordPets")]:
        task = task_of(official, ours, "x")
        assert (task.title, task.paragraph) == (name, info[name])
    lab = task_of(official, "glyphs", "rendered characters")  # no official description: our title and paragraph
    assert lab.title and lab.paragraph and lab.paragraph not in info.values()
    assert task_of(C.from_dict({}), "eurosat", "x").title == "EuroSAT"  # the clean chat does not use it


# ------------------------------------------------------------------------------- a whole CLIP chain


COMPLETION_PIECES = [
    "assistant\n\nHere is a new template: a photo of a <category>, taken outdoors.",
    "Template: \"a <category> in the wild\" - I think this works!",
    "a <category> next to a <category>",
    "Sure! Prompt 2: a close-up photo of a {}.",
    "no placeholder and no colon at all",
    "a {broken <category> template",
    "",
    "Accuracy: 55",
    "Template: a photo of a <category>.",
    "assistant: the <category> seen from above:  a blurry <category>",
]


def official_clip_loop(outputs: list[list[str]], fitness, module, info: dict, topk: int):
    """The released CLIP loop's bookkeeping, written from OFFICIAL.md: the base prompt stored as the
    history's first entry, each step's completions joined into one text (newlines and "assistant"
    deleted, one line per completion and a trailing newline: row 6), one candidate per line (what
    follows the last colon; all of them scored and kept, duplicates and blanks too: row 7), the
    history sorted by NumPy's default argsort (row 22), p+ = argmax of the sorted accuracies, p- the
    last entry below it (row 11)."""
    stored, shown_first = "A photo of a <category>.", "a photo of a <category>."
    base_acc = fitness(stored.replace("<category>", "{}"))
    texts, accs = [stored], [base_acc]
    best, guidance, sent = base_acc, [], []
    for i, completions in enumerate(outputs):
        history = None if i == 0 else list(zip(texts, accs))
        sent.append(literal_meta_prompt(module, "EuroSAT", info, shown_first, base_acc, history, i, topk))
        joined = "".join(c.replace("\n", "").replace("assistant", "") + "\n" for c in completions)
        cleaned = [line.split(":")[-1] for line in joined.split("\n")]
        texts += cleaned
        accs += [fitness(c.replace("<category>", "{}")) for c in cleaned]
        order = np.argsort(np.array(accs))
        sorted_texts, sorted_accs = np.array(texts)[order], np.array(accs)[order]
        if sorted_accs[-1] > best:
            top = int(np.argmax(sorted_accs))
            best = sorted_accs[top]
            below = [j for j, a in enumerate(sorted_accs) if a < best][-1]
            guidance.append((str(sorted_texts[top]), str(sorted_texts[below])))
        else:
            guidance.append(guidance[-1] if guidance else None)
    return sent, list(zip(texts, accs)), guidance


def test_a_whole_clip_chain_under_the_official_protocol_equals_the_literal_loop(official_fixture):
    rng = random.Random(1)
    steps, n = 6, 10
    outputs = [[rng.choice(COMPLETION_PIECES) for _ in range(n)] for _ in range(steps)]
    fitness = hashed_fitness()
    info = fixture_module("utils/utils.py").dataset_info
    sent, history, guidance = official_clip_loop(outputs, fitness, fixture_module("utils/opt_utils.py"), info, 5)

    words = wording(CLIP)
    cfg = StepConfig(candidates=n, topk=5, alpha=0.0, wording=words, official_parser=True, keep_invalid=True, ranking="official",
                     generation_prompt=False)
    llm = FakeLLM([c for step_outputs in outputs for c in step_outputs])
    task = Task("eurosat", "x", "EuroSAT", info["EuroSAT"])
    state, _ = init_state("a photo of a {}.", fitness, official_base_shown("a photo of a {}.", words))
    for t in range(steps):
        state, _ = step(state, llm, fitness, task, cfg)
        g = state.guidance
        mine = None if g is None else tuple(display(next(c for c in state.history if c.template == x)) for x in (g.positive, g.negative))
        assert mine == guidance[t], f"step {t + 1}: p+/p- differ"
    assert [call[0] for call in llm.calls] == sent  # every meta-prompt, character for character
    assert [(display(c), c.accuracy) for c in state.history] == history
    assert len(history) == 1 + steps * (n + 1) > 16  # beyond 16 items NumPy's sort is not stable: equal all the same


# ------------------------------------------------------------------------------ a whole LLaVA chain


LLAVA_PIECES = [
    "assistant\n\nDescribe the object in this picture, then name it.",
    "assistant\n\nHere is my prompt: <<What is shown here?>> Name it briefly",
    "assistant\n\n",
    "assistant\n\nPrompt: \"Name the main thing.\"",
    "assistant\n\nWhat do you see:",
    "assistant\n\nDescribe the object in this picture, then name it.",
]


def official_llava_loop(outputs: list[list[str]], fitness, module, info: dict, base: str, topk: int, name: str = "toy"):
    """The released LLaVA loop's bookkeeping (OFFICIAL.md rows 18, 24): as the CLIP loop, with '<<'
    and '>>' deleted from each line and empty lines dropped (never scored, never in the history)."""
    base_acc = fitness(base)
    texts, accs, sent = [base], [base_acc], []
    for i, completions in enumerate(outputs):
        history = None if i == 0 else list(zip(texts, accs))
        sent.append(literal_meta_prompt(module, name, info, base, base_acc, history, i, topk))
        joined = "".join(c.replace("\n", "").replace("assistant", "") + "\n" for c in completions)
        cleaned = [line.split(":")[-1].replace("<<", "").replace(">>", "") for line in joined.split("\n")]
        kept = list(filter(None, cleaned))
        texts += kept
        accs += [fitness(k) for k in kept]
    return sent, list(zip(texts, accs))


@pytest.fixture
def llava_job(official_fixture, tmp_path, tiny_llava_dir, monkeypatch):
    """A (dataset, seed) of the toy image folder scored by the tiny LLaVA, the LLM scripted."""
    from conftest import toy_job_params

    import glov.jobs.optimize

    def params(protocol: dict):
        return toy_job_params(tmp_path, 3, 1, {"name": "tiny-llava", "path": str(tiny_llava_dir), "max_new_tokens": 3},
                              methods=["glov_wo_guidance"], steering={"alphas": [0.0]}, optimizer={"candidates": 5, "topk": 3},
                              protocol=protocol)

    def run(protocol: dict, outputs: list[list[str]]):
        from glov.io import read_json
        from glov.jobs.optimize import run_steps

        p = params(protocol)
        llm = FakeLLM([c for s in outputs for c in s])
        monkeypatch.setattr(glov.jobs.optimize, "load_llm", lambda _params: llm)
        steps = range(len(outputs) + 1)
        files = {(0.0, t): tmp_path / f"{len(protocol)}" / f"step_{t:03d}.json" for t in steps}
        run_steps(p, tmp_path / "manifest.json", None, 0, list(steps), {}, files)
        return p, [read_json(files[0.0, t]) for t in steps]

    return run


OFFICIAL_LLAVA = {"meta_prompt": "official", "parser": "official", "chat_header": "official", "invalid_candidates": "official",
                  "ranking": "official", "llava_prompt": "official", "token_budget": "official"}


def test_a_whole_llava_chain_under_the_official_protocol_equals_the_literal_loop(llava_job, tmp_path):
    from glov.io import read_json
    from glov.jobs.embed import Scorer

    rng = random.Random(2)
    outputs = [[rng.choice(LLAVA_PIECES) for _ in range(5)] for _ in range(3)]
    params, records = llava_job(OFFICIAL_LLAVA, outputs)
    base = wording(LLAVA).base_stored
    assert records[0]["base_template"] == base  # read from the (fixture) main_llava.py
    fitness = Scorer(params, read_json(tmp_path / "manifest.json")).fitness("train")  # deterministic: greedy answers
    # the toy folder has no official description: its name and one-line description stand in
    sent, history = official_llava_loop(outputs, fitness, fixture_module("utils/opt_utils_llava.py"), {"toy": "toy pets"}, base, 3)
    assert [r["meta_prompt"] for r in records[1:]] == sent  # character for character
    final = records[-1]["state"]["history"]
    assert [(c.get("shown", c["template"]), c["accuracy"]) for c in final] == history
    assert not any(c["template"].strip().lower().startswith("assistant") for c in final)


@pytest.mark.parametrize("protocol", [{}, {"chat_header": "official"}, {"chat_header": "official", "parser": "official"}, OFFICIAL_LLAVA],
                         ids=["clean", "header", "header+parser", "official"])
def test_the_assistant_header_is_never_a_candidate(llava_job, protocol):
    outputs = [LLAVA_PIECES[:5], LLAVA_PIECES[1:6]]
    _, records = llava_job(protocol, outputs)
    candidates = [c for record in records[1:] for c in record["candidates"]]
    assert not any(c.get("template", "").strip().lower().startswith("assistant") for c in candidates)
    assert not any(h["template"].strip().lower().startswith("assistant") for h in records[-1]["state"]["history"])
    assert sum(c["status"] == "scored" for c in candidates) >= 3  # the header is skipped, the prompt after it kept
