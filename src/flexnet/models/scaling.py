"""Scaling laws: `none` (the config's shape) and the solving laws (width, depth, ...).

A solving law is generic: it looks up the arch's own map for the law's name
(ArchSpec.scalers) and solves the scale for `scaling.params`. Families add
their maps in their own module; a new law that needs more than a map
registers its own function here.
"""
from __future__ import annotations

from typing import Optional

from .base import ARCHS, SCALINGS, ModelPlan, count_built_params, solve_scale


@SCALINGS.register("none")
def no_scaling(arch: str, knobs: dict, input_shape, num_classes: int, params: Optional[float] = None,
               **_: object) -> ModelPlan:
    """Build exactly the shape written in the arch config; `params` (if given) is only recorded."""
    spec = ARCHS.get(arch)
    actual = count_built_params(spec, input_shape, num_classes, knobs)
    return ModelPlan(arch, "none", dict(knobs), None if params is None else float(params), actual,
                     tuple(input_shape), int(num_classes))


def solving_law(name: str):
    def law(arch: str, knobs: dict, input_shape, num_classes: int, params: float = 2000,
            max_params: float = 2e9, tolerance: float = 0.1, **_: object) -> ModelPlan:
        return solve_scale(arch, name, knobs, input_shape, num_classes, params, max_params, tolerance)

    law.__doc__ = f"Scale the architecture along its `{name}` map to reach `scaling.params`."
    return law


for _law in ("width", "depth"):
    SCALINGS.add(_law, solving_law(_law))


for _law in ("resnet_rs", "svit"):
    SCALINGS.add(_law, solving_law(_law))


@SCALINGS.register("efficientnet")
def efficientnet_law(arch: str, knobs: dict, input_shape, num_classes: int, params: float = 2000,
                     max_params: float = 2e9, tolerance: float = 0.1, resolution: bool = False,
                     **_: object) -> ModelPlan:
    """Compound scaling (Tan & Le 2019): depth 1.2^phi, width 1.1^phi, and with `resolution`
    on, input resolution 1.15^phi (off by default: the dataset fixes the input size)."""
    knobs = {**knobs, "_resolution_scaling": bool(resolution)}
    return solve_scale(arch, "efficientnet", knobs, input_shape, num_classes, params, max_params, tolerance)


@SCALINGS.register("sovit")
def sovit_law(arch: str, knobs: dict, input_shape, num_classes: int, params: float = 2000,
              max_params: float = 2e9, tolerance: float = 0.1, min_mlp_ratio: float = 0.0,
              **_: object) -> ModelPlan:
    """SoViT (Alabdulmohsin et al. 2023): width c^0.22, depth c^0.45, MLP c^0.6 from SoViT-400m/14,
    the MLP kept at least `min_mlp_ratio` x the width (conf/scaling/sovit.yaml: 1.0; 0: the law
    as published, whose MLP is 1 unit wide at CPU sizes)."""
    knobs = {**knobs, "_min_mlp_ratio": float(min_mlp_ratio)}
    return solve_scale(arch, "sovit", knobs, input_shape, num_classes, params, max_params, tolerance)
