"""Rule embed_images, and reading its cache back: image embeddings of a dataset's splits, and
the fitness (top-1 accuracy of a prompt) every scoring job computes from them."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping, Sequence

import torch

from glov import config as C
from glov.optimizer.prompts import BRACES
from glov.protocol import LLAVA_NEW_TOKENS, is_official
from glov.embeddings import CacheError, ImageEmbeddings, load_embeddings, save_embeddings
from glov.io import read_json
from glov.jobs.common import track, vlm_dtype, vlm_spec
from glov.vlm import VLM, embed_image_files, fill_template, load_vlm, open_image, text_classifier
from glov.registry import ANSWER
from glov.scoring import accuracy, correct_string

log = logging.getLogger(__name__)


def image_paths(manifest: dict, split: str) -> list[str]:
    return [p for p, _ in manifest["splits"][split]]

def split_images_digest(manifest: dict, split: str) -> str:
    """The content of a split's images (an answering VLM's inputs, which no embedding cache covers)."""
    from glov.provenance import files_digest

    root = Path(manifest["image_root"])
    return files_digest([root / p for p in image_paths(manifest, split)], root)

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
        vlm = load_vlm(vlm_spec(params), params.vlm.device, vlm_dtype(params))
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

def official_usable(template: str) -> bool:
    """Whether the released scorer uses a template at all (OFFICIAL.md row 7): it needs ``{}`` (or
    ``{ }``), and a template with exactly one ``{}`` goes through ``str.format``, so stray braces
    that format rejects drop it. Whether it fails does not depend on the class name, so a template
    is dropped for every class or none."""
    if not BRACES.search(template):
        return False
    if template.count("{}") == 1:
        try:
            template.format("x")
        except (ValueError, KeyError, IndexError):
            return False
    return True


def official_fill(template: str, classname: str) -> str:
    """The released scorer's text of a class: ``str.format`` for one ``{}``, else every ``{}`` replaced."""
    return template.format(classname) if template.count("{}") == 1 else template.replace("{}", classname)


class TemplateFitness:
    """Top-1 accuracy (%) of one template on a cached split; text embeddings cached in the VLM.
    ``official``: templates are filled and dropped as the released scorer does (protocol.invalid_candidates)."""

    def __init__(self, vlm: VLM, classnames: Sequence[str], emb: ImageEmbeddings, official: bool = False):
        self.vlm, self.classnames, self.emb, self.official = vlm, list(classnames), emb, official

    def __call__(self, template: str | Sequence[str]) -> float:
        return accuracy(self._logits(template), self.emb.labels)

    def correct(self, template: str | Sequence[str]) -> str:
        """Which images the template (ensemble) gets right, one '0'/'1' per image."""
        return correct_string(self._logits(template), self.emb.labels)

    def _logits(self, template: str | Sequence[str]):
        templates = [template] if isinstance(template, str) else list(template)
        if self.official:
            templates = [t for t in templates if official_usable(t)]
        if not any("{}" in t for t in templates):
            # every class gets the same text, or (official) none: exact arithmetic ties every class (the
            # official code's NaN embeddings send every image to class 0); rounding would break the tie
            # at random, so: class 0
            return torch.zeros(len(self.emb.labels), len(self.classnames))
        fill = official_fill if self.official else fill_template
        return self.emb.features @ text_classifier(self.vlm, self.classnames, templates, fill).T

class Scorer:
    """Scores prompts on a dataset's splits with the run's VLM: a dual encoder on cached image
    embeddings (templates, ensembles), or an answering VLM on the images (one prompt)."""

    def __init__(self, params: C.Params, manifest: dict):
        self.params, self.manifest = params, manifest
        self._fits: dict[str, object] = {}
        spec = vlm_spec(params)
        if spec.family == ANSWER:
            from glov.answer_vlm import AnswerVLM, SentenceEncoder

            official = is_official(params.protocol, "llava_prompt")  # greedy 50 tokens, quotes dropped, "?" appended
            self.vlm = AnswerVLM.load(spec.arch, params.vlm.device, vlm_dtype(params), LLAVA_NEW_TOKENS if official else params.vlm.max_new_tokens,
                                      "?" if official else "", official)
            self.encoder = SentenceEncoder(params.vlm.sentence_encoder, params.vlm.device)
        else:
            self.vlm, self.encoder = load_vlm(spec, params.vlm.device, vlm_dtype(params)), None

    def fitness(self, split: str, embeddings: str | Path | None = None):
        """One fitness per split and job (its caches of text embeddings or answers are kept)."""
        if split not in self._fits:
            self._fits[split] = self._new_fitness(split, embeddings)
        return self._fits[split]

    def _new_fitness(self, split: str, embeddings: str | Path | None):
        if self.encoder is None:
            return TemplateFitness(self.vlm, self.manifest["classnames"], load_split(self.params, self.vlm, self.manifest, split, embeddings),
                                   is_official(self.params.protocol, "invalid_candidates"))
        from glov.answer_vlm import AnswerFitness

        root = Path(self.manifest["image_root"])
        images = [open_image(root / p) for p in image_paths(self.manifest, split)]
        labels = torch.tensor([y for _, y in self.manifest["splits"][split]], dtype=torch.long)
        return AnswerFitness(self.vlm, self.encoder, self.manifest["classnames"], images, labels, self.params.vlm.batch_size)
