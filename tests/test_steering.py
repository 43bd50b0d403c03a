"""Steering maths on a random 3-layer Llama: exact shifts, right place, no leftovers, no compounding.
How the cached and the official (recomputed) semantics differ: tests/test_official_steering.py."""

import pytest
import torch

from glov.steering import (Steering, SteeringError, SteeringVector, decoder_layers, default_layer, iter_hooks,
                           mean_hidden_state, resolve_layer)

LAYER = 1


def hidden_at(model, ids, layer, **kw):
    """Layer ``layer``'s output as the next layer receives it (transformers' own
    ``hidden_states`` capture runs before user hooks, so it would miss the steering)."""
    seen = []

    def grab(module, args, kwargs):
        seen.append(args[0] if args else kwargs["hidden_states"])

    handle = decoder_layers(model)[layer + 1].register_forward_pre_hook(grab, with_kwargs=True)
    try:
        out = model(input_ids=ids, **kw)
    finally:
        handle.remove()
    return out, seen[0]


@pytest.fixture
def ids():
    return torch.tensor([[1, 5, 9, 3, 7]])


@pytest.fixture
def vec(tiny_llama):
    torch.manual_seed(1)
    return SteeringVector(LAYER, torch.randn(tiny_llama.config.hidden_size))


def test_adds_exactly_alpha_v_at_last_position_of_layer(tiny_llama, ids, vec):
    with torch.no_grad():
        _, plain = hidden_at(tiny_llama, ids, LAYER)
        with Steering(tiny_llama, vec, alpha=0.75):
            _, steered = hidden_at(tiny_llama, ids, LAYER)
    diff = steered - plain
    torch.testing.assert_close(diff[0, -1], 0.75 * vec.vector, rtol=0, atol=1e-5)
    assert torch.count_nonzero(diff[0, :-1]) == 0  # earlier positions untouched
    with torch.no_grad():  # layers before l see nothing
        _, below_plain = hidden_at(tiny_llama, ids, LAYER - 1)
        with Steering(tiny_llama, vec, alpha=0.75):
            _, below = hidden_at(tiny_llama, ids, LAYER - 1)
    assert torch.equal(below, below_plain)


def test_alpha_zero_and_removed_hook_give_identical_logits(tiny_llama, ids, vec):
    with torch.no_grad():
        plain = tiny_llama(input_ids=ids).logits
        with Steering(tiny_llama, vec, alpha=0.0):
            zero = tiny_llama(input_ids=ids).logits
        with Steering(tiny_llama, vec, alpha=2.0):
            steered = tiny_llama(input_ids=ids).logits
        after = tiny_llama(input_ids=ids).logits
    assert torch.equal(plain, zero) and torch.equal(plain, after)
    assert not torch.allclose(plain[0, -1], steered[0, -1])
    assert list(iter_hooks(tiny_llama)) == []


def test_hook_removed_even_when_body_raises(tiny_llama, vec):
    with pytest.raises(RuntimeError):
        with Steering(tiny_llama, vec, alpha=1.0):
            raise RuntimeError("boom")
    assert list(iter_hooks(tiny_llama)) == []


def test_with_kv_cache_each_new_token_is_shifted_once_by_alpha_v(tiny_llama, ids, vec):
    """Prefill, then cached decoding calls of one token each. At every call, a hooked and a
    hook-free call on copies of the same cache differ at layer l by exactly alpha * v: the shift
    is applied once per token and never compounds (the official code's alpha**n)."""
    import copy

    alpha = 0.5
    with torch.no_grad():
        with Steering(tiny_llama, vec, alpha):
            past = tiny_llama(input_ids=ids, use_cache=True).past_key_values
        for token in (4, 8, 2):
            nxt = torch.tensor([[token]])
            _, plain = hidden_at(tiny_llama, nxt, LAYER, past_key_values=copy.deepcopy(past), use_cache=True)
            with Steering(tiny_llama, vec, alpha):
                out, steered = hidden_at(tiny_llama, nxt, LAYER, past_key_values=past, use_cache=True)
            assert steered.shape[1] == 1
            torch.testing.assert_close(steered[0, -1] - plain[0, -1], alpha * vec.vector, rtol=0, atol=1e-5)
            past = out.past_key_values
    assert list(iter_hooks(tiny_llama)) == []


def test_mean_hidden_excludes_first_token(tiny_llama, ids):
    with torch.no_grad():
        h = tiny_llama(input_ids=ids, output_hidden_states=True).hidden_states[LAYER + 1]
    v = mean_hidden_state(tiny_llama, ids, LAYER)
    torch.testing.assert_close(v.vector, h[0, 1:].mean(0), rtol=0, atol=1e-6)
    single = mean_hidden_state(tiny_llama, ids[:, :1], LAYER)
    assert single.vector.shape == (tiny_llama.config.hidden_size,)


def test_vector_arithmetic_and_layer_checks(tiny_llama):
    a, b = SteeringVector(1, torch.tensor([1.0, 2.0])), SteeringVector(1, torch.tensor([0.5, 0.5]))
    assert torch.equal((0.5 * (a - b)).vector, torch.tensor([0.25, 0.75]))
    assert (a + b).norm == pytest.approx((1.5**2 + 2.5**2) ** 0.5)
    with pytest.raises(SteeringError):
        a - SteeringVector(2, torch.zeros(2))
    assert len(decoder_layers(tiny_llama)) == 3
    assert default_layer(32) == 17 and default_layer(30) == 16
    with pytest.raises(SteeringError, match="beyond the model's depth"):
        resolve_layer(3, 0.55, 3)
    with pytest.raises(SteeringError, match="no decoder layers"):
        decoder_layers(torch.nn.Linear(2, 2))
