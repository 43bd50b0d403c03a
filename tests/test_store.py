"""The result store (glov.store): every key kept, pruning, and what the code fingerprint covers."""

import os
import shutil
import time
from pathlib import Path

from glov.store import ResultStore, code_fingerprint, package_fingerprint, prune, usage


def write(path: str, text: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(path + ".new")
    tmp.write_text(text)
    os.replace(tmp, path)  # as every result is written: a new file, never an edit in place


def test_every_key_is_kept_so_switching_back_restores(tmp_path, monkeypatch):
    """Issue 29 item 7: an output computed under key A, then under key B (another experiment's
    params), is restored under A again when the params switch back: nothing is lost."""
    monkeypatch.chdir(tmp_path)
    store = ResultStore()
    out = "results/runs/toy/step_001.json"
    write(out, '{"experiment": "A"}')
    store.save(out, "keyA")
    write(out, '{"experiment": "B"}')
    store.save(out, "keyB")
    assert store.restore(out, "keyA") == {"experiment": "A"} and Path(out).read_text() == '{"experiment": "A"}'
    assert store.restore(out, "keyB") == {"experiment": "B"}
    assert usage().entries == 2 and usage().in_use == 1  # B is the workspace's file now: it costs nothing


def test_gc_reports_and_prunes_only_what_the_workspace_does_not_use(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = ResultStore()
    out = "results/runs/toy/step_001.json"
    for key in ("old", "mid", "now"):
        write(out, key * 100)
        store.save(out, key)
    before = usage()
    assert (before.entries, before.in_use, before.bytes_total) == (3, 1, 600)
    assert prune(older_than_days=1) == []  # all linked just now
    past = time.time() - 3 * 86400
    entry = store._dir(out) / "old.json"
    real_ctime = entry.stat().st_ctime
    monkeypatch.setattr(Path, "stat", lambda self, **kw: os.stat_result((*os.stat(self)[:9], past if self == entry else real_ctime))
                        if self.name.endswith(".json") and "store" in self.parts else os.stat(self))
    assert prune(older_than_days=1, dry_run=True) == [entry] and entry.exists()
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    removed = prune(keep_current_only=True)
    assert sorted(p.stem for p in removed) == ["mid", "old"] and usage().entries == 1
    assert Path(out).read_text() == "now" * 100  # the workspace's result is never touched


def test_the_code_fingerprint_covers_package_data(tmp_path):
    """Issue 29 item 1: dataset descriptions (data/meta), the schema and the published numbers are
    part of what a stored result was computed by."""
    import glov

    package = Path(glov.__file__).parent
    copy = tmp_path / "glov"
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns("__pycache__"))
    before = package_fingerprint(copy)
    assert before == code_fingerprint()
    meta = copy / "data" / "meta" / "eurosat.yaml"
    meta.write_text(meta.read_text().replace("description:", "description: edited,", 1))
    assert package_fingerprint(copy) != before


def _hub_cache(root: Path, repo_id: str, commit: str) -> None:
    """The Hugging Face cache's layout for ``repo_id`` with its main branch at ``commit``."""
    repo = root / f"models--{repo_id.replace('/', '--')}"
    (repo / "snapshots" / commit).mkdir(parents=True, exist_ok=True)
    (repo / "snapshots" / commit / "config.json").write_text("{}")
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)


def test_a_hub_model_is_known_by_the_commit_its_local_cache_holds(tmp_path, monkeypatch):
    """A hub id (the paper's LLM and LLaVA) keys results by the commit ``from_pretrained`` loads from
    the local cache, so new weights pushed to the hub and downloaded are never served old results."""
    from huggingface_hub import constants

    from glov.provenance import location_digest

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    assert location_digest("org/model") == "id:org/model"  # not downloaded yet: its name only
    _hub_cache(tmp_path / "hub", "org/model", "a" * 40)
    assert location_digest("org/model") == f"hub:org/model@{'a' * 40}"
    _hub_cache(tmp_path / "hub", "org/model", "b" * 40)  # the hub moved on and was downloaded again
    assert location_digest("org/model") == f"hub:org/model@{'b' * 40}"
    assert location_digest("openai") == "id:openai" and location_digest("not a/hub id") == "id:not a/hub id"
