from glov.jobs.common import job, path_or_none
from glov.jobs.llamp import train_job

with job(snakemake) as params:
    i, o = snakemake.input, snakemake.output
    train = list(i.train) or [None] * len(i.manifests)  # no embedding cache for an answering VLM
    train_job(params, list(i.manifests), [path_or_none(t) for t in train], list(i.descriptors), snakemake.params.seeds, o.knowledge, list(o.trained))
