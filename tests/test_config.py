import re

import pytest
import yaml

from glov import config as C
from glov.jobs.common import check


def test_defaults_are_filled_and_frozen():
    p = C.from_dict({})
    assert p.optimizer.steps == 5 and p.optimizer.candidates == 10 and p.optimizer.topk == 5
    assert p.steering.alphas == (0.0, 1.0) and p.steering.layer is None
    assert p.data.datasets == ("animal_mnist",)
    with pytest.raises(Exception):
        p.optimizer.steps = 3  # frozen


def test_repository_params_yaml_is_valid():
    from conftest import REPO

    p = C.load_params(REPO / "params.yaml")
    check(p)
    assert p.llm.name == "smollm2-135m-instruct"


@pytest.mark.parametrize(
    "raw, key",
    [
        ({"optimizer": {"stepz": 3}}, "optimizer.stepz: unknown key"),
        ({"bogus": 1}, "bogus: unknown key"),
        ({"optimizer": {"steps": 0}}, "optimizer.steps"),
        ({"optimizer": {"steps": "ten"}}, "optimizer.steps"),
        ({"steering": {"alphas": [-0.5]}}, "steering.alphas.0"),
        ({"optimizer": {"base_template": "no placeholder"}}, "optimizer.base_template"),
        ({"optimizer": {"top_p": 1.5}}, "optimizer.top_p"),
        ({"llm": {"dtype": "int3"}}, "llm.dtype"),
        ({"data": {"splits": {"animal_mnist": {"shot": 10}}}}, "data.splits.animal_mnist.shot: unknown key"),
        ({"data": {"splits": {"animal_mnist": {"shots": 0}}}}, "data.splits.animal_mnist.shots"),
    ],
)
def test_bad_values_name_the_key(raw, key):
    with pytest.raises(C.ConfigError) as err:
        C.from_dict(raw)
    assert key in str(err.value)


def test_registry_checks_name_the_key():
    with pytest.raises(C.ConfigError, match=r"steering.layer: 30 is beyond smollm2-135m-instruct's depth \(30"):
        check(C.from_dict({"steering": {"layer": 30}}))
    with pytest.raises(C.ConfigError, match=r"data.datasets: unknown dataset 'nope'"):
        check(C.from_dict({"data": {"datasets": ["nope"]}}))
    with pytest.raises(C.ConfigError, match="vlm.name"):
        check(C.from_dict({"vlm": {"name": "nope"}}))
    with pytest.raises(C.ConfigError, match="llm.name"):
        check(C.from_dict({"llm": {"name": "nope"}}))


def test_load_params_reports_missing_and_malformed_files(tmp_path):
    with pytest.raises(C.ConfigError, match="no such file"):
        C.load_params(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(C.ConfigError, match="not valid YAML"):
        C.load_params(bad)
    bad.write_text("- a list\n")
    with pytest.raises(C.ConfigError, match="mapping"):
        C.load_params(bad)


def test_cli_validate_prints_error_without_traceback(tmp_path, capsys):
    from glov.cli import main

    f = tmp_path / "p.yaml"
    f.write_text("optimizer: {steps: -1}\n")
    assert main(["validate", "--params", str(f)]) == 1
    err = capsys.readouterr().err
    assert "optimizer.steps" in err and "Traceback" not in err


@pytest.mark.parametrize("name", [".", "..", "", ".hidden", "a/b", "../x", "a\\b", "/abs"])
def test_dataset_names_that_are_not_plain_folder_names_are_refused(name, tmp_path, capsys):
    """Issue 29.10: `.` and `..` were accepted; a dataset's name becomes a folder under results/."""
    rule = "is not a valid dataset name: use letters, digits, '_', '-' and '.', not starting with '.'"
    with pytest.raises(C.ConfigError, match=r"data\.datasets\.0: " + re.escape(f"{name!r} {rule}")):
        C.from_dict({"data": {"datasets": [name]}})
    custom = {name: {"layout": "imagefolder", "path": str(tmp_path), "description": "mine"}}
    with pytest.raises(C.ConfigError, match=re.escape(f"data.custom[{name!r}]: {name!r} {rule}")):
        C.from_dict({"data": {"datasets": ["animal_mnist"], "custom": custom}})
    from glov.cli import main

    f = tmp_path / "p.yaml"
    f.write_text(yaml.safe_dump({"data": {"datasets": [name], "custom": custom}}))
    assert main(["validate", "--params", str(f)]) == 1
    err = capsys.readouterr().err
    assert f"data.custom[{name!r}]: " in err and "data.datasets.0: " in err and "Traceback" not in err


def test_plain_dataset_names_pass_and_the_workflow_wildcard_matches_the_schema():
    from conftest import REPO

    custom = {n: {"layout": "imagefolder", "path": "/data", "description": "mine"} for n in ("my_birds", "birds.v2", "_x", "2-a")}
    assert C.from_dict({"data": {"datasets": list(custom), "custom": custom}}).data.datasets == tuple(custom)
    pattern = C.schema()["$defs"]["dataset_name"]["pattern"]
    assert f'dataset="{pattern.strip("^$")}"' in (REPO / "workflow/rules/common.smk").read_text()


def test_canonical_params_ignore_key_order():
    """A rule's params are compared by Snakemake: the same settings in another key order (a merged
    --configfile) must not rerun anything."""
    from glov.config import canonical

    a = {"llamp": {"iterations": 5, "depth": 6}, "x": [{"b": 1, "a": 2}]}
    b = {"x": [{"a": 2, "b": 1}], "llamp": {"depth": 6, "iterations": 5}}
    assert canonical(a) == canonical(b) and list(canonical(a)) == ["llamp", "x"] and list(canonical(a)["llamp"]) == ["depth", "iterations"]
    assert repr(canonical(a)) == repr(canonical(b))


def test_a_dataset_can_have_its_own_split_sizes():
    p = C.from_dict({"data": {"datasets": ["a", "b"], "shots": 1, "val_per_class": 4, "test_per_class": 30,
                              "splits": {"a": {"shots": 10, "test_per_class": None}}}})
    assert C.split_sizes(p.data, "a") == C.SplitSizes(10, 4, None)  # what it does not set stays the run's
    assert C.split_sizes(p.data, "b") == C.SplitSizes(1, 4, 30)


def test_the_lab_config_follows_the_frozen_design():
    """config/lab.yaml is the design docs/LAB.md froze; changing one without the other fails here."""
    import yaml

    from pathlib import Path

    lab = C.from_dict(yaml.safe_load((Path(__file__).parents[1] / "config/lab.yaml").read_text()))
    sizes = {d: C.split_sizes(lab.data, d) for d in lab.data.datasets}
    assert sizes == {"glyphs": C.SplitSizes(2, 4, 16)}  # re-powered (2026-12-05): the seeds go where a task resolves something
    assert lab.vlm.name == "lab-minilm-full" and set(lab.vlm.train.sources) == {"animal_mnist", "fashion_mnist", "clipart", "glyphs"}
    assert list(lab.seeds) == list(range(10))
    assert (lab.optimizer.steps, lab.optimizer.candidates, list(lab.steering.alphas)) == (10, 10, [0.0, 1.0])
    assert set(lab.methods) == {"s_temp", "random_search", "glov_wo_guidance", "glov", "llm_opt"}


def test_seeds_given_on_snakemake_command_line_are_numbers():
    """`--config 'seeds=[10,11]'` reaches the config as strings: they are read as the numbers they are."""
    assert C.from_dict({"seeds": ["10", "11"]}).seeds == (10, 11)
    with pytest.raises(C.ConfigError, match="seeds.0"):
        C.from_dict({"seeds": ["ten"]})
