from glov.pipeline import job, run_baseline

with job(snakemake) as params:
    i, w = snakemake.input, snakemake.wildcards
    embeddings = {"train": i.train, "val": i.val, "test": i.test}
    run_baseline(params, w.method, int(w.seed), i.manifest, embeddings, i.descriptions[0] if i.descriptions else None, snakemake.output[0])
