from glov.jobs.common import job
from glov.jobs.llamp import train_job

with job(snakemake) as params:
    i = snakemake.input
    train_job(params, i.manifest, i.train[0] if i.train else None, i.descriptors, i.knowledge, snakemake.params.seed, snakemake.output[0])
