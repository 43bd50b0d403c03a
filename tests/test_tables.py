import json

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
