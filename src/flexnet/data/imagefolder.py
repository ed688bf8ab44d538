"""`imagenet`: any class-per-folder image tree (ImageNet, or a generated set such as ImageNet-20MS).

Decoding a large tree for every job would dominate the cost, so it is prepared once:

    python -m flexnet.data.prepare dataset=imagenet dataset.root=/data/imagenet dataset.resolution=64

writes, under `<prepared or root>/flexnet-prepared/r<res>/`, for each split (train, val):
`<split>_x.npy` (uint8 N x 3 x res x res, read memory-mapped), `<split>_y.npy` (int64 labels)
and `classes.json`. A job opens the arrays memory-mapped: only the rows that survive a class
subset (`dataset.classes`) and the pool cap (`dataset.max_pool_size`) are read from disk.

Tree layout: `<root>/train/<class>/<image>` and optionally `<root>/val/<class>/<image>`; without
a `val` folder a seeded `test_fraction` of every class is held out. Images are resized so the
shorter side is `res` (antialiased) and centre-cropped to res x res.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..errors import ConfigError, require
from .base import DATASETS, DataBundle
from .files import data_root, unreadable
from .transforms import check_resolution

IMG_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp", ".jpeg")


def prepared_dir(root: Path, prepared: Optional[str], res: int) -> Path:
    base = Path(os.path.expanduser(str(prepared))) if prepared else root / "flexnet-prepared"
    return base / f"r{res}"


def scan_tree(root: Path, test_fraction: float, split_seed: int) -> tuple[list[str], dict[str, list[tuple[str, int]]]]:
    """Class names (sorted folder names of train/) and the (path, label) list of every split."""
    train = root / "train"
    if not train.is_dir():
        raise ConfigError(f"dataset=imagenet: no class folders at {train} (expected {train}/<class>/<image>); "
                          f"set dataset.root to the tree's top folder")
    classes = sorted(d.name for d in train.iterdir() if d.is_dir())
    if not classes:
        raise ConfigError(f"dataset=imagenet: {train} holds no class folders")

    def files(split_dir: Path) -> list[tuple[str, int]]:
        out = []
        for i, c in enumerate(classes):
            d = split_dir / c
            if d.is_dir():
                out += [(str(p), i) for p in sorted(d.iterdir()) if p.suffix.lower() in IMG_EXTENSIONS]
        return out

    splits = {"train": files(train)}
    if (root / "val").is_dir():
        splits["val"] = files(root / "val")
    else:
        require(0.0 <= float(test_fraction) < 1.0, "dataset.test_fraction", test_fraction, "must lie in [0, 1)")
        rng = np.random.default_rng(int(split_seed))
        tr, te = [], []
        for i in range(len(classes)):
            items = [f for f in splits["train"] if f[1] == i]
            order = rng.permutation(len(items))
            k = int(round(len(items) * float(test_fraction)))
            te += [items[j] for j in sorted(order[:k])]
            tr += [items[j] for j in sorted(order[k:])]
        splits = {"train": tr, "val": te}
    if not splits["train"]:
        raise ConfigError(f"dataset=imagenet: no images ({', '.join(IMG_EXTENSIONS[:4])}, ...) under {train}")
    return classes, splits


def decode(path: str, res: int) -> np.ndarray:
    """One image -> uint8 3 x res x res: shorter side resized to res (antialiased), centre crop."""
    from PIL import Image
    from torchvision.transforms.v2 import functional as TF

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            t = TF.pil_to_tensor(im)
    except Exception as e:  # PIL raises UnidentifiedImageError, OSError, SyntaxError, ...
        raise unreadable("imagenet", path, e) from None
    t = TF.resize(t, res, antialias=True)
    t = TF.center_crop(t, [res, res])
    return t.numpy()


def prepare_imagefolder(root: Path, res: int, out: Path, test_fraction: float = 0.1, split_seed: int = 0,
                        workers: int = 0, log=print) -> Path:
    """Decode the tree once into memory-mappable uint8 arrays; returns the output folder."""
    classes, splits = scan_tree(root, test_fraction, split_seed)
    out.mkdir(parents=True, exist_ok=True)
    for split, items in splits.items():
        n = len(items)
        tmp = out / f"{split}_x.npy.tmp{os.getpid()}"
        x = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, 3, res, res))
        paths = [p for p, _ in items]
        try:
            if workers and workers > 1:
                from concurrent.futures import ThreadPoolExecutor

                with ThreadPoolExecutor(int(workers)) as ex:
                    for i, arr in enumerate(ex.map(lambda p: decode(p, res), paths, chunksize=64)):
                        x[i] = arr
            else:
                for i, p in enumerate(paths):
                    x[i] = decode(p, res)
                    if log and (i + 1) % 10000 == 0:
                        log(f"  {split}: {i + 1}/{n}")
            x.flush()
        except BaseException:  # a corrupt image (or Ctrl-C): no full-size partial file is left behind
            del x
            tmp.unlink(missing_ok=True)
            raise
        del x
        os.replace(tmp, out / f"{split}_x.npy")
        np.save(out / f"{split}_y.npy", np.asarray([c for _, c in items], dtype=np.int64))
        if log:
            log(f"{split}: {n} images -> {out / (split + '_x.npy')}")
    (out / "classes.json").write_text(json.dumps({"classes": classes, "resolution": res,
                                                  "source": str(root)}, indent=1))
    return out


def _open(path: Path) -> np.ndarray:
    try:
        # copy-on-write mapping: nothing is read until a row is indexed, and torch gets a writable array
        return np.load(path, mmap_mode="c")
    except Exception as e:
        raise unreadable("imagenet", path, e) from None


@DATASETS.register("imagenet")
def imagenet(root: Optional[str] = None, resolution: Optional[int] = None, prepared: Optional[str] = None,
             test_fraction: float = 0.1, split_seed: int = 0, download: bool = False,
             workers: int = 0) -> DataBundle:
    """A prepared class-per-folder tree at `resolution`, memory-mapped (see the module docstring).

    `workers` only matters to flexnet.data.prepare (decoding threads)."""
    if download:
        raise ConfigError("dataset.download=true: ImageNet-style trees cannot be downloaded by flexnet; "
                          "place the tree under dataset.root and run python -m flexnet.data.prepare")
    require(resolution is not None, "dataset.resolution", resolution,
            "dataset=imagenet needs a resolution (the one its prepared arrays were written at), e.g. 64")
    res = check_resolution(resolution)
    base = data_root(root)
    out = prepared_dir(base, prepared, res)
    meta_file = out / "classes.json"
    if not meta_file.is_file():
        raise ConfigError(
            f"dataset=imagenet: no prepared arrays at {out}; run once: python -m flexnet.data.prepare "
            f"dataset=imagenet dataset.root={base} dataset.resolution={res}"
            + (f" dataset.prepared={prepared}" if prepared else ""))
    try:
        classes = json.loads(meta_file.read_text())["classes"]
    except Exception as e:
        raise unreadable("imagenet", meta_file, e) from None
    parts = []
    for split in ("train", "val"):
        x = _open(out / f"{split}_x.npy")
        y = _open(out / f"{split}_y.npy")
        if x.ndim != 4 or x.shape[1:] != (3, res, res) or x.dtype != np.uint8 or y.shape != (x.shape[0],):
            raise unreadable("imagenet", out / f"{split}_x.npy",
                             ValueError(f"array {x.dtype} {x.shape} with labels {y.shape}; expected uint8 "
                                        f"N x 3 x {res} x {res}: prepare it again"))
        parts += [torch.from_numpy(x), torch.from_numpy(np.asarray(y, dtype=np.int64))]
    return DataBundle("imagenet", parts[0], parts[1], parts[2], parts[3], num_classes=len(classes),
                      class_names=list(classes), meta={"root": str(base), "prepared": str(out)})
