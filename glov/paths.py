"""Where every artefact lives. The Snakemake rules and the aggregation read the same patterns."""

from __future__ import annotations

import os
from pathlib import Path

SPLITS = ("train", "val", "test")  # of every dataset: 1-shot train (the fitness), val (step choice), test
MANIFEST = "results/data/{dataset}/manifest.json"
VLM_DIR = "resources/models/vlm/{vlm}"
LLM_DIR = "resources/models/llm/{llm}"
EMBEDDINGS = "results/embeddings/{dataset}/{vlm}/{split}.pt"
# protocol.split_seed: official draws a dataset's splits per run seed: one manifest and cache per split seed
SEEDED_MANIFEST = "results/data/{dataset}/split{split_seed}/manifest.json"
SEEDED_EMBEDDINGS = "results/embeddings/{dataset}/{vlm}/split{split_seed}/{split}.pt"
RUN_DIR = "results/runs/{dataset}/{vlm}/{llm}/a{alpha}/s{seed}"
STEP = RUN_DIR + "/step_{step}.json"
SCORE = RUN_DIR + "/score.json"
BASELINE = "results/baselines/{dataset}/{vlm}/{llm}/{method}/s{seed}.json"
ORACLE = "results/oracle/{dataset}/{vlm}/{llm}/s{seed}.json"  # lab tasks: the best scored template, chosen on test
DESCRIPTIONS = "results/descriptions/{dataset}/{llm}/{style}/s{seed}.json"
LLAMP_KNOWLEDGE = "results/llamp/{dataset}/{vlm}/{llm}/{shots}shot/knowledge.pt"  # LLaMP's cache of the LLM's frozen part, per class
LLAMP = "results/llamp/{dataset}/{vlm}/{llm}/{shots}shot/s{seed}.pt"  # LLaMP's learnt parameters and class weights
TABLE_MD = "results/tables/glov.md"
TABLE_CSV = "results/tables/glov.csv"
PAPER_TABLE = "results/tables/paper_table1.md"
LAB_TABLE = "results/tables/lab.md"
PROTOCOL_TABLE = "results/tables/protocol.md"  # the protocol ablation (glov.ablation)
METRICS = "results/metrics.json"
CORRECT = "results/correct.json"  # which test images each table cell's result gets right (glov.stats; DVC-cached for glov diff)
PLOT = "results/plots/{dataset}.png"
CURVE = "results/curves/{dataset}_a{alpha}.csv"


def project_path(path: str | Path) -> str:
    """``path`` relative to the working directory (the project) when it lies under it, else absolute
    (a dataset of yours elsewhere): what results record, so a moved or cloned project reads its own
    files and two clones of one commit compute the same result-store keys."""
    absolute = Path(os.path.abspath(path))  # lexical: a symlinked resources/ folder stays inside the project
    try:
        return absolute.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return str(absolute)


def step_name(step: int) -> str:
    return f"{step:03d}"


def html_of(markdown_path: str) -> str:
    """The HTML page written beside a markdown table (what the Snakemake report shows)."""
    return markdown_path.removesuffix(".md") + ".html"


def of_variant(pattern, ablated: bool = True):
    """Where a protocol-ablation variant keeps what the run keeps under ``results/`` (and its logs
    and benchmark records): an ``ablation/{variant}/`` level below the root. Lists map element-wise."""
    if isinstance(pattern, (list, tuple)):
        return [of_variant(p, ablated) for p in pattern]
    if not ablated:
        return pattern
    for root in ("results/", "logs/", "benchmarks/runs/"):
        if pattern.startswith(root):
            return root + "ablation/{variant}/" + pattern[len(root) :]
    raise ValueError(f"{pattern}: not under results/, logs/ or benchmarks/runs/")
