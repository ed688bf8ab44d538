"""Datasets that work offline with no files: mnist1d (generated), digits (bundled), gaussian."""
from __future__ import annotations

import hashlib
import json
import os
import random
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, require
from .base import DATASETS, DataBundle


def cache_dir() -> Path:
    """Where generated data is cached: $FLEXNET_CACHE, else ~/.cache/flexnet."""
    root = os.environ.get("FLEXNET_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "flexnet")
    return Path(root)


CACHED_TENSORS = ("x", "y", "x_test", "y_test")
# mnist1d's classes are balanced by construction: a cache whose class counts leave [1/4, 3] x the fair
# share of any class is not what the generator made
BALANCE = (0.25, 3.0)


def _digest(d: dict) -> str:
    h = hashlib.sha256()
    for k in CACHED_TENSORS:
        t = d[k].contiguous().cpu()
        h.update(f"{k}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def _verify_cache(path: Path, d: dict) -> None:
    """A cached generated set is the one generated: its recorded checksum (caches written since it is
    recorded) or, for an older cache, its class histogram; else one line naming the file."""
    fix = f"delete {path} and it is generated again"
    want = d.get("sha256")
    if isinstance(want, str):
        if _digest(d) != want:
            raise ConfigError(f"FLEXNET_CACHE: {path} does not match its recorded checksum (edited or corrupted); "
                              f"{fix}")
        return
    for split in ("y", "y_test"):
        y = d[split]
        counts = torch.bincount(y.clamp(0, 9), minlength=10) if y.numel() else torch.zeros(10)
        fair = y.numel() / 10
        if fair >= 20 and (int(y.min()) < 0 or int(y.max()) > 9 or counts.min() < BALANCE[0] * fair
                          or counts.max() > BALANCE[1] * fair):
            raise ConfigError(f"FLEXNET_CACHE: {path} has class counts {counts.tolist()} in {split!r}, not the "
                              f"generator's balanced classes; {fix}")


@DATASETS.register("mnist1d")
def mnist1d(num_samples: int = 40000, train_split: float = 0.9, generator_seed: int = 42, **overrides) -> DataBundle:
    """MNIST-1D (Greydanus 2020), generated offline by the `mnist1d` package and cached on disk.

    The generator reseeds numpy's and python's global RNGs; their states are saved and
    restored around it so nothing else in the process is affected.
    """
    require(int(num_samples) >= 20, "dataset.num_samples", num_samples, "must be an integer >= 20")
    require(0.0 < float(train_split) < 1.0, "dataset.train_split", train_split, "must lie in (0, 1)")
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args(as_dict=True)
    args.update(overrides)
    args.update(num_samples=int(num_samples), train_split=float(train_split), seed=int(generator_seed))
    args.pop("url", None)
    key = hashlib.sha256(json.dumps(args, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir() / f"mnist1d-{key}.pt"
    if path.exists() and not path.is_file():
        raise ConfigError(f"FLEXNET_CACHE: {path} is not a file; move it away (the data is generated again)")
    if path.exists():
        try:
            d = torch.load(path, weights_only=True)
        except Exception:  # a corrupt cache file is regenerated, not fatal
            d = None
        want = {"x": 2, "y": 1, "x_test": 2, "y_test": 1}
        if d is not None and not (isinstance(d, dict) and all(
                isinstance(d.get(k), torch.Tensor) and d[k].dim() == dim for k, dim in want.items())):
            d = None  # readable but mis-structured (another file, an old format): regenerated too
    else:
        d = None
    if d is None:
        from mnist1d.utils import ObjectView

        np_state, py_state = np.random.get_state(), random.getstate()
        try:
            raw = make_dataset(ObjectView(dict(args)))
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)
        d = {
            "x": torch.as_tensor(raw["x"], dtype=torch.float32),
            "y": torch.as_tensor(raw["y"], dtype=torch.int64),
            "x_test": torch.as_tensor(raw["x_test"], dtype=torch.float32),
            "y_test": torch.as_tensor(raw["y_test"], dtype=torch.int64),
        }
        d["sha256"] = _digest(d)  # verified whenever the cache is read
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        torch.save(d, tmp)
        os.replace(tmp, path)
    _verify_cache(path, d)
    return DataBundle("mnist1d", d["x"], d["y"], d["x_test"], d["y_test"], num_classes=10,
                      class_names=[str(i) for i in range(10)])


@DATASETS.register("digits")
def digits(test_fraction: float = 0.2, split_seed: int = 0) -> DataBundle:
    """scikit-learn's bundled 8x8 digits (1797 images) as N x 1 x 8 x 8 in [0, 1]."""
    require(0.0 < float(test_fraction) < 1.0, "dataset.test_fraction", test_fraction, "must lie in (0, 1)")
    from sklearn.datasets import load_digits

    raw = load_digits()
    x = torch.as_tensor(raw.data, dtype=torch.float32).reshape(-1, 1, 8, 8) / 16.0
    y = torch.as_tensor(raw.target, dtype=torch.int64)
    g = torch.Generator().manual_seed(int(split_seed))
    perm = torch.randperm(len(y), generator=g)
    n_test = int(round(len(y) * float(test_fraction)))
    te, tr = perm[:n_test], perm[n_test:]
    return DataBundle("digits", x[tr], y[tr], x[te], y[te], num_classes=10,
                      class_names=[str(i) for i in range(10)])


@DATASETS.register("gaussian")
def gaussian(num_samples: int = 10000, num_test: int = 2000, dim: int = 32, num_centers: int = 10,
             separation: float = 1.0, data_seed: int = 0) -> DataBundle:
    """Synthetic Gaussian classes: one mean per class ~ N(0, separation^2 I), unit-variance noise.

    `num_centers` is the number of generated classes (the generic `classes` knob selects a subset).
    """
    classes = num_centers
    require(int(num_samples) >= 1, "dataset.num_samples", num_samples, "must be a positive integer")
    require(int(dim) >= 1, "dataset.dim", dim, "must be a positive integer")
    require(int(classes) >= 2, "dataset.num_centers", classes, "must be an integer >= 2")
    g = torch.Generator().manual_seed(int(data_seed))
    means = torch.randn(int(classes), int(dim), generator=g) * float(separation)

    def draw(n):
        y = torch.randint(0, int(classes), (n,), generator=g)
        return means[y] + torch.randn(n, int(dim), generator=g), y

    x, y = draw(int(num_samples))
    xt, yt = draw(int(num_test))
    return DataBundle("gaussian", x, y, xt, yt, num_classes=int(classes))
