"""Instruction-tuned causal LMs that propose templates, with optional steering.

The interface is two calls: ``sample(requests)`` samples the completions of many chats (each
with its own per-candidate seeds, settings and steering) as ONE batch with the KV cache on
(:mod:`glov.generation`), and ``mean_hidden(text, layer)`` gives the sentence vector steering is
built from. ``generate(messages, n, sampling, seed, steer)`` is the one-chat shorthand.
``FakeLLM`` answers from a script, for tests.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

import torch

from glov.registry import LLMError, LLMSpec  # which LLM a name stands for: glov.registry
from glov.steering import SteeringVector, decoder_layers, mean_hidden_state

log = logging.getLogger(__name__)

Messages = list[dict[str, str]]


@dataclass(frozen=True)
class Sampling:
    temperature: float = 1.0
    top_p: float = 0.9
    top_k: int = 50
    max_new_tokens: int = 50
    min_new_tokens: int = 0  # > 0 only to make benchmarks generate a fixed number of tokens
    eos: str = "model"  # stop at the model's end tokens (what generate() stops at), or "tokenizer": its eos_token only


@dataclass(frozen=True)
class Steer:
    """alpha * vector at the vector's layer; ``semantics`` and ``compound`` as in :class:`glov.generation.Row`
    (compound: the official alpha^n over a request's samples in order)."""

    vector: SteeringVector
    alpha: float
    semantics: str = "cached"
    compound: bool = False


def row_seed(*parts: object) -> int:
    """A generator seed from named parts (run seed, dataset, step, candidate ...): a sample's
    randomness depends on what it is, never on which batch or job it is drawn in."""
    return int(hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:15], 16)


@dataclass(frozen=True)
class Request:
    """The completions of one chat: one per seed."""

    messages: Messages
    seeds: tuple[int, ...]
    sampling: Sampling
    steer: Steer | None = None
    generation_prompt: bool = True  # False: the chat ends with the user turn, the model writes the assistant header


class LLM(Protocol):
    n_layers: int

    def sample(self, requests: Sequence[Request]) -> list[list[str]]: ...

    def generate(self, messages: Messages, n: int, sampling: Sampling, seed: int, steer: Steer | None = None) -> list[str]: ...

    def mean_hidden(self, text: str, layer: int) -> SteeringVector: ...

    def official_difference(self, positive: str, negative: str, layer: int) -> SteeringVector: ...


def row_batches(requests: Sequence[Request], max_rows: int) -> list[list[Request]]:
    """Consecutive requests, cut into batches of at most ``max_rows`` completions (a request
    larger than that is a batch of its own)."""
    batches: list[list[Request]] = []
    rows = 0
    for request in requests:
        if not batches or rows + len(request.seeds) > max_rows:
            batches.append([])
            rows = 0
        batches[-1].append(request)
        rows += len(request.seeds)
    return batches


class _OneChat:
    def generate(self, messages: Messages, n: int, sampling: Sampling, seed: int, steer: Steer | None = None) -> list[str]:
        """``n`` completions of one chat; candidate k draws from ``row_seed(seed, k)``."""
        return self.sample([Request(messages, tuple(row_seed(seed, k) for k in range(n)), sampling, steer)])[0]


_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def cache_dequantised(spec: LLMSpec, out_dir: str | Path) -> Path:
    """Dequantise a GGUF model once and save it as a normal HF folder (loads ~10x faster)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = Path(out_dir)
    tok = AutoTokenizer.from_pretrained(spec.path, gguf_file=spec.gguf_file)
    model = AutoModelForCausalLM.from_pretrained(spec.path, gguf_file=spec.gguf_file, dtype=torch.float32)
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = out.with_name(out.name + ".tmp")
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    if out.exists():
        import shutil

        shutil.rmtree(out)
    os.replace(tmp, out)
    return out


class HFLLM(_OneChat):
    """A Hugging Face causal LM (hub id, local folder, or GGUF file)."""

    def __init__(self, model: torch.nn.Module, tokenizer, device: str = "cpu", max_rows: int = 64):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.device = device
        self.max_rows = max_rows
        self.n_layers = len(decoder_layers(model))
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        eos = getattr(model.generation_config, "eos_token_id", None) or self.tokenizer.eos_token_id
        self.eos_ids = [eos] if isinstance(eos, int) else list(eos or [])  # what generate() stops at

    @classmethod
    def load(cls, spec: LLMSpec, device: str = "cpu", dtype: str = "float32", max_rows: int = 64) -> "HFLLM":
        from transformers import AutoModelForCausalLM, AutoTokenizer

        kwargs = {"gguf_file": spec.gguf_file} if spec.gguf_file else {}
        try:
            tok = AutoTokenizer.from_pretrained(spec.path, **kwargs)
            model = AutoModelForCausalLM.from_pretrained(spec.path, dtype=_DTYPES[dtype], **kwargs)
        except (OSError, ValueError) as exc:
            raise LLMError(
                f"cannot load LLM {spec.path!r}{' / ' + spec.gguf_file if spec.gguf_file else ''}: {exc}. "
                "A hub id needs the internet (and access rights) once; offline, set llm.path to a local folder."
            ) from None
        return cls(model.to(device), tok, device, max_rows)

    def encode_chat(self, messages: Messages, generation_prompt: bool = True) -> torch.Tensor:
        ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=generation_prompt, return_tensors="pt", return_dict=True)
        return ids["input_ids"].to(self.device)

    def sample(self, requests: Sequence[Request]) -> list[list[str]]:
        """Every request's completions from batched decoding loops (:func:`glov.generation.sample_rows`)
        of at most ``max_rows`` completions each (a request is never split); as every completion
        has its own generator, how requests are cut into batches does not change them."""
        layers = {r.steer.vector.layer for r in requests if r.steer is not None and r.steer.alpha != 0}
        if len(layers) > 1:
            raise ValueError(f"one batch steers one layer, not {sorted(layers)}")
        from tqdm import tqdm

        batches = row_batches(requests, self.max_rows)
        out: list[list[str]] = []
        for batch in tqdm(batches, desc="sampling", unit="batch", disable=len(batches) < 2):
            out += self._sample_batch(batch, next(iter(layers), None))
        return out

    def _sample_batch(self, requests: Sequence[Request], layer: int | None) -> list[list[str]]:
        from glov.generation import Row, sample_rows

        rows = []
        for group, request in enumerate(requests):
            prompt = tuple(self.encode_chat(request.messages, request.generation_prompt)[0].tolist())
            s, steer = request.sampling, request.steer
            eos = None if s.eos == "model" or self.tokenizer.eos_token_id is None else (self.tokenizer.eos_token_id,)
            steered = steer is not None and steer.alpha != 0
            compound = steer.alpha if steered and steer.compound else None
            offset = (steer.vector.vector if compound is not None else steer.alpha * steer.vector.vector) if steered else None
            semantics = steer.semantics if steered else "cached"
            rows += [Row(prompt, seed, s.temperature, s.top_k, s.top_p, s.max_new_tokens, s.min_new_tokens, offset, semantics, compound, group,
                         eos) for seed in request.seeds]
        tokens = sample_rows(self.model, rows, layer, self.eos_ids, self.tokenizer.pad_token_id, self.device)
        texts = iter(self.tokenizer.batch_decode(tokens, skip_special_tokens=True))
        return [[next(texts) for _ in r.seeds] for r in requests]

    def mean_hidden(self, text: str, layer: int) -> SteeringVector:
        return mean_hidden_state(self.model, self.token_ids(text), layer)

    def token_ids(self, text: str) -> torch.Tensor:
        """The text's token ids as a [1, T] batch. A text with no tokens (the empty template the
        official handling of invalid candidates keeps, with a tokenizer that adds no BOS) is the
        BOS token alone, or EOS where the model has no BOS: a sequence needs one position."""
        ids = self.tokenizer(text)["input_ids"]
        if not ids:
            ids = [self.tokenizer.bos_token_id if self.tokenizer.bos_token_id is not None else self.tokenizer.eos_token_id]
        return torch.tensor([ids], device=self.device)

    def official_difference(self, positive: str, negative: str, layer: int) -> SteeringVector:
        """The official steering vector (OFFICIAL.md row 8): both texts as given (``<category>``
        form) with the tokenizer's BOS, the shorter right-padded with end-of-turn token strings
        (the tokenizer's EOS) to the same length, each the mean over every position, BOS and
        padding included, in float16, then their difference."""
        lengths = [len(self.tokenizer(t)["input_ids"]) for t in (positive, negative)]
        pad = self.tokenizer.eos_token or ""
        means = []
        for text, n in zip((positive, negative), lengths):
            means.append(mean_hidden_state(self.model, self.token_ids(text + pad * (max(lengths) - n)), layer, include_first=True).vector.half())
        return SteeringVector(layer, means[0] - means[1])


class FakeLLM(_OneChat):
    """Scripted answers for tests: cycles through ``answers``; hidden states are seeded hashes."""

    def __init__(self, answers: Sequence[str], n_layers: int = 4, hidden: int = 8):
        self.answers = list(answers)
        self.n_layers = n_layers
        self.hidden = hidden
        self.calls: list[tuple[Messages, Steer | None]] = []
        self._i = 0

    def sample(self, requests: Sequence[Request]) -> list[list[str]]:
        out = []
        for r in requests:
            self.calls.append((r.messages, r.steer))
            out.append([self.answers[(self._i + k) % len(self.answers)] for k in range(len(r.seeds))])
            self._i += len(r.seeds)
        return out

    def mean_hidden(self, text: str, layer: int) -> SteeringVector:
        g = torch.Generator().manual_seed(int(hashlib.sha256(f"{text}|{layer}".encode()).hexdigest()[:12], 16))
        return SteeringVector(layer, torch.randn(self.hidden, generator=g))

    def official_difference(self, positive: str, negative: str, layer: int) -> SteeringVector:
        return SteeringVector(layer, self.mean_hidden(positive, layer).vector.half() - self.mean_hidden(negative, layer).vector.half())
