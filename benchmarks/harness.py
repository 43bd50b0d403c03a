"""Shared by the benchmarks: timing, the machine description, and the offline models they use.

Every benchmark measures a candidate and its baseline in the same process on the same inputs, and
reports their ratio: absolute figures depend on the machine, ratios much less.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Callable

from glov import paths

REPO = Path(__file__).resolve().parents[1]
VLM_DIR = REPO / paths.VLM_DIR.format(vlm="lab-minilm-untrained")  # where the workflow builds them
LLM_DIR = REPO / paths.LLM_DIR.format(llm="smollm2-135m-instruct")


def _seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def timed(fn: Callable[[], object], repeats: int = 3) -> float:
    """Median wall seconds of ``repeats`` calls."""
    return statistics.median(_seconds(fn) for _ in range(repeats))


def timed_pair(a: Callable[[], object], b: Callable[[], object], repeats: int = 5) -> tuple[float, float]:
    """Median wall seconds of ``a`` and ``b``, measured alternately so that drift in the machine's
    speed (other load, clock changes) hits both alike."""
    pairs = [(_seconds(a), _seconds(b)) for _ in range(repeats)]
    return statistics.median(t for t, _ in pairs), statistics.median(t for _, t in pairs)


def command_line(run: Callable[..., dict], parser: argparse.ArgumentParser) -> None:
    """Run one benchmark from its script: the parser's options (named like ``run``'s arguments)
    plus ``--threads``; print the result as JSON."""
    import torch

    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    options = vars(parser.parse_args())
    torch.set_num_threads(options.pop("threads"))
    print(json.dumps(run(**options), indent=2))


def machine() -> str:
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "unknown CPU") if Path("/proc/cpuinfo").exists() else platform.processor()
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{cpu}, {os.cpu_count()} cores, {mem_gib:.0f} GiB RAM, {gpu}; Python {platform.python_version()}, "
            f"torch {torch.__version__}, {torch.get_num_threads()} torch threads")


def offline_vlm():
    """The default offline VLM (built as the workflow's train_lab_vlm rule builds it untrained, if missing): speed does not depend on the weights."""
    from glov.lab_vlm import build_untrained_minilm
    from glov.vlm import load_vlm
    from glov.registry import VLMSpec

    if not (VLM_DIR / "open_clip_config.json").exists():
        build_untrained_minilm(VLM_DIR)
    return load_vlm(VLMSpec(f"local-dir:{VLM_DIR}"))


def offline_llm():
    """SmolLM2-135M-Instruct, dequantised once as the workflow's cache_llm rule does."""
    from glov.llm import HFLLM, cache_dequantised
    from glov.registry import LLMSpec, resolve_llm

    if not LLM_DIR.is_dir():
        cache_dequantised(resolve_llm("smollm2-135m-instruct"), LLM_DIR)
    return HFLLM.load(LLMSpec(str(LLM_DIR)))
