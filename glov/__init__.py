"""GLOV: an LLM as an implicit optimiser of prompts for vision-language models.

The package holds all logic; the Snakemake workflow in ``workflow/`` only wires it.
It never imports Snakemake or DVC.
"""

__version__ = "0.1.0"
