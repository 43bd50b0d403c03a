from glov.pipeline import describe, job

with job(snakemake) as params:
    describe(params, snakemake.input.manifest, int(snakemake.wildcards.seed), dict(zip(snakemake.params.styles, snakemake.output)))
