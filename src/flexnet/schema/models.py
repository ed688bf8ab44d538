"""Schemas of the `arch:` and `scaling:` groups: `Arch` (activation, dropout and drop_path checked for
every architecture that has them) with one subclass per architecture, then `Scaling` (params, max_params,
tolerance) and the scaling laws with keys of their own."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional

from .checks import Schema, at_least, in_unit, int_list, is_number, need, one_of, positive

ACTIVATIONS = ("relu", "tanh", "sigmoid", "identity", "gelu", "silu")


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
        int_list(self, "channels")
        int_list(self, "fc", nonempty=False)


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
        int_list(self, "layers")
        int_list(self, "channels")
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
        int_list(self, "fc", nonempty=False)


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
        need(b == "median" or (is_number(b) and b > 0), "bandwidth", b, "must be 'median' or a positive number")


# ------------------------------------------------------------------ scaling

@dataclass
class Scaling(Schema):
    name: str = ""
    params: Optional[float] = None
    max_params: float = 2e9
    tolerance: float = 0.1

    def check(self) -> None:
        need(is_number(self.params) and self.params > 0, "params", self.params,
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


# ------------------------------------------------------------------ option -> schema (SCHEMAS in validate.py)

ARCH_SCHEMAS: dict[str, type] = {
    "mlp": Mlp, "cnn": Cnn, "resnet": Resnet, "efficientnet": EfficientNet, "vit": Vit,
    "alexnet_small": AlexNetSmall, "inception_small": InceptionSmall, "zhang_construction": ZhangConstruction,
    "kernel_minnorm": KernelMinNorm}
SCALING_SCHEMAS: dict[str, type] = {
    "width": Scaling, "depth": Scaling, "resnet_rs": Scaling, "svit": Scaling, "sovit": ScalingSovit,
    "efficientnet": ScalingEfficientNet, "none": ScalingNone}
