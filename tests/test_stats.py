"""The two-level bootstrap (glov.stats): coverage on simulated experiments with a known truth, the
pairing rules, the fixed side, and the compact correctness records."""

import numpy as np
import pytest
from scipy.special import ndtri

from glov.stats import (Interval, Side, correctness_file, decode_correct, difference, encode_correct, expansion, format_interval,
                        read_correctness)

N_IMAGES, N_SEEDS, RESAMPLES, EXPERIMENTS = 500, 5, 1000, 220  # 220 experiments: coverage SE about 1.5 % at 95 %
TRUE_DIFFERENCE = 1.0  # points


def simulate(rng: np.random.Generator, seed_sd: float, experiments: int = EXPERIMENTS) -> tuple[np.ndarray, np.ndarray]:
    """Correctness [experiment, seed, image] of methods A and B on one shared test set per experiment
    (the crossed design: every seed scores the same images). An image's difficulty is shared by every
    seed (latent correlation 0.9 between seeds), and one seed's two methods see the same latent (they
    share the seed's prompts up to a shift); each seed shifts each method's accuracy by a normal offset,
    so the difference A - B varies between seeds with SD ``seed_sd`` points, plus the images the two
    methods disagree on (a few %, as in the lab). Over images and seeds the expected difference is
    exactly TRUE_DIFFERENCE."""
    rho = 0.9
    image = rng.standard_normal((experiments, 1, N_IMAGES))
    latent = rho * image + np.sqrt(1 - rho**2) * rng.standard_normal((experiments, N_SEEDS, N_IMAGES))
    out = []
    for centre in (0.70 + TRUE_DIFFERENCE / 200, 0.70 - TRUE_DIFFERENCE / 200):
        shift = rng.normal(0.0, seed_sd / 100 / np.sqrt(2), size=(experiments, N_SEEDS, 1))
        out.append(latent < ndtri(centre + shift))
    return out[0], out[1]


def strings(correct: np.ndarray) -> list[str]:
    return ["".join("1" if x else "0" for x in row) for row in correct]


def two_level_coverage(a: np.ndarray, b: np.ndarray) -> float:
    hits = 0
    for e in range(len(a)):
        iv = difference(Side({s: (c, "t") for s, c in enumerate(strings(a[e]))}),
                        Side({s: (c, "t") for s, c in enumerate(strings(b[e]))}), RESAMPLES, e)
        hits += iv.low <= TRUE_DIFFERENCE <= iv.high
    return hits / len(a)


def pooled_coverage(a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> float:
    """The interval lab.md printed before (glov.ablation.bootstrap_difference): each resample draws
    every seed's test images independently (paired between the sides), the seeds pooled, percentiles."""
    hits = 0
    for e in range(len(a)):
        x, y = a[e].astype(float), b[e].astype(float)
        totals = np.zeros(RESAMPLES)
        for s in range(N_SEEDS):
            i = rng.integers(0, N_IMAGES, size=(RESAMPLES, N_IMAGES))
            totals += x[s][i].mean(axis=1) - y[s][i].mean(axis=1)
        low, high = np.percentile(100 * totals / N_SEEDS, [2.5, 97.5])
        hits += low <= TRUE_DIFFERENCE <= high
    return hits / len(a)


def test_two_level_interval_covers_the_true_difference_where_the_pooled_one_undercovers():
    """The issue's case: between-seed SD 1.7 points at 5 seeds, one test set shared by the seeds."""
    rng = np.random.default_rng(31)
    a, b = simulate(rng, seed_sd=1.7)
    two_level, pooled = two_level_coverage(a, b), pooled_coverage(a[:100], b[:100], rng)
    print(f"seed SD 1.7: two-level {two_level:.3f}, pooled {pooled:.3f}")
    assert 0.91 <= two_level <= 0.99
    assert pooled < 0.75


def test_without_seed_variance_the_interval_still_covers():
    """Only image noise (the seeds differ in which images they get right, not in accuracy): the
    two-level interval may be conservative (the seed-by-image noise counts at both levels, and the
    seed level's small-sample widening applies to it), never short."""
    a, b = simulate(np.random.default_rng(30), seed_sd=0.0)
    coverage = two_level_coverage(a, b)
    print(f"no seed variance: two-level {coverage:.3f}")
    assert coverage >= 0.93


def test_expansion_is_hesterbergs_factor():
    assert expansion(1) == 1.0
    assert expansion(5) == pytest.approx(np.sqrt(5 / 4) * 2.7764451 / 1.9599640)  # t(0.975, 4)
    assert expansion(3) == pytest.approx(2.6886, abs=1e-4) and expansion(1000) == pytest.approx(1.0, abs=2e-3)


def test_identical_and_constant_sides():
    same = Side({0: ("1100110011", "t"), 1: ("1100110011", "t")})
    assert difference(same, same, 500, 0) == Interval(0.0, 0.0, 0.0, 2, 2, True, True, True)
    all_right, none_right = Side({0: ("1" * 10, "t")}), Side({0: ("0" * 10, "t")})
    iv = difference(all_right, none_right, 500, 0)
    assert (iv.mean, iv.low, iv.high, iv.changed, iv.seeds_covered) == (100.0, 100.0, 100.0, True, False)
    assert format_interval(iv) == "+100.0 [+100.0, +100.0] * (1 seed: images only)"


def test_a_fixed_side_is_constant_across_the_other_sides_seeds():
    """S-TEMP runs once: its one result stands for every seed of the other side, on the same images."""
    glov = Side({s: ("1" * (60 + 5 * s) + "0" * (40 - 5 * s), "t") for s in range(3)})  # 60, 65, 70 %
    s_temp = Side({0: ("1" * 60 + "0" * 40, "t")}, fixed=True)
    iv = difference(glov, s_temp, 2000, 1)
    assert iv.mean == pytest.approx(5.0) and (iv.n_a, iv.n_b, iv.seeds_paired, iv.images_paired) == (3, 0, True, True)
    assert iv.n_seeds == 3 and iv.seeds == "3 seeds"
    # GLOV's right answers extend S-TEMP's and seed 0's equal them: 1 resample in 27 draws seed 0 alone
    # (difference 0), so the 2.5th percentile is 0 and the low end is the point widened by k(3) below it
    assert iv.low == pytest.approx(5.0 - expansion(3) * 5.0) and iv.high > 15 and not iv.changed
    with pytest.raises(ValueError, match="a fixed side has one result, not 2"):
        Side({0: ("1", "t"), 1: ("1", "t")}, fixed=True)
    both = difference(s_temp, Side({0: ("1" * 50 + "0" * 50, "t")}, fixed=True), 500, 0)
    assert both.seeds == "deterministic" and both.seeds_covered and both.n_seeds == 0


def test_seeds_are_paired_only_when_both_sides_list_the_same_seeds():
    """Paired seeds cancel a seed effect both sides share; different seed lists are drawn independently."""
    level = {s: 500 + 100 * s for s in range(5)}  # a strong seed effect shared by both sides (10 points a seed)
    a = Side({s: ("1" * (level[s] + 20) + "0" * (980 - level[s]), "t") for s in range(5)})  # 2 points better in every seed
    b = Side({s: ("1" * level[s] + "0" * (1000 - level[s]), "t") for s in range(5)})
    paired = difference(a, b, 2000, 0)
    assert paired.seeds_paired and paired.mean == pytest.approx(2.0) and paired.changed and paired.high - paired.low < 3
    shifted = Side({s + 10: v for s, v in b.results.items()})  # other seed numbers: nothing to pair
    unpaired = difference(a, shifted, 2000, 0)
    assert not unpaired.seeds_paired and unpaired.mean == pytest.approx(2.0) and not unpaired.changed
    assert unpaired.high - unpaired.low > 20 and unpaired.seeds == "5 vs 5 seeds"
    one = difference(a, Side({0: b.results[0]}), 500, 0)
    assert one.seeds == "5 vs 1 seeds: one side images only" and not one.seeds_covered


def test_different_test_sets_are_drawn_independently_and_say_so():
    x, y = "1" * 50 + "0" * 50, "1" * 49 + "0" * 51  # one image better out of 100
    paired = difference(Side({0: (x, "t")}), Side({0: (y, "t")}), 2000, 0)
    assert paired.images_paired and (paired.mean, paired.low) == (1.0, 0.0) and paired.high == pytest.approx(3.0)  # only that image varies
    unpaired = difference(Side({0: (x, "t")}), Side({0: (y, "u")}), 2000, 0)
    assert not unpaired.images_paired and -15 < unpaired.low < -10 and 12 < unpaired.high < 17  # two binomial spreads
    assert format_interval(unpaired, "50.0 -> 49.0").endswith("(50.0 -> 49.0; 1 seed: images only, unpaired images)")
    with pytest.raises(ValueError, match="test set t: results of 3 and 2 images"):
        difference(Side({0: ("101", "t")}), Side({0: ("10", "t")}), 10, 0)


def test_intervals_are_seeded():
    a = Side({s: ("10" * 40 + "1" * s + "0" * (3 - s), "t") for s in range(4)} | {9: ("1" * 83, "t")})
    b = Side({s: ("01" * 40 + "0" * s + "1" * (3 - s), "t") for s in range(4)} | {9: ("0" * 83, "t")})
    first = difference(a, b, 300, 7)
    assert difference(a, b, 300, 7) == first and difference(a, b, 300, 8) != first


def test_correctness_records_round_trip_exactly():
    for correct in ("", "1", "0", "10110", "1" * 8, "01" * 4 + "1", "".join(np.random.default_rng(0).choice(["0", "1"], 50_001))):
        assert decode_correct(encode_correct(correct)) == correct
    records = {("glov", "pets", 1): {"test_correct": "101", "test_set": "t"}, ("s_temp", "pets", 0): {"test_correct": "0", "test_set": "t"},
               ("cupl", "pets", 0): {"test_acc": 50.0}}  # a result without per-image records is left out
    data = correctness_file(records)
    assert data == {"glov": {"pets": {"1": {"test_set": "t", "n_test": 3, "correct_hex": "a0"}}},
                    "s_temp": {"pets": {"0": {"test_set": "t", "n_test": 1, "correct_hex": "00"}}}}
    assert read_correctness(data) == {"glov": {"pets": {1: ("101", "t")}}, "s_temp": {"pets": {0: ("0", "t")}}}
