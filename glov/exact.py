"""``glov diff --exact A B``: are two runs byte-identical, and if not, where do they part?

A user who reruns a configuration on another machine, after upgrading a library, or in a fresh
clone asks whether the results are the same bytes. This compares the two runs artifact by artifact
in the workflow's order (manifests, embeddings, descriptions, LLaMP's training, every optimisation
step job by job, scores, baselines, oracles, then the tables), reports the first that differs — for
a step file its chain, step and first differing candidate — and puts the provenance records of the
job that wrote it side by side (:func:`glov.provenance.record_job`: its params, code, the digests of
its inputs and the environment: library versions, torch's threads, the CPU's instruction set).

A results directory is compared file by file. A git revision or DVC experiment holds only what DVC
caches (tables, metrics, curves, plots, ``results/correct.json``); the work itself is not cached,
so for it only the recorded folder hashes can be compared, and the output says so.
Exit status: 0 when identical, 1 when not (errors: 2), so CI and users can use it as a check.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from glov.diff import DiffError, _commit, _dvc_cache_file, _dvc_lock, params_diff
from glov.io import file_digest
from glov.paths import RUN_DIR

# what a run is made of, in the order the workflow makes it (the first difference is the earliest)
ORDER = ("results/data", "results/embeddings", "results/descriptions", "results/llamp", "results/runs", "results/baselines",
         "results/oracle", "results/ablation", "results/correct.json", "results/metrics.json", "results/tables", "results/curves",
         "results/plots")
_STEP = re.compile(re.sub(r"\\\{(\w+)\\\}", lambda m: f"(?P<{m[1]}>[^/]+)", re.escape(RUN_DIR)) + r"/(?:step_(?P<step>\d+)|score)\.json$")


@dataclass(frozen=True)
class Run:
    label: str
    files: dict[str, str]  # path in the project -> content digest
    root: Path | None  # a results directory (its files can be opened), or None (a revision: hashes only)


def _order(path: str) -> tuple:
    """Workflow order: by artefact family; steps job by job ((dataset, seed), step, then alpha), each
    chain's score after its steps."""
    group = next((i for i, g in enumerate(ORDER) if path == g or path.startswith(g + "/")), len(ORDER))
    m = _STEP.match(path)
    if m:
        step = int(m["step"]) if m["step"] is not None else 10**6
        return group, m["dataset"], m["vlm"], m["llm"], int(m["seed"]), step, float(m["alpha"]), path
    return group, path


def directory_run(path: Path) -> Run:
    root = path.parent if path.name == "results" else path
    results = root / "results"
    if not results.is_dir():
        raise DiffError(f"{path} has no results/ folder: run the workflow there first (snakemake --cores all)")
    files = {p.relative_to(root).as_posix(): file_digest(p) for p in results.rglob("*")
             if p.is_file() and "provenance" not in p.relative_to(results).parts[:1] and not p.name.startswith(".")}
    return Run(str(path), files, root)


def _dvc_entries(repo: Path, out: Mapping[str, Any]) -> dict[str, str]:
    """One dvc.lock output as path -> md5: a file directly, a cached folder through its listing."""
    path, md5 = out["path"], out.get("md5", "")
    if not md5.endswith(".dir"):
        return {path: md5}
    listing = _dvc_cache_file(repo, md5)
    if not listing.is_file():
        return {path: md5}  # not cached (the work itself: cache false): its folder hash only
    return {f"{path}/{e['relpath']}": e["md5"] for e in json.loads(listing.read_text())}


def revision_run(repo: Path, ref: str) -> Run:
    commit = _commit(repo, ref)
    lock = _dvc_lock(repo, commit) if commit else None
    if not lock:
        raise DiffError(f"{ref!r} is neither a results directory nor a revision or DVC experiment with a dvc.lock in {repo.resolve()}")
    files: dict[str, str] = {}
    for stage in (lock.get("stages") or {}).values():
        for out in stage.get("outs") or []:
            files.update(_dvc_entries(repo, out))
    return Run(f"{ref} ({commit[:7]})", files, None)


def load_run(ref: str, repo: str | Path = ".") -> Run:
    path = Path(ref)
    return directory_run(path) if path.is_dir() else revision_run(Path(repo), ref)


@dataclass(frozen=True)
class Divergence:
    path: str
    what: str  # where inside the artefact, in words
    only_in: str = ""  # "A" or "B" when the other run lacks the artefact


def compare_runs(a: Run, b: Run) -> list[Divergence]:
    """Every artefact that differs, earliest first (workflow order)."""
    out = []
    for path in sorted(a.files.keys() | b.files.keys(), key=_order):
        if path not in a.files or path not in b.files:
            out.append(Divergence(path, "", "A" if path in a.files else "B"))
        elif a.files[path] != b.files[path]:
            out.append(Divergence(path, _inside(a, b, path)))
    return out


def _inside(a: Run, b: Run, path: str) -> str:
    """Where two versions of one artefact part: for a step file, its meta-prompt or first candidate."""
    if a.root is None or b.root is None or not path.endswith(".json"):
        return ""
    try:
        x, y = (json.loads((r.root / path).read_text()) for r in (a, b))
    except (OSError, ValueError):
        return ""
    m = _STEP.match(path)
    if m and m["step"] is not None:
        where = f"chain {m['dataset']} alpha {m['alpha']} seed {m['seed']}, step {int(m['step'])}"
        if x.get("meta_prompt") != y.get("meta_prompt"):
            return f"{where}: the meta-prompt differs"
        xs, ys = x.get("candidates", []), y.get("candidates", [])
        for i, (cx, cy) in enumerate(zip(xs, ys)):
            if cx != cy:
                fields = sorted(k for k in cx.keys() | cy.keys() if cx.get(k) != cy.get(k))
                detail = "; ".join(f"{k}: {json.dumps(cx.get(k))[:80]} vs {json.dumps(cy.get(k))[:80]}" for k in fields)
                return f"{where}, candidate {i + 1}: {detail}"
        if len(xs) != len(ys):
            return f"{where}, candidate {min(len(xs), len(ys)) + 1}: only in {'A' if len(xs) > len(ys) else 'B'} ({len(xs)} vs {len(ys)} candidates)"
        return f"{where}: " + ", ".join(sorted(k for k in x.keys() | y.keys() if x.get(k) != y.get(k)))
    keys = sorted(k for k in (x.keys() | y.keys() if isinstance(x, dict) and isinstance(y, dict) else []) if x.get(k) != y.get(k))
    return "fields " + ", ".join(keys[:8]) if keys else ""


def provenance_of(run: Run, path: str) -> dict | None:
    """The provenance record of the job that wrote ``path`` (a results directory only)."""
    if run.root is None:
        return None
    for record_path in sorted((run.root / "results" / "provenance").rglob("*.json")):
        try:
            record = json.loads(record_path.read_text())
        except (OSError, ValueError):
            continue
        if path in record.get("outputs", []):
            return record
    return None


def _side_by_side(a: Mapping, b: Mapping) -> list[str]:
    rows = params_diff(a, b)
    return [f"    {k}: {x} | {y}" for k, x, y in rows] or ["    (identical)"]


def format_exact(a: Run, b: Run, divergences: list[Divergence]) -> str:
    compared = len(a.files.keys() | b.files.keys())
    lines = [f"A: {a.label}", f"B: {b.label}"]
    if a.root is None or b.root is None:
        lines.append("a revision or experiment holds only what DVC caches (tables, metrics, curves, plots, correct.json); "
                     "its steps and baselines are compared by their folder hash only")
    if not divergences:
        return "\n".join(lines + [f"identical: {compared} artefacts, byte for byte"]) + "\n"
    first = divergences[0]
    lines += [f"different: {len(divergences)} of {compared} artefacts", "",
              f"first difference, in the workflow's order: {first.path}"
              + (f" (only in {first.only_in})" if first.only_in else "") + (f"\n  {first.what}" if first.what else "")]
    records = [provenance_of(r, first.path) for r in (a, b)]
    if all(records):
        ra, rb = records
        lines += ["", f"the job that wrote it: {ra['rule']} {ra['wildcards']}, A | B:",
                  f"  code: {ra['code']} | {rb['code']}",
                  "  params:", *_side_by_side(ra["params"], rb["params"]),
                  "  inputs (digests):", *_side_by_side(ra["inputs"], rb["inputs"]),
                  "  environment:", *_side_by_side(ra["environment"], rb["environment"])]
    else:
        lines += ["", "no provenance record of the job that wrote it in " + " and ".join(r.label for r, rec in zip((a, b), records) if not rec)
                  + " (results/provenance/: written by every job since 2026-12-05)"]
    lines += ["", "every difference:"] + [f"  {d.path}" + (f" (only in {d.only_in})" if d.only_in else "") for d in divergences[:50]]
    if len(divergences) > 50:
        lines.append(f"  ... and {len(divergences) - 50} more")
    return "\n".join(lines) + "\n"


def exact(ref_a: str, ref_b: str, repo: str | Path = ".") -> tuple[int, str]:
    """(exit status, report): 0 when the two runs are byte-identical, 1 when not."""
    a, b = load_run(ref_a, repo), load_run(ref_b, repo)
    if (a.root is None) != (b.root is None):
        raise DiffError("--exact compares two results directories, or two revisions/experiments (DVC records those by its own "
                        "hashes, for the cached outputs only), not one of each: record the directory as an experiment "
                        "(`dvc exp run -n NAME`), or check the revision's results out into a directory")
    divergences = compare_runs(a, b)
    return (1 if divergences else 0), format_exact(a, b, divergences)
