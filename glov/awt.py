"""AWT (Zhu et al., NeurIPS 2024): Augment, Weight, then Transport, training-free.

Each image is seen through several views (the original plus random crops) and each class through
several texts (``a photo of a {}.`` plus LLM descriptions). Views and texts are weighted by how
confident the VLM's prediction is with them (low entropy -> high weight), and an image's score for
a class is the similarity left after optimally transporting the weighted image views onto the
weighted text views (entropic OT, Sinkhorn). Pure tensor functions, no I/O; images are chunked so
ImageNet-sized label sets fit in memory.
"""

from __future__ import annotations

import torch

from glov.config import AWTConfig


def sinkhorn(cost: torch.Tensor, a: torch.Tensor, b: torch.Tensor, epsilon: float, iterations: int) -> torch.Tensor:
    """Entropic optimal transport plan [..., M, N] between marginals ``a`` [..., M] and ``b`` [..., N]
    for ``cost`` [..., M, N], in the log domain (stable for small ``epsilon``). Zero-mass entries
    (padding) get no mass; as ``epsilon`` -> 0 the plan tends to the exact OT plan."""
    log_k = -cost / epsilon
    log_a, log_b = a.clamp_min(0).log(), b.clamp_min(0).log()
    f = torch.zeros_like(log_a)
    g = torch.zeros_like(log_b)
    for _ in range(iterations):
        f = log_a - torch.logsumexp(log_k + g.unsqueeze(-2), dim=-1)
        g = log_b - torch.logsumexp(log_k + f.unsqueeze(-1), dim=-2)
    return torch.exp(f.unsqueeze(-1) + log_k + g.unsqueeze(-2))


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of ``softmax(logits)`` over the last dimension."""
    return -(logits.softmax(-1) * logits.log_softmax(-1)).sum(-1)


def _masked_mean(sims: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the last (text) dimension, counting only real texts. sims [..., C, T], mask [C, T]."""
    return (sims * mask).sum(-1) / mask.sum(-1)


def image_view_weights(sims: torch.Tensor, mask: torch.Tensor, scale: float, temperature: float) -> torch.Tensor:
    """[N, V]: softmax over views of -entropy/temperature of each view's class prediction
    (class score = mean over the class's texts). sims [N, V, C, T]."""
    return torch.softmax(-entropy(scale * _masked_mean(sims, mask)) / temperature, dim=-1)


def text_view_weights(sims: torch.Tensor, mask: torch.Tensor, scale: float, temperature: float) -> torch.Tensor:
    """[N, C, T]: for class c and text t, the entropy of the original view's prediction when class c
    is represented by text t alone (the others by their mean); softmax of -entropy/temperature over
    the class's real texts. A text that makes the prediction confident weighs more."""
    anchor = sims[:, 0]  # [N, C, T], the un-augmented view
    base = scale * _masked_mean(anchor, mask)  # [N, C]
    n_classes = base.shape[-1]
    own = torch.eye(n_classes, dtype=base.dtype).unsqueeze(1)  # [C, 1, C]: 1 where the varied class sits
    logits = base[:, None, None, :] * (1 - own) + scale * anchor.unsqueeze(-1) * own  # [N, C, T, C]
    scores = -entropy(logits) / temperature
    return torch.softmax(scores.masked_fill(mask == 0, float("-inf")), dim=-1)


def awt_logits(
    image_views: torch.Tensor, text_views: torch.Tensor, text_mask: torch.Tensor, scale: float, cfg: AWTConfig, chunk: int = 64
) -> torch.Tensor:
    """[N, C] AWT scores. image_views [N, V, D] and text_views [C, T, D] are L2-normalised; text_mask
    [C, T] is 1 for a real text and 0 for padding (classes may have different numbers of texts)."""
    mask = text_mask.to(image_views.dtype)
    out = []
    for start in range(0, image_views.shape[0], chunk):
        views = image_views[start : start + chunk]
        sims = torch.einsum("nvd,ctd->nvct", views, text_views)  # [n, V, C, T]
        a = image_view_weights(sims, mask, scale, cfg.image_temperature)  # [n, V]
        b = text_view_weights(sims, mask, scale, cfg.text_temperature)  # [n, C, T]
        per_class = sims.permute(0, 2, 1, 3)  # [n, C, V, T]
        a = a[:, None, :].expand(-1, per_class.shape[1], -1)
        plan = sinkhorn(1 - per_class, a, b, cfg.epsilon, cfg.sinkhorn_iterations)
        out.append((plan * per_class).sum(dim=(-1, -2)))
    return torch.cat(out)


def pad_texts(per_class: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack classes with different numbers of [n_c, D] texts into [C, T, D] plus a [C, T] mask."""
    width = max(e.shape[0] for e in per_class)
    dim = per_class[0].shape[-1]
    texts = torch.zeros(len(per_class), width, dim)
    mask = torch.zeros(len(per_class), width)
    for c, e in enumerate(per_class):
        texts[c, : e.shape[0]] = e
        mask[c, : e.shape[0]] = 1
    return texts, mask
