"""The glyphs source and the captions with context words (docs/LAB.md): classes, faces, the split by
design, and no caption equal to a template the methods score."""

from __future__ import annotations

import hashlib
from pathlib import Path


from glov.baselines import ds_temp_templates
from glov.data import glyphs as G
from glov.data import sources as S
from glov.data.captions import PHRASINGS, Words, context_captions, template_clashes
from glov.jobs.evaluate import DIAGNOSTIC_WORDINGS

from conftest import needs_sources



def test_glyph_classes_are_62_names_distinct_beyond_case():
    assert len(G.GLYPH_CLASSES) == 62 == len({c.lower() for c in G.GLYPH_CLASSES})
    assert G.GLYPH_CLASSES[7] == "digit 7" and "capital letter G" in G.GLYPH_CLASSES and "small letter g" in G.GLYPH_CLASSES


def _face(family: str, style: str = "Regular") -> G.Face:
    return G.Face(Path(f"{family}.ttf"), family, style, 400, False, 5)


def test_clones_and_optical_sizes_are_one_design():
    assert {_face(f).design for f in ("Nimbus Sans", "TeX Gyre Heros", "FreeSans")} == {"helvetica"}
    assert _face("TeX Gyre Heros Cn").design == "helvetica narrow"  # the longest prefix wins
    assert {_face(f).design for f in ("Latin Modern Roman Slanted", "CMU Serif", "CMU Serif Extra")} == {"computer modern roman"}
    assert {_face(f).design for f in ("Arimo", "Liberation Sans")} == {"arimo"}
    assert _face("DejaVu Sans Mono").design == "dejavu sans mono" != _face("DejaVu Sans").design
    # one face per design and style: the second Helvetica regular is a near-duplicate
    kept = G.select_faces([_face("Nimbus Sans"), _face("FreeSans"), G.Face(Path("b.ttf"), "FreeSans", "Bold", 700, False, 5)])
    assert [(f.family, f.weight) for f in kept] == [("FreeSans", 400), ("FreeSans", 700)]


def test_captions_are_three_phrasings_drawn_from_the_content_hash():
    words = Words(("bear",), ("silhouette", "shape"), ("animal-mnist",), ("animal",))
    first = context_captions("ab" * 20, words)
    assert first == context_captions("ab" * 20, words)  # the same picture, the same captions
    assert len(set(first)) == 3 and all("bear" in c for c in first)
    assert len({context_captions(hashlib.sha1(bytes([i])).hexdigest(), words) for i in range(50)}) > 10  # other pictures, other draws
    filled = {p.format(name="N", a_name="a N", medium="M", a_medium="a M", source="S", category="C") for p in PHRASINGS}
    assert len(filled) == len(PHRASINGS) and all(" " in p for p in filled)  # never the bare name


def test_template_clashes_ignore_case_spacing_and_the_full_stop():
    assert template_clashes(["A photo of a  Bear", "bear silhouette"], ["a photo of a {}."], ["bear"]) == ["A photo of a  Bear"]


@needs_sources
def test_glyphs_are_split_by_design_and_the_task_has_its_sizes():
    images = S.read_source("glyphs")
    sides: dict[str, set[bool]] = {}
    for im in images:
        sides.setdefault(im.group, set()).add(S.held_out(im.split_key, S.HELD_OUT_FRACTION["glyphs"]))
    assert len(sides) >= 20 and all(len(s) == 1 for s in sides.values())  # no design straddles the split
    task = S.task_images("glyphs")
    assert list(task) == G.GLYPH_CLASSES
    assert min(map(len, task.values())) >= 2 + 4 + 16  # docs/LAB.md: shots, val and test of every class
    trained = {im.uid for im in S.training_images("glyphs")}
    assert len(trained) >= 20 * 62
    S.assert_no_leak(trained, ["glyphs"])
    image = task["small letter g"][0].load()
    assert image.size == (G.IMAGE_SIZE, G.IMAGE_SIZE) and image.mode == "L"


@needs_sources
def test_no_training_caption_is_a_template_the_methods_score():
    """S-TEMP, DS-TEMP's 80 and the diagnostic wordings, every class name filled in (the released GLOV
    prompts are the paper's datasets' and need a download: docs/LAB.md)."""
    templates = ["a photo of a {}.", *ds_temp_templates(), *(w for w in DIAGNOSTIC_WORDINGS if w)]
    names = {n for names in S.FASHION_MNIST_NAMES for n in names} | {c for cs in S.TASK_CLASSES.values() for c in cs}
    captions = {c for source in S.READERS for im in S.read_source(source) for c in im.captions}
    assert len(captions) > 10_000
    assert template_clashes(captions, templates, names) == []
    assert not captions & names  # no bare class name either
