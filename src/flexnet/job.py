"""`Setup`: everything a job builds from its config before any training (pipeline.setup makes it; the
oracle trains with it, summary.py reads it). Its own module so that the oracle and the summary, which
pipeline.py calls, need not import pipeline.py back.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .fit.spec import Recipe


@dataclass
class Setup:
    """Everything built from the config before any training."""

    cfg: dict
    device: torch.device
    data: Any
    plan: Any
    recipe: Recipe
    grad_tol_spec: Any
