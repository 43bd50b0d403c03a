rule glov_step:
    input:
        manifest=paths.MANIFEST,
        train=embeddings("train"),
        vlm=get_vlm_dir,
        llm=lambda w: get_llm_dir() if int(w.step) > 0 else [],
        previous=get_previous_step,
    output:
        paths.STEP,
    log:
        "logs/glov_step/{dataset}/{vlm}/{llm}/a{alpha}/s{seed}/{step}.log",
    benchmark:
        "benchmarks/runs/glov_step/{dataset}/{vlm}/{llm}/a{alpha}/s{seed}/{step}.tsv"
    conda:
        "../envs/glov.yaml"
    params:
        optimizer=only("optimizer", "candidates", "topk", BASE_KEY, "temperature", "top_p", "top_k", "max_new_tokens"),
        steering=only("steering", "layer", "layer_fraction"),
        llm=only("llm", "name", "path", "gguf_file", "dtype"),
    threads: 1
    resources:
        mem_mb=4000,
        gpu=gpus("vlm", "llm"),
    script:
        "../scripts/glov_step.py"
