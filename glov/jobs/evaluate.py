"""Rule score: a GLOV chain's top-k ensembles scored on val, and the chosen step on test."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping, Sequence

from glov import config as C
from glov import paths
from glov.io import read_json, write_json
from glov.jobs.common import answering, track
from glov.jobs.embed import Scorer
from glov.optimizer.state import State
from glov.protocol import is_official
from glov.scoring import select_step, top_templates


def score_runs(
    params: C.Params, manifest_path: str | Path, seed: int, final_steps: Mapping[float, str | Path],
    embeddings: Mapping[str, str | Path | None], outputs: Mapping[float, str | Path],
) -> None:
    """Rule score: every alpha chain of one (dataset, seed), the VLM loaded once. Each chain's
    result depends on that chain alone (see :func:`score_chain`)."""
    manifest = read_json(manifest_path)
    alphas = sorted(outputs)
    with track(params, f"score/{manifest['dataset']}/s{seed}", {"dataset": manifest["dataset"], "alphas": alphas, "seed": seed}) as tracker:
        scorer = Scorer(params, manifest)
        fit = {s: scorer.fitness(s, embeddings.get(s)) for s in paths.SPLITS}
        for alpha in alphas:
            result = score_chain(params, manifest, State.from_dict(read_json(final_steps[alpha])["state"]), fit)
            write_json(outputs[alpha], result)
            for point in result["curve"]:
                tracker.log_metrics({f"{k}/a{alpha}": v for k, v in point.items() if k != "step"}, step=point["step"])
            tracker.log_metrics({f"test_acc/a{alpha}": result["test_acc"], f"val_acc/a{alpha}": result["val_acc"]})


def score_chain(params: C.Params, manifest: dict, state: State, fit: Mapping[str, Callable]) -> dict:
    """Per step: top-k ensemble of the history so far (official final set: of the step's own
    candidates, and never the first LLM step's) on train and val; the best val step goes to
    test (the baselines are scored by :mod:`glov.jobs.baselines`, on the same splits). An
    answering VLM takes one prompt, so there k = 1."""
    k = 1 if answering(params) else params.eval.ensemble_size
    own_step_only = is_official(params.protocol, "final_set") and not answering(params)  # one prompt, no final set: the history's best
    templates_only = not answering(params)  # a final set never holds a template without {} (official invalid ones)
    curve, templates_by_step, val_by_step = [], {}, {}
    for s in range(state.step + 1):
        skipped = own_step_only and s == 1  # the released loop never evaluates its first LLM step
        templates = [] if skipped else top_templates(state.history, k, s, own_step_only, templates_only, params.protocol.ranking)
        best_so_far = max(c.accuracy for c in state.history if c.step <= s)
        if not templates:  # an official set that is empty, or of the first LLM step: not selectable
            curve.append({**curve[-1], "step": s, "best_train": best_so_far})
            continue
        templates_by_step[s] = templates
        val_by_step[s] = fit["val"](templates)
        curve.append({"step": s, "best_train": best_so_far, "topk_train": fit["train"](templates), "topk_val": val_by_step[s]})
    chosen = select_step(val_by_step, templates_by_step)
    per_image = getattr(fit["test"], "correct", None)  # every real fitness has it; the intervals of glov.stats
    return {
        "dataset": manifest["dataset"],
        "chosen_step": chosen.step,
        "templates": chosen.templates,
        "val_acc": chosen.val_accuracy,
        "test_acc": fit["test"](chosen.templates),
        **({"test_correct": per_image(chosen.templates), "test_set": test_set_digest(manifest)} if per_image else {}),
        "failures": state.failures,
        "curve": curve,
    }


def test_set_digest(manifest: dict) -> str:
    """Which test images a result was scored on: two results are paired only when these are equal."""
    import hashlib
    import json

    return hashlib.sha256(json.dumps(manifest["splits"]["test"]).encode()).hexdigest()[:16]


def scored_templates(step_records: Sequence[Mapping], baseline_results: Sequence[Mapping]) -> list[str]:
    """Every single template any method scored in a run of one (dataset, seed): each GLOV chain's
    history, random search's and LLM-Opt's candidates, ProAPO's pool, S-TEMP and DS-TEMP's 80, the
    templates any baseline returned. Only templates with {} (the others give every class one text)."""
    found: list[str] = []
    for record in step_records:
        found += [c["template"] for c in record["state"]["history"]]
    for result in baseline_results:
        found += result.get("templates", [])
        search = result.get("search", {})
        found += [c["template"] for c in search.get("history", [])] + list(search.get("template_candidates", []))
        found += [c["template"] for step in result.get("candidates", []) for c in step if c.get("template") is not None]
        if result.get("method") == "ds_temp":
            from glov.baselines import ds_temp_templates

            found += ds_temp_templates()
    return sorted({t for t in found if "{}" in t})


DIAGNOSTIC_WORDINGS = ("{}", None, "a silhouette of a {}.", "a greyscale photo of a {}.", "a drawing of a {}.", "the character {}.")


def diagnostic_wordings(params: C.Params) -> list[str]:
    """The fixed wordings lab.md scores on test (docs/LAB.md, frozen): the bare name, S-TEMP (in
    the run's base template, the ``None``) and a few domain wordings, to show how much wording
    alone moves a lab task's accuracy: the spread an optimiser can exploit."""
    return list(dict.fromkeys(params.optimizer.base_template if w is None else w for w in DIAGNOSTIC_WORDINGS))


def oracle(params: C.Params, manifest_path: str | Path, test_embeddings: str | Path | None, seed: int, step_files: Sequence[str | Path],
           baseline_files: Sequence[str | Path], out: str | Path) -> None:
    """Rule oracle: the best single template on *test* among every template the run scored for this
    (dataset, seed). An upper bound on what choosing among them could give; never selectable.
    Beside it, the diagnostic wordings' test accuracies (not candidates of the oracle)."""
    manifest = read_json(manifest_path)
    with track(params, f"oracle/{manifest['dataset']}/s{seed}", {"dataset": manifest["dataset"], "seed": seed}) as tracker:
        templates = scored_templates([read_json(p) for p in step_files], [read_json(p) for p in baseline_files])
        test = Scorer(params, manifest).fitness("test", test_embeddings)
        scores = {t: test(t) for t in templates}
        best = max(templates, key=scores.__getitem__)  # templates come sorted: ties go to the alphabetically first
        wordings = [[w, test(w)] for w in diagnostic_wordings(params)]  # pairs: JSON keys would lose the order
        write_json(out, {"dataset": manifest["dataset"], "seed": seed, "template": best, "test_acc": scores[best],
                         "n_templates": len(templates), "test_correct": test.correct(best), "test_set": test_set_digest(manifest),
                         "wordings": wordings})
        tracker.log_metrics({"oracle_test_acc": scores[best], "n_templates": len(templates)})
