# One job per (dataset, seed) scores every alpha chain's final state (the VLM loads once).
if ALPHAS:

    rule score:
        input:
            manifest=SEED_MANIFEST,
            final_steps=final_steps,
            train=embeddings("train"),
            val=embeddings("val"),
            test=embeddings("test"),
            vlm=get_vlm_dir,
        output:
            [paths.SCORE.replace("{alpha}", a) for a in ALPHAS],
        log:
            "logs/score/{dataset}/{vlm}/{llm}/s{seed}.log",
        benchmark:
            "benchmarks/runs/score/{dataset}/{vlm}/{llm}/s{seed}.tsv"
        conda:
            "../envs/glov.yaml"
        params:
            alphas=[float(a) for a in ALPHAS],
            eval=only("eval", "ensemble_size"),
            protocol=only("protocol", *rule_switches("score")),
            base_template=config["optimizer"]["base_template"],
        threads: 1
        resources:
            mem_mb=4000,
            gpu=gpus("vlm"),
        priority: 30
        script:
            "../scripts/score.py"
