"""The batched sampling loop on a random tiny Llama (float32, CPU): Hugging Face's sampling, and a
row's tokens that do not depend on what else is in the batch."""

import pytest
import torch

from conftest import random_llama
from glov.generation import Row, sample_rows
from glov.steering import Steering, SteeringVector

EOS, PAD = 2, 0
PROMPT = (1, 5, 9, 3, 7, 11, 4)


@pytest.fixture(scope="module")
def model():
    return random_llama(max_position_embeddings=128, eos_token_id=EOS, pad_token_id=PAD)


def hf_sample(model, prompt, seed, steer=None, **kw):
    """``model.generate`` on one row, the global generator seeded as our row's generator is."""
    ids = torch.tensor([list(prompt)])
    torch.manual_seed(seed)
    args = dict(pad_token_id=PAD, eos_token_id=EOS, attention_mask=torch.ones_like(ids), **kw)
    if steer is not None:
        with Steering(model, *steer):
            out = model.generate(ids, **args)
    else:
        out = model.generate(ids, **args)
    return out[0, len(prompt):].tolist()


def run(model, rows, layer=None):
    return sample_rows(model, rows, layer, [EOS], PAD)


@pytest.mark.parametrize("temperature, top_k, top_p", [(1.0, 50, 0.9), (0.7, 20, 1.0), (1.3, 0, 0.5), (1.0, 5, 0.95)])
def test_one_row_samples_exactly_what_hf_generate_samples(model, temperature, top_k, top_p):
    for seed in range(6):
        ours = run(model, [Row(PROMPT, seed, temperature, top_k, top_p, max_new_tokens=30)])[0]
        assert ours == hf_sample(model, PROMPT, seed, do_sample=True, temperature=temperature, top_k=top_k, top_p=top_p, max_new_tokens=30)


def test_greedy_and_min_new_tokens_follow_hf(model):
    assert run(model, [Row(PROMPT, 0, temperature=0, max_new_tokens=25)])[0] == hf_sample(model, PROMPT, 0, do_sample=False, max_new_tokens=25)
    for seed in range(4):
        ours = run(model, [Row(PROMPT, seed, max_new_tokens=30, min_new_tokens=30)])[0]
        assert len(ours) == 30 and EOS not in ours
        assert ours == hf_sample(model, PROMPT, seed, do_sample=True, top_k=50, top_p=1.0, max_new_tokens=30, min_new_tokens=30)


def test_a_steered_row_is_hf_generate_under_a_steering_hook(model):
    """Cached semantics: alpha * v at the last prompt position and at every generated position."""
    torch.manual_seed(3)
    vec = SteeringVector(1, torch.randn(16))
    moved = 0
    for seed in range(4):
        ours = run(model, [Row(PROMPT, seed, max_new_tokens=30, offset=1.5 * vec.vector)], layer=1)[0]
        assert ours == hf_sample(model, PROMPT, seed, steer=(vec, 1.5), do_sample=True, top_k=50, top_p=1.0, max_new_tokens=30)
        moved += ours != run(model, [Row(PROMPT, seed, max_new_tokens=30)])[0]
    assert moved  # the offset really changes what is sampled


def chains():
    """Three chains: prompts of different lengths (left padding), one steered, ten candidates each."""
    torch.manual_seed(5)
    offset = 2.0 * torch.randn(16)
    prompts = [PROMPT, (1, 8, 8, 21), (1, 30, 31, 32, 33, 34, 35, 36, 37, 38, 12)]
    return [[Row(p, 100 * c + k, 1.0, 50, 0.9, 40, offset=offset if c == 1 else None) for k in range(10)] for c, p in enumerate(prompts)]


def test_a_chains_candidates_do_not_depend_on_the_batch(model):
    groups = chains()
    alone = [run(model, rows, layer=1) for rows in groups]
    together = run(model, [r for rows in groups for r in rows], layer=1)
    assert together == [t for chain in alone for t in chain]
    one_by_one = [run(model, [r], layer=1)[0] for r in groups[2]]  # unpadded, batch of 1
    assert one_by_one == alone[2]
    reordered = run(model, [*groups[2][::-1], *groups[0]], layer=1)  # another batch size and order
    assert reordered == [*alone[2][::-1], *alone[0]]
    assert len({tuple(t) for t in together}) > 20  # the candidates really differ from each other


def test_bad_rows_are_refused(model):
    with pytest.raises(ValueError, match="semantics"):
        run(model, [Row(PROMPT, 0, semantics="nope")])
    with pytest.raises(ValueError, match="steering layer"):
        run(model, [Row(PROMPT, 0, offset=torch.zeros(16))])
    assert run(model, []) == []


def test_requests_cut_into_batches_of_at_most_max_rows_give_the_same_completions(tiny_llm_dir):
    from glov.llm import HFLLM, Request, Sampling, row_batches
    from glov.registry import LLMSpec

    requests = [Request([{"role": "user", "content": "name a template " * (i + 1)}], tuple(range(10 * i, 10 * i + 3)), Sampling(max_new_tokens=8))
                for i in range(4)]
    assert [len(b) for b in row_batches(requests, 6)] == [2, 2] and [len(b) for b in row_batches(requests, 2)] == [1, 1, 1, 1]
    outputs = {rows: HFLLM.load(LLMSpec(str(tiny_llm_dir)), max_rows=rows).sample(requests) for rows in (1, 6, 64)}
    assert outputs[1] == outputs[6] == outputs[64]
    assert [len(o) for o in outputs[64]] == [3, 3, 3, 3] and len({t for o in outputs[64] for t in o}) > 1


def test_a_row_may_stop_at_its_own_end_tokens(model):
    """The official guided loop stops at the tokenizer's EOS only: a row's ``eos`` replaces the batch's."""
    seeds = range(8)
    plain = run(model, [Row(PROMPT, seed, max_new_tokens=40) for seed in seeds])
    stop_at = 17
    own = run(model, [Row(PROMPT, seed, max_new_tokens=40, eos=(stop_at,)) for seed in seeds])
    for a, b in zip(plain, own):  # the same draws until one of the two stops
        cut = next((i + 1 for i, t in enumerate(a) if t == stop_at), None)
        if cut is not None:
            assert b == a[:cut]
        else:
            assert b[: len(a)] == a and (len(b) == 40 or b[-1] == stop_at)
    assert any(a[-1] == EOS and len(b) > len(a) for a, b in zip(plain, own))  # the batch's EOS did not stop it
    assert any(b[-1] == stop_at for b in own)
