"""Rules describe_classes and baseline: the methods GLOV is compared with, scored on the same
splits and in the result format every method shares."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import torch

from glov import config as C
from glov.baselines import DESCRIPTION_STYLE, LLM_METHODS, ds_temp_templates, method_params
from glov.embeddings import ImageEmbeddings
from glov.io import read_json, write_json
from glov.provenance import file_digest
from glov.protocol import departures
from glov.jobs.common import LazyLLM, answering, base_prompt, dataset_params, llm_digest, llm_sampling, load_llm, track, vlm_digest
from glov.jobs.embed import Scorer, image_paths, split_images_digest
from glov.optimizer import Task
from glov.jobs.evaluate import test_set_digest
from glov.scoring import accuracy, class_means, correct_string, descriptor_logits
from glov.vlm import VLM, embed_image_view_files

log = logging.getLogger(__name__)


def describe(params: C.Params, manifest_path: str | Path, seed: int, outputs: Mapping[str, str | Path]) -> None:
    """LLM descriptions of every class in each style of ``outputs`` (rule describe_classes), shared
    by the methods that use them; all styles' answers are sampled in one batch, the LLM loaded once."""
    from glov.descriptions import describe_classes

    manifest = read_json(manifest_path)
    styles = sorted(outputs)
    with track(params, f"describe_classes/{manifest['dataset']}/s{seed}", {"dataset": manifest["dataset"], "styles": styles, "seed": seed}) as tracker:
        llm = load_llm(params)
        records = describe_classes(llm, manifest["classnames"], manifest["dataset"], manifest["description"], styles,
                                   params.baselines.descriptions_per_class, llm_sampling(params, params.baselines.max_new_tokens), seed)
        for style, record in records.items():
            write_json(outputs[style], record)
            classes = record["classes"].values()
            tracker.log_metrics({f"n_texts/{style}": sum(len(c["texts"]) for c in classes), f"n_unusable/{style}": sum(c["n_unusable"] for c in classes),
                                 f"n_classes_without_text/{style}": sum(not c["texts"] for c in classes)})
            tracker.log_artifact(outputs[style])

@dataclass(frozen=True)
class BaselineInputs:
    params: C.Params
    scorer: Scorer
    embeddings: dict[str, str | Path | None]
    descriptions: dict | None
    seed: int
    llm: Callable[[], object]  # loads the LLM once per job, on first use
    trained: str | Path | None = None  # a trained method's file (LLaMP: rule train_llamp)


    @property
    def vlm(self) -> VLM:
        return self.scorer.vlm

    @property
    def manifest(self) -> dict:
        return self.scorer.manifest

    def fitness(self, split: str):
        return self.scorer.fitness(split, self.embeddings.get(split))

    def split(self, name: str) -> ImageEmbeddings:
        """A dual encoder's cached image embeddings (the description methods score them directly)."""
        return self.fitness(name).emb

    def class_texts(self, with_base: bool) -> tuple[list[list[str]], int]:
        """Per class: (S-TEMP and) the LLM's texts; a class the LLM gave nothing usable for gets
        S-TEMP alone. Returns the texts and how many classes fell back."""
        base = self.params.optimizer.base_template
        per_class, fallbacks = [], 0
        for name in self.manifest["classnames"]:
            texts = list(self.descriptions["classes"][name]["texts"])
            fallbacks += not texts
            per_class.append(([base.format(name)] if with_base or not texts else []) + texts)
        return per_class, fallbacks

def _val_and_test(inputs: BaselineInputs, accuracy_on: Callable[[str], float], test_correct: str, **details) -> dict:
    """What every baseline reports: its accuracy on val and on test, which test images it gets
    right (the intervals of glov.stats), then its own details."""
    return {"val_acc": accuracy_on("val"), "test_acc": accuracy_on("test"), "test_correct": test_correct,
            "test_set": test_set_digest(inputs.manifest), **details}

def _logits_result(inputs: BaselineInputs, logits_on: Callable[[str], torch.Tensor], **details) -> dict:
    """A method that scores cached image embeddings itself: [N, C] logits per split."""
    test = logits_on("test")
    return _val_and_test(inputs, lambda s: accuracy(test if s == "test" else logits_on(s), inputs.split(s).labels),
                         correct_string(test, inputs.split("test").labels), **details)

def _templates_result(inputs: BaselineInputs, templates: list[str], **details) -> dict:
    return _val_and_test(inputs, lambda split: inputs.fitness(split)(templates), inputs.fitness("test").correct(templates),
                         templates=templates, **details)

def _s_temp(inputs: BaselineInputs) -> dict:
    return _templates_result(inputs, [base_prompt(inputs.params)])

def _ds_temp(inputs: BaselineInputs) -> dict:
    return _templates_result(inputs, ds_temp_templates())

def _llm_opt(inputs: BaselineInputs) -> dict:
    from glov.llm_opt import llm_opt

    p = inputs.params
    llm = inputs.llm()
    task = Task(inputs.manifest["dataset"], inputs.manifest["description"])
    record = llm_opt(llm, inputs.fitness("train"), task, p.optimizer.base_template, p.baselines.llm_opt, llm_sampling(p), inputs.seed)
    return _templates_result(inputs, [record["best"]], search=record)

def _proapo(inputs: BaselineInputs) -> dict:
    """ProAPO (glov.proapo): templates from one LLM query, descriptions from rule describe_classes."""
    from glov.proapo import Prompt, proapo, template_pool

    p, m, vlm = inputs.params, inputs.manifest, inputs.vlm
    cfg = p.baselines.proapo
    candidates, raw = template_pool(inputs.llm(), m["dataset"], m["description"], p.optimizer.base_template, cfg.pool_size,
                                    llm_sampling(p), inputs.seed)
    pools = [inputs.descriptions["classes"][name]["texts"] for name in m["classnames"]]

    def logits(prompt: Prompt, split: str) -> torch.Tensor:
        weights = class_means([vlm.encode_texts(texts) for texts in prompt.class_texts(m["classnames"])])
        return vlm.logit_scale * inputs.split(split).features @ weights.T

    best, record = proapo(candidates, pools, lambda prompt: logits(prompt, "train"), inputs.split("train").labels, cfg, inputs.seed)
    return _logits_result(inputs, lambda s: logits(best, s), templates=list(best.templates),
                         descriptions={name: list(d) for name, d in zip(m["classnames"], best.descriptions)},
                         search=record | {"template_candidates": candidates, "raw": raw})

def _llamp(inputs: BaselineInputs) -> dict:
    """LLaMP (glov.llamp): the class weights rule train_llamp learnt, scored on val and test."""
    from glov.jobs.llamp import load_checked

    saved = load_checked(inputs.trained, inputs.manifest["classnames"], "LLaMP training result")
    weights = saved["class_weights"].to(inputs.split("val").features.dtype)
    return _logits_result(inputs, lambda s: inputs.split(s).features @ weights.T, shots=saved["shots"],
                         final_loss=saved["losses"][-1], first_loss=saved["losses"][0], n_trainable=saved["n_trainable"])

def _random_search(inputs: BaselineInputs) -> dict:
    """The control for GLOV's ranked feedback (glov.optimizer.random_search), its prompts chosen
    exactly as GLOV's are (glov.jobs.evaluate.score_chain: top-k of the history, step by val)."""
    from glov.jobs.evaluate import score_chain
    from glov.jobs.optimize import start, step_config, task_of
    from glov.optimizer import random_search
    from glov.paths import SPLITS

    p, m, llm = inputs.params, inputs.manifest, inputs.llm()
    fit = {s: inputs.fitness(s) for s in SPLITS}
    state, records = random_search(start(p, fit["train"])[0], p.optimizer.steps, llm, fit["train"], task_of(p, m["dataset"], m["description"]),
                                   step_config(p, 0.0, inputs.seed, llm.n_layers))
    result = {k: v for k, v in score_chain(p, m, state, fit).items() if k != "dataset"}
    return result | {"candidates": [r["candidates"] for r in records]}

def _released(method: str) -> Callable[[BaselineInputs], dict]:
    """Score the prompts the GLOV authors released for this dataset (glov.released): the top-3
    template ensemble, or for an answering VLM the one prompt."""

    def run(inputs: BaselineInputs) -> dict:
        from glov.released import RELEASED_PATH, released_prompts

        return _templates_result(inputs, released_prompts(RELEASED_PATH, inputs.manifest["dataset"], method, answering(inputs.params)))

    return run

def _embedded_texts(inputs: BaselineInputs, with_base: bool) -> tuple[list[torch.Tensor], int]:
    per_class, fallbacks = inputs.class_texts(with_base)
    return [inputs.vlm.encode_texts(texts) for texts in per_class], fallbacks

def _cupl(inputs: BaselineInputs) -> dict:
    weights, fallbacks = _embedded_texts(inputs, with_base=False)
    classifier = class_means(weights)
    return _logits_result(inputs, lambda s: inputs.split(s).features @ classifier.T, classes_without_text=fallbacks)

def _dclip(inputs: BaselineInputs) -> dict:
    texts, fallbacks = _embedded_texts(inputs, with_base=False)
    return _logits_result(inputs, lambda s: descriptor_logits(inputs.split(s).features, texts), classes_without_text=fallbacks)

def _awt(inputs: BaselineInputs) -> dict:
    from glov.awt import awt_logits, pad_texts

    cfg, p = inputs.params.baselines.awt, inputs.params
    texts, fallbacks = _embedded_texts(inputs, with_base=True)
    text_views, mask = pad_texts(texts)
    root = Path(inputs.manifest["image_root"])

    def logits_on(split: str) -> torch.Tensor:
        views = embed_image_view_files(inputs.vlm, [root / q for q in image_paths(inputs.manifest, split)], cfg.views, cfg.crop_scale,
                                       inputs.seed, p.vlm.batch_size, desc=f"AWT views {inputs.manifest['dataset']}/{split}")
        return awt_logits(views, text_views, mask, inputs.vlm.logit_scale, cfg)

    return _logits_result(inputs, logits_on, classes_without_text=fallbacks, views=cfg.views, logit_scale=inputs.vlm.logit_scale)

BASELINES = {"s_temp": _s_temp, "ds_temp": _ds_temp, "llm_opt": _llm_opt, "proapo": _proapo, "llamp": _llamp, "random_search": _random_search, "cupl": _cupl, "dclip": _dclip, "awt": _awt,
             **{m: _released(m) for m in ("glov_released", "glov_wo_guidance_released")}}


def run_baselines(
    params: C.Params, seed: int, manifest_path: str | Path, embeddings: Mapping[str, str | Path | None],
    descriptions: Mapping[str, str | Path], outputs: Mapping[str, str | Path], trained: Mapping[str, str | Path] | None = None,
) -> None:
    """Rule baselines: every method of ``outputs`` ({method: path}) on one dataset and seed, the
    VLM and its text-embedding cache shared, each in the result format every method shares
    (``val_acc``, ``test_acc`` and the method's details). ``descriptions`` ({style: path}) holds
    the LLM descriptions the description methods score, ``trained`` ({method: path}) what a
    trained method learnt. A result whose inputs and params are
    unchanged is taken from the :class:`glov.store.ResultStore`, so changing one method's params,
    or adding a method, computes that method alone."""
    from glov.released import RELEASED_METHODS, RELEASED_PATH
    from glov.store import ResultStore

    manifest = read_json(manifest_path)
    methods = list(outputs)
    store = ResultStore()
    trained = dict(trained or {})
    with track(params, f"baselines/{manifest['dataset']}/s{seed}", {"dataset": manifest["dataset"], "methods": methods, "seed": seed}) as tracker:
        scorer = Scorer(params, manifest)
        llm = LazyLLM(lambda: load_llm(params), lambda: llm_digest(params))
        texts = {style: read_json(path) for style, path in descriptions.items()}
        # once per job, not per method: what every method reads (the text tower's weights included)
        shared = [file_digest(path) for path in (manifest_path, *filter(None, embeddings.values()))] + [vlm_digest(params)]
        if answering(params):  # no embedding cache: the images themselves (the scorer answers on them)
            shared += [split_images_digest(manifest, split) for split in ("train", "val", "test")]
        described = {style: file_digest(path) for style, path in descriptions.items()}

        def key_of(method: str) -> str:
            style = DESCRIPTION_STYLE.get(method)
            return baseline_key(params, manifest["dataset"], method, seed, shared + ([described[style]] if style else [])
                                + ([file_digest(RELEASED_PATH)] if method in RELEASED_METHODS else [])
                                + ([file_digest(trained[method])] if method in trained else [])
                                + ([llm.digest()] if method in LLM_METHODS else []))

        for method in methods:
            result = store.restore(outputs[method], key_of(method))
            if result is None:
                started = time.perf_counter()
                inputs = BaselineInputs(params, scorer, dict(embeddings), texts.get(DESCRIPTION_STYLE.get(method)), seed, llm, trained.get(method))
                result = {"method": method, "dataset": manifest["dataset"], "seed": seed, **BASELINES[method](inputs)}
                write_json(outputs[method], result)
                store.save(outputs[method], key_of(method))  # an LLM method's: the digest of the LLM it loaded
                seconds = time.perf_counter() - started  # the log and MLflow only: results stay byte-identical
                log.info("%s took %.1f s", method, seconds)
                tracker.log_metrics({f"seconds/{method}": seconds})
            tracker.log_metrics({f"val_acc/{method}": result["val_acc"], f"test_acc/{method}": result["test_acc"]})
            tracker.log_artifact(outputs[method])


def baseline_key(params: C.Params, dataset: str, method: str, seed: int, digests: Sequence[str]) -> str:
    """Everything one baseline's result depends on: the code, its method's params, the VLM, how
    the data were read, and the content (``digests``) of every file it reads (manifest, embeddings,
    descriptions)."""
    from glov.store import code_fingerprint
    from glov.tracking import params_hash

    p = asdict(params)
    base_key = "base_prompt" if answering(params) else "base_template"
    switches = departures(p["protocol"], "baselines")
    return params_hash({"code": code_fingerprint(), "method": method, "seed": seed, "params": method_params(p, method, base_key),
                        "vlm": p["vlm"], "data": dataset_params(p, dataset), "inputs": list(digests)}
                       | ({"protocol": switches} if switches else {}))
