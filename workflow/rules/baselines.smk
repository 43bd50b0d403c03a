rule describe_classes:
    input:
        manifest=SEED_MANIFEST,
        llm=get_llm_dir,
    output:
        [paths.DESCRIPTIONS.replace("{style}", style) for style in STYLES],
    log:
        "logs/describe_classes/{dataset}/{llm}/s{seed}.log",
    benchmark:
        "benchmarks/runs/describe_classes/{dataset}/{llm}/s{seed}.tsv"
    conda:
        "../envs/glov.yaml"
    params:
        styles=STYLES,
        baselines=only("baselines", "descriptions_per_class", "max_new_tokens"),
        sampling=only("optimizer", "temperature", "top_p", "top_k"),
        llm=only("llm", "name", "path", "gguf_file", "dtype"),
    threads: 1
    resources:
        mem_mb=4000,
        gpu=gpus("llm"),
    script:
        "../scripts/describe_classes.py"


# One job per (dataset, seed) scores every baseline that uses randomness, and one job per dataset
# those that do not (first seed): the VLM and its text embeddings load once per job.
for rule_name, methods, seed, suffix in baseline_groups():
    run_part = ("s{seed}" if seed is None else f"s{seed}") + suffix

    rule:
        name:
            rule_name
        input:
            manifest=SEED_MANIFEST,
            train=embeddings("train"),
            val=embeddings("val"),
            test=embeddings("test"),
            vlm=get_vlm_dir,
            llm=get_llm_dir() if set(methods) & set(LLM_METHODS) else [],
            descriptions=description_inputs(methods),
            released=[RELEASED_PATH] if set(methods) & set(RELEASED_METHODS) else [],
            llamp=[LLAMP_OUT] if "llamp" in methods else [],
        output:
            baseline_outputs(methods, seed),
        log:
            f"logs/baselines/{{dataset}}/{{vlm}}/{{llm}}/{run_part}.log",
        benchmark:
            f"benchmarks/runs/baselines/{{dataset}}/{{vlm}}/{{llm}}/{run_part}.tsv"
        conda:
            "../envs/glov.yaml"
        params:
            methods=methods,
            styles=sorted({DESCRIPTION_STYLE[m] for m in methods if m in DESCRIPTION_STYLE}),
            seed=(lambda w: int(w.seed)) if seed is None else seed,
            method=baselines_params(methods),
            protocol=only("protocol", *rule_switches("baselines")),
        threads: 1
        resources:
            mem_mb=4000,
            gpu=gpus("vlm", "llm") if set(methods) & set(LLM_METHODS) else gpus("vlm"),
        script:
            "../scripts/baselines.py"


# The prompts the GLOV authors released (methods glov_released, glov_wo_guidance_released): downloaded
# once and parsed as data; offline, put the file there with `glov fetch-released --from FILE`.
rule fetch_released:
    output:
        RELEASED_PATH,
    log:
        "logs/fetch_released.log",
    conda:
        "../envs/glov.yaml"
    script:
        "../scripts/fetch_released.py"


# LLaMP, a trained method: the LLM's frozen part runs once per class and dataset (its knowledge
# cache), then training per (dataset, seed) on the run's labelled split; rule baselines scores it.
rule llamp_knowledge:
    input:
        manifest=MANIFEST.replace("{split_seed}", str(SEEDS[0])),
        llm=get_llm_dir,
    output:
        paths.LLAMP_KNOWLEDGE,
    log:
        "logs/llamp_knowledge/{dataset}/{llm}.log",
    benchmark:
        "benchmarks/runs/llamp_knowledge/{dataset}/{llm}.tsv"
    conda:
        "../envs/glov.yaml"
    params:
        llm=only("llm", "name", "path", "gguf_file", "dtype"),
    threads: 1
    resources:
        mem_mb=4000,
        gpu=gpus("llm"),
    script:
        "../scripts/llamp_knowledge.py"


rule train_llamp:
    input:
        manifest=SEED_MANIFEST,
        train=embeddings("train"),
        vlm=get_vlm_dir,
        llm=get_llm_dir,
        descriptors=paths.DESCRIPTIONS.replace("{style}", "descriptors"),
        knowledge=paths.LLAMP_KNOWLEDGE,
    output:
        LLAMP_OUT,
    log:
        f"logs/train_llamp/{{dataset}}/{{vlm}}/{{llm}}/{PARAMS.data.shots}shot/s{{seed}}.log",
    benchmark:
        f"benchmarks/runs/train_llamp/{{dataset}}/{{vlm}}/{{llm}}/{PARAMS.data.shots}shot/s{{seed}}.tsv"
    conda:
        "../envs/glov.yaml"
    params:
        llamp=only("baselines", "llamp"),
        llm=only("llm", "name", "path", "gguf_file", "dtype"),
        seed=lambda w: int(w.seed),
    threads: 1
    resources:
        mem_mb=4000,
        gpu=gpus("vlm", "llm"),
    script:
        "../scripts/train_llamp.py"
