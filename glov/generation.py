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
values in the cache (our default: every generated position stays steered). ``recomputed`` gives the
official loop's output, which recomputes the whole sequence for every token and steers only its last
position, so in each pass the earlier positions are unsteered. With a KV cache that is: steer the
new position's forward (its logits are then the official ones), then recompute that position's
keys and values in the layers above the steered one without the offset before the next token
reads them (the layers up to the steered one never see it). The repair costs the upper layers once
more per token, not a recompute of the sequence.

Compounding (``Row.compound``): the official loop multiplies the offset by alpha again before every
forward pass, across the step's samples one after another, so sample i's offset depends on how
many tokens samples 0..i-1 took. Such rows are generated in waves, one row of each compounding
group per wave, beside the other rows; once a group's offset has underflowed to exact zeros its
remaining rows are plainly unsteered and go together in one wave.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from glov.steering import _hidden, decoder_layers, shift_last_position

CACHED = "cached"
RECOMPUTED = "recomputed"
SEMANTICS = (CACHED, RECOMPUTED)


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
    compound: float | None = None  # official alpha^n: offset is v, multiplied by this before every forward
    group: int = 0  # compounding rows of one group share the count of forwards, in list order
    eos: tuple[int, ...] | None = None  # the tokens this row stops at, if not the batch's


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


def row_eos(row: Row, eos: Sequence[int]) -> Sequence[int]:
    """The tokens ``row`` stops at: its own, or the batch's."""
    return eos if row.eos is None else row.eos


def next_tokens(logits: torch.Tensor, rows: Sequence[Row], active: Sequence[int], generated: Sequence[int], eos: Sequence[int],
                gens: Sequence[torch.Generator]) -> dict[int, int]:
    """The next token of each active row, sampled from its float32 logits (a row of ``logits``) as
    ``generate`` samples for that row alone: rows with the same settings are warped together (the
    warpers work row by row), then each row draws from its own generator (temperature 0: greedy)."""
    groups: dict[tuple, list[int]] = {}
    for b in active:
        r = rows[b]
        stops = tuple(row_eos(r, eos)) if generated[b] < r.min_new_tokens else ()
        groups.setdefault((r.temperature, r.top_k, r.top_p, stops), []).append(b)
    out = {}
    for (temperature, top_k, top_p, stops), members in groups.items():
        scores = logits[members].float()
        if stops:  # below min_new_tokens: the row's end-of-sequence tokens cannot be drawn
            scores[:, list(stops)] = -float("inf")
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


def _preallocated_layer(keys: torch.Tensor, values: torch.Tensor, capacity: int):
    """A cache layer holding ``keys``/``values`` in buffers with room for ``capacity`` positions.

    Why: Hugging Face's ``DynamicLayer`` appends by ``torch.cat``, copying the whole cache of every
    layer at every token; at 20 rows and a 300-token prompt that copy was ~half of decoding time on
    CPU. Here a new position is written into the buffer in place and attention reads a view of the
    filled part: the same values, so the same logits. Dropping a position (``keys[..., :-1, :]``,
    the steering repair) shortens the view; the next write lands there.
    """
    from transformers.cache_utils import DynamicLayer

    class _Layer(DynamicLayer):
        def __init__(self) -> None:
            super().__init__()
            self.dtype, self.device, self.is_initialized = keys.dtype, keys.device, True
            self._k = keys.new_zeros((*keys.shape[:2], capacity, keys.shape[3]))
            self._v = values.new_zeros((*values.shape[:2], capacity, values.shape[3]))
            self._k[..., : keys.shape[2], :] = keys
            self._v[..., : values.shape[2], :] = values
            self.keys, self.values = self._k[..., : keys.shape[2], :], self._v[..., : values.shape[2], :]

        def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
            start, end = self.keys.shape[-2], self.keys.shape[-2] + key_states.shape[-2]
            if end > self._k.shape[-2]:  # past the planned length: grow (never on the planned path)
                grow = max(end, 2 * self._k.shape[-2]) - self._k.shape[-2]
                self._k = torch.cat([self._k, self._k.new_zeros((*self._k.shape[:2], grow, self._k.shape[3]))], dim=-2)
                self._v = torch.cat([self._v, self._v.new_zeros((*self._v.shape[:2], grow, self._v.shape[3]))], dim=-2)
            self._k[..., start:end, :] = key_states
            self._v[..., start:end, :] = value_states
            self.keys, self.values = self._k[..., :end, :], self._v[..., :end, :]
            return self.keys, self.values

    return _Layer()


def _batched_cache(model: nn.Module, prefills: list[list[tuple[torch.Tensor, torch.Tensor]]], width: int, capacity: int):
    """One cache for the batch: each row's prefill left-padded with zeros to ``width``, in buffers
    with room for ``capacity`` positions (:func:`_preallocated_layer`)."""
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
        cache.layers[index] = _preallocated_layer(torch.cat(keys), torch.cat(values), capacity)
    return cache


class _Steer:
    """Layer ``layer``'s per-row offsets at the position being generated (changed between forwards),
    and, for ``recomputed`` rows, the repair of that position's keys and values above the layer."""

    def __init__(self, model: nn.Module, layer: int, recomputed: torch.Tensor):
        self.layers = decoder_layers(model)
        self.layer = layer
        self.recomputed = recomputed  # [B] bool
        self.offsets: torch.Tensor | None = None  # [B, hidden]
        self.raw: torch.Tensor | None = None
        self.kwargs: dict[int, dict] = {}
        self.handles = [self.layers[layer].register_forward_hook(self._add)]
        if bool(recomputed.any()):
            self.handles += [self.layers[j].register_forward_pre_hook(self._keep_kwargs(j), with_kwargs=True)
                             for j in range(layer + 1, len(self.layers))]

    def _add(self, module: nn.Module, args: tuple, output):
        if self.offsets is None:
            return None
        self.raw = _hidden(output)
        return shift_last_position(output, self.offsets)

    def _keep_kwargs(self, j: int):
        def hook(module: nn.Module, args: tuple, kwargs: dict):
            self.kwargs[j] = kwargs
        return hook

    def repair(self, cache) -> None:
        """Recompute the newest position's keys and values in the layers above the steered one
        from the layer's output without the offset (recomputed rows) or with it (cached rows:
        the same values again), so the cache holds what a full unsteered recompute would."""
        if self.offsets is None or not bool(self.recomputed.any()) or self.layer == len(self.layers) - 1:
            return
        keep = (~self.recomputed).to(device=self.raw.device, dtype=self.raw.dtype)[:, None]
        hidden = self.raw.clone()
        hidden[:, -1, :] += self.offsets.to(device=hidden.device, dtype=hidden.dtype) * keep
        for j in range(self.layer + 1, len(self.layers)):
            _drop_last_position(cache, j)
            hidden = _hidden(self.layers[j](hidden, **self.kwargs[j]))

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()


def _drop_last_position(cache, index: int) -> None:
    layer = cache.layers[index]
    layer.keys, layer.values = layer.keys[..., :-1, :], layer.values[..., :-1, :]


class _Offsets:
    """The offset a row adds at each of its forwards: fixed, or (compounding) multiplied by alpha
    before every forward, in the vector's own dtype as the official loop does."""

    def __init__(self, row: Row, start: torch.Tensor | None):
        self.row, self.current = row, start

    def next(self) -> torch.Tensor | None:
        if self.row.compound is None or self.current is None:
            return self.current
        self.current = self.row.compound * self.current
        return self.current


def _waves(rows: Sequence[Row]):
    """Yields the rows to decode together, as (row index, its :class:`_Offsets`): every row once, a
    compounding group's rows one per wave in order (each continues the offset where the previous
    one stopped), and a group's remaining rows all at once, unsteered, once its offset is zero."""
    groups: dict[int, list[int]] = {}
    for i, r in enumerate(rows):
        if r.compound is not None and r.offset is not None:
            groups.setdefault(r.group, []).append(i)
    current = {g: rows[members[0]].offset for g, members in groups.items()}
    wave = [(i, _Offsets(r, r.offset)) for i, r in enumerate(rows) if r.compound is None or r.offset is None]
    while True:
        for g, members in groups.items():
            if members and not bool(current[g].any()):  # underflowed: x + 0 == x
                wave += [(i, _Offsets(rows[i], None)) for i in members]
                members.clear()
            elif members:
                i = members.pop(0)
                wave.append((i, _Offsets(rows[i], current[g])))
        if not wave:
            return
        yield wave
        for i, offsets in wave:  # advanced once per forward of the row: where the group goes on
            if rows[i].compound is not None and offsets.current is not None:
                current[rows[i].group] = offsets.current
        wave = []


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
    if layer is None and any(r.offset is not None for r in rows):
        raise ValueError("steered rows need the steering layer")
    out: dict[int, list[int]] = {}
    for wave in _waves(rows):
        tokens = _decode(model, [rows[i] for i, _ in wave], [o for _, o in wave], layer, eos, pad, device)
        out.update({i: t for (i, _), t in zip(wave, tokens)})
    return [out[i] for i in range(len(rows))]


def _decode(model: nn.Module, rows: Sequence[Row], offsets: Sequence[_Offsets], layer: int | None, eos: Sequence[int], pad: int,
            device: str) -> list[list[int]]:
    """One batched decoding loop over ``rows`` (prefill shared per prompt, left padding)."""
    prompts = list(dict.fromkeys(r.prompt[:-1] for r in rows))
    prefilled = {p: _prefill(model, p, device) for p in prompts}
    width = max(len(p) for p in prompts)
    capacity = width + 1 + max(r.max_new_tokens for r in rows)
    cache = _batched_cache(model, [prefilled[r.prompt[:-1]] for r in rows], width, capacity)
    mask = torch.tensor([[0] * (width - len(r.prompt) + 1) + [1] * (len(r.prompt) - 1) for r in rows], device=device, dtype=torch.long)
    tokens = torch.tensor([[r.prompt[-1]] for r in rows], device=device)
    positions = torch.tensor([[len(r.prompt) - 1] for r in rows], device=device)
    gens = [torch.Generator(device=device).manual_seed(r.seed) for r in rows]
    out: list[list[int]] = [[] for _ in rows]
    done = [r.max_new_tokens == 0 for r in rows]
    steered = [o.current is not None for o in offsets]
    steer = _Steer(model, layer, torch.tensor([r.semantics == RECOMPUTED and s for r, s in zip(rows, steered)])) if any(steered) else None
    try:
        t = 0
        while not all(done):
            if steer is not None:
                current = [o.next() if not d else None for o, d in zip(offsets, done)]
                like = next(c for c in current if c is not None) if any(c is not None for c in current) else None
                steer.offsets = None if like is None else torch.stack([c if c is not None else torch.zeros_like(like) for c in current])
            mask = torch.cat([mask, torch.ones((len(rows), 1), dtype=mask.dtype, device=device)], dim=1)
            logits = model(input_ids=tokens, attention_mask=mask, position_ids=positions, past_key_values=cache,
                           cache_position=torch.tensor([width + t], device=device), use_cache=True).logits[:, -1]
            if steer is not None:
                steer.repair(cache)
            active = [b for b in range(len(rows)) if not done[b]]
            chosen = next_tokens(logits, rows, active, [len(o) for o in out], eos, gens)
            for b, token in chosen.items():
                out[b].append(token)
                done[b] = token in row_eos(rows[b], eos) or len(out[b]) >= rows[b].max_new_tokens
            tokens = torch.tensor([chosen.get(b, pad) for b in range(len(rows))], device=device)[:, None]
            positions = positions + 1
            t += 1
    finally:
        if steer is not None:
            steer.close()
    return out
