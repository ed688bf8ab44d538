"""Structured-config schemas: every config value type- and range-checked before any data loads.

One dataclass per option of each config group (registered in Hydra's ConfigStore under
`flexnet_schema/<group>/<option>`), plus the top-level keys. `validate_config(cfg)` checks a
resolved config against them and raises `ConfigError` with one line,
`<key>=<value>: <what is allowed>`, for the first problem found:

* unknown keys (any group, and the top level): OmegaConf refuses keys a structured config lacks;
* types: OmegaConf's typed nodes, made strict (a bool is `true`/`false`, never `maybe` or `"no"`;
  an integer is not `1.5` or `"5"`);
* ranges and cross-key rules: each schema's `check()`.

The values themselves are not changed (the config hash and `emc.json` see what was given).

The package, by concern: `checks` (the `Schema` base and the range helpers), `data` (dataset,
labeling), `models` (arch, scaling), `optim` (optimizer, regularizer, reparam), `run` (search, logger,
and `train:` / `convergence:`, derived from the fit loop's `Budget` and `Checks`: a new field there is a
new, type-checked key here; other keys in `TRAIN_EXTRA` / `CONVERGENCE_EXTRA`), `validate` (the
`SCHEMAS` table, `check_group`, `validate_config`, `check_device`, the ConfigStore registration). Each
group's option -> schema table (`ARCH_SCHEMAS`, ...) sits next to its schemas; `SCHEMAS` joins them.
Every name is importable from `flexnet.schema` itself.
"""
from __future__ import annotations

from .checks import Bad, Group, Schema, at_least, in_unit, need, one_of, positive
from .data import (DATASET_SCHEMAS, LABELING_SCHEMAS, Cifar, Corrupt, DatasetBase, Digits, FileDataset, Gaussian,
                   ImageFolder, Labeling, Mnist1d, OpenML, RandomInputs, ShuffledPixels, Tabular)
from .models import (ACTIVATIONS, ARCH_SCHEMAS, SCALING_SCHEMAS, AlexNetSmall, Arch, Cnn, EfficientNet,
                     InceptionSmall, KernelMinNorm, Mlp, Resnet, Scaling, ScalingEfficientNet, ScalingNone,
                     ScalingSovit, Vit, ZhangConstruction)
from .optim import (OPTIMIZER_SCHEMAS, REGULARIZER_SCHEMAS, REPARAM_SCHEMAS, Adam, Augment, LabelSmoothing,
                    NameOnly, Optimizer, Quant8, Sam, Schedule, Sgd, Shampoo, Subspace, WeightDecay)
from .run import (CONVERGENCE_EXTRA, HIDDEN, LOGGER_SCHEMAS, SEARCH_SCHEMAS, TRAIN_EXTRA, Bisect, Fixed, Linear,
                  Search, Wandb, convergence_schema, train_schema)
from .validate import DIRECTIVES, SCHEMAS, TOP_LEVEL, check_device, check_group, validate_config

__all__ = [
    "Bad", "Group", "Schema", "at_least", "in_unit", "need", "one_of", "positive",
    "Cifar", "Corrupt", "DatasetBase", "Digits", "FileDataset", "Gaussian", "ImageFolder", "Labeling", "Mnist1d",
    "OpenML", "RandomInputs", "ShuffledPixels", "Tabular",
    "ACTIVATIONS", "AlexNetSmall", "Arch", "Cnn", "EfficientNet", "InceptionSmall", "KernelMinNorm", "Mlp",
    "Resnet", "Scaling", "ScalingEfficientNet", "ScalingNone", "ScalingSovit", "Vit", "ZhangConstruction",
    "Adam", "Augment", "LabelSmoothing", "NameOnly", "Optimizer", "Quant8", "Sam", "Schedule", "Sgd", "Shampoo",
    "Subspace", "WeightDecay",
    "CONVERGENCE_EXTRA", "HIDDEN", "TRAIN_EXTRA", "Bisect", "Fixed", "Linear", "Search", "Wandb",
    "convergence_schema", "train_schema",
    "DATASET_SCHEMAS", "LABELING_SCHEMAS", "ARCH_SCHEMAS", "SCALING_SCHEMAS", "OPTIMIZER_SCHEMAS",
    "REGULARIZER_SCHEMAS", "REPARAM_SCHEMAS", "SEARCH_SCHEMAS", "LOGGER_SCHEMAS",
    "DIRECTIVES", "SCHEMAS", "TOP_LEVEL", "check_device", "check_group", "validate_config",
]
