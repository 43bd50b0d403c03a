"""Rule embed_images, and reading its cache back: image embeddings of a dataset's splits, and
the fitness (top-1 accuracy of a prompt) every scoring job computes from them."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping, Sequence

import torch

from glov import config as C
from glov.protocol import LLAVA_NEW_TOKENS, is_official
from glov.embeddings import CacheError, ImageEmbeddings, load_embeddings, save_embeddings
from glov.io import read_json
from glov.jobs.common import track, vlm_spec
from glov.vlm import VLM, embed_image_files, load_vlm, open_image, text_classifier
from glov.registry import ANSWER
from glov.scoring import accuracy, correct_string

log = logging.getLogger(__name__)


def image_paths(manifest: dict, split: str) -> list[str]:
    return [p for p, _ in manifest["splits"][split]]

def embed_split(params: C.Params, vlm: VLM, manifest: dict, split: str) -> ImageEmbeddings:
    paths = image_paths(manifest, split)
    root = Path(manifest["image_root"])
    feats = embed_image_files(vlm, [root / p for p in paths], params.vlm.batch_size, desc=f"embed {manifest['dataset']}/{split}")
    labels = torch.tensor([y for _, y in manifest["splits"][split]], dtype=torch.long)
    return ImageEmbeddings(feats, labels, paths)

def embed_images(params: C.Params, manifest_path: str | Path, outputs: Mapping[str, str | Path]) -> None:
    """Every split of ``outputs`` ({split: path}) of one dataset, the VLM loaded once for all of them."""
    manifest = read_json(manifest_path)
    splits = list(outputs)
    with track(params, f"embed_images/{manifest['dataset']}", {"dataset": manifest["dataset"], "splits": splits}) as tracker:
        vlm = load_vlm(vlm_spec(params), params.vlm.device)
        for split in splits:
            emb = embed_split(params, vlm, manifest, split)
            save_embeddings(outputs[split], emb)
            tracker.log_metrics({f"n_images/{split}": len(emb.paths)})


def load_split(params: C.Params, vlm: VLM, manifest: dict, split: str, path: str | Path) -> ImageEmbeddings:
    """The cached split, verified. A corrupt, truncated or stale cache is rebuilt here from the
    same images with the same VLM (so the result is what the cache should have held), never used."""
    try:
        return load_embeddings(path, image_paths(manifest, split))
    except CacheError as exc:
        log.warning("%s: rebuilding it from the images", exc)
        emb = embed_split(params, vlm, manifest, split)
        save_embeddings(path, emb)
        return emb

class TemplateFitness:
    """Top-1 accuracy (%) of one template on a cached split; text embeddings cached in the VLM."""

    def __init__(self, vlm: VLM, classnames: Sequence[str], emb: ImageEmbeddings):
        self.vlm, self.classnames, self.emb = vlm, list(classnames), emb

    def __call__(self, template: str | Sequence[str]) -> float:
        return accuracy(self._logits(template), self.emb.labels)

    def correct(self, template: str | Sequence[str]) -> str:
        """Which images the template (ensemble) gets right, one '0'/'1' per image."""
        return correct_string(self._logits(template), self.emb.labels)

    def _logits(self, template: str | Sequence[str]):
        templates = [template] if isinstance(template, str) else list(template)
        if not any("{}" in t for t in templates):
            # every class gets the same text: exact arithmetic ties every class (the official code's NaN
            # embeddings send every image to class 0); rounding would break the tie at random, so: class 0
            return torch.zeros(len(self.emb.labels), len(self.classnames))
        return self.emb.features @ text_classifier(self.vlm, self.classnames, templates).T

class Scorer:
    """Scores prompts on a dataset's splits with the run's VLM: a dual encoder on cached image
    embeddings (templates, ensembles), or an answering VLM on the images (one prompt)."""

    def __init__(self, params: C.Params, manifest: dict):
        self.params, self.manifest = params, manifest
        self._fits: dict[str, object] = {}
        spec = vlm_spec(params)
        if spec.family == ANSWER:
            from glov.answer_vlm import AnswerVLM, SentenceEncoder

            official = is_official(params.protocol, "llava_prompt")  # greedy 50 tokens, "?" appended
            self.vlm = AnswerVLM.load(spec.arch, params.vlm.device, params.vlm.dtype, LLAVA_NEW_TOKENS if official else params.vlm.max_new_tokens,
                                      "?" if official else "")
            self.encoder = SentenceEncoder(params.vlm.sentence_encoder, params.vlm.device)
        else:
            self.vlm, self.encoder = load_vlm(spec, params.vlm.device), None

    def fitness(self, split: str, embeddings: str | Path | None = None):
        """One fitness per split and job (its caches of text embeddings or answers are kept)."""
        if split not in self._fits:
            self._fits[split] = self._new_fitness(split, embeddings)
        return self._fits[split]

    def _new_fitness(self, split: str, embeddings: str | Path | None):
        if self.encoder is None:
            return TemplateFitness(self.vlm, self.manifest["classnames"], load_split(self.params, self.vlm, self.manifest, split, embeddings))
        from glov.answer_vlm import AnswerFitness

        root = Path(self.manifest["image_root"])
        images = [open_image(root / p) for p in image_paths(self.manifest, split)]
        labels = torch.tensor([y for _, y in self.manifest["splits"][split]], dtype=torch.long)
        return AnswerFitness(self.vlm, self.encoder, self.manifest["classnames"], images, labels, self.params.vlm.batch_size)
