"""Class descriptions written by the LLM, for the description baselines.

Two styles, as their papers asked GPT-3: ``sentences`` (CuPL: "describe what a {} looks like"; AWT
uses the same texts) and ``descriptors`` (DCLIP: a list of visual features per class). The prompts
and parsers are pure; :func:`describe_classes` runs the LLM and records every answer, including
the ones that gave nothing usable (the class then falls back to ``a photo of a {}.``).
"""

from __future__ import annotations

import re
from typing import Sequence

from glov.llm import LLM, Messages, Request, Sampling, row_seed

SENTENCES, DESCRIPTORS = "sentences", "descriptors"
STYLES = (SENTENCES, DESCRIPTORS)

SYSTEM = "You describe what things look like, for an image classifier. Answer briefly and concretely."
SENTENCE_QUESTION = "Describe what a {} looks like."  # CuPL's main prompt
DESCRIPTOR_QUESTION = (
    "What are useful visual features for distinguishing a {} in a photo? "
    "Answer with a short list, one feature per line, each line starting with '-'."
)
MAX_WORDS = 40
_BULLET = re.compile(r"^\s*(?:[-*•]+|\d+\s*[.:)])\s*")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s")
_QUOTES = "\"'`“”‘’"


def description_messages(question: str, classname: str, dataset: str, description: str) -> Messages:
    user = f"Dataset: {dataset} ({description}).\n{question.format(classname)}"
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def parse_sentence(completion: str) -> str | None:
    """The first sentence of the first line with words, at most ``MAX_WORDS`` words; None if it is
    shorter than three words (an echo, a fragment)."""
    for line in completion.splitlines():
        line = _BULLET.sub("", line).strip().strip(_QUOTES).strip()
        if not re.search(r"[A-Za-z]", line):
            continue
        sentence = " ".join(_SENTENCE_END.split(line, maxsplit=1)[0].split()[:MAX_WORDS])
        return sentence if len(sentence.split()) >= 3 else None
    return None


def parse_descriptors(completion: str, max_words: int = 12) -> list[str]:
    """Bulleted or numbered lines, stripped, at most ``max_words`` words each, without repeats."""
    found: list[str] = []
    for line in completion.splitlines():
        if not _BULLET.match(line):
            continue
        text = " ".join(_BULLET.sub("", line).strip().strip(_QUOTES).rstrip(".;,").split()[:max_words])
        if re.search(r"[A-Za-z]", text) and text.lower() not in (f.lower() for f in found):
            found.append(text)
    return found


def sentence_text(classname: str, sentence: str) -> str:
    """A description names its class (CuPL's GPT-3 answers almost always do); when the LLM's does
    not, the class name is put in front, so the text still points at the class."""
    return sentence if classname.lower() in sentence.lower() else f"{classname}: {sentence}"


def descriptor_text(classname: str, descriptor: str) -> str:
    """DCLIP's literal format."""
    return f"{classname} which (is/has/etc) {descriptor}"


def answer_texts(classname: str, answer: str, style: str) -> list[str]:
    """The VLM texts one LLM answer gives (none when it cannot be parsed)."""
    if style == SENTENCES:
        sentence = parse_sentence(answer)
        return [sentence_text(classname, sentence)] if sentence else []
    return [descriptor_text(classname, d) for d in parse_descriptors(answer)]


def description_requests(classnames: Sequence[str], dataset: str, description: str, style: str, per_class: int, sampling: Sampling,
                         seed: int) -> list[Request]:
    """One chat per class; answer k of class i draws from its own seed (style, class, answer)."""
    if style not in STYLES:
        raise ValueError(f"unknown description style {style!r} (known: {', '.join(STYLES)})")
    question = SENTENCE_QUESTION if style == SENTENCES else DESCRIPTOR_QUESTION
    return [Request(description_messages(question, name, dataset, description), tuple(row_seed(seed, style, index, k) for k in range(per_class)), sampling)
            for index, name in enumerate(classnames)]


def describe_classes(
    llm: LLM, classnames: Sequence[str], dataset: str, description: str, styles: Sequence[str], per_class: int, sampling: Sampling, seed: int
) -> dict[str, dict]:
    """Per style and class: the usable texts (already formatted for the VLM) and every raw answer.
    Every style's and class's answers are sampled in one batched call."""
    requests = {style: description_requests(classnames, dataset, description, style, per_class, sampling, seed) for style in styles}
    answers = iter(llm.sample([r for style in styles for r in requests[style]]))
    records = {}
    for style in styles:
        classes = {}
        for name in classnames:
            raw = next(answers)
            per_answer = [answer_texts(name, answer, style) for answer in raw]
            texts = list(dict.fromkeys(t for found in per_answer for t in found))
            classes[name] = {"texts": texts, "raw": raw, "n_unusable": sum(not found for found in per_answer)}
        records[style] = {"style": style, "per_class": per_class, "seed": seed, "classes": classes}
    return records
