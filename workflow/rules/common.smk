# Validate params.yaml before any job is planned, then expose the helpers the rules use.
from glov import paths
from glov.config import alpha_tag, build, validate
from glov.data import get_dataset_spec
from glov.pipeline import check, lab_tasks, llm_spec, vlm_spec
from glov.resume import clear_stale_lock, record_lock_owner
from glov.tracking import end_workflow_run, start_workflow_run

config.update(validate(config))  # fills defaults; a bad key stops here with its name in the message
PARAMS = build(config)
check(PARAMS)
clear_stale_lock()  # a run killed with SIGKILL left Snakemake's lock: resume without --unlock

VLM = PARAMS.vlm.name
LLM = PARAMS.llm.name
ALPHAS = [alpha_tag(a) for a in PARAMS.steering.alphas]
SEEDS = list(PARAMS.seeds)
DATASETS = list(PARAMS.data.datasets)
LAB_TASKS = lab_tasks(PARAMS)
LAST_STEP = paths.step_name(PARAMS.optimizer.steps)
BUNDLED = {
    name: spec
    for name, spec in ((n, get_dataset_spec(n, PARAMS.data.custom)) for n in DATASETS)
    if spec.bundled
}


wildcard_constraints:
    dataset="[A-Za-z0-9_.-]+",
    split="train|val|test",
    step=r"\d{3}",
    alpha=r"[0-9.]+",
    seed=r"\d+",


def only(section, *keys):
    """The keys of a config section a rule's output depends on. Declared as `params:`, they make
    Snakemake rerun a job when they change, and not when an unrelated key of the section does."""
    return {k: config[section][k] for k in keys}


def gpus(*sections):
    """Snakemake's standard `gpu` resource: 1 for a job whose models run on CUDA. Executor plugins
    (SLURM, Kubernetes) request it per job; locally `--resources gpu=1` keeps one GPU job at a time."""
    return int(any(str(config[s]["device"]).startswith("cuda") for s in sections))


def run_wildcards(**extra):
    return dict(vlm=VLM, llm=LLM, **extra)


def get_dataset_dir(wildcards):
    """Bundled datasets are exported by a rule; user datasets are simply read (prep checks them)."""
    spec = BUNDLED.get(wildcards.dataset)
    return [f"{PARAMS.data.root}/{spec.subdir}"] if spec else []


def get_vlm_dir(wildcards=None):
    return [paths.VLM_DIR.format(vlm=VLM)] if vlm_spec(PARAMS).builder else []


def get_llm_dir(wildcards=None):
    spec = llm_spec(PARAMS)
    return [paths.LLM_DIR.format(llm=LLM)] if spec.wheel else []


def get_previous_step(wildcards):
    step = int(wildcards.step)
    if step == 0:
        return []
    return paths.STEP.format(**{**wildcards, "step": paths.step_name(step - 1)})


def get_scores():
    return [
        paths.SCORE.format(dataset=d, alpha=a, seed=s, **run_wildcards())
        for d in DATASETS
        for a in ALPHAS
        for s in SEEDS
    ]


def get_steps():
    """Every step JSON is a target, so deleting one reruns exactly that step and its dependants."""
    return [
        paths.STEP.format(dataset=d, alpha=a, seed=s, step=paths.step_name(t), **run_wildcards())
        for d in DATASETS
        for a in ALPHAS
        for s in SEEDS
        for t in range(PARAMS.optimizer.steps + 1)
    ]


def get_final_output():
    return [
        *get_steps(),
        paths.TABLE_MD,
        paths.TABLE_CSV,
        paths.PAPER_TABLE,
        paths.METRICS,
        *[paths.PLOT.format(dataset=d) for d in DATASETS],
        *[paths.CURVE.format(dataset=d, alpha=a) for d in DATASETS for a in ALPHAS],
    ]
