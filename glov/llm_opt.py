"""LLM-Opt (Liu et al., CVPR 2024): black-box hill climbing of the template with an LLM.

Unlike GLOV, the LLM never sees accuracies and is not steered: it is shown the current pool of good
templates and the bad ones found so far, and asked for better ones. Each iteration asks for ``pool``
new templates (under ``max_words`` words), scores them with the same 1-shot fitness as GLOV, and
keeps the best ``pool`` as the good list. The feedback lists are re-sent every iteration (the
conversation is summarised rather than replayed, so its length stays fixed).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Sequence

from glov.config import LLMOptConfig
from glov.llm import LLM, Messages, Sampling
from glov.optimizer import Fitness, Task, score_completions, step_seed
from glov.optimizer.prompts import PLACEHOLDER, SYSTEM, ranked, to_display
from glov.optimizer.state import Candidate


def feedback_prompt(task: Task, good: Sequence[Candidate], bad: Sequence[Candidate], max_words: int) -> Messages:
    """Good templates best first, bad ones worst first; no accuracies (LLM-Opt's black-box setting)."""
    lines = [f"Dataset: {task.dataset}.", f"Description: {task.description}.", "Templates that work well:"]
    lines += [f"- {to_display(c.template)}" for c in good]
    if bad:
        lines += ["Templates that work badly:"] + [f"- {to_display(c.template)}" for c in bad]
    lines.append(
        f"Write one new template, under {max_words} words, with {PLACEHOLDER} in it exactly once, that works better "
        f'than the good ones. Output only the template, e.g. "a photo of a {PLACEHOLDER}."'
    )
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "\n".join(lines)}]


def good_and_bad(history: Sequence[Candidate], pool: int) -> tuple[list[Candidate], list[Candidate]]:
    """The best ``pool`` (best first) and up to ``pool`` of the worst others (worst first)."""
    order = ranked(history)
    good = list(reversed(order[-pool:]))
    return good, [c for c in order[:pool] if c not in good]


def llm_opt(llm: LLM, fitness: Fitness, task: Task, base_template: str, cfg: LLMOptConfig, sampling: Sampling, seed: int) -> dict:
    """Run the hill climb; the record holds every iteration and the best template by 1-shot train
    accuracy (ties: the earlier one), which is what LLM-Opt returns."""
    history: tuple[Candidate, ...] = (Candidate(base_template, round(fitness(base_template), 4), 0),)
    iterations, failures = [], 0
    for it in range(1, cfg.iterations + 1):
        good, bad = good_and_bad(history, cfg.pool)
        messages = feedback_prompt(task, good, bad, cfg.max_words)
        outputs = llm.generate(messages, cfg.pool, sampling, step_seed(seed, it))
        history, records, failed = score_completions(outputs, history, fitness, it, cfg.max_words)
        failures += failed
        iterations.append({"iteration": it, "good": [c.template for c in good], "bad": [c.template for c in bad], "candidates": records})
    best = ranked(history)[-1]
    return {"best": best.template, "best_train_acc": best.accuracy, "failures": failures,
            "history": [asdict(c) for c in history], "iterations": iterations}
