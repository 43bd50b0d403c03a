from glov.jobs.common import job
from glov.released import fetch_released

with job(snakemake):
    fetch_released(snakemake.output[0])
