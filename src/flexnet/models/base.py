"""Registries for architectures and scaling laws, and the parameter-count solver.

An architecture is an `ArchSpec`: a builder ``build(input_shape, num_classes, **knobs)
-> nn.Module`` plus, per scaling law it supports, a map ``(knobs, s) -> knobs`` from one
scalar scale ``s >= 1`` to a shape, monotone (non-decreasing) in parameter count.
A scaling law (`SCALINGS`) turns ``scaling.params`` into a shape: `none` keeps the
config's shape; the solving laws look up the arch's map under their own name and
solve for ``s``.
"""
from __future__ import annotations

import inspect
import json
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch
from torch import nn

from ..errors import ConfigError, reject_unknown, require
from ..registry import Registry


ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "identity": nn.Identity,
    "gelu": nn.GELU,
    "silu": nn.SiLU,   # EfficientNet's default (swish)
}


def activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ConfigError(f"arch.activation={name!r}: allowed: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


@dataclass
class ArchSpec:
    build: Callable[..., nn.Module]
    scalers: dict[str, Callable[[dict, float], dict]] = field(default_factory=dict)
    # scale range searched by the solver, per law (default (1, 2**20))
    s_range: dict[str, tuple[float, float]] = field(default_factory=dict)
    # a short description of what each law scales (for messages)
    describe: dict[str, str] = field(default_factory=dict)
    # optional exact count (input_shape, num_classes, knobs) -> int that avoids building very
    # deep models, e.g. affine_count / stagewise_count below; tests check it against builds
    count: Optional[Callable[[tuple, int, dict], int]] = None


ARCHS: Registry[ArchSpec] = Registry("arch")


@dataclass
class ModelPlan:
    """What will be built: the arch, its resolved shape and its parameter counts."""

    arch: str
    scaling: str
    shape: dict[str, Any]
    target: Optional[float]
    actual: int
    input_shape: tuple[int, ...]
    num_classes: int
    note: str = ""

    def build(self) -> nn.Module:
        return ARCHS.get(self.arch).build(self.input_shape, self.num_classes, **self.shape)


_COUNT_CACHE: dict[tuple, int] = {}


def count_built_params(spec: ArchSpec, input_shape, num_classes, knobs: dict) -> int:
    """Parameter count of the model a shape gives; built on the meta device (no memory, fast).

    Counts are cached per process (builder, input shape, classes, knobs): solving several
    targets along one law rebuilds few shapes.
    """
    if spec.count is not None:
        return int(spec.count(tuple(input_shape), int(num_classes), dict(knobs)))
    return meta_count(spec.build, input_shape, num_classes, knobs)


def meta_count(build: Callable[..., nn.Module], input_shape, num_classes, knobs: dict) -> int:
    """Parameter count of ``build(input_shape, num_classes, **knobs)``, built on the meta device."""
    key = (id(build), tuple(input_shape), int(num_classes), json.dumps(knobs, sort_keys=True, default=str))
    if key not in _COUNT_CACHE:
        try:
            with torch.device("meta"):
                m = build(tuple(input_shape), int(num_classes), **knobs)
        except (NotImplementedError, RuntimeError):  # a builder that cannot run on meta
            m = build(tuple(input_shape), int(num_classes), **knobs)
        _COUNT_CACHE[key] = sum(p.numel() for p in m.parameters())
    return _COUNT_CACHE[key]


def affine_count(build, key: str, default: int, base: int = 1):
    """Exact count for families whose repeated unit (knob `key` counts them) is identical
    beyond the `base`-th: count(n) = count(base) + (n - base) * (count(base + 1) - count(base))."""
    def count(input_shape, num_classes, knobs):
        n = int(knobs.get(key, default))
        if n <= base + 1:
            return meta_count(build, input_shape, num_classes, knobs)
        c0 = meta_count(build, input_shape, num_classes, {**knobs, key: base})
        c1 = meta_count(build, input_shape, num_classes, {**knobs, key: base + 1})
        return c0 + (n - base) * (c1 - c0)
    return count


def stagewise_count(build, key: str, default):
    """Like affine_count for a list of per-stage block counts (blocks after a stage's first
    are identical): count = count(all 1) + sum_i (n_i - 1) * (count(stage i at 2) - count(all 1))."""
    def count(input_shape, num_classes, knobs):
        ns = [int(v) for v in knobs.get(key, default)]
        if max(ns) <= 2 or min(ns) < 1:
            return meta_count(build, input_shape, num_classes, knobs)
        ones = [1] * len(ns)
        c0 = meta_count(build, input_shape, num_classes, {**knobs, key: ones})
        total = c0
        for i, n in enumerate(ns):
            if n > 1:
                two = list(ones)
                two[i] = 2
                total += (n - 1) * (meta_count(build, input_shape, num_classes, {**knobs, key: two}) - c0)
        return total
    return count


ScalingLaw = Callable[..., ModelPlan]
SCALINGS: Registry[ScalingLaw] = Registry("scaling")


def _check_knobs(arch: str, build: Callable[..., nn.Module], knobs: dict) -> None:
    """An arch setting the builder does not take (e.g. arch.channels left over from a preset for
    another family) is a one-line config error, not a TypeError deep in the solver."""
    params = inspect.signature(build).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    allowed = [k for k, p in params.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL][2:]
    reject_unknown(sorted(knobs), params, "arch.", f"not a setting of arch={arch}", allowed)


def plan_model(arch_cfg: dict, scaling_cfg: dict, input_shape, num_classes: int) -> ModelPlan:
    """Resolve (arch, scaling) configs into a ModelPlan for the given data shape."""
    arch_cfg, scaling_cfg = dict(arch_cfg), dict(scaling_cfg)
    arch = arch_cfg.pop("name")
    law = scaling_cfg.pop("name")
    spec = ARCHS.get(arch)  # unknown arch: clear error before anything else
    _check_knobs(arch, spec.build, arch_cfg)
    return SCALINGS.get(law)(arch=arch, knobs=arch_cfg, input_shape=tuple(input_shape),
                            num_classes=int(num_classes), **scaling_cfg)


def solve_scale(arch: str, law: str, knobs: dict, input_shape, num_classes: int, target: float,
                max_params: float = 2e9, tolerance: float = 0.1) -> ModelPlan:
    """Find the shape along `law` whose parameter count is nearest `target` (log distance).

    Exponential search then bisection on the continuous scale s; every candidate's
    actual count comes from building it, so rounding inside the map is accounted for.
    """
    spec = ARCHS.get(arch)
    if law not in spec.scalers:
        allowed = sorted(set(spec.scalers) | {"none"})
        raise ConfigError(f"scaling={law!r} is not available for arch={arch!r}; allowed: {', '.join(allowed)}")
    if not (isinstance(target, (int, float)) and math.isfinite(target) and target > 0):
        raise ConfigError(f"scaling.params={target!r}: must be a positive number of parameters (e.g. 1e4)")
    if target > max_params:
        raise ConfigError(f"scaling.params={target:g}: above the ceiling scaling.max_params={max_params:g}")
    fn = spec.scalers[law]
    lo_s, hi_s = spec.s_range.get(law, (1.0, float(2**20)))
    cache: dict[str, tuple[int, dict]] = {}

    def evaluate(s: float) -> tuple[int, dict]:
        shape = fn(dict(knobs), s)
        key = json.dumps(shape, sort_keys=True, default=str)
        if key not in cache:
            cache[key] = (count_built_params(spec, input_shape, num_classes, shape), shape)
        return cache[key]

    smallest, smallest_shape = evaluate(lo_s)
    if target < smallest / (1 + tolerance):
        raise ConfigError(
            f"scaling.params={target:g}: below the smallest {arch} realisable by scaling={law} "
            f"({smallest} parameters at {_short(smallest_shape)})")
    # exponential search for an upper scale
    s_lo, s_hi = lo_s, lo_s
    while evaluate(s_hi)[0] < target and s_hi < hi_s:
        s_lo, s_hi = s_hi, min(hi_s, s_hi * 2)
    largest, largest_shape = evaluate(s_hi)
    if largest < target / (1 + tolerance):
        raise ConfigError(
            f"scaling.params={target:g}: above the largest {arch} realisable by scaling={law} "
            f"({largest} parameters at {_short(largest_shape)})")
    # bisection on s
    for _ in range(60):
        if s_hi - s_lo <= 1e-3 * s_lo:
            break
        mid = (s_lo + s_hi) / 2
        if evaluate(mid)[0] < target:
            s_lo = mid
        else:
            s_hi = mid
    best_count, best_shape = min(cache.values(), key=lambda cs: abs(math.log(cs[0] / target)))
    note = ""
    if abs(best_count - target) > tolerance * target:
        note = (f"nearest realisable {arch} along scaling={law} has {best_count} parameters "
                f"({100 * (best_count / target - 1):+.1f}% off target; shape granularity)")
    return ModelPlan(arch, law, best_shape, float(target), int(best_count), tuple(input_shape),
                     int(num_classes), note)


def _short(shape: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in shape.items() if not isinstance(v, dict))


def timm_act(name: str) -> str:
    """arch.activation of a timm family, checked (timm resolves the name to its layer)."""
    require(name in ACTIVATIONS, "arch.activation", name, f"allowed: {', '.join(ACTIVATIONS)}")
    return name  # timm resolves the name to a layer that accepts its `inplace` argument


def dropout_rate(p) -> float:
    """arch.dropout, checked to lie in [0, 1)."""
    require(0.0 <= float(p) < 1.0, "arch.dropout", p, "must lie in [0, 1)")
    return float(p)
