import pytest
import torch
import torch.nn.functional as F

from conftest import write_imagefolder
from glov.vlm import VLMError, embed_image_files, load_vlm, resolve_vlm, text_classifier
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


def test_missing_and_unknown_models_say_how_to_fix(tmp_path):
    with pytest.raises(VLMError, match="no open_clip model at"):
        load_vlm(resolve_vlm("x", f"local-dir:{tmp_path}", None, "."))
    with pytest.raises(VLMError, match="rule build_vlm"):
        load_vlm(resolve_vlm("lab-minilm-untrained", None, None, tmp_path))
    with pytest.raises(VLMError, match="known: "):
        resolve_vlm("nope", None, None, ".")
    spec = resolve_vlm("vit-b-32", None, None, ".")
    assert (spec.arch, spec.pretrained) == ("ViT-B-32", "openai")
