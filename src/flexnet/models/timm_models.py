"""timm's image families: ResNet, EfficientNet, VisionTransformer (no weights, any input).

A (D,) input is seen as a 1 x 1 x D image (ViT patches are 1 x patch_size); images keep
their channels and resolution. With the published knobs and `scaling=none`, the models
have exactly the parameter counts of timm's models of that name (tests assert it).
"""
from __future__ import annotations

import math
from functools import partial

from torch import nn

from ..errors import ConfigError, require
from .base import ACTIVATIONS, ARCHS, ArchSpec, affine_count, stagewise_count
from .layout import OnInput, image_layout


def _act(name: str) -> str:
    require(name in ACTIVATIONS, "arch.activation", name, f"allowed: {', '.join(ACTIVATIONS)}")
    return name  # timm resolves the name to a layer that accepts its `inplace` argument


def _dropout(p) -> float:
    require(0.0 <= float(p) < 1.0, "arch.dropout", p, "must lie in [0, 1)")
    return float(p)


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
                   act_layer=_act(activation), drop_rate=_dropout(dropout), drop_path_rate=float(drop_path),
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
                              num_classes=int(num_classes), in_chans=c, act_layer=_act(activation),
                              drop_rate=_dropout(dropout), drop_path_rate=float(drop_path))
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


# ---------------------------------------------------------------------------------- ViT
def vit(input_shape, num_classes: int, patch_size: int = 4, embed_dim: int = 64, depth: int = 4,
        num_heads: int = 4, mlp_dim: int = 128, class_token: bool = True, global_pool: str = "token",
        qkv_bias: bool = True, activation: str = "gelu", dropout: float = 0.0,
        drop_path: float = 0.0, fused_attn: bool = False) -> nn.Module:
    """timm VisionTransformer. Patches are patch_size x patch_size (1 x patch_size on (D,)
    inputs); the image sides must be multiples of patch_size.

    fused_attn=False (default) computes attention with plain matmuls: PyTorch's fused
    scaled_dot_product_attention has no double backward on CPU, which the Hessian checks need."""
    from timm.models.vision_transformer import VisionTransformer

    c, h, w = image_layout(input_shape)
    p = int(patch_size)
    ph = 1 if h == 1 else p
    if h % ph or w % p:
        ok = [d for d in range(1, min(h if h > 1 else w, w) + 1) if w % d == 0 and (h == 1 or h % d == 0)]
        raise ConfigError(f"arch.patch_size={p}: must divide the input size {h}x{w}; allowed: {ok}")
    e, hd, m = int(embed_dim), int(num_heads), int(mlp_dim)
    require(hd >= 1 and e >= hd and e % hd == 0, "arch.num_heads", num_heads,
            f"must be a positive divisor of arch.embed_dim={e}")
    require(int(depth) >= 1, "arch.depth", depth, "must be an integer >= 1")
    require(m >= 1, "arch.mlp_dim", mlp_dim, "must be a positive integer")
    require(global_pool in ("token", "avg", "map"), "arch.global_pool", global_pool, "allowed: token, avg, map")
    require(global_pool != "token" or class_token, "arch.global_pool", global_pool,
            "'token' needs arch.class_token=true")
    pdrop = _dropout(dropout)
    model = VisionTransformer(img_size=(h, w), patch_size=(ph, p), in_chans=c, num_classes=int(num_classes),
                              embed_dim=e, depth=int(depth), num_heads=hd,
                              mlp_ratio=(m + 0.5) / e,  # timm takes int(e * mlp_ratio) hidden units: exactly m
                              qkv_bias=bool(qkv_bias), class_token=bool(class_token), global_pool=global_pool,
                              act_layer=_act(activation), drop_rate=pdrop, proj_drop_rate=pdrop,
                              drop_path_rate=float(drop_path))
    for m in model.modules():
        if hasattr(m, "fused_attn"):
            m.fused_attn = bool(fused_attn)
    return OnInput(model, input_shape, (c, h, w))


def _heads_for(width: float, head_dim: float, max_heads: int) -> tuple[int, int]:
    """(heads, width rounded to a multiple of heads) keeping about `head_dim` per head."""
    heads = int(min(max_heads, max(1, round(width / head_dim))))
    return heads, max(heads, int(round(width / heads)) * heads)


def _vit_width(k: dict, s: float) -> dict:
    """s = per-head width; embed_dim = heads x s, mlp_dim keeps the config's ratio."""
    heads = int(k.get("num_heads", 4))
    ratio = int(k.get("mlp_dim", 128)) / int(k.get("embed_dim", 64))
    e = heads * max(1, int(round(s)))
    return {**k, "embed_dim": e, "mlp_dim": max(1, int(round(e * ratio)))}


# Zhai et al. 2022 (Scaling Vision Transformers), ordered by size: width, depth, MLP, heads
SVIT_ROWS = [("s", 256, 6, 1024, 8), ("Ti", 192, 12, 768, 3), ("S", 384, 12, 1536, 6), ("B", 768, 12, 3072, 12),
             ("L", 1024, 24, 4096, 16), ("g", 1408, 40, 6144, 16), ("G", 1664, 48, 8192, 16)]
SVIT_BELOW = 10  # octaves of extrapolation below the 's' row


def _svit(k: dict, s: float) -> dict:
    """t = log2(s) - SVIT_BELOW; t in [i, i+1]: geometric interpolation between rows i, i+1;
    t < 0: the 's' row with width, depth and MLP all x 2**t (head dim 32)."""
    t = math.log2(max(s, 1.0)) - SVIT_BELOW
    if t >= 0:
        i = min(int(math.floor(t)), len(SVIT_ROWS) - 2)
        f = min(t - i, 1.0)
        a, b = SVIT_ROWS[i][1:], SVIT_ROWS[i + 1][1:]
        width, depth, mlp, heads = (x ** (1 - f) * y ** f for x, y in zip(a, b))
        heads = max(1, int(round(heads)))
        width = max(heads, int(round(width / heads)) * heads)
    else:
        g = 2.0 ** t
        width, depth, mlp = 256 * g, 6 * g, 1024 * g
        heads, width = _heads_for(width, 32, 8)
    return {**k, "embed_dim": int(width), "depth": max(1, int(round(depth))), "mlp_dim": max(1, int(round(mlp))),
            "num_heads": int(heads)}


# Alabdulmohsin et al. 2023 (Getting ViT in Shape): SoViT-400m/14 anchor, shape ~ compute^exponent
SOVIT_ANCHOR = dict(embed_dim=1152, depth=27, mlp_dim=4304, num_heads=16)
SOVIT_EXP = dict(embed_dim=0.22, depth=0.45, mlp_dim=0.6)
SOVIT_BELOW = 40  # octaves of compute below the anchor that s can reach


def _sovit(k: dict, s: float) -> dict:
    """c = compute relative to SoViT-400m = 2**(log2(s) - SOVIT_BELOW); width ~ c^0.22,
    depth ~ c^0.45, MLP ~ c^0.6; heads keep the anchor's head dim (72), 1..16 heads.

    The MLP shrinks fastest: below about 3% of the anchor's compute (10M parameters) the law
    makes it narrower than the embedding, and at CPU sizes 1 unit wide. `_min_mlp_ratio` (the
    law's `min_mlp_ratio`, 1.0 by default) keeps it at least that multiple of the width; 0 is the
    law as published, all the way down."""
    k = dict(k)
    ratio = float(k.pop("_min_mlp_ratio", 0.0))
    c = 2.0 ** (math.log2(max(s, 1.0)) - SOVIT_BELOW)
    width = SOVIT_ANCHOR["embed_dim"] * c ** SOVIT_EXP["embed_dim"]
    heads, width = _heads_for(width, SOVIT_ANCHOR["embed_dim"] / SOVIT_ANCHOR["num_heads"], 16)
    mlp = max(SOVIT_ANCHOR["mlp_dim"] * c ** SOVIT_EXP["mlp_dim"], ratio * width)
    return {**k, "embed_dim": width, "num_heads": heads,
            "depth": max(1, int(round(SOVIT_ANCHOR["depth"] * c ** SOVIT_EXP["depth"]))),
            "mlp_dim": max(1, int(round(mlp)))}


ARCHS.add("vit", ArchSpec(
    build=vit,
    scalers={"width": _vit_width, "depth": lambda k, s: {**k, "depth": max(1, int(round(s)))},
             "svit": _svit, "sovit": _sovit},
    count=affine_count(vit, "depth", 4),
    s_range={"width": (1, 2**12), "depth": (1, 4096), "svit": (1, 2.0 ** (SVIT_BELOW + 6)),
             "sovit": (1, 2.0 ** (SOVIT_BELOW + 6))},
    describe={"width": "embedding/attention width (s = head dim) and MLP in proportion",
              "depth": "encoder blocks", "svit": "Zhai et al. shape table", "sovit": "SoViT compute-optimal shape"},
))
