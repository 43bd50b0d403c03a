from glov.jobs.baselines import run_baselines
from glov.jobs.common import job, split_inputs

with job(snakemake) as params:
    i, p = snakemake.input, snakemake.params
    embeddings = split_inputs(i)
    run_baselines(params, p.seed, i.manifest, embeddings, dict(zip(p.styles, i.descriptions)), dict(zip(p.methods, snakemake.output)),
                  {"llamp": i.llamp[0]} if i.llamp else {})
