"""The baseline methods the tables compare GLOV with, and what each needs from the workflow.

``ds_temp`` is CLIP's hand-written 80-template ImageNet ensemble (as shipped with open_clip), the
strongest template-only baseline in the GLOV paper's Table 1. CuPL, DCLIP and AWT score LLM
descriptions of the classes (rule describe_classes); LLM-Opt runs the LLM itself, and ProAPO both
(its template pool) and evolves ensembles of templates and of those descriptions. LLaMP is trained
(rule train_llamp); its job scores the class weights it learnt. S-TEMP and
DS-TEMP use no randomness, so they run once (first seed), as do ``glov_released`` and
``glov_wo_guidance_released``, which score the prompts the GLOV authors released (glov.released).
"""

from __future__ import annotations

DESCRIPTION_STYLE = {"cupl": "sentences", "dclip": "descriptors", "awt": "sentences", "proapo": "sentences", "llamp": "descriptors"}
LLM_METHODS = ("llm_opt", "proapo", "random_search")  # run the LLM inside the baselines job
DETERMINISTIC = ("s_temp", "ds_temp", "glov_released", "glov_wo_guidance_released")


def ds_temp_templates() -> list[str]:
    """The 80 OpenAI ImageNet templates as ``str.format`` templates with one ``{}``."""
    from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

    return [make("{}") for make in OPENAI_IMAGENET_TEMPLATES]


def search_switches(protocol: dict) -> dict:
    """The switches random search follows as GLOV's chains do (meta-prompt, parser, final set ...)."""
    from glov.protocol import departures

    return departures(protocol, "glov_steps") | departures(protocol, "score")


def method_params(config: dict, method: str, base_key: str = "base_template") -> dict:
    """The params one baseline's result depends on, from the params as a plain dict (LLM
    descriptions carry theirs in their own file); ``base_key`` is what S-TEMP scores (a template,
    or an answering VLM's base prompt). Snakemake declares them, so a change reruns the
    job; the result store keys on them, so only the changed method is computed again."""
    o, b = config["optimizer"], config["baselines"]
    sampling = {k: o[k] for k in ("base_template", "temperature", "top_p", "top_k", "max_new_tokens")}
    llm = {k: config["llm"][k] for k in ("name", "path", "gguf_file", "dtype")}
    return {
        "s_temp": {base_key: o[base_key]},
        "ds_temp": {},
        "llm_opt": {**sampling, **b["llm_opt"], "llm": llm},
        "proapo": {**sampling, **b["proapo"], "llm": llm},
        "llamp": {**b["llamp"], "llm": llm, "shots": config["data"]["shots"]},
        "random_search": {**sampling, base_key: o[base_key], **{k: o[k] for k in ("steps", "candidates", "topk")},
                          "ensemble_size": config["eval"]["ensemble_size"], "llm": llm, "protocol": search_switches(config["protocol"])},  # the trained file's content is in the key too
        "cupl": {},
        "dclip": {},
        "awt": {"base_template": o["base_template"], **b["awt"]},
        "glov_released": {},  # the released file's content is part of the key (glov.jobs.baselines)
        "glov_wo_guidance_released": {},
    }[method]
