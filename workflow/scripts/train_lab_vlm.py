from glov.jobs.common import job
from glov.jobs.models import train_lab_vlm

with job(snakemake) as params:
    train_lab_vlm(params, snakemake.output[0])
