from glov.jobs.common import job, path_or_none
from glov.jobs.evaluate import oracle

with job(snakemake) as params:
    i = snakemake.input
    oracle(params, i.manifest, path_or_none(i.test), snakemake.params.seed, i.final_steps, i.baselines, snakemake.output[0])
