"""The official GLOV code's wording, read from its source files at run time, as data.

Under ``protocol.meta_prompt: official`` the LLM must see the released code's exact words: its
system message, its instruction, its example-line format, its dataset descriptions and the base
prompt it shows first. Those sentences are not ours to copy, so this repository holds none of them.
``glov fetch-official`` downloads the few files that hold them from the pinned commit of
github.com/jmiemirza/GLOV (or copies them from a local checkout with ``--from``), checks each
against its pinned sha256, and keeps them under ``resources/official/<commit>/``. This module then
reads them with :mod:`ast` and never imports or executes them: an f-string of the source becomes a
:class:`Text`, a list of literal pieces and named fields (``{step+1}``, ``{accuracy[0]}``), which we
fill in ourselves. Any structure other than the one described here stops the run with an error
rather than guessing.

Where each piece comes from (file: function or name):
- ``utils/opt_utils.py`` (CLIP) and ``utils/opt_utils_llava.py`` (LLaVA): ``generate_meta_prompt_llama``
  assigns ``system_info``, and under ``if mistakes is None:`` the ``task_info`` of the first step
  (``if step == 0:``) and of every later step (its ``else:``); ``generate_examplers`` formats one
  example line (``examplers_best += f'...'``);
- ``utils/utils.py``: the ``dataset_info`` dict literal (dataset name -> description paragraph);
- ``main_clip.py`` / ``main_llava.py``: in ``llm_opt``, the base prompt stored in the history at the
  first step (``prompt = '...'`` under ``if i == 0:``) and the one shown in the first meta-prompt
  (the ``prompt=`` keyword of the ``main`` call).
"""

from __future__ import annotations

import ast
import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Mapping, Sequence

OFFICIAL_COMMIT = "4c4fe64c98a46c9f65d9ea0eb5c4b5fd5a00b01f"  # jmiemirza/GLOV, as read for ../shared/OFFICIAL.md
OFFICIAL_URL = "https://raw.githubusercontent.com/jmiemirza/GLOV/{commit}/{path}"
OFFICIAL_DIR = "resources/official"
PINNED: Mapping[str, str] = {  # path in the repository -> sha256 of the file at OFFICIAL_COMMIT
    "utils/opt_utils.py": "15cb8297470cffe0f6b56cd979045d3cddb8e3b1c0e5dcfc4ce96663de01442d",
    "utils/opt_utils_llava.py": "d600473a728885e49d5155d2355d1e14ed045b30e3d330393df4cd53f59eda76",
    "utils/utils.py": "5bb941622e10a1fe568c6cc796b203c549ea7f904d2e9dfe7588f92bb07ebfca",
    "main_clip.py": "5a71f29235c49db70d120138a546afe256d2136d9d6a79dca3dbe681b9c7c09f",
    "main_llava.py": "732d47e69908f448bd9609f806238cd41b74a021bdfc96ba4c278dae3664b8a8",
}
CLIP, LLAVA = "clip", "llava"
_FILES = {CLIP: ("utils/opt_utils.py", "main_clip.py"), LLAVA: ("utils/opt_utils_llava.py", "main_llava.py")}
_DESCRIPTIONS = "utils/utils.py"
FETCH_HINT = ("run `glov fetch-official` (it downloads {n} files of github.com/jmiemirza/GLOV at {commit}); without "
              "internet, clone that repository elsewhere and run `glov fetch-official --from PATH` with PATH the clone")


class OfficialSourceError(RuntimeError):
    """The official source files are missing, altered, or not shaped as expected; the message says the fix."""


# --- fields and texts -------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    """One ``{...}`` of an f-string: a name, optionally indexed (``accuracy[0]``) or offset (``step+1``)."""

    name: str
    index: int | None = None
    add: int | None = None

    def value(self, values: Mapping[str, object]) -> object:
        if self.name not in values:
            raise OfficialSourceError(f"the official text needs a value for {self.name!r}")
        v = values[self.name]
        if self.index is not None:
            v = v[self.index]  # type: ignore[index]
        if self.add is not None:
            v = v + self.add  # type: ignore[operator]
        return v


@dataclass(frozen=True)
class Text:
    """A text of the official source: literal pieces and fields, filled as Python's f-strings are
    (``format(value, '')``: a float at full precision, as ``str`` of NumPy's float64 prints it)."""

    parts: tuple[str | Field, ...]

    def render(self, **values: object) -> str:
        return "".join(p if isinstance(p, str) else format(p.value(values), "") for p in self.parts)

    @property
    def fields(self) -> set[str]:
        return {p.name for p in self.parts if isinstance(p, Field)}


def _field(node: ast.expr, where: str) -> Field:
    if isinstance(node, ast.Name):
        return Field(node.id)
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and isinstance(node.slice, ast.Constant) \
            and isinstance(node.slice.value, int):
        return Field(node.value.id, index=node.slice.value)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add) and isinstance(node.left, ast.Name) \
            and isinstance(node.right, ast.Constant) and isinstance(node.right.value, int):
        return Field(node.left.id, add=node.right.value)
    raise OfficialSourceError(f"{where}: an f-string field of unexpected form at line {node.lineno}")


def to_text(node: ast.expr, where: str) -> Text:
    """An f-string or string literal of the source as a :class:`Text` (nothing is evaluated)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return Text((node.value,))
    if not isinstance(node, ast.JoinedStr):
        raise OfficialSourceError(f"{where}: expected a string at line {node.lineno}")
    parts: list[str | Field] = []
    for v in node.values:
        if isinstance(v, ast.Constant) and isinstance(v.value, str):
            parts.append(v.value)
        elif isinstance(v, ast.FormattedValue) and v.conversion == -1 and v.format_spec is None:
            parts.append(_field(v.value, where))
        else:
            raise OfficialSourceError(f"{where}: an f-string part of unexpected form at line {v.lineno}")
    return Text(tuple(parts))


# --- finding things in a parsed file ----------------------------------------------------------


def _function(tree: ast.Module, name: str, where: str) -> ast.FunctionDef:
    found = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name]
    if not found:
        raise OfficialSourceError(f"{where}: no function {name}()")
    return found[0]


def _assigned(body: Sequence[ast.stmt], target: str, where: str) -> ast.expr:
    for node in body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == target for t in node.targets):
            return node.value
    raise OfficialSourceError(f"{where}: no assignment to {target}")


def _compares(test: ast.expr, name: str, op: type, value: object) -> bool:
    return (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == name and len(test.ops) == 1
            and isinstance(test.ops[0], op) and isinstance(test.comparators[0], ast.Constant) and test.comparators[0].value == value)


def _branch(body: Sequence[ast.stmt], name: str, op: type, value: object, where: str) -> ast.If:
    for node in body:
        if isinstance(node, ast.If) and _compares(node.test, name, op, value):
            return node
    raise OfficialSourceError(f"{where}: no `if {name} ...` branch")


def _string(node: ast.expr, where: str) -> str:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    raise OfficialSourceError(f"{where}: expected a string literal at line {node.lineno}")


# --- what the optimiser needs -------------------------------------------------------------------


@dataclass(frozen=True)
class Wording:
    """The official meta-prompt of one path (CLIP templates or LLaVA prompts), as data."""

    system: str
    first: Text  # fields: dataset_name, dataset_info, prompt, accuracy[0]
    later: Text  # fields: top_bottom_k, step+1, dataset_name, dataset_info, best_exm, worst_exm
    example: Text  # one example line: i+1, response, accuracy
    base_stored: str  # the base prompt as the history stores it (shown in later steps' blocks; what LLaVA scores)
    base_first: str  # the base prompt as the first meta-prompt shows it
    descriptions: Mapping[str, str]  # official dataset name -> its description paragraph

    def messages(self, user: str) -> list[dict[str, str]]:
        return [{"role": "system", "content": self.system}, {"role": "user", "content": user}]


def read_meta_prompt(source: str, where: str) -> tuple[str, Text, Text, Text]:
    """(system, first, later, example) from an ``opt_utils`` file's text."""
    tree = ast.parse(source)
    fn = _function(tree, "generate_meta_prompt_llama", where)
    system = to_text(_assigned(fn.body, "system_info", where), where)
    if system.fields:
        raise OfficialSourceError(f"{where}: the system message was expected without fields")
    branch = _branch(fn.body, "mistakes", ast.Is, None, where)
    step = _branch(branch.body, "step", ast.Eq, 0, where)
    first, later = to_text(_assigned(step.body, "task_info", where), where), to_text(_assigned(step.orelse, "task_info", where), where)
    examplers = _function(tree, "generate_examplers", where)
    lines = [n.value for n in ast.walk(examplers) if isinstance(n, ast.AugAssign) and isinstance(n.target, ast.Name)
             and n.target.id == "examplers_best"]
    if not lines:
        raise OfficialSourceError(f"{where}: generate_examplers() builds no example line")
    example = to_text(lines[0], where)
    for text, allowed in ((first, {"dataset_name", "dataset_info", "prompt", "accuracy"}),
                          (later, {"top_bottom_k", "step", "dataset_name", "dataset_info", "best_exm", "worst_exm"}),
                          (example, {"i", "response", "accuracy"})):
        if not text.fields <= allowed:
            raise OfficialSourceError(f"{where}: unexpected fields {sorted(text.fields - allowed)} in the meta-prompt")
    return system.render(), first, later, example


def read_base_prompts(source: str, where: str) -> tuple[str, str]:
    """(as stored in the history, as shown first) from a ``main_*.py`` file's ``llm_opt``."""
    fn = _function(ast.parse(source), "llm_opt", where)
    stored = None
    for node in ast.walk(fn):
        if isinstance(node, ast.If) and _compares(node.test, "i", ast.Eq, 0):
            stored = _string(_assigned(node.body, "prompt", where), where)
            break
    shown = next((kw.value for node in ast.walk(fn) if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                  and node.func.attr == "main" for kw in node.keywords if kw.arg == "prompt"), None)
    if stored is None or shown is None:
        raise OfficialSourceError(f"{where}: llm_opt() has no base prompt where expected")
    return stored, _string(shown, where)


def read_descriptions(source: str, where: str) -> dict[str, str]:
    """The ``dataset_info`` literal: official dataset name -> description paragraph."""
    node = _assigned(ast.parse(source).body, "dataset_info", where)
    try:
        table = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError):
        raise OfficialSourceError(f"{where}: dataset_info is not a literal") from None
    if not isinstance(table, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in table.items()):
        raise OfficialSourceError(f"{where}: dataset_info is not a mapping of names to texts")
    return table


def source_dir(root: str | Path = OFFICIAL_DIR, commit: str = OFFICIAL_COMMIT) -> Path:
    return Path(root) / commit[:12]


def read_file(path: str, root: str | Path = OFFICIAL_DIR, pins: Mapping[str, str] | None = PINNED) -> str:
    """A fetched official file's text, checked against its pinned digest (``pins=None``: unchecked,
    for tests that read a fixture of the same structure)."""
    file = source_dir(root) / path if pins is not None else Path(root) / path
    if not file.is_file():
        raise OfficialSourceError(f"{file} is missing: the official protocol reads the released code's wording at run time; "
                                  + FETCH_HINT.format(n=len(PINNED), commit=OFFICIAL_COMMIT[:7]))
    data = file.read_bytes()
    if pins is not None and hashlib.sha256(data).hexdigest() != pins[path]:
        raise OfficialSourceError(f"{file} is not the pinned file (sha256 differs): delete it and "
                                  + FETCH_HINT.format(n=len(PINNED), commit=OFFICIAL_COMMIT[:7]))
    return data.decode("utf-8")


@lru_cache(maxsize=None)
def _cached(kind: str, root: str, checked: bool) -> Wording:
    pins = PINNED if checked else None
    meta_file, main_file = _FILES[kind]
    system, first, later, example = read_meta_prompt(read_file(meta_file, root, pins), meta_file)
    stored, shown = read_base_prompts(read_file(main_file, root, pins), main_file)
    descriptions = read_descriptions(read_file(_DESCRIPTIONS, root, pins), _DESCRIPTIONS)
    return Wording(system, first, later, example, stored, shown, descriptions)


def wording(kind: str = CLIP, root: str | Path = OFFICIAL_DIR, checked: bool = True) -> Wording:
    """The official wording of ``kind`` (:data:`CLIP` or :data:`LLAVA`); read once per process."""
    return _cached(kind, str(Path(root).resolve()), checked)


# --- fetching -------------------------------------------------------------------------------------


def fetch_official(dest: str | Path = OFFICIAL_DIR, given: str | Path | None = None, commit: str = OFFICIAL_COMMIT) -> Path:
    """Download the pinned files (or copy them from ``given``, a checkout of the repository), check
    each file's sha256, and keep them under ``dest/<commit>/``. Nothing is imported or run."""
    from glov.io import atomic_path

    out = source_dir(dest, commit)
    files = {}
    for path, digest in PINNED.items():  # every file checked before any is kept
        data = _local(Path(given), path) if given is not None else _download(OFFICIAL_URL.format(commit=commit, path=path))
        if hashlib.sha256(data).hexdigest() != digest:
            origin = f"{given}/{path}" if given is not None else OFFICIAL_URL.format(commit=commit, path=path)
            raise OfficialSourceError(f"{origin} is not {path} of jmiemirza/GLOV at {commit[:7]} (sha256 differs); "
                                      f"check out that commit (`git checkout {commit[:7]}`) and try again")
        files[path] = data
    for path, data in files.items():
        with atomic_path(out / path) as tmp:
            tmp.write_bytes(data)
    return out


def _local(root: Path, path: str) -> bytes:
    file = root / path
    if not file.is_file():
        raise OfficialSourceError(f"{file} is missing: --from takes a checkout of github.com/jmiemirza/GLOV (it holds {path})")
    return file.read_bytes()


def _download(url: str) -> bytes:
    from glov.io import download

    try:
        return download(url)
    except OSError as exc:
        raise OfficialSourceError(f"cannot download {url} ({exc}); without internet, clone github.com/jmiemirza/GLOV "
                                  "elsewhere and run `glov fetch-official --from PATH` with PATH the clone") from None
