"""Architectures (plain kwargs in, nn.Module out) and scaling laws (target parameter count -> shape)."""
from __future__ import annotations

from .base import ARCHS, SCALINGS, ACTIVATIONS, ArchSpec, ModelPlan, activation, count_built_params, plan_model

# importing the option modules fills the registries
from . import mlp, cnn, zhang_models, resnet, efficientnet, vit, scaling  # noqa: F401,E402
from . import zhang_construction, kernel  # noqa: F401,E402  (Zhang et al.: Theorem 1, min-norm kernel)

__all__ = ["ARCHS", "SCALINGS", "ACTIVATIONS", "ArchSpec", "ModelPlan", "activation", "count_built_params", "plan_model"]
