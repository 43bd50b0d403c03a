rule train_lab_vlm:
    output:
        directory(paths.VLM_DIR),
    log:
        "logs/train_lab_vlm/{vlm}.log",
    benchmark:
        "benchmarks/runs/train_lab_vlm/{vlm}.tsv"
    conda:
        "../envs/glov.yaml"
    params:
        vlm=only("vlm", "name", "arch", "pretrained", "train"),
        sources=SOURCES_VERSION,  # new captions or splits retrain the lab VLM (Snakemake reruns on a params change)
    threads: PARAMS.vlm.train.threads  # what training computes with on any machine (fewer cores: the same threads share them)
    resources:
        mem_mb=6000,
    # the critical path (train -> embed -> GLOV steps -> score) starts first. Snakemake's scheduler
    # maximises the *sum* of the started jobs' priorities, so at 100 two data jobs (60 + 60) won the
    # cores and training waited ~80 s; this outweighs any number of other jobs.
    priority: 1_000_000
    script:
        "../scripts/train_lab_vlm.py"


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
    priority: 70  # every LLM job waits for it, and it is the longest of the jobs that open a run (GGUF parsing)
    script:
        "../scripts/cache_llm.py"
