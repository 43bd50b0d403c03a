import pytest
import torch

from glov.embeddings import CacheError, ImageEmbeddings, load_embeddings, save_embeddings


@pytest.fixture
def emb():
    return ImageEmbeddings(torch.nn.functional.normalize(torch.randn(5, 4), dim=-1), torch.arange(5), [f"{i}.png" for i in range(5)])


def test_round_trip(tmp_path, emb):
    save_embeddings(tmp_path / "e.pt", emb)
    back = load_embeddings(tmp_path / "e.pt", emb.paths)
    assert torch.equal(back.features, emb.features) and torch.equal(back.labels, emb.labels) and back.paths == emb.paths


def test_truncated_cache_is_detected(tmp_path, emb):
    f = tmp_path / "e.pt"
    save_embeddings(f, emb)
    f.write_bytes(f.read_bytes()[:100])
    with pytest.raises(CacheError, match=f"{f} is corrupt"):
        load_embeddings(f)


def test_tampered_or_stale_cache_is_detected(tmp_path, emb):
    f = tmp_path / "e.pt"
    d = {"features": emb.features + 1, "labels": emb.labels, "paths": emb.paths, "sha256": "0" * 64}
    torch.save(d, f)
    with pytest.raises(CacheError, match="checksum"):
        load_embeddings(f)
    save_embeddings(f, emb)
    with pytest.raises(CacheError, match="other images"):
        load_embeddings(f, ["other.png"])
    with pytest.raises(CacheError, match="missing"):
        load_embeddings(tmp_path / "nope.pt")
