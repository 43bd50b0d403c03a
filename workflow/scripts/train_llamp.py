from glov.jobs.common import job, path_or_none
from glov.jobs.llamp import train_job

with job(snakemake) as params:
    i = snakemake.input
    train_job(params, i.manifest, path_or_none(i.train), i.descriptors, i.knowledge, snakemake.params.seed, snakemake.output[0])
