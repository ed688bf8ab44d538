"""Generic dataset knobs, valid on every dataset: classes, num_classes, binary, resolution.

Each transform changes the training pool and the test split alike (the test split stays a
clean copy of the same task: same classes, same merged labels, same resolution).
Order (see base.load_dataset): classes -> num_classes -> binary -> pool cap -> resolution.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..errors import ConfigError, require
from .base import DataBundle, dataset_transform

MIN_RESOLUTION, MAX_RESOLUTION = 16, 256


def _names(bundle: DataBundle) -> list[str]:
    return list(bundle.class_names) if bundle.class_names else [str(i) for i in range(bundle.num_classes)]


def _relabel(bundle: DataBundle, mapping: torch.Tensor, names: list[str], meta: dict) -> DataBundle:
    """Apply an old-label -> new-label map (-1: drop the sample) to pool and test split."""

    def apply(x, y):
        new = mapping[y.to(torch.int64).cpu()]
        keep = new >= 0
        if bool(keep.all()):
            return x, new.to(y.device)
        idx = keep.nonzero().squeeze(1)
        return x[idx.to(x.device)], new[idx].to(y.device)

    x, y = apply(bundle.x_train, bundle.y_train)
    xt, yt = apply(bundle.x_test, bundle.y_test)
    return bundle.replace(x_train=x, y_train=y, x_test=xt, y_test=yt, num_classes=len(names),
                          class_names=names, meta=dict(bundle.meta, **meta))


@dataset_transform("classes")
def class_subset(bundle: DataBundle, value: Any, g: torch.Generator) -> DataBundle:
    """Keep only the listed classes (names or indices) and relabel them 0..k-1 in the listed order."""
    if isinstance(value, (str, int)):
        value = [value]
    names = _names(bundle)
    require(isinstance(value, (list, tuple)) and len(value) >= 1, "dataset.classes", value,
            "must be a non-empty list of class names or indices")
    picked: list[int] = []
    for v in value:
        if isinstance(v, bool):
            v = None
        if isinstance(v, int) and 0 <= v < bundle.num_classes:
            i = v
        elif isinstance(v, str) and v in names:
            i = names.index(v)
        elif isinstance(v, str) and v.strip().lstrip("-").isdigit() and 0 <= int(v) < bundle.num_classes:
            i = int(v)
        else:
            shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
            raise ConfigError(f"dataset.classes: {v!r} is not a class of dataset {bundle.name!r}; "
                              f"allowed: indices 0..{bundle.num_classes - 1} or names ({shown})")
        require(i not in picked, "dataset.classes", value, "lists a class twice")
        picked.append(i)
    mapping = torch.full((bundle.num_classes,), -1, dtype=torch.int64)
    mapping[torch.tensor(picked)] = torch.arange(len(picked))
    return _relabel(bundle, mapping, [names[i] for i in picked], {"class_subset": picked})


def _merge(bundle: DataBundle, k: int, g: torch.Generator, key: str) -> DataBundle:
    c = bundle.num_classes
    require(2 <= k <= c, f"dataset.{key}", k,
            f"must be an integer in [2, {c}] (dataset {bundle.name!r} has {c} classes)")
    if k == c:
        return bundle
    perm = torch.randperm(c, generator=g)
    groups = [grp.sort().values.tolist() for grp in torch.tensor_split(perm, k)]  # sizes differ by <= 1
    mapping = torch.empty(c, dtype=torch.int64)
    for j, grp in enumerate(groups):
        mapping[torch.tensor(grp)] = j
    names = _names(bundle)
    return _relabel(bundle, mapping, ["+".join(names[i] for i in grp) for grp in groups],
                    {"class_groups": groups})


@dataset_transform("num_classes")
def num_classes(bundle: DataBundle, value: Any, g: torch.Generator) -> DataBundle:
    """Merge the original classes at random (seeded) into k groups of near-equal size."""
    require(isinstance(value, int) and not isinstance(value, bool), "dataset.num_classes", value,
            "must be an integer >= 2 or null")
    return _merge(bundle, int(value), g, "num_classes")


@dataset_transform("binary")
def binary(bundle: DataBundle, value: Any, g: torch.Generator) -> DataBundle:
    """`binary=true`: merge the classes at random (seeded) into two groups of near-equal size."""
    require(isinstance(value, bool), "dataset.binary", value, "must be true, false or null")
    if not value or bundle.num_classes == 2:
        return bundle
    return _merge(bundle, 2, g, "binary")


def resize(x: torch.Tensor, res: int, chunk: int = 1024) -> torch.Tensor:
    """N x C x H x W (uint8 or float) -> float32 N x C x res x res, bilinear with antialiasing."""
    out = torch.empty((x.shape[0], x.shape[1], res, res), dtype=torch.float32, device=x.device)
    for i in range(0, x.shape[0], chunk):
        xb = x[i:i + chunk]
        xb = xb.to(torch.float32).div_(255.0) if xb.dtype == torch.uint8 else xb.to(torch.float32)
        out[i:i + chunk] = F.interpolate(xb, size=(res, res), mode="bilinear", antialias=True,
                                         align_corners=False)
    return out


def check_resolution(value: Any) -> int:
    require(isinstance(value, int) and not isinstance(value, bool)
            and MIN_RESOLUTION <= value <= MAX_RESOLUTION, "dataset.resolution", value,
            f"must be an integer in [{MIN_RESOLUTION}, {MAX_RESOLUTION}] (pixels per side) or null")
    return int(value)


@dataset_transform("resolution", stage="inputs")
def resolution(bundle: DataBundle, value: Any, g: torch.Generator) -> DataBundle:
    """Resize images to value x value (antialiased); pool and test split alike."""
    res = check_resolution(value)
    if bundle.x_train.dim() != 4:
        raise ConfigError(f"dataset.resolution={value!r}: dataset {bundle.name!r} has no images "
                          f"(input shape {tuple(bundle.input_shape)}); use dataset.resolution=null")
    if tuple(bundle.x_train.shape[2:]) == (res, res) and tuple(bundle.x_test.shape[2:]) == (res, res):
        return bundle
    return bundle.replace(x_train=resize(bundle.x_train, res), x_test=resize(bundle.x_test, res),
                          meta=dict(bundle.meta, resolution=res))
