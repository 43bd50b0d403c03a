from glov import paths
from glov.jobs.common import job, path_or_none
from glov.jobs.evaluate import score_runs

with job(snakemake) as params:
    i, p = snakemake.input, snakemake.params
    embeddings = {s: path_or_none(getattr(i, s)) for s in paths.SPLITS}
    score_runs(params, i.manifest, int(snakemake.wildcards.seed), dict(zip(p.alphas, i.final_steps)), embeddings, dict(zip(p.alphas, snakemake.output)))
