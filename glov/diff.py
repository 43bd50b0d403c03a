"""``glov diff A B``: what changed between two runs, in accuracy per dataset and method, and in params.

A and B may each be a results directory (a checkout or copy of the project, or its ``results/``
folder), a git revision, or a DVC experiment name (DVC keeps experiments as git refs under
``refs/exps``). Every run writes ``results/metrics.json`` with keys ``<method>/<dataset>/test_acc``,
``results/correct.json`` with which test images each of those results gets right, and is described
by its ``params.yaml``, so that is all this reads. A revision or experiment keeps its metrics and
correctness records in DVC's cache, found through the hashes its ``dvc.lock`` records (older commits
that carried ``results/metrics.json`` in git are read from git). A directory without
``results/correct.json`` (run before it existed) is read from its score and baseline files.

Each difference B - A comes with the 95 % interval of :func:`glov.stats.difference` (seeds, then test
images: paired where both runs scored the same ones) and is marked ``*`` as changed only when that
interval excludes 0. Runs without correctness records get the plain difference, and the output says so.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import yaml

from glov.stats import Interval, Side, difference, format_interval, interval_seed, method_side, read_correctness
from glov.tables import LABELS
from glov.tracking import flatten

Correct = dict[str, dict[str, dict[int, tuple[str, str]]]]  # method -> dataset -> seed -> (test_correct, test_set)


class DiffError(RuntimeError):
    """A run cannot be found or read. The message says what was tried."""


@dataclass(frozen=True)
class Snapshot:
    label: str
    metrics: dict[str, float]
    params: dict[str, Any]
    correct: Correct | None = None  # None: the run records no per-image correctness (older runs)


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
    params = (yaml.safe_load(params_file.read_text()) if params_file.exists() else {}) or {}
    correct_file = root / "results" / "correct.json"
    correct = read_correctness(json.loads(correct_file.read_text())) if correct_file.exists() else _from_result_files(root, params)
    return Snapshot(str(path), json.loads(metrics_file.read_text()), params, correct)


def _from_result_files(root: Path, raw_params: Mapping[str, Any]) -> Correct | None:
    """A run written before results/correct.json: the same records from the score and baseline files
    its params name (the files aggregate reads), or None where there are none."""
    from glov import config as C
    from glov import paths
    from glov.config import BASELINE_METHODS
    from glov.jobs.tables import result_records
    from glov.stats import correctness_file

    try:
        params = C.from_dict(raw_params)
    except C.ConfigError:  # params of another version of the code: no records rather than a wrong guess
        return None
    run = dict(vlm=params.vlm.name, llm=params.llm.name)
    entries = [(d, a, s) for d in params.data.datasets for a in C.glov_alphas(params) for s in params.seeds]
    scores = {e: root / paths.SCORE.format(dataset=e[0], alpha=C.alpha_tag(e[1]), seed=e[2], **run) for e in entries}
    scores = {e: p for e, p in scores.items() if p.is_file()}
    baselines = [root / paths.BASELINE.format(dataset=d, method=m, seed=s, **run) for d in params.data.datasets
                 for m in params.methods if m in BASELINE_METHODS for s in params.seeds]
    records = result_records(list(scores), [str(p) for p in scores.values()], [str(p) for p in baselines if p.is_file()])
    return read_correctness(correctness_file(records)) or None


def _commit(repo: Path, ref: str) -> str:
    """The commit of a DVC experiment name or a git revision; empty when ``ref`` is neither."""
    return _experiment_commit(repo, ref) or (_git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}") or "").strip()


def _dvc_lock(repo: Path, commit: str) -> dict:
    """``dvc.lock`` as ``commit`` holds it ({} without one)."""
    return yaml.safe_load(_git(repo, "show", f"{commit}:dvc.lock") or "") or {}


def _dvc_cache_file(repo: Path, md5: str) -> Path:
    """Where the local DVC cache keeps the content with this md5."""
    return repo / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]


def _dvc_cached(repo: Path, lock: dict, path: str) -> str | None:
    """The content of output ``path`` as ``lock`` (:func:`_dvc_lock`) records it, from the local DVC cache."""
    for stage in (lock.get("stages") or {}).values():
        for out in stage.get("outs") or []:
            if out.get("path") == path and out.get("md5"):
                blob = _dvc_cache_file(repo, out["md5"])
                return blob.read_text() if blob.is_file() else None
    return None


def _from_revision(repo: Path, ref: str) -> Snapshot:
    commit = _commit(repo, ref)
    if not commit:
        raise DiffError(
            f"{ref!r} is neither a results directory, a git revision nor a DVC experiment of {repo.resolve()} "
            "(list them with `git log --oneline` and `dvc exp show`)"
        )
    lock = _dvc_lock(repo, commit)
    metrics = _dvc_cached(repo, lock, "results/metrics.json") or _git(repo, "show", f"{commit}:results/metrics.json")
    if metrics is None:
        raise DiffError(
            f"revision {ref} ({commit[:7]}) records no results/metrics.json in this clone's DVC cache: results are "
            "versioned by DVC experiments, not by git (run one with `dvc exp run -n NAME`, list them with "
            "`dvc exp show`), or compare two results directories"
        )
    params = _git(repo, "show", f"{commit}:params.yaml")
    correct = _dvc_cached(repo, lock, "results/correct.json")
    return Snapshot(f"{ref} ({commit[:7]})", json.loads(metrics), yaml.safe_load(params or "") or {},
                    read_correctness(json.loads(correct)) if correct else None)


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


@dataclass(frozen=True)
class Cell:
    """One (dataset, method) of a diff: A's and B's test accuracy (None where a run lacks it) and the
    interval of B - A (None without correctness records on both sides)."""

    a: float | None
    b: float | None
    interval: Interval | None = None

    @property
    def changed(self) -> bool:
        return self.interval is not None and self.interval.changed


def _side(correct: Correct | None, method: str, dataset: str) -> Side | None:
    return method_side(method, (correct or {}).get(method, {}).get(dataset) or {})


def compare(a: Snapshot, b: Snapshot, resamples: int = 2000) -> dict[str, dict[str, Cell]]:
    """dataset -> method -> :class:`Cell`, B - A, every interval seeded by the cell it is for."""
    cells: dict[str, dict[str, Cell]] = {}
    for dataset, row in accuracy_table(a.metrics, b.metrics).items():
        for method, (x, y) in row.items():
            sides = _side(b.correct, method, dataset), _side(a.correct, method, dataset)
            interval = difference(*sides, resamples, interval_seed("diff", method, dataset)) if all(sides) and None not in (x, y) else None
            if interval is not None:  # B - A, its seeds read in the order A -> B as the cell is
                interval = replace(interval, n_a=interval.n_b, n_b=interval.n_a)
            cells.setdefault(dataset, {})[method] = Cell(x, y, interval)
    return cells


def _cell(cell: Cell) -> str:
    x, y = cell.a, cell.b
    if x is None or y is None:
        return f"{'-' if x is None else f'{x:.1f}'} -> {'-' if y is None else f'{y:.1f}'}"
    if cell.interval is not None:
        return format_interval(cell.interval, f"{x:.1f} -> {y:.1f}")
    return f"{y - x:+.1f} ({x:.1f} -> {y:.1f})"


def _resamples(a: Snapshot, b: Snapshot) -> int:
    """``ablation.bootstrap`` of B's params (else A's), as lab.md and protocol.md use it."""
    for params in (b.params, a.params):
        value = (params.get("ablation") or {}).get("bootstrap")
        if isinstance(value, int) and value > 0:
            return value
    return _default_resamples()


@lru_cache(maxsize=1)
def _default_resamples() -> int:
    """The schema's default ``ablation.bootstrap`` (building the default params validates them all:
    once per process, not once per table the diff prints)."""
    from glov import config as C

    return C.from_dict({}).ablation.bootstrap


def _layout(table: Mapping[str, Mapping[str, Cell]]) -> tuple[list[str], list[str]]:
    """The diff's columns (methods, in the tables' order) and rows (datasets, the mean last)."""
    methods = [m for m in LABELS if any(m in row for row in table.values())]
    methods += sorted({m for row in table.values() for m in row} - set(methods))
    return methods, sorted(d for d in table if d != "mean") + (["mean"] if "mean" in table else [])


def format_diff(a: Snapshot, b: Snapshot, table: Mapping[str, Mapping[str, Cell]] | None = None) -> str:
    """The diff as text; ``table``: :func:`compare`'s cells, if already computed."""
    resamples = _resamples(a, b)
    table = table if table is not None else compare(a, b, resamples)
    methods, datasets = _layout(table)
    lines = [f"A: {a.label}", f"B: {b.label}", ""]
    missing = [s.label for s in (a, b) if s.correct is None]
    if missing:
        lines += [f"no per-image records (results/correct.json) in {' and '.join(missing)}: plain differences B - A (A -> B), "
                  "no intervals; rerun the workflow there to get them", ""]
    else:
        lines += ["test top-1 accuracy, B - A [95 % interval] * (A -> B; seeds); * = changed: the interval excludes 0",
                  f"intervals: seeds, then test images ({resamples} two-level bootstrap resamples, glov.stats); 'unpaired images': "
                  "the runs scored different test images, drawn independently; the mean row has none", ""]
    lines += ["| dataset | " + " | ".join(LABELS.get(m, m) for m in methods) + " |", "|---|" + "---|" * len(methods)]
    lines += ["| " + d + " | " + " | ".join(_cell(table[d].get(m, Cell(None, None))) for m in methods) + " |" for d in datasets]
    changed = params_diff(a.params, b.params)
    lines += ["", "params that differ:" if changed else "params: identical"]
    lines += [f"  {k}: {x} -> {y}" for k, x, y in changed]
    return "\n".join(lines) + "\n"


def diff_html(a: Snapshot, b: Snapshot, table: Mapping[str, Mapping[str, Cell]] | None = None) -> str:
    """The diff as a page a person reads: the same cells as :func:`format_diff`, each changed cell
    (its interval excludes 0) highlighted, and the params that differ."""
    from html import escape

    from glov.tables import HTML_STYLE

    resamples = _resamples(a, b)
    table = table if table is not None else compare(a, b, resamples)
    methods, datasets = _layout(table)
    head = "".join(f"<th>{escape(LABELS.get(m, m))}</th>" for m in methods)
    rows = []
    for d in datasets:
        cells = []
        for m in methods:
            cell = table[d].get(m, Cell(None, None))
            cls = ' class="changed" title="changed: the 95 % interval excludes 0"' if cell.changed else ""
            cells.append(f"<td{cls}>{escape(_cell(cell))}</td>")
        rows.append(f"<tr><th>{escape(d)}</th>{''.join(cells)}</tr>")
    changed = params_diff(a.params, b.params)
    params = "".join(f"<li><code>{escape(k)}</code>: {escape(str(x))} → {escape(str(y))}</li>" for k, x, y in changed) or "<li>identical</li>"
    note = ("test top-1 accuracy, B − A with its 95 % interval over the runs' seeds and test images (glov.stats, "
            f"{resamples} resamples); highlighted: changed, the interval excludes 0")
    style = HTML_STYLE + "table td.changed{background:#fde68a;font-weight:600}"  # after the striped rows: it wins on them too
    return (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>glov diff</title><style>{style}</style></head><body>\n'
            f"<h1>glov diff</h1><p>A: {escape(a.label)}<br>B: {escape(b.label)}</p><p>{escape(note)}</p>\n"
            f"<table><thead><tr><th>dataset</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>\n"
            f"<h2>params that differ</h2><ul>{params}</ul></body></html>\n")


def write_html(a: Snapshot, b: Snapshot, out: str | Path, table: Mapping[str, Mapping[str, Cell]] | None = None) -> Path:
    from glov.io import write_text

    write_text(out, diff_html(a, b, table))
    return Path(out)
