"""The workflow as a user runs it: one full offline run, one GLOV step, and the no-op overhead.

A fresh copy of the working tree (tracked and untracked-but-not-ignored files, so no built models
or results) runs ``snakemake --cores all`` with the default params.yaml. Per-job wall time and
peak memory come from Snakemake's ``benchmark:`` files of that same run; the peak memory of the
run is the largest RSS of any of its processes. Then ``snakemake --cores all`` again, with nothing
to do, against the bare ``snakemake --version`` start-up.

    python benchmarks/bench_workflow.py
"""

from __future__ import annotations

import argparse
import csv
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import REPO, command_line, timed


def fresh_copy(dest: Path) -> Path:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for f in (f for f in files if (REPO / f).is_file()):
        (dest / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / f, dest / f)
    return dest


def snakemake(cwd: Path, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=cwd, check=True, capture_output=True, text=True)


def job_figures(cwd: Path, rule: str) -> list[dict]:
    rows = []
    for tsv in sorted((cwd / "benchmarks/runs" / rule).rglob("*.tsv")):
        with tsv.open() as f:
            row = next(csv.DictReader(f, delimiter="\t"))
        rows.append({"job": str(tsv.relative_to(cwd / "benchmarks/runs")), "s": float(row["s"]), "max_rss_mb": float(row["max_rss"])})
    return rows


def run(keep: bool = False) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="glov-bench-"))
    try:
        work = fresh_copy(tmp)
        start = time.perf_counter()
        snakemake(work, "--cores", "all")
        full_s = time.perf_counter() - start
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        llm_steps = [r for r in job_figures(work, "glov_step") if not r["job"].endswith("/000.tsv")]  # step 0 runs no LLM
        noop_s = timed(lambda: snakemake(work, "--cores", "all"), 3)
        startup_s = timed(lambda: snakemake(work, "--version"), 3)
        n_jobs = len(list((work / "logs").rglob("*.log")))
    finally:
        if keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    step_s = sorted(r["s"] for r in llm_steps)[len(llm_steps) // 2]
    return {
        "jobs": n_jobs,
        "full_run_s": round(full_s, 1),
        "full_run_peak_rss_mb": round(peak_mb),
        "glov_steps": len(llm_steps),
        "glov_step_median_s": round(step_s, 1),
        "glov_step_peak_rss_mb": round(max(r["max_rss_mb"] for r in llm_steps)),
        "glov_step_over_full_run": round(step_s / full_s, 3),
        "noop_s": round(noop_s, 2),
        "snakemake_startup_s": round(startup_s, 2),
        "noop_over_startup": round(noop_s / startup_s, 1),
        "noop_over_full_run": round(noop_s / full_s, 3),
    }


def markdown(r: dict) -> str:
    return f"""## Workflow (`bench_workflow.py`)

`snakemake --cores all` with the default `params.yaml` in a fresh copy of the repository (models built,
dataset exported, 5 steps × 2 α, SmolLM2-135M, the untrained lab VLM), then again with nothing to do.

| what | wall | peak RSS | ratio |
|---|---:|---:|---|
| full offline run ({r["jobs"]} jobs) | {r["full_run_s"]} s | {r["full_run_peak_rss_mb"]} MB (largest process) | 1.00 |
| one GLOV step (`glov_step` job with the LLM, median of {r["glov_steps"]}) | {r["glov_step_median_s"]} s | {r["glov_step_peak_rss_mb"]} MB | {100 * r["glov_step_over_full_run"]:.1f} % of the full run |
| `snakemake --cores all`, nothing to do | {r["noop_s"]} s | | {r["noop_over_startup"]}× `snakemake --version` ({r["snakemake_startup_s"]} s); {100 * r["noop_over_full_run"]:.1f} % of the full run |
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--keep", action="store_true", help="keep the temporary copy (printed) for inspection")
    command_line(run, ap)


if __name__ == "__main__":
    main()
