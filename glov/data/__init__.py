"""Datasets: a registry of dataset descriptions, layout loaders, and deterministic splits.

A dataset is described by a small YAML (``glov/data/meta/<name>.yaml``, or ``data.custom`` in
params.yaml): its one-line description (which goes into the LLM meta-prompt), its on-disk layout
and where it lives under ``data.root``. :func:`prepare` turns that into a manifest holding the
class names and the seeded 1-shot train / val / test image lists that every later rule reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Callable, Mapping, Sequence

import yaml

from glov.data.splits import LabelledPools, drop_last_batch, make_splits, split_target
from glov.paths import project_path


EXPORT_RECORD = "export.json"  # written last into an exported lab task's folder
EXPORT_FORMAT = 2  # rule export_bundled_dataset's param: 2 = built aside and renamed with its record (folders of 1 have none)


class DataError(RuntimeError):
    """A dataset is missing, incomplete or corrupt. The message names the path and the fix."""


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    description: str
    layout: str
    subdir: str = ""
    image_dir: str = "."
    split_file: str = ""
    bundled: str = ""
    path: str = ""  # absolute or relative path that overrides data.root/subdir (custom datasets)
    title: str = ""  # the paper's name for it (the official meta-prompt; default: name)
    paragraph: str = ""  # a paragraph-long description (the official meta-prompt; default: description)

    def location(self, root: str | Path) -> Path:
        return Path(self.path) if self.path else Path(root) / (self.subdir or self.name)


def normalise_classname(name: str) -> str:
    """``red_fox`` -> ``red fox``: a folder or label name as a class name the text encoder reads."""
    return name.replace("_", " ").strip()


def check_unique_classnames(raw_names: Sequence[str], final_names: Sequence[str], where: str, fix: str) -> None:
    """Refuse classes whose final names are empty or equal, whatever made them so: two classes with
    one name get one text embedding (the second can never be predicted) and every dictionary keyed
    by class name (descriptions, per-class results) merges them. ``raw_names`` are the names as
    the data gives them (folders, labels), in the order of ``final_names``."""
    first: dict[str, str] = {}
    problems = []
    for raw, final in zip(raw_names, final_names):
        if not final:
            problems.append(f"{raw!r} becomes an empty class name")
        elif final in first:
            problems.append(f"{first[final]!r} and {raw!r} both become the class name {final!r}")
        else:
            first[final] = raw
    if problems:
        raise DataError(f"{where}: {'; '.join(problems)}. Fix: {fix}")


Naming = Callable[[str], str]  # a folder or label name as given -> the class name (protocol.class_names)
Loader = Callable[[DatasetSpec, Path, Naming], LabelledPools]


def as_given(name: str) -> str:
    """The official loaders' class names (OFFICIAL.md row 21): exactly as the files give them."""
    return name
LAYOUTS: dict[str, Loader] = {}


def register_layout(name: str) -> Callable[[Loader], Loader]:
    def deco(fn: Loader) -> Loader:
        LAYOUTS[name] = fn
        return fn

    return deco


def _builtin_specs() -> dict[str, DatasetSpec]:
    specs = {}
    for entry in resources.files("glov.data").joinpath("meta").iterdir():
        if entry.name.endswith(".yaml"):
            meta = yaml.safe_load(entry.read_text())
            specs[meta["name"]] = DatasetSpec(**meta)
    return specs


BUILTIN_DATASETS: dict[str, DatasetSpec] = _builtin_specs()


def list_datasets() -> list[str]:
    return sorted(BUILTIN_DATASETS)


def get_dataset_spec(name: str, custom: Mapping[str, Mapping[str, str]] | None = None) -> DatasetSpec:
    """Look a dataset up in ``data.custom`` first, then in the built-in registry."""
    if custom and name in custom:
        return DatasetSpec(name=name, **custom[name])
    if name in BUILTIN_DATASETS:
        return BUILTIN_DATASETS[name]
    known = ", ".join(list_datasets() + sorted(custom or {}))
    raise DataError(
        f"unknown dataset {name!r}; known: {known}. "
        "To add your own, declare it under data.custom in params.yaml (layout: imagefolder, path, description)."
    )


def load_pools(spec: DatasetSpec, root: str | Path, naming: Naming = normalise_classname) -> LabelledPools:
    # layout modules register themselves on import
    from glov.data import coop, imagefolder  # noqa: F401

    location = spec.location(root)
    if not location.is_dir():
        raise DataError(missing_dataset_message(spec, location))
    if not export_finished(spec, location):
        raise DataError(f"{location} was never finished (no {EXPORT_RECORD}: an export was stopped half-way); delete the folder "
                        "and run `snakemake --cores all` (rule export_bundled_dataset writes it again)")
    return LAYOUTS[spec.layout](spec, location, naming)


def export_finished(spec: DatasetSpec, location: Path) -> bool:
    """A lab task's folder counts once its record is written (last); a folder of your own data always."""
    return not spec.bundled or (location / EXPORT_RECORD).exists()


def missing_dataset_message(spec: DatasetSpec, location: Path) -> str:
    if spec.bundled:
        how = "it is exported by the workflow: run `snakemake --cores all` (rule export_bundled_dataset)"
    elif spec.layout == "imagefolder":
        how = f"put one folder per class there: {location}/<class name>/*.jpg|png"
    else:
        how = (
            f"download {spec.name} in the CoOp layout (https://github.com/KaiyangZhou/CoOp/blob/main/DATASETS.md)"
            f" so that {location / spec.image_dir} holds the images"
            + (f" and {location / spec.split_file} the split file" if spec.split_file else "")
        )
    return f"dataset {spec.name!r} not found at {location}: {how}; or point data.root in params.yaml at the folder that holds it."


def prepare(
    name: str,
    root: str | Path,
    shots: int,
    val_per_class: int,
    test_per_class: int | None,
    seed: int,
    custom: Mapping[str, Mapping[str, str]] | None = None,
    fitness_batch: int | None = None,
    target_split: bool = False,
    names_as_given: bool = False,
) -> dict:
    """Build the manifest of one dataset: class names, description and seeded splits (with
    ``fitness_batch``, the train split a ``drop_last`` loader of that batch size serves; with
    ``target_split``, fitness, val and test all drawn from the target set, 60/20/20, val and test whole;
    with ``names_as_given``, the class names exactly as the files give them, underscores kept)."""
    spec = get_dataset_spec(name, custom)
    pools = load_pools(spec, root, as_given if names_as_given else normalise_classname)
    if target_split:
        train, val, test = split_target(pools.test or [], seed)
        pools = LabelledPools(pools.classnames, pools.image_root, train, val, test)
        val_per_class, test_per_class = len(val), None
    splits = make_splits(pools, shots, val_per_class, test_per_class, seed)
    if fitness_batch:
        splits["train"] = drop_last_batch(splits["train"], fitness_batch, seed)
    return {
        "dataset": spec.name,
        "description": spec.description,
        "classnames": pools.classnames,
        "image_root": project_path(pools.image_root),
        "seed": seed,
        "splits": {k: [[p, int(y)] for p, y in v] for k, v in splits.items()},
    }
