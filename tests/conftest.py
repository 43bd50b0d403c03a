"""Tiny models built here, saved to disk and loaded through the real loading code (no downloads)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=3,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64)
    return LlamaForCausalLM(cfg).eval()


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
