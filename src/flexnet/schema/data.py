"""Schemas of the `dataset:` and `labeling:` groups: `DatasetBase` (the keys every dataset takes) and one
subclass per dataset family (mnist1d, digits, gaussian, file-backed, tabular/OpenML, image folder), then
`Labeling` and its options (corrupt, random_inputs, shuffled_pixels)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional

from .checks import Schema, at_least, in_unit, need, one_of


# ------------------------------------------------------------------ dataset

@dataclass
class DatasetBase(Schema):
    name: str = ""
    classes: Optional[List[Any]] = None
    num_classes: Optional[int] = None
    binary: Optional[bool] = None
    resolution: Optional[int] = None
    max_pool_size: Optional[int] = None
    max_test_size: Optional[int] = None
    seed: int = 0

    def check(self) -> None:
        need(self.classes is None or len(self.classes) >= 2, "classes", self.classes,
             "must list at least 2 class names or indices (one class fits any model: no EMC), or null")
        at_least(self, 2, "num_classes")
        at_least(self, 1, "max_pool_size", "max_test_size")
        r = self.resolution
        need(r is None or 16 <= r <= 256, "resolution", r, "must be an integer in [16, 256] (pixels per side) or null")


@dataclass
class Mnist1d(DatasetBase):
    num_samples: int = 40000
    train_split: float = 0.9
    generator_seed: int = 0

    def check(self) -> None:
        super().check()
        at_least(self, 20, "num_samples")
        in_unit(self, "train_split", lo_open=True)


@dataclass
class Digits(DatasetBase):
    test_fraction: float = 0.2
    split_seed: int = 0

    def check(self) -> None:
        super().check()
        in_unit(self, "test_fraction", lo_open=True)


@dataclass
class Gaussian(DatasetBase):
    num_samples: int = 10000
    num_test: int = 2000
    dim: int = 32
    num_centers: int = 10
    separation: float = 1.0
    data_seed: int = 0

    def check(self) -> None:
        super().check()
        at_least(self, 1, "num_samples", "dim")
        at_least(self, 0, "num_test", "separation")
        at_least(self, 2, "num_centers")


@dataclass
class FileDataset(DatasetBase):
    root: Optional[str] = None
    download: bool = False


@dataclass
class Cifar(FileDataset):
    verify: bool = True


@dataclass
class Tabular(FileDataset):
    file: Optional[str] = None
    target: Optional[str] = None
    test_fraction: float = 0.2
    split_seed: int = 0
    categorical: Optional[List[str]] = None

    def check(self) -> None:
        super().check()
        in_unit(self, "test_fraction", lo_open=True)


@dataclass
class OpenML(Tabular):
    openml_id: int = 0

    def check(self) -> None:
        super().check()
        at_least(self, 1, "openml_id")


@dataclass
class ImageFolder(FileDataset):
    prepared: Optional[str] = None
    test_fraction: float = 0.1
    split_seed: int = 0
    workers: int = 0

    def check(self) -> None:
        super().check()
        in_unit(self, "test_fraction")
        at_least(self, 0, "workers")


# ------------------------------------------------------------------ labeling

@dataclass
class Labeling(Schema):
    name: str = ""
    seed: int = 0


@dataclass
class Corrupt(Labeling):
    p: float = 0.5
    exclude_true: bool = False

    def check(self) -> None:
        in_unit(self, "p", hi_open=False)


@dataclass
class RandomInputs(Labeling):
    stats: str = "position"
    random_labels: bool = True

    def check(self) -> None:
        one_of(self, "stats", ("position", "channel", "global"))


@dataclass
class ShuffledPixels(Labeling):
    chunk: int = 4096

    def check(self) -> None:
        at_least(self, 1, "chunk")


# ------------------------------------------------------------------ option -> schema (SCHEMAS in validate.py)

DATASET_SCHEMAS: dict[str, type] = {
    "mnist1d": Mnist1d, "digits": Digits, "gaussian": Gaussian, "mnist": FileDataset, "cifar10": Cifar,
    "cifar100": Cifar, "covertype": Tabular, "adult": OpenML, "credit": OpenML, "imagenet": ImageFolder}
LABELING_SCHEMAS: dict[str, type] = {
    "semantic": Labeling, "random_labels": Labeling, "permuted_inputs": Labeling, "corrupt": Corrupt,
    "random_inputs": RandomInputs, "shuffled_pixels": ShuffledPixels}
