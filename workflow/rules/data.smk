rule export_bundled_dataset:
    output:
        directory(f"{PARAMS.data.root}/{{subdir}}"),
    log:
        "logs/export_bundled_dataset/{subdir}.log",
    benchmark:
        "benchmarks/runs/export_bundled_dataset/{subdir}.tsv"
    conda:
        "../envs/glov.yaml"
    wildcard_constraints:
        subdir="|".join(spec.subdir for spec in BUNDLED.values()) or "^$",
    params:
        dataset=lambda w: next(n for n, s in BUNDLED.items() if s.subdir == w.subdir),
        sources=SOURCES_VERSION,  # a source whose images or split changed is exported again
        export=EXPORT_FORMAT,  # a folder exported before it had a completion record is exported again
    priority: 60  # data -> embed feed every VLM job (priorities: the longest chains start first, see rule describe_classes)
    script:
        "../scripts/export_bundled_dataset.py"


rule prep_dataset:
    input:
        get_dataset_dir,
    output:
        MANIFEST,
    log:
        "logs/prep_dataset/{dataset}.log" if not SPLIT_PER_SEED else "logs/prep_dataset/{dataset}/split{split_seed}.log",
    benchmark:
        "benchmarks/runs/prep_dataset/{dataset}.tsv" if not SPLIT_PER_SEED else "benchmarks/runs/prep_dataset/{dataset}/split{split_seed}.tsv"
    conda:
        "../envs/glov.yaml"
    params:
        data=only("data", "root", "shots", "val_per_class", "test_per_class", "seed"),
        protocol=only("protocol", *rule_switches("prep_dataset")),
        custom=lambda w: config["data"]["custom"].get(w.dataset, {}),
        splits=lambda w: canonical(config["data"]["splits"].get(w.dataset, {})),  # the dataset's own split sizes, if any
        listing=dataset_listing,  # changes when the folder's files do: deleting a bad image is enough
    priority: 60
    script:
        "../scripts/prep_dataset.py"


rule embed_images:
    input:
        manifest=MANIFEST,
        vlm=get_vlm_dir,
    output:
        [EMBEDDINGS.replace("{split}", split) for split in SPLITS],
    log:
        "logs/embed_images/{dataset}/{vlm}.log" if not SPLIT_PER_SEED else "logs/embed_images/{dataset}/{vlm}/split{split_seed}.log",
    benchmark:
        "benchmarks/runs/embed_images/{dataset}/{vlm}.tsv" if not SPLIT_PER_SEED else "benchmarks/runs/embed_images/{dataset}/{vlm}/split{split_seed}.tsv"
    conda:
        "../envs/glov.yaml"
    params:
        splits=SPLITS,
        vlm=only("vlm", "name", "arch", "pretrained"),
        protocol=only("protocol", *rule_switches("embed_images")),
    threads: 1  # short, and on the critical path: it starts as soon as one core is free, not two
    resources:
        mem_mb=4000,
        gpu=gpus("vlm"),
    priority: 50
    script:
        "../scripts/embed_images.py"
