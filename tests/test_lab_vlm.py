"""The offline lab VLM: its contrastive loss, a short real training run, and the open_clip round trip."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file

from glov.config import VLMTrainConfig
from glov.data.sources import training_images
from glov.lab_vlm import TRAINING_RECORD, contrastive_loss, same_class_mask, train_minilm
from glov.io import read_json
from glov.vlm import load_vlm
from glov.registry import resolve_vlm


def test_contrastive_loss_on_a_hand_made_case():
    scale = torch.tensor(math.log(10.0))
    eye = torch.eye(2)
    # two images, two distinct captions, perfectly aligned: CE = log(1 + e^-10) each
    expected = math.log(1 + math.exp(-10))
    assert math.isclose(float(contrastive_loss(eye, eye, torch.tensor([0, 1]), scale)), expected, rel_tol=1e-3)
    # three images that share caption 0 with one other caption: no image is a negative of another
    images = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    loss = contrastive_loss(images, eye, torch.tensor([0, 0, 1]), scale)
    assert math.isclose(float(loss), expected, rel_tol=1e-3)


def test_other_captions_of_an_images_class_are_left_out_not_negatives():
    scale = torch.tensor(math.log(10.0))
    # images 0 and 1 are bears with two phrasings (captions 0, 1); image 2 is unlabelled, image 3 a cat
    targets = torch.tensor([0, 1, 2, 3])
    same = same_class_mask(["a/bear", "a/bear", "", "a/cat"], targets, 4)
    assert same.tolist() == [[True, True, False, False], [True, True, False, False], [False] * 4, [False, False, False, True]]
    images = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    captions = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    masked = contrastive_loss(images, captions, targets, scale, same)
    # a bear's logits: its caption 10, the unlabelled one 0, the cat's -10; the other bear caption drops out
    bear = math.log(1 + math.exp(-10) + math.exp(-20))
    unlabelled = math.log(1 + 3 * math.exp(-10))  # nothing masked: every caption is a negative
    cat = math.log(3 + math.exp(10))  # its own caption points away from it: logits 0, 0, 10, and 0 for the target
    expected = (2 * bear + unlabelled + cat) / 4
    assert math.isclose(float(masked), expected, rel_tol=1e-4)
    assert float(contrastive_loss(images, captions, targets, scale)) > float(masked)  # unmasked, the bears compete


@pytest.mark.slow
def test_short_training_run_learns_saves_and_loads_through_open_clip(tmp_path):
    cfg = VLMTrainConfig(sources=("animal_mnist",), max_images_per_source=256, epochs=3, batch_size=64, seed=0)
    models = tmp_path / "models"
    out = train_minilm(models / "lab-minilm", cfg, progress=False)
    record = read_json(out / TRAINING_RECORD)
    losses = record["loss_per_epoch"]
    assert len(losses) == 3 and losses[2] < losses[0] - 0.1  # it learns
    trained_on = sorted(training_images("animal_mnist"), key=lambda im: im.uid)[:256]
    assert record["n_images"] == {"animal_mnist": 256}
    assert record["n_captions"] == len({c for im in trained_on for c in im.captions}) > 10 * 3  # phrasings, not bare names
    # the trained folder is self-contained and loads by registry name through open_clip's local-dir path
    vlm = load_vlm(resolve_vlm("lab-minilm", None, None, models))
    saved = load_file(str(out / "open_clip_model.safetensors"))
    for name, tensor in vlm.model.state_dict().items():
        torch.testing.assert_close(tensor, saved[name], atol=0, rtol=0)
    # the text transformer stayed locked: it equals the pretrained MiniLM
    from glov.lab_vlm import build_untrained_minilm

    untrained = load_file(str(build_untrained_minilm(tmp_path / "untrained") / "open_clip_model.safetensors"))
    locked = [k for k in saved if k.startswith("text.transformer.")]
    assert locked and all(torch.equal(saved[k], untrained[k]) for k in locked)
    assert not torch.equal(saved["visual.conv1.weight"], untrained["visual.conv1.weight"])
    # the same seed gives the same run
    again = train_minilm(tmp_path / "again", cfg, progress=False)
    assert read_json(again / TRAINING_RECORD)["loss_per_epoch"] == losses


# ------------------------------------------------------------------------- issue 29 items 2 and 3

TINY = VLMTrainConfig(sources=("animal_mnist",), max_images_per_source=64, epochs=1, batch_size=32, seed=0)


def test_an_interrupted_training_leaves_no_model_and_a_partial_folder_is_refused(tmp_path, monkeypatch):
    """Training is built under a temporary name and renamed into place with its record: a run
    stopped after the first save point leaves nothing at the model's path, and a folder without
    its record (from an older run) is refused by every loader with the command that rebuilds it."""
    import glov.lab_vlm as lab
    from glov.registry import VLMError

    class Stopped(BaseException):
        pass

    def stop(*args, **kwargs):
        raise Stopped()

    monkeypatch.setattr(lab, "collect_training_set", stop)  # after init_minilm and the first save_open_clip_dir
    target = tmp_path / "models" / "lab-minilm-untrained"
    with pytest.raises(Stopped):
        lab.train_minilm(target, TINY, progress=False)
    assert not target.exists() and not list((tmp_path / "models").iterdir())  # nothing half-built stays behind
    lab.build_untrained_minilm(target)  # a complete folder, then its record lost (as old code's kill left it)
    (target / TRAINING_RECORD).unlink()
    with pytest.raises(VLMError, match=r"never finished .*snakemake --cores all"):
        load_vlm(resolve_vlm("lab-minilm-untrained", None, None, tmp_path / "models"))


@pytest.mark.slow
def test_the_trained_weights_do_not_depend_on_the_cores_the_machine_has(tmp_path):
    """Gradients' reductions are split by torch's thread count: training pins it (vlm.train.threads),
    so one and two available cores give the same weights file. Each run in its own process,
    restricted to those cores as a machine with fewer would be."""
    import subprocess
    import sys

    script = (
        "import os, sys\n"
        "os.sched_setaffinity(0, set(range(int(sys.argv[2]))))\n"
        "from glov.config import VLMTrainConfig\n"
        "from glov.lab_vlm import train_minilm\n"
        "cfg = VLMTrainConfig(sources=('animal_mnist',), max_images_per_source=128, epochs=2, batch_size=32, seed=0)\n"
        "train_minilm(sys.argv[1], cfg, progress=False)\n"
    )
    digests = {}
    for cores in (1, 2):
        out = tmp_path / f"cores{cores}"
        r = subprocess.run([sys.executable, "-c", script, str(out), str(cores)], capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, r.stderr[-3000:]
        record = read_json(out / TRAINING_RECORD)
        digests[cores] = record["weights_sha256"]
        assert record["environment"]["torch_threads"] == "2" and record["environment"]["torch"] == torch.__version__
        assert record["environment"]["cpu"]
    assert digests[1] == digests[2]
