"""Rules export_bundled_dataset and prep_dataset: a dataset's images on disk, and its manifest
(classes, description, the seeded few-shot, val and test splits)."""

from __future__ import annotations

import logging
from pathlib import Path

from glov import config as C
from glov.data import get_dataset_spec, prepare
from glov.data.integrity import check_manifest_images
from glov.io import write_json
from glov.jobs.common import track
from glov.protocol import FITNESS_BATCH, TARGET_SPLIT, is_official, rule_switches

log = logging.getLogger(__name__)


def export_bundled_dataset(params: C.Params, dataset: str, out_dir: str | Path) -> None:
    """A lab task's images as an image folder, built under a temporary name and renamed into place
    with its record (:data:`glov.data.EXPORT_RECORD`) when complete: a stopped export leaves
    nothing that looks like the task."""
    from glov.data import EXPORT_RECORD
    from glov.data.sources import SOURCES_VERSION, export_task
    from glov.io import atomic_dir

    spec = get_dataset_spec(dataset, params.data.custom)
    with track(params, f"export_bundled_dataset/{dataset}", {"dataset": dataset}) as tracker:
        with atomic_dir(out_dir) as work:
            n = export_task(spec.bundled, work)
            write_json(work / EXPORT_RECORD, {"source": spec.bundled, "images": n, "sources_version": SOURCES_VERSION})
        tracker.log_metrics({"n_images": n})
    log.info("exported %d images of %s to %s", n, dataset, out_dir)

def prepare_dataset(params: C.Params, dataset: str, out: str | Path, seed: int | None = None) -> None:
    """The manifest of ``dataset``, its splits drawn with ``seed`` (default: data.seed)."""
    d = params.data
    seed = d.seed if seed is None else seed
    with track(params, f"prep_dataset/{dataset}", {"dataset": dataset}) as tracker:
        official = {name: is_official(params.protocol, name) for name in rule_switches("prep_dataset")}
        size = C.split_sizes(d, dataset)
        manifest = prepare(dataset, d.root, size.shots, 1 if official["val_split"] else size.val_per_class, size.test_per_class, seed, d.custom,
                           FITNESS_BATCH if official["fitness_loader"] else None, official["variant_splits"] and dataset in TARGET_SPLIT,
                           official["class_names"])
        # every image opened once now, all bad ones named at once, before any job embeds them
        check_manifest_images(manifest, relists=get_dataset_spec(dataset, d.custom).layout == "imagefolder")
        write_json(out, manifest)
        tracker.log_metrics({f"n_{k}": len(v) for k, v in manifest["splits"].items()} | {"n_classes": len(manifest["classnames"])})
