"""Run every benchmark and write benchmarks/RESULTS.md (about 20 minutes on 2 CPU cores, 45 with --before).

    python benchmarks/run_all.py [--only generation fitness embedding workflow chains] [--before REV]

With ``--only``, the sections are printed and RESULTS.md is left as it is (it always holds one
complete set, measured together).
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

import torch

import bench_chains
import bench_embedding
import bench_fitness
import bench_generation
import bench_paper_estimate
import bench_workflow
from harness import machine
from glov.io import write_text

BENCHMARKS = {"fitness": bench_fitness, "embedding": bench_embedding, "workflow": bench_workflow, "generation": bench_generation,
              "chains": bench_chains, "paper_estimate": bench_paper_estimate}
RESULTS = Path(__file__).with_name("RESULTS.md")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), default=list(BENCHMARKS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--before", help="a git revision whose default workflow run is timed too (workflow benchmark)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    sections, raw = [], {}
    for name in args.only:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        raw[name] = BENCHMARKS[name].run(before=args.before) if name == "workflow" else BENCHMARKS[name].run()
        print(json.dumps(raw[name], indent=2), flush=True)
        sections.append(BENCHMARKS[name].markdown(raw[name]))
    header = (
        f"# Benchmark results\n\n"
        f"Written by `python benchmarks/run_all.py` on {datetime.date.today().isoformat()}.\n\n"
        f"Machine: {machine()}.\n\n"
        "Each benchmark runs a candidate and its baseline in the same process on the same inputs; the ratios are\n"
        "what to compare across machines. Raw figures: the JSON block at the end.\n"
    )
    report = f"{header}\n" + "\n".join(sections) + f"\n## Raw\n\n```json\n{json.dumps(raw, indent=2)}\n```\n"
    if set(args.only) == set(BENCHMARKS):
        write_text(RESULTS, report)
        print(f"wrote {RESULTS}", file=sys.stderr)
    else:
        print(report)


if __name__ == "__main__":
    main()
