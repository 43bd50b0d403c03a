rule build_vlm:
    output:
        directory(paths.VLM_DIR),
    log:
        "logs/build_vlm/{vlm}.log",
    conda:
        "../envs/glov.yaml"
    params:
        vlm=only("vlm", "name", "arch", "pretrained"),
    script:
        "../scripts/build_vlm.py"


rule cache_llm:
    output:
        directory(paths.LLM_DIR),
    log:
        "logs/cache_llm/{llm}.log",
    benchmark:
        "benchmarks/runs/cache_llm/{llm}.tsv"
    conda:
        "../envs/glov.yaml"
    params:
        llm=only("llm", "name", "path", "gguf_file"),
    resources:
        mem_mb=4000,
    script:
        "../scripts/cache_llm.py"
