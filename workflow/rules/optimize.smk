# One job per block of steps of every alpha chain of a (dataset, seed): the models load once per
# job and the chains' candidates are sampled in one batch. optimizer.steps_per_job sets the block
# size (null: all steps); a rule per block, since each block's step files are its outputs.
# With a protocol ablation (config/ablation_protocol.yaml) each block has a second rule, for the
# variants' chains under results/ablation/{variant}/ (see workflow/rules/ablation.smk).
for block, ablated in ((b, v) for b in STEP_BLOCKS for v in ((False, True) if VARIANTS else (False,))):

    rule:
        name:
            block_rule(block) + ("_variant" if ablated else "")
        input:
            manifest=variant_manifest if ablated else SEED_MANIFEST,
            train=variant_embeddings("train") if ablated else embeddings("train"),
            vlm=get_vlm_dir,
            llm=get_llm_dir() if block[-1] > 0 else [],
            previous=of_variant(previous_steps(block), ablated),
            official=variant_sources("glov_steps") if ablated else official_sources(config["protocol"], "glov_steps"),
        output:
            of_variant(block_outputs(block), ablated),
        log:
            of_variant(f"logs/glov_steps/{{dataset}}/{{vlm}}/{{llm}}/s{{seed}}/{block_name(block)}.log", ablated),
        benchmark:
            of_variant(f"benchmarks/runs/glov_steps/{{dataset}}/{{vlm}}/{{llm}}/s{{seed}}/{block_name(block)}.tsv", ablated)
        conda:
            "../envs/glov.yaml"
        params:
            steps=list(block),
            alphas=[float(a) for a in ALPHAS],
            outputs=[(float(a), t) for a in ALPHAS for t in block],
            optimizer=only("optimizer", "candidates", "topk", BASE_KEY, "temperature", "top_p", "top_k", "max_new_tokens"),
            steering=only("steering", "layer", "layer_fraction"),
            llm=only("llm", "name", "path", "gguf_file", "dtype"),
            protocol=variant_switches("glov_steps") if ablated else only("protocol", *rule_switches("glov_steps")),
        threads: 1
        resources:
            mem_mb=4000,
            gpu=gpus("vlm", "llm"),
            runtime=block_runtime(block),
        priority: 40
        script:
            "../scripts/glov_steps.py"
