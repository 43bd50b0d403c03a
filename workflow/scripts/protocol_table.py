from glov.jobs.common import job
from glov.jobs.tables import write_protocol_table

with job(snakemake) as params:
    write_protocol_table(params, snakemake.params.entries, snakemake.output.md)
