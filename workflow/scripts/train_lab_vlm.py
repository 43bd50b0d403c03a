from glov.pipeline import job, train_lab_vlm

with job(snakemake) as params:
    train_lab_vlm(params, snakemake.output[0])
