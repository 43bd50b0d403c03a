from glov.pipeline import cache_llm, job

with job(snakemake) as params:
    cache_llm(params, snakemake.output[0])
