rule build_vlm:
    output:
        directory(paths.VLM_DIR),
    log:
        "logs/build_vlm/{vlm}.log",
    conda:
        "../envs/glov.yaml"
    params:
        vlm=config["vlm"],
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
        llm=config["llm"],
    resources:
        mem_mb=4000,
    script:
        "../scripts/cache_llm.py"
