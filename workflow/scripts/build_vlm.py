from glov.pipeline import build_vlm, job

with job(snakemake) as params:
    build_vlm(params, snakemake.output[0])
