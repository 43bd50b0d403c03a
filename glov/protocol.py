"""The paper protocol: where the official GLOV code behaves differently from this project, as switches.

Each results-changing row of ../shared/OFFICIAL.md (kept in docs/PROTOCOL.md) becomes one key of
``params.yaml``'s ``protocol`` section, ``clean`` (this project's behaviour, the default) or
``official`` (the released code's). ``config/paper.yaml`` sets every switch to ``official`` and
``config/paper_clean.yaml`` to ``clean``, so a user can regenerate the paper's numbers, and the
ablation between the two says what each of our fixes is worth. Rows without a switch yet are listed
in :data:`PENDING`, so docs and tests can say so instead of pretending.
"""

from __future__ import annotations

from dataclasses import dataclass

CLEAN, OFFICIAL = "clean", "official"


@dataclass(frozen=True)
class Switch:
    rows: tuple[int, ...]  # of OFFICIAL.md
    rules: tuple[str, ...]  # the workflow rules whose outputs it changes
    clean: str
    official: str

    @property
    def label(self) -> str:
        """The rows as docs/PROTOCOL.md's table writes them."""
        return ", ".join(map(str, self.rows))


SWITCHES: dict[str, Switch] = {
    "meta_prompt": Switch(
        (1, 2, 3), ("glov_steps",),
        "our system message (one short template) and one user message: dataset slug, one-line description, the "
        "examples worst to best numbered 1..2k with round()ed accuracies",
        "the released layout, in our words: a one-sentence system message; a long instruction, the paper's dataset "
        "name and a paragraph description; step 1 shows the base template as Prompt: with its raw accuracy, later "
        "steps a Best Templates: block then a Worst Templates: block, each ascending, numbered from 1, int() accuracies",
    ),
    "chat_header": Switch(
        (4,), ("glov_steps",),
        "the chat template with the generation prompt: the assistant header is part of the prompt",
        "without it: the model writes the assistant header itself, inside its token budget",
    ),
    "token_budget": Switch(
        (5,), ("glov_steps",),
        "every request: optimizer.max_new_tokens (50), stopping at the model's end tokens",
        "steered requests: 75 new tokens, stopping at the tokenizer's EOS token only (unsteered: as clean)",
    ),
    "parser": Switch(
        (6,), ("glov_steps",),
        "the first line holding the placeholder, stripped of numbering, quotes and prefixes; exactly one {}, at most "
        "200 characters, else a recorded failed candidate",
        "newlines and the word 'assistant' deleted, the text after the last colon kept whole (quotes, chatter, cut-off "
        "text, several {}); <category> becomes {}; only a text without {} is invalid",
    ),
    "invalid_candidates": Switch(
        (7,), ("glov_steps",),
        "an invalid candidate is recorded, never scored; a duplicate is not scored again",
        "an invalid candidate is scored as its text (or the empty template) and kept: every class gets the same text, "
        "so it scores the share of class 0 (about chance); duplicates are scored and appended again; every step also "
        "appends an empty template; final sets never hold a template without {}",
    ),
    "steering_vector": Switch(
        (8,), ("glov_steps",),
        "H(p) = mean of the layer's output over the tokens of the {} form, the first (BOS, an attention sink) excluded",
        "the <category> form with BOS, the shorter of p+ and p- right-padded with end-of-turn token strings to equal "
        "length, the mean over every position (BOS and padding included), in float16",
    ),
    "steering_position": Switch(
        (9,), ("glov_steps",),
        "KV cache: each generated position is steered when generated and stays steered in the cache",
        "as a recompute of the whole sequence per token: the offset at the newest position only "
        "(cached decoding with the position's keys and values above the steered layer recomputed unsteered)",
    ),
    "alpha_compounding": Switch(
        (10,), ("glov_steps",),
        "alpha applied once: the offset is alpha * v at every token",
        "the offset is multiplied by alpha again before every generated token, across a step's samples in "
        "order (alpha^n; in the vector's dtype, so it underflows to exact zeros)",
    ),
    "fitness_loader": Switch(
        (12,), ("prep_dataset",),
        "every 1-shot image is in the fitness set",
        "the train loader's drop_last (batch 50): a set of 50 or more images keeps a multiple of 50, a seeded "
        "random subset as the loader's random sampler leaves; a smaller set stays whole",
    ),
    "val_split": Switch((13,), ("prep_dataset",), "data.val_per_class val images per class (4 in the paper configs)", "1 val image per class"),
    "final_set": Switch(
        (16,), ("score",),
        "at each step the top-k (eval.ensemble_size) templates of the whole history so far; step and alpha chosen on val",
        "at each step the top-k of that step's own candidates (a step with none is not selectable); step and alpha "
        "still chosen on val, as the paper says (the code picks neither)",
    ),
}

PENDING: dict[int, str] = {
    14: "ImageNet-R/-A/-Sketch split 60/20/20 from the target set",
    15: "ImageNet-V2 reuses ImageNet's prompts",
    17: "the seed redraws the few-shot split",
    18: "LLaVA path details",
}


def rule_switches(rule: str) -> list[str]:
    """The switches a rule's outputs depend on (its ``params:`` and result-store key)."""
    return [name for name, s in SWITCHES.items() if rule in s.rules]


def departures(protocol: dict, rule: str) -> dict:
    """The switches of ``rule`` set to anything but clean: part of the result-store keys of the
    work they change (keys of clean runs stay as they were before the switches existed)."""
    return {k: v for k, v in protocol.items() if v != CLEAN and rule in SWITCHES[k].rules}


FITNESS_BATCH = 50  # the official train loader's batch size
GUIDED_NEW_TOKENS = 75  # the official guided loop's token budget


def is_official(protocol: object, name: str) -> bool:
    return getattr(protocol, name) == OFFICIAL
