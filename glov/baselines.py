"""Training-free prompt baselines that need no LLM: one fixed template, or a fixed ensemble.

``ds_temp`` is CLIP's hand-written 80-template ImageNet ensemble (as shipped with open_clip), the
strongest template-only baseline in the GLOV paper's Table 1.
"""

from __future__ import annotations


def ds_temp_templates() -> list[str]:
    """The 80 OpenAI ImageNet templates as ``str.format`` templates with one ``{}``."""
    from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

    return [make("{}") for make in OPENAI_IMAGENET_TEMPLATES]
