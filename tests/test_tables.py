import json

import pytest

from glov.tables import aggregate, load_published, paper_table, per_seed_results, summary_rows, to_markdown


def score(test, val, curve_len=3):
    return {"test_acc": test, "val_acc": val,
            "curve": [{"step": s, "best_train": 10.0 + s, "topk_train": 9.0 + s, "topk_val": 8.0 + s} for s in range(curve_len)]}


def write_scores(tmp_path):
    entries = []
    table = {  # (alpha, seed) -> (test, val)
        (0.0, 0): (50.0, 40.0), (0.0, 1): (54.0, 41.0),
        (0.5, 0): (60.0, 45.0), (0.5, 1): (62.0, 46.0),
        (1.0, 0): (99.0, 44.0), (1.0, 1): (70.0, 47.0),  # alpha=1 wins on val only for seed 1
    }
    for (alpha, seed), (test, val) in table.items():
        p = tmp_path / f"a{alpha}_s{seed}.json"
        p.write_text(json.dumps(score(test, val)))
        entries.append(("pets", alpha, seed, p))
    return entries


def write_baselines(tmp_path):
    """S-TEMP and DS-TEMP results as rule baseline writes them."""
    paths = []
    for seed in (0, 1):
        for method, test in (("s_temp", 40.0 + seed), ("ds_temp", 42.0 + seed)):
            p = tmp_path / f"{method}_s{seed}.json"
            p.write_text(json.dumps({"method": method, "dataset": "pets", "seed": seed, "val_acc": 0.0, "test_acc": test}))
            paths.append(p)
    return paths


def test_alpha_is_chosen_on_val_per_seed_and_seeds_are_averaged(tmp_path):
    from glov.tables import load_scores

    from glov.io import read_json

    results = per_seed_results(load_scores(write_scores(tmp_path)), [read_json(p) for p in write_baselines(tmp_path)])
    assert results["glov"]["pets"] == {0: 60.0, 1: 70.0}  # never the test-best 99.0
    assert results["glov_wo_guidance"]["pets"] == {0: 50.0, 1: 54.0}
    assert results["s_temp"]["pets"] == {0: 40.0, 1: 41.0}
    assert results["ds_temp"]["pets"] == {0: 42.0, 1: 43.0}
    rows = summary_rows(results, ["pets"])
    glov = next(r for r in rows if r["method"] == "glov" and r["dataset"] == "pets")
    assert (glov["mean"], glov["std"], glov["n_seeds"]) == (65.0, 7.07, 2)
    md = to_markdown(rows, ["pets"], "# t")
    assert "| GLOV (alpha chosen on val) | 65.0 ± 7.1 | 65.0 |" in md


def test_aggregate_writes_all_outputs_byte_identically(tmp_path):
    entries, baselines = write_scores(tmp_path), write_baselines(tmp_path)
    out = tmp_path / "out"

    def go():
        aggregate(entries, baselines, ["pets"], "# header", out / "t.md", out / "t.csv", out / "m.json",
                  str(out / "plots/{dataset}.png"), str(out / "curves/{dataset}_a{alpha}.csv"))
        return {p.name: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}

    (out / "curves").mkdir(parents=True)
    (out / "curves" / "pets_a9.0.csv").write_text("from another run")
    first = go()
    assert set(first) == {"t.md", "t.csv", "m.json", "pets.png", "pets_a0.0.csv", "pets_a0.5.csv", "pets_a1.0.csv"}
    assert json.loads(first["m.json"])["glov/pets/test_acc"] == 65.0
    assert json.loads(first["m.json"])["s_temp/mean/test_acc"] == 40.5
    assert json.loads(first["m.json"])["ds_temp/pets/test_acc"] == 42.5
    assert first["pets_a0.5.csv"].decode().splitlines()[1] == "0,10.0000,9.0000,8.0000"
    assert first["pets.png"][:8] == b"\x89PNG\r\n\x1a\n"
    assert go() == first


def test_paper_table_puts_ours_next_to_published_with_the_difference():
    published = {"vlm": "CLIP ViT-B-32 (openai)", "datasets": ["imagenet", "dtd", "mean"],
                 "methods": {"s_temp": [61.9, 40.2, 51.05], "glov": [64.5, 42.6, 53.6]}}
    rows = [{"method": "glov", "dataset": "imagenet", "mean": 65.0}, {"method": "s_temp", "dataset": "imagenet", "mean": 60.0},
            {"method": "glov", "dataset": "pets", "mean": 90.0}]  # not a paper dataset: not shown
    md = paper_table(rows, "CLIP ViT-B-32 (openai)", published)
    assert "| GLOV (alpha chosen on val) | 65.0 / 64.5 (+0.5) | - / 42.6 | - / 53.6 |" in md  # no mean without every dataset
    assert "| S-TEMP (a photo of a {}.) | 60.0 / 61.9 (-1.9) |" in md
    assert "models differ" not in md
    rows += [{"method": "glov", "dataset": "dtd", "mean": 40.0}, {"method": "glov", "dataset": "mean", "mean": 65.0}]  # our mean includes pets
    md = paper_table(rows, "lab model", published)
    assert "| 40.0 / 42.6 (-2.6) | 52.5 / 53.6 (-1.1) |" in md and "models differ" in md  # mean over paper datasets only
    # a method the paper has no row for (ProAPO, LLaMP ...) is shown with ours only, never a guessed number
    rows += [{"method": "proapo", "dataset": "imagenet", "mean": 63.0}, {"method": "llamp", "dataset": "pets", "mean": 70.0}]
    md = paper_table(rows, "lab model", published)
    assert "| ProAPO (evolved templates + descriptions) | 63.0 / - | - | - |" in md
    assert "LLaMP" not in md  # no paper dataset: no row


def test_published_numbers_cover_the_sixteen_datasets_and_five_methods():
    from glov.data import list_datasets

    published = load_published()
    assert len(published["datasets"]) == 17 and set(published["datasets"][:-1]) <= set(list_datasets())
    assert set(published["methods"]) == {"s_temp", "ds_temp", "llm_opt", "glov_wo_guidance", "glov"}
    assert all(len(v) == 17 for v in published["methods"].values())
    assert published["methods"]["glov"][-1] == 59.6


def test_llava_paper_numbers_are_means_over_the_sixteen_datasets():
    published = load_published("glov_llava_ov")
    assert published["datasets"] == ["mean"] and published["mean_over"] == load_published()["datasets"][:-1]
    assert published["methods"] == {"s_temp": [33.9], "glov_wo_guidance": [53.0], "glov": [55.5]}
    rows = [{"method": "glov", "dataset": d, "mean": 50.0 + i} for i, d in enumerate(published["mean_over"])]
    md = paper_table(rows, "LLaVA-OneVision 7B (answers mapped to classes)", published)
    assert md.startswith("# GLOV with LLaVA-OneVision, side by side: ours / published (difference)")
    assert "| GLOV (alpha chosen on val) | 57.5 / 55.5 (+2.0) |" in md and "| S-TEMP (a photo of a {}.) | - / 33.9 |" in md
    assert "models differ" not in md
    md = paper_table(rows[:-1], "tiny llava", published)  # a dataset short: no mean to compare
    assert "| GLOV (alpha chosen on val) | - / 55.5 |" in md and "config/paper_llava.yaml to compare like with like" in md


def test_template_spread_takes_the_first_scored_llm_templates_in_order():
    from glov.tables import template_spread

    steps = [
        {"candidates": [{"status": "invalid"}, {"status": "scored", "accuracy": 40.0}, {"status": "scored", "accuracy": 70.0}]},
        {"candidates": [{"status": "duplicate"}, {"status": "scored", "accuracy": 55.0}, {"status": "scored", "accuracy": 10.0}]},
    ]
    assert template_spread(steps, n=3) == {"n": 3, "min": 40.0, "max": 70.0, "spread": 30.0}
    assert template_spread(steps)["spread"] == 60.0
    assert template_spread([{"candidates": [{"status": "invalid"}]}]) is None


def test_lab_table_states_chance_spread_and_an_honest_verdict():
    from glov.tables import lab_table

    rows = [
        {"method": "s_temp", "dataset": "a", "mean": 60.0, "std": 0.0, "n_seeds": 3},
        {"method": "glov", "dataset": "a", "mean": 58.5, "std": 1.2, "n_seeds": 3},
        {"method": "glov_wo_guidance", "dataset": "a", "mean": 61.0, "std": 0.5, "n_seeds": 3},
        {"method": "s_temp", "dataset": "b", "mean": 12.0, "std": 0.0, "n_seeds": 3},
        {"method": "glov", "dataset": "b", "mean": 20.0, "std": 2.0, "n_seeds": 3},
    ]
    spreads = {"a": {0: {"n": 20, "min": 30.0, "max": 70.0, "spread": 40.0}, 1: {"n": 20, "min": 70.0, "max": 70.0, "spread": 0.0}},
               "b": {0: None}}
    md = lab_table(rows, {"a": 10.0, "b": 16.7}, spreads, "# H")
    assert "| a | 10.0 | 60.0 ± 0.0 | 61.0 ± 0.5 | 58.5 ± 1.2 |" in md
    assert "| b | 16.7 | 12.0 ± 0.0 | - | 20.0 ± 2.0 |" in md
    assert "| a | 0 | 20 | 30.0 | 70.0 | 40.0 |" in md and "| a | 1 | 20 | 70.0 | 70.0 | 0.0 |" in md and "| b | 0 | 0 | - | - | - |" in md
    assert "- a: S-TEMP is above chance (60.0 ± 0.0 vs 10.0). Wording matters in 1 of 2 seeds (largest spread 40.0 points). GLOV does not beat S-TEMP (-1.5 points, no interval). GLOV w/o guidance beats S-TEMP (+1.0 points, no interval)." in md
    assert "- b: S-TEMP is NOT above chance (12.0 ± 0.0 vs 16.7). GLOV beats S-TEMP (+8.0 points, no interval)." in md


def bits(right: int, n: int = 1000) -> str:
    return "1" * right + "0" * (n - right)


def test_lab_intervals_carry_the_seeds_spread_into_resolution_and_verdict():
    """GLOV w/o guidance 3.0, 2.5, 1.5, 0.5 points below random search in four seeds and 0.5 above in
    the fifth, on one shared test set: every seed's images say "worse", the seeds do not agree enough."""
    from glov.tables import lab_controls, lab_table

    below = {0: 30, 1: 25, 2: -5, 3: 15, 4: 5}  # images of 1,000 (tenths of a point)
    records = {("random_search", "a", s): {"test_correct": bits(600), "test_set": "t"} for s in below}
    records |= {("glov_wo_guidance", "a", s): {"test_correct": bits(600 - d), "test_set": "t"} for s, d in below.items()}
    records |= {("glov", "a", s): {"test_correct": bits(600 - d), "test_set": "t"} for s, d in below.items()}
    records[("s_temp", "a", 0)] = {"test_correct": bits(550), "test_set": "t"}  # run once
    controls = {"a": lab_controls(records, [], "a", list(below), 2000)}
    feedback = controls["a"].intervals["glov_wo_guidance", "random_search"]
    assert feedback.mean == pytest.approx(-1.4) and feedback.low < -2.5 and 0 < feedback.high < 1 and feedback.n_seeds == 5
    guided = controls["a"].intervals["glov", "s_temp"]  # S-TEMP 55.0 in every seed: GLOV 2.0 to 5.5 points above it
    assert guided.mean == pytest.approx(3.6) and (guided.n_a, guided.n_b) == (5, 0) and guided.changed
    rows = [{"method": m, "dataset": "a", "mean": v, "std": 0.0, "n_seeds": 5}
            for m, v in (("s_temp", 55.0), ("random_search", 60.0), ("glov_wo_guidance", 58.6), ("glov", 58.6))]
    md = lab_table(rows, {"a": 10.0}, {}, "# H", controls)
    cell = f"-1.4 [{feedback.low:+.1f}, {feedback.high:+.1f}] (5 seeds)"
    assert f"| {cell} |" in md and f"GLOV w/o guidance cannot be told apart from random search ({cell})." in md
    assert f"GLOV beats S-TEMP (+3.6 [{guided.low:+.1f}, {guided.high:+.1f}] * (5 seeds))." in md
    assert "GLOV answers every test image as GLOV w/o guidance (+0.0 [+0.0, +0.0] (5 seeds))." in md
    widths = next(line for line in md.split("## Resolution")[1].splitlines() if line.startswith("| a |"))
    assert widths == (f"| a | {guided.half_width:.2f} | {controls['a'].intervals['glov_wo_guidance', 's_temp'].half_width:.2f} | 0.00 | "
                      f"{feedback.half_width:.2f} | {max(guided.half_width, feedback.half_width):.2f} | no |")
    assert "two-level bootstrap" in md and "with 1 seed it covers the test images only" in md
    assert lab_table(rows, {"a": 10.0}, {}, "# H", {"a": lab_controls(records, [], "a", list(below), 2000)}) == md  # byte-identical


def test_aggregate_writes_each_table_cells_correctness_for_dvc(tmp_path, monkeypatch):
    """results/correct.json: GLOV's chosen chain, GLOV w/o guidance and each baseline, per seed."""
    from glov import config as C
    from glov.io import read_json
    from glov.jobs.tables import aggregate_tables
    from glov.stats import read_correctness

    monkeypatch.chdir(tmp_path)
    params = C.from_dict({"data": {"datasets": ["oxford_pets"]}, "seeds": [0, 1], "tracking": {"mlflow": False},
                          "methods": ["s_temp", "glov_wo_guidance", "glov"], "steering": {"alphas": [0.0, 1.0, 2.0]}})
    entries, scores = [], []
    for alpha, seed, right, val in ((0.0, 0, 550, 40.0), (0.0, 1, 560, 41.0), (1.0, 0, 600, 45.0), (1.0, 1, 610, 46.0),
                                    (2.0, 0, 900, 44.0), (2.0, 1, 620, 47.0)):  # alpha 2 wins on val in seed 1 only
        path = tmp_path / f"a{alpha}_s{seed}.json"
        path.write_text(json.dumps({**score(right / 10, val), "test_correct": bits(right), "test_set": "t"}))
        entries.append(("oxford_pets", alpha, seed))
        scores.append(str(path))
    (tmp_path / "s_temp.json").write_text(json.dumps({"method": "s_temp", "dataset": "oxford_pets", "seed": 0, "val_acc": 0.0, "test_acc": 40.0,
                                                      "test_correct": bits(400), "test_set": "t"}))
    aggregate_tables(params, entries, scores, [str(tmp_path / "s_temp.json")])
    data = read_json("results/correct.json")
    assert read_correctness(data) == {"glov": {"oxford_pets": {0: (bits(600), "t"), 1: (bits(620), "t")}},
                                      "glov_wo_guidance": {"oxford_pets": {0: (bits(550), "t"), 1: (bits(560), "t")}},
                                      "s_temp": {"oxford_pets": {0: (bits(400), "t")}}}
    assert data["s_temp"]["oxford_pets"]["0"] == {"test_set": "t", "n_test": 1000, "correct_hex": "ff" * 50 + "00" * 75}  # 8 images a byte
