"""The official steering semantics (OFFICIAL.md rows 9 and 10) with a KV cache, against a literal
reference written from those rows: samples one after another, every token recomputes the whole
sequence without a cache and adds the offset at the last position of the steered layer only;
with compounding the offset is multiplied by alpha before every forward, across the samples.
Logits are compared, not only tokens (a tiny model's argmax hides small differences)."""

import pytest
import torch

from conftest import random_llama
from glov.generation import CACHED, RECOMPUTED, Row, sample_rows, warpers
from glov.steering import Steering, SteeringVector

EOS, PAD = 2, 0
LAYER = 1  # of 4: two layers above it hold keys and values that the cache must get unsteered
PROMPTS = [(1, 5, 9, 3, 7, 11, 4), (1, 8, 6, 12)]


@pytest.fixture(scope="module")
def model():
    return random_llama(hidden_size=32, intermediate_size=64, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
                        max_position_embeddings=256, eos_token_id=EOS, pad_token_id=PAD)


@pytest.fixture(scope="module")
def vector(model):
    torch.manual_seed(5)
    return torch.randn(model.config.hidden_size) * 2


def logits_recorder(model, store):
    """Records the last-position logits of every forward (prefills with ``logits_to_keep=1`` too)."""
    return model.lm_head.register_forward_hook(lambda _m, _a, out: store.append(out[:, -1].detach().clone()))


@torch.inference_mode()
def literal_reference(model, prompt, layer, offset, seeds, compound=None, temperature=0.0, top_k=50, top_p=1.0, max_new_tokens=20,
                      eos=(EOS,)):
    """The official loop, literally: no cache; the hook adds the current offset at the last position."""
    samples, logits_seen = [], []
    current = offset
    for seed in seeds:
        gen = torch.Generator().manual_seed(seed)
        seq, new = list(prompt), []
        for _ in range(max_new_tokens):
            if compound is not None:
                current = compound * current
            with Steering(model, SteeringVector(layer, current), 1.0):
                logits = model(input_ids=torch.tensor([seq]), use_cache=False).logits[:, -1].float()
            logits_seen.append(logits[0].clone())
            if temperature == 0:
                token = int(logits.argmax(-1))
            else:
                for warp in warpers(temperature, top_k, top_p):
                    logits = warp(None, logits)
                token = int(torch.multinomial(torch.softmax(logits, -1), 1, generator=gen))
            new.append(token)
            seq.append(token)
            if token in eos:
                break
        samples.append(new)
    return samples, logits_seen


def ours(model, rows, layer=LAYER):
    seen: list[torch.Tensor] = []
    handle = logits_recorder(model, seen)
    try:
        return sample_rows(model, rows, layer, [EOS], PAD), seen
    finally:
        handle.remove()


@pytest.mark.parametrize("alpha", [0.5, 1.0])
@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_recomputed_semantics_equal_the_literal_official_loop(model, vector, alpha, temperature):
    """Without compounding: every row of a batch (two prompts, padding) equals the literal loop, logits included."""
    seeds = [3, 4, 5]
    rows = [Row(p, s, temperature, 50, 0.9, 20, offset=alpha * vector, semantics=RECOMPUTED) for p in PROMPTS for s in seeds]
    tokens, seen = ours(model, rows)
    decode = [s for s in seen if s.shape[0] == len(rows)]
    for b, row in enumerate(rows):
        expected, logits = literal_reference(model, row.prompt, LAYER, alpha * vector, [row.seed], None, temperature, 50, 0.9, 20)
        assert tokens[b] == expected[0]
        for t, ref in enumerate(logits):
            torch.testing.assert_close(decode[t][b].float(), ref, rtol=0, atol=2e-5)


@pytest.mark.parametrize("alpha", [0.5, 1.0])
@pytest.mark.parametrize("temperature", [0.0, 1.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_compounding_equals_the_literal_official_loop(model, vector, alpha, temperature, dtype):
    """alpha^n over the step's samples in order, in the vector's dtype; the samples of another
    chain (unsteered, and cached-steered) decode beside them without changing them."""
    seeds = [11, 12, 13, 14]
    v = vector.to(dtype)
    rows = [Row(PROMPTS[0], s, temperature, 50, 0.9, 20, offset=v, semantics=RECOMPUTED, compound=alpha, group=7) for s in seeds]
    others = [Row(PROMPTS[1], 30, temperature, 50, 0.9, 20), Row(PROMPTS[1], 31, temperature, 50, 0.9, 20, offset=vector)]
    tokens, _ = ours(model, rows + others)
    expected, _ = literal_reference(model, PROMPTS[0], LAYER, v, seeds, alpha, temperature, 50, 0.9, 20)
    assert tokens[: len(seeds)] == expected
    assert tokens[len(seeds):] == sample_rows(model, others, LAYER, [EOS], PAD)
    if alpha == 1.0:  # 1 * v == v: compounding changes nothing
        plain = [Row(PROMPTS[0], s, temperature, 50, 0.9, 20, offset=v, semantics=RECOMPUTED) for s in seeds]
        assert tokens[: len(seeds)] == sample_rows(model, plain, LAYER, [EOS], PAD)


def test_a_compounded_offset_that_underflows_leaves_the_later_samples_unsteered(model, vector):
    """float16: 0.25^n * v is exactly zero after a few dozen forwards, so later samples are plain samples."""
    v = vector.to(torch.float16)
    rows = [Row(PROMPTS[0], s, 1.0, 50, 0.9, 20, min_new_tokens=20, offset=v, semantics=RECOMPUTED, compound=0.25, group=0) for s in range(5)]
    tokens, _ = ours(model, rows)
    plain = sample_rows(model, [Row(PROMPTS[0], s, 1.0, 50, 0.9, 20, min_new_tokens=20) for s in range(5)], None, [EOS], PAD)
    assert tokens == literal_reference(model, PROMPTS[0], LAYER, v, list(range(5)), 0.25, 1.0, 50, 0.9, 20)[0]
    assert tokens[1:] == plain[1:]  # 20 forwards in, 0.25^20 * |v| is below float16's smallest subnormal


@torch.inference_mode()
def test_cached_semantics_differ_from_the_recomputed_ones_after_the_first_token(model, vector):
    """Teacher-forced on the same tokens: the first generated token's logits agree, later ones do not,
    because cached decoding keeps earlier positions steered and a recompute does not."""
    prompt, forced = list(PROMPTS[0]), [13, 21, 34, 8, 5]
    offset = SteeringVector(LAYER, 1.0 * vector)
    cached, recomputed = [], []
    with Steering(model, offset, 1.0):
        out = model(input_ids=torch.tensor([prompt]), use_cache=True)
        past = out.past_key_values
        cached.append(out.logits[0, -1])
        for token in forced:
            cached.append(model(input_ids=torch.tensor([[token]]), past_key_values=past, use_cache=True).logits[0, -1])
        for n in range(len(forced) + 1):
            recomputed.append(model(input_ids=torch.tensor([prompt + forced[:n]]), use_cache=False).logits[0, -1])
    gap = [float((c - r).abs().max()) for c, r in zip(cached, recomputed)]
    assert gap[0] < 1e-5  # the first generated token: both steer only the prompt's last position
    assert all(g > 1e-4 for g in gap[1:]), gap  # then cached decoding keeps the earlier positions steered (rounding: ~1e-6)
    # our loop's two semantics reproduce the two: cached rows == generate under a hook, recomputed rows == the recompute
    rows = [Row(PROMPTS[0], 0, 0.0, 0, 1.0, 12, offset=vector, semantics=s) for s in (CACHED, RECOMPUTED)]
    tokens, seen = ours(model, rows)
    decode = [s for s in seen if s.shape[0] == 2]
    assert float((decode[0][0] - decode[0][1]).abs().max()) == 0 and all(float((d[0] - d[1]).abs().max()) > 1e-4 for d in decode[1:])
