"""arch=resnet: timm's ResNet (no weights, any input) and its scaling laws (width, depth, resnet_rs).

A (D,) input is seen as a 1 x 1 x D image; images keep their channels and resolution. With the
published knobs and `scaling=none`, the models have exactly the parameter counts of timm's models
of that name (tests assert it).
"""
from __future__ import annotations

import math
from functools import partial

from torch import nn

from ..errors import require
from .base import ARCHS, ArchSpec, dropout_rate, stagewise_count, timm_act
from .layout import OnInput, image_layout


# ---------------------------------------------------------------------------------- ResNet
BLOCKS = ("basic", "bottleneck")


def resnet(input_shape, num_classes: int, block: str = "basic", layers=(2, 2, 2, 2),
           channels=(64, 128, 256, 512), stem_width: int = 64, stem_type: str = "",
           replace_stem_pool: bool = False, avg_down: bool = False, se_ratio: float = 0.0,
           small_input="auto", activation: str = "relu", dropout: float = 0.0,
           drop_path: float = 0.0) -> nn.Module:
    """timm ResNet. ResNet-RS features: se_ratio (squeeze-excitation), avg_down (ResNet-D
    downsampling), stem_type 'deep' (three 3x3 convs) with replace_stem_pool.

    small_input (auto: image side < 128): a stem without its 4x downsampling (stride-1 first
    conv, no stem pooling; a plain stem becomes one 3x3 conv, as in CIFAR ResNets)."""
    from timm.layers import get_attn
    from timm.models.resnet import BasicBlock, Bottleneck, ResNet

    require(block in BLOCKS, "arch.block", block, f"allowed: {', '.join(BLOCKS)}")
    layers, channels = [int(v) for v in layers], [int(v) for v in channels]
    require(len(layers) == len(channels) and len(layers) >= 1 and min(layers) >= 1, "arch.layers", layers,
            "one positive block count per stage (as many as arch.channels)")
    require(min(channels) >= 1, "arch.channels", channels, "must be positive integers")
    require(stem_type in ("", "deep", "deep_tiered"), "arch.stem_type", stem_type, "allowed: '', deep, deep_tiered")
    c, h, w = image_layout(input_shape)
    small = max(h, w) < 128 if small_input == "auto" else bool(small_input)
    block_args = {}
    if float(se_ratio) > 0:
        block_args["attn_layer"] = partial(get_attn("se"), rd_ratio=float(se_ratio))
    model = ResNet(BasicBlock if block == "basic" else Bottleneck, layers, num_classes=int(num_classes),
                   in_chans=c, channels=channels, stem_width=int(stem_width), stem_type=stem_type,
                   replace_stem_pool=bool(replace_stem_pool), avg_down=bool(avg_down),
                   act_layer=timm_act(activation), drop_rate=dropout_rate(dropout), drop_path_rate=float(drop_path),
                   block_args=block_args)
    if small:
        if stem_type:
            model.conv1[0].stride = (1, 1)
        else:
            model.conv1 = nn.Conv2d(c, model.conv1.out_channels, 3, stride=1, padding=1, bias=False)
        if isinstance(model.maxpool, nn.MaxPool2d):
            model.maxpool = nn.Identity()
        else:  # replace_stem_pool: a stride-2 conv; keep it (and its parameters), stride 1
            model.maxpool[0].stride = (1, 1)
    return OnInput(model, input_shape, (c, h, w))


def _resnet_width(k: dict, s: float) -> dict:
    ch = [int(c) for c in k.get("channels", (64, 128, 256, 512))]
    m = s / ch[0]
    return {**k, "channels": [max(1, int(round(c * m))) for c in ch],
            "stem_width": max(1, int(round(int(k.get("stem_width", 64)) * m)))}


def _resnet_depth(k: dict, s: float) -> dict:
    ls = [int(v) for v in k.get("layers", (2, 2, 2, 2))]
    m = s / max(ls)
    return {**k, "layers": [max(1, int(round(v * m))) for v in ls]}


# ResNet-RS (Bello et al. 2021) blocks per stage by depth
RS_DEPTHS = [(50, (3, 4, 6, 3)), (101, (3, 4, 23, 3)), (152, (3, 8, 36, 3)), (200, (3, 24, 36, 3)),
             (270, (4, 29, 53, 4)), (350, (4, 36, 72, 4)), (420, (4, 44, 87, 4))]
RS_BELOW = 8  # octaves of width below RS-50


def _resnet_rs(k: dict, s: float) -> dict:
    """s in [1, 2**(RS_BELOW + 6)]: t = log2(s) - RS_BELOW. t >= 0: the RS depth rows
    (interpolated); t < 0: RS-50 depth with stage and stem widths x 2**t."""
    t = math.log2(max(s, 1.0)) - RS_BELOW
    out = {**k, "block": "bottleneck", "se_ratio": 0.25, "avg_down": True, "stem_type": "deep",
           "replace_stem_pool": True}
    if t >= 0:
        i = min(int(math.floor(t)), len(RS_DEPTHS) - 2)
        f = min(t - i, 1.0)
        a, b = RS_DEPTHS[i][1], RS_DEPTHS[i + 1][1]
        out.update(layers=[int(round(x + f * (y - x))) for x, y in zip(a, b)], channels=[64, 128, 256, 512],
                   stem_width=32)
    else:
        m = 2.0 ** t
        out.update(layers=list(RS_DEPTHS[0][1]), channels=[max(1, int(round(c * m))) for c in (64, 128, 256, 512)],
                   stem_width=max(1, int(round(32 * m))))
    return out


ARCHS.add("resnet", ArchSpec(
    build=resnet,
    scalers={"width": _resnet_width, "depth": _resnet_depth, "resnet_rs": _resnet_rs},
    s_range={"width": (1, 2**14), "depth": (1, 512), "resnet_rs": (1, 2 ** (RS_BELOW + 6))},
    count=stagewise_count(resnet, "layers", (2, 2, 2, 2)),
    describe={"width": "stage and stem widths (s = first stage width)",
              "depth": "blocks per stage (s = largest stage's blocks)",
              "resnet_rs": "ResNet-RS depth rows, width below RS-50"},
))
