"""The GLOV loop as a pure ``step(state) -> state``; how many steps a job runs is the workflow's choice.

``init_state`` scores the base template (step 0). Each ``step`` asks the LLM for K candidates
(steered by alpha * (H(p+) - H(p-)) once a best has been improved on), parses them, scores the
valid new ones with the injected ``fitness``, and returns the new state plus a JSON record of
everything that happened. A step is ``propose`` (the chat, seeds and steering) then ``advance``
(parse, score, update), so ``step_chains`` can sample several chains' candidates in one batch
with results identical to stepping each chain alone. ``run`` just loops it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Sequence

from glov.llm import LLM, Request, Sampling, Steer, row_seed
from glov.official import Wording
from glov.protocol import CLEAN, OFFICIAL
from glov.optimizer.parse import MAX_CHARS, Parsed, parse_official, parse_official_question, parse_question, parse_template
from glov.optimizer.prompts import (QUESTION, TEMPLATE, display, meta_prompt, official_meta_prompt, to_display,
                                    ranked)
from glov.optimizer.state import Candidate, Guidance, State

Fitness = Callable[[str], float]


@dataclass(frozen=True)
class Task:
    dataset: str
    description: str
    title: str = ""  # the paper's name of the dataset (official meta-prompt; default: ``dataset``)
    paragraph: str = ""  # a paragraph-long description (official meta-prompt; default: ``description``)


@dataclass(frozen=True)
class StepConfig:
    candidates: int = 10
    topk: int = 5
    sampling: Sampling = Sampling()
    alpha: float = 0.0
    layer: int = 0
    seed: int = 0
    kind: str = TEMPLATE  # QUESTION for encoder-decoder VLMs: whole prompts, no placeholder
    semantics: str = "cached"  # or "recomputed": the official steering position (glov.generation)
    compound: bool = False  # the official alpha^n over a step's candidates
    # once the first improvement has happened, every request (steered or, at alpha = 0, not) uses this
    # if set (official: the guided loop's 75 tokens, stopping at EOS only)
    guided_sampling: Sampling | None = None
    generation_prompt: bool = True  # official: the chat template without the assistant header
    official_vector: bool = False  # the official steering vector (glov.llm.HFLLM.official_difference)
    wording: Wording | None = None  # the official meta-prompt, in the released code's words (glov.official)
    official_parser: bool = False  # glov.optimizer.parse.parse_official (answering VLMs: parse_official_question)
    keep_invalid: bool = False  # the official handling of invalid and duplicate candidates (score_completions)
    question_chars: int | None = MAX_CHARS  # the longest candidate prompt of an answering VLM (official LLaVA: None)
    ranking: str = CLEAN  # how ties rank (glov.optimizer.prompts.ranked)


def init_state(base_template: str, fitness: Fitness, shown: str | None = None) -> tuple[State, dict]:
    """Step 0: the base template scored. ``shown``: how the official history spells it (glov.official)."""
    base = Candidate(base_template, fitness(base_template), 0, shown)
    state = State(step=0, history=(base,), best=base)
    return state, {"step": 0, "base_template": base_template, "base_accuracy": base.accuracy, "state": state.to_dict()}


def step_seed(seed: int, step: int) -> int:
    """Independent, reproducible sampling seed per (run seed, step)."""
    return seed * 1_000_003 + step


def guidance_after(history: tuple[Candidate, ...], previous_best: Candidate, guidance: Guidance | None,
                   ranking: str = CLEAN) -> tuple[Candidate, Guidance | None]:
    """Guidance changes only when a candidate strictly beats the best so far: p+ is the best, p-
    the best strictly below it. Among equal accuracies the ranking decides; the released code
    takes p+ as the first of the best in its sorted history (``argmax``) and p- as the last
    entry below it."""
    order = ranked(history, ranking)
    top = order[-1].accuracy
    if top <= previous_best.accuracy:
        return previous_best, guidance
    best = next(c for c in order if c.accuracy == top) if ranking == OFFICIAL else order[-1]
    below = [c for c in order if c.accuracy < top]
    return best, Guidance(best.template, below[-1].template) if below else guidance


def parse_completion(raw: str, kind: str, official_parser: bool, question_chars: int | None) -> Parsed:
    """One completion as a candidate, by the parser the switches choose."""
    if kind == QUESTION:
        return parse_official_question(raw) if official_parser else parse_question(raw, question_chars)
    return parse_official(raw) if official_parser else parse_template(raw)


def score_completions(
    outputs: list[str], history: tuple[Candidate, ...], fitness: Fitness, step_index: int, max_words: int | None = None,
    kind: str = TEMPLATE, official_parser: bool = False, keep_invalid: bool = False, question_chars: int | None = MAX_CHARS,
) -> tuple[tuple[Candidate, ...], list[dict], int]:
    """Parse each completion and score the new templates: (history + new ones, one record per
    completion, number that could not be parsed). A template seen before costs nothing and must
    not crowd the history; ``max_words`` (LLM-Opt's limit) rejects longer templates.

    ``keep_invalid`` is the released code's behaviour: a duplicate is scored and appended again,
    and for templates what does not parse enters as its text (the clean parser's rejects as the
    empty template; a text without ``{}`` is scored as it is: every class gets the same text, so
    every image goes to class 0, about chance), and each step ends with one more empty template
    (the released parser's trailing blank line). The released LLaVA loop drops empty prompts instead."""
    history = list(history)
    records, failures = [], 0

    def add(template: str, shown: str | None, record: dict) -> None:
        cand = Candidate(template, fitness(template), step_index, shown)
        history.append(cand)
        records.append(record | {"template": cand.template, "accuracy": cand.accuracy} | ({"shown": shown} if shown is not None else {}))

    for raw in outputs:
        parsed = parse_completion(raw, kind, official_parser, question_chars)
        if parsed.template is not None and max_words is not None and len(parsed.template.split()) > max_words:
            parsed = Parsed(None, f"more than {max_words} words")
        if parsed.template is None:
            failures += 1
            if keep_invalid and kind == TEMPLATE:
                # the released parser's text as it is (it holds no <category>: it would have parsed)
                add((parsed.shown or "") if official_parser else "", None, {"raw": raw, "status": "scored_invalid", "reason": parsed.reason})
            else:
                records.append({"raw": raw, "status": "invalid", "reason": parsed.reason})
            continue
        known = next((c for c in history if c.template == parsed.template), None)
        if known is not None and not keep_invalid:
            records.append({"raw": raw, "status": "duplicate", "template": known.template, "accuracy": known.accuracy})
            continue
        add(parsed.template, parsed.shown, {"raw": raw, "status": "scored"} | ({"duplicate": True} if known is not None else {}))
    if keep_invalid and kind == TEMPLATE:
        add("", None, {"raw": "", "status": "scored_invalid", "reason": "the trailing blank line"})
    return tuple(history), records, failures


@dataclass(frozen=True)
class Proposal:
    """What step ``step`` asks the LLM: the chat, one seed per candidate, and the steering."""

    step: int
    request: Request
    steering: dict


def shown(template: str, state: State) -> str:
    """What the LLM was shown for a template of the history (the official steering vector is built
    from that text, as the released code keeps it)."""
    known = state.seen(template)
    return display(known) if known is not None else to_display(template)


def candidate_seeds(seed: int, dataset: str, step_index: int, n: int) -> tuple[int, ...]:
    """One generator per candidate, from (run seed, dataset, step, candidate). Alpha is left out on
    purpose: the chains of every alpha draw the same random numbers, so they stay identical until
    guidance first switches on, and their difference measures guidance alone."""
    return tuple(row_seed(seed, dataset, step_index, k) for k in range(n))


def propose(state: State, llm: LLM, task: Task, cfg: StepConfig) -> Proposal:
    t = state.step + 1
    if cfg.wording is not None:
        messages = official_meta_prompt(cfg.wording, task.title or task.dataset, task.paragraph or task.description, state.history,
                                        cfg.topk, t, cfg.ranking)
    else:
        messages = meta_prompt(task.dataset, task.description, state.history, cfg.topk, cfg.kind, cfg.ranking)
    steer = None
    steering_record = {"alpha": cfg.alpha, "layer": cfg.layer, "active": False}
    if cfg.alpha > 0 and state.guidance is not None:
        positive, negative = state.guidance.positive, state.guidance.negative
        if cfg.official_vector:
            vector = llm.official_difference(shown(positive, state), shown(negative, state), cfg.layer)
        else:
            vector = llm.mean_hidden(positive, cfg.layer) - llm.mean_hidden(negative, cfg.layer)
        steer = Steer(vector, cfg.alpha, cfg.semantics, cfg.compound)
        steering_record.update(active=True, positive=state.guidance.positive, negative=state.guidance.negative, norm=round(vector.norm, 4))
        if (cfg.semantics, cfg.compound) != ("cached", False):  # recorded where it departs from the default only
            steering_record.update(semantics=cfg.semantics, compound=cfg.compound)
    sampling = cfg.guided_sampling if state.guidance is not None and cfg.guided_sampling is not None else cfg.sampling
    request = Request(messages, candidate_seeds(cfg.seed, task.dataset, t, cfg.candidates), sampling, steer, cfg.generation_prompt)
    return Proposal(t, request, steering_record)


def advance(state: State, proposal: Proposal, outputs: list[str], fitness: Fitness, cfg: StepConfig) -> tuple[State, dict]:
    """Parse and score the LLM's answers to ``proposal``; the new state and the step's record."""
    t = proposal.step
    history, records, failures = score_completions(outputs, state.history, fitness, t, kind=cfg.kind,
                                                   official_parser=cfg.official_parser, keep_invalid=cfg.keep_invalid,
                                                   question_chars=cfg.question_chars)
    best, guidance = guidance_after(history, state.best, state.guidance, cfg.ranking)
    new_state = replace(state, step=t, history=history, best=best, guidance=guidance, failures=state.failures + failures)
    record = {
        "step": t,
        "meta_prompt": proposal.request.messages,
        "candidates": records,
        "n_scored": sum(r["status"] in ("scored", "scored_invalid") for r in records),
        "n_failed": failures,
        "steering": proposal.steering,
        "new_best": best != state.best,
        "state": new_state.to_dict(),
    }
    return new_state, record


def step_chains(chains: list[tuple[State, Fitness, StepConfig]], llm: LLM, task: Task) -> list[tuple[State, dict]]:
    """One step of several chains (e.g. one per alpha), their candidates sampled in one batch."""
    proposals = [propose(state, llm, task, cfg) for state, _, cfg in chains]
    outputs = llm.sample([p.request for p in proposals])
    return [advance(state, p, out, fitness, cfg) for (state, fitness, cfg), p, out in zip(chains, proposals, outputs)]


def step(state: State, llm: LLM, fitness: Fitness, task: Task, cfg: StepConfig) -> tuple[State, dict]:
    return step_chains([(state, fitness, cfg)], llm, task)[0]


def random_search(start: State, steps: int, llm: LLM, fitness: Fitness, task: Task, cfg: StepConfig) -> tuple[State, list[dict]]:
    """The control that calibrates GLOV w/o guidance: the same LLM, steps and candidate seeds, but
    every step asks with step 1's meta-prompt (the base template alone): no ranked feedback, no
    steering. Its step 1 is GLOV's step 1; whatever GLOV w/o guidance gains over it later comes
    from the ranked examples. All steps are sampled in one batch, then scored in order."""
    cfg = replace(cfg, alpha=0.0)
    first = propose(start, llm, task, cfg)
    proposals = [Proposal(t, replace(first.request, seeds=candidate_seeds(cfg.seed, task.dataset, t, cfg.candidates)), first.steering)
                 for t in range(1, steps + 1)]
    outputs = llm.sample([p.request for p in proposals])
    state, records = start, []
    for proposal, out in zip(proposals, outputs):
        state, record = advance(state, proposal, out, fitness, cfg)
        records.append(record)
    return state, records


def run(base_template: str, steps: int, llm: LLM, fitness: Fitness, task: Task, cfg: StepConfig) -> tuple[State, list[dict]]:
    """The whole optimisation in one process (``python -m glov run``, tests)."""
    state, first = init_state(base_template, fitness)
    records = [first]
    for _ in range(steps):
        state, rec = step(state, llm, fitness, task, cfg)
        records.append(rec)
    return state, records
