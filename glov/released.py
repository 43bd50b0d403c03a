"""The prompts the GLOV authors released, replayed through our own scorer and splits.

The official repository ships its discovered prompts as a Python file of dict literals (per
dataset: the top-3 CLIP templates found with and without guidance, and the LLaVA prompts). We read
it as data: :func:`parse_released` takes the literals with ``ast.literal_eval`` and never imports or
runs the file. Scoring those prompts (methods ``glov_released`` and ``glov_wo_guidance_released``)
isolates our data and scoring from the optimiser: with real CLIP they should land close to the
paper's GLOV rows.
"""

from __future__ import annotations

import ast
import json
import reprlib
from pathlib import Path

RELEASED_COMMIT = "356981fec027eee06370a633e72461ce1ae1c059"  # jmiemirza/GLOV, the version these notes were checked against
RELEASED_URL = "https://raw.githubusercontent.com/jmiemirza/GLOV/{commit}/utils/discovered_prompts.py"
RELEASED_PATH = "resources/released/glov_prompts.json"

# the file's dict names -> (our method, whether its values are LLaVA prompts rather than template lists)
_DICTS = {
    "lov_guidance_templates_clip": ("glov_released", False),
    "lov_templates_clip": ("glov_wo_guidance_released", False),
    "lov_guidance_llava": ("glov_released", True),
    "lov_llava": ("glov_wo_guidance_released", True),
}
# the official dataset names -> ours
OFFICIAL_NAMES = {
    "ImageNet": "imagenet", "ImageNetV2": "imagenetv2", "ImageNetR": "imagenet_r", "ImageNetSketch": "imagenet_sketch",
    "ImageNetA": "imagenet_a", "Caltech101": "caltech101", "OxfordFlowers": "oxford_flowers", "OxfordPets": "oxford_pets",
    "StanfordCars": "stanford_cars", "DescribableTextures": "dtd", "Food101": "food101", "FGVCAircraft": "fgvc_aircraft",
    "SUN397": "sun397", "UCF101": "ucf101", "RESISC45": "resisc45", "EuroSAT": "eurosat",
}
RELEASED_METHODS = ("glov_released", "glov_wo_guidance_released")


class ReleasedError(RuntimeError):
    """The released prompts are missing or unreadable; the message says how to get them."""


def parse_released(source: str) -> dict[str, dict[str, dict[str, list[str]]]]:
    """{"clip"|"llava": {our dataset: {method: prompts}}} from the file's text. Only top-level
    assignments of the known names are read, each a literal; anything else is ignored."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise ReleasedError(f"the released prompts file is not Python ({exc}); download it again") from None
    out: dict[str, dict[str, dict[str, list[str]]]] = {"clip": {}, "llava": {}}
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            continue
        if node.targets[0].id not in _DICTS:
            continue
        var = node.targets[0].id
        method, llava = _DICTS[var]
        try:
            table = ast.literal_eval(node.value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as exc:  # TypeError: {[1]: 2}
            raise ReleasedError(f"{var} in the released prompts file is not a literal ({exc}); download the file again") from None
        if not isinstance(table, dict):
            raise ReleasedError(f"{var} in the released prompts file is a {type(table).__name__}, not a dict "
                                "{dataset name: prompts}; download the file again")
        for name, prompts in table.items():
            if name in OFFICIAL_NAMES:
                out["llava" if llava else "clip"].setdefault(OFFICIAL_NAMES[name], {})[method] = _prompt_list(var, name, prompts)
    if not out["clip"]:
        raise ReleasedError("no released CLIP templates found in the file; is it utils/discovered_prompts.py of jmiemirza/GLOV?")
    return out


def _prompt_list(var: str, dataset: str, prompts: object) -> list[str]:
    """A dataset's entry as a list of prompts: a string (a LLaVA prompt) or a list/tuple of strings."""
    if isinstance(prompts, str):
        return [prompts]
    if isinstance(prompts, (list, tuple)) and prompts and all(isinstance(p, str) for p in prompts):
        return list(prompts)
    raise ReleasedError(f"{var}[{dataset!r}] in the released prompts file is {reprlib.repr(prompts)}, not a prompt string or a "
                        "non-empty list of them; download the file again")


def fetch_released(dest: str | Path = RELEASED_PATH, source: str | Path | None = None, commit: str = RELEASED_COMMIT) -> Path:
    """Download (or read ``source``), parse, and write the prompts as JSON to ``dest``."""
    from glov.io import write_json

    if source is not None:
        text = Path(source).read_text()
    else:
        from glov.io import download

        url = RELEASED_URL.format(commit=commit)
        try:
            text = download(url).decode()
        except OSError as exc:
            raise ReleasedError(
                f"cannot download {url} ({exc}). Without internet, fetch that file on another machine and run "
                f"`glov fetch-released --from discovered_prompts.py` here (it writes {dest})."
            ) from None
    write_json(dest, {"commit": commit if source is None else None, **parse_released(text)})
    return Path(dest)


def released_prompts(path: str | Path, dataset: str, method: str, llava: bool) -> list[str]:
    """The released prompts of one dataset and method (top-3 templates, or one LLaVA prompt)."""
    if not Path(path).exists():
        raise ReleasedError(f"{path} is missing: run `glov fetch-released` (it needs the internet once)")
    table = json.loads(Path(path).read_text())["llava" if llava else "clip"]
    if dataset not in table or method not in table[dataset]:
        raise ReleasedError(f"{method}: the released prompts cover the paper's datasets only, not {dataset!r}; drop it from methods")
    return table[dataset][method]
