"""DataBundle, the dataset and labeling registries, and the generic dataset knobs."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch

from ..errors import ConfigError, require
from ..registry import Registry
from ..utils import derive_seed, generator


@dataclass
class DataBundle:
    """A training pool and a clean test split, as tensors.

    x: N x D (tabular / sequences) or N x C x H x W (images), float32.
    y: N, int64 in [0, num_classes).
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    class_names: Optional[list[str]] = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def pool_size(self) -> int:
        return int(self.x_train.shape[0])

    def replace(self, **kw) -> "DataBundle":
        return dataclasses.replace(self, **kw)

    def to(self, device: torch.device) -> "DataBundle":
        return self.replace(
            x_train=self.x_train.to(device),
            y_train=self.y_train.to(device),
            x_test=self.x_test.to(device),
            y_test=self.y_test.to(device),
        )


DatasetLoader = Callable[..., DataBundle]
Labeling = Callable[..., DataBundle]

DATASETS: Registry[DatasetLoader] = Registry("dataset")
LABELINGS: Registry[Labeling] = Registry("labeling")

# Knobs every dataset config may carry; load_dataset handles them, loaders never see them.
GENERIC_DATASET_KEYS: tuple[str, ...] = ("name", "max_pool_size", "seed")

# Generic transforms registered by name: fn(bundle, value, generator) -> bundle, applied in
# registration order when the dataset config holds the key with a non-null value.
DATASET_TRANSFORMS: dict[str, Callable[[DataBundle, Any, torch.Generator], DataBundle]] = {}


def dataset_transform(key: str):
    """Register a generic dataset knob (e.g. resolution, num_classes) by its config key."""

    def deco(fn):
        if key in DATASET_TRANSFORMS:
            raise KeyError(f"dataset transform {key!r} registered twice")
        DATASET_TRANSFORMS[key] = fn
        return fn

    return deco


def load_dataset(cfg: dict) -> DataBundle:
    """Load the dataset named by cfg['name'] with its own knobs, then apply the generic knobs."""
    cfg = dict(cfg)
    name = cfg.get("name")
    loader = DATASETS.get(name)
    seed = int(cfg.get("seed", 0) or 0)
    own = {k: v for k, v in cfg.items() if k not in GENERIC_DATASET_KEYS and k not in DATASET_TRANSFORMS}
    bundle = loader(**own)
    for key, fn in DATASET_TRANSFORMS.items():
        if cfg.get(key) is not None:
            bundle = fn(bundle, cfg[key], generator(derive_seed(seed, hash(key) & 0xFFFF)))
    cap = cfg.get("max_pool_size")
    if cap is not None:
        require(int(cap) >= 1, "dataset.max_pool_size", cap, "must be a positive integer or null")
        if bundle.pool_size > int(cap):
            g = generator(derive_seed(seed, 7919))
            idx = torch.randperm(bundle.pool_size, generator=g)[: int(cap)]
            bundle = bundle.replace(x_train=bundle.x_train[idx], y_train=bundle.y_train[idx])
    if bundle.pool_size == 0:
        raise ConfigError(f"dataset={name!r}: the training pool is empty")
    return bundle


def apply_labeling(bundle: DataBundle, cfg: dict) -> DataBundle:
    """Apply the labeling named by cfg['name'] to the training pool, seeded by cfg['seed']."""
    cfg = dict(cfg)
    name = cfg.pop("name")
    seed = int(cfg.pop("seed", 0) or 0)
    fn = LABELINGS.get(name)
    out = fn(bundle, generator(derive_seed(seed, 104729)), **cfg)
    out.meta = dict(out.meta, labeling=name)
    return out
