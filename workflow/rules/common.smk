# Validate params.yaml before any job is planned, then expose the helpers the rules use.
from glov import paths, tracking_server
from glov.baselines import DESCRIPTION_STYLE, DETERMINISTIC, LLM_METHODS, method_params
from glov.config import BASELINE_METHODS, alpha_tag, build, canonical, glov_alphas, split_sizes, step_blocks, validate
from glov.data import EXPORT_FORMAT, get_dataset_spec
from glov.data.integrity import listing_digest
from glov.data.sources import SOURCES_VERSION
from glov.jobs.common import answering, check, llm_spec, vlm_spec
from glov.jobs.tables import lab_tasks
from glov.ablation import REFERENCE, own_data, own_embeddings, shares_chains, variant_protocol, with_variant
from glov.paths import of_variant
from glov.official import OFFICIAL_DIR, PINNED, source_dir
from glov.released import RELEASED_METHODS, RELEASED_PATH
from glov.protocol import chain_dataset, is_official, rule_switches, split_seed
from glov.resume import clear_stale_lock, own_locks_only, record_lock_owner, steps_to_request
from glov.tracking import end_workflow_run, start_workflow_run

config.update(validate(config))  # fills defaults; a bad key stops here with its name in the message
PARAMS = build(config)
check(PARAMS)
try:
    from snakemake.persistence.file import FilePersistence

    own_locks_only(FilePersistence)  # Snakemake 9.27 ends a run by deleting every run's lock files
except ImportError:  # another layout: its own unlocking is left as it is
    pass
if not (workflow.remote_exec or workflow.subprocess_exec):  # the main process, not a job
    clear_stale_lock()  # a run killed with SIGKILL left its lock: resume without --unlock (unless its jobs ran on a cluster)


def own_lock_files():
    """The lock files this Snakemake process wrote (the file persistence keeps their paths; with
    another backend none is known, and its locks are never removed automatically)."""
    return list(getattr(workflow.persistence, "_lockfile", {}).values())


VLM = PARAMS.vlm.name
LLM = PARAMS.llm.name
ALPHAS = [alpha_tag(a) for a in glov_alphas(PARAMS)]  # the GLOV chains the selected methods need
BASELINES = [m for m in PARAMS.methods if m in BASELINE_METHODS]
STYLES = sorted({DESCRIPTION_STYLE[m] for m in BASELINES if m in DESCRIPTION_STYLE})  # written by one describe_classes job
SEEDS = list(PARAMS.seeds)
DATASETS = list(PARAMS.data.datasets)
CHAINS = list(dict.fromkeys(chain_dataset(d, PARAMS.protocol) for d in DATASETS))  # the datasets GLOV optimises on
LAB_TASKS = lab_tasks(PARAMS)
ANSWERING = answering(PARAMS)  # a LLaVA-style VLM scores prompts on the images: no embedding cache
ORACLE_TASKS = [] if ANSWERING else LAB_TASKS  # an answering VLM would answer every test image once per template
BASE_KEY = "base_prompt" if ANSWERING else "base_template"  # what step 0 scores
LAST_STEP = paths.step_name(PARAMS.optimizer.steps)
SPLITS = list(paths.SPLITS)
SPLIT_PER_SEED = is_official(PARAMS.protocol, "split_seed")  # official: each run seed draws its own splits
# Where a dataset's manifest and embedding cache live; per seed, the rules that have a {seed} read those of their seed
MANIFEST, EMBEDDINGS = (paths.SEEDED_MANIFEST, paths.SEEDED_EMBEDDINGS) if SPLIT_PER_SEED else (paths.MANIFEST, paths.EMBEDDINGS)
SEED_MANIFEST = MANIFEST.replace("{split_seed}", "{seed}")
SHOTS = {d: split_sizes(PARAMS.data, d).shots for d in DATASETS}  # LLaMP trains on the run's labelled split
# The protocol ablation (config/ablation_protocol.yaml): clean, the reference, then the variants asked for
VARIANTS = list(dict.fromkeys([REFERENCE, *PARAMS.ablation.variants])) if PARAMS.ablation.variants else []
V_MANIFEST, V_EMBEDDINGS = of_variant(paths.SEEDED_MANIFEST), of_variant(paths.SEEDED_EMBEDDINGS)
STEP_BLOCKS = step_blocks(PARAMS.optimizer.steps, PARAMS.optimizer.steps_per_job) if ALPHAS else []
BUNDLED = {
    name: spec
    for name, spec in ((n, get_dataset_spec(n, PARAMS.data.custom)) for n in DATASETS)
    if spec.bundled
}


localrules:
    fetch_official,  # downloads: on a cluster, from the submitting node (compute nodes are often offline)
    fetch_released,


wildcard_constraints:
    dataset="[A-Za-z0-9_-][A-Za-z0-9_.-]*",  # as the schema's dataset_name: never ".", ".." or hidden
    split="train|val|test",
    split_seed=r"\d+",
    variant="|".join(VARIANTS) or "^$",
    step=r"\d{3}",
    alpha=r"[0-9.]+",
    seed=r"\d+",
    shots=r"\d+",
    method="|".join(BASELINE_METHODS),


def only(section, *keys):
    """The keys of a config section a rule's output depends on. Declared as `params:`, they make
    Snakemake rerun a job when they change, and not when an unrelated key of the section does.
    Nested mappings are key-sorted: the order keys are written in (or merged from a --configfile)
    must not look like a change."""
    return canonical({k: config[section][k] for k in keys})


def gpus(*sections):
    """Snakemake's standard `gpu` resource: 1 for a job whose models run on CUDA. Executor plugins
    (SLURM, Kubernetes) request it per job; locally `--resources gpu=1` keeps one GPU job at a time."""
    return int(any(str(config[s]["device"]).startswith("cuda") for s in sections))


def run_wildcards(**extra):
    return dict(vlm=VLM, llm=LLM, **extra)


def variant_switches(rule):
    """A variant job's ``protocol`` params: its switches of ``rule`` (they follow from its name)."""
    return lambda w: {k: v for k, v in variant_protocol(w.variant).items() if k in rule_switches(rule)}


def variant_manifest(w):
    if not own_data(w.variant, config["protocol"]):
        return SEED_MANIFEST.format(dataset=w.dataset, seed=w.seed)
    return V_MANIFEST.format(variant=w.variant, dataset=w.dataset, split_seed=split_seed(with_variant(PARAMS, w.variant), int(w.seed)))


def variant_embeddings(split):
    def inputs(w):
        if ANSWERING:
            return []
        if not own_embeddings(w.variant, config["protocol"]):
            return embeddings(split).format(dataset=w.dataset, vlm=w.vlm, seed=w.seed)
        seed = split_seed(with_variant(PARAMS, w.variant), int(w.seed))
        return V_EMBEDDINGS.format(variant=w.variant, dataset=w.dataset, vlm=w.vlm, split=split, split_seed=seed)

    return inputs


def variant_final_steps(w):
    """The last step of every alpha chain a variant's (dataset, seed) scores."""
    chain = chain_dataset(w.dataset, with_variant(PARAMS, w.variant).protocol)
    step = paths.STEP if shares_chains(w.variant, config["protocol"]) else of_variant(paths.STEP)
    return [step.format(variant=w.variant, dataset=chain, alpha=a, seed=w.seed, step=LAST_STEP, **run_wildcards()) for a in ALPHAS]


def variant_scores():
    """(variant, dataset, alpha, seed, score path) of every chain of the ablation."""
    return [
        (v, d, float(a), s, of_variant(paths.SCORE).format(variant=v, dataset=d, alpha=a, seed=s, **run_wildcards()))
        for v in VARIANTS
        for d in DATASETS
        for a in ALPHAS
        for s in SEEDS
    ]


OFFICIAL_FILES = [str(source_dir(OFFICIAL_DIR) / p) for p in PINNED]  # glov fetch-official (rule fetch_official)


def official_sources(protocol, rule):
    """The released code's source files a job reads its wording from (glov.official): the official
    meta-prompt (rule glov_steps, and random search in rule baselines, which asks as GLOV's step 1
    does), and an answering VLM's official base prompt (glov_steps, baselines)."""
    chats = rule == "glov_steps" or (rule == "baselines" and "random_search" in BASELINES)
    needed = (protocol["meta_prompt"] == "official" and chats) or (
        protocol["llava_prompt"] == "official" and ANSWERING and rule in ("glov_steps", "baselines"))
    return OFFICIAL_FILES if needed else []


def variant_sources(rule):
    return lambda w: official_sources(variant_protocol(w.variant), rule)


def variant_embed_manifest(w):
    """The manifest a variant's embedding job reads: its own, or (same splits) the run's."""
    if own_data(w.variant, config["protocol"]):
        return V_MANIFEST.format(variant=w.variant, dataset=w.dataset, split_seed=w.split_seed)
    return MANIFEST.format(dataset=w.dataset, split_seed=w.split_seed)


def get_dataset_dir(wildcards):
    """Bundled datasets are exported by a rule; user datasets are simply read (prep checks them)."""
    spec = BUNDLED.get(wildcards.dataset)
    return [f"{PARAMS.data.root}/{spec.subdir}"] if spec else []


def dataset_listing(wildcards):
    """A hash of the names and sizes of a user dataset's files (see glov.data.integrity)."""
    return listing_digest(get_dataset_spec(wildcards.dataset, PARAMS.data.custom), PARAMS.data.root)


def embeddings(split):
    """The cached image embeddings a job reads (none for an answering VLM)."""
    return [] if ANSWERING else EMBEDDINGS.replace("{split}", split).replace("{split_seed}", "{seed}")


def get_vlm_dir(wildcards=None):
    return [paths.VLM_DIR.format(vlm=VLM)] if vlm_spec(PARAMS).builder else []


def get_llm_dir(wildcards=None):
    spec = llm_spec(PARAMS)
    return [paths.LLM_DIR.format(llm=LLM)] if spec.wheel else []


def block_name(block):
    return f"{paths.step_name(block[0])}-{paths.step_name(block[-1])}"


def block_rule(block):
    """One rule per block of steps; with all steps in one job it is simply `glov_steps`."""
    return "glov_steps" if len(STEP_BLOCKS) == 1 else f"glov_steps_{block_name(block).replace('-', '_')}"


def block_outputs(block):
    """The step JSON of every alpha chain and step of the block (the run's other wildcards stay)."""
    return [paths.STEP.replace("{alpha}", a).replace("{step}", paths.step_name(t)) for a in ALPHAS for t in block]


def previous_steps(block):
    """The step before the block, of every alpha chain (in ALPHAS order); none for step 0."""
    return [paths.STEP.replace("{alpha}", a).replace("{step}", paths.step_name(block[0] - 1)) for a in ALPHAS] if block[0] else []


def block_runtime(block):
    """Minutes a cluster should grant the job: optimizer.minutes_per_step per step, plus loading."""
    return 10 + int(PARAMS.optimizer.minutes_per_step * len(block))


def get_scores():
    return [
        paths.SCORE.format(dataset=d, alpha=a, seed=s, **run_wildcards())
        for d in DATASETS
        for a in ALPHAS
        for s in SEEDS
    ]


def get_baselines():
    """Methods without randomness run for the first seed only."""
    return [
        paths.BASELINE.format(dataset=d, method=m, seed=s, **run_wildcards())
        for d in DATASETS
        for m in BASELINES
        for s in (SEEDS[:1] if m in DETERMINISTIC and not SPLIT_PER_SEED else SEEDS)
    ]


def seed_baselines(wildcards):
    """The baseline results of one (dataset, seed) (the fixed ones: of the first seed)."""
    return [paths.BASELINE.format(dataset=wildcards.dataset, method=m, seed=wildcards.seed if m not in DETERMINISTIC or SPLIT_PER_SEED else SEEDS[0],
                                  **run_wildcards()) for m in BASELINES]


def get_oracles():
    return [paths.ORACLE.format(dataset=d, seed=s, **run_wildcards()) for d in ORACLE_TASKS for s in SEEDS]


def baseline_groups():
    """(rule, methods, seeds) of each baselines rule: one job per (dataset, seed) scores every
    baseline; S-TEMP and DS-TEMP, which use no randomness, run once, in the first seed's job, and
    the later seeds' jobs score the rest (the {seed} wildcard is limited to each rule's ``seeds``)."""
    seeded = [m for m in BASELINES if m not in DETERMINISTIC or SPLIT_PER_SEED]  # own splits per seed: all per seed
    fixed = [m for m in BASELINES if m not in seeded]
    if not fixed:
        return [("baselines", seeded, SEEDS)] if seeded else []
    later = [("baselines_later_seeds", seeded, SEEDS[1:])] if seeded and len(SEEDS) > 1 else []
    return [("baselines", fixed + seeded, SEEDS[:1])] + later


def baseline_outputs(methods):
    return [paths.BASELINE.replace("{method}", m) for m in methods]


def llamp_trained(w):
    """What LLaMP learnt for a (dataset, seed): trained on the dataset's own number of shots."""
    return [paths.LLAMP.format(dataset=w.dataset, vlm=w.vlm, llm=w.llm, shots=SHOTS[w.dataset], seed=w.seed)]


def description_inputs(methods):
    """The LLM descriptions the methods score, one file per style (of the job's seed)."""
    return [paths.DESCRIPTIONS.replace("{style}", s) for s in sorted({DESCRIPTION_STYLE[m] for m in methods if m in DESCRIPTION_STYLE})]


def baselines_params(methods):
    """The params each method's result depends on: a change reruns the job (the result store
    then computes only the methods whose params changed)."""
    return canonical({m: method_params(config, m, BASE_KEY) for m in methods})


def get_steps():
    """Each chain's last step, and any step file a finished chain has lost (see glov.resume)."""
    return steps_to_request(
        [paths.STEP.format(dataset=d, alpha=a, seed=s, step=paths.step_name(t), **run_wildcards()) for t in range(PARAMS.optimizer.steps + 1)]
        for d in CHAINS
        for a in ALPHAS
        for s in SEEDS
    )


def final_steps(wildcards):
    """The last step of every alpha chain whose prompts a (dataset, seed) scores (see chain_dataset)."""
    chain = chain_dataset(wildcards.dataset, PARAMS.protocol)
    return [paths.STEP.format(dataset=chain, alpha=a, seed=wildcards.seed, step=LAST_STEP, **run_wildcards()) for a in ALPHAS]


def get_final_output():
    return [
        *get_steps(),
        *[t for md in [paths.TABLE_MD, paths.PAPER_TABLE, *([paths.LAB_TABLE] if LAB_TASKS else [])] for t in (md, paths.html_of(md))],
        paths.TABLE_CSV,
        paths.METRICS,
        paths.CORRECT,
        *get_plots(),
        *[paths.CURVE.format(dataset=d, alpha=a) for d in DATASETS for a in ALPHAS],
        *([paths.PROTOCOL_TABLE, paths.html_of(paths.PROTOCOL_TABLE)] if VARIANTS else []),
    ]


def get_plots():
    """Optimisation curves exist only where GLOV runs."""
    return [paths.PLOT.format(dataset=d) for d in DATASETS] if ALPHAS else []
