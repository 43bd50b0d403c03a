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
        protocol=only("protocol", *rule_switches("describe_classes")),
        sampling=only("optimizer", "temperature", "top_p", "top_k"),
        llm=only("llm", "name", "path", "gguf_file", "dtype"),
    threads: 1
    resources:
        mem_mb=4000,
        gpu=gpus("llm"),
    # describe -> train_llamp -> baselines is the longest chain of a dataset (measured: ~200 s against
    # GLOV's steps -> score ~110 s in the default run), so it starts first and no long job is left
    # alone on the last core. Snakemake sums the priorities of the jobs it starts together.
    priority: 48
    script:
        "../scripts/describe_classes.py"


# One job per (dataset, seed) scores every baseline (those without randomness in the first seed's
# job only): the VLM, the LLM and the text-embedding cache load once per job, and the result store
# recomputes only the methods whose params or inputs changed (eval.ensemble_size: random search).
for rule_name, methods, seeds in baseline_groups():

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
            official=official_sources(config["protocol"], "baselines"),
            llamp=llamp_trained if "llamp" in methods else [],
        output:
            baseline_outputs(methods),
        wildcard_constraints:
            seed="|".join(str(s) for s in seeds),
        log:
            "logs/baselines/{dataset}/{vlm}/{llm}/s{seed}.log",
        benchmark:
            "benchmarks/runs/baselines/{dataset}/{vlm}/{llm}/s{seed}.tsv"
        conda:
            "../envs/glov.yaml"
        params:
            methods=methods,
            styles=sorted({DESCRIPTION_STYLE[m] for m in methods if m in DESCRIPTION_STYLE}),
            seed=lambda w: int(w.seed),
            method=baselines_params(methods),
            protocol=only("protocol", *rule_switches("baselines")),
        threads: 1
        resources:
            mem_mb=4000,
            gpu=gpus("vlm", "llm") if set(methods) & set(LLM_METHODS) else gpus("vlm"),
        priority: 46
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


# The released GLOV code's wording (protocol.meta_prompt / llava_prompt: official), read as data at
# run time from its pinned source files: downloaded once; offline, `glov fetch-official --from CLONE`.
rule fetch_official:
    output:
        OFFICIAL_FILES,
    log:
        "logs/fetch_official.log",
    conda:
        "../envs/glov.yaml"
    script:
        "../scripts/fetch_official.py"


# LLaMP, a trained method: one job per dataset runs the LLM's frozen part once per class (its
# knowledge cache, saved) and trains every seed on its labelled split; rule baselines scores it.
rule train_llamp:
    input:
        manifests=expand(SEED_MANIFEST, seed=SEEDS, allow_missing=True),
        train=expand(embeddings("train"), seed=SEEDS, allow_missing=True),
        vlm=get_vlm_dir,
        llm=get_llm_dir,
        descriptors=expand(paths.DESCRIPTIONS.replace("{style}", "descriptors"), seed=SEEDS, allow_missing=True),
    output:
        knowledge=paths.LLAMP_KNOWLEDGE,
        trained=expand(paths.LLAMP, seed=SEEDS, allow_missing=True),
    log:
        "logs/train_llamp/{dataset}/{vlm}/{llm}/{shots}shot.log",
    benchmark:
        "benchmarks/runs/train_llamp/{dataset}/{vlm}/{llm}/{shots}shot.tsv"
    conda:
        "../envs/glov.yaml"
    params:
        llamp=only("baselines", "llamp"),
        llm=only("llm", "name", "path", "gguf_file", "dtype"),
        seeds=SEEDS,
    threads: 1
    resources:
        mem_mb=4000,
        gpu=gpus("vlm", "llm"),
    priority: 47
    script:
        "../scripts/train_llamp.py"
