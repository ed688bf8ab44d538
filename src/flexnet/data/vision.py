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
    """CIFAR's python batches: md5 of the official release checked (verify=true), and every file
    unpickled through an allowlist (numpy arrays and plain containers: safe_pickle.py) either way."""
    from torchvision.datasets.utils import check_integrity, download_and_extract_archive

    from .safe_pickle import load_pickle

    base = data_root(root)
    folder = base / cls.base_folder
    files = [(f, m, True) for f, m in cls.train_list] + [(f, m, False) for f, m in cls.test_list]
    meta = (cls.meta["filename"], cls.meta["md5"])
    absent = [f for f, _ in [(f, m) for f, m, _ in files] + [meta] if not (folder / f).is_file()]
    if absent and download:
        try:
            download_and_extract_archive(cls.url, str(base), filename=cls.filename, md5=cls.tgz_md5)
        except Exception as e:
            raise ConfigError(f"dataset={name}: download into {base} failed ({type(e).__name__}: {e})") from None
        absent = [f for f in absent if not (folder / f).is_file()]
    if absent:
        raise missing(name, folder, what=f"{absent[0]} not found")
    if verify:
        for f, md5 in [(f, m) for f, m, _ in files] + [meta]:
            if not check_integrity(str(folder / f), md5):
                raise ConfigError(f"dataset={name}: {folder / f} fails the md5 check of the official release "
                                  f"(corrupt, truncated or not CIFAR); remove it and fetch the release again "
                                  f"(dataset.download=true, or copy the official files into {folder})")

    def read(f: str) -> dict:
        try:
            d = load_pickle(folder / f)
        except Exception as e:  # truncated, foreign or unsafe pickles: UnpicklingError, EOFError, ...
            raise unreadable(name, folder / f, e) from None
        if not isinstance(d, dict):
            raise unreadable(name, folder / f, ValueError(f"a {type(d).__name__}, not a dict"))
        return d

    lab_key = "fine_labels" if "fine_label_names" in cls.meta.get("key", "") else "labels"
    parts = []
    for train in (True, False):
        xs, ys = [], []
        for f, _, is_train in files:
            if is_train != train:
                continue
            d = read(f)
            try:
                xs.append(np.asarray(d["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
                ys.append(np.asarray(d.get(lab_key, d.get("labels")), dtype=np.int64))
            except (KeyError, ValueError, TypeError) as e:
                raise unreadable(name, folder / f, e) from None
        x, y = np.concatenate(xs), np.concatenate(ys)
        if x.shape[0] != y.shape[0] or y.ndim != 1:
            raise unreadable(name, folder, ValueError(f"images {x.shape} vs labels {y.shape}"))
        parts += [torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y)]
    m = read(meta[0])
    try:
        classes = [str(c) for c in m[cls.meta["key"]]]
    except (KeyError, TypeError) as e:
        raise unreadable(name, folder / meta[0], e) from None
    if not all(0 <= int(t.min()) and int(t.max()) < len(classes) for t in (parts[1], parts[3]) if t.numel()):
        raise unreadable(name, folder, ValueError(f"labels outside 0..{len(classes) - 1}"))
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
