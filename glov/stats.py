"""Intervals for method differences: one two-level bootstrap for ``lab.md``, ``protocol.md`` and ``glov diff``.

A difference between two methods (or two runs of one method) has two sources of noise: the run's
seeds (the LLM's sampling decides which prompts a chain finds) and the test images. An interval over
test images alone, with the seeds' results pooled, says how sure we are about *these* prompt sets on
*these* images, not about the methods; on the lab's 5 seeds it was about a quarter as wide as the
seeds' spread called for (issue 31). Design:

- **Input.** Per side, per seed: which test images it gets right (``test_correct``, '0'/'1' per image)
  and which test images those are (``test_set``, a digest of the list). A side without randomness
  (S-TEMP, DS-TEMP: one result, ``fixed``) is constant across seeds: its one result stands for every
  seed of the other side.
- **Statistic.** The mean over seeds of each side's accuracy (%); the difference is ``a - b``.
- **Seeds.** When both sides list the same seeds, seeds are paired: a resample draws seed indices once
  for both sides (within a run, GLOV and GLOV w/o guidance of one seed share their candidates' random
  numbers until guidance switches on, so they are correlated). Otherwise each side's seeds are drawn
  independently.
- **Images.** Test images are crossed with the seeds, not nested: when the seeds score the same test
  set (one split, ``data.seed``) its noise is shared by every seed and does not average out over
  them. A resample therefore draws *one* image-index vector per distinct test set and applies it to
  every seed, of both sides, that scored it. Seeds with their own test sets (``protocol.split_seed:
  official``) get their own draws; two sides whose test sets differ are drawn independently and the
  interval says ``unpaired images``.
- **Few seeds.** A percentile interval over S resampled seeds undercovers (it estimates the seed
  variance with divisor S and uses normal quantiles where t with S - 1 degrees of freedom is right:
  about 85 % at S = 5). So the seed level alone is widened, by Hesterberg's small-sample expansion
  ``k = sqrt(S / (S - 1)) * t(0.975, S - 1) / z(0.975)`` (1.58 at S = 5, 2.69 at S = 3, 9.2 at
  S = 2): each replicate's deviation from the point estimate is split into its seed part (the
  resampled seeds' mean on the images as scored) and its image part (what the image draw adds on
  top), the seed part is multiplied by k, and the interval is the 2.5th to 97.5th percentile of
  ``point + k * seed part + image part``. The test images, thousands of them, need no such
  correction, so seeds that agree leave the interval as narrow as the images allow.
- **One seed.** Nothing can be said about the seeds: the interval covers the test images only, and
  every output says so (``1 seed: images only``); it never supports a verdict about a method.
- A cell's generator is seeded by what it compares (:func:`interval_seed`), never by table order, so
  equal inputs give byte-identical tables. Resamples run in chunks that keep memory flat on
  50,000-image test sets.

``tests/test_stats.py`` checks the coverage on simulated experiments with a known between-seed
spread, against the pooled image-only interval this replaces.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Mapping

import numpy as np

Z975 = 1.959963984540054  # the normal distribution's 97.5th percentile
_CHUNK = 1_000_000  # image draws held at once (resamples x test images)


@dataclass(frozen=True)
class Side:
    """One side of a comparison: seed -> (test_correct, test_set). ``fixed``: a method without
    randomness, run once, whose one result is used for every seed of the other side."""

    results: Mapping[int, tuple[str, str]]
    fixed: bool = False

    def __post_init__(self) -> None:
        if not self.results:
            raise ValueError("a side of a comparison needs at least one result")
        if self.fixed and len(self.results) != 1:
            raise ValueError(f"a fixed side has one result, not {len(self.results)}")


def side(records: Mapping[int, Mapping]) -> Side:
    """A :class:`Side` from result records (``test_correct``, ``test_set``), keyed by seed
    (a fixed side, a method without randomness: :func:`method_side`)."""
    return Side({int(s): (r["test_correct"], r["test_set"]) for s, r in records.items()})


def method_side(method: str, results: Mapping[int, tuple[str, str]]) -> Side | None:
    """A method's side of a comparison, from its (test_correct, test_set) by seed, or None without
    any: a method without randomness that ran once (S-TEMP, DS-TEMP) is fixed (the same in every seed)."""
    from glov.baselines import DETERMINISTIC

    return Side(dict(results), fixed=method in DETERMINISTIC and len(results) == 1) if results else None


@dataclass(frozen=True)
class Interval:
    """``mean`` (a - b, points) with its 95 % interval. ``n_a``/``n_b``: seeds of each side (0: a
    fixed side); ``seeds_covered``: the seeds' noise is in the interval (false when a varying side has
    one seed: images only); ``images_paired``: both sides scored the same test images."""

    mean: float
    low: float
    high: float
    n_a: int
    n_b: int
    seeds_paired: bool
    seeds_covered: bool
    images_paired: bool

    @property
    def changed(self) -> bool:
        """The interval excludes 0: the only case in which the two sides count as different."""
        return self.low > 0 or self.high < 0

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    @property
    def n_seeds(self) -> int:
        """The seeds the interval rests on: the paired seeds, or the fewer of the two sides'."""
        varying = [n for n in (self.n_a, self.n_b) if n]
        return min(varying) if varying else 0

    @property
    def seeds(self) -> str:
        """What the interval rests on, in words: ``5 seeds``, ``5 vs 3 seeds``, ``1 seed: images only``."""
        if not self.n_a and not self.n_b:
            text = "deterministic"
        elif self.seeds_paired:
            n = self.n_a or self.n_b
            text = f"{n} seeds" if self.seeds_covered else "1 seed: images only"
        else:
            text = f"{self.n_a} vs {self.n_b} seeds" + ("" if self.seeds_covered else ": one side images only")
        return text + ("" if self.images_paired else ", unpaired images")


def format_interval(iv: Interval, detail: str = "") -> str:
    """The one way intervals are written: ``+1.8 [+0.2, +3.4] * (5 seeds)``; ``*`` marks a changed
    cell; ``detail`` goes first in the brackets (``glov diff``: ``60.0 -> 61.8; 5 seeds``)."""
    mark = " *" if iv.changed else ""
    return f"{iv.mean:+.1f} [{iv.low:+.1f}, {iv.high:+.1f}]{mark} ({detail + '; ' if detail else ''}{iv.seeds})"


def interval_seed(*parts: str) -> int:
    """Each cell's resamples are seeded by what it compares, not by the table's order."""
    return zlib.crc32("/".join(parts).encode())


@lru_cache(maxsize=None)
def expansion(n_seeds: int) -> float:
    """Hesterberg's widening of a percentile interval over ``n_seeds`` resampled seeds."""
    if n_seeds < 2:
        return 1.0
    from scipy.special import stdtrit

    return math.sqrt(n_seeds / (n_seeds - 1)) * float(stdtrit(n_seeds - 1, 0.975)) / Z975


def bits(correct: str) -> np.ndarray:
    return np.frombuffer(correct.encode(), dtype=np.uint8) - ord("0")


def accuracy(correct: str) -> float:
    return 100.0 * correct.count("1") / len(correct)


def difference(a: Side, b: Side, resamples: int, seed: int) -> Interval:
    """The two-level bootstrap interval of ``mean_a - mean_b`` (module docstring)."""
    if a.fixed and b.fixed:
        seeds_a = seeds_b = [next(iter(a.results))]
        paired = True
    elif a.fixed or b.fixed:
        seeds_a = seeds_b = sorted((b if a.fixed else a).results)
        paired = True
    else:
        seeds_a, seeds_b = sorted(a.results), sorted(b.results)
        paired = seeds_a == seeds_b
    rows_a = [a.results[next(iter(a.results))] if a.fixed else a.results[s] for s in seeds_a]
    rows_b = [b.results[next(iter(b.results))] if b.fixed else b.results[s] for s in seeds_b]

    # every distinct result once, grouped by test set: ids into those groups for each seed of each side
    groups: dict[str, list[str]] = {}
    ids: dict[tuple[str, str], int] = {}
    for correct, test_set in rows_a + rows_b:
        if (correct, test_set) not in ids:
            members = groups.setdefault(test_set, [])
            if members and len(members[0]) != len(correct):
                raise ValueError(f"test set {test_set}: results of {len(members[0])} and {len(correct)} images")
            ids[correct, test_set] = len(ids)
            members.append(correct)
    col_a = np.array([ids[r] for r in rows_a])
    col_b = np.array([ids[r] for r in rows_b])
    acc = np.array([accuracy(c) for c, _ in ids])  # in id order
    point = float(acc[col_a].mean() - acc[col_b].mean())

    matrices = {t: np.stack([bits(c) for c in members]).astype(np.float64) for t, members in sorted(groups.items())}  # results x images
    columns = {t: [ids[c, t] for c in members] for t, members in groups.items()}
    rng = np.random.default_rng(seed)
    largest = max(m.shape[1] for m in matrices.values())
    chunk = max(1, _CHUNK // largest)
    replicates = np.empty(resamples)
    n_a, n_b = len(col_a), len(col_b)
    count_a, count_b = (0 if a.fixed else n_a), (0 if b.fixed else n_b)
    varying = [n for n in (count_a, count_b) if n]
    covered = all(n >= 2 for n in varying)
    k = expansion(min(varying)) if varying and covered else 1.0
    for start in range(0, resamples, chunk):
        m = min(chunk, resamples - start)
        if paired:
            draw_a = draw_b = rng.integers(0, n_a, size=(m, n_a))
        else:
            draw_a, draw_b = rng.integers(0, n_a, size=(m, n_a)), rng.integers(0, n_b, size=(m, n_b))
        replicate = np.empty((m, len(ids)))
        for test_set, matrix in matrices.items():  # one image draw per test set, shared by every result on it
            n = matrix.shape[1]
            drawn = rng.integers(0, n, size=(m, n)) + (np.arange(m) * n)[:, None]
            counts = np.bincount(drawn.ravel(), minlength=m * n).reshape(m, n).astype(np.float64)
            replicate[:, columns[test_set]] = 100.0 * (counts @ matrix.T) / n
        both = (np.take_along_axis(replicate[:, col_a], draw_a, axis=1).mean(axis=1)
                - np.take_along_axis(replicate[:, col_b], draw_b, axis=1).mean(axis=1))
        seeds_only = acc[col_a][draw_a].mean(axis=1) - acc[col_b][draw_b].mean(axis=1)  # the images as scored
        replicates[start : start + m] = point + k * (seeds_only - point) + (both - seeds_only)
    low, high = (float(q) for q in np.percentile(replicates, [2.5, 97.5]))
    images_paired = {t for _, t in rows_a} == {t for _, t in rows_b}
    return Interval(point, low, high, count_a, count_b, paired, covered, images_paired)


def encode_correct(correct: str) -> dict:
    """A compact, exactly reversible form of a ``test_correct`` string: its bits packed, as hex."""
    return {"n_test": len(correct), "correct_hex": np.packbits(bits(correct)).tobytes().hex()}


def decode_correct(record: Mapping) -> str:
    unpacked = np.unpackbits(np.frombuffer(bytes.fromhex(record["correct_hex"]), dtype=np.uint8))[: record["n_test"]]
    return (unpacked + ord("0")).astype(np.uint8).tobytes().decode()


def correctness_file(records: Mapping[tuple[str, str, int], Mapping]) -> dict:
    """``results/correct.json``: method -> dataset -> seed -> which test images the result a table cell
    comes from gets right, and which test set that is. DVC caches it, so every revision and experiment
    keeps what ``glov diff`` needs for its intervals (the result files themselves are not cached)."""
    out: dict = {}
    for (method, dataset, seed), r in sorted(records.items()):
        if "test_correct" in r:
            out.setdefault(method, {}).setdefault(dataset, {})[str(seed)] = {"test_set": r["test_set"], **encode_correct(r["test_correct"])}
    return out


def read_correctness(data: Mapping) -> dict[str, dict[str, dict[int, tuple[str, str]]]]:
    """method -> dataset -> seed -> (test_correct, test_set), from :func:`correctness_file`'s form."""
    return {method: {dataset: {int(s): (decode_correct(r), r["test_set"]) for s, r in seeds.items()} for dataset, seeds in by_dataset.items()}
            for method, by_dataset in data.items()}
