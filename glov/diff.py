"""``glov diff A B``: what changed between two runs, in accuracy per dataset and method, and in params.

A and B may each be a results directory (a checkout or copy of the project, or its ``results/``
folder), a git revision, or a DVC experiment name (DVC keeps experiments as git refs under
``refs/exps``). Every run writes ``results/metrics.json`` with keys ``<method>/<dataset>/test_acc``
and is described by its ``params.yaml``, so that is all this reads. A revision or experiment keeps
its metrics in DVC's cache, found through the hash its ``dvc.lock`` records (older commits that
carried ``results/metrics.json`` in git are read from git).
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml

from glov.tables import LABELS
from glov.tracking import flatten


class DiffError(RuntimeError):
    """A run cannot be found or read. The message says what was tried."""


@dataclass(frozen=True)
class Snapshot:
    label: str
    metrics: dict[str, float]
    params: dict[str, Any]


def _git(repo: Path, *args: str) -> str | None:
    r = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)
    return r.stdout if r.returncode == 0 else None


def _experiment_commit(repo: Path, name: str) -> str | None:
    refs = (_git(repo, "for-each-ref", "--format=%(refname) %(objectname)", "refs/exps") or "").splitlines()
    found = [sha for ref, sha in (line.split() for line in refs) if ref.rsplit("/", 1)[-1] == name]
    return found[-1] if found else None


def _from_directory(path: Path) -> Snapshot:
    root = path.parent if path.name == "results" else path
    metrics_file = root / "results" / "metrics.json"
    if not metrics_file.exists():
        raise DiffError(f"{path} has no results/metrics.json: run the workflow there first (snakemake --cores all)")
    params_file = root / "params.yaml"
    params = yaml.safe_load(params_file.read_text()) if params_file.exists() else {}
    return Snapshot(str(path), json.loads(metrics_file.read_text()), params or {})


def _dvc_cached(repo: Path, commit: str, path: str) -> str | None:
    """The content of output ``path`` as ``dvc.lock`` at ``commit`` records it, from the local DVC cache."""
    lock = yaml.safe_load(_git(repo, "show", f"{commit}:dvc.lock") or "") or {}
    for stage in (lock.get("stages") or {}).values():
        for out in stage.get("outs") or []:
            if out.get("path") == path and out.get("md5"):
                blob = repo / ".dvc" / "cache" / "files" / "md5" / out["md5"][:2] / out["md5"][2:]
                return blob.read_text() if blob.is_file() else None
    return None


def _from_revision(repo: Path, ref: str) -> Snapshot:
    commit = _experiment_commit(repo, ref) or (_git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}") or "").strip()
    if not commit:
        raise DiffError(
            f"{ref!r} is neither a results directory, a git revision nor a DVC experiment of {repo.resolve()} "
            "(list them with `git log --oneline` and `dvc exp show`)"
        )
    metrics = _dvc_cached(repo, commit, "results/metrics.json") or _git(repo, "show", f"{commit}:results/metrics.json")
    if metrics is None:
        raise DiffError(
            f"revision {ref} ({commit[:7]}) records no results/metrics.json in this clone's DVC cache: results are "
            "versioned by DVC experiments, not by git (run one with `dvc exp run -n NAME`, list them with "
            "`dvc exp show`), or compare two results directories"
        )
    params = _git(repo, "show", f"{commit}:params.yaml")
    return Snapshot(f"{ref} ({commit[:7]})", json.loads(metrics), yaml.safe_load(params or "") or {})


def load_snapshot(ref: str, repo: str | Path = ".") -> Snapshot:
    path = Path(ref)
    return _from_directory(path) if path.is_dir() else _from_revision(Path(repo), ref)


def params_diff(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(key, A, B) for every flattened key whose JSON value differs; ``-`` where a run lacks it."""
    fa, fb = flatten(a), flatten(b)
    return [(k, fa.get(k, "-"), fb.get(k, "-")) for k in sorted(fa.keys() | fb.keys()) if fa.get(k) != fb.get(k)]


def accuracy_table(a: Mapping[str, float], b: Mapping[str, float]) -> dict[str, dict[str, tuple[float | None, float | None]]]:
    """dataset -> method -> (A, B) test accuracy; None where a run lacks it."""
    table: dict[str, dict[str, tuple[float | None, float | None]]] = {}
    for key in sorted(a.keys() | b.keys()):
        method, dataset, metric = (key.split("/") + ["", ""])[:3]
        if metric == "test_acc":
            table.setdefault(dataset, {})[method] = (a.get(key), b.get(key))
    return table


def _cell(pair: tuple[float | None, float | None]) -> str:
    x, y = pair
    if x is None or y is None:
        return f"{'-' if x is None else f'{x:.1f}'} -> {'-' if y is None else f'{y:.1f}'}"
    return f"{y - x:+.1f} ({x:.1f} -> {y:.1f})"


def format_diff(a: Snapshot, b: Snapshot) -> str:
    table = accuracy_table(a.metrics, b.metrics)
    methods = [m for m in LABELS if any(m in row for row in table.values())]
    methods += sorted({m for row in table.values() for m in row} - set(methods))
    datasets = sorted(d for d in table if d != "mean") + (["mean"] if "mean" in table else [])
    lines = [f"A: {a.label}", f"B: {b.label}", "", "test top-1 accuracy, B - A (A -> B):", "",
             "| dataset | " + " | ".join(LABELS.get(m, m) for m in methods) + " |", "|---|" + "---|" * len(methods)]
    lines += ["| " + d + " | " + " | ".join(_cell(table[d].get(m, (None, None))) for m in methods) + " |" for d in datasets]
    changed = params_diff(a.params, b.params)
    lines += ["", "params that differ:" if changed else "params: identical"]
    lines += [f"  {k}: {x} -> {y}" for k, x, y in changed]
    return "\n".join(lines) + "\n"
