"""Tabular datasets from local files: covertype, adult, credit.

Sources, in order:
1. `dataset.file=<table.csv>` (absolute, or relative to dataset.root) with `dataset.target=<column>`;
2. otherwise the cache scikit-learn writes under dataset.root (used as sklearn's `data_home`):
   covertype: `<root>/covertype/samples_py3`, `targets_py3` (sklearn.datasets.fetch_covtype);
   adult, credit: `<root>/openml/openml.org/...` (sklearn.datasets.fetch_openml, OpenML data ids
   `openml_id`: adult 1590, credit 31 = German credit "credit-g").
Nothing is fetched unless `dataset.download=true`.

Preprocessing: a seeded `test_fraction` split; categorical columns (text, category, bool, or listed
in `categorical`) one-hot encoded with the categories seen in the training pool; numeric columns
standardised with the training pool's mean and std (missing values -> the mean, i.e. 0).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from ..errors import ConfigError, require
from .base import DATASETS, DataBundle
from .files import data_root, missing, unreadable

OPENML_IDS = {"adult": 1590, "credit": 31}


def _frame_from_csv(name: str, root: Path, file: str, target: Optional[str]):
    import pandas as pd

    path = Path(os.path.expanduser(file))
    if not path.is_absolute():
        path = root / path
    if not path.is_file():
        raise ConfigError(f"dataset={name}: dataset.file={file!r}: no such file ({path})")
    try:
        df = pd.read_csv(path, skipinitialspace=True, na_values=["?"])
    except Exception as e:
        raise unreadable(name, path, e) from None
    require(target is not None, "dataset.target", target,
            f"name the label column of {path.name}; columns: {', '.join(map(str, df.columns[:20]))}")
    if target not in df.columns:
        raise ConfigError(f"dataset.target={target!r}: no such column in {path}; "
                          f"columns: {', '.join(map(str, df.columns[:30]))}")
    return df.drop(columns=[target]), df[target], str(path)


def _frame_from_covtype(root: Path, download: bool):
    import pandas as pd
    from sklearn.datasets import fetch_covtype

    from .safe_pickle import load_joblib

    where = root / "covertype"
    if not download and not ((where / "samples_py3").is_file() and (where / "targets_py3").is_file()):
        raise missing("covertype", where, what="no scikit-learn covertype cache (samples_py3, targets_py3)")
    cached = (where / "samples_py3").is_file() and (where / "targets_py3").is_file()
    try:
        if cached:  # read through an allowlist (numpy arrays only), never sklearn's plain joblib.load
            x = np.asarray(load_joblib(where / "samples_py3"))
            target = np.asarray(load_joblib(where / "targets_py3"))
        else:  # download=true: sklearn fetches the official archive and returns it
            b = fetch_covtype(data_home=str(root), download_if_missing=True)
            x, target = np.asarray(b.data), np.asarray(b.target)
    except Exception as e:
        raise unreadable("covertype", where, e) from None
    if x.ndim != 2 or target.ndim != 1 or x.shape[0] != len(target) or x.dtype == object or target.dtype == object:
        raise unreadable("covertype", where, ValueError(f"samples {x.shape} {x.dtype} vs targets {target.shape}"))
    return pd.DataFrame(x), pd.Series(target), str(where)


def _frame_from_openml(name: str, root: Path, data_id: int, download: bool, target: Optional[str]):
    from sklearn.datasets import fetch_openml

    home = root / "openml"
    desc = home / "openml.org" / "api" / "v1" / "json" / "data" / f"{int(data_id)}.gz"
    if not download and not desc.is_file():
        raise missing(name, home, what=f"no OpenML cache for data id {data_id} ({desc.name} missing)")
    if not download:  # check the whole cache first: sklearn would re-download a missing or bad file
        _check_openml_cache(name, root / "openml", int(data_id), desc)
    kw = {"target_column": target} if target else {}
    try:
        b = fetch_openml(data_id=int(data_id), data_home=str(root), as_frame=True, parser="pandas", **kw)
    except Exception as e:
        raise unreadable(name, home, e) from None
    y = b.target
    if y is None or getattr(y, "ndim", 1) != 1:
        raise ConfigError(f"dataset={name}: OpenML data id {data_id} has no single target column; "
                          f"name one with dataset.target=<column>")
    return b.data, y, str(home)


def _check_openml_cache(name: str, home: Path, data_id: int, desc: Path) -> None:
    import gzip
    import hashlib
    import json
    from urllib.parse import urlparse

    api = desc.parent
    for p in (api / "features" / f"{data_id}.gz", api / "qualities" / f"{data_id}.gz"):
        if not p.is_file():
            raise missing(name, home, what=f"incomplete OpenML cache for data id {data_id} ({p} missing)")
    try:
        with gzip.open(desc) as f:
            d = json.load(f)["data_set_description"]
        data = home / "openml.org" / (urlparse(d["url"]).path.lstrip("/") + ".gz")
        if not data.is_file():
            raise missing(name, home, what=f"incomplete OpenML cache for data id {data_id} ({data} missing)")
        md5 = hashlib.md5()
        with gzip.open(data) as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                md5.update(chunk)
    except ConfigError:
        raise
    except Exception as e:
        raise unreadable(name, desc.parent, e) from None
    if md5.hexdigest() != d.get("md5_checksum"):
        raise unreadable(name, data, ValueError("md5 checksum differs from the OpenML description"))


def encode(x_df, y_ser, test_fraction: float, split_seed: int, categorical: Sequence[str] = ()):
    """DataFrame + target -> standardised/one-hot float tensors, split into pool and test."""
    import pandas as pd

    n = len(x_df)
    require(n >= 2, "dataset", n, "the table has fewer than 2 rows")
    require(0.0 < float(test_fraction) < 1.0, "dataset.test_fraction", test_fraction, "must lie in (0, 1)")
    y_raw = y_ser.reset_index(drop=True)
    keep = ~y_raw.isna().to_numpy()
    x_df, y_raw = x_df.reset_index(drop=True)[keep].reset_index(drop=True), y_raw[keep].reset_index(drop=True)
    n = len(y_raw)
    names = sorted(pd.unique(y_raw.astype(str)).tolist(), key=lambda s: (len(s), s) if s.lstrip("-").isdigit() else (1 << 30, s))
    lut = {c: i for i, c in enumerate(names)}
    y = torch.tensor([lut[v] for v in y_raw.astype(str)], dtype=torch.int64)
    perm = np.random.default_rng(int(split_seed)).permutation(n)
    n_test = max(1, int(round(n * float(test_fraction))))
    te, tr = np.sort(perm[:n_test]), np.sort(perm[n_test:])
    cols = []
    info = {"numeric": [], "categorical": []}
    for c in x_df.columns:
        s = x_df[c]
        is_cat = (str(c) in set(map(str, categorical)) or s.dtype == object or str(s.dtype) in ("category", "bool")
                  or pd.api.types.is_string_dtype(s))
        if is_cat:
            s = s.astype(str).where(~s.isna(), "<missing>")
            cats = sorted(pd.unique(s.iloc[tr]).tolist())
            onehot = np.stack([(s == k).to_numpy(dtype=np.float32) for k in cats], axis=1) if cats else np.zeros((n, 0), np.float32)
            cols.append(onehot)
            info["categorical"].append(str(c))
        else:
            v = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64)
            mu = np.nanmean(v[tr]) if np.isfinite(v[tr]).any() else 0.0
            sd = np.nanstd(v[tr]) if np.isfinite(v[tr]).any() else 1.0
            sd = sd if sd > 0 else 1.0
            v = np.where(np.isfinite(v), (v - mu) / sd, 0.0)
            cols.append(v.astype(np.float32)[:, None])
            info["numeric"].append(str(c))
    x = torch.from_numpy(np.concatenate(cols, axis=1) if cols else np.zeros((n, 0), np.float32))
    require(x.shape[1] >= 1, "dataset", "table", "has no feature columns besides the target")
    return x[tr], y[tr], x[te], y[te], names, info


def _tabular(name: str, root, download, file, target, test_fraction, split_seed, categorical, openml_id=None):
    base = data_root(root)
    if file:
        x_df, y_ser, src = _frame_from_csv(name, base, file, target)
    elif name == "covertype":
        x_df, y_ser, src = _frame_from_covtype(base, download)
    else:
        x_df, y_ser, src = _frame_from_openml(name, base, int(openml_id or OPENML_IDS[name]), download, target)
    xtr, ytr, xte, yte, names, info = encode(x_df, y_ser, test_fraction, split_seed, categorical or ())
    return DataBundle(name, xtr, ytr, xte, yte, num_classes=len(names), class_names=names,
                      meta={"source": src, **info})


@DATASETS.register("covertype")
def covertype(root: Optional[str] = None, download: bool = False, file: Optional[str] = None,
              target: Optional[str] = "Cover_Type", test_fraction: float = 0.2, split_seed: int = 0,
              categorical: Optional[list] = None) -> DataBundle:
    """Forest cover type (581,012 x 54, 7 classes)."""
    return _tabular("covertype", root, download, file, target, test_fraction, split_seed, categorical)


def _openml_table(name: str, doc: str):
    """The loader of an OpenML table (a local CSV with `file`); its keyword arguments are the
    dataset's config keys."""
    def load(root: Optional[str] = None, download: bool = False, file: Optional[str] = None,
             target: Optional[str] = None, test_fraction: float = 0.2, split_seed: int = 0,
             categorical: Optional[list] = None, openml_id: int = OPENML_IDS[name]) -> DataBundle:
        return _tabular(name, root, download, file, target or ("class" if file else None), test_fraction,
                        split_seed, categorical, openml_id)

    load.__name__, load.__qualname__, load.__doc__ = name, name, doc
    return load


adult = DATASETS.register("adult")(_openml_table("adult", "Adult census income (48,842 rows, income > 50K or not)."))
credit = DATASETS.register("credit")(_openml_table(
    "credit", "Credit risk (default: OpenML 31, German credit, 1,000 rows, good/bad)."))
