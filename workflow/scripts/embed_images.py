from glov.pipeline import embed_images, job

with job(snakemake) as params:
    embed_images(params, snakemake.input.manifest, snakemake.wildcards.split, snakemake.output[0])
