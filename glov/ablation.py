"""The protocol ablation: what each of the official code's quirks is worth, measured with intervals.

A *variant* is ``clean`` (every switch clean), ``official`` (every switch official) or a switch's
name (that switch official, the others clean). Each variant reruns the run's GLOV chains, same
datasets, seeds and parameters, under ``results/ablation/<variant>/``; a job of a variant gets its
params from :func:`with_variant`, so the ordinary rules do the work. ``results/tables/protocol.md``
then gives each variant's GLOV and GLOV w/o guidance test accuracy and its difference from clean
with a paired bootstrap 95 % interval over test images, combined over seeds.

Design, fixed before any variant was run: the statistic is the mean over seeds of the accuracy
difference; each bootstrap resample draws every seed's test images with replacement, the same draw
for both sides when the two runs scored the same test images (paired) and independent draws when
they did not (``split_seed`` gives seeds other than ``data.seed`` their own test sets); the interval
is the 2.5th and 97.5th percentile; a variant differs from clean only when its interval excludes 0.
"""

from __future__ import annotations

import zlib
from dataclasses import replace
from typing import Mapping, Sequence

import numpy as np

from glov.protocol import CLEAN, OFFICIAL, SWITCHES, departures

REFERENCE = CLEAN  # what every variant is compared with


def variant_protocol(name: str) -> dict[str, str]:
    """The protocol section of a variant."""
    if name not in (CLEAN, OFFICIAL, *SWITCHES):
        raise ValueError(f"unknown protocol variant {name!r}: clean, official or one of {', '.join(SWITCHES)}")
    return {switch: OFFICIAL if name in (OFFICIAL, switch) else CLEAN for switch in SWITCHES}


def with_variant(params, name: str):
    """``params`` with the protocol of variant ``name`` (everything else unchanged)."""
    return replace(params, protocol=type(params.protocol)(**variant_protocol(name)))


def own_data(variant: str, run_protocol: Mapping[str, str]) -> bool:
    """Whether a variant draws other splits than the run (its data switches differ): then it needs
    its own manifests and embedding caches, else it reads the run's."""
    return departures(variant_protocol(variant), "prep_dataset") != departures(run_protocol, "prep_dataset")


def own_embeddings(variant: str, run_protocol: Mapping[str, str]) -> bool:
    """Whether a variant embeds its images itself: other splits, or other switches of rule
    embed_images (precision); else it reads the run's caches."""
    return own_data(variant, run_protocol) or departures(variant_protocol(variant), "embed_images") != departures(run_protocol, "embed_images")


def shares_chains(variant: str, run_protocol: Mapping[str, str]) -> bool:
    """Whether a variant's chains are the run's own (same data and embeddings, and the same switches
    of glov_steps: clean, or final_set alone, in a clean run): it then scores those instead of
    running them again."""
    return (not own_embeddings(variant, run_protocol)
            and departures(variant_protocol(variant), "glov_steps") == departures(run_protocol, "glov_steps"))


def bootstrap_difference(runs: Sequence[tuple[str, str, bool]], resamples: int, seed: int) -> tuple[float, float, float]:
    """(mean, low, high) in points of the seed-mean accuracy difference ``a - b``. ``runs`` holds, per
    seed, the per-image correctness of both sides ('0'/'1' strings) and whether they scored the same
    test images (then resampled together)."""
    rng = np.random.default_rng(seed)
    point = float(np.mean([_acc(a) - _acc(b) for a, b, _ in runs]))
    totals = np.zeros(resamples)
    for a, b, paired in runs:
        x, y = _bits(a), _bits(b)
        for start in range(0, resamples, 200):  # chunks keep memory flat on 50,000-image test sets
            n = min(200, resamples - start)
            i = rng.integers(0, len(x), size=(n, len(x)))
            j = i if paired else rng.integers(0, len(y), size=(n, len(y)))
            totals[start : start + n] += x[i].mean(axis=1) - y[j].mean(axis=1)
    low, high = np.percentile(100.0 * totals / len(runs), [2.5, 97.5])
    return point, float(low), float(high)


def _bits(correct: str) -> np.ndarray:
    return np.frombuffer(correct.encode(), dtype=np.uint8) - ord("0")


def _acc(correct: str) -> float:
    return 100.0 * correct.count("1") / len(correct)


def interval_seed(variant: str, method: str, dataset: str) -> int:
    """Each cell's resamples are seeded by what it compares, not by the table's order."""
    return zlib.crc32(f"{variant}/{method}/{dataset}".encode())


def _cell(point: float, low: float, high: float) -> str:
    mark = " *" if low > 0 or high < 0 else ""
    return f"{point:+.1f} [{low:+.1f}, {high:+.1f}]{mark}"


def protocol_table(
    chosen: Mapping[str, Mapping[tuple[str, str, int], Mapping]], datasets: Sequence[str], methods: Sequence[tuple[str, str]],
    resamples: int, header: str,
) -> str:
    """Markdown: per variant and dataset, each method's seed-mean test accuracy and its difference
    from clean. ``chosen[variant][(method, dataset, seed)]`` is the score record a method's table
    entry comes from (``test_acc``, ``test_correct``, ``test_set``); ``methods`` is (key, label)."""
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
                runs = [(chosen[variant][method, dataset, s], reference[method, dataset, s]) for s in seeds]
                mean = float(np.mean([r["test_acc"] for r, _ in runs]))
                if variant == REFERENCE:
                    cells += [f"{mean:.1f}", "(reference)"]
                    continue
                triples = [(r["test_correct"], c["test_correct"], r["test_set"] == c["test_set"]) for r, c in runs]
                cells += [f"{mean:.1f}", _cell(*bootstrap_difference(triples, resamples, interval_seed(variant, method, dataset)))]
            lines.append(f"| {variant} | {dataset} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
