"""Atomic file writes: a crash or kill mid-write never leaves a half-written artefact.

Every artefact is written to a temporary file in the same directory and renamed into place,
so readers (and Snakemake's completeness checks) only ever see whole files. The file is flushed to
disk before the rename and the folder after it: without that, a power loss or node crash can leave
the new name pointing at an empty file (ext4, XFS), and a hard-linked result-store entry with it.
A job that writes thousands of small files (a dataset export) syncs them all at once instead, when
it ends (:func:`synced_at_end`): each flush costs milliseconds on a busy disk.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Iterator


_UMASK = os.umask(0)
os.umask(_UMASK)
_DEFERRED: ContextVar[bool] = ContextVar("glov_io_deferred_sync", default=False)
_SYNCED_AT_END: ContextVar[frozenset[int]] = ContextVar("glov_io_synced_devices", default=frozenset())  # enclosing blocks' file systems


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only on success."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give artefacts normal permissions
    try:
        yield Path(tmp)
        deferred = _DEFERRED.get()
        if not deferred:
            _fsync(tmp)
        os.replace(tmp, target)
        if not deferred:
            _fsync_folder(target.parent)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _fsync(path: str | os.PathLike) -> None:
    """Flush a file's content to disk, however it was written (by us, torch or a hard link)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable. Some file systems (and Windows) cannot sync a folder:
    the rename is then as durable as they make it."""
    try:
        _fsync(folder)
    except OSError:
        pass


@contextmanager
def synced_at_end(folder: str | os.PathLike) -> Iterator[None]:
    """Atomic writes in the block skip their own flushes; leaving it without an error syncs the file
    system of ``folder`` once, which makes them all durable. For outputs that only count once their
    job has ended: a crash before then reruns the job (Snakemake marks it incomplete). Inside a
    block that syncs the same file system when it ends (an export inside :func:`atomic_dir`), that
    block's sync serves both."""
    device = os.stat(folder).st_dev
    enclosing = _SYNCED_AT_END.get()
    tokens = _DEFERRED.set(True), _SYNCED_AT_END.set(enclosing | {device})
    try:
        yield
    finally:
        _DEFERRED.reset(tokens[0])
        _SYNCED_AT_END.reset(tokens[1])
    if device not in enclosing:
        _syncfs(folder)


def _syncfs(folder: str | os.PathLike) -> None:
    """Flush every file system buffer of ``folder``'s file system (Linux ``syncfs``; elsewhere the
    whole machine's, ``sync``)."""
    import ctypes

    fd = os.open(folder, os.O_RDONLY)
    try:
        syncfs = getattr(ctypes.CDLL(None, use_errno=True), "syncfs", None)
        if syncfs is None or syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Stable JSON (sorted keys, fixed indent) so equal content gives byte-identical files."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def write_torch(path: str | os.PathLike, obj: Any) -> None:
    """``torch.save`` through a buffer: saved to a file, torch names the archive's records after the
    file, here a random temporary name, so equal content would give different bytes (found by
    `glov diff --exact` between two fresh clones' runs)."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getbuffer())


def download(url: str, timeout: float = 30) -> bytes:
    """A URL's bytes; raises OSError (no network, HTTP error) for the caller to name the offline route."""
    import urllib.request

    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_digest(path: str | os.PathLike) -> str:
    """sha256 of a file's content, read in chunks (embedding caches can be large)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


@contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Build a folder under a temporary name beside ``path`` (``.<name>.partial``) and rename it
    onto ``path`` only when the body has finished: a kill mid-way never leaves a folder at ``path``
    that looks complete. What an earlier kill left under the temporary name is discarded first."""
    import shutil

    target = Path(path)
    partial = target.with_name(f".{target.name}.partial")
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    try:
        with synced_at_end(partial):  # every file of the folder on disk before the name says it is complete
            yield partial
        if target.exists():
            shutil.rmtree(target)
        os.replace(partial, target)
        _fsync_folder(target.parent)
    finally:
        if partial.exists():
            shutil.rmtree(partial)
