from glov.jobs.common import job
from glov.jobs.data import prepare_dataset

with job(snakemake) as params:
    seed = getattr(snakemake.wildcards, "split_seed", None)  # protocol.split_seed: official (one manifest per run seed)
    prepare_dataset(params, snakemake.wildcards.dataset, snakemake.output[0], None if seed is None else int(seed))
