# GLOV workflow: dataset prep -> image-embedding cache -> GLOV steps (every alpha chain of a dataset and seed per job) -> scoring -> tables.
# All logic lives in the `glov` package; this file and workflow/rules/*.smk only wire it.
from snakemake.utils import min_version

min_version("9.0")


configfile: "params.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/optimize.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/baselines.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/ablation.smk"


onstart:
    record_lock_owner(own_lock_files(), cluster=not workflow.local_exec)  # a cluster run's jobs outlive it
    tracking_server.stop_orphaned()  # of a run killed before its onerror
    if PARAMS.tracking.mlflow:
        if tracking_server.wanted(PARAMS.tracking.server, cluster=not workflow.local_exec):
            tracking_server.start(PARAMS.tracking.server_host)  # jobs on other nodes: not one SQLite file over NFS
        start_workflow_run(config, PARAMS.tracking.experiment)


onsuccess:
    end_workflow_run("FINISHED")
    tracking_server.stop()


onerror:
    end_workflow_run("FAILED")
    tracking_server.stop()


rule all:
    input:
        get_final_output(),
