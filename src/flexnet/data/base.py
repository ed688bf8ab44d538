"""DataBundle, the dataset and labeling registries, and the generic dataset knobs."""
from __future__ import annotations

import dataclasses
import inspect
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch

from ..errors import ConfigError, reject_unknown, require
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

# Knobs every dataset config may carry; load_dataset handles them. A loader only sees one of
# them when its signature names it (e.g. `imagenet` takes `resolution` to pick its prepared file).
GENERIC_DATASET_KEYS: tuple[str, ...] = ("name", "max_pool_size", "max_test_size", "seed")

# Generic transforms registered by name: fn(bundle, value, generator) -> bundle, applied when the
# dataset config holds the key with a non-null value. Stage "labels" transforms (class subsets,
# merging) run before the pool cap, stage "inputs" transforms (resizing) after it, so a capped
# pool is resized only for the samples it keeps. Within a stage: registration order.
DATASET_TRANSFORMS: dict[str, Callable[[DataBundle, Any, torch.Generator], DataBundle]] = {}
TRANSFORM_STAGE: dict[str, str] = {}


def dataset_transform(key: str, stage: str = "labels"):
    """Register a generic dataset knob (e.g. resolution, num_classes) by its config key."""
    if stage not in ("labels", "inputs"):
        raise ValueError(f"dataset transform stage must be 'labels' or 'inputs', not {stage!r}")

    def deco(fn):
        if key in DATASET_TRANSFORMS:
            raise KeyError(f"dataset transform {key!r} registered twice")
        DATASET_TRANSFORMS[key] = fn
        TRANSFORM_STAGE[key] = stage
        return fn

    return deco


def key_seed(seed: int, key: str) -> int:
    """A seed for one generic knob, stable across processes (str hash() is salted per process)."""
    return derive_seed(seed, zlib.crc32(key.encode()) & 0xFFFFFFFF)


def _cap(x: torch.Tensor, y: torch.Tensor, cap, key: str, seed: int, salt: int):
    require(isinstance(cap, int) and not isinstance(cap, bool) and cap >= 1, f"dataset.{key}", cap,
            "must be a positive integer or null")
    if x.shape[0] <= cap:
        return x, y
    idx = torch.randperm(x.shape[0], generator=generator(derive_seed(seed, salt)))[:cap]
    return x[idx], y[idx]


def to_float(x: torch.Tensor) -> torch.Tensor:
    """Images stored as uint8 (0..255) -> float32 in [0, 1]; float inputs -> float32."""
    if x.dtype == torch.uint8:
        return x.to(torch.float32).div_(255.0)
    return x.to(torch.float32) if x.dtype != torch.float32 else x


def load_dataset(cfg: dict) -> DataBundle:
    """Load the dataset named by cfg['name'] with its own knobs, then apply the generic knobs.

    Order: loader -> label-stage transforms (classes, num_classes, binary) -> pool/test caps ->
    input-stage transforms (resolution) -> float32. Loaders may return uint8 images (possibly
    memory-mapped): only the rows that survive the subset and the caps are ever read.
    """
    cfg = dict(cfg)
    name = cfg.get("name")
    loader = DATASETS.get(name)
    seed = int(cfg.get("seed", 0) or 0)
    generic = set(GENERIC_DATASET_KEYS) | set(DATASET_TRANSFORMS)
    accepted = set(inspect.signature(loader).parameters)
    own = {k: v for k, v in cfg.items() if k not in generic or (k in accepted and k != "name")}
    if not any(p.kind == p.VAR_KEYWORD for p in inspect.signature(loader).parameters.values()):
        reject_unknown(sorted(own), accepted, "dataset.", f"unknown knob for dataset={name!r}",
                       sorted((accepted | generic) - {"name"}))
    bundle = loader(**own)
    for stage in ("labels", "inputs"):
        if stage == "inputs":
            x, y = bundle.x_train, bundle.y_train
            if cfg.get("max_pool_size") is not None:
                x, y = _cap(x, y, cfg["max_pool_size"], "max_pool_size", seed, 7919)
            xt, yt = bundle.x_test, bundle.y_test
            if cfg.get("max_test_size") is not None:
                xt, yt = _cap(xt, yt, cfg["max_test_size"], "max_test_size", seed, 7927)
            bundle = bundle.replace(x_train=x, y_train=y, x_test=xt, y_test=yt)
        for key, fn in DATASET_TRANSFORMS.items():
            if TRANSFORM_STAGE[key] == stage and cfg.get(key) is not None:
                bundle = fn(bundle, cfg[key], generator(key_seed(seed, key)))
    bundle = bundle.replace(x_train=to_float(bundle.x_train), x_test=to_float(bundle.x_test),
                            y_train=bundle.y_train.to(torch.int64), y_test=bundle.y_test.to(torch.int64))
    if bundle.pool_size == 0:
        raise ConfigError(f"dataset={name!r}: the training pool is empty")
    check_pool(bundle, f"dataset={name!r}")
    return bundle


def check_pool(bundle: DataBundle, where: str) -> None:
    """The data as loaded (or as labeled) is something an EMC can be measured on, else ConfigError:
    labels are integers in [0, num_classes) in the pool and the test split, the pool holds at least 2
    classes, inputs are finite. (A generated set's cache is also checked by its loader: embedded.py.)"""
    c = int(bundle.num_classes)
    for split, y in (("training pool", bundle.y_train), ("test split", bundle.y_test)):
        if y.numel() == 0:
            continue
        if y.dtype.is_floating_point or y.dtype == torch.bool:
            raise ConfigError(f"{where}: the {split}'s labels are {y.dtype}, not class indices")
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi >= c:
            raise ConfigError(f"{where}: the {split} has labels in {lo}..{hi}, outside the {c} classes "
                              f"0..{c - 1}; the data or its cache is not what the loader expects")
    counts = torch.bincount(bundle.y_train.cpu(), minlength=max(c, 1))
    present = int((counts > 0).sum())
    if c < 2 or present < 2:
        only = int(counts.argmax())
        name = bundle.class_names[only] if bundle.class_names and only < len(bundle.class_names) else str(only)
        raise ConfigError(f"{where}: the training pool holds a single class ({name!r}: all {bundle.pool_size} "
                          f"samples), so any model fits it; an EMC needs at least 2 classes (check the data, "
                          f"its label column, dataset.classes or dataset.num_classes)")
    if not bool(torch.isfinite(bundle.x_train).all()):
        raise ConfigError(f"{where}: the training pool has NaN or infinite inputs")


def apply_labeling(bundle: DataBundle, cfg: dict) -> DataBundle:
    """Apply the labeling named by cfg['name'] to the training pool, seeded by cfg['seed']."""
    cfg = dict(cfg)
    name = cfg.pop("name")
    seed = int(cfg.pop("seed", 0) or 0)
    fn = LABELINGS.get(name)
    out = fn(bundle, generator(derive_seed(seed, 104729)), **cfg)
    out.meta = dict(out.meta, labeling=name)
    check_pool(out, f"labeling={name!r}")
    return out
