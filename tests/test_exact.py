"""glov diff --exact: byte-for-byte comparison of two runs, the first difference in the workflow's
order, and the inputs of the job that wrote it side by side."""

import json
from pathlib import Path

from glov.cli import main

STEP = "results/runs/pets/vlm/llm/a{alpha}/s{seed}/step_{step:03d}.json"


def write(root: Path, rel: str, obj) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, sort_keys=True))


def make_run(root: Path, candidates: dict, temperature: float = 1.0) -> Path:
    """Two chains (alpha 0 and 1) of three steps; ``candidates[(alpha, step)]`` overrides a step's
    candidates; a provenance record per (dataset, seed) job, as every job writes one."""
    outputs = []
    for alpha in (0.0, 1.0):
        for step in range(3):
            rel = STEP.format(alpha=alpha, seed=0, step=step)
            write(root, rel, {"step": step, "meta_prompt": [{"role": "user", "content": "same"}],
                              "candidates": candidates.get((alpha, step), [{"raw": f"r{step}", "template": f"t{step} {{}}"}])})
            outputs.append(rel)
    write(root, "results/tables/glov.md", {"table": "same"})
    write(root, "results/provenance/glov_steps/dataset-pets_seed-0.json",
          {"rule": "glov_steps", "wildcards": {"dataset": "pets", "seed": "0"}, "code": "abc",
           "params": {"optimizer": {"temperature": temperature}}, "inputs": {"results/data/pets/manifest.json": "d1"},
           "outputs": outputs, "environment": {"torch": "2.14.1", "torch_threads": "1"}})
    return root


def test_identical_runs_exit_zero(tmp_path, capsys):
    a, b = make_run(tmp_path / "a", {}), make_run(tmp_path / "b", {})
    assert main(["diff", "--exact", str(a), str(b)]) == 0
    assert "identical: 7 artefacts, byte for byte" in capsys.readouterr().out  # provenance records are not results


def test_the_first_difference_names_chain_step_and_candidate_and_the_jobs_inputs(tmp_path, capsys):
    """Step 2 of alpha 0 and step 1 of alpha 1 differ: in the workflow's order (job by job, step by
    step, alphas within a step) step 1 of alpha 1 comes first."""
    a = make_run(tmp_path / "a", {})
    other = [{"raw": "r2", "template": "t2 {}"}, {"raw": "extra", "template": "x {}"}]
    b = make_run(tmp_path / "b", {(1.0, 1): [{"raw": "r1", "template": "changed {}"}], (0.0, 2): other}, temperature=0.7)
    assert main(["diff", "--exact", str(a), str(b)]) == 1
    out = capsys.readouterr().out
    assert "different: 2 of 7 artefacts" in out
    assert ("first difference, in the workflow's order: results/runs/pets/vlm/llm/a1.0/s0/step_001.json\n"
            '  chain pets alpha 1.0 seed 0, step 1, candidate 1: template: "t1 {}" vs "changed {}"') in out
    assert "the job that wrote it: glov_steps" in out and "optimizer.temperature: 1.0 | 0.7" in out
    assert "environment:\n    (identical)" in out
    assert main(["diff", "--exact", str(a), str(tmp_path / "b" / "results")]) == 1  # a results/ folder works too
    assert "only in B (1 vs 2 candidates)" in _report(a, b, (0.0, 2))


def _report(a: Path, b: Path, where) -> str:
    from glov.exact import _inside, load_run

    return _inside(load_run(str(a)), load_run(str(b)), STEP.format(alpha=where[0], seed=0, step=where[1]))


def test_a_missing_run_is_an_error_with_its_own_status(tmp_path, capsys):
    assert main(["diff", "--exact", str(tmp_path / "nowhere"), str(tmp_path)]) == 2
    assert "error:" in capsys.readouterr().err
