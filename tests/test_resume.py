"""Bookkeeping a killed run leaves behind is cleared by the next one, and only when its owner is dead."""

import os
import signal
import subprocess
import sys

import pytest

from glov.io import write_text
from glov.resume import LOCK_OWNER, Terminated, clear_stale_lock, is_running, process_id, record_lock_owner, sigterm_raises, steps_to_request


def dead_process_id() -> str:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    owner = process_id(child.pid)
    child.wait()
    return owner


def test_process_ids_tell_live_dead_and_unknown_processes_apart():
    assert is_running(process_id()) is True
    assert is_running(dead_process_id()) is False
    host, pid, start = process_id().rsplit(":", 2)
    assert is_running(f"{host}:{pid}:{int(start) + 1}") is False  # same pid, another process (pid reuse)
    assert is_running(f"elsewhere:{pid}:{start}") is None
    assert is_running("garbage") is None


def locked_dir(tmp_path, owner: str):
    (tmp_path / "locks").mkdir()
    for name in ("0.input.lock", "0.output.lock"):
        (tmp_path / "locks" / name).write_text("x")
    write_text(tmp_path / LOCK_OWNER, owner)
    return tmp_path


def test_a_lock_of_a_dead_process_is_cleared(tmp_path):
    d = locked_dir(tmp_path, dead_process_id())
    assert clear_stale_lock(d) is True
    assert list((d / "locks").iterdir()) == []


@pytest.mark.parametrize("owner", ["live", "remote", "none"])
def test_a_lock_that_may_be_in_use_is_kept(tmp_path, owner):
    d = locked_dir(tmp_path, {"live": process_id(), "remote": "other-host:1:1", "none": ""}[owner])
    if owner == "none":
        (d / LOCK_OWNER).unlink()
    assert clear_stale_lock(d) is False
    assert len(list((d / "locks").iterdir())) == 2


def test_record_lock_owner_names_this_process(tmp_path):
    record_lock_owner(tmp_path)
    assert (tmp_path / LOCK_OWNER).read_text().strip() == process_id()


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
