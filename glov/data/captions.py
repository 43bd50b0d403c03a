"""Captions with context words for the lab VLM's training images (docs/LAB.md, "Captions").

CLIP learned from captions such as "a black-and-white photo of my dog at the beach", which is why
some prompt templates beat the bare class name: the words around the name carry information the
image tower learned to match. A lab VLM trained on bare names would make the bare name the best
template by construction, and an optimiser would have nothing to find. So every training image gets
three captions, each one phrasing drawn (by a hash of the image's content, never by params) from
:data:`PHRASINGS`, filled with its source's own words: the medium (a silhouette, a product photo),
the source (animal-mnist, the typeface's name) and the category (clipart's folder names).

The phrasings are written here, not taken from any prompt list, and :func:`template_clashes`
checks that no caption is a template the methods score (with a class name filled in).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Iterable

CAPTIONS_PER_IMAGE = 3
PHRASINGS = (
    "{a_medium} of {a_name} from {source}",
    "{source} {medium}: {name}",
    "{name}, {a_medium} ({category})",
    "{medium} showing {a_name}",
    "{category} {medium} of {a_name}",
    "{name} as {a_medium} in {source}",
)


@dataclass(frozen=True)
class Words:
    """What a source says about one image: each field is a choice of equivalent words."""

    names: tuple[str, ...]
    mediums: tuple[str, ...]
    sources: tuple[str, ...]
    categories: tuple[str, ...]


def with_article(phrase: str) -> str:
    return ("an " if phrase[:1].lower() in "aeiou" else "a ") + phrase


def context_captions(uid: str, words: Words, n: int = CAPTIONS_PER_IMAGE) -> tuple[str, ...]:
    """``n`` captions in distinct phrasings, every choice drawn from the image's content hash, so a
    picture keeps its captions whatever else is in the training set."""
    rng = random.Random(int(uid[:16], 16))
    out = []
    for phrasing in rng.sample(PHRASINGS, n):
        name, medium = rng.choice(words.names), rng.choice(words.mediums)
        out.append(
            phrasing.format(
                name=name,
                a_name=with_article(name),
                medium=medium,
                a_medium=with_article(medium),
                source=rng.choice(words.sources),
                category=rng.choice(words.categories),
            )
        )
    return tuple(out)


def normalised(text: str) -> str:
    return " ".join(text.lower().rstrip(" .").split())


def template_clashes(captions: Iterable[str], templates: Iterable[str], classnames: Iterable[str]) -> list[str]:
    """The captions that equal a template with a class name filled in (case, spacing and a final
    full stop ignored): a template the methods score must never be a training caption verbatim."""
    filled = {normalised(t.replace("{}", c)) for t in templates for c in classnames}
    return sorted({c for c in captions if normalised(c) in filled})
