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


for _law in ("resnet_rs", "svit", "sovit"):
    SCALINGS.add(_law, solving_law(_law))


@SCALINGS.register("efficientnet")
def efficientnet_law(arch: str, knobs: dict, input_shape, num_classes: int, params: float = 2000,
                     max_params: float = 2e9, tolerance: float = 0.1, resolution: bool = False,
                     **_: object) -> ModelPlan:
    """Compound scaling (Tan & Le 2019): depth 1.2^phi, width 1.1^phi, and with `resolution`
    on, input resolution 1.15^phi (off by default: the dataset fixes the input size)."""
    knobs = {**knobs, "_resolution_scaling": bool(resolution)}
    return solve_scale(arch, "efficientnet", knobs, input_shape, num_classes, params, max_params, tolerance)
