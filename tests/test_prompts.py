from glov.optimizer.prompts import PLACEHOLDER, in_context_examples, meta_prompt
from glov.optimizer.state import Candidate


def hist(accs):
    return [Candidate(f"t{i} {{}}", a, i) for i, a in enumerate(accs)]


def test_top_and_bottom_k_of_whole_history():
    h = hist([50, 10, 90, 30, 70, 20, 60])  # |h| = 7 -> k = min(5, 3) = 3
    chosen = [c.accuracy for c in in_context_examples(h, topk=5)]
    assert chosen == [10, 20, 30, 60, 70, 90]  # worst three then best three, ascending


def test_k_is_capped_by_topk_and_half_the_history():
    assert len(in_context_examples(hist(range(20)), topk=5)) == 10
    assert len(in_context_examples(hist([1, 2, 3]), topk=5)) == 2
    assert in_context_examples(hist([1]), topk=5) == []


def test_ties_rank_the_earlier_template_higher():
    h = [Candidate("late {}", 50, 3), Candidate("early {}", 50, 1), Candidate("low {}", 10, 0), Candidate("x {}", 5, 2)]
    top = in_context_examples(h, topk=1)
    assert [c.template for c in top] == ["x {}", "early {}"]


def test_meta_prompt_lists_history_with_integer_accuracies_and_placeholder():
    h = [Candidate("a photo of a {}.", 40.26, 0), Candidate("a sketch of a {}.", 55.5, 1)]
    msgs = meta_prompt("pets", "photos of pets", h, topk=5)
    assert msgs[0]["role"] == "system" and msgs[1]["role"] == "user"
    user = msgs[1]["content"]
    assert "Dataset: pets." in user and "Description: photos of pets." in user
    assert f"1: a photo of a {PLACEHOLDER}. --- Accuracy: 40" in user
    assert f"2: a sketch of a {PLACEHOLDER}. --- Accuracy: 56" in user
    assert "{}" not in user


def test_first_step_shows_the_base_template():
    msgs = meta_prompt("pets", "photos of pets", [Candidate("a photo of a {}.", 61.9, 0)], topk=5)
    assert f"1: a photo of a {PLACEHOLDER}. --- Accuracy: 62" in msgs[1]["content"]
