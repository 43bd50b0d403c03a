"""Surviving interruption: a killed run leaves nothing that stops the next run from resuming.

Finished work is safe by construction (atomic writes; every finished optimisation step and baseline
is kept in the result store, :mod:`glov.store`, whatever job it was computed in). What a kill can leave
behind is bookkeeping: Snakemake's lock files and MLflow runs stuck in RUNNING. Each is recorded
with the process that owns it (host, pid and start time, so a recycled pid is not mistaken for the
owner) and cleared by the next invocation once that process is gone (a lock: unless its jobs ran
on a cluster, where they outlive it).
SIGTERM (what ``kill``, SLURM and Kubernetes send first) is turned into an exception, so a job
cleans up its temporary files and closes its MLflow run before it exits.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, Sequence

log = logging.getLogger(__name__)

class Terminated(BaseException):
    """The process received SIGTERM. A BaseException, so ``except Exception`` does not swallow it."""


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` in the main thread."""

    def handler(signum: int, _frame: object) -> None:
        raise Terminated(f"terminated by signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _start_time(pid: int) -> str:
    """Start time of a process in clock ticks since boot ('' where /proc is absent)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]  # field 22; the name in (...) may hold spaces


def process_id(pid: int | None = None) -> str:
    """``host:pid:start``: names one process, even after its pid is reused."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{_start_time(pid)}"


def is_running(owner: str) -> bool | None:
    """Whether the process named by :func:`process_id` still runs; None if it cannot be known
    from here (another host, or a malformed id)."""
    try:
        host, pid, start = owner.rsplit(":", 2)
        pid_int = int(pid)
    except ValueError:
        return None
    if host != socket.gethostname():
        return None
    try:
        os.kill(pid_int, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, owned by someone else
    return _start_time(pid_int) == start


LOCK_OWNERS = "glov/lock_owners"  # under .snakemake/: one record per Snakemake lock file


def _identity(path: Path) -> list[int] | None:
    """What tells one lock file from a later one of the same name (Snakemake reuses the lowest free
    number): inode, modification time and size. None if there is no such file."""
    try:
        st = path.stat()
    except OSError:
        return None
    return [st.st_ino, st.st_mtime_ns, st.st_size]


def record_lock_owner(lock_files: Iterable[str | Path], cluster: bool, snakemake_dir: str | Path = ".snakemake") -> None:
    """Called once Snakemake holds its locks (``onstart``) with the lock files this process wrote:
    each gets its own owner record, so a run never vouches for another run's lock in the same
    folder (Snakemake lets runs with disjoint outputs share it). ``cluster``: the jobs run through
    a cluster executor and outlive this process, so its death does not free the lock."""
    from glov.io import write_json

    for lock in map(Path, lock_files):
        identity = _identity(lock)
        if identity is not None:
            write_json(Path(snakemake_dir) / LOCK_OWNERS / lock.name, {"owner": process_id(), "cluster": cluster, "lock": identity})


def clear_stale_lock(snakemake_dir: str | Path = ".snakemake") -> bool:
    """Remove the lock files whose own owner is known dead; True if any was removed.

    A lock is removed only if its record names it (the same file, not a later one of that name),
    its process ran on this host and is gone, and its jobs ran locally (they died with it). The
    lock of a cluster run is left: its jobs may still be running, and the run that went on would
    delete their outputs as incomplete; what to do is printed instead. Locks of live, remote or
    unknown owners are left to Snakemake (``snakemake --unlock`` remains the manual way out).
    Records of locks that are gone are forgotten.
    """
    from glov.io import read_json

    owners = Path(snakemake_dir) / LOCK_OWNERS
    removed, cluster_runs = [], {}
    for record_file in sorted(owners.glob("*.lock")) if owners.is_dir() else []:
        lock = Path(snakemake_dir) / "locks" / record_file.name
        try:
            record = read_json(record_file)
            owner, cluster, stale = str(record["owner"]), record.get("cluster", True), _identity(lock) != record["lock"]
        except (OSError, ValueError, KeyError, TypeError):
            owner, cluster, stale = "", True, True  # unreadable: it vouches for nothing
        if stale:
            record_file.unlink(missing_ok=True)
        elif is_running(owner) is not False:
            continue
        elif cluster is not False:
            cluster_runs.setdefault(owner, []).append(lock.name)
        else:
            lock.unlink(missing_ok=True)
            record_file.unlink(missing_ok=True)
            removed.append(owner)
    for owner, names in cluster_runs.items():
        log.warning(
            "the Snakemake lock %s belongs to a run (process %s) that has ended but sent its jobs to a cluster: "
            "they may still be running, and a new run would delete their outputs as incomplete. Check the cluster's "
            "queue (e.g. squeue --me); once none of its jobs is left, run `snakemake --unlock`", ", ".join(names), owner)
    if removed:
        log.warning("removed the Snakemake lock left by a killed run (process %s); resuming", ", ".join(sorted(set(removed))))
    return bool(removed)


def own_locks_only(persistence: type) -> None:
    """Make Snakemake's file persistence (the class, passed in: ``glov`` never imports Snakemake)
    remove only its own lock files when a run ends.

    Snakemake 9.27 ends every run, even one with nothing to do, by deleting the whole lock folder
    (``FilePersistence._delete_locks``), the locks of concurrent runs with it; a run started then
    can overwrite the outputs a running one is writing. Earlier versions removed only their own
    files, which is restored here; ``snakemake --unlock`` (``cleanup_locks``) still removes all.
    """
    if getattr(persistence, "_glov_own_locks_only", False) or not hasattr(persistence, "_delete_locks"):
        return
    remove_all = persistence._delete_locks

    def remove_own(self: object) -> None:
        own = getattr(self, "_lockfile", None)
        if not isinstance(own, dict):  # a Snakemake whose internals differ: its own behaviour, not a silent no-op
            log.warning("this Snakemake keeps its lock files differently: it removes every run's locks when a run ends")
            return remove_all(self)
        for lock in own.values():
            Path(lock).unlink(missing_ok=True)
        own.clear()

    def cleanup_locks(self: object) -> None:
        remove_all(self)

    persistence._delete_locks = remove_own
    persistence.cleanup_locks = cleanup_locks
    persistence._glov_own_locks_only = True


def steps_to_request(chains: Iterable[Sequence[str]]) -> list[str]:
    """The step files the workflow's final target asks for: each chain's last step, and every step
    file a chain whose last step exists has lost since.

    Asking for every step file instead costs most of the paper plan's time: Snakemake matches each
    requested file against each of the steps job's outputs (24,240 files x 505 outputs). A job's
    unrequested outputs are never checked, so the lost ones are requested explicitly: deleting a
    middle step still reruns its job. A chain without its last step runs anyway.
    """
    wanted = []
    for files in chains:
        wanted.append(files[-1])
        if os.path.exists(files[-1]):
            wanted.extend(f for f in files[:-1] if not os.path.exists(f))
    return wanted
