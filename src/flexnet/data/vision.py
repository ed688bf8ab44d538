"""mnist, cifar10, cifar100 read with torchvision's dataset classes from dataset.root.

Nothing is downloaded unless `dataset.download=true`. Images are returned as uint8
N x C x H x W (base.load_dataset turns them into float32 in [0, 1] after class subsets and
pool caps, so only the kept samples are converted).
"""
from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..errors import ConfigError
from .base import DATASETS, DataBundle
from .files import data_root, missing, unreadable


def _mnist_gunzip(raw: Path) -> None:
    """torchvision's MNIST reads the uncompressed IDX files; unpack `*-ubyte.gz` found beside them."""
    if not raw.is_dir():
        return
    for gz in raw.glob("*-ubyte.gz"):
        dst = gz.with_suffix("")
        if not dst.exists():
            tmp = dst.with_name(dst.name + f".tmp{os.getpid()}")
            try:
                with gzip.open(gz, "rb") as fi, open(tmp, "wb") as fo:
                    shutil.copyfileobj(fi, fo)
            except (OSError, EOFError) as e:
                tmp.unlink(missing_ok=True)
                raise unreadable("mnist", gz, e)
            os.replace(tmp, dst)


@DATASETS.register("mnist")
def mnist(root: Optional[str] = None, download: bool = False) -> DataBundle:
    """MNIST from <root>/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]."""
    from torchvision.datasets import MNIST

    base = data_root(root)
    raw = base / "MNIST" / "raw"
    _mnist_gunzip(raw)
    parts = []
    for train in (True, False):
        try:
            ds = MNIST(str(base), train=train, download=bool(download))
        except RuntimeError as e:
            if "not found" in str(e).lower():
                raise missing("mnist", raw) from None
            raise unreadable("mnist", raw, e) from None
        except (OSError, ValueError, AssertionError, IndexError) as e:
            if download:
                raise ConfigError(f"dataset=mnist: download into {raw} failed ({type(e).__name__}: {e})") from None
            raise unreadable("mnist", raw, e) from None
        x, y = ds.data, ds.targets
        if x.dim() != 3 or x.shape[0] != y.shape[0]:
            raise unreadable("mnist", raw, ValueError(f"images {tuple(x.shape)} vs labels {tuple(y.shape)}"))
        parts += [x.unsqueeze(1).contiguous(), y.to(torch.int64)]
    return DataBundle("mnist", parts[0], parts[1], parts[2], parts[3], num_classes=10,
                      class_names=[str(i) for i in range(10)], meta={"root": str(base)})


def _cifar(name: str, cls, root: Optional[str], download: bool, verify: bool) -> DataBundle:
    base = data_root(root)
    folder = base / cls.base_folder
    if not verify:  # the same reader without the md5 check (e.g. re-packed or generated batches)
        cls = type(cls.__name__, (cls,), {
            "train_list": [[f, None] for f, _ in cls.train_list],
            "test_list": [[f, None] for f, _ in cls.test_list],
            "meta": dict(cls.meta, md5=None),
        })
    parts = []
    for train in (True, False):
        try:
            ds = cls(str(base), train=train, download=bool(download))
        except RuntimeError as e:
            files = [f for f, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
            absent = [f for f in files if not (folder / f).is_file()]
            if absent:
                raise missing(name, folder, what=f"{absent[0]} not found") from None
            raise ConfigError(f"dataset={name}: files in {folder} fail torchvision's md5 check (corrupt or "
                              f"not the official release); re-fetch with `dataset.download=true` after "
                              f"removing them, or accept them with `dataset.verify=false`") from None
        except Exception as e:  # truncated or foreign pickles: UnpicklingError, EOFError, KeyError, ...
            raise unreadable(name, folder, e) from None
        x = np.asarray(ds.data)
        y = np.asarray(ds.targets, dtype=np.int64)
        if x.ndim != 4 or x.shape[0] != y.shape[0] or x.shape[-1] != 3:
            raise unreadable(name, folder, ValueError(f"images {x.shape} vs labels {y.shape}"))
        parts += [torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))), torch.from_numpy(y)]
        classes = list(ds.classes)
    return DataBundle(name, parts[0], parts[1], parts[2], parts[3], num_classes=len(classes),
                      class_names=classes, meta={"root": str(base)})


@DATASETS.register("cifar10")
def cifar10(root: Optional[str] = None, download: bool = False, verify: bool = True) -> DataBundle:
    """CIFAR-10 from <root>/cifar-10-batches-py (python pickle batches + batches.meta)."""
    from torchvision.datasets import CIFAR10

    return _cifar("cifar10", CIFAR10, root, download, verify)


@DATASETS.register("cifar100")
def cifar100(root: Optional[str] = None, download: bool = False, verify: bool = True) -> DataBundle:
    """CIFAR-100 (fine labels) from <root>/cifar-100-python (train, test, meta)."""
    from torchvision.datasets import CIFAR100

    return _cifar("cifar100", CIFAR100, root, download, verify)
