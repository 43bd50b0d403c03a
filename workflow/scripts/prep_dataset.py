from glov.jobs.common import job
from glov.jobs.data import prepare_dataset

with job(snakemake) as params:
    prepare_dataset(params, snakemake.wildcards.dataset, snakemake.output[0])
