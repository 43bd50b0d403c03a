import pytest

from glov.optimizer.parse import MAX_CHARS, parse_template


@pytest.mark.parametrize(
    "completion, template",
    [
        ("a photo of a <category>.", "a photo of a {}."),
        ('"a blurry photo of a <category>."', "a blurry photo of a {}."),
        ("1. a sketch of a <category>.", "a sketch of a {}."),
        ("3: a drawing of a <category>. --- Accuracy: 41", "a drawing of a {}."),
        ("Template: a black and white <category> silhouette", "a black and white {} silhouette"),
        ("Sure! Here it is:\n- `a cartoon <category>`\nHope it helps", "a cartoon {}"),
        ('The new template is "an outline of a <category>." and it is great', "an outline of a {}."),
        ("A: a {class} shape", "a {} shape"),
        ("a photo of a <Category>.", "a photo of a {}."),
    ],
)
def test_valid_templates(completion, template):
    assert parse_template(completion).template == template


@pytest.mark.parametrize(
    "completion, reason",
    [
        ("", "empty"),
        ("   \n  ", "empty"),
        ("I cannot help with that.", "no <category> placeholder"),
        ("<category> next to a <category>", "2 times"),
        ("a {0} of a <category>", "stray braces"),
        ("<category>", "nothing but the placeholder"),
        ("a photo of a <category> " + "very " * 100, f"longer than {MAX_CHARS}"),
    ],
)
def test_invalid_templates_give_a_reason(completion, reason):
    parsed = parse_template(completion)
    assert parsed.template is None and reason in parsed.reason


def test_parsed_template_formats_with_exactly_the_class_name():
    t = parse_template("a close-up photo of a <category>, a type of animal.").template
    assert t.format("zebra") == "a close-up photo of a zebra, a type of animal."
