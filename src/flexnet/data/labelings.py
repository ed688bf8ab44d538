"""Labelings: pure transforms of the training pool, seeded, identical across attempts.

The test split keeps true inputs and true labels, so the generalisation gap (train minus test
accuracy) keeps its meaning. One exception: `permuted_inputs` applies its one fixed permutation to
the test split too (Zhang et al. 2017 permute the test images the same way: the task is still
learnable, only its spatial structure is gone).
"""
from __future__ import annotations

import torch

from ..errors import require
from .base import LABELINGS, DataBundle


@LABELINGS.register("semantic")
def semantic(bundle: DataBundle, g: torch.Generator) -> DataBundle:
    """The dataset's own labels."""
    return bundle


@LABELINGS.register("random_labels")
def random_labels(bundle: DataBundle, g: torch.Generator) -> DataBundle:
    """Labels drawn uniformly over the classes, independently of the inputs (Zhang et al.)."""
    y = torch.randint(0, bundle.num_classes, (bundle.pool_size,), generator=g)
    return bundle.replace(y_train=y.to(bundle.y_train.device))


@LABELINGS.register("corrupt")
def corrupt(bundle: DataBundle, g: torch.Generator, p: float = 0.5, exclude_true: bool = False) -> DataBundle:
    """Zhang et al.'s partially corrupted labels: each label independently, with probability p, is
    replaced by a uniformly random class (which may equal the true one unless exclude_true)."""
    require(isinstance(p, (int, float)) and not isinstance(p, bool) and 0.0 <= float(p) <= 1.0,
            "labeling.p", p, "must be a probability in [0, 1]")
    n, c = bundle.pool_size, bundle.num_classes
    y = bundle.y_train.cpu()
    mask = torch.rand(n, generator=g) < float(p)
    if exclude_true:
        new = (y + torch.randint(1, c, (n,), generator=g)) % c
    else:
        new = torch.randint(0, c, (n,), generator=g)
    out = torch.where(mask, new, y)
    meta = dict(bundle.meta, corrupted=int(mask.sum()), changed=int((out != y).sum()))
    return bundle.replace(y_train=out.to(bundle.y_train.device), meta=meta)


def _positions(x: torch.Tensor) -> tuple[int, ...]:
    """Images N x C x H x W: positions are the H*W pixels (channels move together);
    anything else N x D...: the flattened features."""
    if x.dim() == 4:
        return (x.shape[0], x.shape[1], x.shape[2] * x.shape[3])
    return (x.shape[0], 1, int(x[0].numel()) if x.shape[0] else 0)


@LABELINGS.register("random_inputs")
def random_inputs(bundle: DataBundle, g: torch.Generator, stats: str = "position",
                  random_labels: bool = True) -> DataBundle:
    """Gaussian inputs with the pool's mean and std (Zhang et al.'s 'Gaussian'); labels uniform.

    stats: `position` (mean/std per input position, e.g. per pixel and channel), `channel`
    (per image channel; per feature for tabular data) or `global` (one mean and std).
    """
    require(stats in ("position", "channel", "global"), "labeling.stats", stats,
            "allowed: position, channel, global")
    x = bundle.x_train
    n, ch, p = _positions(x)
    flat = x.reshape(n, ch, p).to(torch.float32)
    if stats == "position":
        mean, std = flat.mean(0, keepdim=True), flat.std(0, keepdim=True)
    elif stats == "channel":
        if x.dim() == 4:
            mean, std = flat.mean((0, 2), keepdim=True), flat.std((0, 2), keepdim=True)
        else:  # tabular: each feature is its own channel
            mean, std = flat.mean(0, keepdim=True), flat.std(0, keepdim=True)
    else:
        mean, std = flat.mean(), flat.std()
    noise = torch.randn(flat.shape, generator=g).to(x.device)
    new_x = (noise * std + mean).reshape(x.shape).to(x.dtype)
    y = bundle.y_train
    if random_labels:
        y = torch.randint(0, bundle.num_classes, (n,), generator=g).to(y.device)
    return bundle.replace(x_train=new_x, y_train=y)


@LABELINGS.register("permuted_inputs")
def permuted_inputs(bundle: DataBundle, g: torch.Generator) -> DataBundle:
    """One fixed random permutation of the pixel (or feature) positions, the same for every sample
    of the training pool and of the test split (Zhang et al.'s 'shuffled pixels'); labels kept."""
    x, xt = bundle.x_train, bundle.x_test
    n, ch, p = _positions(x)
    perm = torch.randperm(p, generator=g).to(x.device)
    new_x = x.reshape(n, ch, p)[:, :, perm].reshape(x.shape)
    new_xt = xt.reshape(xt.shape[0], ch, p)[:, :, perm.to(xt.device)].reshape(xt.shape) if xt.shape[0] else xt
    return bundle.replace(x_train=new_x, x_test=new_xt, meta=dict(bundle.meta, permutation=perm.cpu()))


@LABELINGS.register("shuffled_pixels")
def shuffled_pixels(bundle: DataBundle, g: torch.Generator, chunk: int = 4096) -> DataBundle:
    """An independent random permutation of the pixel (or feature) positions for every sample
    (Zhang et al.'s 'random pixels'); labels kept."""
    x = bundle.x_train
    n, ch, p = _positions(x)
    flat = x.reshape(n, ch, p)
    out = torch.empty_like(flat)
    for i in range(0, n, chunk):
        m = min(chunk, n - i)
        perms = torch.rand(m, p, generator=g).argsort(dim=1).to(x.device)
        out[i:i + m] = flat[i:i + m].gather(2, perms.unsqueeze(1).expand(m, ch, p))
    return bundle.replace(x_train=out.reshape(x.shape))
