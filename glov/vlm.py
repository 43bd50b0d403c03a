"""CLIP-style dual encoders through open_clip, addressed by a short name or an explicit arch/tag.

``glov.registry.VLMS`` maps a short name (used in result paths) to an open_clip architecture and a
pretrained tag. Local models use open_clip's own ``local-dir:`` schema (``open_clip_config.json`` +
``open_clip_model.safetensors``), so a model built by the workflow and a model a user downloads
go through the same loading code. All embeddings returned here are L2-normalised.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from glov.data import DataError
from glov.registry import LOCAL_DIR, VLMError, VLMSpec  # which VLM a name stands for: glov.registry
from glov.scoring import ensemble

log = logging.getLogger(__name__)

def droppable_pad_id(model: torch.nn.Module) -> int | None:
    """The pad token whose trailing columns can be cut from a token batch without changing any
    text embedding, or None where cutting is not exact.

    open_clip pads every text to the context length (77). A Hugging Face text tower with a mean or
    CLS pooler masks padding out, so cutting the columns that are padding in every row saves the
    work (several times faster for short templates) and changes nothing. OpenAI CLIP's own text
    tower adds a fixed-length positional embedding, so there nothing is cut.
    """
    text = getattr(model, "text", None)
    if type(text).__name__ != "HFTextEncoder" or type(getattr(text, "pooler", None)).__name__ not in {"MeanPooler", "ClsPooler"}:
        return None
    return getattr(text.config, "pad_token_id", None)


def cut_trailing_padding(tokens: torch.Tensor, pad_id: int | None) -> torch.Tensor:
    if pad_id is None:
        return tokens
    used = (tokens != pad_id).any(dim=0).nonzero()
    return tokens[:, : int(used.max()) + 1] if len(used) else tokens


class VLM:
    """A loaded dual encoder with a per-text embedding cache (a seen template costs nothing).
    Embeddings are normalised in the towers' own precision (float16 where the model was converted,
    as the released code normalises CLIP's features) and returned in float32."""

    def __init__(self, model: torch.nn.Module, preprocess: Callable, tokenizer: Callable, device: str = "cpu"):
        self.model = model.eval()
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.device = device
        self.dtype = _input_dtype(self.model)
        self._text_cache: dict[str, torch.Tensor] = {}
        self._pad_id = droppable_pad_id(self.model)

    @property
    def logit_scale(self) -> float:
        """The temperature CLIP was trained with (100 for OpenAI's models); softmax-based
        methods (AWT's entropy weights) need it to turn similarities into the model's confidences."""
        scale = getattr(self.model, "logit_scale", None)
        return float(scale.detach().exp()) if scale is not None else 100.0

    @torch.inference_mode()
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.model.encode_image(pixels.to(self.device, self.dtype)), dim=-1).float().cpu()

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
        todo = list(dict.fromkeys(t for t in texts if t not in self._text_cache))
        for i in range(0, len(todo), batch_size):
            chunk = todo[i : i + batch_size]
            tokens = cut_trailing_padding(self.tokenizer(chunk), self._pad_id)
            emb = F.normalize(self.model.encode_text(tokens.to(self.device)), dim=-1).float()
            for text, e in zip(chunk, emb.cpu()):
                self._text_cache[text] = e
        return torch.stack([self._text_cache[t] for t in texts])


def check_local_model(folder: Path, built: str = "") -> None:
    """A local open_clip folder must hold a model; one the workflow builds (``built``: the lab VLM)
    also its training record, written last: without it the build was stopped half-way."""
    from glov.lab_vlm import TRAINING_RECORD, trained

    rebuild = "it is built by the workflow (rule train_lab_vlm): delete the folder and run `snakemake --cores all`"
    if not (folder / "open_clip_config.json").exists():
        raise VLMError(f"no open_clip model at {folder}: " + (rebuild if built else "put open_clip_config.json and open_clip_model.safetensors there"))
    if built and not trained(folder):
        raise VLMError(f"the model at {folder} was never finished (it has no {TRAINING_RECORD}: a run was stopped while building it); {rebuild}")


def _text_tower_here(folder: Path) -> dict:
    """A Hugging Face text tower whose recorded folder no longer holds it (the project was moved or
    cloned, or the record is older) is the folder itself, which keeps a copy of its config and
    tokenizer: an override for open_clip (the weights come from the folder's checkpoint)."""
    import json

    try:
        text = json.loads((folder / "open_clip_config.json").read_text())["model_cfg"]["text_cfg"]
    except (OSError, ValueError, KeyError) as exc:
        raise VLMError(f"{folder}/open_clip_config.json is unreadable ({exc}): delete the folder and build it again") from None
    recorded = text.get("hf_model_name")
    if not recorded or (Path(recorded) / "config.json").exists() or not (folder / "config.json").exists():
        return {}
    here = str(folder.resolve())
    return {"text_cfg": {**text, "hf_model_name": here, "hf_tokenizer_name": here, "hf_model_pretrained": False}}


def _input_dtype(model: torch.nn.Module) -> torch.dtype:
    """What the image tower takes: the dtype of its first convolution or linear layer (float16 once
    converted; embeddings and layer norms may stay float32)."""
    layers = (m for m in getattr(model, "visual", torch.nn.Module()).modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)))
    return next((m.weight.dtype for m in layers), torch.float32)


def load_vlm(spec: VLMSpec, device: str = "cpu", dtype: str = "float32") -> VLM:
    """A dual encoder; ``dtype="float16"`` converts it as the released code runs CLIP (OFFICIAL.md row
    23): open_clip's float16 conversion, which keeps layer norms in float32 like OpenAI's, and a
    Hugging Face text tower (which cannot mix precisions) converted whole."""
    import open_clip

    overrides = {}
    if spec.arch.startswith(LOCAL_DIR):
        folder = Path(spec.arch[len(LOCAL_DIR) :])
        check_local_model(folder, spec.builder)
        overrides = _text_tower_here(folder)
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            spec.arch, pretrained=spec.pretrained, device=device, pretrained_text=False, precision="fp16" if dtype == "float16" else "fp32",
            **overrides,
        )
        if dtype == "float16" and type(getattr(model, "text", None)).__name__ == "HFTextEncoder":
            model.text.half()
        tokenizer = open_clip.get_tokenizer(spec.arch)
    except (RuntimeError, FileNotFoundError, ValueError) as exc:
        raise VLMError(
            f"cannot load open_clip model {spec.arch!r} (pretrained={spec.pretrained!r}): {exc}. "
            "Tags need the internet once (then they are cached); offline, point vlm.pretrained at a local checkpoint."
        ) from None
    return VLM(model, preprocess, tokenizer, device)


def fill_template(template: str, classname: str) -> str:
    """Every ``{}`` filled with the class name (the official parser keeps templates with several)."""
    return template.replace("{}", classname)


def text_classifier(vlm: VLM, classnames: Sequence[str], templates: Sequence[str],
                    fill: Callable[[str, str], str] = fill_template) -> torch.Tensor:
    """[C, D] class weights: per class, mean of normalised template embeddings, re-normalised."""
    texts = [fill(t, c) for c in classnames for t in templates]
    emb = vlm.encode_texts(texts).view(len(classnames), len(templates), -1)
    return ensemble(list(emb.unbind(dim=1)))


def open_image(path: Path) -> Image.Image:
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except FileNotFoundError:
        raise DataError(f"image {path} is missing; restore it, or run snakemake again: prep_dataset lists a folder again when its files change") from None
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise DataError(f"image {path} is corrupt or not an image ({exc}); replace or delete it, then run snakemake again (prep_dataset lists the folder again)") from None


def _embed_in_batches(
    vlm: VLM, paths: Sequence[Path], batch_size: int, desc: str, views_of: Callable[[Image.Image], list[Image.Image]] = lambda image: [image]
) -> torch.Tensor:
    """Normalised embeddings [N * V, D] of the V views of each image, image by image in the order of
    ``paths``; ``batch_size`` images are opened and encoded at a time."""
    chunks = []
    for i in tqdm(range(0, len(paths), batch_size), desc=desc, unit="batch", disable=None):
        pixels = torch.stack([vlm.preprocess(view) for p in paths[i : i + batch_size] for view in views_of(open_image(p))])
        chunks.append(vlm.encode_images(pixels))
    return torch.cat(chunks) if chunks else torch.empty(0)


def embed_image_files(vlm: VLM, paths: Sequence[Path], batch_size: int = 64, desc: str = "embed") -> torch.Tensor:
    """Normalised image embeddings [N, D], in the order of ``paths``."""
    return _embed_in_batches(vlm, paths, batch_size, desc)


def image_views(image: Image.Image, n_views: int, crop_scale: float) -> list[Image.Image]:
    """The image itself, then ``n_views - 1`` random crops (area >= ``crop_scale``, aspect kept
    within 3:4..4:3) flipped at random: AWT's augmented views. Draws from torch's global RNG."""
    from torchvision.transforms import Compose, RandomHorizontalFlip, RandomResizedCrop

    augment = Compose([RandomResizedCrop((image.height, image.width), scale=(crop_scale, 1.0)), RandomHorizontalFlip()])
    return [image] + [augment(image) for _ in range(n_views - 1)]


def embed_image_view_files(
    vlm: VLM, paths: Sequence[Path], n_views: int, crop_scale: float, seed: int, batch_size: int = 64, desc: str = "embed views"
) -> torch.Tensor:
    """Normalised embeddings [N, V, D] of each image's views; the same seed gives the same crops."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        feats = _embed_in_batches(vlm, paths, batch_size, desc, lambda image: image_views(image, n_views, crop_scale))
    return feats.view(len(paths), n_views, feats.shape[-1]) if len(paths) else feats
