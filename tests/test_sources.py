"""The offline image sources: captions, the held-out partition, task export and leak checks."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest
from PIL import Image

from glov.data import DataError
from glov.data import sources as S


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
    images = {im.captions: im for im in S.clipart_images(root)}
    assert set(images) == {("animals", "dogs", "happy dog", "mammals"), ("food", "fruit", "red apple"), ("animals", "food", "hot dog")}
    assert images[("animals", "dogs", "happy dog", "mammals")].label == "animal"
    assert images[("food", "fruit", "red apple")].label == "food"
    assert images[("animals", "food", "hot dog")].label == ""  # two categories: in no task, still trainable
    apple = images[("food", "fruit", "red apple")].load()
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
    assert images[0].captions == ("t-shirt", "top")
    assert images[1].load().size == (28, 28)


def test_missing_debian_source_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(S.Path, "is_dir", lambda self: False)
    with pytest.raises(DataError, match="run `glov fetch-data`.*apt-get install openclipart-png"):
        S.debian_dir("clipart", tmp_path)
    monkeypatch.setattr(S.shutil, "which", lambda _: None)
    with pytest.raises(DataError, match="dpkg-deb -x"):
        S.fetch_debian(S.DEBIAN["clipart"], tmp_path)
