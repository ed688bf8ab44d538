"""Datasets: small files in the real on-disk formats, loaded through the real loaders (no network)."""
from __future__ import annotations

import gzip
import hashlib
import json
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from flexnet.data import DATASETS, load_dataset
from flexnet.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def cfg(name, **kw):
    base = {"name": name, "seed": 0, "max_pool_size": None, "classes": None, "num_classes": None,
            "binary": None, "resolution": None, "max_test_size": None}
    base.update(kw)
    return base


# ---------------------------------------------------------------- fixture writers (real formats)

def write_idx_images(path: Path, x: np.ndarray, gz: bool) -> None:
    data = struct.pack(">HBBIII", 0, 0x08, 3, *x.shape) + x.astype(np.uint8).tobytes()
    (gzip.open(path.with_name(path.name + ".gz"), "wb") if gz else open(path, "wb")).write(data)


def write_idx_labels(path: Path, y: np.ndarray, gz: bool) -> None:
    data = struct.pack(">HBBI", 0, 0x08, 1, len(y)) + y.astype(np.uint8).tobytes()
    (gzip.open(path.with_name(path.name + ".gz"), "wb") if gz else open(path, "wb")).write(data)


def make_mnist(root: Path, n_train=60, n_test=20, gz=False, seed=0):
    rng = np.random.default_rng(seed)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    out = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        y = np.arange(n) % 10
        write_idx_images(raw / f"{prefix}-images-idx3-ubyte", x, gz)
        write_idx_labels(raw / f"{prefix}-labels-idx1-ubyte", y, gz)
        out[prefix] = (x, y)
    return out


def make_cifar(root: Path, hundred=False, per_class_train=5, per_class_test=2, seed=0):
    """CIFAR python pickle batches: dicts with b'data' (N x 3072 uint8) and labels, plus the meta file."""
    rng = np.random.default_rng(seed)
    k = 100 if hundred else 10
    folder = root / ("cifar-100-python" if hundred else "cifar-10-batches-py")
    folder.mkdir(parents=True)
    lab_key = "fine_labels" if hundred else "labels"

    def batch(n_per, tag):
        y = np.repeat(np.arange(k), n_per)
        rng.shuffle(y)
        x = rng.integers(0, 256, (len(y), 3072), dtype=np.uint8)
        # the official batches are Python 2 pickles whose str keys load as str with encoding="latin1"
        d = {"batch_label": tag, lab_key: y.tolist(), "data": x, "filenames": [f"{i}.png" for i in range(len(y))]}
        if hundred:
            d["coarse_labels"] = (y // 5).tolist()
        return d

    if hundred:
        files = {"train": batch(per_class_train, "train"), "test": batch(per_class_test, "test")}
        meta = ("meta", {"fine_label_names": [f"c{i:02d}" for i in range(100)],
                         "coarse_label_names": [f"s{i}" for i in range(20)]})
    else:  # 5 training batches, each holding every class once per `per_class_train`
        files = {f"data_batch_{i}": batch(per_class_train, f"training batch {i}") for i in range(1, 6)}
        files["test_batch"] = batch(per_class_test, "testing batch 1")
        meta = ("batches.meta", {"label_names": list(CIFAR10_NAMES), "num_cases_per_batch": 50})
    for fname, d in files.items():
        with open(folder / fname, "wb") as f:
            pickle.dump(d, f, protocol=2)
    with open(folder / meta[0], "wb") as f:
        pickle.dump(meta[1], f, protocol=2)
    return files, folder


# ---------------------------------------------------------------- MNIST

@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx_files_load(tmp_path, gz):
    src = make_mnist(tmp_path, gz=gz)
    b = load_dataset(cfg("mnist", root=str(tmp_path)))
    assert b.x_train.shape == (60, 1, 28, 28) and b.x_test.shape == (20, 1, 28, 28)
    assert b.x_train.dtype == torch.float32 and 0.0 <= float(b.x_train.min()) and float(b.x_train.max()) <= 1.0
    np.testing.assert_allclose(b.x_train[:, 0].numpy() * 255, src["train"][0], atol=1e-3)
    assert b.y_test.tolist() == src["t10k"][1].tolist()
    assert b.num_classes == 10


def test_mnist_root_from_environment(tmp_path, monkeypatch):
    make_mnist(tmp_path)
    monkeypatch.setenv("FLEXNET_DATA", str(tmp_path))
    assert load_dataset(cfg("mnist", root=None)).pool_size == 60


def test_missing_dataset_one_line_with_download_override(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_dataset(cfg("mnist", root=str(tmp_path / "nowhere")))
    msg = str(e.value)
    assert "\n" not in msg and "dataset.download=true" in msg and str(tmp_path / "nowhere") in msg
    with pytest.raises(ConfigError) as e:
        load_dataset(cfg("cifar10", root=str(tmp_path)))
    assert "\n" not in str(e.value) and "dataset.download=true" in str(e.value)


def test_mnist_corrupt_file_is_a_config_error(tmp_path):
    make_mnist(tmp_path)
    p = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"
    p.write_bytes(p.read_bytes()[:1000])  # truncated
    with pytest.raises(ConfigError) as e:
        load_dataset(cfg("mnist", root=str(tmp_path)))
    assert "\n" not in str(e.value) and "mnist" in str(e.value)


# ---------------------------------------------------------------- CIFAR

def test_cifar10_pickle_batches(tmp_path):
    files, _ = make_cifar(tmp_path)
    b = load_dataset(cfg("cifar10", root=str(tmp_path), verify=False))
    assert b.x_train.shape == (250, 3, 32, 32) and b.x_test.shape == (20, 3, 32, 32)
    assert b.class_names == CIFAR10_NAMES and b.num_classes == 10
    first = files["data_batch_1"]
    # row 0 of batch 1: 3072 bytes = R plane, G plane, B plane
    np.testing.assert_allclose((b.x_train[0] * 255).round().numpy().reshape(-1), first["data"][0], atol=0)
    assert b.y_train[:50].tolist() == first["labels"]


def test_cifar10_md5_check_reports_foreign_files(tmp_path):
    make_cifar(tmp_path)
    with pytest.raises(ConfigError) as e:
        load_dataset(cfg("cifar10", root=str(tmp_path), verify=True))
    assert "md5" in str(e.value) and "verify=false" not in str(e.value)  # never recommends skipping the check


def test_cifar_garbage_batch_is_a_config_error(tmp_path):
    _, folder = make_cifar(tmp_path)
    (folder / "data_batch_3").write_bytes(b"not a pickle at all")
    with pytest.raises(ConfigError) as e:
        load_dataset(cfg("cifar10", root=str(tmp_path), verify=False))
    assert "\n" not in str(e.value) and "cannot read" in str(e.value)


def test_cifar100_fine_labels(tmp_path):
    files, _ = make_cifar(tmp_path, hundred=True, per_class_train=2, per_class_test=1)
    b = load_dataset(cfg("cifar100", root=str(tmp_path), verify=False))
    assert b.num_classes == 100 and b.pool_size == 200 and b.x_test.shape[0] == 100
    assert b.y_train.tolist() == files["train"]["fine_labels"]
    assert b.class_names[7] == "c07"


# ---------------------------------------------------------------- class subsets, merging, binary

def test_class_subset_cifar10_by_names(tmp_path):
    make_cifar(tmp_path)
    pick = ["automobile", "frog", "horse", "ship"]
    full = load_dataset(cfg("cifar10", root=str(tmp_path), verify=False))
    b = load_dataset(cfg("cifar10", root=str(tmp_path), verify=False, classes=pick))
    # 4 of 10 classes: 4/10 of the pool (25 per class) and of the test split (2 per class)
    assert b.pool_size == 100 and b.x_test.shape[0] == 8
    assert b.num_classes == 4 and b.class_names == pick
    orig = [CIFAR10_NAMES.index(c) for c in pick]
    for new, old in enumerate(orig):  # relabelled in the listed order, inputs untouched
        assert torch.equal(b.x_train[b.y_train == new], full.x_train[full.y_train == old])
        assert torch.equal(b.x_test[b.y_test == new], full.x_test[full.y_test == old])
    by_index = load_dataset(cfg("cifar10", root=str(tmp_path), verify=False, classes=orig))
    assert torch.equal(by_index.y_train, b.y_train)


def test_class_subset_composes_with_merging_and_labelings(tmp_path):
    from flexnet.data import apply_labeling

    make_cifar(tmp_path)
    b = load_dataset(cfg("cifar10", root=str(tmp_path), verify=False, classes=[0, 1, 2, 3, 4, 5], num_classes=3))
    assert b.num_classes == 3 and b.pool_size == 150
    assert sorted(b.y_train.bincount().tolist()) == [50, 50, 50]  # pairs of the 6 kept classes
    for lab in ("random_labels", "corrupt", "shuffled_pixels"):
        out = apply_labeling(b, {"name": lab, "seed": 0})
        assert int(out.y_train.max()) < 3 and torch.equal(out.y_test, b.y_test)


def test_class_subset_errors(tmp_path):
    with pytest.raises(ConfigError, match="dataset.classes"):
        load_dataset(cfg("digits", classes=["eleven"]))
    with pytest.raises(ConfigError, match="dataset.classes"):
        load_dataset(cfg("digits", classes=[3, 3]))
    with pytest.raises(ConfigError, match="dataset.classes"):
        load_dataset(cfg("digits", classes=[10]))


def test_num_classes_merges_into_near_equal_groups_seeded():
    full = load_dataset(cfg("digits"))
    b = load_dataset(cfg("digits", num_classes=3))
    groups = b.meta["class_groups"]
    assert sorted(len(g) for g in groups) == [3, 3, 4] and sorted(sum(groups, [])) == list(range(10))
    for j, g in enumerate(groups):  # every sample's new label is its old class's group
        assert torch.equal(b.y_train == j, torch.isin(full.y_train, torch.tensor(g)))
    assert load_dataset(cfg("digits", num_classes=3)).meta["class_groups"] == groups
    others = {tuple(map(tuple, load_dataset(cfg("digits", num_classes=3, seed=s)).meta["class_groups"]))
              for s in range(1, 6)}
    assert len(others | {tuple(map(tuple, groups))}) > 1  # the seed changes the merge
    with pytest.raises(ConfigError) as e:
        load_dataset(cfg("digits", num_classes=11))
    assert "dataset.num_classes=11" in str(e.value) and "[2, 10]" in str(e.value)


def test_binary_merges_into_two_groups():
    b = load_dataset(cfg("digits", binary=True))
    assert b.num_classes == 2 and sorted(len(g) for g in b.meta["class_groups"]) == [5, 5]
    assert set(b.y_test.tolist()) == {0, 1}


@pytest.mark.slow  # a fresh interpreter (import torch) per call
def test_num_classes_seed_is_stable_across_processes():
    # str hash() is salted per process: the merge must not depend on it
    code = ("from flexnet.data import load_dataset;"
            "print(load_dataset({'name':'digits','seed':3,'num_classes':4}).meta['class_groups'])")
    here = load_dataset(cfg("digits", seed=3, num_classes=4)).meta["class_groups"]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(REPO / "src"), "PYTHONHASHSEED": "12345"}).stdout
    assert out.strip() == str(here)


# ---------------------------------------------------------------- resolution

def test_resolution_resizes_pool_and_test_with_antialiasing():
    b = load_dataset(cfg("digits", resolution=32))
    assert b.x_train.shape[1:] == (1, 32, 32) and b.x_test.shape[1:] == (1, 32, 32)
    small = load_dataset(cfg("digits"))
    # area-preserving: mean intensity is kept by bilinear up-sampling
    assert abs(float(b.x_train.mean()) - float(small.x_train.mean())) < 0.01
    down = load_dataset(cfg("digits", resolution=32, max_pool_size=50))
    assert down.pool_size == 50


def test_resolution_downsampling_cifar(tmp_path):
    make_cifar(tmp_path)
    b = load_dataset(cfg("cifar10", root=str(tmp_path), verify=False, resolution=16))
    full = load_dataset(cfg("cifar10", root=str(tmp_path), verify=False))
    assert b.x_train.shape == (250, 3, 16, 16)
    # antialiased 2x down-sampling of noise is close to 2x2 block averaging (plain bilinear is not)
    plain = torch.nn.functional.interpolate(full.x_train, size=(16, 16), mode="bilinear", antialias=False)
    assert abs(float(b.x_train.mean()) - float(full.x_train.mean())) < 0.01
    assert float(b.x_train.std()) < 0.75 * float(plain.std())  # noise averaged over a wider footprint


@pytest.mark.parametrize("bad", [0, -3, 8, 300, 2.5, "big"])
def test_bad_resolution_is_one_line(bad):
    with pytest.raises(ConfigError) as e:
        load_dataset(cfg("digits", resolution=bad))
    assert str(e.value).startswith("dataset.resolution=") and "\n" not in str(e.value)


def test_resolution_on_tabular_data_is_refused():
    with pytest.raises(ConfigError, match="no images"):
        load_dataset(cfg("gaussian", num_samples=50, num_test=10, resolution=32))


# ---------------------------------------------------------------- image folder + prepare

def make_tree(root: Path, classes=("cat", "dog", "eel"), per_class=6, val=True, size=(40, 30)):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", per_class), ("val", 2)) if val else (("train", per_class),):
        for ci, c in enumerate(classes):
            d = root / split / c
            d.mkdir(parents=True)
            for i in range(n):
                arr = np.full((size[1], size[0], 3), 40 * ci, np.uint8)
                arr[..., ci % 3] = rng.integers(0, 256, (size[1], size[0]), dtype=np.uint8)
                Image.fromarray(arr).save(d / f"{i}.png")


class Ran:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def run_prepare(*args):
    """`python -m flexnet.data.prepare ARGS`, run in-process (the module's __main__ calls main(argv))."""
    import contextlib
    import io

    from flexnet.data.prepare import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(args))
    return Ran(rc, out.getvalue(), err.getvalue())


def test_imagefolder_prepare_then_load_memmapped(tmp_path):
    make_tree(tmp_path)
    r = run_prepare("dataset=imagenet", f"dataset.root={tmp_path}", "dataset.resolution=16")
    assert r.returncode == 0, r.stderr
    out = tmp_path / "flexnet-prepared" / "r16"
    x = np.load(out / "train_x.npy", mmap_mode="r")
    assert x.dtype == np.uint8 and x.shape == (18, 3, 16, 16)
    b = load_dataset(cfg("imagenet", root=str(tmp_path), resolution=16))
    assert b.class_names == ["cat", "dog", "eel"] and b.pool_size == 18 and b.x_test.shape == (6, 3, 16, 16)
    assert b.y_train.bincount().tolist() == [6, 6, 6]
    # the constant channels survive decoding + resizing: class 1 (dog) has R = B = 40/255 everywhere
    dog = b.x_train[b.y_train == 1]
    assert torch.allclose(dog[:, 0], torch.full_like(dog[:, 0], 40 / 255), atol=1e-6)
    sub = load_dataset(cfg("imagenet", root=str(tmp_path), resolution=16, classes=["eel", "cat"], max_pool_size=4))
    assert sub.pool_size == 4 and sub.num_classes == 2 and sub.x_test.shape[0] == 4


def test_imagefolder_without_val_holds_out_per_class(tmp_path):
    make_tree(tmp_path, val=False, per_class=10)
    assert run_prepare("dataset=imagenet", f"dataset.root={tmp_path}", "dataset.resolution=16",
                       "dataset.test_fraction=0.2").returncode == 0
    b = load_dataset(cfg("imagenet", root=str(tmp_path), resolution=16, test_fraction=0.2))
    assert b.y_test.bincount().tolist() == [2, 2, 2] and b.pool_size == 24


def test_imagefolder_errors_are_one_line(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_dataset(cfg("imagenet", root=str(tmp_path), resolution=16))
    assert "python -m flexnet.data.prepare" in str(e.value) and "\n" not in str(e.value)
    make_tree(tmp_path)
    (tmp_path / "train" / "dog" / "bad.png").write_bytes(b"\x89PNG garbage")
    r = run_prepare("dataset=imagenet", f"dataset.root={tmp_path}", "dataset.resolution=16")
    assert r.returncode == 2 and "bad.png" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = run_prepare("dataset=imagenet", f"dataset.root={tmp_path}", "dataset.resolution=0")
    assert r.returncode == 2 and "dataset.resolution=0" in r.stderr


# ---------------------------------------------------------------- tabular

def adult_like_frame(n=120, seed=0):
    import pandas as pd

    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "age": rng.integers(18, 80, n),
        "hours": rng.normal(40, 10, n).round(1),
        "workclass": rng.choice(["Private", "Self-emp", "Gov"], n),
        "sex": rng.choice(["M", "F"], n),
    })
    df["class"] = np.where(df["hours"] + rng.normal(0, 5, n) > 40, ">50K", "<=50K")
    return df


def test_csv_with_named_target(tmp_path):
    df = adult_like_frame()
    df.loc[3, "workclass"] = "?"  # adult's missing-value marker
    df.to_csv(tmp_path / "adult.csv", index=False)
    b = load_dataset(cfg("adult", root=str(tmp_path), file="adult.csv", target="class", test_fraction=0.25))
    assert b.pool_size == 90 and b.x_test.shape[0] == 30
    assert b.class_names == ["<=50K", ">50K"]
    # 2 numeric + one-hot workclass (3 + missing, as seen in the pool) + sex (2)
    assert b.meta["numeric"] == ["age", "hours"] and b.meta["categorical"] == ["workclass", "sex"]
    assert b.x_train.shape[1] in (7, 8)
    num = b.x_train[:, :2]
    assert torch.allclose(num.mean(0), torch.zeros(2), atol=1e-5)  # standardised on the pool
    assert torch.allclose(num.std(0, unbiased=False), torch.ones(2), atol=1e-4)
    onehot = b.x_train[:, 2:]
    assert set(onehot.unique().tolist()) <= {0.0, 1.0} and torch.equal(onehot.sum(1), torch.full((90,), 2.0))
    with pytest.raises(ConfigError, match="dataset.target='income'"):
        load_dataset(cfg("adult", root=str(tmp_path), file="adult.csv", target="income"))
    with pytest.raises(ConfigError, match="no such file"):
        load_dataset(cfg("credit", root=str(tmp_path), file="credit.csv"))


def test_covertype_sklearn_cache(tmp_path):
    import joblib

    rng = np.random.default_rng(0)
    d = tmp_path / "covertype"
    d.mkdir()
    x = rng.normal(5, 3, (70, 54))
    y = np.arange(70) % 7 + 1
    joblib.dump(x, d / "samples_py3", compress=9)  # what sklearn.datasets.fetch_covtype caches
    joblib.dump(y, d / "targets_py3", compress=9)
    b = load_dataset(cfg("covertype", root=str(tmp_path)))
    assert b.num_classes == 7 and b.class_names == [str(i) for i in range(1, 8)]
    assert b.pool_size + b.x_test.shape[0] == 70 and b.x_train.shape[1] == 54
    assert torch.allclose(b.x_train.mean(0), torch.zeros(54), atol=1e-5)
    with pytest.raises(ConfigError) as e:
        load_dataset(cfg("covertype", root=str(tmp_path / "empty")))
    assert "dataset.download=true" in str(e.value) and "\n" not in str(e.value)


def write_openml_cache(home: Path, data_id: int, df, target: str, file_id=999001):
    """The files sklearn.datasets.fetch_openml caches under <data_home>/openml/openml.org (gzipped)."""
    api = home / "openml" / "openml.org" / "api" / "v1" / "json" / "data"
    features, attrs = [], []
    for i, c in enumerate(df.columns):
        nominal = df[c].dtype == object
        f = {"index": str(i), "name": c, "data_type": "nominal" if nominal else "numeric",
             "is_target": "true" if c == target else "false", "is_ignore": "false",
             "is_row_identifier": "false", "number_of_missing_values": "0"}
        if nominal:
            f["nominal_value"] = sorted(df[c].unique().tolist())
            attrs.append(f"@attribute '{c}' {{{','.join(f['nominal_value'])}}}")
        else:
            attrs.append(f"@attribute '{c}' numeric")
        features.append(f)
    rows = "\n".join(",".join(str(v) for v in r) for r in df.itertuples(index=False))
    arff = f"@relation test\n{chr(10).join(attrs)}\n@data\n{rows}\n".encode()
    url = f"https://api.openml.org/data/v1/download/{file_id}/test.arff"
    desc = {"data_set_description": {"id": str(data_id), "name": "test", "version": "1", "format": "ARFF",
                                     "url": url, "status": "active", "md5_checksum": hashlib.md5(arff).hexdigest(),
                                     "description": "fixture", "default_target_attribute": target}}
    files = {api / f"{data_id}.gz": json.dumps(desc).encode(),
             api / "features" / f"{data_id}.gz": json.dumps({"data_features": {"feature": features}}).encode(),
             api / "qualities" / f"{data_id}.gz": json.dumps({"data_qualities": {"quality": [
                 {"name": "NumberOfInstances", "value": f"{len(df)}.0"}]}}).encode(),
             home / "openml" / "openml.org" / "data" / "v1" / "download" / str(file_id) / "test.arff.gz": arff}
    for p, content in files.items():
        p.parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(p, "wb") as f:
            f.write(content)


def test_openml_cache_adult_and_credit(tmp_path):
    df = adult_like_frame(100)
    write_openml_cache(tmp_path, 1590, df, "class")
    b = load_dataset(cfg("adult", root=str(tmp_path)))
    assert b.num_classes == 2 and b.pool_size == 80 and b.x_test.shape[0] == 20
    assert b.meta["categorical"] == ["workclass", "sex"]
    write_openml_cache(tmp_path, 4242, df.rename(columns={"class": "risk"}), "risk", file_id=999002)
    c = load_dataset(cfg("credit", root=str(tmp_path), openml_id=4242))
    assert torch.equal(c.x_train, b.x_train) and torch.equal(c.y_train, b.y_train)
    with pytest.raises(ConfigError) as e:
        load_dataset(cfg("credit", root=str(tmp_path)))  # default id 31 is not cached here
    assert "dataset.download=true" in str(e.value)


def test_openml_corrupt_cache_is_one_line(tmp_path):
    write_openml_cache(tmp_path, 1590, adult_like_frame(50), "class")
    p = next((tmp_path / "openml").rglob("test.arff.gz"))
    with gzip.open(p, "wb") as f:
        f.write(b"@relation broken\n@data\n1,2\n")
    with pytest.raises(ConfigError) as e:
        load_dataset(cfg("adult", root=str(tmp_path)))
    assert "\n" not in str(e.value) and "cannot read" in str(e.value)


# ---------------------------------------------------------------- configs and the command line

def test_every_dataset_yaml_has_name_seed_and_generic_knobs():
    from omegaconf import OmegaConf

    for f in sorted((REPO / "conf" / "dataset").glob("*.yaml")):
        c = OmegaConf.load(f)
        assert c.name == f.stem and f.stem in DATASETS
        for k in ("classes", "num_classes", "binary", "resolution", "max_pool_size", "max_test_size", "seed"):
            assert k in c, (f.name, k)


@pytest.mark.slow  # runs python -m flexnet
def test_cli_missing_dataset_prints_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "flexnet", "dataset=cifar10", f"dataset.root={tmp_path}",
                        f"hydra.run.dir={tmp_path / 'out'}"], capture_output=True, text=True, cwd=REPO,
                       env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert r.returncode == 2
    err = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(err) == 1 and "dataset.download=true" in err[0] and "Traceback" not in r.stderr


def test_imagefolder_prepare_leaves_no_partial_file_on_a_corrupt_image(tmp_path):
    make_tree(tmp_path)
    (tmp_path / "train" / "dog" / "3.png").write_bytes(b"\x89PNG\r\n\x1a\nnot an image")
    r = run_prepare("dataset=imagenet", f"dataset.root={tmp_path}", "dataset.resolution=16")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    out = tmp_path / "flexnet-prepared" / "r16"
    assert not list(out.glob("*.tmp*"))


def test_misstructured_mnist1d_cache_is_regenerated(tmp_path, monkeypatch):
    """A readable cache file of the wrong shape (another file, an old format) is regenerated."""
    monkeypatch.setenv("FLEXNET_CACHE", str(tmp_path))
    first = load_dataset(cfg("mnist1d", num_samples=400))
    (path,) = tmp_path.glob("mnist1d-*.pt")
    torch.save({"x": torch.zeros(3)}, path)  # valid torch file, wrong structure
    again = load_dataset(cfg("mnist1d", num_samples=400))
    assert torch.equal(again.x_train, first.x_train) and torch.equal(again.y_test, first.y_test)
    assert torch.load(path, weights_only=True)["x"].dim() == 2
