rule score:
    input:
        manifest=paths.MANIFEST,
        final_step=paths.STEP.replace("{step}", LAST_STEP),
        train=embeddings("train"),
        val=embeddings("val"),
        test=embeddings("test"),
        vlm=get_vlm_dir,
    output:
        paths.SCORE,
    log:
        "logs/score/{dataset}/{vlm}/{llm}/a{alpha}/s{seed}.log",
    conda:
        "../envs/glov.yaml"
    params:
        eval=only("eval", "ensemble_size"),
        base_template=config["optimizer"]["base_template"],
    threads: 1
    resources:
        mem_mb=4000,
        gpu=gpus("vlm"),
    script:
        "../scripts/score.py"
