"""One validated configuration: ``params.yaml`` -> frozen dataclasses.

The JSON Schema in ``glov/schemas/params.schema.yaml`` is the single source of truth for keys,
types and defaults; Snakemake (``common.smk``), DVC and ``python -m glov`` all go through
:func:`load_params`, so a bad value is rejected once, before any job starts, with the key named.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import jsonschema
import yaml


class ConfigError(ValueError):
    """A parameter is missing, of the wrong type, or impossible. The message names the key."""


def schema() -> dict:
    text = resources.files("glov").joinpath("schemas/params.schema.yaml").read_text()
    return yaml.safe_load(text)


@dataclass(frozen=True)
class DataConfig:
    root: str
    datasets: tuple[str, ...]
    shots: int
    val_per_class: int
    test_per_class: int
    seed: int
    custom: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    splits: Mapping[str, Mapping[str, int | None]] = field(default_factory=dict)  # per dataset: its own split sizes


@dataclass(frozen=True)
class SplitSizes:
    shots: int
    val_per_class: int
    test_per_class: int | None


def split_sizes(data: DataConfig, dataset: str) -> SplitSizes:
    """A dataset's split sizes: ``data.splits[dataset]`` where it sets them, else the run's. The lab
    gives tasks with few classes more shots per class, so that a fitness set has statistical power."""
    own = data.splits.get(dataset, {})
    return SplitSizes(own.get("shots", data.shots), own.get("val_per_class", data.val_per_class),
                      own.get("test_per_class", data.test_per_class))


@dataclass(frozen=True)
class VLMTrainConfig:
    """How the offline lab VLM is trained (``vlm.train``); the schema holds the defaults."""

    sources: tuple[str, ...] = ("animal_mnist", "fashion_mnist", "clipart")
    max_images_per_source: int = 8000
    epochs: int = 6
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 0.05
    seed: int = 0
    threads: int = 2  # torch threads training always uses: the weights do not depend on the machine's cores


@dataclass(frozen=True)
class VLMConfig:
    name: str
    arch: str | None
    pretrained: str | None
    device: str
    batch_size: int
    train: VLMTrainConfig = field(default_factory=VLMTrainConfig)
    path: str | None = None
    sentence_encoder: str | None = None
    max_new_tokens: int = 16
    dtype: str = "float32"


@dataclass(frozen=True)
class LLMConfig:
    name: str
    path: str | None
    gguf_file: str | None
    device: str
    dtype: str
    max_batch_rows: int = 64


@dataclass(frozen=True)
class OptimizerConfig:
    steps: int
    candidates: int
    topk: int
    base_template: str
    temperature: float
    top_p: float
    top_k: int
    max_new_tokens: int
    base_prompt: str = "What is the main object in this image? Answer with its name."
    steps_per_job: int | None = None
    minutes_per_step: float = 0.5


def step_blocks(steps: int, per_job: int | None) -> list[tuple[int, ...]]:
    """Steps 0..``steps`` cut into the consecutive blocks one job each runs (None: one block)."""
    size = steps + 1 if per_job is None else per_job
    return [tuple(range(first, min(first + size, steps + 1))) for first in range(0, steps + 1, size)]


@dataclass(frozen=True)
class SteeringConfig:
    alphas: tuple[float, ...]
    layer: int | None
    layer_fraction: float


@dataclass(frozen=True)
class ProtocolConfig:
    """One switch per results-changing row of the official code's differences (see glov.protocol)."""

    chat_header: str = "clean"
    token_budget: str = "clean"
    steering_vector: str = "clean"
    steering_position: str = "clean"
    alpha_compounding: str = "clean"
    fitness_loader: str = "clean"
    val_split: str = "clean"
    final_set: str = "clean"
    meta_prompt: str = "clean"
    parser: str = "clean"
    invalid_candidates: str = "clean"
    variant_splits: str = "clean"
    imagenet_v2_prompts: str = "clean"
    split_seed: str = "clean"
    llava_prompt: str = "clean"
    class_names: str = "clean"
    ranking: str = "clean"
    precision: str = "clean"


@dataclass(frozen=True)
class AblationConfig:
    """The protocol ablation (glov.ablation): variants beside the run, each under results/ablation/<variant>/."""

    variants: tuple[str, ...] = ()
    bootstrap: int = 2000


@dataclass(frozen=True)
class EvalConfig:
    ensemble_size: int


@dataclass(frozen=True)
class LLMOptConfig:
    iterations: int = 10
    pool: int = 3
    max_words: int = 15


@dataclass(frozen=True)
class AWTConfig:
    views: int = 8
    crop_scale: float = 0.5
    image_temperature: float = 0.5
    text_temperature: float = 0.5
    epsilon: float = 0.1
    sinkhorn_iterations: int = 100


def canonical(value: Any) -> Any:
    """``value`` with every mapping's keys sorted, recursively: what Snakemake compares as a rule's
    params, so that the same params written (or merged) in another key order rerun nothing."""
    if isinstance(value, dict):
        return {k: canonical(value[k]) for k in sorted(value)}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    return value


@dataclass(frozen=True)
class ProAPOConfig:
    """ProAPO's settings (baselines.proapo, glov.proapo)."""

    pool_size: int = 12
    population: int = 4
    template_iterations: int = 4
    description_iterations: int = 4
    max_templates: int = 4
    max_descriptions: int = 3
    classes_per_iteration: int = 5
    mutation_rate: float = 0.2
    entropy_weight: float = 10.0


@dataclass(frozen=True)
class LLaMPConfig:
    """LLaMP's settings (baselines.llamp, glov.llamp)."""

    prompt_tokens: int = 4  # learnable tokens after each class's query (class-specific prompts)
    text_prompts: int = 2  # shared learnable prompt tokens per text layer
    depth: int = 6  # text layers that get prompts (at most all of them)
    lora_rank: int = 4  # low-rank updates of the LLM's last layer (0: the layer stays frozen)
    iterations: int = 60
    lr: float = 0.002
    weight_decay: float = 0.0


@dataclass(frozen=True)
class BaselinesConfig:
    descriptions_per_class: int = 5
    max_new_tokens: int = 48
    llm_opt: LLMOptConfig = field(default_factory=LLMOptConfig)
    proapo: ProAPOConfig = field(default_factory=ProAPOConfig)
    llamp: LLaMPConfig = field(default_factory=LLaMPConfig)
    awt: AWTConfig = field(default_factory=AWTConfig)


@dataclass(frozen=True)
class TrackingConfig:
    mlflow: bool
    experiment: str
    server: str | bool = "auto"
    server_host: str | None = None


@dataclass(frozen=True)
class Params:
    data: DataConfig
    vlm: VLMConfig
    llm: LLMConfig
    optimizer: OptimizerConfig
    steering: SteeringConfig
    eval: EvalConfig
    seeds: tuple[int, ...]
    tracking: TrackingConfig
    methods: tuple[str, ...] = ()
    baselines: BaselinesConfig = field(default_factory=BaselinesConfig)
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    ablation: AblationConfig = field(default_factory=AblationConfig)


def _fill_defaults(node_schema: dict, instance: Any) -> Any:
    """Recursively add schema defaults for absent keys (jsonschema validates but never fills)."""
    if not isinstance(instance, dict) or node_schema.get("type") != "object":
        return instance
    for key, sub in node_schema.get("properties", {}).items():
        if key not in instance and "default" in sub:
            instance[key] = copy.deepcopy(sub["default"])
        if key in instance:
            instance[key] = _fill_defaults(sub, instance[key])
    return instance


def _key_path(error: jsonschema.ValidationError) -> str:
    parts = [str(p) for p in error.absolute_path]
    if "propertyNames" in error.schema_path:  # a key's own name is refused: name that key (quoted: it may be "" or "..")
        parts[-1:] = [f"{parts[-1] if parts else ''}[{error.instance!r}]"]
    if error.validator == "pattern" and "title" in error.schema:  # a named rule: say it in words, not as a regex
        return f"{'.'.join(parts)}: {error.instance!r} is not a valid {error.schema['title']}: {error.schema.get('description', '')}"
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        allowed = ", ".join(sorted(error.schema.get("properties", {})))
        where = ".".join(parts + [extra[0] if extra else "?"])
        return f"{where}: unknown key (allowed here: {allowed})"
    if error.validator == "required":
        return f"{'.'.join(parts) or '<top>'}: {error.message}"
    return f"{'.'.join(parts) or '<top>'}: {error.message}"


def _numbers_from_command_line(raw: dict) -> dict:
    """Snakemake's ``--config 'seeds=[10,11]'`` hands the list over as strings: whole numbers
    written as such are read as numbers (for ``seeds`` only; anything else is validated as given)."""
    seeds = raw.get("seeds")
    if isinstance(seeds, list) and all(isinstance(s, str) and s.strip().lstrip("-").isdigit() for s in seeds):
        raw["seeds"] = [int(s) for s in seeds]
    return raw


def validate(raw: Mapping[str, Any], source: str = "params.yaml") -> dict:
    """Fill defaults and validate; return the completed plain dict or raise :class:`ConfigError`.

    Errors are sorted by key so the first message is stable; all of them are reported at once.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: the top level must be a mapping of sections, got {type(raw).__name__}")
    filled = _fill_defaults(schema(), _numbers_from_command_line(copy.deepcopy(dict(raw))))
    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(filled), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        lines = "\n".join(f"  {_key_path(e)}" for e in errors)
        raise ConfigError(f"{source} is invalid:\n{lines}")
    return filled


def from_dict(raw: Mapping[str, Any], source: str = "params.yaml") -> Params:
    return build(validate(raw, source))


def build(d: Mapping[str, Any]) -> Params:
    """Frozen dataclasses from a dict that :func:`validate` has already completed, checked across
    sections (every way of making params, the Snakefile's included, passes here)."""
    params = Params(
        data=DataConfig(**{**d["data"], "datasets": tuple(d["data"]["datasets"])}),
        vlm=VLMConfig(**{**d["vlm"], "train": VLMTrainConfig(**{**d["vlm"]["train"], "sources": tuple(d["vlm"]["train"]["sources"])})}),
        llm=LLMConfig(**d["llm"]),
        optimizer=OptimizerConfig(**d["optimizer"]),
        steering=SteeringConfig(**{**d["steering"], "alphas": tuple(float(a) for a in d["steering"]["alphas"])}),
        eval=EvalConfig(**d["eval"]),
        seeds=tuple(d["seeds"]),
        tracking=TrackingConfig(**d["tracking"]),
        methods=tuple(d["methods"]),
        baselines=BaselinesConfig(**{
            **d["baselines"], "llm_opt": LLMOptConfig(**d["baselines"]["llm_opt"]),
            "proapo": ProAPOConfig(**d["baselines"]["proapo"]), "llamp": LLaMPConfig(**d["baselines"]["llamp"]), "awt": AWTConfig(**d["baselines"]["awt"]),
        }),
        protocol=ProtocolConfig(**d["protocol"]),
        ablation=AblationConfig(**{**d["ablation"], "variants": tuple(d["ablation"]["variants"])}),
    )
    check_methods(params)
    return params


BASELINE_METHODS = ("s_temp", "ds_temp", "llm_opt", "random_search", "proapo", "llamp", "cupl", "dclip", "awt", "glov_released", "glov_wo_guidance_released")


def glov_alphas(params: Params) -> tuple[float, ...]:
    """The alphas whose optimisation chains the selected methods need: 0 is GLOV w/o guidance, any
    alpha > 0 is a candidate for GLOV (chosen on val)."""
    wanted = {"glov_wo_guidance": lambda a: a == 0, "glov": lambda a: a > 0}
    return tuple(a for a in params.steering.alphas if any(wanted[m](a) for m in params.methods if m in wanted))


def check_methods(params: Params) -> None:
    """A selected GLOV variant must have an alpha to run; the schema cannot see across sections."""
    alphas = list(params.steering.alphas)
    if "glov" in params.methods and not any(a > 0 for a in alphas):
        raise ConfigError(f"methods: glov needs an alpha > 0 in steering.alphas (got {alphas}); or drop glov from methods")
    if "glov_wo_guidance" in params.methods and 0 not in alphas:
        raise ConfigError(f"methods: glov_wo_guidance needs 0.0 in steering.alphas (got {alphas}); or drop it from methods")
    from glov.released import OFFICIAL_NAMES, RELEASED_METHODS

    replayed = [m for m in params.methods if m in RELEASED_METHODS]
    others = [d for d in params.data.datasets if d not in OFFICIAL_NAMES.values()]
    if replayed and others:
        raise ConfigError(f"methods: {replayed[0]} scores the GLOV authors' released prompts, which exist for the paper's 16 datasets "
                          f"only, not {others[0]!r}; drop it from methods or run it on the paper's datasets")


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such file; copy params.yaml from the repository root")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return from_dict(raw, str(path))


def alpha_tag(alpha: float) -> str:
    """Path-safe, round-trippable name for an alpha value (``0.5`` -> ``"0.5"``)."""
    return repr(float(alpha))
