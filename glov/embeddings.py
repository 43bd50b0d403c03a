"""Cached image embeddings: one file per (dataset, vlm, split), checked before every use.

The file stores the features, labels, the manifest's image list and a SHA-256 of the feature
bytes, so a truncated or stale cache is detected and rebuilt rather than silently used.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from glov.io import sha256_bytes, write_torch


class CacheError(RuntimeError):
    pass


@dataclass(frozen=True)
class ImageEmbeddings:
    features: torch.Tensor  # [N, D], L2-normalised
    labels: torch.Tensor  # [N]
    paths: list[str]


def _digest(features: torch.Tensor) -> str:
    return sha256_bytes(features.contiguous().numpy().tobytes())


def save_embeddings(path: str | Path, emb: ImageEmbeddings) -> None:
    write_torch(path, {"features": emb.features, "labels": emb.labels, "paths": emb.paths, "sha256": _digest(emb.features)})


def load_embeddings(path: str | Path, expected_paths: list[str] | None = None) -> ImageEmbeddings:
    """Load and verify; raise :class:`CacheError` naming the file and what is wrong with it."""
    try:
        d = torch.load(path, map_location="cpu", weights_only=True)
        emb = ImageEmbeddings(d["features"], d["labels"], list(d["paths"]))
        ok = _digest(emb.features) == d["sha256"] and emb.features.shape[0] == emb.labels.shape[0] == len(emb.paths)
    except FileNotFoundError:
        raise CacheError(f"embedding cache {path} is missing") from None
    except Exception as exc:  # truncated zip, wrong pickle, missing key: all mean "corrupt"
        raise CacheError(f"embedding cache {path} is corrupt ({type(exc).__name__}: {exc})") from None
    if not ok:
        raise CacheError(f"embedding cache {path} fails its checksum or shape check")
    if expected_paths is not None and emb.paths != expected_paths:
        raise CacheError(f"embedding cache {path} was made for other images than the manifest lists")
    return emb
