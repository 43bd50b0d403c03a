from glov.jobs.common import job
from glov.jobs.tables import aggregate_tables

with job(snakemake) as params:
    aggregate_tables(params, snakemake.params.entries, snakemake.input.scores, snakemake.input.baselines, snakemake.input.oracles)
