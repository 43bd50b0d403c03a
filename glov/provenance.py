"""What a result was computed from: the digests of the files it read (data, embeddings, model
weights) and the environment it ran in.

A stored result is reused only when everything it depends on is the same (glov.store): its key
holds these digests, not just the params. Hashing a 16 GB LLM for every job would cost minutes, so
a file's digest is kept beside its size and modification time (in ``.snakemake/glov/digests.json``)
and computed again only when either changes, as DVC and git do. The environment record (library
versions, torch's thread count, the CPU's instruction set) goes into the training record and the
run's provenance, so `glov diff --exact` can say where two runs' inputs part.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from functools import lru_cache
from pathlib import Path
from typing import Iterable

DIGESTS = Path(".snakemake/glov/digests.json")
_SKIP = {"training.json"}  # records about a model, not part of it


def _cache() -> dict:
    try:
        return json.loads(DIGESTS.read_text())
    except (OSError, ValueError):
        return {}


def _stamp(st: os.stat_result) -> list[int]:
    """What says a file is unchanged: size, inode (every atomic write makes a new one), and both
    times at nanosecond resolution (a file system with coarse times still changes the inode)."""
    return [st.st_size, st.st_ino, st.st_mtime_ns, st.st_ctime_ns]


def digests(paths: Iterable[str | os.PathLike]) -> list[str]:
    """sha256 of each file's content, remembered against its :func:`_stamp`, so an unchanged file is
    not read again. The cache is read once and, if anything was new, merged and written once."""
    from glov.io import file_digest as sha256_of, write_json

    cache, new, out = _cache(), {}, []
    for path in paths:
        p = Path(path)
        key, stamp = str(p.resolve()), _stamp(p.stat())
        known = cache.get(key, {})
        digest = known["sha256"] if known.get("stamp") == stamp else sha256_of(p)
        if known.get("stamp") != stamp:
            new[key] = {"stamp": stamp, "sha256": digest}
        out.append(digest)
    if new and (DIGESTS.parent.is_dir() or Path(".snakemake").is_dir()):  # a project folder: keep them for the next job
        write_json(DIGESTS, _cache() | new)  # merged with what other jobs wrote meanwhile
    return out


def file_digest(path: str | os.PathLike) -> str:
    """sha256 of one file's content (:func:`digests`)."""
    return digests([path])[0]


def files_digest(paths: Iterable[str | os.PathLike], root: str | os.PathLike | None = None) -> str:
    """One digest of several files, each named relative to ``root`` (names and contents count)."""
    files = sorted(Path(x) for x in paths)
    h = hashlib.sha256()
    for p, digest in zip(files, digests(files)):
        name = p.relative_to(root).as_posix() if root is not None else p.name
        h.update(f"{name}\0{digest}\n".encode())
    return h.hexdigest()


def location_digest(location: str) -> str:
    """What a model at ``location`` is: a local folder's files (its records aside) or a local file
    by content; a Hugging Face hub id by the commit the local hub cache holds for it (hashing the
    cached files would read 16 GB per job; a commit names its files exactly); anything else (a hub
    id not downloaded yet, an open_clip tag) by its name."""
    p = Path(location)
    if p.is_dir():
        return files_digest([f for f in p.rglob("*") if f.is_file() and f.name not in _SKIP and not f.name.startswith(".")], p)
    if p.is_file():
        return file_digest(p)
    commit = hub_commit(location)
    return f"hub:{location}@{commit}" if commit else f"id:{location}"


def hub_commit(repo_id: str) -> str | None:
    """The commit of ``repo_id`` that the local Hugging Face cache resolves its main branch to
    (what ``from_pretrained(repo_id)`` loads), read from the cache alone: no network."""
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # not a hub id (an open_clip tag, a path): no commit
        return None
    return Path(found).parent.name if isinstance(found, str) else None


@lru_cache(maxsize=1)
def environment() -> dict[str, str]:
    """The libraries and machine a job ran on: what byte-identical results are conditional on."""
    import numpy
    import torch

    versions = {"python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__}
    for name, module in (("transformers", "transformers"), ("open_clip", "open_clip")):
        try:
            versions[name] = __import__(module).__version__
        except ImportError:
            versions[name] = "absent"
    return versions | {"cpu": torch.backends.cpu.get_cpu_capability(), "machine": platform.machine()}


def job_environment() -> dict[str, str]:
    """:func:`environment` and the number of threads torch computes with in this job now."""
    import torch

    return environment() | {"torch_threads": str(torch.get_num_threads())}


PROVENANCE = "results/provenance/{rule}/{name}.json"


def job_record_path(rule: str, wildcards: dict) -> str:
    """Where a job's provenance record goes: one per job, named by its rule and wildcards."""
    name = "_".join(f"{k}-{v}" for k, v in sorted(wildcards.items())) or "all"
    return PROVENANCE.format(rule=rule, name=name.replace("/", "-"))


def record_job(rule: str, wildcards: dict, params: dict, inputs: Iterable[str], outputs: Iterable[str]) -> str:
    """Write what a finished job was computed from: its params, the code, the digest of every input
    file (folders by their files), its outputs, and the environment. Not a result: results stay
    byte-identical across machines while this record names the machine. `glov diff --exact` shows
    two runs' records side by side where their results part."""
    from glov.io import write_json
    from glov.store import code_fingerprint

    digests = {}
    for path in sorted(set(inputs)):
        p = Path(path)
        digests[path] = location_digest(path) if p.exists() else "missing"
    out = job_record_path(rule, wildcards)
    write_json(out, {"rule": rule, "wildcards": wildcards, "params": params, "code": code_fingerprint(), "inputs": digests,
                     "outputs": sorted(set(outputs)), "environment": job_environment()})
    return out
