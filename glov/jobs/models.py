"""Rules train_lab_vlm and cache_llm: the models the workflow builds itself (offline lab VLM,
a GGUF LLM dequantised once)."""

from __future__ import annotations

from pathlib import Path

from glov import config as C
from glov.io import read_json
from glov.jobs.common import track, vlm_spec
from glov.llm import cache_dequantised
from glov.registry import resolve_llm


def train_lab_vlm(params: C.Params, out_dir: str | Path) -> None:
    """Build (and for ``lab-minilm`` train) the offline VLM; its loss curve, the weights' sha256 and
    the environment they are conditional on go to MLflow."""
    from glov.lab_vlm import BUILDERS, TRAINING_RECORD

    with track(params, f"train_lab_vlm/{params.vlm.name}", {}) as tracker:
        out = BUILDERS[vlm_spec(params).builder](out_dir, params.vlm.train)
        record_path = Path(out) / TRAINING_RECORD
        record = read_json(record_path)
        for epoch, loss in enumerate(record.get("loss_per_epoch", []), start=1):
            tracker.log_metrics({"train_loss": loss}, step=epoch)
        tracker.log_metrics({f"n_images/{s}": n for s, n in record.get("n_images", {}).items()})
        tracker.set_tags({"weights_sha256": record["weights_sha256"], **{f"env.{k}": v for k, v in record["environment"].items()}})
        tracker.log_artifact(record_path)

def cache_llm(params: C.Params, out_dir: str | Path) -> None:
    with track(params, f"cache_llm/{params.llm.name}", {}):
        cache_dequantised(resolve_llm(params.llm.name, params.llm.path, params.llm.gguf_file), out_dir)
