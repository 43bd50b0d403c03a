"""The loop with FakeLLM and a hand-made fitness table: exact, fast, no models."""

import json

import pytest

from glov.llm import FakeLLM
from glov.optimizer import StepConfig, Task, init_state, run, step
from glov.optimizer.state import State

TASK = Task("pets", "photos of pets")
ACC = {"a photo of a {}.": 40.0, "a sketch of a {}.": 55.0, "a toy {}.": 30.0, "a cute {}.": 70.0, "an odd {}.": 50.0}


class TableFitness:
    def __init__(self, table):
        self.table, self.calls = table, []

    def __call__(self, template):
        self.calls.append(template)
        return self.table[template]


def test_invalid_candidates_are_recorded_and_never_scored():
    llm = FakeLLM(["a sketch of a <category>.", "no placeholder here", "", "<category> <category>"])
    fit = TableFitness(ACC)
    state, _ = init_state("a photo of a {}.", fit)
    state, rec = step(state, llm, fit, TASK, StepConfig(candidates=4))
    assert fit.calls == ["a photo of a {}.", "a sketch of a {}."]
    assert [c["status"] for c in rec["candidates"]] == ["scored", "invalid", "invalid", "invalid"]
    assert rec["n_failed"] == 3 and state.failures == 3
    assert [c.template for c in state.history] == ["a photo of a {}.", "a sketch of a {}."]


def test_duplicates_cost_nothing_and_do_not_grow_history():
    llm = FakeLLM(["a photo of a <category>.", "a sketch of a <category>.", "a sketch of a <category>."])
    fit = TableFitness(ACC)
    state, _ = init_state("a photo of a {}.", fit)
    state, rec = step(state, llm, fit, TASK, StepConfig(candidates=3))
    assert [c["status"] for c in rec["candidates"]] == ["duplicate", "scored", "duplicate"]
    assert fit.calls.count("a sketch of a {}.") == 1 and len(state.history) == 2


def test_guidance_starts_with_first_improvement_and_follows_new_bests():
    # step 1: sketch (55) beats base (40); step 2: toy (30) no gain; step 3: cute (70) new best
    llm = FakeLLM(["a sketch of a <category>.", "a toy <category>.", "a cute <category>."])
    fit = TableFitness(ACC)
    cfg = StepConfig(candidates=1, alpha=0.5, layer=2)
    state, _ = init_state("a photo of a {}.", fit)
    assert state.guidance is None
    state, r1 = step(state, llm, fit, TASK, cfg)
    assert r1["new_best"] and not r1["steering"]["active"] and llm.calls[-1][1] is None
    assert (state.guidance.positive, state.guidance.negative) == ("a sketch of a {}.", "a photo of a {}.")
    state, r2 = step(state, llm, fit, TASK, cfg)
    assert r2["steering"]["active"] and not r2["new_best"]
    steer = llm.calls[-1][1]
    expected = llm.mean_hidden("a sketch of a {}.", 2).vector - llm.mean_hidden("a photo of a {}.", 2).vector
    assert steer.alpha == 0.5 and steer.vector.layer == 2 and bool((steer.vector.vector == expected).all())
    state, r3 = step(state, llm, fit, TASK, cfg)
    # p- is the best template strictly below the new best: sketch (55), not base or toy
    assert (state.guidance.positive, state.guidance.negative) == ("a cute {}.", "a sketch of a {}.")
    assert state.best.accuracy == 70.0


def test_alpha_zero_never_steers():
    llm = FakeLLM(["a sketch of a <category>.", "a cute <category>."])
    fit = TableFitness(ACC)
    run("a photo of a {}.", 2, llm, fit, TASK, StepConfig(candidates=1, alpha=0.0))
    assert all(steer is None for _, steer in llm.calls)


def test_step_where_nothing_parses_keeps_state_and_guidance():
    fit = TableFitness(ACC)
    state, _ = init_state("a photo of a {}.", fit)
    state, _ = step(state, FakeLLM(["a sketch of a <category>."]), fit, TASK, StepConfig(candidates=1, alpha=1.0))
    junk = FakeLLM(["", "x" * 5000, "no template"])
    after, rec = step(state, junk, fit, TASK, StepConfig(candidates=3, alpha=1.0))
    assert rec["n_scored"] == 0 and rec["n_failed"] == 3
    assert after.guidance == state.guidance and after.best == state.best and after.history == state.history
    assert after.step == state.step + 1


def test_resuming_from_json_equals_one_uninterrupted_run():
    answers = ["a sketch of a <category>.", "a toy <category>.", "junk", "a cute <category>.", "an odd <category>."]
    cfg = StepConfig(candidates=2, alpha=1.0)
    final, records = run("a photo of a {}.", 3, FakeLLM(answers), TableFitness(ACC), TASK, cfg)

    llm, fit = FakeLLM(answers), TableFitness(ACC)
    state, rec = init_state("a photo of a {}.", fit)
    resumed = [rec]
    for _ in range(3):  # each step from the previous step's JSON, as Snakemake jobs do
        state = State.from_dict(json.loads(json.dumps(resumed[-1]))["state"])
        state, rec = step(state, llm, fit, TASK, cfg)
        resumed.append(rec)
    assert json.dumps(resumed, sort_keys=True) == json.dumps(records, sort_keys=True)
    assert final == state


def test_meta_prompt_of_each_step_reflects_history():
    llm = FakeLLM(["a sketch of a <category>.", "a toy <category>."])
    run("a photo of a {}.", 2, llm, TableFitness(ACC), TASK, StepConfig(candidates=1))
    second_prompt = llm.calls[1][0][1]["content"]
    assert "a sketch of a <category>. --- Accuracy: 55" in second_prompt
    assert "a photo of a <category>. --- Accuracy: 40" in second_prompt
