from glov.jobs.common import job, split_inputs
from glov.jobs.evaluate import score_runs

with job(snakemake) as params:
    i, p = snakemake.input, snakemake.params
    embeddings = split_inputs(i)
    score_runs(params, i.manifest, int(snakemake.wildcards.seed), dict(zip(p.alphas, i.final_steps)), embeddings, dict(zip(p.alphas, snakemake.output)))
