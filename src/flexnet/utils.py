"""Small shared helpers: seeds, devices, config plumbing."""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

import numpy as np
import torch


def derive_seed(*parts: int) -> int:
    """A 63-bit seed derived from integers (run seed, n, attempt, ...), stable across runs."""
    ss = np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts])
    lo, hi = (int(v) for v in ss.generate_state(2, dtype=np.uint32))
    return (lo | (hi << 32)) & ((1 << 63) - 1)


def generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(int(seed))
    return g


@contextlib.contextmanager
def seeded_init(seed: int) -> Iterator[None]:
    """Scope torch's global RNG to `seed` for module construction, then restore it.

    nn.Module initialisers draw from the global generator; this keeps the
    init reproducible without reseeding anything outside the block.
    """
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(seed))
        yield


def resolve_device(name: str | None) -> torch.device:
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def plain(obj: Any) -> Any:
    """DictConfig/ListConfig -> plain python containers (models and data take plain kwargs)."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(obj, (DictConfig, ListConfig)):
        return OmegaConf.to_container(obj, resolve=True)
    return obj


def knobs(cfg: Any, drop: tuple[str, ...] = ("name",)) -> dict:
    """A group's config as plain kwargs, without its `name` (and other dropped keys)."""
    d = dict(plain(cfg) or {})
    for k in drop:
        d.pop(k, None)
    return d

