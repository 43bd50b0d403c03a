"""Turn one LLM completion into one template, or a recorded reason why not (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_CHARS = 200
_PLACEHOLDER = re.compile(r"[<\[{(]\s*(category|class|class ?name|label|object)\s*[>\]})]", re.IGNORECASE)
_PREFIX = re.compile(r"^\s*(?:[-*•]+|\d+\s*[.:)]|(?:new\s+)?template\s*\d*\s*[:=-]|(?:a|answer|output)\s*:)\s*", re.IGNORECASE)
_QUOTED = re.compile(r"[\"“`]([^\"”`]+)[\"”`]")
_ACCURACY = re.compile(r"\s*-{2,}\s*accuracy\s*:.*$", re.IGNORECASE)
_QUOTES = "\"'`“”‘’"
_PROMPT_PREFIX = re.compile(r"^\s*(?:new\s+)?prompt\s*\d*\s*[:=-]\s*", re.IGNORECASE)


@dataclass(frozen=True)
class Parsed:
    template: str | None
    reason: str = ""  # why it failed; empty when ``template`` is set


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
    if not completion or not completion.strip():
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
    for raw in (completion or "").splitlines():
        line = _clean(_PROMPT_PREFIX.sub("", _clean(raw))).strip()
        if not re.search(r"[A-Za-z]", line):
            continue
        if _PLACEHOLDER.search(line) or "{" in line or "}" in line:
            return Parsed(None, "a prompt must not hold a placeholder or braces")
        if max_chars is not None and len(line) > max_chars:
            return Parsed(None, f"longer than {max_chars} characters")
        return Parsed(line)
    return Parsed(None, "empty completion")


def parse_official(completion: str) -> str:
    """The released code's parser (protocol.parser: official): newlines and the word "assistant"
    deleted, then whatever follows the last colon (all of it if there is none), ``<category>`` made
    ``{}``. Nothing is rejected: quotes, chatter, cut-off text, several or no ``{}`` all stay (its
    surrounding spaces are dropped; the tokenizers ignore them)."""
    text = (completion or "").replace("\n", "").replace("assistant", "")
    return text.rsplit(":", 1)[-1].replace("<category>", "{}").strip()
