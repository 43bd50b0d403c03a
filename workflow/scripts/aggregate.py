from glov.pipeline import aggregate_tables, job

with job(snakemake) as params:
    aggregate_tables(params, snakemake.params.entries, snakemake.input.scores, snakemake.input.baselines)
