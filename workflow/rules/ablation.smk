# The protocol ablation (config/ablation_protocol.yaml, glov.ablation): every variant's GLOV chains
# under results/ablation/{variant}/, by the run's own rules (a job of a variant takes its protocol
# from the {variant} wildcard), and results/tables/protocol.md comparing each with clean.
if VARIANTS:

    use rule prep_dataset as prep_dataset_variant with:
        output:
            V_MANIFEST,
        log:
            of_variant("logs/prep_dataset/{dataset}/split{split_seed}.log"),
        benchmark:
            of_variant("benchmarks/runs/prep_dataset/{dataset}/split{split_seed}.tsv")
        params:
            protocol=variant_switches("prep_dataset"),

    use rule embed_images as embed_images_variant with:
        input:
            manifest=variant_embed_manifest,
            vlm=get_vlm_dir,
        output:
            [V_EMBEDDINGS.replace("{split}", split) for split in SPLITS],
        log:
            of_variant("logs/embed_images/{dataset}/{vlm}/split{split_seed}.log"),
        benchmark:
            of_variant("benchmarks/runs/embed_images/{dataset}/{vlm}/split{split_seed}.tsv")
        params:
            splits=SPLITS,
            vlm=only("vlm", "name", "arch", "pretrained"),
            protocol=variant_switches("embed_images"),

    use rule score as score_variant with:
        input:
            manifest=variant_manifest,
            final_steps=variant_final_steps,
            train=variant_embeddings("train"),
            val=variant_embeddings("val"),
            test=variant_embeddings("test"),
            vlm=get_vlm_dir,
        output:
            of_variant([paths.SCORE.replace("{alpha}", a) for a in ALPHAS]),
        log:
            of_variant("logs/score/{dataset}/{vlm}/{llm}/s{seed}.log"),
        benchmark:
            of_variant("benchmarks/runs/score/{dataset}/{vlm}/{llm}/s{seed}.tsv")
        params:
            protocol=variant_switches("score"),

    rule protocol_table:
        input:
            scores=[path for *_, path in variant_scores()],
            manifests=[SEED_MANIFEST.format(dataset=d, seed=SEEDS[0]) for d in DATASETS],  # which switches cannot act here
        output:
            md=paths.PROTOCOL_TABLE,
            html=report(paths.html_of(paths.PROTOCOL_TABLE), caption="../report/protocol.rst", category="Tables"),
        log:
            "logs/protocol_table.log",
        benchmark:
            "benchmarks/runs/protocol_table/all.tsv"
        conda:
            "../envs/glov.yaml"
        params:
            entries=variant_scores(),
            bootstrap=config["ablation"]["bootstrap"],
        script:
            "../scripts/protocol_table.py"
