# One job per block of steps of every alpha chain of a (dataset, seed): the models load once per
# job and the chains' candidates are sampled in one batch. optimizer.steps_per_job sets the block
# size (null: all steps); a rule per block, since each block's step files are its outputs.
for block in STEP_BLOCKS:

    rule:
        name:
            block_rule(block)
        input:
            manifest=SEED_MANIFEST,
            train=embeddings("train"),
            vlm=get_vlm_dir,
            llm=get_llm_dir() if block[-1] > 0 else [],
            previous=previous_steps(block),
        output:
            block_outputs(block),
        log:
            f"logs/glov_steps/{{dataset}}/{{vlm}}/{{llm}}/s{{seed}}/{block_name(block)}.log",
        benchmark:
            f"benchmarks/runs/glov_steps/{{dataset}}/{{vlm}}/{{llm}}/s{{seed}}/{block_name(block)}.tsv"
        conda:
            "../envs/glov.yaml"
        params:
            steps=list(block),
            alphas=[float(a) for a in ALPHAS],
            outputs=[(float(a), t) for a in ALPHAS for t in block],
            optimizer=only("optimizer", "candidates", "topk", BASE_KEY, "temperature", "top_p", "top_k", "max_new_tokens"),
            steering=only("steering", "layer", "layer_fraction"),
            llm=only("llm", "name", "path", "gguf_file", "dtype"),
            protocol=only("protocol", *rule_switches("glov_steps")),
        threads: 1
        resources:
            mem_mb=4000,
            gpu=gpus("vlm", "llm"),
            runtime=block_runtime(block),
        priority: 40
        script:
            "../scripts/glov_steps.py"
