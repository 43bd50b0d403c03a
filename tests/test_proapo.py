"""ProAPO (glov.proapo): each operator on a hand-built case, the entropy-constrained fitness, the
class sampling, and a whole search with a scripted LLM that must find a planted description."""

import math
import random

import pytest
import torch

from glov.config import ProAPOConfig

from glov.llm import FakeLLM, Sampling
from glov.proapo import (Prompt, confused_classes, crossover, edit, fitness_score, mutate, proapo,
                         template_pool)

POOL = ("a", "b", "c", "d")


def test_edit_adds_deletes_and_replaces_one_element():
    rng = random.Random(0)
    added = edit(("a",), POOL, "add", rng, max_size=3)
    assert len(added) == 2 and added[0] == "a" and added[1] in POOL[1:]
    assert edit(("a", "b"), POOL, "add", rng, max_size=2) == ("a", "b")  # at the size limit
    deleted = edit(("a", "b", "c"), POOL, "delete", rng, max_size=3)
    assert len(deleted) == 2 and set(deleted) < {"a", "b", "c"}
    assert edit(("a",), POOL, "delete", rng, max_size=3, min_size=1) == ("a",)  # a template set never empties
    replaced = edit(("a", "b"), POOL, "replace", rng, max_size=2)
    assert len(replaced) == 2 and len(set(replaced) & {"a", "b"}) == 1 and set(replaced) - {"a", "b"} <= {"c", "d"}
    assert edit(POOL, POOL, "replace", rng, max_size=4) == POOL  # nothing unused to bring in


def test_crossover_inherits_from_the_parents_and_keeps_a_minimum():
    rng = random.Random(1)
    children = [crossover(("a", "b"), ("c", "d"), rng) for _ in range(200)]
    assert all(set(c) <= set(POOL) and len(set(c)) == len(c) for c in children)
    assert {len(c) for c in children} == {0, 1, 2, 3, 4}  # each element with probability 1/2
    assert all(len(crossover(("a",), ("b",), random.Random(s), min_size=1)) >= 1 for s in range(50))
    assert crossover(("a",), ("a",), random.Random(0), min_size=1) == ("a",)


def test_mutation_replaces_at_its_rate_with_unused_elements():
    assert mutate(("a", "b"), POOL, random.Random(0), rate=0.0) == ("a", "b")
    mutated = mutate(("a", "b"), POOL, random.Random(0), rate=1.0)
    assert set(mutated) == {"c", "d"}  # both replaced, never by an element already in the set


def test_the_fitness_is_accuracy_minus_weighted_cross_entropy():
    labels = torch.tensor([0, 1])
    sure = torch.tensor([[5.0, 0.0], [0.0, 5.0]])
    unsure = torch.tensor([[0.1, 0.0], [0.0, 0.1]])
    f_sure, acc_sure = fitness_score(sure, labels, 1.0)
    f_unsure, acc_unsure = fitness_score(unsure, labels, 1.0)
    assert acc_sure == acc_unsure == 100.0
    assert f_sure == pytest.approx(100.0 - math.log(1 + math.exp(-5.0)))
    assert f_unsure == pytest.approx(100.0 - math.log(1 + math.exp(-0.1)))
    assert f_sure > f_unsure  # the same accuracy, won with margin
    assert fitness_score(unsure, labels, 0.0) == (100.0, 100.0)


def test_class_sampling_picks_the_most_confused_classes():
    # image 0 (class 0) goes to class 2; the others are right, class 1's image barely
    logits = torch.tensor([[0.0, 0.0, 3.0], [0.0, 0.2, 0.1], [0.0, 0.0, 4.0], [5.0, 0.0, 0.0]])
    labels = torch.tensor([0, 1, 2, 0])
    assert confused_classes(logits, labels, 2) == [0, 2]  # the error's two classes
    assert confused_classes(logits, labels, 3) == [0, 1, 2]
    right = torch.tensor([[3.0, 0.0], [0.0, 0.1]])
    assert confused_classes(right, torch.tensor([0, 1]), 1) == [1]  # no error: the least certain class


def test_the_template_pool_is_one_query_of_parsed_templates():
    llm = FakeLLM(["a sketch of a <category>.", "no placeholder here", "a sketch of a <category>.", "1. art of the {class}"])
    pool, raw = template_pool(llm, "toy", "toy things", "a photo of a {}.", 4, Sampling(), seed=0)
    assert len(llm.calls) == 1 and len(raw) == 4
    assert pool == ["a photo of a {}.", "a sketch of a {}.", "art of the {}"]


CLASSES = ["cat", "dog", "fox"]
PLANTED = "a fox has a bushy tail"
# a toy text encoder: each text points at one class's images (a decoy for fox points at dog)
VECTORS = {"cat": [1.0, 0.0, 0.0], "dog": [0.0, 1.0, 0.0], "fox": [0.55, 0.45, 0.0], PLANTED: [0.0, 0.0, 1.0],
           "a fox with a long nose": [0.0, 1.0, 0.0], "cats have whiskers": [1.0, 0.0, 0.0], "dogs bark": [0.0, 1.0, 0.0]}


def toy_logits(prompt: Prompt, features: torch.Tensor) -> torch.Tensor:
    weights = []
    for texts in prompt.class_texts(CLASSES):
        vecs = torch.stack([torch.tensor(next(v for k, v in VECTORS.items() if k in t) if t not in VECTORS else VECTORS[t]) for t in texts])
        weights.append(torch.nn.functional.normalize(torch.nn.functional.normalize(vecs, dim=-1).mean(0), dim=0))
    return 10.0 * features @ torch.stack(weights).T


def test_a_whole_search_finds_the_planted_description():
    features = torch.eye(3).repeat(2, 1)
    labels = torch.tensor([0, 1, 2] * 2)
    pools = [["cats have whiskers"], ["dogs bark"], ["a fox with a long nose", PLANTED]]
    cfg = ProAPOConfig(population=3, template_iterations=2, description_iterations=4, max_templates=2, max_descriptions=2,
                         classes_per_iteration=1, entropy_weight=1.0)
    start = toy_logits(Prompt(("a photo of a {}.",)), features)
    assert (start.argmax(-1) == labels).float().mean() < 1  # the fox images are lost with the name alone
    best, record = proapo(["a photo of a {}."], pools, lambda p: toy_logits(p, features), labels, cfg, seed=0)
    assert PLANTED in best.descriptions[2]
    assert record["train_acc"] == 100.0 and record["iterations"][-1]["stage"] == "descriptions"
    again, _ = proapo(["a photo of a {}."], pools, lambda p: toy_logits(p, features), labels, cfg, seed=0)
    assert again == best  # seeded: the same search
