"""Pure tensor functions for zero-shot scoring, and the fitness/selection built on them (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

from glov.optimizer.prompts import ranked
from glov.optimizer.state import Candidate


def top1_accuracy(image_features: torch.Tensor, labels: torch.Tensor, class_weights: torch.Tensor) -> float:
    """Top-1 accuracy in % of ``argmax(image . class)``; ties go to the lower class index."""
    if len(labels) == 0:
        raise ValueError("no images to score")
    predictions = (image_features @ class_weights.T).argmax(dim=-1)
    return 100.0 * float((predictions == labels).float().mean())


def ensemble(weights: Sequence[torch.Tensor]) -> torch.Tensor:
    """Mean of normalised [C, D] class weights, re-normalised (open_clip's template ensembling)."""
    return F.normalize(torch.stack([F.normalize(w, dim=-1) for w in weights]).mean(dim=0), dim=-1)


def top_templates(history: Sequence[Candidate], k: int, up_to_step: int | None = None) -> list[str]:
    pool = [c for c in history if up_to_step is None or c.step <= up_to_step]
    return [c.template for c in reversed(ranked(pool)[-k:])]


@dataclass(frozen=True)
class Selection:
    step: int
    templates: list[str]
    val_accuracy: float


def select_step(val_accuracy_by_step: dict[int, float], templates_by_step: dict[int, list[str]]) -> Selection:
    """Highest val accuracy wins; ties go to the earliest step (least optimisation, same result)."""
    best = max(sorted(val_accuracy_by_step), key=lambda s: (val_accuracy_by_step[s], -s))
    return Selection(best, templates_by_step[best], val_accuracy_by_step[best])
