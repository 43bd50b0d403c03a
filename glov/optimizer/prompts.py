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
    """This project's chat: a system message asking for one short template, then one user message
    with the dataset, its one-line description and the in-context examples worst to best."""
    header = f"Dataset: {dataset}.\nDescription: {description}.\n"
    system, ask, noun = (SYSTEM, ASK, "Templates") if kind == TEMPLATE else (QUESTION_SYSTEM, QUESTION_ASK, "Prompts")
    examples = in_context_examples(history, topk) or list(history[:1])  # first step: the base template alone
    lines = [f"{i}: {to_display(c.template)} --- Accuracy: {round(c.accuracy)}" for i, c in enumerate(examples, 1)]
    body = f"{noun} and their accuracies, from worst to best:\n" + "\n".join(lines) + "\n"
    return [{"role": "system", "content": system}, {"role": "user", "content": header + body + ask}]


# The official meta-prompt (protocol.meta_prompt: official; rows 1-3 of the official-behaviour notes),
# in our own words with the released code's structure, fields and number formats.
OFFICIAL_SYSTEM = (
    "You are a helpful assistant that helps me discover the best prompt templates to put class names into "
    "for zero-shot image classification with CLIP. Let's get started!"
)

OFFICIAL_TASK = (
    "We want prompt templates that make CLIP, a vision-language model, classify the images of a dataset "
    f"as accurately as possible. A template is a sentence with {PLACEHOLDER} standing in for the class name. "
    "Below you see the dataset, a description of it, and templates we tried with the accuracy each reached. "
    "Be creative: write a new template, different from the ones shown, that you expect to score higher. "
    f"Keep {PLACEHOLDER} in it, and write the template after a colon."
)


def official_meta_prompt(title: str, paragraph: str, history: Sequence[Candidate], topk: int) -> list[dict[str, str]]:
    """The released code's chat. The first step shows the base template as ``Prompt:`` with its raw
    accuracy (e.g. 45.8333); later steps show a ``Best Templates:`` block then a ``Worst Templates:``
    block, each in ascending accuracy and numbered from 1, accuracies cut with ``int()``, with
    k = min(topk, len(history) // 2)."""
    header = f"{OFFICIAL_TASK}\n\nDataset: {title}\nDescription: {paragraph}\n\n"
    order = ranked(history)
    k = min(topk, len(order) // 2)
    if not k:
        first = history[0]
        body = f"Prompt: {to_display(first.template)}\nAccuracy: {first.accuracy}\n"
    else:
        def block(name: str, items: Sequence[Candidate]) -> str:
            return f"{name}:\n" + "".join(f"{i}. {to_display(c.template)} Accuracy: {int(c.accuracy)}\n" for i, c in enumerate(items, 1))

        body = (f"Here are the top {k} and the worst {k} templates of the last {len(order)} runs.\n"
                + block("Best Templates", order[len(order) - k:]) + "\n" + block("Worst Templates", order[:k]))
    return [{"role": "system", "content": OFFICIAL_SYSTEM}, {"role": "user", "content": header + body}]
