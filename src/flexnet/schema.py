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

`train:` and `convergence:` are derived from the `Budget` and `Checks` dataclasses (train.py): a
new field there is a new, type-checked key here with no other change. Keys of those two groups that
are not fields of `Budget`/`Checks` are declared in `TRAIN_EXTRA` / `CONVERGENCE_EXTRA` below, and
their ranges are checked by `Budget.validate()` / `Checks.validate()` (called here too) or by
`_check_convergence_extra`.
"""
from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, List, Optional

from .errors import ConfigError

Group = str


class Bad(Exception):
    """A range failure inside a schema's check(): (field, value, allowed)."""

    def __init__(self, key: str, value: Any, allowed: str):
        super().__init__(key)
        self.key, self.value, self.allowed = key, value, allowed


def need(cond: bool, key: str, value: Any, allowed: str) -> None:
    if not cond:
        raise Bad(key, value, allowed)


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def positive(obj: Any, *keys: str) -> None:
    for k in keys:
        v = getattr(obj, k)
        need(_num(v) and v > 0, k, v, "must be > 0")


def at_least(obj: Any, lo: float, *keys: str) -> None:
    for k in keys:
        v = getattr(obj, k)
        need(v is None or (_num(v) and v >= lo), k, v, f"must be >= {lo:g}")


def in_unit(obj: Any, key: str, lo_open: bool = False, hi_open: bool = True) -> None:
    v = getattr(obj, key)
    ok = _num(v) and (v > 0 if lo_open else v >= 0) and (v < 1 if hi_open else v <= 1)
    need(ok, key, v, f"must lie in {'(' if lo_open else '['}0, 1{')' if hi_open else ']'}")


def one_of(obj: Any, key: str, allowed: tuple) -> None:
    v = getattr(obj, key)
    def show(a: Any) -> str:
        return repr(a) if a == "" else str(a).lower() if isinstance(a, bool) else str(a)

    need(v in allowed and (isinstance(v, bool) or not isinstance(v, int)), key, v,
         "allowed: " + ", ".join(show(a) for a in allowed))


class Schema:
    def check(self) -> None:
        """Ranges and cross-key rules (types are checked by OmegaConf before)."""


ACTIVATIONS = ("relu", "tanh", "sigmoid", "identity", "gelu", "silu")
Schedule = Enum("Schedule", {k: k for k in ("cosine", "constant", "warmup_cosine")})


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
        need(self.classes is None or len(self.classes) >= 1, "classes", self.classes,
             "must be a non-empty list of class names or indices, or null")
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


# ------------------------------------------------------------------ arch

@dataclass
class Arch(Schema):
    name: str = ""

    def check(self) -> None:
        if hasattr(self, "activation"):
            one_of(self, "activation", ACTIVATIONS)
        if hasattr(self, "dropout"):
            in_unit(self, "dropout")
        if hasattr(self, "drop_path"):
            in_unit(self, "drop_path")


def _ints(obj: Any, key: str, lo: int = 1, nonempty: bool = True) -> None:
    v = getattr(obj, key)
    need((len(v) >= 1 or not nonempty) and all(x >= lo for x in v), key, v,
         f"must be a {'non-empty ' if nonempty else ''}list of integers >= {lo}")


@dataclass
class Mlp(Arch):
    depth: int = 1
    width: int = 64
    activation: str = "relu"
    dropout: float = 0.0

    def check(self) -> None:
        super().check()
        at_least(self, 0, "depth")
        at_least(self, 1, "width")


@dataclass
class Cnn(Arch):
    variant: str = "naive"
    filters: int = 12
    layers: int = 3
    kernel_size: int = 3
    head_width: int = 0
    batchnorm: bool = False
    channels: List[int] = field(default_factory=lambda: [6, 16])
    fc: List[int] = field(default_factory=lambda: [120, 84])
    activation: str = "relu"
    dropout: float = 0.0

    def check(self) -> None:
        super().check()
        one_of(self, "variant", ("naive", "lenet"))
        at_least(self, 1, "filters", "layers")
        at_least(self, 0, "head_width")
        need(self.kernel_size >= 1 and self.kernel_size % 2 == 1, "kernel_size", self.kernel_size,
             "must be an odd positive integer")
        _ints(self, "channels")
        _ints(self, "fc", nonempty=False)


@dataclass
class Resnet(Arch):
    block: str = "basic"
    layers: List[int] = field(default_factory=lambda: [2, 2, 2, 2])
    channels: List[int] = field(default_factory=lambda: [64, 128, 256, 512])
    stem_width: int = 64
    stem_type: str = ""
    replace_stem_pool: bool = False
    avg_down: bool = False
    se_ratio: float = 0.0
    small_input: Any = "auto"
    activation: str = "relu"
    dropout: float = 0.0
    drop_path: float = 0.0

    def check(self) -> None:
        super().check()
        one_of(self, "block", ("basic", "bottleneck"))
        _ints(self, "layers")
        _ints(self, "channels")
        need(len(self.layers) == len(self.channels), "layers", self.layers,
             f"must have as many stages as arch.channels ({len(self.channels)})")
        at_least(self, 1, "stem_width")
        one_of(self, "stem_type", ("", "deep", "deep_tiered"))
        at_least(self, 0, "se_ratio")
        one_of(self, "small_input", ("auto", True, False))


@dataclass
class EfficientNet(Arch):
    width_multiplier: float = 1.0
    depth_multiplier: float = 1.0
    input_scale: float = 1.0
    activation: str = "silu"
    dropout: float = 0.2
    drop_path: float = 0.0

    def check(self) -> None:
        super().check()
        positive(self, "width_multiplier", "depth_multiplier", "input_scale")


@dataclass
class Vit(Arch):
    patch_size: int = 4
    embed_dim: int = 32
    depth: int = 2
    num_heads: int = 2
    mlp_dim: int = 64
    class_token: bool = True
    global_pool: str = "token"
    qkv_bias: bool = True
    activation: str = "gelu"
    dropout: float = 0.0
    drop_path: float = 0.0
    fused_attn: bool = False

    def check(self) -> None:
        super().check()
        at_least(self, 1, "patch_size", "embed_dim", "depth", "num_heads", "mlp_dim")
        one_of(self, "global_pool", ("token", "avg", "map"))
        need(self.global_pool != "token" or self.class_token, "global_pool", self.global_pool,
             "'token' needs arch.class_token=true; use avg or map")


@dataclass
class AlexNetSmall(Arch):
    filters: int = 64
    kernel_size: int = 5
    fc: List[int] = field(default_factory=lambda: [384, 192])
    lrn: bool = True
    activation: str = "relu"
    dropout: float = 0.0

    def check(self) -> None:
        super().check()
        at_least(self, 1, "filters", "kernel_size")
        _ints(self, "fc", nonempty=False)


@dataclass
class InceptionSmall(Arch):
    width_multiplier: float = 1.0
    stem: int = 96
    batchnorm: bool = True
    activation: str = "relu"
    dropout: float = 0.0

    def check(self) -> None:
        super().check()
        positive(self, "width_multiplier")
        at_least(self, 1, "stem")


@dataclass
class ZhangConstruction(Arch):
    n_points: int = 1000
    output: str = "index"

    def check(self) -> None:
        at_least(self, 1, "n_points")
        one_of(self, "output", ("index", "onehot"))


@dataclass
class KernelMinNorm(Arch):
    n_points: int = 1000
    bandwidth: Any = "median"
    ridge: float = 0.0
    chunk: int = 4096

    def check(self) -> None:
        at_least(self, 1, "n_points", "chunk")
        at_least(self, 0, "ridge")
        b = self.bandwidth
        need(b == "median" or (_num(b) and b > 0), "bandwidth", b, "must be 'median' or a positive number")


# ------------------------------------------------------------------ scaling

@dataclass
class Scaling(Schema):
    name: str = ""
    params: Optional[float] = None
    max_params: float = 2e9
    tolerance: float = 0.1

    def check(self) -> None:
        need(_num(self.params) and self.params > 0, "params", self.params,
             "must be a positive number of parameters (e.g. 1e4)")
        positive(self, "max_params", "tolerance")


@dataclass
class ScalingEfficientNet(Scaling):
    resolution: bool = False


@dataclass
class ScalingSovit(Scaling):
    min_mlp_ratio: float = 1.0

    def check(self) -> None:
        super().check()
        at_least(self, 0, "min_mlp_ratio")


@dataclass
class ScalingNone(Schema):
    name: str = "none"
    params: Optional[float] = None


# ------------------------------------------------------------------ optimizer

@dataclass
class Optimizer(Schema):
    name: str = ""
    lr: float = 0.1
    batch_size: Optional[int] = None
    schedule: Schedule = Schedule.cosine  # type: ignore[valid-type]
    warmup_fraction: float = 0.0

    def check(self) -> None:
        positive(self, "lr")
        at_least(self, 1, "batch_size")
        in_unit(self, "warmup_fraction")


def _betas(obj: Any) -> None:
    b = obj.betas
    need(len(b) == 2 and all(0 <= x < 1 for x in b), "betas", b, "must be two numbers in [0, 1), e.g. [0.9, 0.999]")


@dataclass
class Sgd(Optimizer):
    momentum: float = 0.9
    nesterov: bool = False

    def check(self) -> None:
        super().check()
        in_unit(self, "momentum")
        need(not (self.nesterov and self.momentum == 0), "nesterov", self.nesterov,
             "needs optimizer.momentum > 0 (Nesterov with momentum 0 is plain SGD); set a momentum or nesterov=false")


@dataclass
class Adam(Optimizer):
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    amsgrad: bool = False

    def check(self) -> None:
        super().check()
        _betas(self)
        positive(self, "eps")


@dataclass
class Shampoo(Optimizer):
    variant: str = "shampoo"
    momentum: float = 0.9
    preconditioning_compute_steps: int = 1
    matrix_eps: float = 1e-6
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])
    start_preconditioning_step: int = 25
    block_size: int = 512

    def check(self) -> None:
        super().check()
        one_of(self, "variant", ("shampoo", "scalable"))
        in_unit(self, "momentum")
        at_least(self, 1, "preconditioning_compute_steps", "block_size")
        at_least(self, 0, "start_preconditioning_step")
        positive(self, "matrix_eps")
        _betas(self)


# ------------------------------------------------------------------ regularizer, reparam

@dataclass
class NameOnly(Schema):
    name: str = ""


@dataclass
class WeightDecay(NameOnly):
    value: float = 5e-4

    def check(self) -> None:
        at_least(self, 0, "value")


@dataclass
class LabelSmoothing(NameOnly):
    value: float = 0.1

    def check(self) -> None:
        in_unit(self, "value")


@dataclass
class Sam(NameOnly):
    rho: float = 0.05
    adaptive: bool = False

    def check(self) -> None:
        positive(self, "rho")


@dataclass
class Augment(NameOnly):
    pad: int = 4
    flip: bool = True

    def check(self) -> None:
        at_least(self, 0, "pad")


@dataclass
class Quant8(NameOnly):
    budget_in_bits: bool = True


@dataclass
class Subspace(NameOnly):
    d: int = 500
    projection: str = "auto"
    max_dense_mb: float = 256

    def check(self) -> None:
        at_least(self, 1, "d")
        one_of(self, "projection", ("auto", "dense", "fastfood", "identity"))
        positive(self, "max_dense_mb")


# ------------------------------------------------------------------ search

@dataclass
class Search(Schema):
    name: str = ""
    start: int = 128
    max_attempts: int = 4
    trials: int = 1
    batch_attempts: Any = "auto"
    fit_threshold: float = 1.0

    def check(self) -> None:
        at_least(self, 1, "start", "max_attempts", "trials")
        one_of(self, "batch_attempts", ("auto", True, False))
        t = self.fit_threshold
        need(_num(t) and 0 < t <= 1, "fit_threshold", t,
             "must lie in (0, 1] (1.0: the paper's 100%; 0.98: its relaxed variant)")


@dataclass
class Bisect(Search):
    start_ratio: Optional[float] = None
    resolution: float = 0.05
    min_n: int = 2
    regrow_step: Optional[float] = None

    def check(self) -> None:
        super().check()
        need(self.start_ratio is None or (_num(self.start_ratio) and self.start_ratio > 0), "start_ratio",
             self.start_ratio, "must be a positive number (search.start = ratio x actual parameters) or null")
        in_unit(self, "resolution", lo_open=True)
        need(1 <= self.min_n <= self.start, "min_n", self.min_n, f"must lie in [1, search.start={self.start}]")
        need(self.regrow_step is None or (_num(self.regrow_step) and self.regrow_step > 0), "regrow_step",
             self.regrow_step, "must be > 0 (relative first step after a rescued size) or null (the resolution)")


@dataclass
class Linear(Search):
    start_ratio: Optional[float] = None
    step: int = 128

    def check(self) -> None:
        super().check()
        need(self.start_ratio is None or (_num(self.start_ratio) and self.start_ratio > 0), "start_ratio",
             self.start_ratio, "must be a positive number or null")
        at_least(self, 1, "step")


@dataclass
class Fixed(Search):
    n: Optional[int] = None
    stop_at_fit: bool = True   # false: train the whole fixed length past the first fit (pastfit.py)
    curve_every: int = 1       # epochs between the curve's evaluations (curve.jsonl)

    def check(self) -> None:
        super().check()
        at_least(self, 1, "n")
        need(isinstance(self.curve_every, int) and not isinstance(self.curve_every, bool) and self.curve_every >= 1,
             "curve_every", self.curve_every, "must be an integer >= 1 (epochs between curve evaluations)")
        one_of(self, "stop_at_fit", (True, False))


# ------------------------------------------------------------------ logger

@dataclass
class Wandb(NameOnly):
    project: str = "flexnet"
    entity: Optional[str] = None
    mode: str = "auto"
    group: Optional[str] = None
    tags: List[str] = field(default_factory=list)
    init_timeout: float = 30.0
    finish_timeout: float = 60.0

    def check(self) -> None:
        one_of(self, "mode", ("auto", "online", "offline", "disabled"))
        positive(self, "init_timeout")
        at_least(self, 0, "finish_timeout")


# ------------------------------------------------------------------ the table: group -> option -> schema

SCHEMAS: dict[Group, dict[str, type]] = {
    "dataset": {"mnist1d": Mnist1d, "digits": Digits, "gaussian": Gaussian, "mnist": FileDataset,
                "cifar10": Cifar, "cifar100": Cifar, "covertype": Tabular, "adult": OpenML, "credit": OpenML,
                "imagenet": ImageFolder},
    "labeling": {"semantic": Labeling, "random_labels": Labeling, "permuted_inputs": Labeling,
                 "corrupt": Corrupt, "random_inputs": RandomInputs, "shuffled_pixels": ShuffledPixels},
    "arch": {"mlp": Mlp, "cnn": Cnn, "resnet": Resnet, "efficientnet": EfficientNet, "vit": Vit,
             "alexnet_small": AlexNetSmall, "inception_small": InceptionSmall,
             "zhang_construction": ZhangConstruction, "kernel_minnorm": KernelMinNorm},
    "scaling": {"width": Scaling, "depth": Scaling, "resnet_rs": Scaling, "svit": Scaling, "sovit": ScalingSovit,
                "efficientnet": ScalingEfficientNet, "none": ScalingNone},
    "optimizer": {"sgd": Sgd, "gd": Sgd, "adam": Adam, "adamw": Adam, "shampoo": Shampoo},
    "regularizer": {"none": NameOnly, "weight_decay": WeightDecay, "label_smoothing": LabelSmoothing,
                    "sam": Sam, "augment": Augment},
    "reparam": {"none": NameOnly, "quant8": Quant8, "subspace": Subspace},
    "search": {"bisect": Bisect, "linear": Linear, "fixed": Fixed},
    "logger": {"none": NameOnly, "wandb": Wandb},
}

# ---- train: and convergence: (extend here, or add a field to Budget / Checks in train.py)
# keys of `train:` / `convergence:` that are not fields of Budget / Checks: name -> (type, default)
TRAIN_EXTRA: dict[str, tuple[Any, Any]] = {}
CONVERGENCE_EXTRA: dict[str, tuple[Any, Any]] = {
    "grad_tol": (Any, "descent"),       # a positive number, 'descent', 'init' or 'auto' (sets Checks.grad_rule)
    "calibration_n": (int, 64),
    "calibration_factor": (float, 10.0),
}
# top-level scalar keys (groups above, train/convergence are the others)
TOP_LEVEL: dict[str, tuple[Any, Any]] = {
    "seed": (int, 0),
    "device": (str, "auto"),
    "threads": (Any, "auto"),
    "curve": (Any, "auto"),
    "progress": (Any, "auto"),
}
# launch directives, read by the entry point and removed before the job sees the config
DIRECTIVES = ("fresh",)


def _omegaconf_type(t: Any) -> Any:
    """A dataclass field type OmegaConf can hold; anything it cannot becomes Any (checked by validate())."""
    ok = (int, float, bool, str)
    if t in ok or t is Any:
        return t
    origin, args = typing.get_origin(t), typing.get_args(t)
    if origin is typing.Union and len(args) == 2 and type(None) in args:
        inner = _omegaconf_type(next(a for a in args if a is not type(None)))
        return Any if inner is Any else Optional[inner]
    if origin in (list, List) and args and args[0] in ok:
        return List[args[0]]
    return Any


# fields of Budget / Checks that are derived from other keys, not config keys themselves
HIDDEN = ("grad_rule",)


def _derived(name: str, cls: type, extra: dict) -> type:
    hints = typing.get_type_hints(cls)
    fields = []
    for f in dataclasses.fields(cls):
        if f.name in extra or f.name in HIDDEN:
            continue
        default = f.default if f.default is not dataclasses.MISSING else None
        fields.append((f.name, _omegaconf_type(hints[f.name]), field(default=default)))
    for k, (t, d) in extra.items():
        fields.append((k, t, field(default=d)))
    return dataclasses.make_dataclass(name, fields, bases=(Schema,))


def train_schema() -> type:
    from .fit.loop import Budget

    return _derived("Train", Budget, TRAIN_EXTRA)


def convergence_schema() -> type:
    from .fit.loop import Checks

    return _derived("Convergence", Checks, CONVERGENCE_EXTRA)


def _register() -> None:
    """The schemas in Hydra's ConfigStore (`flexnet_schema/<group>/<option>`), e.g. for
    `defaults: [/flexnet_schema/optimizer/sgd@_here_]` in a config of one's own."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    for group, options in SCHEMAS.items():
        for option, cls in options.items():
            cs.store(group=f"flexnet_schema/{group}", name=option, node=cls)


# ------------------------------------------------------------------ validation

def _describe(t: Any) -> str:
    origin, args = typing.get_origin(t), typing.get_args(t)
    if origin is typing.Union and type(None) in args:
        return _describe(next(a for a in args if a is not type(None))) + ", or null"
    if origin in (list, List):
        inner = _describe(args[0]).replace("must be ", "") if args and args[0] is not Any else ""
        return f"must be a list ([...]) of {inner}s" if inner and inner != "not allowed" else "must be a list ([...])"
    if isinstance(t, type) and issubclass(t, Enum):
        return "allowed: " + ", ".join(t.__members__)
    return {bool: "must be true or false", int: "must be an integer", float: "must be a number",
            str: "must be a string"}.get(t, "not allowed")


def _strict(t: Any, v: Any) -> bool:
    """v is of type t as given (OmegaConf would convert 'no' -> False or '5' -> 5; flexnet does not)."""
    origin, args = typing.get_origin(t), typing.get_args(t)
    if origin is typing.Union and type(None) in args:
        return v is None or _strict(next(a for a in args if a is not type(None)), v)
    if origin in (list, List):
        return isinstance(v, list) and all(_strict(args[0], x) for x in v) if args else isinstance(v, list)
    if isinstance(t, type) and issubclass(t, Enum):
        return isinstance(v, str)
    if t is bool:
        return isinstance(v, bool)
    if t is int:
        return isinstance(v, int) and not isinstance(v, bool)
    if t is float:
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if t is str:
        return isinstance(v, str)
    return True


def _fmt(key: str, value: Any) -> str:
    return f"{key}={value!r}"


def check_group(prefix: str, cls: type, values: dict, what: str = "") -> Any:
    """Validate one group's dict against its schema; return the checked dataclass instance."""
    from omegaconf import OmegaConf
    from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

    if not isinstance(values, dict):
        raise ConfigError(f"{prefix}={values!r}: must be a config group (key: value mapping)")
    hints = typing.get_type_hints(cls)
    allowed = [f.name for f in dataclasses.fields(cls)]
    for k in values:
        if k not in hints:
            raise ConfigError(f"{_fmt(prefix + '.' + str(k), values[k])}: unknown key{what}; "
                              f"allowed: {', '.join(allowed)}")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(cls), values)
        obj = OmegaConf.to_object(merged)
    except ConfigKeyError as e:  # (kept for safety: caught above)
        raise ConfigError(f"{prefix}.{e.key}: unknown key{what}; allowed: {', '.join(allowed)}") from None
    except OmegaConfBaseException as e:
        key = str(e.full_key or e.key or "").split("[")[0].split(".")[-1]
        t = hints.get(key, Any)
        raise ConfigError(f"{_fmt(prefix + '.' + key, values.get(key))}: {_describe(t)}") from None
    for k, v in values.items():
        if not _strict(hints[k], v):
            raise ConfigError(f"{_fmt(prefix + '.' + k, v)}: {_describe(hints[k])}")
    for k, v in values.items():  # OmegaConf accepts inf/nan as numbers; no flexnet setting does
        if isinstance(v, float) and not math.isfinite(v):
            raise ConfigError(f"{_fmt(prefix + '.' + k, v)}: must be a finite number")
    try:
        obj.check()
    except Bad as b:
        raise ConfigError(f"{_fmt(prefix + '.' + b.key, values.get(b.key, b.value))}: {b.allowed}") from None
    return obj


def _check_top(cfg: dict) -> None:
    from .errors import require

    seed = cfg.get("seed")
    require(isinstance(seed, int) and not isinstance(seed, bool), "seed", seed, "must be an integer")
    thr = cfg.get("threads", "auto")
    require(thr == "auto" or (isinstance(thr, int) and not isinstance(thr, bool) and thr >= 1), "threads", thr,
            "must be a positive integer or 'auto'")
    curve = cfg.get("curve", "auto")
    require(curve == "auto" or isinstance(curve, bool), "curve", curve, "must be true, false or 'auto'")
    prog = cfg.get("progress", "auto")
    require(prog in ("auto", "bar", "log") or isinstance(prog, bool), "progress", prog,
            "must be auto (a bar on a terminal, else a log line every 10 s), bar, log, or false (quiet)")
    check_device(cfg.get("device", "auto"))


def check_device(dev: Any) -> None:
    """device: auto | cpu | cuda | cuda:N | mps, and the device must exist on this machine."""
    import torch

    allowed = "allowed: auto, cpu, cuda, cuda:N, mps"
    if not isinstance(dev, str):
        raise ConfigError(f"device={dev!r}: {allowed}")
    if dev in ("auto", "cpu"):
        return
    try:
        d = torch.device(dev)
    except (RuntimeError, ValueError):
        raise ConfigError(f"device={dev!r}: not a device; {allowed}") from None
    if d.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise ConfigError(f"device={dev!r}: no CUDA GPU is visible on this machine; use device=auto or device=cpu")
        if d.index is not None and d.index >= n:
            raise ConfigError(f"device={dev!r}: this machine has {n} CUDA device(s) (cuda:0..cuda:{n - 1})")
    elif d.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ConfigError(f"device={dev!r}: MPS is not available on this machine; use device=auto or device=cpu")
    else:
        raise ConfigError(f"device={dev!r}: {allowed}")


def _check_convergence_extra(conv: Any) -> None:
    g = conv.grad_tol
    from .fit.loop import GRAD_RULES

    if not (g in ("auto", *GRAD_RULES[1:]) or (_num(g) and g > 0)):
        raise Bad("grad_tol", g, "must be a positive number, " + ", ".join(repr(r) for r in GRAD_RULES[1:])
                  + " or 'auto'")
    at_least(conv, 1, "calibration_n")
    positive(conv, "calibration_factor")


def validate_config(cfg: dict) -> None:
    """Check a resolved flexnet config (plain dict, `hydra` removed); raise ConfigError (one line)."""
    from .errors import require

    if not isinstance(cfg, dict):
        raise ConfigError(f"config={cfg!r}: must be a mapping")
    known = set(SCHEMAS) | set(TOP_LEVEL) | {"train", "convergence", "hydra"} | set(DIRECTIVES)
    for k in cfg:
        if k not in known:
            raise ConfigError(f"{_fmt(str(k), cfg[k])}: unknown top-level key; allowed: "
                              f"{', '.join(sorted(known - {'hydra'}))}")
    _check_top(cfg)
    for group, options in SCHEMAS.items():
        g = cfg.get(group)
        require(isinstance(g, dict) and isinstance(g.get("name"), str), group, g,
                f"must name an option; allowed: {', '.join(sorted(options))}")
        name = g["name"]
        if name not in options:
            raise ConfigError(f"{group}={name!r}: unknown option; allowed: {', '.join(sorted(options))}")
        check_group(group, options[name], g, what=f" for {group}={name}")
    for group, make in (("train", train_schema), ("convergence", convergence_schema)):
        values = cfg.get(group) or {}
        obj = check_group(group, make(), values)
        if group == "convergence":
            try:
                _check_convergence_extra(obj)
            except Bad as b:
                raise ConfigError(f"{_fmt('convergence.' + b.key, values.get(b.key, b.value))}: {b.allowed}") from None
    # ranges of train:/convergence: as the training code defines them (the builders validate)
    from .pipeline import build_budget, build_checks

    build_budget(cfg.get("train") or {})
    build_checks(cfg.get("convergence") or {})
    for d in DIRECTIVES:
        if d in cfg:
            require(isinstance(cfg[d], bool), d, cfg[d], "must be true or false")


_register()
