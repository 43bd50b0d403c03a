"""Atomic writes are durable: the content reaches the disk before the rename, the rename after it.

A unit test cannot cut the power; it checks the order of the system calls that make a write
survive one (fsync of the file, rename, fsync of its folder).
"""

import os

import pytest

from glov import io
from glov.io import read_json, write_json
from glov.store import ResultStore


@pytest.fixture
def calls(monkeypatch):
    """Every fsync (as the path its descriptor names) and rename, in order."""
    seen = []
    fsync, replace = os.fsync, os.replace

    def recording_fsync(fd):
        seen.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        fsync(fd)

    def recording_replace(src, dst):
        seen.append(("rename", str(src), str(dst)))
        replace(src, dst)

    monkeypatch.setattr(io.os, "fsync", recording_fsync)
    monkeypatch.setattr(io.os, "replace", recording_replace)
    return seen


def test_a_write_is_synced_before_its_rename_and_its_folder_after(tmp_path, calls):
    out = tmp_path / "sub" / "r.json"
    write_json(out, {"a": 1})
    assert read_json(out) == {"a": 1}
    assert len(calls) == 3
    (_, synced), (_, src, dst), (_, folder) = calls
    assert [c[0] for c in calls] == ["fsync", "rename", "fsync"]
    assert synced == src and os.path.dirname(src) == str(out.parent) and dst == str(out)  # the temporary file, then its new name
    assert folder == str(out.parent)


def test_a_result_store_entry_is_synced_like_any_write(tmp_path, monkeypatch, calls):
    """The store's hard link shares the result's inode: syncing it syncs what both names point at."""
    monkeypatch.chdir(tmp_path)
    result = tmp_path / "results" / "step_001.json"
    result.parent.mkdir()
    result.write_text("{}\n")
    ResultStore(tmp_path / "store").save(result, "k")
    entry = tmp_path / "store" / "results" / "step_001" / "k.json"
    assert os.path.samefile(entry, result)
    assert [c[0] for c in calls] == ["fsync", "rename", "fsync"]
    assert calls[1][2] == str(entry) and calls[2][1] == str(entry.parent)


def test_a_failed_write_renames_and_syncs_nothing(tmp_path, calls):
    with pytest.raises(RuntimeError):
        with io.atomic_path(tmp_path / "x.json") as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed mid-write")
    assert calls == [] and list(tmp_path.iterdir()) == []


def test_a_folder_that_cannot_be_synced_does_not_fail_the_write(tmp_path, monkeypatch):
    """Some file systems refuse fsync on a folder; the write itself has succeeded."""
    fsync = os.fsync

    def no_folder_sync(fd):
        if os.path.isdir(os.readlink(f"/proc/self/fd/{fd}")):
            raise OSError(22, "Invalid argument")
        fsync(fd)

    monkeypatch.setattr(io.os, "fsync", no_folder_sync)
    write_json(tmp_path / "y.json", [1])
    assert read_json(tmp_path / "y.json") == [1]


def test_many_small_writes_are_synced_once_at_the_end(tmp_path, calls, monkeypatch):
    """A dataset export writes thousands of files: one sync of the file system when it ends, not
    two flushes per file (each costs milliseconds on a busy disk)."""
    synced = []
    monkeypatch.setattr(io, "_syncfs", lambda folder: synced.append(str(folder)))
    with io.synced_at_end(tmp_path):
        for i in range(3):
            write_json(tmp_path / "c" / f"{i}.json", i)
        assert [c[0] for c in calls] == ["rename"] * 3 and synced == []
    assert synced == [str(tmp_path)]
    write_json(tmp_path / "after.json", 0)  # outside the block: flushed one by one again
    assert [c[0] for c in calls[3:]] == ["fsync", "rename", "fsync"]


def test_a_failed_batch_is_not_synced(tmp_path, monkeypatch):
    synced = []
    monkeypatch.setattr(io, "_syncfs", lambda folder: synced.append(folder))
    with pytest.raises(RuntimeError):
        with io.synced_at_end(tmp_path):
            raise RuntimeError("killed mid-export")
    assert synced == [] and io._DEFERRED.get() is False


def test_syncfs_really_syncs(tmp_path):
    io._syncfs(tmp_path)  # the real call (Linux syncfs, or sync): must not raise


def test_a_dataset_export_is_synced_once(tmp_path, calls, monkeypatch):
    from PIL import Image

    from glov.data import sources

    class Fake:
        def __init__(self, uid):
            self.uid = uid

        def load(self):
            return Image.new("RGB", (4, 4))

    monkeypatch.setattr(sources, "task_images", lambda source, per_class: {"cat": [Fake("a" * 20), Fake("b" * 20)], "dog": [Fake("c" * 20)]})
    synced = []
    monkeypatch.setattr(io, "_syncfs", lambda folder: synced.append(str(folder)))
    assert sources.export_task("animal_mnist", tmp_path / "out") == 3
    assert sorted(p.name for p in (tmp_path / "out").rglob("*.png")) == ["aaaaaaaaaaaaaaaa.png", "bbbbbbbbbbbbbbbb.png", "cccccccccccccccc.png"]
    assert [c[0] for c in calls] == ["rename"] * 3 and synced == [str(tmp_path / "out")]


def test_torch_files_have_the_same_bytes_for_the_same_content(tmp_path):
    """torch.save names its archive's records after the file it writes, here a random temporary
    name: saved through a buffer, equal content gives equal bytes (two fresh clones' runs differed
    in LLaMP's files alone before; `glov diff --exact` found it)."""
    import torch

    from glov.io import write_torch

    obj = {"w": torch.arange(6.0).reshape(2, 3), "names": ["a", "b"]}
    write_torch(tmp_path / "a.pt", obj)
    write_torch(tmp_path / "b.pt", obj)
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()
    assert torch.equal(torch.load(tmp_path / "a.pt", weights_only=True)["w"], obj["w"])


def test_a_folder_built_aside_is_synced_once_however_its_writes_nest(tmp_path, calls, monkeypatch):
    """atomic_dir syncs its file system once before the rename: the writes inside it (a model's
    files, an export's record) skip their own flushes, and an export's own synced_at_end block
    inside it leaves the sync to atomic_dir. Outside the blocks, writes flush one by one again."""
    synced = []
    monkeypatch.setattr(io, "_syncfs", lambda folder: synced.append(folder.name))
    with io.atomic_dir(tmp_path / "task") as work:
        with io.synced_at_end(work):
            write_json(work / "cat" / "1.json", 1)
        write_json(work / "export.json", {})
    assert [c[0] for c in calls] == ["rename", "rename", "rename", "fsync"]  # two files, the folder, the folder's parent
    assert synced == [".task.partial"] and io._DEFERRED.get() is False
    assert sorted(p.name for p in (tmp_path / "task").rglob("*.json")) == ["1.json", "export.json"]
