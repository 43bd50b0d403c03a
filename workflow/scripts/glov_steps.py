from glov.jobs.common import job, path_or_none
from glov.jobs.optimize import run_steps

with job(snakemake) as params:
    i, p = snakemake.input, snakemake.params
    run_steps(params, i.manifest, path_or_none(i.train), int(snakemake.wildcards.seed), p.steps,
              dict(zip(p.alphas, i.previous)), dict(zip(map(tuple, p.outputs), snakemake.output)))
