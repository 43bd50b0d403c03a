"""ImageFolder layout: ``<root>/<class name>/*.jpg|png``, one folder per class, no fixed split."""

from __future__ import annotations

from pathlib import Path

from glov.data import DataError, DatasetSpec, Naming, check_unique_classnames, normalise_classname, register_layout
from glov.data.splits import LabelledPools

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def class_folders(location: Path) -> list[Path]:
    return sorted(p for p in location.iterdir() if p.is_dir() and not p.name.startswith("."))


def class_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


@register_layout("imagefolder")
def load_imagefolder(spec: DatasetSpec, location: Path, naming: Naming = normalise_classname) -> LabelledPools:
    folders = class_folders(location)
    if not folders:
        raise DataError(f"{location} holds no class folders; expected {location}/<class name>/*.jpg|png")
    classnames = [naming(f.name) for f in folders]
    check_unique_classnames([f.name for f in folders], classnames, f"image folder {location}",
                            "rename one folder of each pair so that every class has its own name ('_' reads as a space, "
                            "spaces at either end are dropped), then run snakemake again")
    items = []
    for label, folder in enumerate(folders):
        images = class_images(folder)
        if not images:
            raise DataError(f"class folder {folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}); add some or remove it")
        items += [(str(p.relative_to(location)), label) for p in images]
    return LabelledPools(classnames, location, items)
