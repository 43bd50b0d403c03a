"""Meta-prompts: the chat GLOV sends to the LLM at each step (pure functions, no I/O)."""

from __future__ import annotations

import re
from typing import Sequence

from glov.official import Wording
from glov.protocol import CLEAN, OFFICIAL
from glov.optimizer.state import Candidate

PLACEHOLDER = "<category>"

SYSTEM = (
    "You help find prompt templates for zero-shot image classification with CLIP. A template is one short "
    f"sentence containing the placeholder {PLACEHOLDER}, which is replaced by each class name; CLIP compares "
    "each image with these sentences, so better templates give higher accuracy."
)

ASK = (
    f"Give one new template in the same format as above, with {PLACEHOLDER} in it exactly once, that reaches "
    f'a higher accuracy than all of them. Output only the template, e.g. "a photo of a {PLACEHOLDER}."'
)


QUESTION_SYSTEM = (
    "You help find the prompt that makes a vision-language assistant name the object in an image. The assistant sees "
    "the image and the prompt and answers in words; its answer is matched to the class names, so better prompts give "
    "higher accuracy."
)

QUESTION_ASK = (
    "Give one new prompt in the same format as above that reaches a higher accuracy than all of them. "
    'Output only the prompt, e.g. "What is the main object in this image? Answer with its name."'
)

TEMPLATE, QUESTION = "template", "question"  # what the optimiser writes: a class template, or a whole prompt


BRACES = re.compile(r"\{\s*\}")  # what the released scorer takes for a placeholder (``{}``, ``{ }``)


def to_display(template: str) -> str:
    """Templates are stored with ``{}``; the LLM sees ``<category>``."""
    return template.replace("{}", PLACEHOLDER)


def display(c: Candidate) -> str:
    """What the LLM is shown for a candidate: its own text where the official protocol kept one."""
    return c.shown if c.shown is not None else to_display(c.template)


def ranked(history: Sequence[Candidate], ranking: str = CLEAN) -> list[Candidate]:
    """Ascending accuracy. Clean: among ties the earlier-found template ranks higher, then text
    order. Official (protocol.ranking): NumPy's default ``argsort`` of the accuracies in the order
    they were found, whatever order it gives among ties (for up to 16 items the later-found ranks
    higher; beyond that, its introsort decides)."""
    if ranking == OFFICIAL:
        import numpy as np

        return [history[i] for i in np.argsort(np.array([c.accuracy for c in history], dtype=np.float64))]
    return sorted(history, key=lambda c: (c.accuracy, -c.step, c.template))


def in_context_examples(history: Sequence[Candidate], topk: int, ranking: str = CLEAN) -> list[Candidate]:
    """Bottom-k then top-k of the whole history, worst first, k = min(topk, |history| // 2)."""
    order = ranked(history, ranking)
    k = min(topk, len(order) // 2)
    return order[:k] + order[len(order) - k :] if k else []


def meta_prompt(dataset: str, description: str, history: Sequence[Candidate], topk: int, kind: str = TEMPLATE,
                ranking: str = CLEAN) -> list[dict[str, str]]:
    """This project's chat: a system message asking for one short template, then one user message
    with the dataset, its one-line description and the in-context examples worst to best."""
    header = f"Dataset: {dataset}.\nDescription: {description}.\n"
    system, ask, noun = (SYSTEM, ASK, "Templates") if kind == TEMPLATE else (QUESTION_SYSTEM, QUESTION_ASK, "Prompts")
    examples = in_context_examples(history, topk, ranking) or list(history[:1])  # first step: the base template alone
    lines = [f"{i}: {display(c)} --- Accuracy: {round(c.accuracy)}" for i, c in enumerate(examples, 1)]
    body = f"{noun} and their accuracies, from worst to best:\n" + "\n".join(lines) + "\n"
    return [{"role": "system", "content": system}, {"role": "user", "content": header + body + ask}]


def official_meta_prompt(wording: Wording, title: str, paragraph: str, history: Sequence[Candidate], topk: int, step: int,
                         ranking: str = CLEAN) -> list[dict[str, str]]:
    """The released code's chat for step ``step`` (1 = the first LLM step), in the released code's
    own words (:mod:`glov.official`, read from its source at run time). The first step shows the
    base prompt and its accuracy at full precision; later steps the best and the worst
    k = min(topk, int(len(history) * 0.5)) examples of the whole history, each block ascending,
    accuracies cut with ``int()``, the blocks sliced as the released code slices them (with
    k = 0 its best block is the whole history)."""
    if step == 1:
        base = history[0]
        prompt = wording.base_first if base.shown is not None and base.shown == wording.base_stored else display(base)
        return wording.messages(wording.first.render(dataset_name=title, dataset_info=paragraph, prompt=prompt, accuracy=[base.accuracy]))
    order = ranked(history, ranking)
    k = min(topk, int(len(order) * 0.5))

    def block(items: Sequence[Candidate]) -> str:
        return "".join(wording.example.render(i=i, response=display(c), accuracy=int(c.accuracy)) for i, c in enumerate(items))

    return wording.messages(wording.later.render(dataset_name=title, dataset_info=paragraph, top_bottom_k=k, step=step - 1,
                                                 best_exm=block(order[-k:]), worst_exm=block(order[:k])))


def official_base_shown(template: str, wording: Wording) -> str | None:
    """How the released code stores the base prompt in its history, where ours is the one it starts
    from (its first meta-prompt then shows its own spelling of it); otherwise None (ours, as is)."""
    return wording.base_stored if to_display(template) == wording.base_first else None
