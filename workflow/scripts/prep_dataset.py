from glov.pipeline import job, prepare_dataset

with job(snakemake) as params:
    prepare_dataset(params, snakemake.wildcards.dataset, snakemake.output[0])
