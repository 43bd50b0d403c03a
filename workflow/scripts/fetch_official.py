from glov.jobs.common import job
from glov.official import fetch_official

with job(snakemake):
    fetch_official()
