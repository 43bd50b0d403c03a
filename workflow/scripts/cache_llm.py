from glov.jobs.common import job
from glov.jobs.models import cache_llm

with job(snakemake) as params:
    cache_llm(params, snakemake.output[0])
