"""Image embedding throughput of the pipeline (decode, preprocess, forward) vs the bare forward.

Both embed the same N animal-mnist images with the same VLM and batch size in one process; the
bare forward gets the preprocessed pixels ready-made. The ratio bare/pipeline says how much of
the embed_images job is the model (target ≥ 0.8: data loading must not dominate).

    python benchmarks/bench_embedding.py [--n-images 640] [--batch-size 64]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from harness import command_line, offline_vlm, timed_pair
from glov.data.sources import export_task
from glov.vlm import open_image, embed_image_files


def run(n_images: int = 640, batch_size: int = 64, repeats: int = 5) -> dict:
    vlm = offline_vlm()
    with tempfile.TemporaryDirectory() as tmp:
        export_task("animal_mnist", tmp, -(-n_images // 10))
        files = sorted(Path(tmp).rglob("*.png"))[:n_images]
        pixels = torch.stack([vlm.preprocess(open_image(f)) for f in files])

        def bare() -> None:
            for i in range(0, len(files), batch_size):
                vlm.encode_images(pixels[i : i + batch_size])

        bare()  # warm-up
        pipeline_s, bare_s = timed_pair(lambda: embed_image_files(vlm, files, batch_size, desc="bench"), bare, repeats)
    image_size = tuple(pixels.shape[-2:])
    return {
        "images": len(files), "batch_size": batch_size, "input_size": f"28x28 PNG -> {image_size[0]}x{image_size[1]}",
        "pipeline_images_per_s": round(len(files) / pipeline_s, 1), "bare_forward_images_per_s": round(len(files) / bare_s, 1),
        "bare_over_pipeline": round(bare_s / pipeline_s, 3),
    }


def markdown(r: dict) -> str:
    ok = "✔" if r["bare_over_pipeline"] >= 0.8 else "✘"
    return f"""## Image embedding (`bench_embedding.py`)

{r["images"]} animal-mnist images ({r["input_size"]}), batch {r["batch_size"]}, the offline VLM's image tower. Median of 5, measured alternately.

| path | images/s | ratio |
|---|---:|---|
| `embed_image_files` (open, decode, preprocess, forward) | {r["pipeline_images_per_s"]} | runs at **{100 * r["bare_over_pipeline"]:.0f} %** of the bare forward's speed (target ≥ 80 %) {ok} |
| bare `encode_images` on ready pixels | {r["bare_forward_images_per_s"]} | 1.00 |
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n-images", type=int, default=640)
    ap.add_argument("--batch-size", type=int, default=64)
    command_line(run, ap)


if __name__ == "__main__":
    main()
