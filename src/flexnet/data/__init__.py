"""Datasets (-> tensors) and labelings (pure tensor transforms).

A dataset loader is registered under its config file name and called with the
dataset config's own knobs as keyword arguments; it returns a `DataBundle`
(training pool + clean test split). Generic knobs shared by every dataset
(`max_pool_size`, ...) are applied afterwards by `load_dataset`.
A labeling takes a bundle and a `torch.Generator` and returns a new bundle
whose *training pool* is relabelled/transformed; the test split stays clean.
"""
from __future__ import annotations

from .base import DATASETS, LABELINGS, DataBundle, GENERIC_DATASET_KEYS, apply_labeling, load_dataset

# importing the option modules fills the registries
from . import embedded, labelings, transforms, vision, imagefolder, tabular  # noqa: F401,E402

__all__ = ["DATASETS", "LABELINGS", "DataBundle", "GENERIC_DATASET_KEYS", "apply_labeling", "load_dataset"]
