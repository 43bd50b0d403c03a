"""GPU-hours of the paper's GLOV grid on one GPU: an ESTIMATE, not a measurement (no GPU here).

Built from the job structure of ``config/paper.yaml`` (counted from the same functions the workflow
plans with) and three per-GPU figures that this machine cannot measure, stated as assumptions:
the start-up of one process (imports, Llama-3-8B in bf16, CLIP), the compute of one chain's step
(10 candidates sampled with the KV cache, parsed and scored), and what sampling the 5 alpha chains
of a step in one batch costs relative to one chain. The official script's figure is its own
estimate for the same grid (sequential samples, no KV cache), as given in the issue that asked for
this comparison.

    python benchmarks/bench_paper_estimate.py
"""

from __future__ import annotations

import argparse

from harness import REPO, command_line

STARTUP_S = (25.0, 35.0)  # one process: imports + Llama-3-8B (bf16) + CLIP ViT-B/32 on one GPU (assumed)
CHAIN_STEP_S = 3.0  # one chain's step: 10 candidates x 50 tokens with the KV cache, scoring (assumed)
BATCH_OF_5_VS_ONE = (2.0, 5.0)  # 5 chains in one batch cost 2x (decoding is memory-bound) to 5x (no gain) one chain
OFFICIAL_GPU_DAYS = 11.0  # the official loop on the same grid (issue's estimate)


def paper_grid() -> dict:
    """The paper's params as Snakemake sees them: params.yaml updated by config/paper.yaml."""
    import yaml
    from snakemake.utils import update_config

    from glov import config as C

    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    update_config(raw, yaml.safe_load((REPO / "config/paper.yaml").read_text()))
    p = C.from_dict(raw)
    chains = len(p.data.datasets) * len(p.seeds)
    blocks = C.step_blocks(p.optimizer.steps, p.optimizer.steps_per_job)
    return {"datasets": len(p.data.datasets), "seeds": len(p.seeds), "alphas": len(p.steering.alphas), "steps": p.optimizer.steps + 1,
            "glov_jobs": chains * len(blocks), "step_processes_before": chains * len(p.steering.alphas) * (p.optimizer.steps + 1)}


def run() -> dict:
    g = paper_grid()
    before = [g["step_processes_before"] * (s + CHAIN_STEP_S) / 3600 for s in STARTUP_S]
    per_step = [CHAIN_STEP_S * f for f in BATCH_OF_5_VS_ONE]
    after = [g["glov_jobs"] * (s + g["steps"] * c) / 3600 for s, c in zip(STARTUP_S, per_step)]
    return {"grid": g, "assumptions": {"startup_s": STARTUP_S, "chain_step_s": CHAIN_STEP_S, "batch_of_5_vs_one": BATCH_OF_5_VS_ONE},
            "gpu_hours": {"before": [round(h) for h in before], "after": [round(h, 1) for h in after], "official": OFFICIAL_GPU_DAYS * 24},
            "job_minutes_after": [round((s + g["steps"] * c) / 60) for s, c in zip(STARTUP_S, per_step)]}


def markdown(r: dict) -> str:
    g, a, h = r["grid"], r["assumptions"], r["gpu_hours"]
    return f"""## Paper-scale estimate (`bench_paper_estimate.py`): an estimate, not a measurement

GLOV's part of `config/paper.yaml` on one GPU: {g["datasets"]} datasets × {g["seeds"]} seeds × {g["alphas"]} α × {g["steps"]} steps.
No GPU is available here, so the per-GPU figures are **assumptions**: {a["startup_s"][0]:.0f}–{a["startup_s"][1]:.0f} s to start a
process (imports, Llama-3-8B in bf16, CLIP), {a["chain_step_s"]:.0f} s of compute per chain and step, and 5 chains in one batch
costing {a["batch_of_5_vs_one"][0]:.0f}× (decoding is memory-bound) to {a["batch_of_5_vs_one"][1]:.0f}× (no gain) one chain.
The job counts are the workflow's own.

| how GLOV's steps run | processes | GPU-hours (estimate) |
|---|---:|---:|
| official script (samples one at a time, no KV cache; the issue's estimate) | - | {h["official"]:.0f} |
| this project before: one process per step and chain | {g["step_processes_before"]:,} | {h["before"][0]}–{h["before"][1]} |
| this project now: one `glov_steps` job per (dataset, seed), 5 chains batched | {g["glov_jobs"]} | {h["after"][0]}–{h["after"][1]} |

One `glov_steps` job of the paper's setting is then estimated at {r["job_minutes_after"][0]}–{r["job_minutes_after"][1]} minutes.
"""


def main() -> None:
    command_line(lambda: run(), argparse.ArgumentParser(description=__doc__))


if __name__ == "__main__":
    main()
