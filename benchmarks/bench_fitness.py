"""Fitness evaluation: templates scored per second for C classes on cached image embeddings.

Cold: every (template, class) text is new, so the text tower runs (the first time a template is
seen). Warm: the same templates again, served from the VLM's text-embedding cache (a template the
LLM proposes twice, and every top-k ensemble at scoring time). Cold, padded: cold with the
padding to open_clip's 77-token context kept (what the text tower did before `cut_trailing_padding`).
Same VLM, same templates, same image embeddings (1 shot per class), one process.

    python benchmarks/bench_fitness.py [--class-counts 10 100 1000] [--n-templates 20]
"""

from __future__ import annotations

import argparse

import torch

from harness import command_line, offline_vlm, timed, timed_pair
from glov.jobs.embed import TemplateFitness
from glov.embeddings import ImageEmbeddings

WORDS = ["red", "small", "striped", "wild", "old", "spotted", "giant", "common", "little", "northern"]
NOUNS = ["fox", "owl", "kettle", "violin", "tractor", "orchid", "lantern", "beetle", "canoe", "heron"]
STYLES = ["photo", "sketch", "painting", "close-up photo", "blurry photo", "cartoon", "rendering", "sculpture", "toy", "tattoo"]


def classnames(n: int) -> list[str]:
    """n distinct, realistic-length names ("striped owl 3")."""
    return [f"{WORDS[i % 10]} {NOUNS[i // 10 % 10]}" + (f" {i // 100}" if i >= 100 else "") for i in range(n)]


def templates(n: int) -> list[str]:
    return [f"a {STYLES[i % 10]} of a {{}}{', version ' + str(i // 10) if i >= 10 else ''}." for i in range(n)]


def run(class_counts=(10, 100, 1000), n_templates: int = 20, repeats: int = 3) -> dict:
    vlm = offline_vlm()
    pad_id = vlm._pad_id
    dim = vlm.encode_texts(["warm-up"]).shape[-1]
    rows = []
    for c in class_counts:
        g = torch.Generator().manual_seed(c)
        emb = ImageEmbeddings(torch.nn.functional.normalize(torch.randn(c, dim, generator=g), dim=-1), torch.arange(c), [str(i) for i in range(c)])
        fitness = TemplateFitness(vlm, classnames(c), emb)
        batch = templates(max(1, min(n_templates, 1000 // c)))  # rates are per template: fewer suffice for large C

        def score_all(cut_padding: bool | None) -> None:
            """Cold (cache emptied first, padding cut or kept) or, with None, warm."""
            if cut_padding is not None:
                vlm._pad_id = pad_id if cut_padding else None
                vlm._text_cache.clear()
            for t in batch:
                fitness(t)

        padded_s, cold_s = timed_pair(lambda: score_all(False), lambda: score_all(True), repeats)
        warm_s = timed(lambda: score_all(None), repeats)
        per_s = {k: len(batch) / v for k, v in (("padded", padded_s), ("cold", cold_s), ("warm", warm_s))}
        rows.append({"classes": c, "templates": len(batch), "cold_padded_templates_per_s": round(per_s["padded"], 2),
                     "cold_templates_per_s": round(per_s["cold"], 2), "warm_templates_per_s": round(per_s["warm"], 1),
                     "cold_over_padded": round(per_s["cold"] / per_s["padded"], 1), "warm_over_cold": round(per_s["warm"] / per_s["cold"], 1)})
    return {"templates": n_templates, "repeats": repeats, "rows": rows}


def markdown(r: dict) -> str:
    lines = [
        "## Fitness evaluation (`bench_fitness.py`)",
        "",
        f"Up to {r['templates']} templates (at most 1000 / C), each scored by top-1 accuracy on C cached image embeddings (1 shot per class), with the",
        "offline VLM's text tower (all-MiniLM-L6-v2). Cold: text embeddings computed; warm: the same templates again, from the",
        "cache; cold, padded: cold with every text padded to 77 tokens (before padding was cut). Median of "
        f"{r['repeats']}; cold and cold, padded measured alternately.",
        "",
        "| classes C | templates | cold, padded templates/s | cold templates/s | warm templates/s | cold / cold padded | warm / cold |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {x['classes']} | {x['templates']} | {x['cold_padded_templates_per_s']} | {x['cold_templates_per_s']} | {x['warm_templates_per_s']} "
              f"| {x['cold_over_padded']}× | {x['warm_over_cold']}× |" for x in r["rows"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--class-counts", type=int, nargs="+", default=[10, 100, 1000])
    ap.add_argument("--n-templates", type=int, default=20)
    command_line(run, ap)


if __name__ == "__main__":
    main()
