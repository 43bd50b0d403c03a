"""Meta-prompts: the chat GLOV sends to the LLM at each step (pure functions, no I/O)."""

from __future__ import annotations

from typing import Sequence

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


def to_display(template: str) -> str:
    """Templates are stored with ``{}``; the LLM sees ``<category>``."""
    return template.replace("{}", PLACEHOLDER)


def ranked(history: Sequence[Candidate]) -> list[Candidate]:
    """Ascending accuracy; among ties the earlier-found template ranks higher, then text order."""
    return sorted(history, key=lambda c: (c.accuracy, -c.step, c.template))


def in_context_examples(history: Sequence[Candidate], topk: int) -> list[Candidate]:
    """Bottom-k then top-k of the whole history, worst first, k = min(topk, |history| // 2)."""
    order = ranked(history)
    k = min(topk, len(order) // 2)
    return order[:k] + order[len(order) - k :] if k else []


def meta_prompt(dataset: str, description: str, history: Sequence[Candidate], topk: int, kind: str = TEMPLATE) -> list[dict[str, str]]:
    header = f"Dataset: {dataset}.\nDescription: {description}.\n"
    system, ask, noun = (SYSTEM, ASK, "Templates") if kind == TEMPLATE else (QUESTION_SYSTEM, QUESTION_ASK, "Prompts")
    examples = in_context_examples(history, topk) or list(history[:1])  # first step: the base template alone
    lines = [f"{i}: {to_display(c.template)} --- Accuracy: {round(c.accuracy)}" for i, c in enumerate(examples, 1)]
    body = f"{noun} and their accuracies, from worst to best:\n" + "\n".join(lines) + "\n"
    return [{"role": "system", "content": system}, {"role": "user", "content": header + body + ask}]
