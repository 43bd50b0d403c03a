from glov import paths
from glov.jobs.baselines import run_baselines
from glov.jobs.common import job, path_or_none

with job(snakemake) as params:
    i, p = snakemake.input, snakemake.params
    embeddings = {s: path_or_none(getattr(i, s)) for s in paths.SPLITS}
    run_baselines(params, p.seed, i.manifest, embeddings, dict(zip(p.styles, i.descriptions)), dict(zip(p.methods, snakemake.output)))
