"""Activation steering: read a layer's mean hidden state, and add alpha * v to a layer's output.

GLOV's guidance is v = H(p+) - H(p-), the difference of the mean hidden states of the best and
second-best prompts at decoder layer l; during generation alpha * v is added to layer l's output
at the newest position. With a KV cache every decoding call holds exactly one new token per row
(:mod:`glov.generation`), so "last position of each forward call" is exactly "the position being
generated", and alpha is applied once per token. The official code's other choices (the offset at
the last position of a recomputed sequence only; alpha re-multiplied per token, alpha^n) are
``protocol`` switches, run by :mod:`glov.generation` (docs/PROTOCOL.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import torch
from torch import nn

LAYER_PATHS: Sequence[str] = ("model.layers", "model.model.layers", "transformer.h", "gpt_neox.layers", "model.decoder.layers")


class SteeringError(RuntimeError):
    pass


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The decoder blocks of a causal LM, found by the usual Hugging Face attribute paths."""
    for path in LAYER_PATHS:
        obj: object = model
        for attr in path.split("."):
            obj = getattr(obj, attr, None)
            if obj is None:
                break
        if isinstance(obj, nn.ModuleList):
            return obj
    raise SteeringError(f"{type(model).__name__}: no decoder layers at any of {', '.join(LAYER_PATHS)}")


def default_layer(n_layers: int, fraction: float = 0.55) -> int:
    """The paper steers layer 17 of Llama-3-8B's 32, about 55% of the depth."""
    return min(n_layers - 1, int(fraction * n_layers))


def resolve_layer(layer: int | None, fraction: float, n_layers: int) -> int:
    chosen = default_layer(n_layers, fraction) if layer is None else layer
    if not 0 <= chosen < n_layers:
        raise SteeringError(f"steering.layer={chosen} is beyond the model's depth ({n_layers} decoder layers: 0..{n_layers - 1})")
    return chosen


@dataclass(frozen=True)
class SteeringVector:
    """A direction at one decoder layer. Supports ``alpha * (pos - neg)``."""

    layer: int
    vector: torch.Tensor

    def _check(self, other: "SteeringVector") -> None:
        if other.layer != self.layer:
            raise SteeringError(f"cannot combine vectors of layers {self.layer} and {other.layer}")

    def __sub__(self, other: "SteeringVector") -> "SteeringVector":
        self._check(other)
        return SteeringVector(self.layer, self.vector - other.vector)

    def __add__(self, other: "SteeringVector") -> "SteeringVector":
        self._check(other)
        return SteeringVector(self.layer, self.vector + other.vector)

    def __mul__(self, alpha: float) -> "SteeringVector":
        return SteeringVector(self.layer, self.vector * alpha)

    __rmul__ = __mul__

    @property
    def norm(self) -> float:
        return float(self.vector.norm())


def _hidden(output: torch.Tensor | tuple) -> torch.Tensor:
    """transformers 5 decoder layers return a Tensor; older ones a tuple whose first item is it."""
    return output[0] if isinstance(output, tuple) else output


def shift_last_position(output: torch.Tensor | tuple, delta: torch.Tensor) -> torch.Tensor | tuple:
    """A decoder layer's output with ``delta`` ([hidden], or [batch, hidden]: one offset per row;
    zeros leave a row bit-identical, ``x + 0.0 == x``) added at the last position."""
    h = _hidden(output)
    shift = torch.zeros_like(h)
    shift[:, -1, :] = delta.to(device=h.device, dtype=h.dtype)
    steered = h + shift  # a new tensor: never mutate what the layer (or a cache) holds
    return (steered, *output[1:]) if isinstance(output, tuple) else steered


class Steering:
    """Context manager: while active, layer ``vector.layer`` outputs ``h + alpha * v`` at the last position.
    (The batched sampling loop, :mod:`glov.generation`, steers per row with its own hook.)"""

    def __init__(self, model: nn.Module, vector: SteeringVector, alpha: float):
        self.layer = decoder_layers(model)[vector.layer]
        self.delta = alpha * vector.vector
        self.handle: torch.utils.hooks.RemovableHandle | None = None

    def _hook(self, module: nn.Module, args: tuple, output: torch.Tensor | tuple):
        return shift_last_position(output, self.delta)

    def __enter__(self) -> "Steering":
        self.handle = self.layer.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.handle is not None:
            self.handle.remove()
            self.handle = None


class _Recorder:
    def __init__(self, layer: nn.Module):
        self.layer = layer
        self.outputs: list[torch.Tensor] = []

    def __enter__(self) -> "_Recorder":
        self.handle = self.layer.register_forward_hook(self._hook)
        return self

    def _hook(self, module: nn.Module, args: tuple, output: torch.Tensor | tuple) -> None:
        self.outputs.append(_hidden(output).detach())

    def __exit__(self, *exc: object) -> None:
        self.handle.remove()


@torch.inference_mode()
def mean_hidden_state(model: nn.Module, input_ids: torch.Tensor, layer: int, include_first: bool = False) -> SteeringVector:
    """Mean of layer ``layer``'s output over the tokens of one sequence, first token excluded
    (``include_first``: kept, as the official code keeps it).

    The first position is an attention sink with a norm ~100x the others in small LLMs; keeping
    it would make every sentence vector nearly the same.
    """
    with _Recorder(decoder_layers(model)[layer]) as rec:
        model(input_ids=input_ids, use_cache=False, logits_to_keep=1)  # only the hidden states are read
    h = rec.outputs[0][0]
    tokens = h[1:] if h.shape[0] > 1 and not include_first else h
    return SteeringVector(layer, tokens.float().mean(dim=0).cpu())


def iter_hooks(model: nn.Module) -> Iterator[object]:
    """glov's forward hooks on the decoder layers (tests use it to prove none is left behind).

    transformers installs hooks of its own on the same layers; those are not ours to count.
    """
    for block in decoder_layers(model):
        for hook in block._forward_hooks.values():
            if isinstance(getattr(hook, "__self__", None), (Steering, _Recorder)):
                yield hook
