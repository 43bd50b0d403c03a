"""Several GLOV chains sampled in one batch vs the same chains one call each, and how often the
batch changes a sampled candidate.

Each chain has its own meta-prompt (its own history, so prompt lengths differ and the batch is
left-padded) and 10 candidates with their own seeds, as a `glov_steps` job samples them. Timing
uses exactly ``--tokens`` new tokens per candidate (``min_new_tokens`` = ``max_new_tokens``) so
both ways generate the same work; the comparison of outputs samples freely (stops at EOS) and
counts the candidates whose text differs between the batched and the one-chain-per-call runs.

    python benchmarks/bench_chains.py [--chains 2 5 10] [--candidates 10] [--tokens 50]
"""

from __future__ import annotations

import argparse

from harness import command_line, offline_llm, timed_pair
from glov.llm import Request, Sampling
from glov.optimizer import candidate_seeds
from glov.optimizer.prompts import meta_prompt
from glov.optimizer.state import Candidate

WORDS = ["blurry", "bright", "dark", "small", "large", "clean", "noisy", "sharp", "grey", "tiny", "old", "new"]


def chain_requests(n_chains: int, candidates: int, sampling: Sampling) -> list[Request]:
    """``n_chains`` meta-prompts whose histories differ in length and content."""
    out = []
    for c in range(n_chains):
        history = [Candidate(f"a {w} photo of a {{}}.", 30.0 + 3 * i + c, i) for i, w in enumerate(WORDS[: 2 + c % 10])]
        messages = meta_prompt("animal_mnist", "grayscale silhouettes of ten animal species", history, topk=5)
        out.append(Request(messages, candidate_seeds(0, "animal_mnist", c + 1, candidates), sampling))
    return out


def run(chains: tuple[int, ...] = (2, 5, 10), candidates: int = 10, tokens: int = 50) -> dict:
    llm = offline_llm()
    fixed = Sampling(max_new_tokens=tokens, min_new_tokens=tokens)
    llm.sample(chain_requests(1, 2, Sampling(max_new_tokens=4)))  # warm-up
    timing = {}
    for n in chains:
        requests = chain_requests(n, candidates, fixed)
        separate, batched = timed_pair(lambda: [llm.sample([r]) for r in requests], lambda: llm.sample(requests), repeats=1)
        timing[n] = {"separate_s": round(separate, 2), "batched_s": round(batched, 2),
                     "tokens_per_s_separate": round(n * candidates * tokens / separate, 1),
                     "tokens_per_s_batched": round(n * candidates * tokens / batched, 1), "speedup": round(separate / batched, 2)}
    free = chain_requests(max(chains), candidates, Sampling(max_new_tokens=tokens))
    together = [t for texts in llm.sample(free) for t in texts]
    alone = [t for r in free for t in llm.sample([r])[0]]
    return {
        "candidates": candidates, "new_tokens_per_candidate": tokens, "timing": timing,
        "invariance": {"chains": max(chains), "candidates": len(together), "differ": sum(a != b for a, b in zip(together, alone))},
    }


def markdown(r: dict) -> str:
    rows = "\n".join(
        f"| {n} | {t['separate_s']} | {t['batched_s']} | {t['tokens_per_s_separate']} | {t['tokens_per_s_batched']} | **{t['speedup']}×** |"
        for n, t in r["timing"].items()
    )
    inv = r["invariance"]
    return f"""## Chains in one batch (`bench_chains.py`)

GLOV meta-prompts of different lengths (left-padded in the batch), {r["candidates"]} candidates per chain × exactly
{r["new_tokens_per_candidate"]} new tokens, SmolLM2-135M-Instruct (fp32), one run each, measured alternately
(`HFLLM.sample` of all chains at once vs one `HFLLM.sample` per chain).

| chains | one call per chain (s) | one batch (s) | tokens/s, per chain | tokens/s, batched | batched speed-up |
|---:|---:|---:|---:|---:|---:|
{rows}

Batch invariance on this model: of {inv["candidates"]} candidates ({inv["chains"]} chains sampled freely up to
{r["new_tokens_per_candidate"]} tokens), **{inv["differ"]}** differ between the batched run and one call per chain
(each candidate has its own generator; a difference can only come from floating-point rounding at another
batch shape flipping a sampled token).
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--chains", type=int, nargs="+", default=[2, 5, 10])
    ap.add_argument("--candidates", type=int, default=10)
    ap.add_argument("--tokens", type=int, default=50)
    command_line(lambda chains, candidates, tokens: run(tuple(chains), candidates, tokens), ap)


if __name__ == "__main__":
    main()
