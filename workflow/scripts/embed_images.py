from glov.jobs.common import job
from glov.jobs.embed import embed_images

with job(snakemake) as params:
    embed_images(params, snakemake.input.manifest, dict(zip(snakemake.params.splits, snakemake.output)))
