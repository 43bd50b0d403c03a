rule aggregate:
    input:
        scores=get_scores(),
        baselines=get_baselines(),
        oracles=get_oracles(),
    output:
        md=paths.TABLE_MD,
        csv=paths.TABLE_CSV,
        paper=paths.PAPER_TABLE,
        lab=[paths.LAB_TABLE] if LAB_TASKS else [],
        # the report shows HTML inline (markdown would only be a download link)
        html=report(paths.html_of(paths.TABLE_MD), caption="../report/tables.rst", category="Tables"),
        paper_html=report(paths.html_of(paths.PAPER_TABLE), caption="../report/paper_table.rst", category="Tables"),
        lab_html=[report(paths.html_of(paths.LAB_TABLE), caption="../report/lab.rst", category="Tables")] if LAB_TASKS else [],
        metrics=paths.METRICS,
        correct=paths.CORRECT,  # per-image correctness of every table cell's result: glov diff's intervals (DVC-cached)
        plots=[report(p, caption="../report/curves.rst", category="Optimisation curves") for p in get_plots()],
        curves=[paths.CURVE.format(dataset=d, alpha=a) for d in DATASETS for a in ALPHAS],
    log:
        "logs/aggregate.log",
    benchmark:
        "benchmarks/runs/aggregate/all.tsv"
    conda:
        "../envs/glov.yaml"
    params:
        entries=[(d, float(a), s) for d in DATASETS for a in ALPHAS for s in SEEDS],
        datasets=DATASETS,
    script:
        "../scripts/aggregate.py"
