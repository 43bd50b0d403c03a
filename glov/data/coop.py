"""The CoOp layouts used by the paper's datasets (https://github.com/KaiyangZhou/CoOp/blob/main/DATASETS.md).

Only the on-disk conventions live here; sampling is :func:`glov.data.splits.make_splits`.
"""

from __future__ import annotations

import json
from pathlib import Path

from glov.data import DataError, DatasetSpec, Naming, check_unique_classnames, normalise_classname, register_layout
from glov.data.splits import Item, LabelledPools


def _require(path: Path, spec: DatasetSpec) -> Path:
    if not path.exists():
        raise DataError(
            f"{spec.name}: {path} is missing; see https://github.com/KaiyangZhou/CoOp/blob/main/DATASETS.md "
            "for the expected layout"
        )
    return path


@register_layout("coop_json")
def load_coop_json(spec: DatasetSpec, location: Path, naming: Naming = normalise_classname) -> LabelledPools:
    """``split_zhou_*.json``: {"train"|"val"|"test": [[image path, label, class name], ...]}."""
    split_path = _require(location / spec.split_file, spec)
    try:
        raw = json.loads(split_path.read_text())
        names: dict[int, str] = {}  # as the file gives them
        pools: dict[str, list[Item]] = {}
        for split in ("train", "val", "test"):
            pools[split] = []
            for path, label, classname in raw[split]:
                names[int(label)] = classname
                pools[split].append((path, int(label)))
        raw_names = [names[i] for i in range(len(names))]
        classnames = [naming(n) for n in raw_names]
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise DataError(f"{split_path} is not a CoOp split file ({exc}); download it again") from None
    check_unique_classnames(raw_names, classnames, f"split file {split_path}",
                            "give each label its own class name in the split file, or download it again")
    image_root = _require(location / spec.image_dir, spec)
    return LabelledPools(classnames, image_root, pools["train"], pools["val"], pools["test"])


def read_imagenet_classnames(imagenet_dir: Path, spec: DatasetSpec) -> dict[str, str]:
    """``classnames.txt``: one ``<wnid> <class name>`` per line, in label order."""
    lines = _require(imagenet_dir / "classnames.txt", spec).read_text().splitlines()
    return dict(line.split(" ", 1) for line in lines if line.strip())


def _wnid_items(folder: Path, wnids: list[str]) -> list[Item]:
    index = {w: i for i, w in enumerate(wnids)}
    return [
        (str(p.relative_to(folder)), index[d.name])
        for d in sorted(folder.iterdir())
        if d.is_dir() and d.name in index
        for p in sorted(d.iterdir())
    ]


@register_layout("imagenet")
def load_imagenet(spec: DatasetSpec, location: Path, naming: Naming = normalise_classname) -> LabelledPools:
    """``images/train/<wnid>/`` supplies 1-shot train and val; ``images/val/<wnid>/`` is the test set.
    The names of ``classnames.txt`` are used as written under either ``naming`` (as the official loader does)."""
    names = read_imagenet_classnames(location, spec)
    wnids = list(names)
    images = _require(location / "images", spec)
    train = [(f"train/{p}", y) for p, y in _wnid_items(_require(images / "train", spec), wnids)]
    test = [(f"val/{p}", y) for p, y in _wnid_items(_require(images / "val", spec), wnids)]
    return LabelledPools(list(names.values()), images, train, None, test)


@register_layout("imagenet_variant")
def load_imagenet_variant(spec: DatasetSpec, location: Path, naming: Naming = normalise_classname) -> LabelledPools:
    """ImageNet-V2/-Sketch/-A/-R: a test set only; fitness and selection use ImageNet's train images.

    Class folders are WordNet ids (Sketch, A, R) or label indices (V2); A and R cover 200 classes.
    """
    imagenet = location.parent / "imagenet"
    names = read_imagenet_classnames(imagenet, spec)
    all_wnids = list(names)
    test_dir = _require(location / spec.image_dir, spec)
    folders = sorted(d.name for d in test_dir.iterdir() if d.is_dir())
    wnids = [all_wnids[int(f)] if f.isdigit() else f for f in folders]
    missing = [w for w in wnids if w not in names]
    if missing:
        raise DataError(f"{test_dir}: folders {missing[:3]} are not ImageNet classes in {imagenet}/classnames.txt")
    by_folder = dict(zip(folders, range(len(folders))))
    test = [(f"{spec.image_dir}/{f}/{p.name}", by_folder[f]) for f in folders for p in sorted((test_dir / f).iterdir())]
    train_root = _require(imagenet / "images" / "train", spec)
    train = [(str(Path("..", "imagenet", "images", "train", p)), y) for p, y in _wnid_items(train_root, wnids)]
    return LabelledPools([names[w] for w in wnids], location, train, None, test)


@register_layout("aircraft")
def load_aircraft(spec: DatasetSpec, location: Path, naming: Naming = normalise_classname) -> LabelledPools:
    """FGVC-Aircraft: ``data/images_variant_{train,val,test}.txt`` lines ``<image id> <variant>``; the
    variant names are used as written under either ``naming`` (as the official loader does)."""
    data = _require(location / "data", spec)
    variants = [v.strip() for v in _require(data / "variants.txt", spec).read_text().splitlines() if v.strip()]
    index = {v: i for i, v in enumerate(variants)}

    def read(split: str) -> list[Item]:
        lines = _require(data / f"images_variant_{split}.txt", spec).read_text().splitlines()
        return [(f"{i}.jpg", index[v]) for i, v in (ln.split(" ", 1) for ln in lines if ln.strip())]

    image_root = _require(location / spec.image_dir, spec)
    return LabelledPools(variants, image_root, read("train"), read("val"), read("test"))
