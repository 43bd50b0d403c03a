"""ProAPO (Qian et al., CVPR 2025): evolutionary prompt optimisation for one-shot classification.

Two stages over the same one-shot fitness set as GLOV. The *template stage* evolves a set of
templates (an ensemble) drawn from a pool the LLM writes in one query; the *description stage*
then evolves, per class, a set of descriptions drawn from the LLM's class descriptions (rule
describe_classes, the sentences CuPL scores: one query per class, before the search, kept raw).
A class's classifier weight is the mean of its template texts and chosen descriptions.

Each iteration makes children by edit operations (add / delete / replace one element) and by
evolution operations (crossover of two parents, then mutation); in the description stage the
operators touch only the classes the current best confuses most (class sampling). Candidates are
ranked by an entropy-constrained fitness, accuracy (%) minus ``entropy_weight`` x the mean
cross-entropy of the true class (nats): among prompts that fit the one-shot set equally, the one
that fits it with margin wins, which fights overfitting to a handful of images. The best
``population`` survive (elitism). Everything random draws from one seeded generator.

Where we follow the authors' released code (MorningStarOvO/ProAPO, read, not copied): its fitness
subtracts 10 x the cross-entropy (``entropy_weight`` = 10 by default). Its per-dataset configs
also weigh top-5 accuracy and a redundancy term of the class texts, and group each sampled class
with the classes it is confused with; we keep accuracy minus the entropy term and the simpler
most-confused sampling above. Pool size, population and iterations are ours, sized for a CPU
(params.yaml) or a GPU (config/paper.yaml).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from glov.config import ProAPOConfig
from glov.llm import LLM, Messages, Request, Sampling, row_seed
from glov.optimizer.parse import parse_template
from glov.optimizer.prompts import PLACEHOLDER, SYSTEM

EDITS = ("add", "delete", "replace")


@dataclass(frozen=True)
class Prompt:
    """One candidate: a template ensemble, and per class a tuple of chosen descriptions."""

    templates: tuple[str, ...]
    descriptions: tuple[tuple[str, ...], ...] = ()

    def class_texts(self, classnames: Sequence[str]) -> list[list[str]]:
        chosen = self.descriptions or ((),) * len(classnames)
        return [[t.replace("{}", name) for t in self.templates] + list(d) for name, d in zip(classnames, chosen)]


@dataclass(frozen=True)
class Scored:
    prompt: Prompt
    fitness: float
    accuracy: float


def fitness_score(logits: torch.Tensor, labels: torch.Tensor, entropy_weight: float) -> tuple[float, float]:
    """(entropy-constrained fitness, accuracy %) of [N, C] logits (already scaled)."""
    acc = 100.0 * float((logits.argmax(dim=-1) == labels).float().mean())
    return acc - entropy_weight * float(F.cross_entropy(logits, labels)), acc


def template_pool_messages(dataset: str, description: str) -> Messages:
    user = (f"Dataset: {dataset} ({description}).\nWrite one prompt template a zero-shot image classifier could use on this "
            f"dataset: a short sentence with {PLACEHOLDER} where the class name goes. Output only the template.")
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def template_pool(llm: LLM, dataset: str, description: str, base_template: str, size: int, sampling: Sampling, seed: int) -> tuple[list[str], list[str]]:
    """The candidate templates of one LLM query (``size`` samples, one request), the base first,
    without repeats; and every raw answer (kept in the result, like the description methods')."""
    seeds = tuple(row_seed(seed, "proapo", "templates", k) for k in range(size))
    raw = llm.sample([Request(template_pool_messages(dataset, description), seeds, sampling)])[0]
    parsed = [parse_template(answer).template for answer in raw]
    return list(dict.fromkeys([base_template, *(t for t in parsed if t)])), list(raw)


# ---- operators (pure given the generator) ------------------------------------------------------

def edit(members: tuple[str, ...], pool: Sequence[str], op: str, rng: random.Random, max_size: int, min_size: int = 0) -> tuple[str, ...]:
    """Add a pool element not yet in ``members``, delete one, or replace one with such an element.
    An edit that cannot apply (nothing left to add, at the size limit) returns ``members``."""
    unused = [p for p in pool if p not in members]
    if op == "add" and unused and len(members) < max_size:
        return members + (rng.choice(unused),)
    if op == "delete" and len(members) > min_size:
        drop = rng.randrange(len(members))
        return members[:drop] + members[drop + 1:]
    if op == "replace" and unused and members:
        at = rng.randrange(len(members))
        return members[:at] + (rng.choice(unused),) + members[at + 1:]
    return members


def crossover(a: tuple[str, ...], b: tuple[str, ...], rng: random.Random, min_size: int = 0) -> tuple[str, ...]:
    """Uniform crossover of two sets: each element of either parent is inherited with probability 1/2
    (in the parents' order); a child smaller than ``min_size`` takes the first parent's first element."""
    child = tuple(x for x in dict.fromkeys(a + b) if rng.random() < 0.5)
    return child + tuple(x for x in a if x not in child)[: max(0, min_size - len(child))]


def mutate(members: tuple[str, ...], pool: Sequence[str], rng: random.Random, rate: float) -> tuple[str, ...]:
    """Each element is replaced, with probability ``rate``, by a pool element not in the set."""
    out = list(members)
    for i in range(len(out)):
        unused = [p for p in pool if p not in out]
        if unused and rng.random() < rate:
            out[i] = rng.choice(unused)
    return tuple(out)


def confused_classes(logits: torch.Tensor, labels: torch.Tensor, k: int) -> list[int]:
    """The ``k`` classes the prompt confuses most: by images wrongly given to or taken from the
    class, then by the cross-entropy of the class's own images (so a prompt without errors still
    points at its least certain classes); ties go to the lower index."""
    n_classes = logits.shape[1]
    wrong = logits.argmax(dim=-1) != labels
    errors = torch.bincount(labels[wrong], minlength=n_classes) + torch.bincount(logits.argmax(dim=-1)[wrong], minlength=n_classes)
    loss = torch.zeros(n_classes).index_add_(0, labels, F.cross_entropy(logits, labels, reduction="none"))
    order = sorted(range(n_classes), key=lambda c: (-int(errors[c]), -float(loss[c]), c))
    return sorted(order[:k])


# ---- the search -----------------------------------------------------------------------------


class Search:
    """The evolutionary loop shared by both stages; ``logits_of`` scores one prompt, ``log`` keeps
    one record per iteration. Scores are cached by prompt (a revisited prompt costs nothing)."""

    def __init__(self, logits_of: Callable[[Prompt], torch.Tensor], labels: torch.Tensor, cfg: ProAPOConfig, rng: random.Random):
        self.logits_of, self.labels, self.cfg, self.rng = logits_of, labels, cfg, rng
        self._scores: dict[Prompt, Scored] = {}
        self.log: list[dict] = []

    def score(self, prompt: Prompt) -> Scored:
        if prompt not in self._scores:
            self._scores[prompt] = Scored(prompt, *fitness_score(self.logits_of(prompt), self.labels, self.cfg.entropy_weight))
        return self._scores[prompt]

    def survivors(self, scored: Sequence[Scored]) -> list[Scored]:
        """The best ``population`` distinct prompts; ties go to the one met first (a stable sort)."""
        unique = list({s.prompt: s for s in reversed(scored)}.values())[::-1]
        return sorted(unique, key=lambda s: -s.fitness)[: self.cfg.population]

    def evolve(self, stage: str, population: list[Scored], iterations: int, children: Callable[[list[Scored]], list[Prompt]]) -> list[Scored]:
        for it in range(1, iterations + 1):
            offspring = [self.score(p) for p in children(population)]
            population = self.survivors(population + offspring)
            self.log.append({"stage": stage, "iteration": it, "children": len(offspring),
                             "best_fitness": round(population[0].fitness, 4), "best_accuracy": round(population[0].accuracy, 4)})
        return population

    def pair(self, population: list[Scored]) -> tuple[Scored, Scored]:
        return self.rng.choice(population), self.rng.choice(population)


def template_stage(search: Search, pool: Sequence[str]) -> list[Scored]:
    """Start from each pool template alone, then evolve template ensembles."""
    cfg, rng = search.cfg, search.rng
    start = search.survivors([search.score(Prompt((t,))) for t in pool])

    def children(population: list[Scored]) -> list[Prompt]:
        out = [Prompt(edit(s.prompt.templates, pool, rng.choice(EDITS), rng, cfg.max_templates, min_size=1)) for s in population]
        for _ in population:
            a, b = search.pair(population)
            out.append(Prompt(mutate(crossover(a.prompt.templates, b.prompt.templates, rng, min_size=1), pool, rng, cfg.mutation_rate)[: cfg.max_templates]))
        return out

    return search.evolve("templates", start, cfg.template_iterations, children)


def description_stage(search: Search, best: Prompt, pools: Sequence[Sequence[str]]) -> list[Scored]:
    """From the best template ensemble with no descriptions, evolve per-class description sets; each
    iteration's operators touch only the classes the current best confuses most."""
    cfg, rng = search.cfg, search.rng
    start = replace(best, descriptions=((),) * len(pools))

    def with_classes(prompt: Prompt, classes: Sequence[int], change: Callable[[int, tuple[str, ...]], tuple[str, ...]]) -> Prompt:
        chosen = list(prompt.descriptions)
        for c in classes:
            chosen[c] = change(c, chosen[c])
        return replace(prompt, descriptions=tuple(chosen))

    def children(population: list[Scored]) -> list[Prompt]:
        classes = confused_classes(search.logits_of(population[0].prompt), search.labels, cfg.classes_per_iteration)
        out = [with_classes(s.prompt, classes, lambda c, d: edit(d, pools[c], rng.choice(EDITS), rng, cfg.max_descriptions)) for s in population]
        for _ in population:
            a, b = search.pair(population)
            child = with_classes(a.prompt, classes, lambda c, d: crossover(d, b.prompt.descriptions[c], rng)[: cfg.max_descriptions])
            out.append(with_classes(child, classes, lambda c, d: mutate(d, pools[c], rng, cfg.mutation_rate)))
        return out

    return search.evolve("descriptions", [search.score(start)], cfg.description_iterations, children)


def proapo(template_candidates: Sequence[str], description_pools: Sequence[Sequence[str]], logits_of: Callable[[Prompt], torch.Tensor],
           labels: torch.Tensor, cfg: ProAPOConfig, seed: int) -> tuple[Prompt, dict]:
    """Run both stages; returns the best prompt by fitness and a record of the search."""
    search = Search(logits_of, labels, cfg, random.Random(row_seed(seed, "proapo", "search")))
    templates = template_stage(search, template_candidates)
    final = description_stage(search, templates[0].prompt, description_pools)
    best = final[0]
    return best.prompt, {"fitness": round(best.fitness, 4), "train_acc": round(best.accuracy, 4),
                         "template_stage_best": list(templates[0].prompt.templates), "iterations": search.log,
                         "evaluated": len(search._scores)}
