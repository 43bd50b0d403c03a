import json
import subprocess
import sys

import pytest
import yaml

from glov.cli import main


def test_ls_lists_the_registries(capsys):
    assert main(["ls"]) == 0
    out = capsys.readouterr().out
    assert "animal_mnist" in out and "vit-b-32" in out and "smollm2-135m-instruct" in out


@pytest.mark.slow
def test_run_without_snakemake_writes_tables(tmp_path, smollm2_dir):
    import os
    import shutil

    # the dequantised LLM where rule cache_llm would have put it (the fixture reads the GGUF, as that rule does)
    shutil.copytree(smollm2_dir, tmp_path / "resources/models/llm/smollm2-135m-instruct", copy_function=os.link)
    params = {
        "data": {"datasets": ["animal_mnist"], "val_per_class": 1, "test_per_class": 2},
        "vlm": {"train": {"sources": ["animal_mnist"], "max_images_per_source": 64, "epochs": 1}},
        "optimizer": {"steps": 1, "candidates": 2, "max_new_tokens": 8},
        "steering": {"alphas": [0.0]},
        "methods": ["s_temp", "cupl", "glov_wo_guidance"],
        "baselines": {"descriptions_per_class": 1, "max_new_tokens": 8},
        "tracking": {"mlflow": False},
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    r = subprocess.run([sys.executable, "-m", "glov", "run"], cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    table = (tmp_path / "results/tables/glov.md").read_text()
    assert "| S-TEMP (a photo of a {}.) |" in table and "| CuPL (LLM descriptions) |" in table and "| GLOV (alpha" not in table
    cupl = json.loads((tmp_path / "results/baselines/animal_mnist/lab-minilm/smollm2-135m-instruct/cupl/s0.json").read_text())
    assert cupl["method"] == "cupl" and 0.0 <= cupl["test_acc"] <= 100.0
    assert "| animal_mnist | 10.0 |" in (tmp_path / "results/tables/lab.md").read_text()
    step = json.loads((tmp_path / "results/runs/animal_mnist/lab-minilm/smollm2-135m-instruct/a0.0/s0/step_001.json").read_text())
    assert len(step["candidates"]) == 2
    assert not (tmp_path / "mlflow.db").exists()  # tracking off means no store is created


def test_an_interrupted_command_exits_cleanly(monkeypatch, capsys):
    import glov.cli

    def interrupted(_):
        raise KeyboardInterrupt

    monkeypatch.setattr(glov.cli, "_ls", interrupted)
    assert main(["ls"]) == 130
    assert "interrupted: finished files are kept" in capsys.readouterr().err
