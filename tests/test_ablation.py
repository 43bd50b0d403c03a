"""The protocol ablation: variants, the paired bootstrap and the table (the workflow's plan is in
tests/test_workflow.py)."""

from types import SimpleNamespace

import pytest

from glov import config as C
from glov.ablation import bootstrap_difference, protocol_table, variant_protocol, with_variant
from glov.jobs.common import job_params
from glov.paths import of_variant
from glov.protocol import CLEAN, OFFICIAL, SWITCHES


def test_a_variant_is_clean_official_or_one_switch_alone():
    assert set(variant_protocol("clean").values()) == {CLEAN}
    assert set(variant_protocol("official").values()) == {OFFICIAL}
    alone = variant_protocol("parser")
    assert alone["parser"] == OFFICIAL and sum(v == OFFICIAL for v in alone.values()) == 1 and set(alone) == set(SWITCHES)
    with pytest.raises(ValueError, match="unknown protocol variant 'nope'"):
        variant_protocol("nope")
    params = with_variant(C.from_dict({"protocol": {"chat_header": "official"}}), "split_seed")
    assert params.protocol.split_seed == OFFICIAL and params.protocol.chat_header == CLEAN


def test_a_variant_job_takes_its_protocol_from_the_wildcard():
    config = C.validate({})
    assert job_params(SimpleNamespace(config=config, wildcards=SimpleNamespace(dataset="x"))).protocol == C.from_dict({}).protocol
    assert job_params(SimpleNamespace(config=config, wildcards=SimpleNamespace(variant="official"))).protocol.parser == OFFICIAL


def test_variant_paths_get_an_ablation_level():
    assert of_variant("results/runs/{dataset}/step.json") == "results/ablation/{variant}/runs/{dataset}/step.json"
    assert of_variant(["logs/x.log", "benchmarks/runs/x.tsv"]) == ["logs/ablation/{variant}/x.log", "benchmarks/runs/ablation/{variant}/x.tsv"]
    assert of_variant("results/x", ablated=False) == "results/x"


def test_the_paired_bootstrap_on_hand_built_correctness():
    same = ("1100110011", "1100110011", True)
    assert bootstrap_difference([same, same], 500, 0) == (0.0, 0.0, 0.0)  # paired: identical runs never differ
    assert bootstrap_difference([("1111111111", "0000000000", True)], 500, 0) == (100.0, 100.0, 100.0)
    one_flip = ("1" * 50 + "0" * 50, "1" * 49 + "0" * 51, True)  # one image better out of 100
    point, low, high = bootstrap_difference([one_flip], 2000, 0)
    assert point == pytest.approx(1.0) and low == 0.0 and high == pytest.approx(3.0)
    unpaired = bootstrap_difference([("1" * 50 + "0" * 50, "0" * 50 + "1" * 50, False)], 2000, 0)
    assert unpaired[0] == 0.0 and unpaired[1] < -10 and unpaired[2] > 10  # independent draws: two binomial spreads
    assert bootstrap_difference([one_flip], 2000, 0) == (point, low, high)  # seeded


def test_the_protocol_table_marks_intervals_that_exclude_zero():
    def rec(correct, test_set="t"):
        return {"test_acc": 100.0 * correct.count("1") / len(correct), "test_correct": correct, "test_set": test_set}

    chosen = {
        "clean": {("glov", "toy", 0): rec("0" * 40 + "1" * 60), ("glov", "toy", 1): rec("0" * 40 + "1" * 60)},
        "official": {("glov", "toy", 0): rec("1" * 100), ("glov", "toy", 1): rec("1" * 100)},
        "parser": {("glov", "toy", 0): rec("0" * 40 + "1" * 60), ("glov", "toy", 1): rec("0" * 40 + "1" * 60)},
    }
    md = protocol_table(chosen, ["toy"], [("glov", "GLOV"), ("glov_wo_guidance", "GLOV w/o")], 500, "# T")
    lines = md.splitlines()
    assert lines[2] == "| variant | dataset | GLOV | Δ vs clean [95 % CI] | GLOV w/o | Δ vs clean [95 % CI] |"
    assert lines[4] == "| clean | toy | 60.0 | (reference) | - | - |"
    assert lines[5].startswith("| official | toy | 100.0 | +40.0 [+") and lines[5].endswith("] * | - | - |")
    assert lines[6] == "| parser | toy | 60.0 | +0.0 [+0.0, +0.0] | - | - |"


def test_which_variants_need_their_own_data_or_chains():
    from glov.ablation import own_data, shares_chains

    clean_run = variant_protocol("clean")
    assert [own_data(v, clean_run) for v in ("clean", "final_set", "parser", "val_split", "split_seed", "official")] == [
        False, False, False, True, True, True]
    assert [shares_chains(v, clean_run) for v in ("clean", "final_set", "parser", "val_split")] == [True, True, False, False]
    assert shares_chains("official", variant_protocol("official")) and not own_data("official", variant_protocol("official"))
