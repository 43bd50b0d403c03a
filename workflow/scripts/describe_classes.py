from glov.pipeline import describe, job

with job(snakemake) as params:
    describe(params, snakemake.input.manifest, snakemake.wildcards.style, int(snakemake.wildcards.seed), snakemake.output[0])
