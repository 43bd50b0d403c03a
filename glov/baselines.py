"""The baseline methods the tables compare GLOV with, and what each needs from the workflow.

``ds_temp`` is CLIP's hand-written 80-template ImageNet ensemble (as shipped with open_clip), the
strongest template-only baseline in the GLOV paper's Table 1. CuPL, DCLIP and AWT score LLM
descriptions of the classes (rule describe_classes), LLM-Opt runs the LLM itself; S-TEMP and
DS-TEMP use no randomness, so they run once (first seed).
"""

from __future__ import annotations

DESCRIPTION_STYLE = {"cupl": "sentences", "dclip": "descriptors", "awt": "sentences"}
DETERMINISTIC = ("s_temp", "ds_temp")


def ds_temp_templates() -> list[str]:
    """The 80 OpenAI ImageNet templates as ``str.format`` templates with one ``{}``."""
    from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

    return [make("{}") for make in OPENAI_IMAGENET_TEMPLATES]
