"""The result store: every finished optimisation step and baseline, kept under a key naming all it
was computed from, so no rerun computes it twice.

Snakemake deletes all outputs of a job before it runs the job again (after a kill, a failure, a new
alpha chain or method among its outputs, a deleted file, more steps, a changed param of one
method), and a run with other params writes to the same ``results/runs`` files. Each result JSON is
therefore also linked here under its key (:mod:`glov.provenance`: the code, its params, the digests
of the data, embeddings and model weights it read, the state it started from); a rerun takes the
result from the store when the key matches. Every key ever saved is kept, so switching between DVC
experiments restores each one's results instead of computing them again (``glov gc`` prunes).
Entries are hard links to the result files (a copy across file systems): an entry costs no space
while the workspace holds the same file, and keeps an older version alive once the workspace has
moved on. ``rm -r .snakemake/glov`` forgets them all.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

STORE_DIR = Path(".snakemake/glov/store")


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """A hash of the ``glov`` package, its data included (dataset descriptions in data/meta, the
    schema and its defaults, the published numbers): stored work is reused only by the same code.
    Computed once per process (a job asks for it at every step of every chain)."""
    return package_fingerprint(Path(__file__).resolve().parent)


def package_fingerprint(root: Path) -> str:
    """Every file of a package tree but compiled bytecode, by relative name and content."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


class ResultStore:
    """Every finished result of a job that writes many (optimisation steps, baselines), kept where
    Snakemake does not look, one folder per output path, one entry per key."""

    def __init__(self, root: str | Path = STORE_DIR):
        self.root = Path(root)

    def _dir(self, output: str | Path) -> Path:
        """Mirrors the output's path in the project (a hash for one outside it)."""
        from glov.paths import project_path

        relative = Path(project_path(output))
        if relative.is_absolute():
            relative = Path(hashlib.sha256(str(relative).encode()).hexdigest()[:16])
        return self.root / relative.with_suffix("")

    def restore(self, output: str | Path, key: str) -> dict | None:
        """Put the stored result back at ``output`` and return it; None if nothing matches ``key``."""
        from glov.io import read_json

        entry = self._dir(output) / f"{key}.json"
        try:
            record = read_json(entry)
        except (OSError, ValueError):
            return None
        _link(entry, Path(output))
        return record

    def save(self, output: str | Path, key: str) -> None:
        """Keep the finished ``output`` under ``key``, beside the other keys this output held."""
        _link(Path(output), self._dir(output) / f"{key}.json")


def _link(src: Path, dest: Path) -> None:
    """``dest`` becomes ``src``'s file, atomically: a hard link, or a copy where links cannot be made."""
    from glov.io import atomic_path

    with atomic_path(dest) as tmp:
        tmp.unlink()
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)


# --- pruning and reporting (glov gc) ----------------------------------------------------------------


@dataclass(frozen=True)
class Usage:
    entries: int
    bytes_total: int  # the store's own space: entries whose file the workspace no longer holds
    in_use: int  # entries whose file is a result file of the workspace now (they cost nothing)


def _entries(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.json") if p.is_file() and not p.name.startswith(".")) if root.is_dir() else []


def _in_use(entry: Path, root: Path) -> bool:
    """Whether the workspace's result file at the entry's output path is this very file (the store
    mirrors output paths, so the output of ``<root>/a/b/<key>.json`` is ``a/b.json``)."""
    output = entry.parent.relative_to(root).with_suffix(".json")
    try:
        return os.path.samefile(entry, output)
    except OSError:
        return False


def usage(root: str | Path = STORE_DIR) -> Usage:
    """How many entries the store holds, how many the workspace uses now, and the space the others
    take (a file's space counted once however many entries link it)."""
    root = Path(root)
    seen, total, used = set(), 0, 0
    entries = _entries(root)
    for entry in entries:
        if _in_use(entry, root):
            used += 1
            continue
        st = entry.stat()
        if (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            total += st.st_size
    return Usage(len(entries), total, used)


def prune(root: str | Path = STORE_DIR, older_than_days: float | None = None, keep_current_only: bool = False,
          dry_run: bool = False) -> list[Path]:
    """Remove entries the workspace does not use now: all of them (``keep_current_only``), or those
    not saved or restored for ``older_than_days`` (an entry's inode changes, ``ctime``, whenever it is
    linked: saved, or restored into the workspace). Returns what was (or would be) removed."""
    root = Path(root)
    cutoff = None if older_than_days is None else time.time() - older_than_days * 86400
    removed = [e for e in _entries(root) if not _in_use(e, root) and (keep_current_only or (cutoff is not None and e.stat().st_ctime < cutoff))]
    if not dry_run:
        for entry in removed:
            entry.unlink(missing_ok=True)
    return removed
