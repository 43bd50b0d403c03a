"""One function per workflow job, one module per rule family (data, models, embed, optimize,
evaluate, baselines, tables). Each function takes the validated params and explicit paths, so the
Snakemake scripts stay a few lines and every job can also be run (and tested) without Snakemake."""
