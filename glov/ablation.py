"""The protocol ablation: what each of the official code's quirks is worth, measured with intervals.

A *variant* is ``clean`` (every switch clean), ``official`` (every switch official) or a switch's
name (that switch official, the others clean). Each variant reruns the run's GLOV chains, same
datasets, seeds and parameters, under ``results/ablation/<variant>/``; a job of a variant gets its
params from :func:`with_variant`, so the ordinary rules do the work. ``results/tables/protocol.md``
then gives each variant's GLOV and GLOV w/o guidance test accuracy and its difference from clean
with a 95 % interval.

Design, fixed before any variant was run: the statistic is the mean over seeds of the accuracy
difference; a variant differs from clean only when its interval excludes 0. The interval is
:func:`glov.stats.difference`, the one used by ``lab.md`` and ``glov diff`` (issue 31): seeds paired by
seed number and resampled, then the test images, the same draw for both sides where they scored the
same test images and independent draws where not (``split_seed`` gives seeds other than
``data.seed`` their own test sets), widened for the few seeds.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Mapping, Sequence

import numpy as np

from glov.protocol import CLEAN, FITNESS_BATCH, OFFICIAL, SWITCHES, TARGET_SPLIT, departures
from glov.stats import difference, format_interval, interval_seed, side

REFERENCE = CLEAN  # what every variant is compared with


def variant_protocol(name: str) -> dict[str, str]:
    """The protocol section of a variant."""
    if name not in (CLEAN, OFFICIAL, *SWITCHES):
        raise ValueError(f"unknown protocol variant {name!r}: clean, official or one of {', '.join(SWITCHES)}")
    return {switch: OFFICIAL if name in (OFFICIAL, switch) else CLEAN for switch in SWITCHES}


def with_variant(params, name: str):
    """``params`` with the protocol of variant ``name`` (everything else unchanged)."""
    return replace(params, protocol=type(params.protocol)(**variant_protocol(name)))


def _differs(variant: str, run_protocol: Mapping[str, str], rule: str) -> bool:
    """Whether the variant sets a switch of ``rule`` otherwise than the run."""
    return departures(variant_protocol(variant), rule) != departures(run_protocol, rule)


def own_data(variant: str, run_protocol: Mapping[str, str]) -> bool:
    """Whether a variant draws other splits than the run (its data switches differ): then it needs
    its own manifests and embedding caches, else it reads the run's."""
    return _differs(variant, run_protocol, "prep_dataset")


def own_embeddings(variant: str, run_protocol: Mapping[str, str]) -> bool:
    """Whether a variant embeds its images itself: other splits, or other switches of rule
    embed_images (precision); else it reads the run's caches."""
    return own_data(variant, run_protocol) or _differs(variant, run_protocol, "embed_images")


def shares_chains(variant: str, run_protocol: Mapping[str, str]) -> bool:
    """Whether a variant's chains are the run's own (same data and embeddings, and the same switches
    of glov_steps: clean, or final_set alone, in a clean run): it then scores those instead of
    running them again."""
    return not own_embeddings(variant, run_protocol) and not _differs(variant, run_protocol, "glov_steps")


def protocol_table(
    chosen: Mapping[str, Mapping[tuple[str, str, int], Mapping]], datasets: Sequence[str], methods: Sequence[tuple[str, str]],
    resamples: int, header: str, not_run: Mapping[str, str] | None = None,
) -> str:
    """Markdown: per variant and dataset, each method's seed-mean test accuracy and its difference
    from clean (seeds paired by number; the interval says on how many seeds it rests).
    ``chosen[variant][(method, dataset, seed)]`` is the score record a method's table entry comes
    from (``test_acc``, ``test_correct``, ``test_set``); ``methods`` is (key, label)."""
    cols = " | ".join(f"{label} | Δ vs clean [95 % CI]" for _, label in methods)
    lines = [header, "", f"| variant | dataset | {cols} |", "|---|---|" + "---:|---:|" * len(methods)]
    reference = chosen[REFERENCE]
    for variant in chosen:
        for dataset in datasets:
            cells = []
            for method, _ in methods:
                seeds = sorted(s for m, d, s in chosen[variant] if (m, d) == (method, dataset))
                if not seeds:
                    cells += ["-", "-"]
                    continue
                mean = float(np.mean([chosen[variant][method, dataset, s]["test_acc"] for s in seeds]))
                if variant == REFERENCE:
                    cells += [f"{mean:.1f}", "(reference)"]
                    continue
                iv = difference(side({s: chosen[variant][method, dataset, s] for s in seeds}),
                                side({s: reference[method, dataset, s] for s in seeds}), resamples, interval_seed(variant, method, dataset))
                cells += [f"{mean:.1f}", format_interval(iv)]
            lines.append(f"| {variant} | {dataset} | " + " | ".join(cells) + " |")
    if not_run:
        lines += ["", "## Switches not run here", "", "| switch | why it has no row |", "|---|---|"]
        lines += [f"| `{switch}` | {why} |" for switch, why in not_run.items()]
    return "\n".join(lines) + "\n"


def inert_switches(datasets: Sequence[str], answering: bool, fitness_sizes: Mapping[str, int],
                   names_change: Mapping[str, bool]) -> dict[str, str]:
    """The switches that cannot change a number of a run on ``datasets``, each with the reason:
    their chains would be the clean ones recomputed. ``fitness_sizes``: each dataset's fitness set
    under clean; ``names_change``: whether its class names as the files give them differ from the
    cleaned ones."""

    reasons = {
        "llava_prompt": (not answering, "no answering VLM: the VLM is a dual encoder, so there is no LLaVA prompt to change"),
        "variant_splits": (not set(datasets) & set(TARGET_SPLIT), "no ImageNet-R/-A/-Sketch among the datasets"),
        "imagenet_v2_prompts": ("imagenetv2" not in datasets, "no ImageNet-V2 among the datasets"),
        "class_names": (not any(names_change.values()), "no class name holds '_' or spaces at its ends: the official names equal the clean ones"),
        "fitness_loader": (all(n < FITNESS_BATCH for n in fitness_sizes.values()),
                           f"every fitness set holds fewer than {FITNESS_BATCH} images, which the official loader keeps whole"),
    }
    return {switch: why for switch, (inert, why) in reasons.items() if inert}
