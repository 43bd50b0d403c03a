from glov.pipeline import export_bundled_dataset, job

with job(snakemake) as params:
    export_bundled_dataset(params, snakemake.params.dataset, snakemake.output[0])
