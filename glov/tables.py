"""Aggregation: per-run scores -> method x dataset tables, DVC metrics, curves and plots.

Method selection happens here, on val only: "GLOV" is the alpha > 0 with the best val accuracy
(ties -> smaller alpha), per dataset and seed; "GLOV w/o guidance" is alpha = 0. Every other
method (S-TEMP, DS-TEMP, LLM-Opt, ProAPO, CuPL, DCLIP, AWT, LLaMP) comes from its own result file.
"""

from __future__ import annotations

import io
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from glov.io import read_json, write_json, write_text
from glov.stats import Interval, Side, difference, format_interval, interval_seed, method_side

S_TEMP, DS_TEMP, LLM_OPT, GLOV_WO, GLOV = "s_temp", "ds_temp", "llm_opt", "glov_wo_guidance", "glov"
CUPL, DCLIP, AWT = "cupl", "dclip", "awt"
LABELS = {  # also the order of the table rows
    S_TEMP: "S-TEMP (a photo of a {}.)",
    DS_TEMP: "DS-TEMP (80-template ensemble)",
    LLM_OPT: "LLM-Opt",
    "random_search": "Random search (control: no feedback, no steering)",
    "proapo": "ProAPO (evolved templates + descriptions)",
    "llamp": "LLaMP (trained on the labelled split)",
    CUPL: "CuPL (LLM descriptions)",
    DCLIP: "DCLIP (LLM descriptors)",
    AWT: "AWT (views + descriptions + OT)",
    GLOV_WO: "GLOV w/o guidance (alpha=0)",
    GLOV: "GLOV (alpha chosen on val)",
    "glov_wo_guidance_released": "GLOV w/o guidance, released prompts",
    "glov_released": "GLOV, released prompts",
}
RELEASED_OF = {"glov_wo_guidance_released": GLOV_WO, "glov_released": GLOV}  # the published row each replays


@dataclass(frozen=True)
class RunScore:
    dataset: str
    alpha: float
    seed: int
    score: Mapping


def load_scores(entries: Iterable[tuple[str, float, int, str | Path]]) -> list[RunScore]:
    return [RunScore(d, float(a), int(s), read_json(p)) for d, a, s, p in entries]


def per_seed_results(scores: list[RunScore], baselines: Iterable[Mapping] = ()) -> dict[str, dict[str, dict[int, float]]]:
    """method -> dataset -> seed -> test accuracy. ``baselines`` are the results of rule baseline
    (each names its method, dataset and seed); GLOV's come from the per-alpha runs."""
    out: dict[str, dict[str, dict[int, float]]] = {m: {} for m in LABELS}
    for b in baselines:
        out[b["method"]].setdefault(b["dataset"], {})[int(b["seed"])] = b["test_acc"]
    for (method, dataset, seed), run in chosen_runs(scores).items():
        out[method].setdefault(dataset, {})[seed] = run.score["test_acc"]
    return {m: v for m, v in out.items() if v}


def chosen_runs(scores: list[RunScore]) -> dict[tuple[str, str, int], RunScore]:
    """(method, dataset, seed) -> the chain whose result it reports: alpha = 0 for GLOV w/o
    guidance, the alpha > 0 with the best val accuracy (ties -> smaller alpha) for GLOV."""
    out: dict[tuple[str, str, int], RunScore] = {}
    for dataset, seed in sorted({(r.dataset, r.seed) for r in scores}):
        runs = sorted((r for r in scores if r.dataset == dataset and r.seed == seed), key=lambda r: r.alpha)
        for r in runs:
            if r.alpha == 0:
                out[GLOV_WO, dataset, seed] = r
        guided = [r for r in runs if r.alpha > 0]
        if guided:
            out[GLOV, dataset, seed] = max(guided, key=lambda r: (r.score["val_acc"], -r.alpha))
    return out


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summary_rows(results: Mapping[str, Mapping[str, Mapping[int, float]]], datasets: list[str]) -> list[dict]:
    rows = []
    for method, by_dataset in results.items():
        for dataset in datasets:
            seeds = by_dataset.get(dataset, {})
            if seeds:
                m, s = mean_std([seeds[k] for k in sorted(seeds)])
                rows.append({"method": method, "dataset": dataset, "mean": round(m, 2), "std": round(s, 2), "n_seeds": len(seeds)})
        means = [r["mean"] for r in rows if r["method"] == method]
        if len(means) == len(datasets):
            rows.append({"method": method, "dataset": "mean", "mean": round(statistics.fmean(means), 2), "std": 0.0, "n_seeds": 0})
    return rows


def to_csv(rows: list[dict]) -> str:
    out = io.StringIO()
    out.write("method,dataset,mean,std,n_seeds\n")
    for r in rows:
        out.write(f"{r['method']},{r['dataset']},{r['mean']:.2f},{r['std']:.2f},{r['n_seeds']}\n")
    return out.getvalue()


def to_markdown(rows: list[dict], datasets: list[str], header: str) -> str:
    cols = datasets + ["mean"]
    lines = [header, "", "| method | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for method in dict.fromkeys(r["method"] for r in rows):
        cells = []
        for col in cols:
            r = next((r for r in rows if r["method"] == method and r["dataset"] == col), None)
            cells.append("-" if r is None else f"{r['mean']:.1f}" + (f" ± {r['std']:.1f}" if r["n_seeds"] > 1 else ""))
        lines.append(f"| {LABELS[method]} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def load_published(name: str = "glov_table1") -> dict:
    from importlib import resources

    import yaml

    return yaml.safe_load(resources.files("glov.published").joinpath(f"{name}.yaml").read_text())


def paper_table(rows: list[dict], vlm_label: str, published: Mapping | None = None) -> str:
    """Our numbers next to the paper's, per cell ``ours / paper (ours - paper)``; ``-`` where we
    have no number. Only the paper's datasets appear; a method the paper has no row for (one we
    ran beside it) gets ``ours / -``, never a guess. Our mean is taken over the paper's datasets,
    and only for a method that has all of them (other datasets we ran do not enter it)."""
    published = published or load_published()
    cols = published["datasets"]
    ours = {(r["method"], r["dataset"]): r["mean"] for r in rows if r["dataset"] != "mean"}
    paper_datasets = published.get("mean_over") or [d for d in cols if d != "mean"]  # a paper that gives only its mean names them
    unpublished = [m for m in LABELS if m not in published["methods"] and m not in RELEASED_OF and any((m, d) in ours for d in paper_datasets)]
    for method in [*published["methods"], *RELEASED_OF, *unpublished]:
        if all((method, d) in ours for d in paper_datasets):
            ours[(method, "mean")] = round(statistics.fmean(ours[(method, d)] for d in paper_datasets), 2)
    lines = [
        f"# {published.get('title', 'Paper Table 1, side by side')}: ours / published (difference)",
        "",
        f"Published: {published['vlm']}. Ours: {vlm_label}."
        + ("" if vlm_label == published["vlm"] else " The models differ, so the differences say nothing about the method;"
           f" run {published.get('config', 'config/paper.yaml')} to compare like with like."),
        "",
        "| method | " + " | ".join(cols) + " |",
        "|---|" + "---|" * len(cols),
    ]
    replays = [(m, published["methods"][of]) for m, of in RELEASED_OF.items() if of in published["methods"] and any(k[0] == m for k in ours)]
    others = [(m, [None] * len(cols)) for m in unpublished]
    for method, numbers in [*published["methods"].items(), *replays, *others]:  # the released prompts beside the row they replay
        cells = []
        for col, theirs in zip(cols, numbers):
            mine = ours.get((method, col))
            if theirs is None:
                cells.append("-" if mine is None else f"{mine:.1f} / -")
            else:
                cells.append(f"- / {theirs:.1f}" if mine is None else f"{mine:.1f} / {theirs:.1f} ({mine - theirs:+.1f})")
        lines.append(f"| {LABELS[method]} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_paper_table(rows: list[dict], vlm_label: str, out: str | Path, published: str = "glov_table1") -> None:
    write_text(out, paper_table(rows, vlm_label, load_published(published)))


WORDING_MATTERS = 5.0  # points of 1-shot accuracy between the best and worst LLM template
RESOLUTION_TARGET = 1.5  # points: the largest interval half-width docs/LAB.md accepts for a difference of two methods


def template_spread(step_records: Iterable[Mapping], n: int = 20) -> dict | None:
    """Min, max and spread of the 1-shot train accuracy of the first ``n`` LLM templates that
    could be scored (in the order they were generated): does wording matter to this VLM?"""
    accs = [c["accuracy"] for rec in step_records for c in rec.get("candidates", []) if c.get("status") == "scored"][:n]
    if not accs:
        return None
    return {"n": len(accs), "min": min(accs), "max": max(accs), "spread": round(max(accs) - min(accs), 2)}


def _cell(rows: list[dict], method: str, dataset: str) -> dict | None:
    return next((r for r in rows if r["method"] == method and r["dataset"] == dataset), None)


def _fmt(row: dict | None) -> str:
    return "-" if row is None else f"{row['mean']:.1f}" + (f" ± {row['std']:.1f}" if row["n_seeds"] > 1 else "")


LAB_PAIRS = ((GLOV, S_TEMP), (GLOV_WO, S_TEMP), (GLOV, GLOV_WO), (GLOV_WO, "random_search"))  # the differences lab.md gives intervals for


@dataclass(frozen=True)
class Controls:
    """What calibrates a lab task: the test-chosen oracle template (mean over seeds) and the
    two-level intervals (:mod:`glov.stats`) of the method differences in :data:`LAB_PAIRS`."""

    oracle: float | None
    n_templates: int
    intervals: Mapping[tuple[str, str], Interval]
    wordings: Mapping[str, float] = field(default_factory=dict)  # diagnostic wording -> test accuracy, mean over seeds


def lab_controls(records: Mapping[tuple[str, str, int], Mapping], oracles: Sequence[Mapping], task: str, seeds: Sequence[int],
                 resamples: int) -> Controls:
    """``records[(method, task, seed)]``: the result a table cell comes from (with ``test_correct``).
    A method without randomness, run once (S-TEMP), is constant across the other side's seeds; the
    others are paired by seed (:func:`glov.stats.difference`)."""
    intervals = {}
    for a, b in LAB_PAIRS:
        sides = [_side(records, method, task, seeds) for method in (a, b)]
        if all(sides):
            intervals[a, b] = difference(*sides, resamples, interval_seed("lab", f"{a}-{b}", task))
    mine = [o for o in oracles if o["dataset"] == task]
    worded = [dict(o["wordings"]) for o in mine if "wordings" in o]  # oracle files written before the wordings have none
    wordings = {w: statistics.fmean(o[w] for o in worded) for w in (worded[0] if worded else {}) if all(w in o for o in worded)}
    return Controls(statistics.fmean(o["test_acc"] for o in mine) if mine else None, max((o["n_templates"] for o in mine), default=0),
                    intervals, wordings)


def _side(records: Mapping[tuple[str, str, int], Mapping], method: str, task: str, seeds: Sequence[int]) -> Side | None:
    """A method's per-seed correctness records, or None when it has none (a method not run, or
    results written before ``test_correct`` existed)."""
    found = {s: records[method, task, s] for s in seeds if (method, task, s) in records}
    if not all("test_correct" in r for r in found.values()):
        return None
    return method_side(method, {s: (r["test_correct"], r["test_set"]) for s, r in found.items()})


def _verdict(a: str, b: str, iv: Interval) -> str:
    """One sentence on ``a - b`` from its interval: better or worse only when it excludes 0, and
    never a verdict about the methods from one seed (the task's line then says why)."""
    cell = format_interval(iv)
    if iv.mean == iv.low == iv.high == 0:
        return f"{a} answers every test image as {b} ({cell})."
    if not iv.seeds_covered:
        return f"{a} − {b}: {cell}."
    return f"{a} {'beats' if iv.low > 0 else 'is worse than' if iv.high < 0 else 'cannot be told apart from'} {b} ({cell})."


def _images_only(c: Controls) -> str:
    """A half-width from one seed leaves the seeds' noise out: it says nothing about the design's resolution."""
    return "" if all(iv.seeds_covered for iv in c.intervals.values()) else " (1 seed: images only)"


def _short(method: str) -> str:
    return {GLOV: "GLOV", GLOV_WO: "GLOV w/o guidance", S_TEMP: "S-TEMP", "random_search": "random search"}[method]


def lab_table(rows: list[dict], chance: Mapping[str, float], spreads: Mapping[str, Mapping[int, dict | None]], header: str,
              controls: Mapping[str, Controls] | None = None) -> str:
    """The lab tasks' accuracies beside chance, how much wording matters (per seed of the alpha = 0
    chain), and a plain verdict per task computed from the numbers (GLOV beats S-TEMP or it does not)."""
    methods = [m for m in LABELS if any(r["method"] == m for r in rows)]
    lines = [header, "", "| task | chance | " + " | ".join(LABELS[m] for m in methods) + " |", "|---|---|" + "---|" * len(methods)]
    for task in chance:
        lines.append(f"| {task} | {chance[task]:.1f} | " + " | ".join(_fmt(_cell(rows, m, task)) for m in methods) + " |")
    lines += ["", "## Does the wording of the prompt matter?", "",
              f"1-shot train accuracy of the first LLM-generated templates that could be scored (alpha = 0, each seed; "
              f"a difference of {WORDING_MATTERS:.0f} points or more counts as mattering).", "",
              "| task | seed | templates | min | max | spread (max - min) |", "|---|---|---|---|---|---|"]
    for task in chance:
        for seed, sp in sorted(spreads.get(task, {}).items()):
            lines.append(f"| {task} | {seed} | 0 | - | - | - |" if sp is None else
                         f"| {task} | {seed} | {sp['n']} | {sp['min']:.1f} | {sp['max']:.1f} | {sp['spread']:.1f} |")
    controls = controls or {}
    if controls:
        lines += ["", "## Controls and intervals", "",
                  "Oracle: the best single template any method scored, chosen on *test*: an upper bound, never selectable "
                  "(an ensemble can beat it, so the headroom can be negative). Differences: mean over seeds in points with a "
                  "95 % interval that covers both sources of noise, from a two-level bootstrap (glov.stats): each resample draws "
                  "the seeds (the LLM's sampling decides which prompts a chain finds; the same seeds for both methods), then the "
                  "test images (one draw shared by every seed and both methods that scored the same images), widened for the "
                  "small number of seeds. A method run once (S-TEMP) is the same in every seed. The number of seeds is beside "
                  "each interval; with 1 seed it covers the test images only and says nothing about the methods. `*` marks an "
                  "interval that excludes 0, the only case in which one method counts as better.", "",
                  "| task | oracle (test-chosen) | templates | headroom over GLOV | "
                  + " | ".join(f"{_short(a)} − {_short(b)}" for a, b in LAB_PAIRS) + " |",
                  "|---|---|---|---|" + "---|" * len(LAB_PAIRS)]
        for task in chance:
            c = controls.get(task)
            if c is None:
                continue
            glov = _cell(rows, GLOV, task)
            headroom = f"{c.oracle - glov['mean']:+.1f}" if c.oracle is not None and glov else "-"
            cells = [format_interval(c.intervals[pair]) if pair in c.intervals else "-" for pair in LAB_PAIRS]
            lines.append(f"| {task} | {'-' if c.oracle is None else f'{c.oracle:.1f}'} | {c.n_templates} | {headroom} | " + " | ".join(cells) + " |")
    widths = {task: {pair: iv.half_width for pair, iv in c.intervals.items()} for task, c in controls.items() if c.intervals}
    if widths:
        lines += ["", "## Resolution", "",
                  f"Half-width of each interval above (seeds and test images), in points (docs/LAB.md: the design is good when "
                  f"it is at most {RESOLUTION_TARGET}; the number of seeds it needs follows from the between-seed spread).", "",
                  "| task | " + " | ".join(f"{_short(a)} − {_short(b)}" for a, b in LAB_PAIRS) + f" | largest | ≤ {RESOLUTION_TARGET} |",
                  "|---|" + "---|" * (len(LAB_PAIRS) + 2)]
        for task in chance:
            if task in widths:
                w = widths[task]
                largest = max(w.values())
                lines.append(f"| {task} | " + " | ".join(f"{w[pair]:.2f}" if pair in w else "-" for pair in LAB_PAIRS)
                             + f" | {largest:.2f} | {'yes' if largest <= RESOLUTION_TARGET else 'no'}{_images_only(controls[task])} |")
    worded = {task: c.wordings for task, c in controls.items() if c.wordings}
    if worded:
        wordings = list(dict.fromkeys(w for ws in worded.values() for w in ws))
        lines += ["", "## Diagnostic wordings", "",
                  "Fixed wordings (docs/LAB.md), test accuracy (%, mean over seeds): how far wording alone moves a task, "
                  "the spread an optimiser can exploit. Diagnostic only: no method chooses among them.", "",
                  "| task | " + " | ".join(f"`{w}`" for w in wordings) + " | spread (max − min) |", "|---|" + "---|" * (len(wordings) + 1)]
        for task in chance:
            if task in worded:
                ws = worded[task]
                cells = [f"{ws[w]:.1f}" if w in ws else "-" for w in wordings]
                lines.append(f"| {task} | " + " | ".join(cells) + f" | {max(ws.values()) - min(ws.values()):.1f} |")
    lines += ["", "## Verdict (from the numbers above)", ""]
    for task in chance:
        s_temp, glov, wo = (_cell(rows, m, task) for m in (S_TEMP, GLOV, GLOV_WO))
        if s_temp is None:
            line = f"- {task}: S-TEMP was not run."
        else:
            above = "above" if s_temp["mean"] > chance[task] else "NOT above"
            line = f"- {task}: S-TEMP is {above} chance ({_fmt(s_temp)} vs {chance[task]:.1f})."
        seeds = [sp for sp in spreads.get(task, {}).values() if sp]
        if seeds:
            matters = sum(sp["spread"] >= WORDING_MATTERS for sp in seeds)
            line += f" Wording matters in {matters} of {len(seeds)} seeds (largest spread {max(sp['spread'] for sp in seeds):.1f} points)."
        intervals = controls[task].intervals if task in controls else {}
        rows_of = {S_TEMP: s_temp, GLOV: glov, GLOV_WO: wo}
        for a, b in LAB_PAIRS:
            if (a, b) in intervals:
                line += f" {_verdict(_short(a), _short(b), intervals[a, b])}"
            elif b == S_TEMP and rows_of[a] and s_temp:
                delta = rows_of[a]["mean"] - s_temp["mean"]
                verdict = "beats" if delta > 0 else "ties with" if delta == 0 else "does not beat"
                line += f" {_short(a)} {verdict} S-TEMP ({delta:+.1f} points, no interval)."
        if any(not iv.seeds_covered for iv in intervals.values()):
            line += (" The seeds are too few to generalise: with one seed an interval covers the test images only and cannot "
                     "say whether one method is better.")
        lines.append(line)
    return "\n".join(lines) + "\n"


def metrics(rows: list[dict]) -> dict[str, float]:
    return {f"{r['method']}/{r['dataset']}/test_acc": r["mean"] for r in rows}


def curves(scores: list[RunScore], dataset: str, alpha: float) -> list[dict]:
    """Seed-mean optimisation curve of one (dataset, alpha)."""
    runs = [r.score["curve"] for r in scores if r.dataset == dataset and r.alpha == alpha]
    steps = min(len(c) for c in runs)
    keys = ("best_train", "topk_train", "topk_val")
    return [{"step": s, **{k: round(statistics.fmean(c[s][k] for c in runs), 4) for k in keys}} for s in range(steps)]


def curve_csv(points: list[dict]) -> str:
    return "step,best_train,topk_train,topk_val\n" + "".join(
        f"{p['step']},{p['best_train']:.4f},{p['topk_train']:.4f},{p['topk_val']:.4f}\n" for p in points
    )


HTML_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:1.5em;color:#1e293b}"
    "table{border-collapse:collapse;margin:1em 0;display:block;overflow-x:auto}th,td{border:1px solid #cbd5e1;padding:.3em .6em;text-align:left}"
    "th{background:#f1f5f9}tr:nth-child(even) td{background:#f8fafc}"
)


def markdown_html(markdown: str, title: str) -> str:
    """A self-contained HTML page of one of our markdown tables: Snakemake's report shows HTML inline
    but offers markdown only as a download, so the report lists these."""
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark").enable("table").render(markdown)
    return (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{title}</title><style>{HTML_STYLE}</style></head>'
            f"<body>\n{body}</body></html>\n")


def write_html_of(markdown_path: str | Path) -> Path:
    """Write ``<name>.html`` beside ``<name>.md`` (:func:`glov.paths.html_of`) and return its path."""
    from glov.paths import html_of

    src = Path(markdown_path)
    out = Path(html_of(str(src)))
    write_text(out, markdown_html(src.read_text(), src.stem))
    return out


def plot_curves(by_alpha: Mapping[float, list[dict]], dataset: str, out: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from glov.io import atomic_path

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    for i, (alpha, points) in enumerate(sorted(by_alpha.items())):
        steps = [p["step"] for p in points]
        color = f"C{i}"
        ax.plot(steps, [p["best_train"] for p in points], color=color, label=f"alpha={alpha}: best so far (train)")
        ax.plot(steps, [p["topk_train"] for p in points], color=color, linestyle="--", label=f"alpha={alpha}: top-k ensemble (train)")
        ax.plot(steps, [p["topk_val"] for p in points], color=color, linestyle=":", label=f"alpha={alpha}: top-k ensemble (val)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole numbers
    ax.set_xlabel("optimisation step")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title(f"GLOV on {dataset}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None})
    plt.close(fig)


def aggregate(
    entries: list[tuple[str, float, int, str | Path]], baseline_paths: list[str | Path], datasets: list[str], header: str,
    table_md: str | Path, table_csv: str | Path, metrics_json: str | Path, plot_pattern: str, curve_pattern: str,
) -> list[dict]:
    """Write the tables, metrics, and (for GLOV runs) curves and plots; return the summary rows."""
    scores = load_scores(entries)
    rows = summary_rows(per_seed_results(scores, [read_json(p) for p in baseline_paths]), datasets)
    write_text(table_md, to_markdown(rows, datasets, header))
    write_text(table_csv, to_csv(rows))
    write_json(metrics_json, metrics(rows))
    written = set()
    for dataset in datasets if scores else []:
        alphas = sorted({r.alpha for r in scores if r.dataset == dataset})
        by_alpha = {a: curves(scores, dataset, a) for a in alphas}
        for a, points in by_alpha.items():
            path = Path(curve_pattern.format(dataset=dataset, alpha=a))
            write_text(path, curve_csv(points))
            written.add(path.resolve())
        plot_curves(by_alpha, dataset, plot_pattern.format(dataset=dataset))
    # the curves folder is what `dvc plots` shows: drop curves of runs that are not part of this one
    for folder in {Path(curve_pattern).parent.resolve(), *(p.parent for p in written)}:
        for stale in folder.glob("*.csv") if folder.is_dir() else []:
            if stale.resolve() not in written:
                stale.unlink()
    return rows
