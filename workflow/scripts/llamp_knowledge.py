from glov.jobs.common import job
from glov.jobs.llamp import build_knowledge

with job(snakemake) as params:
    build_knowledge(params, snakemake.input.manifest, snakemake.output[0])
