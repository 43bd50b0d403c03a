"""Pure tensor functions for zero-shot scoring, and the fitness/selection built on them (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

from glov.optimizer.prompts import BRACES, ranked
from glov.protocol import CLEAN
from glov.optimizer.state import Candidate


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy in % of ``argmax`` over classes of [N, C] scores; ties go to the lower index."""
    if len(labels) == 0:
        raise ValueError("no images to score")
    return 100.0 * float((logits.argmax(dim=-1) == labels).float().mean())


def correct_string(logits: torch.Tensor, labels: torch.Tensor) -> str:
    """Per image, 1 where the top-1 class is right: what paired bootstrap intervals resample."""
    return "".join("1" if ok else "0" for ok in (logits.argmax(dim=-1) == labels).tolist())


def top1_accuracy(image_features: torch.Tensor, labels: torch.Tensor, class_weights: torch.Tensor) -> float:
    """Top-1 accuracy in % of ``argmax(image . class)``."""
    return accuracy(image_features @ class_weights.T, labels)


def class_means(per_class: Sequence[torch.Tensor]) -> torch.Tensor:
    """CuPL's classifier: per class, the mean of its [n_c, D] normalised text embeddings,
    re-normalised -> [C, D]. Classes may have different numbers of texts."""
    return F.normalize(torch.stack([F.normalize(e, dim=-1).mean(dim=0) for e in per_class]), dim=-1)


def descriptor_logits(image_features: torch.Tensor, per_class: Sequence[torch.Tensor]) -> torch.Tensor:
    """DCLIP's score: per class, the mean over its descriptors of the cosine similarity
    (a mean of scores, not the score of a mean embedding) -> [N, C]."""
    return torch.stack([(image_features @ F.normalize(e, dim=-1).T).mean(dim=-1) for e in per_class], dim=-1)


def ensemble(weights: Sequence[torch.Tensor]) -> torch.Tensor:
    """Mean of normalised [C, D] class weights, re-normalised (open_clip's template ensembling)."""
    return F.normalize(torch.stack([F.normalize(w, dim=-1) for w in weights]).mean(dim=0), dim=-1)


def top_templates(history: Sequence[Candidate], k: int, up_to_step: int | None = None, own_step_only: bool = False,
                  needs_placeholder: bool = False, ranking: str = CLEAN) -> list[str]:
    """The k best by train accuracy, best first, of the history up to ``up_to_step``. The official
    final set (``own_step_only``) takes the k best of the candidates that step itself produced and
    only then drops those without ``{}`` (the released code's order: a step may ensemble fewer).
    ``needs_placeholder`` leaves out templates without ``{}`` (only the official handling of invalid
    candidates scores them)."""
    if own_step_only:
        top = ranked([c for c in history if up_to_step is None or c.step == up_to_step], ranking)[-k:]
        return [c.template for c in reversed(top) if not needs_placeholder or BRACES.search(c.template)]
    pool = [c for c in history if (up_to_step is None or c.step <= up_to_step) and (not needs_placeholder or "{}" in c.template)]
    return [c.template for c in reversed(ranked(pool, ranking)[-k:])]


@dataclass(frozen=True)
class Selection:
    step: int
    templates: list[str]
    val_accuracy: float


def select_step(val_accuracy_by_step: dict[int, float], templates_by_step: dict[int, list[str]]) -> Selection:
    """Highest val accuracy wins; ties go to the earliest step (least optimisation, same result)."""
    best = max(sorted(val_accuracy_by_step), key=lambda s: (val_accuracy_by_step[s], -s))
    return Selection(best, templates_by_step[best], val_accuracy_by_step[best])
