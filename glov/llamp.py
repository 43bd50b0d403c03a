"""LLaMP (Zheng et al., CVPR 2024): the LLM's knowledge of each class becomes deep prompts of the
VLM's text encoder, learnt on the labelled few-shot set (a *trained* method, unlike GLOV).

Per class, the LLM reads a query about the class's distinctive appearance. Everything below its
last decoder layer is frozen, so the query's hidden states at that layer's input are computed once
per class, kept in memory while every seed trains and saved: the *knowledge cache* (rule train_llamp). ``prompt_tokens``
learnable tokens enter at that layer after the cached query; the last layer (adapted by low-rank
updates of its linear maps, so what is saved stays small even for an 8B LLM) and the final norm
turn them into one output per token, and a linear layer maps each output to a class-specific
prompt token for every prompted layer of the text encoder. Beside them, ``text_prompts`` shared
learnable tokens per layer (ordinary deep text prompts). The prompt tokens take the place of
reserved positions after the start token, at the input of each of the first ``depth`` text layers
(hooks; no change to the VLM). Texts follow LLaMP's templates, "a photo of a {class}." and "a photo
of a {class} with {phrase}.", the phrases taken from the LLM's class descriptors (DCLIP's); each
iteration draws one text per class. Training is cross-entropy against the few-shot images'
cached embeddings; a class's final weight is the mean over all its texts.
"""

from __future__ import annotations

import copy
import random
import re
from contextlib import contextmanager
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from glov.config import LLaMPConfig
from glov.llm import row_seed
from glov.registry import LLMError, VLMError
from glov.steering import decoder_layers
from glov.vlm import VLM, cut_trailing_padding

SLOT = "X"  # the word whose tokens the prompt tokens replace (one token in BERT and CLIP vocabularies)
_LEAD = re.compile(r"^(?:has|have|with|is|are|it has|they have)\s+", re.IGNORECASE)


def knowledge_query(classname: str, dataset: str, description: str) -> str:
    """Plain text, no chat template: the query is short, and the cost of training is the last
    layer's work on it (LLaMP feeds its LLM a bare prompt too)."""
    return f"{description}: describe what a {classname} looks like and what sets it apart."


def class_texts(classname: str, descriptors: Sequence[str]) -> list[str]:
    """LLaMP's texts of one class: the plain template and one "with {phrase}" per descriptor."""
    phrases = [_LEAD.sub("", d.split(" which (is/has/etc) ")[-1]).strip().rstrip(".") for d in descriptors]
    return [f"a photo of a {classname}."] + [f"a photo of a {classname} with {p}." for p in dict.fromkeys(phrases) if p]


# ---- the knowledge cache -----------------------------------------------------------------------

@torch.inference_mode()
def knowledge_cache(model: nn.Module, ids: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Per query ([T] token ids): the hidden states entering the LLM's last decoder layer, [T, d]."""
    out = []
    for row in ids:
        hidden = model(row[None].to(model.device), output_hidden_states=True).hidden_states
        out.append(hidden[-2][0].float().cpu())  # hidden_states[i] enters layer i; [-1] is the normed output
    return out


class LoRALinear(nn.Module):
    """``base(x) + x A^T B^T``: B starts at zero, so training starts from the frozen layer."""

    def __init__(self, base: nn.Linear, rank: int):
        super().__init__()
        self.base = base
        self.a = nn.Parameter(torch.randn(rank, base.in_features) / base.in_features**0.5)
        self.b = nn.Parameter(torch.zeros(base.out_features, rank))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + F.linear(F.linear(x, self.a), self.b)


class LastLayer(nn.Module):
    """The LLM's last decoder layer and final norm (a float32 copy, frozen, with LoRA updates),
    run on [cached query; prompt tokens] for every class at once (left padding)."""

    def __init__(self, llm_model: nn.Module, lora_rank: int):
        super().__init__()
        inner = getattr(llm_model, "model", None)
        last = decoder_layers(llm_model)[-1]
        parts = ("input_layernorm", "self_attn", "post_attention_layernorm", "mlp")
        if not all(hasattr(inner, a) for a in ("norm", "rotary_emb")) or not all(hasattr(last, a) for a in parts):
            raise LLMError(f"LLaMP needs a Llama-style decoder (model.norm, model.rotary_emb, {', '.join(parts)}); "
                           f"{type(llm_model).__name__} has not")
        self.layer = copy.deepcopy(last).float()
        self.norm = copy.deepcopy(inner.norm).float()
        self.rotary = copy.deepcopy(inner.rotary_emb).float()
        for p in self.parameters():
            p.requires_grad_(False)
        if lora_rank:
            for module in list(self.layer.modules()):
                for name, child in list(module.named_children()):
                    if isinstance(child, nn.Linear):
                        setattr(module, name, LoRALinear(child, lora_rank))

    def forward(self, caches: Sequence[torch.Tensor], extra: torch.Tensor, keep: int | None = None) -> list[torch.Tensor]:
        """Per cache, the outputs [T_c + K, d] of it followed by the same ``extra`` [K, d] tokens
        (rows left-padded to a common length, the padding cut again); with ``keep``, only the last
        ``keep`` positions: every position's keys and values are computed, the feed-forward half
        only where an output is wanted (LLaMP reads the prompt tokens' alone)."""
        lengths = [len(c) + len(extra) for c in caches]
        n = max(lengths)
        x = torch.stack([F.pad(torch.cat([c, extra]), (0, 0, n - m, 0)) for c, m in zip(caches, lengths)])
        real = torch.stack([torch.arange(n) >= n - m for m in lengths])  # [C, n]
        positions = (real.long().cumsum(dim=1) - 1).clamp(min=0)
        causal = torch.ones(n, n, dtype=torch.bool).tril()
        allowed = causal[None] & real[:, None, :] | torch.eye(n, dtype=torch.bool)[None]  # padding sees itself (no empty row)
        mask = torch.zeros(len(caches), 1, n, n).masked_fill(~allowed[:, None], torch.finfo(torch.float32).min)
        layer = self.layer
        attended, _ = layer.self_attn(hidden_states=layer.input_layernorm(x), attention_mask=mask, position_ids=positions,
                                      position_embeddings=self.rotary(x, positions))
        h = (x + attended)[:, -keep:] if keep else x + attended
        out = self.norm(h + layer.mlp(layer.post_attention_layernorm(h)))
        return list(out) if keep else [o[n - m :] for o, m in zip(out, lengths)]


# ---- deep prompts in the VLM's text encoder ---------------------------------------------------

def text_layers(vlm: VLM) -> tuple[nn.ModuleList, int, bool]:
    """(layers, width, batch_first) of the VLM's text transformer: an open_clip Hugging Face text
    tower (the lab VLM's MiniLM) or open_clip's own CLIP text transformer."""
    m = vlm.model
    hf = getattr(getattr(m, "text", None), "transformer", None)
    if hf is not None and hasattr(hf, "encoder"):
        return hf.encoder.layer, hf.config.hidden_size, True
    if hasattr(getattr(m, "transformer", None), "resblocks"):
        return m.transformer.resblocks, m.transformer.width, getattr(m.transformer, "batch_first", True)
    raise VLMError(f"LLaMP needs an open_clip text transformer (CLIP or Hugging Face tower); {type(m).__name__} has neither")


@contextmanager
def deep_prompts(vlm: VLM, prompts: torch.Tensor) -> Iterator[None]:
    """While active, the input of text layer l has positions 1..S replaced by ``prompts[:, l]``
    ([N, depth, S, width], one row per text encoded)."""
    layers, _width, batch_first = text_layers(vlm)

    def hook_for(l: int):
        def hook(_module, args, kwargs):
            hidden = args[0] if args else kwargs["hidden_states"]
            h = hidden if batch_first else hidden.transpose(0, 1)
            p = prompts[:, l].to(h.dtype)
            h = torch.cat([h[:, :1], p, h[:, 1 + p.shape[1] :]], dim=1)
            h = h if batch_first else h.transpose(0, 1)
            return ((h, *args[1:]), kwargs) if args else (args, {**kwargs, "hidden_states": h})
        return hook

    handles = [layers[l].register_forward_pre_hook(hook_for(l), with_kwargs=True) for l in range(prompts.shape[1])]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


class LLaMP(nn.Module):
    """The trainable part: the LLM-side prompt tokens, the adapted last layer, the projection to
    the text encoder's layers, and the shared text prompts."""

    def __init__(self, last: LastLayer, llm_width: int, text_width: int, depth: int, cfg: LLaMPConfig, seed: int):
        super().__init__()
        g = torch.Generator().manual_seed(row_seed(seed, "llamp", "init") % 2**63)
        self.last, self.depth, self.k = last, depth, cfg.prompt_tokens
        self.tokens = nn.Parameter(0.02 * torch.randn(cfg.prompt_tokens, llm_width, generator=g))
        self.project = nn.Linear(llm_width, depth * text_width)
        with torch.no_grad():
            self.project.weight.copy_(0.02 * torch.randn(self.project.weight.shape, generator=g))
            self.project.bias.zero_()
        self.shared = nn.Parameter(0.02 * torch.randn(depth, cfg.text_prompts, text_width, generator=g))

    def prompts(self, caches: Sequence[torch.Tensor]) -> torch.Tensor:
        """[C, depth, K + S, width]: per class, its K knowledge prompts then the S shared ones."""
        out = torch.stack(self.last(caches, self.tokens, keep=self.k))  # [C, K, d]
        specific = self.project(out).view(len(caches), self.k, self.depth, -1).transpose(1, 2)
        return torch.cat([specific, self.shared[None].expand(len(caches), -1, -1, -1)], dim=2)


def encode_prompted(vlm: VLM, texts: Sequence[str], prompts: torch.Tensor) -> torch.Tensor:
    """Normalised embeddings of ``texts`` ([N, S] slots reserved after the start token), row i with
    deep prompts ``prompts[i]``. Bypasses the VLM's text cache (the prompts change the result); the
    VLM stays frozen, so gradients reach the prompts alone."""
    for p in vlm.model.parameters():
        p.requires_grad_(False)
    slots = prompts.shape[2]
    tokens = cut_trailing_padding(vlm.tokenizer([" ".join([SLOT] * slots + [t]) for t in texts]), vlm._pad_id).to(vlm.device)
    with deep_prompts(vlm, prompts.to(vlm.device)):
        return F.normalize(vlm.model.encode_text(tokens).float(), dim=-1).cpu()


def class_weights(vlm: VLM, model: LLaMP, caches: Sequence[torch.Tensor], texts: Sequence[Sequence[str]]) -> torch.Tensor:
    """[C, D] class weights: per class, the mean of its texts' prompted embeddings, re-normalised."""
    prompts = model.prompts(caches)
    owner = [c for c, ts in enumerate(texts) for _ in ts]
    emb = encode_prompted(vlm, [t for ts in texts for t in ts], prompts[owner])
    return F.normalize(torch.stack([emb[[i for i, o in enumerate(owner) if o == c]].mean(0) for c in range(len(texts))]), dim=-1)


def trainable(model: LLaMP) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def train(vlm: VLM, model: LLaMP, caches: Sequence[torch.Tensor], texts: Sequence[Sequence[str]], features: torch.Tensor,
          labels: torch.Tensor, cfg: LLaMPConfig, seed: int, progress: bool = True) -> list[float]:
    """AdamW on the cross-entropy of the few-shot images, one text per class drawn per iteration;
    returns the loss of every iteration. The VLM and the LLM's frozen weights never change."""
    from tqdm import tqdm

    opt = torch.optim.AdamW(trainable(model), lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = random.Random(row_seed(seed, "llamp", "texts"))
    features = F.normalize(features.float(), dim=-1)
    losses = []
    for _ in tqdm(range(cfg.iterations), desc="train LLaMP", unit="it", disable=not progress or None):
        drawn = [[rng.choice(list(ts))] for ts in texts]
        logits = vlm.logit_scale * features @ class_weights(vlm, model, caches, drawn).T
        loss = F.cross_entropy(logits, labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses
