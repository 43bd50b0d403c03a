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


# Lab tasks: the best single template any method scored, chosen on test (an upper bound for lab.md).
if ORACLE_TASKS:

    rule oracle:
        input:
            manifest=SEED_MANIFEST,
            test=embeddings("test"),
            vlm=get_vlm_dir,
            final_steps=final_steps if ALPHAS else [],
            baselines=seed_baselines,
        output:
            paths.ORACLE,
        log:
            "logs/oracle/{dataset}/{vlm}/{llm}/s{seed}.log",
        benchmark:
            "benchmarks/runs/oracle/{dataset}/{vlm}/{llm}/s{seed}.tsv"
        wildcard_constraints:
            dataset="|".join(ORACLE_TASKS),
        conda:
            "../envs/glov.yaml"
        params:
            seed=lambda w: int(w.seed),
            protocol=only("protocol", *rule_switches("oracle")),
        threads: 1
        resources:
            mem_mb=4000,
            gpu=gpus("vlm"),
        script:
            "../scripts/oracle.py"
