"""The paper protocol: where the official GLOV code behaves differently from this project, as switches.

Each results-changing row of ../shared/OFFICIAL.md (kept in docs/PROTOCOL.md) becomes one key of
``params.yaml``'s ``protocol`` section, ``clean`` (this project's behaviour, the default) or
``official`` (the released code's). ``config/paper.yaml`` sets every switch to ``official`` and
``config/paper_clean.yaml`` to ``clean``, so a user can regenerate the paper's numbers, and the
ablation between the two says what each of our fixes is worth.
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
        (1, 2, 3, 24), ("glov_steps",),
        "our system message (one short template) and one user message: dataset slug, one-line description, the "
        "examples worst to best numbered 1..2k with round()ed accuracies",
        "the released code's own words, read at run time from its pinned source (glov fetch-official; CLIP and LLaVA "
        "each their own): its system message and instruction, the Dassl dataset name and its description paragraph, "
        "step 1 the base prompt with its accuracy at full precision, later steps its best then its worst block, "
        "ascending, int() accuracies",
    ),
    "chat_header": Switch(
        (4,), ("glov_steps",),
        "the chat template with the generation prompt: the assistant header is part of the prompt",
        "without it: the model writes the assistant header itself, inside its token budget (never a candidate)",
    ),
    "token_budget": Switch(
        (5,), ("glov_steps",),
        "every request: optimizer.max_new_tokens (50), stopping at the model's end tokens",
        "once the first improvement has happened, every request (steered, and at alpha = 0 unsteered) takes the guided "
        "loop's 75 new tokens, stopping at the tokenizer's EOS token only; before it, as clean",
    ),
    "parser": Switch(
        (6,), ("glov_steps",),
        "the first line holding the placeholder, stripped of numbering, quotes and prefixes; exactly one {}, at most "
        "200 characters, else a recorded failed candidate (prompts of an answering VLM: the first line with words)",
        "newlines and the word 'assistant' deleted, the text after the last colon kept whole (quotes, chatter, cut-off "
        "text, several {}); <category> becomes {}; only a text without {} is invalid (LLaVA: '<<' and '>>' deleted, "
        "only an empty text is invalid)",
    ),
    "invalid_candidates": Switch(
        (7,), ("glov_steps", "score"),
        "an invalid candidate is recorded, never scored; a duplicate is not scored again",
        "an invalid candidate is scored as its text (or the empty template) and kept: every class gets the same text, "
        "so every image goes to class 0 (as the official NaN embeddings do): the share of class 0, about chance; "
        "a template whose braces break str.format counts the same; duplicates are scored and appended again; every "
        "step also appends an empty template (LLaVA: empty prompts are dropped); final sets never hold a template "
        "without {}",
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
    "variant_splits": Switch(
        (14,), ("prep_dataset",),
        "ImageNet-R/-A/-Sketch: fitness and val from ImageNet's train photos, test = the whole target set",
        "the target set split at random 60/20/20 (seeded by the split seed: data.seed, or the run seed under split_seed): 1-shot fitness from the 60 %, val = the 20 %, "
        "test = the other 20 %",
    ),
    "imagenet_v2_prompts": Switch(
        (15,), ("score",),
        "ImageNet-V2 runs its own GLOV chains (on ImageNet's photos, as its loader serves them)",
        "ImageNet-V2 has no chain: its GLOV rows score the prompts ImageNet's chains found",
    ),
    "val_split": Switch((13,), ("prep_dataset",), "data.val_per_class val images per class (4 in the paper configs)", "1 val image per class"),
    "split_seed": Switch(
        (17,), ("prep_dataset",),
        "one split of each dataset (data.seed) for every run seed: seeds vary the LLM's sampling only",
        "the run seed also draws the dataset's few-shot, val and test split (data.seed unused): one manifest and "
        "embedding cache per (dataset, seed), and S-TEMP/DS-TEMP run per seed",
    ),
    "llava_prompt": Switch(
        (18,), ("glov_steps", "score", "baselines"),
        "an answering VLM: optimizer.base_prompt, the prompt as written, vlm.max_new_tokens (16) greedy answer tokens, "
        "candidate prompts of at most 200 characters",
        "the released base prompt (read at run time from its pinned source, glov fetch-official), every prompt with "
        "its double quotes removed and '?' appended, 50 greedy answer tokens, no length limit on candidate prompts",
    ),
    "final_set": Switch(
        (16,), ("score",),
        "at each step the top-k (eval.ensemble_size) templates of the whole history so far; step and alpha chosen on val",
        "at each step the top 3 of that step's own candidates, then those without {} removed (a step may ensemble "
        "fewer); the first LLM step is never a final set; step and alpha still chosen on val, as the paper says (the "
        "code picks neither)",
    ),
    "class_names": Switch(
        (21,), ("prep_dataset",),
        "class names cleaned: '_' becomes a space (CoOp split files, image folders)",
        "the names exactly as the official loaders give them (the CoOp split files' names with their underscores; "
        "folder names as they are)",
    ),
    "ranking": Switch(
        (22,), ("glov_steps", "score"),
        "ascending accuracy; among ties the earlier-found candidate ranks higher, then text order",
        "NumPy's default argsort of the accuracies in the order found (up to 16 items the later-found ranks higher, "
        "beyond that whatever its introsort gives); p+ is the first of the best in that order, p- the last below it",
    ),
    "precision": Switch(
        (23,), ("embed_images", "glov_steps", "score", "baselines", "describe_classes", "oracle"),
        "the LLM in llm.dtype (bfloat16 in the paper configs), a dual encoder in float32, an answering VLM in vlm.dtype",
        "the LLM in float16; a CLIP-style VLM converted to float16 as the released code runs CLIP (its features "
        "normalised in float16, compared in float32); an answering VLM in float16. LLaMP's training (not in the "
        "released code) keeps llm.dtype",
    ),
}

def rule_switches(rule: str) -> list[str]:
    """The switches a rule's outputs depend on (its ``params:`` and result-store key)."""
    return [name for name, s in SWITCHES.items() if rule in s.rules]


def departures(protocol: dict, rule: str) -> dict:
    """The switches of ``rule`` set to anything but clean: part of the result-store keys of the
    work they change (keys of clean runs stay as they were before the switches existed)."""
    return {k: v for k, v in protocol.items() if v != CLEAN and rule in SWITCHES[k].rules}


TARGET_SPLIT = ("imagenet_r", "imagenet_a", "imagenet_sketch")  # the datasets the official code splits 60/20/20
LLAVA_NEW_TOKENS = 50  # the official LLaVA answer budget (greedy)
FITNESS_BATCH = 50  # the official train loader's batch size
GUIDED_NEW_TOKENS = 75  # the official guided loop's token budget


def is_official(protocol: object, name: str) -> bool:
    return getattr(protocol, name) == OFFICIAL


def chain_dataset(dataset: str, protocol: object) -> str:
    """The dataset whose GLOV chains a dataset's prompts come from: itself, except ImageNet-V2 under
    the official ``imagenet_v2_prompts`` (it reuses ImageNet's discovered prompts)."""
    return "imagenet" if dataset == "imagenetv2" and is_official(protocol, "imagenet_v2_prompts") else dataset


def split_seed(params: object, seed: int) -> int:
    """The seed a run seed's dataset splits are drawn with: data.seed, or (official) the run seed."""
    return seed if is_official(params.protocol, "split_seed") else params.data.seed  # type: ignore[attr-defined]
