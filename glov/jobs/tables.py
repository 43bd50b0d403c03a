"""Rule aggregate: the results tables, metrics, curves and plots of a run."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from glov import config as C
from glov.data import get_dataset_spec
from glov.io import read_json, write_json, write_text
from glov.jobs.common import manifest_path, track, vlm_spec
from glov.registry import ANSWER
from glov.stats import correctness_file


def lab_tasks(params: C.Params) -> list[str]:
    """The run's datasets that are lab tasks (held-out images of an offline source)."""
    from glov.data.sources import TASK_CLASSES

    return [d for d in params.data.datasets if get_dataset_spec(d, params.data.custom).bundled in TASK_CLASSES]

def write_lab_table(params: C.Params, rows: list[dict], records: dict | None = None, oracle_paths: Sequence[str] = ()) -> list[str]:
    """``results/tables/lab.md`` when the run has lab tasks; returns what it wrote. ``records``
    ((method, dataset, seed) -> result) and the oracle results give its controls and intervals."""
    from glov import paths, tables
    from glov.lab_vlm import TRAINING_RECORD

    tasks = lab_tasks(params)
    if not tasks:
        return []
    manifests = {d: read_json(manifest_path(params, d, params.seeds[0])) for d in tasks}
    chance = {d: 100.0 / len(m["classnames"]) for d, m in manifests.items()}
    sizes = "; ".join(f"{d} {' / '.join(str(len(m['splits'][s])) for s in ('train', 'val', 'test'))}" for d, m in manifests.items())
    alphas = C.glov_alphas(params)  # the LLM's templates: the GLOV chains of the smallest alpha, one per seed
    alpha = C.alpha_tag(min(alphas)) if alphas else None

    def spread(dataset: str, seed: int) -> dict | None:
        run = dict(dataset=dataset, vlm=params.vlm.name, llm=params.llm.name, alpha=alpha, seed=seed)
        return tables.template_spread(read_json(paths.STEP.format(step=paths.step_name(t), **run)) for t in range(1, params.optimizer.steps + 1))

    spreads = {d: {seed: spread(d, seed) for seed in params.seeds} for d in tasks} if alphas else {}
    record_path = Path(paths.VLM_DIR.format(vlm=params.vlm.name)) / TRAINING_RECORD
    trained = "untrained image tower: every accuracy is chance by construction"
    record = read_json(record_path) if record_path.exists() else {}
    if record.get("trained", "loss_per_epoch" in record):  # records of untrained towers say so
        images = ", ".join(f"{n} {s}" for s, n in record["n_images"].items())
        trained = (f"trained on {images} images ({record['n_captions']} distinct captions), {record['config']['epochs']} epochs, "
                   f"final loss {record['loss_per_epoch'][-1]:.3f}; the tasks use held-out images only")
    header = (
        "# Lab tasks: zero-shot test top-1 accuracy (%) of the offline lab VLM\n\n"
        f"VLM: {vlm_spec(params).label or params.vlm.name}; {trained}. LLM: {params.llm.name}. "
        f"{params.optimizer.steps} steps, {params.optimizer.candidates} candidates per step, alphas {list(params.steering.alphas)}, "
        f"seeds {list(params.seeds)}; mean ± std over seeds where there are several. Nothing here is tuned by hand.{shots_note(params)} "
        f"Images per split (fitness / val / test): {sizes}."
    )
    oracles = [read_json(p) for p in oracle_paths]
    controls = {d: tables.lab_controls(records or {}, oracles, d, list(params.seeds), params.ablation.bootstrap) for d in tasks}
    write_text(paths.LAB_TABLE, tables.lab_table(rows, chance, spreads, header, controls))
    return [paths.LAB_TABLE]

def result_records(entries: Sequence[tuple[str, float, int]], score_paths: Sequence[str], baseline_paths: Sequence[str]) -> dict:
    """(method, dataset, seed) -> the result a table cell comes from: GLOV's chosen chain, or the baseline's file."""
    from glov import tables

    chosen = tables.chosen_runs(tables.load_scores([(d, a, s, p) for (d, a, s), p in zip(entries, score_paths)]))
    records = {key: run.score for key, run in chosen.items()}
    for path in baseline_paths:
        result = read_json(path)
        records[result["method"], result["dataset"], int(result["seed"])] = result
    return records

def shots_note(params: C.Params) -> str:
    """A trained method's table says how many labelled images per class it learnt from."""
    if "llamp" not in params.methods:
        return ""
    shots = {d: C.split_sizes(params.data, d).shots for d in params.data.datasets}
    if len(set(shots.values())) == 1:  # data.datasets is never empty
        return f" LLaMP is trained on {next(iter(shots.values()))} labelled image(s) per class (the split the other methods use as fitness)."
    per = ", ".join(f"{d} {n}" for d, n in shots.items())
    return f" LLaMP is trained on the labelled split the other methods use as fitness: images per class {per}."

def aggregate_tables(
    params: C.Params, entries: Sequence[tuple[str, float, int]], score_paths: Sequence[str], baseline_paths: Sequence[str],
    oracle_paths: Sequence[str] = (),
) -> None:
    """``entries[i]`` = (dataset, alpha, seed) of GLOV's ``score_paths[i]``; baseline results name
    their own method, dataset and seed."""
    from glov import paths, tables

    spec = vlm_spec(params)
    header = (
        f"# GLOV results: test top-1 accuracy (%)\n\n"
        f"VLM: {spec.label or params.vlm.name}. LLM: {params.llm.name}. Steps: {params.optimizer.steps}, "
        f"{params.optimizer.candidates} candidates per step, alphas {list(C.glov_alphas(params))}, seeds {list(params.seeds)}."
        f" Mean ± std over seeds where there are several (methods that use no randomness run once).{shots_note(params)}"
    )
    with track(params, "aggregate", {}) as tracker:
        rows = tables.aggregate(
            [(d, a, s, p) for (d, a, s), p in zip(entries, score_paths)], list(baseline_paths),
            list(params.data.datasets), header, paths.TABLE_MD, paths.TABLE_CSV, paths.METRICS, paths.PLOT, paths.CURVE,
        )
        published = "glov_llava_ov" if spec.family == ANSWER else "glov_table1"  # the paper's numbers for this VLM family
        tables.write_paper_table(rows, spec.label or params.vlm.name, paths.PAPER_TABLE, published)
        records = result_records(entries, score_paths, baseline_paths)
        write_json(paths.CORRECT, correctness_file(records))
        lab = write_lab_table(params, rows, records, oracle_paths)
        for table in (paths.TABLE_MD, paths.PAPER_TABLE, *lab):
            tables.write_html_of(table)
        plots = [paths.PLOT.format(dataset=d) for d in params.data.datasets] if entries else []
        for artefact in (*lab, paths.TABLE_MD, paths.TABLE_CSV, paths.PAPER_TABLE, paths.METRICS, *plots):
            tracker.log_artifact(artefact)
        tracker.log_metrics(read_json(paths.METRICS))


def write_protocol_table(params: C.Params, entries: Sequence[tuple[str, str, float, int, str]], out: str | Path) -> None:
    """Rule protocol_table: ``entries`` are (variant, dataset, alpha, seed, score path) of every
    variant's chains; writes results/tables/protocol.md and its HTML page."""
    from glov import tables
    from glov.ablation import protocol_table

    chosen: dict[str, dict] = {}
    for variant in dict.fromkeys(v for v, *_ in entries):
        scores = tables.load_scores([(d, a, s, p) for v, d, a, s, p in entries if v == variant])
        chosen[variant] = {key: run.score for key, run in tables.chosen_runs(scores).items()}
    methods = [(m, tables.LABELS[m]) for m in (tables.GLOV, tables.GLOV_WO) if m in params.methods]
    header = (
        "# Protocol ablation\n\n"
        f"Each variant reruns the GLOV chains of {', '.join(params.data.datasets)} with seeds {', '.join(map(str, params.seeds))}: "
        "`clean` = every switch clean (the reference), `official` = every switch official, a switch's name = that switch "
        "official alone (docs/PROTOCOL.md). Accuracies are test top-1 (%), means over seeds; Δ is the variant minus clean, "
        f"mean over seeds, with a 95 % interval over seeds and test images ({params.ablation.bootstrap} two-level bootstrap "
        "resamples, glov.stats: seeds paired by number, then the test images, one draw per test set; widened for the few seeds), "
        "the number of seeds beside it; `*` marks an interval that excludes 0."
    )
    with track(params, "protocol_table", {"variants": list(chosen)}):
        write_text(out, protocol_table(chosen, list(params.data.datasets), methods, params.ablation.bootstrap, header,
                                       not_run_switches(params, list(chosen))))
        tables.write_html_of(out)


def not_run_switches(params: C.Params, variants: Sequence[str]) -> dict[str, str]:
    """Every switch without a row of its own in protocol.md, and why: it cannot act on these
    datasets (computed from them), or it is not among ablation.variants."""
    from glov.ablation import inert_switches
    from glov.data import as_given, get_dataset_spec, load_pools, normalise_classname
    from glov.jobs.common import answering
    from glov.protocol import SWITCHES

    fitness = {d: len(read_json(manifest_path(params, d, params.seeds[0]))["splits"]["train"]) for d in params.data.datasets}
    raw = {d: load_pools(get_dataset_spec(d, params.data.custom), params.data.root, as_given).classnames for d in params.data.datasets}
    inert = inert_switches(list(params.data.datasets), answering(params), fitness,
                           {d: any(normalise_classname(n) != n for n in names) for d, names in raw.items()})
    return {s: inert.get(s, "not among ablation.variants") for s in SWITCHES if s not in variants}
