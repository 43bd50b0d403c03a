from glov.jobs.baselines import describe
from glov.jobs.common import job

with job(snakemake) as params:
    describe(params, snakemake.input.manifest, int(snakemake.wildcards.seed), dict(zip(snakemake.params.styles, snakemake.output)))
