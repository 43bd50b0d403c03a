rule aggregate:
    input:
        get_scores(),
    output:
        md=paths.TABLE_MD,
        csv=paths.TABLE_CSV,
        metrics=paths.METRICS,
        plots=[paths.PLOT.format(dataset=d) for d in DATASETS],
        curves=[paths.CURVE.format(dataset=d, alpha=a) for d in DATASETS for a in ALPHAS],
    log:
        "logs/aggregate.log",
    conda:
        "../envs/glov.yaml"
    params:
        entries=[(d, float(a), s) for d in DATASETS for a in ALPHAS for s in SEEDS],
        datasets=DATASETS,
    script:
        "../scripts/aggregate.py"
