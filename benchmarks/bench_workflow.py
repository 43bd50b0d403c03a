"""The workflow as a user runs it: the default offline run (optionally against an earlier
revision, measured in the same session), the GLOV jobs' share of start-up and model loading, and
the no-op overhead.

A fresh copy of the working tree (tracked and untracked-but-not-ignored files, so no built models
or results) runs ``snakemake --cores all`` with the default params.yaml. With ``--before REV`` a
clone of that git revision runs the same command first, so both walls come from one machine and
session. Per-job wall time and peak memory come from Snakemake's ``benchmark:`` files of that same
run; the GLOV jobs log how long their imports (process start to job code) and model loading took.
Then ``snakemake --cores all`` again, with nothing to do, against the bare ``snakemake --version``.

    python benchmarks/bench_workflow.py [--before 88db9f5]
"""

from __future__ import annotations

import argparse
import csv
import json
import re
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


def own_code(cwd: Path) -> dict:
    """The environment of a run in ``cwd``: its jobs import that copy's ``glov``, not the installed
    (editable) one, so a clone of an earlier revision runs its own code."""
    import os

    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(cwd), os.environ.get("PYTHONPATH")]))}


def snakemake(cwd: Path, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=cwd, check=True, capture_output=True, text=True, env=own_code(cwd))


def job_figures(cwd: Path, rule: str) -> list[dict]:
    rows = []
    for tsv in sorted((cwd / "benchmarks/runs" / rule).rglob("*.tsv")):
        with tsv.open() as f:
            row = next(csv.DictReader(f, delimiter="\t"))
        rows.append({"job": str(tsv.relative_to(cwd / "benchmarks/runs")), "s": float(row["s"]), "max_rss_mb": float(row["max_rss"])})
    return rows


def rule_breakdown(cwd: Path) -> dict[str, dict]:
    """Per rule, from Snakemake's ``benchmark:`` files: jobs, wall and CPU seconds summed. The rules
    share 2 cores, so CPU seconds / 2 is what a rule costs the run's wall at best."""
    out = {}
    root = cwd / "benchmarks/runs"
    for rule_dir in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        rows = []
        for tsv in rule_dir.rglob("*.tsv"):
            with tsv.open() as f:
                rows.append(next(csv.DictReader(f, delimiter="\t")))
        out[rule_dir.name] = {"jobs": len(rows), "wall_s": round(sum(float(r["s"]) for r in rows), 1),
                              "cpu_s": round(sum(float(r["cpu_time"]) for r in rows if r.get("cpu_time") not in (None, "", "NA")), 1)}
    return out


def glov_job_timing(cwd: Path) -> dict:
    """Summed over the GLOV jobs: their wall, and what went to imports and to loading models."""
    found = [json.loads(m.group(1)) for p in (cwd / "logs/glov_steps").rglob("*.log")
             for m in [re.search(r"timing: (\{.*\})", p.read_text())] if m]
    total = {k: sum(t[k] for t in found) for k in ("startup_s", "load_s", "job_s")}
    return {"jobs": len(found), **{k: round(v, 1) for k, v in total.items()},
            "overhead_share": round((total["startup_s"] + total["load_s"]) / total["job_s"], 3) if found else None}


def timed_run(work: Path) -> float:
    start = time.perf_counter()
    snakemake(work, "--cores", "all")
    return time.perf_counter() - start


def paper_plan(work: Path) -> dict:
    """``snakemake -n --configfile config/paper.yaml``: jobs planned and the planning wall time."""
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "all", "--configfile", "config/paper.yaml"],
                         cwd=work, check=True, capture_output=True, text=True, env=own_code(work)).stdout
    seconds = time.perf_counter() - start
    lines = out.splitlines()
    total = next(int(line.split()[1]) for line in lines[lines.index(next(l for l in lines if l.startswith("Job stats"))):] if line.startswith("total"))
    return {"jobs": total, "planning_s": round(seconds, 1)}


def before_run(rev: str) -> dict:
    """The default run of ``rev`` in a fresh clone (its own ``glov fetch-data`` is not timed), and its paper plan."""
    tmp = Path(tempfile.mkdtemp(prefix="glov-bench-before-"))
    try:
        subprocess.run(["git", "clone", "-q", str(REPO), str(tmp / "repo")], check=True)
        subprocess.run(["git", "checkout", "-q", rev], cwd=tmp / "repo", check=True)
        subprocess.run([sys.executable, "-m", "glov", "fetch-data"], cwd=tmp / "repo", check=True, capture_output=True, env=own_code(tmp / "repo"))
        full_s = round(timed_run(tmp / "repo"), 1)
        return {"rev": rev, "full_run_s": full_s, "rules": rule_breakdown(tmp / "repo"), "paper_plan": paper_plan(tmp / "repo")}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(keep: bool = False, before: str | None = None) -> dict:
    earlier = before_run(before) if before else None
    tmp = Path(tempfile.mkdtemp(prefix="glov-bench-"))
    try:
        work = fresh_copy(tmp)
        subprocess.run([sys.executable, "-m", "glov", "fetch-data"], cwd=work, check=True, capture_output=True)
        full_s = timed_run(work)
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        glov = glov_job_timing(work)
        rules = rule_breakdown(work)
        noop_s = timed(lambda: snakemake(work, "--cores", "all"), 3)
        startup_s = timed(lambda: snakemake(work, "--version"), 3)
        n_jobs = len(list((work / "logs").rglob("*.log")))
        plan = paper_plan(work)
    finally:
        if keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return {
        "jobs": n_jobs,
        "full_run_s": round(full_s, 1),
        "full_run_peak_rss_mb": round(peak_mb),
        "paper_plan": plan,
        "before": {**earlier, "speedup": round(earlier["full_run_s"] / full_s, 2)} if earlier else None,
        "glov_jobs": glov,
        "rules": rules,
        "noop_s": round(noop_s, 2),
        "snakemake_startup_s": round(startup_s, 2),
        "noop_over_startup": round(noop_s / startup_s, 1),
        "noop_over_full_run": round(noop_s / full_s, 3),
    }


def breakdown_table(r: dict) -> str:
    """Jobs and CPU seconds per rule, after and (where measured) before."""
    before = (r.get("before") or {}).get("rules", {})
    lines = ["| rule | jobs | CPU s | jobs before | CPU s before |", "|---|---:|---:|---:|---:|"]
    for rule in sorted(set(r["rules"]) | set(before)):
        a, b = r["rules"].get(rule, {}), before.get(rule, {})
        lines.append(f"| `{rule}` | {a.get('jobs', '-')} | {a.get('cpu_s', '-')} | {b.get('jobs', '-')} | {b.get('cpu_s', '-')} |")
    total = sum(v["cpu_s"] for v in r["rules"].values())
    train = r["rules"].get("train_lab_vlm", {}).get("cpu_s", 0.0)
    return ("\n".join(lines) + f"\n\nCPU seconds of the rules that have a `benchmark:` file, summed: {total:.0f} s, of which the lab VLM's training "
            f"{train:.0f} s ({100 * train / total:.0f} %). On 2 cores the run cannot take less than half the sum: {total / 2:.0f} s.\n")


def markdown(r: dict) -> str:
    g, b = r["glov_jobs"], r["before"]
    before = (f"| the same command at `{b['rev']}` (one process per step), same session | {b['full_run_s']} s | | "
              f"this revision is **{b['speedup']}× faster** (target ≥ 3×) {'✔' if b['speedup'] >= 3 else '✘'} |\n") if b else ""
    share, plan = g["overhead_share"], r["paper_plan"]
    plan_before = f" (at `{b['rev']}`: {b['paper_plan']['jobs']} jobs, {b['paper_plan']['planning_s']} s)" if b else ""
    return f"""## Workflow (`bench_workflow.py`)

`snakemake --cores all` with the default `params.yaml` in a fresh copy of the repository (models built,
datasets exported, every method), then again with nothing to do.

| what | wall | peak RSS | ratio |
|---|---:|---:|---|
| full offline run ({r["jobs"]} jobs) | {r["full_run_s"]} s | {r["full_run_peak_rss_mb"]} MB (largest process) | 1.00 |
{before}| GLOV jobs (`glov_steps`, {g["jobs"]} jobs: all steps of both alpha chains of a dataset) | {g["job_s"]} s summed | | imports {g["startup_s"]} s + model loading and MLflow set-up {g["load_s"]} s = **{100 * share:.1f} %** of their wall (target ≤ 10 %) {"✔" if share <= 0.10 else "✘"} |
| `snakemake --cores all`, nothing to do | {r["noop_s"]} s | | {r["noop_over_startup"]}× `snakemake --version` ({r["snakemake_startup_s"]} s); {100 * r["noop_over_full_run"]:.1f} % of the full run |

`snakemake -n --cores all --configfile config/paper.yaml` (the paper's whole DAG, planned without data or
weights): **{plan["jobs"]} jobs** (target ≤ 1,500) {"✔" if plan["jobs"] <= 1500 else "✘"}, planned in **{plan["planning_s"]} s**
(target ≤ 30 s) {"✔" if plan["planning_s"] <= 30 else "✘"}{plan_before}.

Where the run's time goes (Snakemake's `benchmark:` files of the same runs):

{breakdown_table(r)}"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--keep", action="store_true", help="keep the temporary copy (printed) for inspection")
    ap.add_argument("--before", help="a git revision whose default run is timed first, for the before/after ratio")
    command_line(run, ap)


if __name__ == "__main__":
    main()
