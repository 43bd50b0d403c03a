"""Steered batched KV-cache sampling vs (a) unsteered batched ``generate`` vs (b) the reference loop.

(b) is how the official GLOV code generates: candidates one at a time, and every new token
recomputes the whole sequence (no KV cache), with the steering shift at the last position.
All three generate exactly the same number of tokens (``--tokens`` per candidate) from the same
meta-prompt with the same model, in one process, so the ratios compare like with like.

    python benchmarks/bench_generation.py [--candidates 10] [--tokens 50] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from glov.llm import HFLLM, LLMSpec, Sampling, Steer, cache_dequantised, resolve_llm
from glov.optimizer.prompts import meta_prompt
from glov.optimizer.state import Candidate
from glov.steering import Steering, default_layer

CACHE = Path("resources/models/llm/smollm2-135m-instruct")


def load_offline_llm() -> HFLLM:
    if not CACHE.is_dir():
        cache_dequantised(resolve_llm("smollm2-135m-instruct"), CACHE)
    return HFLLM.load(LLMSpec(str(CACHE)))


def sample_next(logits: torch.Tensor, s: Sampling) -> torch.Tensor:
    """Temperature, top-k, then top-p (nucleus) sampling of one token, as HF does."""
    logits = logits / s.temperature
    kth = torch.topk(logits, s.top_k).values[..., -1, None]
    logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    sorted_p, idx = probs.sort(descending=True)
    drop = sorted_p.cumsum(-1) - sorted_p > s.top_p
    sorted_p[drop] = 0
    choice = torch.multinomial(sorted_p / sorted_p.sum(-1, keepdim=True), 1)
    return idx.gather(-1, choice)


@torch.inference_mode()
def reference_loop(llm: HFLLM, messages, n: int, s: Sampling, steer: Steer) -> list[str]:
    prompt = llm.encode_chat(messages)
    outs = []
    with Steering(llm.model, steer.vector, steer.alpha):
        for _ in range(n):
            seq = prompt
            for _ in range(s.max_new_tokens):
                logits = llm.model(input_ids=seq, use_cache=False).logits[:, -1]
                seq = torch.cat([seq, sample_next(logits, s)], dim=1)
            outs.append(llm.tokenizer.decode(seq[0, prompt.shape[1] :]))
    return outs


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--candidates", type=int, default=10)
    ap.add_argument("--tokens", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    llm = load_offline_llm()
    history = [Candidate(f"a {w} photo of a {{}}.", 40.0 + i, i) for i, w in enumerate(["blurry", "bright", "dark", "small", "large", "clean"])]
    messages = meta_prompt("animal_mnist", "grayscale silhouettes of ten animal species", history, topk=5)
    s = Sampling(max_new_tokens=args.tokens, min_new_tokens=args.tokens)
    layer = default_layer(llm.n_layers)
    steer = Steer(llm.mean_hidden(history[-1].template, layer) - llm.mean_hidden(history[-2].template, layer), 1.0)
    n_tokens = args.candidates * args.tokens

    llm.generate(messages, args.candidates, s, seed=0)  # warm-up
    unsteered = timed(lambda: llm.generate(messages, args.candidates, s, seed=0), args.repeats)
    steered = timed(lambda: llm.generate(messages, args.candidates, s, seed=0, steer=steer), args.repeats)
    torch.manual_seed(0)
    reference = timed(lambda: reference_loop(llm, messages, args.candidates, s, steer), 1)

    result = {
        "prompt_tokens": int(llm.encode_chat(messages).shape[1]),
        "candidates": args.candidates,
        "new_tokens_per_candidate": args.tokens,
        "threads": args.threads,
        "seconds": {"steered_batched_kv": round(steered, 3), "unsteered_batched_generate": round(unsteered, 3), "reference_loop": round(reference, 3)},
        "tokens_per_s": {"steered_batched_kv": round(n_tokens / steered, 1), "unsteered_batched_generate": round(n_tokens / unsteered, 1), "reference_loop": round(n_tokens / reference, 1)},
        "speedup_vs_reference": round(reference / steered, 1),
        "overhead_vs_unsteered_pct": round(100 * (steered / unsteered - 1), 1),
        "targets": {"speedup_vs_reference_at_least": 20, "overhead_vs_unsteered_pct_at_most": 10},
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
