import pytest
import torch
import torch.nn.functional as F

from conftest import write_imagefolder
from glov.vlm import cut_trailing_padding, embed_image_files, load_vlm, text_classifier
from glov.registry import VLMError, resolve_vlm
from glov.data import DataError


@pytest.fixture(scope="module")
def vlm(tiny_clip_dir):
    return load_vlm(resolve_vlm("tiny", f"local-dir:{tiny_clip_dir}", None, "unused"))


def test_saved_model_loads_back_with_identical_weights(tiny_clip_dir, vlm):
    from safetensors.torch import load_file

    saved = load_file(str(tiny_clip_dir / "open_clip_model.safetensors"))
    loaded = vlm.model.state_dict()
    assert saved.keys() == loaded.keys()
    assert all(torch.equal(saved[k], loaded[k]) for k in saved)


def test_embeddings_are_normalised_and_text_cache_is_used(vlm):
    e = vlm.encode_texts(["a photo of a cat", "a photo of a dog"])
    torch.testing.assert_close(e.norm(dim=-1), torch.ones(2))
    calls = []
    original = vlm.tokenizer
    vlm.tokenizer = lambda texts: calls.append(list(texts)) or original(texts)
    again = vlm.encode_texts(["a photo of a dog", "a photo of a cat", "a photo of a cow"])
    vlm.tokenizer = original
    assert calls == [["a photo of a cow"]]  # only the unseen text is encoded
    assert torch.equal(again[0], e[1])


def test_text_classifier_averages_normalised_template_embeddings(vlm):
    templates = ["a photo of a {}.", "a drawing of a {}."]
    w = text_classifier(vlm, ["cat", "dog"], templates)
    manual = F.normalize(vlm.encode_texts(["a photo of a dog.", "a drawing of a dog."]).mean(0), dim=-1)
    torch.testing.assert_close(w[1], manual)


def test_image_embedding_and_corrupt_image_error(tmp_path, vlm):
    root = write_imagefolder(tmp_path / "imgs", {"a": 3})
    paths = sorted((root / "a").iterdir())
    feats = embed_image_files(vlm, paths, batch_size=2)
    assert feats.shape == (3, 32)
    torch.testing.assert_close(feats.norm(dim=-1), torch.ones(3))
    paths[1].write_bytes(b"not a png")
    with pytest.raises(DataError, match=f"{paths[1]} is corrupt"):
        embed_image_files(vlm, paths)
    paths[2].unlink()
    with pytest.raises(DataError, match=f"{paths[2]} is missing; restore it, or run snakemake again"):
        embed_image_files(vlm, paths[2:])


def test_missing_and_unknown_models_say_how_to_fix(tmp_path):
    with pytest.raises(VLMError, match="no open_clip model at"):
        load_vlm(resolve_vlm("x", f"local-dir:{tmp_path}", None, "."))
    with pytest.raises(VLMError, match="rule train_lab_vlm"):
        load_vlm(resolve_vlm("lab-minilm-untrained", None, None, tmp_path))
    with pytest.raises(VLMError, match="known: "):
        resolve_vlm("nope", None, None, ".")
    spec = resolve_vlm("vit-b-32", None, None, ".")
    assert (spec.arch, spec.pretrained) == ("ViT-B-32", "openai")


def test_cutting_padding_is_exact_for_the_hf_text_tower(tmp_path):
    from glov.lab_vlm import build_untrained_minilm

    vlm = load_vlm(resolve_vlm("lab", f"local-dir:{build_untrained_minilm(tmp_path)}", None, "."))
    assert vlm._pad_id == 0
    texts = ["a photo of a zebra.", "a blurry black and white photo of a very small bear in the snow."]
    full = vlm.tokenizer(texts)
    assert full.shape[1] == 77 and cut_trailing_padding(full, 0).shape[1] < 25
    with torch.inference_mode():
        expected = F.normalize(vlm.model.encode_text(full), dim=-1)
    torch.testing.assert_close(vlm.encode_texts(texts), expected, atol=1e-5, rtol=0)


def test_padding_is_kept_where_cutting_would_change_embeddings(vlm):
    assert vlm._pad_id is None  # OpenAI-style text tower: fixed-length positional embedding
    tokens = torch.tensor([[5, 6, 0, 0], [7, 0, 0, 0]])
    assert torch.equal(cut_trailing_padding(tokens, None), tokens)
    assert torch.equal(cut_trailing_padding(tokens, 0), tokens[:, :2])


def test_ds_temp_is_the_mean_of_its_80_normalised_template_embeddings(vlm):
    from glov.baselines import ds_temp_templates

    templates = ds_temp_templates()
    assert len(templates) == 80 and all(t.count("{}") == 1 for t in templates) and templates[0] == "a bad photo of a {}."
    w = text_classifier(vlm, ["cat", "dog"], templates)
    per_template = torch.stack([vlm.encode_texts([t.format(c) for c in ("cat", "dog")]) for t in templates])
    torch.testing.assert_close(w, F.normalize(per_template.mean(0), dim=-1))


def test_a_template_without_placeholder_puts_every_image_in_class_0(vlm):
    """Why an official invalid candidate scores about chance: every class gets the same text, so
    every class ties; the official code's NaN embeddings send every image to class 0, and so do we
    (rounding alone would break the tie at random). Several {} are all filled."""
    from glov.embeddings import ImageEmbeddings
    from glov.jobs.embed import TemplateFitness

    labels = torch.tensor([0, 0, 0, 1, 2, 1, 2, 1, 2, 1, 2, 1])  # class 0 is 25 %, not a third
    emb = ImageEmbeddings(F.normalize(torch.randn(12, 32), dim=-1), labels, [f"{i}.png" for i in range(12)])
    fitness = TemplateFitness(vlm, ["cat", "dog", "cow"], emb)
    assert fitness("a nice picture") == 25.0 and fitness("") == 25.0 and fitness.correct("") == "111" + "0" * 9
    assert text_classifier(vlm, ["cat"], ["a {} and a {}"]).shape == (1, 32)
    manual = F.normalize(vlm.encode_texts(["a cat and a cat"]), dim=-1)[0]
    torch.testing.assert_close(text_classifier(vlm, ["cat"], ["a {} and a {}"])[0], manual)
