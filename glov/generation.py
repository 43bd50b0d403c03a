"""Our own sampling loop over a Hugging Face causal LM: many chains in one batch, KV cache on.

Why not ``model.generate``: GLOV advances several optimisation chains (one per alpha) at once,
and each chain's candidates must not depend on what else shares the batch. So every row here has

- its own random generator (seeded by the caller from seed, dataset, step and candidate) that only
  it draws from, one ``torch.multinomial`` call per token, as Hugging Face draws for a one-row batch;
- its own sampling settings, applied with Hugging Face's own warpers in Hugging Face's order
  (temperature, top-k, top-p), so the distribution is exactly the one ``generate`` samples from;
- its own steering offset ``alpha * v`` (or none), added to the output of one decoder layer at the
  position being generated.

A prompt is prefilled once, alone (no padding), whatever number of rows sample from it; the rows
then share its cache, left-padded to the longest prompt of the batch, with an attention mask and
explicit position ids. Each row feeds its prompt's last token itself, so a steered row is steered
there too (as a hook over ``generate`` steers the last prompt position) without splitting the
prefill. What remains batch-dependent is floating point: matrix kernels may round differently at
another batch shape or padding, which can flip a sampled token when two candidates' cumulative
probabilities straddle the random draw by less than the rounding (see docs in README, "Batching").

Steering semantics (``Row.semantics``): ``cached`` keeps each generated position's steered keys and
values in the cache (our default); the literal official loop recomputes the whole sequence for
every token, so earlier positions are unsteered in later passes. The loop keeps that choice per
row, so a second semantics can be added without touching the callers.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from glov.steering import Steering

CACHED = "cached"
SEMANTICS = (CACHED,)


@dataclass(frozen=True)
class Row:
    """One sampled completion: its prompt (token ids), generator seed and settings."""

    prompt: tuple[int, ...]
    seed: int
    temperature: float = 1.0
    top_k: int = 50
    top_p: float = 1.0
    max_new_tokens: int = 50
    min_new_tokens: int = 0
    offset: torch.Tensor | None = None  # alpha * v for the steered layer, or None (unsteered)
    semantics: str = CACHED


def warpers(temperature: float, top_k: int, top_p: float) -> list:
    """Hugging Face's sampling warpers, in the order ``generate`` applies them (none when greedy)."""
    from transformers.generation.logits_process import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    out: list = []
    if temperature == 0:
        return out
    if temperature != 1.0:
        out.append(TemperatureLogitsWarper(temperature))
    if top_k:
        out.append(TopKLogitsWarper(top_k=top_k))
    if top_p < 1.0:
        out.append(TopPLogitsWarper(top_p=top_p))
    return out


def next_tokens(logits: torch.Tensor, rows: Sequence[Row], active: Sequence[int], generated: Sequence[int], eos: Sequence[int],
                gens: Sequence[torch.Generator]) -> dict[int, int]:
    """The next token of each active row, sampled from its float32 logits (a row of ``logits``) as
    ``generate`` samples for that row alone: rows with the same settings are warped together (the
    warpers work row by row), then each row draws from its own generator (temperature 0: greedy)."""
    groups: dict[tuple, list[int]] = {}
    for b in active:
        r = rows[b]
        groups.setdefault((r.temperature, r.top_k, r.top_p, generated[b] < r.min_new_tokens), []).append(b)
    out = {}
    for (temperature, top_k, top_p, below_min), members in groups.items():
        scores = logits[members].float()
        if below_min and eos:
            scores[:, list(eos)] = -float("inf")
        if temperature == 0:
            out.update(zip(members, scores.argmax(dim=-1).tolist()))
            continue
        for warp in warpers(temperature, top_k, top_p):
            scores = warp(None, scores)
        probs = torch.softmax(scores, dim=-1)
        for j, b in enumerate(members):
            out[b] = int(torch.multinomial(probs[j : j + 1], num_samples=1, generator=gens[b]))
    return out


def _prefill(model: nn.Module, prompt: Sequence[int], device: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Keys and values of every layer for ``prompt`` (one sequence, no padding)."""
    if not prompt:
        return []
    ids = torch.tensor([list(prompt)], device=device)
    # logits of the last position only: the vocabulary projection of every prompt position was ~20 %
    # of a GLOV step's generation time on SmolLM2, for logits nobody reads
    cache = model(input_ids=ids, use_cache=True, logits_to_keep=1).past_key_values
    return [(layer.keys, layer.values) for layer in cache.layers]


def _batched_cache(model: nn.Module, prefills: list[list[tuple[torch.Tensor, torch.Tensor]]], width: int):
    """One DynamicCache for the batch: each row's prefill left-padded with zeros to ``width``."""
    from transformers import DynamicCache

    cache = DynamicCache(config=model.config)
    if width == 0:
        return cache
    n_layers = next(len(p) for p in prefills if p)
    template = next(p for p in prefills if p)
    for index in range(n_layers):
        keys, values = [], []
        for rows in prefills:
            for pos, tensors in enumerate((rows[index] if rows else (None, None))):
                ref = template[index][pos]
                t = tensors if tensors is not None else ref[:, :, :0]
                pad = torch.zeros((*ref.shape[:2], width - t.shape[2], ref.shape[3]), dtype=ref.dtype, device=ref.device)
                (keys if pos == 0 else values).append(torch.cat([pad, t], dim=2))
        cache.update(torch.cat(keys), torch.cat(values), index)
    return cache


def _steering(model: nn.Module, rows: Sequence[Row], layer: int | None) -> contextlib.AbstractContextManager:
    """Each row's offset on the steered layer (zeros for unsteered rows); nothing if no row is steered."""
    if all(r.offset is None for r in rows):
        return contextlib.nullcontext()
    if layer is None:
        raise ValueError("steered rows need the steering layer")
    hidden = next(r.offset for r in rows if r.offset is not None)
    return Steering.per_row(model, layer, torch.stack([r.offset if r.offset is not None else torch.zeros_like(hidden) for r in rows]))


@torch.inference_mode()
def sample_rows(model: nn.Module, rows: Sequence[Row], layer: int | None, eos: Sequence[int], pad: int, device: str = "cpu") -> list[list[int]]:
    """Generated token ids of every row (up to and including its end-of-sequence token)."""
    if not rows:
        return []
    for row in rows:
        if row.semantics not in SEMANTICS:
            raise ValueError(f"unknown steering semantics {row.semantics!r} (known: {', '.join(SEMANTICS)})")
        if not row.prompt:
            raise ValueError("a row needs a prompt of at least one token")
    prompts = list(dict.fromkeys(r.prompt[:-1] for r in rows))
    prefilled = {p: _prefill(model, p, device) for p in prompts}
    width = max(len(p) for p in prompts)
    cache = _batched_cache(model, [prefilled[r.prompt[:-1]] for r in rows], width)
    mask = torch.tensor([[0] * (width - len(r.prompt) + 1) + [1] * (len(r.prompt) - 1) for r in rows], device=device, dtype=torch.long)
    tokens = torch.tensor([[r.prompt[-1]] for r in rows], device=device)
    positions = torch.tensor([[len(r.prompt) - 1] for r in rows], device=device)
    gens = [torch.Generator(device=device).manual_seed(r.seed) for r in rows]
    out: list[list[int]] = [[] for _ in rows]
    done = [r.max_new_tokens == 0 for r in rows]
    with _steering(model, rows, layer):
        t = 0
        while not all(done):
            mask = torch.cat([mask, torch.ones((len(rows), 1), dtype=mask.dtype, device=device)], dim=1)
            logits = model(input_ids=tokens, attention_mask=mask, position_ids=positions, past_key_values=cache,
                           cache_position=torch.tensor([width + t], device=device), use_cache=True).logits[:, -1]
            active = [b for b in range(len(rows)) if not done[b]]
            chosen = next_tokens(logits, rows, active, [len(o) for o in out], eos, gens)
            for b, token in chosen.items():
                out[b].append(token)
                done[b] = token in eos or len(out[b]) >= rows[b].max_new_tokens
            tokens = torch.tensor([chosen.get(b, pad) for b in range(len(rows))], device=device)[:, None]
            positions = positions + 1
            t += 1
    return out
