"""Deterministic 1-shot train / val / test splits.

Files are sorted before a per-class seeded shuffle, so the same files and seed give the same
splits on any machine, whatever order the file system lists them in.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

Item = tuple[str, int]  # (path relative to image_root, label)


@dataclass(frozen=True)
class LabelledPools:
    """What a layout provides. ``val``/``test`` are None when the layout has no such split:
    they are then carved, disjointly, out of ``train``."""

    classnames: list[str]
    image_root: Path
    train: list[Item]
    val: list[Item] | None = None
    test: list[Item] | None = None


class SplitError(ValueError):
    pass


def _by_class(items: list[Item], n_classes: int, seed: int, tag: str) -> dict[int, list[str]]:
    groups: dict[int, list[str]] = defaultdict(list)
    for path, label in items:
        groups[label].append(path)
    for label in range(n_classes):
        paths = sorted(groups[label])
        random.Random(f"{seed}:{tag}:{label}").shuffle(paths)
        groups[label] = paths
    return groups


def make_splits(
    pools: LabelledPools, shots: int, val_per_class: int, test_per_class: int | None, seed: int
) -> dict[str, list[Item]]:
    """Sample ``shots`` train and ``val_per_class`` val images per class, disjoint from test."""
    n = len(pools.classnames)
    train = _by_class(pools.train, n, seed, "train")
    val = _by_class(pools.val, n, seed, "val") if pools.val is not None else None
    test = _by_class(pools.test, n, seed, "test") if pools.test is not None else None
    out: dict[str, list[Item]] = {"train": [], "val": [], "test": []}
    for label, classname in enumerate(pools.classnames):
        pool = train[label]
        need = shots + (0 if val is not None else val_per_class) + (0 if test is not None else 1)
        if len(pool) < need:
            raise SplitError(
                f"class {classname!r} has {len(pool)} training image(s); at least {need} are needed "
                f"(shots={shots}, val_per_class={val_per_class}). Add images or lower these in params.yaml."
            )
        out["train"] += [(p, label) for p in pool[:shots]]
        rest = pool[shots:]
        if val is None:
            out["val"] += [(p, label) for p in rest[:val_per_class]]
            rest = rest[val_per_class:]
        else:
            out["val"] += [(p, label) for p in val[label][:val_per_class]]
        test_pool = rest if test is None else test[label]
        out["test"] += [(p, label) for p in test_pool[:test_per_class]]
    return out


def drop_last_batch(items: list[Item], batch: int, seed: int) -> list[Item]:
    """What a shuffling loader with ``drop_last`` serves of ``items``: a multiple of ``batch`` (the
    official fitness set), a seeded random subset in the original order; fewer than one batch stay whole."""
    if len(items) < batch:
        return list(items)
    keep = sorted(random.Random(f"{seed}:drop_last").sample(range(len(items)), len(items) // batch * batch))
    return [items[i] for i in keep]


def split_target(items: list[Item], seed: int, train: float = 0.6, val: float = 0.2) -> tuple[list[Item], list[Item], list[Item]]:
    """The official split of a target set that has no training images of its own (ImageNet-R/-A/
    -Sketch): a seeded random 60/20/20 over the whole set (not per class), each part in file order."""
    order = sorted(items)
    index = list(range(len(order)))
    random.Random(f"{seed}:target").shuffle(index)
    cut = (int(train * len(order)), int((train + val) * len(order)))
    parts = (index[: cut[0]], index[cut[0] : cut[1]], index[cut[1] :])
    return tuple([order[i] for i in sorted(part)] for part in parts)  # type: ignore[return-value]
