import pytest
import torch
import torch.nn.functional as F

from glov.optimizer.state import Candidate
from glov.scoring import ensemble, select_step, top1_accuracy, top_templates


def test_top1_accuracy_on_hand_built_case():
    images = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [0.8, 0.6]])
    labels = torch.tensor([0, 1, 1, 1])
    classes = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert top1_accuracy(images, labels, classes) == pytest.approx(75.0)  # the last image is closer to class 0
    with pytest.raises(ValueError):
        top1_accuracy(images[:0], labels[:0], classes)


def test_ensemble_is_normalised_mean_of_normalised_weights():
    a, b = torch.tensor([[3.0, 0.0]]), torch.tensor([[0.0, 0.5]])
    torch.testing.assert_close(ensemble([a, b]), F.normalize(torch.tensor([[1.0, 1.0]]), dim=-1))


def test_top_templates_best_first_and_up_to_a_step():
    h = [Candidate("a {}", 40, 0), Candidate("b {}", 60, 1), Candidate("c {}", 50, 2), Candidate("d {}", 90, 3)]
    assert top_templates(h, 3) == ["d {}", "b {}", "c {}"]
    assert top_templates(h, 3, up_to_step=1) == ["b {}", "a {}"]


def test_select_step_prefers_highest_val_then_earliest():
    sel = select_step({0: 40.0, 1: 55.0, 2: 55.0, 3: 50.0}, {s: [f"t{s} {{}}"] for s in range(4)})
    assert (sel.step, sel.templates, sel.val_accuracy) == (1, ["t1 {}"], 55.0)
