"""What prep_dataset checks on disk: the file list that decides when it must run again, and that
every image a manifest lists can be decoded, before any job spends time on the dataset."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from glov.data import DataError, DatasetSpec

SHOWN = 20  # unreadable files named in one message; the rest are counted


def listing_digest(spec: DatasetSpec, root: str | Path) -> str:
    """A hash of the names and sizes of the files a dataset's manifest is built from.

    Declared as a param of prep_dataset, so Snakemake re-runs it when an image is added, deleted or
    replaced by one of another size (names and sizes only: copying or touching the folder changes
    nothing). Image folders list their images; the other layouts their split file. Empty for a
    folder the workflow writes itself (bundled datasets) or that does not exist yet (prep says so).
    """
    from glov.data.imagefolder import class_folders, class_images

    location = spec.location(root)
    if spec.bundled or not location.is_dir():
        return ""
    if spec.layout == "imagefolder":
        files = [p for folder in class_folders(location) for p in class_images(folder)]
    else:
        files = [location / spec.split_file] if spec.split_file and (location / spec.split_file).is_file() else []
    lines = "".join(f"{p.relative_to(location)}\t{p.stat().st_size}\n" for p in files)
    return hashlib.sha256(lines.encode()).hexdigest()[:16]


def decode_error(path: Path) -> str | None:
    """Why ``path`` cannot be used as an image, or None. JPEGs are decoded at a reduced scale
    (``draft``): every byte of the entropy-coded data is still read, for a fraction of the cost."""
    try:
        with Image.open(path) as im:
            im.draft("RGB", (64, 64))
            im.load()
        return None
    except FileNotFoundError:
        return "missing"
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        return str(exc) or type(exc).__name__
    except Exception as exc:  # noqa: BLE001 - PIL's DecompressionBombError, and plugins' own errors (struct.error, ...): still a bad image
        return f"{type(exc).__name__}: {exc}"


def unreadable_images(paths: Sequence[Path], threads: int = 4) -> list[tuple[Path, str]]:
    """(path, reason) for every image that cannot be decoded, in the order given. Decoding releases
    the GIL, so threads overlap it with the reads."""
    with ThreadPoolExecutor(max(1, threads)) as pool:
        reasons = list(tqdm(pool.map(decode_error, paths), total=len(paths), desc="decode check", unit="image", disable=None))
    return [(p, r) for p, r in zip(paths, reasons) if r is not None]


def check_manifest_images(manifest: dict, relists: bool, threads: int = 4) -> None:
    """Decode every image a manifest lists; raise one DataError naming all that cannot be."""
    listed = [Path(manifest["image_root"]) / p for items in manifest["splits"].values() for p, _ in items]
    bad = unreadable_images(listed, threads)
    if bad:
        raise DataError(unreadable_message(manifest["dataset"], bad, len(listed), relists))


def unreadable_message(dataset: str, bad: list[tuple[Path, str]], total: int, relists: bool) -> str:
    named = "\n".join(f"  {p}: {reason}" for p, reason in bad[:SHOWN])
    more = f"\n  ... and {len(bad) - SHOWN} more" if len(bad) > SHOWN else ""
    fix = (
        "delete or replace them, then run snakemake again: prep_dataset lists the folder again by itself when its files change"
        if relists
        else "restore them from the dataset's download, then run snakemake again"
    )
    return f"{len(bad)} of the {total} images of dataset {dataset!r} cannot be read:\n{named}{more}\nFix: {fix}."
