"""Surviving interruption: a killed run leaves nothing that stops the next run from resuming.

Finished work is safe by construction (atomic writes; every finished optimisation step and baseline
is kept in the result store, :mod:`glov.store`, whatever job it was computed in). What a kill can leave
behind is bookkeeping: Snakemake's directory lock and MLflow runs stuck in RUNNING. Both are
recorded with the process that owns them (host, pid and start time, so a recycled pid is not
mistaken for the owner) and cleared by the next invocation once that process is gone.
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

LOCK_OWNER = "glov_lock_owner"


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


def record_lock_owner(snakemake_dir: str | Path = ".snakemake") -> None:
    """Called once Snakemake holds its lock (``onstart``): this process owns it."""
    from glov.io import write_text

    write_text(Path(snakemake_dir) / LOCK_OWNER, process_id() + "\n")


def clear_stale_lock(snakemake_dir: str | Path = ".snakemake") -> bool:
    """Remove Snakemake's lock files if the process that took them is dead; True if removed.

    A lock whose owner is alive, unknown or on another host is left alone: Snakemake then
    reports it (and ``snakemake --unlock`` remains the manual way out).
    """
    locks = Path(snakemake_dir) / "locks"
    owner_file = Path(snakemake_dir) / LOCK_OWNER
    lock_files = sorted(locks.glob("*.lock")) if locks.is_dir() else []
    if not lock_files or not owner_file.exists():
        return False
    owner = owner_file.read_text().strip()
    if is_running(owner) is not False:
        return False
    for f in lock_files:
        f.unlink(missing_ok=True)
    log.warning("removed the Snakemake lock left by a killed run (process %s); resuming", owner)
    return True


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
