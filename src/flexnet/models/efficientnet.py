"""arch=efficientnet: timm's EfficientNet (no weights, any input) and its scaling laws (width,
depth, the compound efficientnet law).

A (D,) input is seen as a 1 x 1 x D image; images keep their channels and resolution. With the
published knobs and `scaling=none`, the models have exactly the parameter counts of timm's models
of that name (tests assert it).
"""
from __future__ import annotations

import math

from torch import nn

from ..errors import require
from .base import ARCHS, ArchSpec, dropout_rate, timm_act
from .layout import OnInput, image_layout


# ---------------------------------------------------------------------------------- EfficientNet
def efficientnet(input_shape, num_classes: int, width_multiplier: float = 1.0, depth_multiplier: float = 1.0,
                 input_scale: float = 1.0, activation: str = "silu", dropout: float = 0.2,
                 drop_path: float = 0.0) -> nn.Module:
    """timm's EfficientNet-B0 generator with channel/depth multipliers (stage repeats
    ceil(repeats x depth), channels rounded to multiples of 8). input_scale != 1 resizes the
    input by that factor first (compound resolution scaling)."""
    from timm.models.efficientnet import _gen_efficientnet

    require(float(width_multiplier) > 0, "arch.width_multiplier", width_multiplier, "must be > 0")
    require(float(depth_multiplier) > 0, "arch.depth_multiplier", depth_multiplier, "must be > 0")
    c, h, w = image_layout(input_shape)
    model = _gen_efficientnet("efficientnet_b0", channel_multiplier=float(width_multiplier),
                              depth_multiplier=float(depth_multiplier), pretrained=False,
                              num_classes=int(num_classes), in_chans=c, act_layer=timm_act(activation),
                              drop_rate=dropout_rate(dropout), drop_path_rate=float(drop_path))
    if float(input_scale) != 1.0:
        size = (h if h == 1 else int(round(h * float(input_scale))), int(round(w * float(input_scale))))
        model = nn.Sequential(nn.Upsample(size=size, mode="bilinear", align_corners=False), model)
    return OnInput(model, input_shape, (c, h, w))


EFF_ALPHA, EFF_BETA, EFF_GAMMA = 1.2, 1.1, 1.15
EFF_PHI_MIN = -30.0


def _eff_compound(k: dict, s: float) -> dict:
    """phi = log2(s) + EFF_PHI_MIN: depth alpha**phi, width beta**phi (resolution gamma**phi
    when the law's `resolution` is on)."""
    k = dict(k)
    resolution = bool(k.pop("_resolution_scaling", False))
    phi = math.log2(max(s, 1.0)) + EFF_PHI_MIN
    out = {**k, "depth_multiplier": round(EFF_ALPHA ** phi, 6), "width_multiplier": round(EFF_BETA ** phi, 6)}
    if resolution:
        out["input_scale"] = round(EFF_GAMMA ** phi, 6)
    return out


ARCHS.add("efficientnet", ArchSpec(
    build=efficientnet,
    scalers={"width": lambda k, s: {**k, "width_multiplier": round(s / 64, 6)},
             "depth": lambda k, s: {**k, "depth_multiplier": round(s / 16, 6)},
             "efficientnet": _eff_compound},
    s_range={"width": (1, 64 * 16), "depth": (1, 16 * 32), "efficientnet": (1, 2.0 ** 45)},
    describe={"width": "channel multiplier (s / 64)", "depth": "depth multiplier (s / 16)",
              "efficientnet": "compound phi: depth 1.2^phi, width 1.1^phi"},
))
