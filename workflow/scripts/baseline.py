from glov.pipeline import job, path_or_none, run_baseline

with job(snakemake) as params:
    i, w = snakemake.input, snakemake.wildcards
    embeddings = {s: path_or_none(getattr(i, s)) for s in ("train", "val", "test")}
    run_baseline(params, w.method, int(w.seed), i.manifest, embeddings, path_or_none(i.descriptions), snakemake.output[0])
