"""Rule glov_steps: GLOV's optimisation steps of every alpha chain of one (dataset, seed)."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable, Mapping, Sequence

from tqdm import tqdm

from glov import config as C
from glov.data import get_dataset_spec
from glov.generation import CACHED, RECOMPUTED
from glov.io import read_json, write_json
from glov.jobs.common import LazyLLM, answering, base_prompt, dataset_params, llm_digest, llm_sampling, load_llm, process_start, track, vlm_digest
from glov.jobs.embed import Scorer, split_images_digest
from glov.optimizer import StepConfig, Task, init_state
from glov.optimizer.parse import MAX_CHARS
from glov.official import CLIP, LLAVA, Wording, wording
from glov.optimizer.prompts import QUESTION, TEMPLATE, official_base_shown
from glov.optimizer.state import State
from glov.protocol import GUIDED_NEW_TOKENS, departures, is_official, rule_switches
from glov.steering import resolve_layer

log = logging.getLogger(__name__)


def step_config(params: C.Params, alpha: float, seed: int, n_layers: int) -> StepConfig:
    o = params.optimizer
    layer = resolve_layer(params.steering.layer, params.steering.layer_fraction, n_layers)
    official = {name: is_official(params.protocol, name) for name in rule_switches("glov_steps")}
    sampling = llm_sampling(params)
    guided = replace(sampling, max_new_tokens=GUIDED_NEW_TOKENS, eos="tokenizer") if official["token_budget"] else None
    return StepConfig(o.candidates, o.topk, sampling, alpha, layer, seed, QUESTION if answering(params) else TEMPLATE,
                      semantics=RECOMPUTED if official["steering_position"] else CACHED, compound=official["alpha_compounding"],
                      guided_sampling=guided, generation_prompt=not official["chat_header"], official_vector=official["steering_vector"],
                      wording=official_wording(params), official_parser=official["parser"], keep_invalid=official["invalid_candidates"],
                      question_chars=None if official["llava_prompt"] else MAX_CHARS, ranking=params.protocol.ranking)


def official_wording(params: C.Params) -> Wording | None:
    """The released code's meta-prompt of the run's path (CLIP or LLaVA) under protocol.meta_prompt:
    official, read from its source (glov.official); None otherwise."""
    if not is_official(params.protocol, "meta_prompt"):
        return None
    return wording(LLAVA if answering(params) else CLIP)

def step_inputs(params: C.Params, manifest_path: str | Path, train_emb: str | Path | None, task: Task) -> dict:
    """The content of what every step of a (dataset, seed) reads, as digests (glov.provenance): the
    manifest (classes, splits), the cached fitness embeddings, the VLM's and the LLM's weights (the
    LLM for steps after the first only: step 0 does not read it), and the text the chat states
    about the dataset. A retrained VLM or an edited description changes every step's key."""
    from glov.provenance import file_digest

    inputs = {"manifest": file_digest(manifest_path), "train_embeddings": file_digest(train_emb) if train_emb else None,
              "vlm": vlm_digest(params), "task": asdict(task)}
    if not train_emb:  # an answering VLM reads the fitness images themselves: their content, not just their names
        inputs["train_images"] = split_images_digest(read_json(manifest_path), "train")
    return inputs


def _step_key(params: C.Params, dataset: str, alpha: float, seed: int, step_index: int, previous: State | None,
              inputs: dict, llm: Callable[[], str]) -> str:
    """Everything one chain's step depends on, and nothing else: not the other chains, seeds,
    datasets or methods of the run, nor its number of steps or how they are cut into jobs.
    ``inputs``: :func:`step_inputs`; ``llm``: the LLM's digest, asked for steps after step 0 only."""
    from glov.store import code_fingerprint
    from glov.tracking import params_hash

    p = asdict(params)
    data = dataset_params(p, dataset)
    optimizer = {k: v for k, v in p["optimizer"].items() if k not in ("steps", "steps_per_job", "minutes_per_step")}
    llm_params = {k: v for k, v in p["llm"].items() if k != "max_batch_rows"}
    chain = {"data": data, "vlm": p["vlm"], "llm": llm_params, "optimizer": optimizer,
             "steering": {k: p["steering"][k] for k in ("layer", "layer_fraction")}}
    switches = departures(p["protocol"], "glov_steps")
    if switches:
        chain["protocol"] = switches
    return params_hash({"code": code_fingerprint(), "params": chain, "dataset": dataset, "alpha": alpha, "seed": seed,
                        "step": step_index, "previous": previous.to_dict() if previous else None,
                        "inputs": inputs | ({"llm": llm()} if step_index else {})})

def start(params: C.Params, fitness: Callable[[str], float]) -> tuple[State, dict]:
    """Step 0: the base template (or prompt) scored, spelt in the history as the official
    meta-prompt spells it where that is the released code's (glov.official)."""
    template = base_prompt(params)
    words = official_wording(params)
    return init_state(template, fitness, official_base_shown(template, words) if words else None)


def task_of(params: C.Params, dataset: str, description: str) -> Task:
    """What the meta-prompt says about the dataset. The official one names it as the released code
    does (its Dassl name, ``DescribableTextures``) with the released description paragraph; a
    dataset the released code has no description for (lab tasks, your own) gets ``title`` and
    ``paragraph`` from its meta YAML or ``data.custom`` (default: its name and one-line description)."""
    from glov.released import OFFICIAL_NAMES

    spec = get_dataset_spec(dataset, params.data.custom)
    words = official_wording(params)
    name = next((official for official, ours in OFFICIAL_NAMES.items() if ours == dataset), None)
    if words is not None and name in words.descriptions:
        return Task(dataset, description, name, words.descriptions[name])
    return Task(dataset, description, spec.title, spec.paragraph)


def run_steps(
    params: C.Params, manifest_path: str | Path, train_emb: str | Path | None, seed: int, steps: Sequence[int],
    previous: Mapping[float, str | Path], outputs: Mapping[tuple[float, int], str | Path],
) -> None:
    """One job: steps ``steps`` of every alpha chain of one (dataset, seed), the models loaded once
    and the chains' candidates sampled in one batch per step. Step 0 scores the base template (or
    prompt); a block that starts later continues from ``previous[alpha]``, the step JSON before it.
    Every finished step is kept in the :class:`glov.store.ResultStore`, and a step found there is
    not computed again. The step JSONs do not depend on how steps are cut into jobs."""
    from glov.optimizer import step_chains
    from glov.store import ResultStore

    manifest = read_json(manifest_path)
    dataset = manifest["dataset"]
    alphas = sorted({a for a, _ in outputs})
    name = f"glov_steps/{dataset}/s{seed}/{steps[0]:03d}-{steps[-1]:03d}"
    started = time.time()
    with track(params, name, {"dataset": dataset, "alphas": alphas, "seed": seed, "steps": list(steps)}) as tracker:
        fitness = Scorer(params, manifest).fitness("train", train_emb)
        store, restored, llm_load_s = ResultStore(), 0, 0.0
        llm = LazyLLM(lambda: load_llm(params), lambda: llm_digest(params))
        loaded = time.time()
        task = task_of(params, dataset, manifest["description"])
        inputs = step_inputs(params, manifest_path, train_emb, task)
        states: dict[float, State | None] = {a: State.from_dict(read_json(previous[a])["state"]) if steps[0] else None for a in alphas}
        for t in tqdm(steps, desc=f"GLOV {dataset} s{seed}", unit="step"):
            keys = {a: _step_key(params, dataset, a, seed, t, states[a], inputs, llm.digest) for a in alphas}
            records = {a: store.restore(outputs[a, t], keys[a]) for a in alphas}
            todo = [a for a in alphas if records[a] is None]
            restored += len(alphas) - len(todo)
            if todo and t == 0:
                base = start(params, fitness)[1]  # the same for every alpha
                records.update({a: base for a in todo})
            elif todo:
                if not llm.loaded:
                    clock = time.time()
                    llm()
                    llm_load_s = time.time() - clock
                    keys.update({a: _step_key(params, dataset, a, seed, t, states[a], inputs, llm.digest) for a in todo})  # keyed by the LLM loaded
                chains = [(states[a], fitness, step_config(params, a, seed, llm().n_layers)) for a in todo]
                records.update({a: record for a, (_, record) in zip(todo, step_chains(chains, llm(), task))})
            for a in todo:
                write_json(outputs[a, t], records[a])
                store.save(outputs[a, t], keys[a])
            states = {a: State.from_dict(records[a]["state"]) for a in alphas}
            tracker.log_metrics({f"{metric}/a{a}": value for a in alphas for metric, value in _step_metrics(states[a], records[a]).items()}, step=t)
        timing = {"startup_s": started - process_start(), "load_s": loaded - started + llm_load_s, "job_s": time.time() - process_start()}
        tracker.log_metrics({"restored_steps": restored, "computed_steps": len(outputs) - restored, **timing})
        log.info("%d chain steps computed, %d restored from the result store", len(outputs) - restored, restored)
        log.info("timing: %s", json.dumps({k: round(v, 2) for k, v in timing.items()}))  # read by benchmarks/bench_workflow.py
        for path in outputs.values():
            tracker.log_artifact(path)

def _step_metrics(state: State, record: dict) -> dict[str, float]:
    return {"best_train_acc": state.best.accuracy, "history_size": len(state.history), "failures_total": state.failures,
            "n_failed": record.get("n_failed", 0), "steering_norm": record.get("steering", {}).get("norm", 0.0)}
