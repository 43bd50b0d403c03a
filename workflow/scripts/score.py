from glov.pipeline import job, score_run

with job(snakemake) as params:
    i = snakemake.input
    score_run(params, i.manifest, i.final_step, {"train": i.train, "val": i.val, "test": i.test}, snakemake.output[0])
