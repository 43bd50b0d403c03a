"""The protocol ablation: variants and the table (its intervals are glov.stats's, tested in
tests/test_stats.py; the workflow's plan is in tests/test_workflow.py)."""

from types import SimpleNamespace

import pytest

from glov import config as C
from glov.ablation import protocol_table, variant_protocol, with_variant
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


def test_the_protocol_table_gives_two_level_intervals_with_their_seeds():
    def rec(correct, test_set="t"):
        return {"test_acc": 100.0 * correct.count("1") / len(correct), "test_correct": correct, "test_set": test_set}

    seeds = range(5)
    clean = {("glov", "toy", s): rec("0" * 40 + "1" * 60) for s in seeds}
    chosen = {
        "clean": clean,
        "official": {("glov", "toy", s): rec("1" * 100) for s in seeds},  # 40 points better in every seed
        "parser": dict(clean),
        "meta_prompt": {("glov", "toy", s): rec("0" * (40 - 4 * s) + "1" * (60 + 4 * s)) for s in seeds},  # +0 .. +16: seeds disagree
        "split_seed": {("glov", "toy", s): rec("0" * 40 + "1" * 60, "t" if s == 0 else f"own{s}") for s in seeds},
    }
    md = protocol_table(chosen, ["toy"], [("glov", "GLOV"), ("glov_wo_guidance", "GLOV w/o")], 500, "# T")
    lines = md.splitlines()
    assert lines[2] == "| variant | dataset | GLOV | Δ vs clean [95 % CI] | GLOV w/o | Δ vs clean [95 % CI] |"
    assert lines[4] == "| clean | toy | 60.0 | (reference) | - | - |"
    assert lines[5].startswith("| official | toy | 100.0 | +40.0 [+") and lines[5].endswith("] * (5 seeds) | - | - |")
    assert lines[6] == "| parser | toy | 60.0 | +0.0 [+0.0, +0.0] (5 seeds) | - | - |"
    # the seeds' spread (0 to 16 points) is in the interval: a variant better in every seed is not yet a verdict
    low, high = (float(x) for x in lines[7].split("[")[1].split("]")[0].split(", "))
    assert lines[7].startswith("| meta_prompt | toy | 68.0 | +8.0 [") and low < 0 < high and "*" not in lines[7]
    assert lines[8].endswith("(5 seeds, unpaired images) | - | - |")  # seeds 1-4 scored their own test sets
    assert protocol_table(chosen, ["toy"], [("glov", "GLOV")], 500, "# T") == protocol_table(chosen, ["toy"], [("glov", "GLOV")], 500, "# T")


def test_which_variants_need_their_own_data_or_chains():
    from glov.ablation import own_data, shares_chains

    clean_run = variant_protocol("clean")
    assert [own_data(v, clean_run) for v in ("clean", "final_set", "parser", "val_split", "split_seed", "official")] == [
        False, False, False, True, True, True]
    assert [shares_chains(v, clean_run) for v in ("clean", "final_set", "parser", "val_split")] == [True, True, False, False]
    assert shares_chains("official", variant_protocol("official")) and not own_data("official", variant_protocol("official"))
