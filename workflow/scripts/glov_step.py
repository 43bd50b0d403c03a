from glov.pipeline import job, run_step

with job(snakemake) as params:
    w = snakemake.wildcards
    previous = snakemake.input.previous or None
    run_step(params, snakemake.input.manifest, snakemake.input.train, float(w.alpha), int(w.seed), int(w.step), previous, snakemake.output[0])
