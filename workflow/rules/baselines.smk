rule describe_classes:
    input:
        manifest=paths.MANIFEST,
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


rule baseline:
    input:
        manifest=paths.MANIFEST,
        train=embeddings("train"),
        val=embeddings("val"),
        test=embeddings("test"),
        vlm=get_vlm_dir,
        llm=lambda w: get_llm_dir() if w.method == "llm_opt" else [],
        descriptions=get_descriptions,
    output:
        paths.BASELINE,
    log:
        "logs/baseline/{dataset}/{vlm}/{llm}/{method}/s{seed}.log",
    benchmark:
        "benchmarks/runs/baseline/{dataset}/{vlm}/{llm}/{method}/s{seed}.tsv"
    conda:
        "../envs/glov.yaml"
    params:
        method=baseline_params,
    threads: 1
    resources:
        mem_mb=4000,
        gpu=lambda w: gpus("vlm", "llm") if w.method == "llm_opt" else gpus("vlm"),
    script:
        "../scripts/baseline.py"
