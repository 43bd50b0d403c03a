from glov.jobs.common import job
from glov.jobs.data import export_bundled_dataset

with job(snakemake) as params:
    export_bundled_dataset(params, snakemake.params.dataset, snakemake.output[0])
