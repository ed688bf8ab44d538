"""Labelings: pure transforms of the training pool, seeded, identical across attempts.

The test split is never touched: it keeps true inputs and true labels, so the
generalisation gap (train minus test accuracy) keeps its meaning.
"""
from __future__ import annotations

import torch

from .base import LABELINGS, DataBundle


@LABELINGS.register("semantic")
def semantic(bundle: DataBundle, g: torch.Generator) -> DataBundle:
    """The dataset's own labels."""
    return bundle


@LABELINGS.register("random_labels")
def random_labels(bundle: DataBundle, g: torch.Generator) -> DataBundle:
    """Labels drawn uniformly over the classes, independently of the inputs (Zhang et al.)."""
    y = torch.randint(0, bundle.num_classes, (bundle.pool_size,), generator=g)
    return bundle.replace(y_train=y.to(bundle.y_train.device))
