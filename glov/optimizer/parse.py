"""Turn one LLM completion into one template, or a recorded reason why not (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from glov.optimizer.prompts import PLACEHOLDER, to_display

MAX_CHARS = 200
_PLACEHOLDER = re.compile(r"[<\[{(]\s*(category|class|class ?name|label|object)\s*[>\]})]", re.IGNORECASE)
_PREFIX = re.compile(r"^\s*(?:[-*•]+|\d+\s*[.:)]|(?:new\s+)?template\s*\d*\s*[:=-]|(?:a|answer|output)\s*:)\s*", re.IGNORECASE)
_QUOTED = re.compile(r"[\"“`]([^\"”`]+)[\"”`]")
_ACCURACY = re.compile(r"\s*-{2,}\s*accuracy\s*:.*$", re.IGNORECASE)
_QUOTES = "\"'`“”‘’"
_PROMPT_PREFIX = re.compile(r"^\s*(?:new\s+)?prompt\s*\d*\s*[:=-]\s*", re.IGNORECASE)


_HEADER = re.compile(r"^\s*assistant(?:[ \t]*:|[ \t]*(?:\r?\n|$))", re.IGNORECASE)


@dataclass(frozen=True)
class Parsed:
    template: str | None
    reason: str = ""  # why it failed; empty when ``template`` is set
    shown: str | None = None  # the official parsers' text, where the LLM is to see it rather than the template


def strip_header(completion: str) -> str:
    """Without the generation prompt (protocol.chat_header: official) the model writes the
    assistant header itself, so a completion can start with the role's name on a line of its own:
    that is never a candidate, under any parser."""
    return _HEADER.sub("", completion or "", count=1)


def _clean(line: str) -> str:
    quoted = [q for q in _QUOTED.findall(line) if _PLACEHOLDER.search(q) or "{}" in q]
    line = _ACCURACY.sub("", quoted[0] if quoted else line.strip())
    for _ in range(3):  # "1. Template: "..."" peels in a few rounds
        line = _PREFIX.sub("", line).strip().strip(_QUOTES).strip()
    return line


def parse_template(completion: str) -> Parsed:
    """The first line holding the placeholder, stripped of numbering, quotes and prefixes.

    ``<category>`` (and obvious variants such as ``{class}``) becomes ``{}``; exactly one ``{}``
    and no other braces are required, so ``str.format`` fills in exactly the class name.
    """
    completion = strip_header(completion)
    if not completion.strip():
        return Parsed(None, "empty completion")
    for raw in completion.splitlines():
        if not _PLACEHOLDER.search(raw) and "{}" not in raw:
            continue
        line = _PLACEHOLDER.sub("{}", _clean(raw))
        if line.count("{}") != 1:
            return Parsed(None, f"placeholder appears {line.count('{}')} times")
        if line.replace("{}", "").count("{") or line.replace("{}", "").count("}"):
            return Parsed(None, "stray braces")
        if len(line) > MAX_CHARS:
            return Parsed(None, f"longer than {MAX_CHARS} characters")
        if not line.replace("{}", "").strip():
            return Parsed(None, "nothing but the placeholder")
        return Parsed(line)
    return Parsed(None, "no <category> placeholder")


def parse_question(completion: str, max_chars: int | None = MAX_CHARS) -> Parsed:
    """For encoder-decoder VLMs the candidate is a whole prompt (no class placeholder): the first
    line with words, stripped of numbering, quotes and prefixes (at most ``max_chars``; the
    official LLaVA path has no limit)."""
    for raw in strip_header(completion).splitlines():
        line = _clean(_PROMPT_PREFIX.sub("", _clean(raw))).strip()
        if not re.search(r"[A-Za-z]", line):
            continue
        if _PLACEHOLDER.search(line) or "{" in line or "}" in line:
            return Parsed(None, "a prompt must not hold a placeholder or braces")
        if max_chars is not None and len(line) > max_chars:
            return Parsed(None, f"longer than {max_chars} characters")
        return Parsed(line)
    return Parsed(None, "empty completion")


def official_line(completion: str) -> str:
    """The released code's text of one completion (OFFICIAL.md row 6): newlines and the word
    "assistant" deleted, then whatever follows the last colon (all of it if there is none),
    unchanged: quotes, chatter, cut-off text and the spaces around it stay."""
    return (completion or "").replace("\n", "").replace("assistant", "").split(":")[-1]


def parse_official(completion: str) -> Parsed:
    """The released code's template parser (protocol.parser: official): :func:`official_line` with
    ``<category>`` made ``{}`` (every ``{}`` is filled with the class name); only a text without
    ``{}`` is no template (the official handling of invalid candidates scores it all the same)."""
    text = official_line(completion)
    template = text.replace(PLACEHOLDER, "{}")
    shown = text if text != to_display(template) else None
    return Parsed(template, shown=shown) if "{}" in template else Parsed(None, "no {} placeholder", shown=text)


def parse_official_question(completion: str) -> Parsed:
    """The released LLaVA path's parser (OFFICIAL.md row 24): :func:`official_line` with ``<<`` and
    ``>>`` deleted; an empty text is no prompt (the released loop drops it), any other is one."""
    text = official_line(completion).replace("<<", "").replace(">>", "")
    template = text.replace(PLACEHOLDER, "{}")
    return Parsed(template, shown=text if text != template else None) if text else Parsed(None, "empty completion")
