from glov.pipeline import job, path_or_none, score_run

with job(snakemake) as params:
    i = snakemake.input
    embeddings = {s: path_or_none(getattr(i, s)) for s in ("train", "val", "test")}
    score_run(params, i.manifest, i.final_step, embeddings, snakemake.output[0])
