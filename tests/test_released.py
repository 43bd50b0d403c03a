"""The released prompts: parsed as data from a file in the official format (a fixture written here,
never the real file), scored as methods, and shown beside the paper's GLOV rows."""

import json

import pytest

from glov import config as C
from glov.released import ReleasedError, fetch_released, parse_released, released_prompts

FIXTURE = '''
import os  # never executed: the parser reads literals only
os.system("echo this must not run")

lov_guidance_templates_clip = {
    "EuroSAT": ["a satellite view of {} fields.", 'an aerial image of {}.', "{} from orbit"],
    'DescribableTextures': ["a close-up of a {} surface.", "a {} pattern.", "a {} texture."],
    "NotAPaperDataset": ["x {}"],
}
lov_templates_clip = {
    'EuroSAT': ['a photo of {} land.', "a map tile of {}.", "a {} area seen from above."],
}
lov_guidance_llava = {'EuroSAT': 'What land cover does this satellite image show'}
lov_llava = {'EuroSAT': 'Name the land use in the picture'}
other_table = {"EuroSAT": ["ignored {}"]}
'''


def test_the_released_file_is_parsed_as_data_not_run(tmp_path, capfd):
    parsed = parse_released(FIXTURE)
    assert capfd.readouterr().out == ""
    assert parsed["clip"]["eurosat"]["glov_released"] == ["a satellite view of {} fields.", "an aerial image of {}.", "{} from orbit"]
    assert parsed["clip"]["eurosat"]["glov_wo_guidance_released"][0] == "a photo of {} land."
    assert parsed["clip"]["dtd"] == {"glov_released": ["a close-up of a {} surface.", "a {} pattern.", "a {} texture."]}
    assert parsed["llava"]["eurosat"] == {"glov_released": ["What land cover does this satellite image show"],
                                         "glov_wo_guidance_released": ["Name the land use in the picture"]}
    assert set(parsed["clip"]) == {"eurosat", "dtd"}  # unknown datasets and other tables are left out
    with pytest.raises(ReleasedError, match="not Python"):
        parse_released("lov_llava = {")
    with pytest.raises(ReleasedError, match="not a literal"):
        parse_released("lov_templates_clip = dict(a=1)")


@pytest.mark.parametrize("literal, message", [
    ("{[1]: 2}", r"lov_templates_clip in the released prompts file is not a literal \(unhashable type: 'list'\)"),
    ("[1]", r"lov_templates_clip in the released prompts file is a list, not a dict \{dataset name: prompts\}"),
    ("{'EuroSAT': 3}", r"lov_templates_clip\['EuroSAT'\] in the released prompts file is 3, not a prompt string"),
    ("{'EuroSAT': ['a {}.', 7]}", r"lov_templates_clip\['EuroSAT'\] .* is \['a \{\}.', 7\], not a prompt string"),
    ("{'EuroSAT': []}", r"lov_templates_clip\['EuroSAT'\] .* is \[\], not a prompt string or a non-empty list"),
])
def test_a_malformed_released_literal_is_a_released_error_naming_the_variable(literal, message):
    """Issue 29.10: these raised TypeError or AttributeError; ``glov fetch-released`` prints a ReleasedError."""
    with pytest.raises(ReleasedError, match=message):
        parse_released(FIXTURE + f"lov_templates_clip = {literal}\n")


def test_fetch_released_from_a_file_and_the_prompts_of_a_dataset(tmp_path):
    source = tmp_path / "discovered_prompts.py"
    source.write_text(FIXTURE)
    out = fetch_released(tmp_path / "released.json", source)
    assert json.loads(out.read_text())["clip"]["eurosat"]["glov_released"][1] == "an aerial image of {}."
    assert released_prompts(out, "eurosat", "glov_released", llava=True) == ["What land cover does this satellite image show"]
    with pytest.raises(ReleasedError, match="drop it from methods"):
        released_prompts(out, "imagenet", "glov_released", llava=False)
    with pytest.raises(ReleasedError, match="run `glov fetch-released`"):
        released_prompts(tmp_path / "missing.json", "eurosat", "glov_released", llava=False)


def test_without_internet_the_fetch_names_the_offline_way(tmp_path, monkeypatch):
    import urllib.request

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(ReleasedError, match=r"cannot download https://raw.githubusercontent.com/jmiemirza/GLOV/.*--from discovered_prompts.py"):
        fetch_released(tmp_path / "r.json")
    from glov.cli import main

    assert main(["fetch-released", "--dest", str(tmp_path / "r.json")]) == 1
    source = tmp_path / "p.py"
    source.write_text(FIXTURE)
    assert main(["fetch-released", "--from", str(source), "--dest", str(tmp_path / "r.json")]) == 0


def test_released_methods_need_the_paper_datasets():
    with pytest.raises(C.ConfigError, match="released prompts, which exist for the paper's 16 datasets only, not 'animal_mnist'"):
        C.from_dict({"methods": ["glov_released"]})
    assert C.from_dict({"methods": ["glov_released"], "data": {"datasets": ["eurosat", "dtd"]}}).methods == ("glov_released",)


def test_the_released_method_scores_the_released_ensemble(tmp_path, monkeypatch):
    from glov.jobs import baselines

    monkeypatch.chdir(tmp_path)
    source = tmp_path / "p.py"
    source.write_text(FIXTURE)
    fetch_released("resources/released/glov_prompts.json", source)
    scored = []

    class Inputs:
        params = C.from_dict({})
        manifest = {"dataset": "eurosat", "splits": {"test": [["a.png", 0], ["b.png", 1]]}}

        def fitness(self, split):
            class Fitness:
                def __call__(self, templates):
                    scored.append((split, list(templates)))
                    return 50.0

                def correct(self, templates):
                    return "10"

            return Fitness()

    result = baselines.BASELINES["glov_released"](Inputs())
    assert result["templates"] == ["a satellite view of {} fields.", "an aerial image of {}.", "{} from orbit"]
    assert (result["val_acc"], result["test_acc"], result["test_correct"]) == (50.0, 50.0, "10")
    assert [s for s, _ in scored] == ["val", "test"]


def test_the_paper_table_shows_the_released_prompts_beside_the_published_glov_row():
    from glov.tables import paper_table

    published = {"vlm": "CLIP", "datasets": ["eurosat", "mean"], "methods": {"glov": [50.8, 59.6], "s_temp": [35.8, 56.0]}}
    rows = [{"method": "glov_released", "dataset": "eurosat", "mean": 49.0, "std": 0.0, "n_seeds": 1}]
    md = paper_table(rows, "CLIP", published)
    assert "| GLOV, released prompts | 49.0 / 50.8 (-1.8) | 49.0 / 59.6 (-10.6) |" in md
