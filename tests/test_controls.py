"""The lab's controls (issue: the lab as a measuring instrument): random search, the test-chosen
oracle, and the two-level bootstrap intervals lab.md reports (glov.stats, tests/test_stats.py)."""

import pytest

from glov.jobs.evaluate import scored_templates
from glov.llm import FakeLLM
from glov.optimizer import StepConfig, Task, init_state, random_search, run
from glov.stats import Interval
from glov.tables import Controls, lab_controls, lab_table

SCORES = {"a photo of a {}.": 50.0, "a sketch of a {}.": 60.0, "art of the {}.": 70.0, "a drawing of a {}.": 65.0}


def fitness(template: str) -> float:
    return SCORES.get(template, 10.0)


def test_random_search_asks_step_one_every_step_with_the_same_seeds_as_glov():
    answers = ["a sketch of a <category>.", "art of the <category>.", "a drawing of a <category>.", "nothing"]
    task, cfg = Task("toy", "toy things"), StepConfig(candidates=2, topk=3)
    start, _ = init_state("a photo of a {}.", fitness)
    llm = FakeLLM(answers)
    state, records = random_search(start, 3, llm, fitness, task, cfg)
    prompts = [messages for messages, _ in llm.calls]
    assert len(prompts) == 3 and prompts[0] == prompts[1] == prompts[2]  # no feedback: step 1's meta-prompt every step
    assert all(steer is None for _, steer in llm.calls)
    assert [r["step"] for r in records] == [1, 2, 3] and state.step == 3
    assert sum(len(r["candidates"]) for r in records) == 3 * 2  # GLOV's budget: steps x candidates
    glov_llm = FakeLLM(answers)
    _, glov_records = run("a photo of a {}.", 1, glov_llm, fitness, task, cfg)
    assert glov_llm.calls[0][0] == prompts[0]  # step 1 is GLOV's step 1
    assert [c.template for c in state.history] == ["a photo of a {}.", "a sketch of a {}.", "art of the {}.", "a drawing of a {}."]


def test_the_oracle_pool_is_every_single_template_any_method_scored():
    steps = [{"state": {"history": [{"template": "a photo of a {}.", "accuracy": 1, "step": 0},
                                    {"template": "a sketch of a {}.", "accuracy": 1, "step": 1}]}}]
    baselines = [
        {"method": "s_temp", "templates": ["a photo of a {}."]},
        {"method": "llm_opt", "templates": ["x {}"], "search": {"history": [{"template": "y {}"}]}},
        {"method": "proapo", "templates": ["z {}"], "search": {"template_candidates": ["w {}", "no placeholder"]}},
        {"method": "random_search", "templates": ["v {}"], "candidates": [[{"template": "u {}"}, {"template": None}]]},
        {"method": "cupl"},
    ]
    pool = scored_templates(steps, baselines)
    assert pool == sorted(["a photo of a {}.", "a sketch of a {}.", "x {}", "y {}", "z {}", "w {}", "v {}", "u {}"])
    with_ds_temp = scored_templates(steps, [{"method": "ds_temp", "templates": []}])
    assert len(with_ds_temp) > 60  # the 80 hand-written templates, each alone


def record(bits: str, test_set: str = "t", acc: float | None = None) -> dict:
    return {"test_correct": bits, "test_set": test_set, "test_acc": acc if acc is not None else 100.0 * bits.count("1") / len(bits)}


def test_lab_controls_pair_seeds_and_reuse_a_method_run_once():
    n, seeds = 400, range(5)
    glov = {s: record("1" * (n // 2 + 40) + "0" * (n // 2 - 40)) for s in seeds}  # 60 %
    wo = {s: record("1" * (n // 2) + "0" * (n // 2)) for s in seeds}  # 50 %, a subset of GLOV's right answers
    records = {("glov", "a", s): glov[s] for s in seeds} | {("glov_wo_guidance", "a", s): wo[s] for s in seeds}
    records[("s_temp", "a", 0)] = record("1" * (n // 2 + 40) + "0" * (n // 2 - 40))  # run once: the same in every seed
    records |= {("random_search", "a", s): record("1" * (n // 2) + "0" * (n // 2)) for s in seeds}
    oracles = [{"dataset": "a", "test_acc": 80.0, "n_templates": 30, "wordings": [["{}", 40.0], ["a photo of a {}.", 50.0]]},
               {"dataset": "a", "test_acc": 70.0, "n_templates": 31, "wordings": [["{}", 44.0], ["a photo of a {}.", 50.0]]}]
    c = lab_controls(records, oracles, "a", list(seeds), resamples=500)
    assert c.oracle == 75.0 and c.n_templates == 31 and c.wordings == {"{}": 42.0, "a photo of a {}.": 50.0}
    assert lab_controls(records, oracles[:1] + [{"dataset": "a", "test_acc": 70.0, "n_templates": 31}], "a", list(seeds), 10).wordings == {
        "{}": 40.0, "a photo of a {}.": 50.0}  # an oracle file written before the wordings is left out of their mean
    iv = c.intervals["glov", "glov_wo_guidance"]
    assert iv.mean == pytest.approx(10.0) and 0 < iv.low < 10 < iv.high < 20 and iv.n_seeds == 5  # paired: only the 40 images that differ vary
    steering = c.intervals["glov", "s_temp"]
    assert (steering.mean, steering.low, steering.high, steering.n_a, steering.n_b) == (0.0, 0.0, 0.0, 5, 0)  # identical answers: no uncertainty left
    assert c.intervals["glov_wo_guidance", "s_temp"].mean == pytest.approx(-10.0)
    assert (c.intervals["glov_wo_guidance", "random_search"].low, c.intervals["glov_wo_guidance", "random_search"].high) == (0.0, 0.0)
    assert lab_controls(records, oracles, "a", list(seeds), resamples=500) == c  # seeded by what it compares


def interval(mean: float, low: float, high: float, seeds: int = 5) -> Interval:
    return Interval(mean, low, high, seeds, 0, True, seeds > 1, True)


def test_lab_table_reports_oracle_headroom_and_counts_only_intervals_that_exclude_zero():
    rows = [{"method": m, "dataset": "a", "mean": v, "std": 0.0, "n_seeds": 2} for m, v in (("s_temp", 50.0), ("glov", 60.0), ("glov_wo_guidance", 55.0))]
    controls = {"a": Controls(75.0, 31, {("glov", "s_temp"): interval(10.0, 6.0, 14.0), ("glov", "glov_wo_guidance"): interval(5.0, -1.0, 11.0)})}
    md = lab_table(rows, {"a": 10.0}, {}, "# H", controls)
    assert "| a | 75.0 | 31 | +15.0 | +10.0 [+6.0, +14.0] * (5 seeds) | - | +5.0 [-1.0, +11.0] (5 seeds) | - |" in md
    assert "GLOV beats S-TEMP (+10.0 [+6.0, +14.0] * (5 seeds))." in md
    assert "GLOV cannot be told apart from GLOV w/o guidance (+5.0 [-1.0, +11.0] (5 seeds))." in md
    assert "GLOV w/o guidance beats S-TEMP (+5.0 points, no interval)." in md
    assert "## Diagnostic wordings" not in md  # none recorded: no table
    assert "| a | 4.00 | - | 6.00 | - | 6.00 | no |" in md  # half-widths against the 1.5-point design target
    narrow = lab_table(rows, {"a": 10.0}, {}, "# H", {"a": Controls(75.0, 31, {("glov", "s_temp"): interval(1.0, -0.2, 2.2)})})
    assert "| a | 1.20 | - | - | - | 1.20 | yes |" in narrow
    worded = lab_table(rows, {"a": 10.0}, {}, "# H", {"a": Controls(75.0, 31, {}, {"{}": 42.0, "a drawing of a {}.": 50.5})})
    assert "| task | `{}` | `a drawing of a {}.` | spread (max − min) |" in worded and "| a | 42.0 | 50.5 | 8.5 |" in worded
    same = lab_table(rows, {"a": 10.0}, {}, "# H", {"a": Controls(None, 0, {("glov", "s_temp"): interval(0.0, 0.0, 0.0)})})
    assert "GLOV answers every test image as S-TEMP (+0.0 [+0.0, +0.0] (5 seeds))." in same and "| a | - | 0 | - |" in same
    one = lab_table(rows, {"a": 10.0}, {}, "# H", {"a": Controls(None, 0, {("glov", "s_temp"): interval(3.0, 1.0, 5.0, seeds=1)})})
    assert "GLOV − S-TEMP: +3.0 [+1.0, +5.0] * (1 seed: images only)." in one
    assert "| a | 2.00 | - | - | - | 2.00 | no (1 seed: images only) |" in one  # no claim on the resolution from one seed
    assert one.rstrip().endswith("The seeds are too few to generalise: with one seed an interval covers the test images only and "
                                 "cannot say whether one method is better.")
    assert "GLOV beats" not in one
