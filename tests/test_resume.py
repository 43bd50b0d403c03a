"""Bookkeeping a killed run leaves behind is cleared by the next one, and only when its owner is dead."""

import os
import signal
import subprocess
import sys
from unittest.mock import patch

import pytest

from conftest import dead_process_id
from glov.io import read_json, write_text
from glov.resume import (LOCK_OWNERS, Terminated, clear_stale_lock, is_running, own_locks_only, process_id, record_lock_owner,
                         sigterm_raises, steps_to_request)


def test_process_ids_tell_live_dead_and_unknown_processes_apart():
    assert is_running(process_id()) is True
    assert is_running(dead_process_id()) is False
    host, pid, start = process_id().rsplit(":", 2)
    assert is_running(f"{host}:{pid}:{int(start) + 1}") is False  # same pid, another process (pid reuse)
    assert is_running(f"elsewhere:{pid}:{start}") is None
    assert is_running("garbage") is None


def take_lock(d, n: int, owner: str | None = None, cluster: bool = False) -> list:
    """Snakemake's lock files ``<n>.input.lock``/``<n>.output.lock`` in ``d/locks``, recorded as
    ``owner``'s (a process id; None: no record)."""
    (d / "locks").mkdir(exist_ok=True)
    files = [d / "locks" / f"{n}.{kind}.lock" for kind in ("input", "output")]
    for f in files:
        f.write_text(f"results/{n}/{f.name}\n")
    if owner is not None:
        with patch("glov.resume.process_id", return_value=owner):
            record_lock_owner(files, cluster, d)
    return files


def lock_names(d) -> list[str]:
    return sorted(p.name for p in (d / "locks").iterdir())


def test_a_lock_of_a_dead_process_is_cleared(tmp_path, caplog):
    dead = dead_process_id()
    take_lock(tmp_path, 0, dead)
    assert clear_stale_lock(tmp_path) is True
    assert lock_names(tmp_path) == [] and list((tmp_path / LOCK_OWNERS).iterdir()) == []
    assert f"removed the Snakemake lock left by a killed run (process {dead}); resuming" in caplog.text


@pytest.mark.parametrize("owner", ["live", "remote", "none"])
def test_a_lock_that_may_be_in_use_is_kept(tmp_path, owner):
    take_lock(tmp_path, 0, {"live": process_id(), "remote": "other-host:1:1", "none": None}[owner])
    assert clear_stale_lock(tmp_path) is False
    assert lock_names(tmp_path) == ["0.input.lock", "0.output.lock"]


def test_each_lock_has_its_own_owner(tmp_path):
    """Two runs share the folder (disjoint outputs): the dead one's lock goes, the live one's stays,
    whichever started last."""
    take_lock(tmp_path, 0, process_id())
    take_lock(tmp_path, 1, dead_process_id())
    assert clear_stale_lock(tmp_path) is True
    assert lock_names(tmp_path) == ["0.input.lock", "0.output.lock"]
    take_lock(tmp_path, 1, dead_process_id())
    take_lock(tmp_path, 2, None)  # a run still planning: its lock has no record yet
    assert clear_stale_lock(tmp_path) is True
    assert lock_names(tmp_path) == ["0.input.lock", "0.output.lock", "2.input.lock", "2.output.lock"]


def test_a_record_never_vouches_for_a_later_lock_of_the_same_name(tmp_path):
    """Snakemake reuses the lowest free number: a dead run's record must not free the new lock."""
    take_lock(tmp_path, 0, dead_process_id())
    for f in (tmp_path / "locks").iterdir():
        f.unlink()  # snakemake --unlock, or the run ended
    take_lock(tmp_path, 0, None)  # a new run took 0.*.lock and has not recorded it yet
    assert clear_stale_lock(tmp_path) is False
    assert lock_names(tmp_path) == ["0.input.lock", "0.output.lock"]
    assert list((tmp_path / LOCK_OWNERS).iterdir()) == []  # the stale records are forgotten


def test_the_lock_of_a_dead_cluster_run_is_kept_with_what_to_do(tmp_path, caplog):
    """Its jobs may still run on the cluster: clearing the lock would let rerun-incomplete delete
    their outputs. Never automatic; the message says how to check and unlock."""
    dead = dead_process_id()
    take_lock(tmp_path, 0, dead, cluster=True)
    assert clear_stale_lock(tmp_path) is False
    assert lock_names(tmp_path) == ["0.input.lock", "0.output.lock"]
    assert f"the Snakemake lock 0.input.lock, 0.output.lock belongs to a run (process {dead})" in caplog.text
    assert "squeue" in caplog.text and "snakemake --unlock" in caplog.text


def test_a_broken_record_frees_nothing(tmp_path):
    take_lock(tmp_path, 0, dead_process_id())
    write_text(tmp_path / LOCK_OWNERS / "0.input.lock", "{not json")
    (tmp_path / LOCK_OWNERS / "0.output.lock").write_text('{"owner": 1}')
    assert clear_stale_lock(tmp_path) is False
    assert lock_names(tmp_path) == ["0.input.lock", "0.output.lock"]


def test_record_lock_owner_names_this_process_per_lock_file(tmp_path):
    files = take_lock(tmp_path, 3)
    record_lock_owner(files, True, tmp_path)
    records = {p.name: read_json(p) for p in (tmp_path / LOCK_OWNERS).iterdir()}
    assert set(records) == {"3.input.lock", "3.output.lock"}
    assert all(r["owner"] == process_id() and r["cluster"] is True for r in records.values())


def test_a_run_that_ends_removes_only_its_own_lock_files():
    """Snakemake 9.27's file persistence deletes the whole lock folder when a run ends (the locks of
    concurrent runs with it); patched, it removes its own, and --unlock still removes all."""
    import tempfile
    from pathlib import Path

    from snakemake.persistence.file import FilePersistence

    own_locks_only(FilePersistence)
    with tempfile.TemporaryDirectory() as d:
        a, b = FilePersistence(path=Path(d)), FilePersistence(path=Path(d))
        a._write_locks("output", ["results/a.json"])
        b._write_locks("output", ["results/b.json"])
        assert sorted(os.listdir(Path(d) / "locks")) == ["0.output.lock", "1.output.lock"]
        b.unlock()  # run b ends
        assert os.listdir(Path(d) / "locks") == ["0.output.lock"]
        assert list(a._read_locks()) == [("output", "results/a.json")]
        FilePersistence(path=Path(d)).cleanup_locks()  # snakemake --unlock
        assert not (Path(d) / "locks").exists() or os.listdir(Path(d) / "locks") == []


def test_sigterm_raises_inside_the_block_only():
    with pytest.raises(Terminated):
        with sigterm_raises():
            os.kill(os.getpid(), signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_orphaned_mlflow_runs_are_marked_killed(tmp_path):
    from mlflow.tracking import MlflowClient

    from glov.tracking import PROCESS_TAG, close_orphaned_runs

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.create_experiment("e", artifact_location=(tmp_path / "art").as_uri())
    orphan = client.create_run(exp, tags={PROCESS_TAG: dead_process_id()}).info.run_id
    alive = client.create_run(exp, tags={PROCESS_TAG: process_id()}).info.run_id
    done = client.create_run(exp, tags={PROCESS_TAG: dead_process_id()}).info.run_id
    client.set_terminated(done, "FINISHED")
    assert close_orphaned_runs(client, exp) == [orphan]
    assert [client.get_run(r).info.status for r in (orphan, alive, done)] == ["KILLED", "RUNNING", "FINISHED"]


def test_the_final_target_asks_for_last_steps_and_the_steps_a_finished_chain_lost(tmp_path):
    """Not every step file (that made planning the paper's DAG slow), yet a lost middle step is asked for."""
    fresh = [str(tmp_path / f"fresh/step_{t:03d}.json") for t in range(4)]
    finished = [str(tmp_path / f"finished/step_{t:03d}.json") for t in range(4)]
    killed = [str(tmp_path / f"killed/step_{t:03d}.json") for t in range(4)]
    for f in finished + killed[:2]:
        write_text(f, "{}")
    assert steps_to_request([fresh, finished, killed]) == [fresh[-1], finished[-1], killed[-1]]
    os.unlink(finished[1])
    assert steps_to_request([fresh, finished, killed]) == [fresh[-1], finished[-1], finished[1], killed[-1]]
