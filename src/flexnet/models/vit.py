"""arch=vit: timm's VisionTransformer (no weights, any input) and its scaling laws (width, depth,
svit, sovit).

A (D,) input is seen as a 1 x 1 x D image, its patches 1 x patch_size; images keep their channels
and resolution. With the published knobs and `scaling=none`, the models have exactly the parameter
counts of timm's models of that name (tests assert it).
"""
from __future__ import annotations

import math

from torch import nn

from ..errors import ConfigError, require
from .base import ARCHS, ArchSpec, affine_count, dropout_rate, timm_act
from .layout import OnInput, image_layout


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
    pdrop = dropout_rate(dropout)
    model = VisionTransformer(img_size=(h, w), patch_size=(ph, p), in_chans=c, num_classes=int(num_classes),
                              embed_dim=e, depth=int(depth), num_heads=hd,
                              mlp_ratio=(m + 0.5) / e,  # timm takes int(e * mlp_ratio) hidden units: exactly m
                              qkv_bias=bool(qkv_bias), class_token=bool(class_token), global_pool=global_pool,
                              act_layer=timm_act(activation), drop_rate=pdrop, proj_drop_rate=pdrop,
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
