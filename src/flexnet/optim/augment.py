"""Data augmentation as a regularizer (Zhang et al. 2017's "data augmentation" column):
random crop with zero padding and random horizontal flip, for image inputs (N x C x H x W).

`regularizer=augment` sets `Procedure.batch_transform`, which fit/loop.py applies to every
training minibatch, so each epoch trains on a new augmented view while labels stay fixed.
The running (online) loss and accuracy of an epoch are then on the augmented stream, as Zhang
et al. report; the fit verdict and the minimum checks use the clean subset (convergence.evaluate).
Off by default (`regularizer=none`), as in the EMC study.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch.nn import functional as F

from ..errors import ConfigError, require
from .base import REGULARIZERS, Procedure


class CropFlip:
    """x (N x C x H x W), generator -> a randomly shifted (pad, then crop back to H x W) and
    randomly mirrored copy; one independent draw per image from `g`."""

    def __init__(self, pad: int = 4, flip: bool = True, then: Optional[Callable] = None):
        self.pad, self.flip, self.then = int(pad), bool(flip), then

    def __repr__(self) -> str:
        return f"CropFlip(pad={self.pad}, flip={self.flip})"

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        if self.then is not None:
            x = self.then(x, g)
        if x.dim() != 4:
            raise ConfigError(
                f"regularizer=augment: needs image inputs (N x C x H x W), got inputs of shape "
                f"{tuple(x.shape[1:])}; use regularizer=none for this dataset")
        n, c, h, w = x.shape
        gdev = g.device if g is not None else x.device
        p = self.pad
        if p > 0:
            xp = F.pad(x, (p, p, p, p))  # zeros
            oy = torch.randint(0, 2 * p + 1, (n,), generator=g, device=gdev).to(x.device)
            ox = torch.randint(0, 2 * p + 1, (n,), generator=g, device=gdev).to(x.device)
            rows = oy[:, None] + torch.arange(h, device=x.device)  # n x h
            cols = ox[:, None] + torch.arange(w, device=x.device)  # n x w
            x = xp[torch.arange(n, device=x.device)[:, None, None, None],
                   torch.arange(c, device=x.device)[None, :, None, None],
                   rows[:, None, :, None], cols[:, None, None, :]]
        if self.flip:
            m = (torch.rand(n, generator=g, device=gdev) < 0.5).to(x.device)
            x = torch.where(m[:, None, None, None], x.flip(-1), x)
        return x


@REGULARIZERS.register("augment")
def augment(proc: Procedure, pad: int = 4, flip: bool = True) -> Procedure:
    """Random crop with `pad` pixels of zero padding and (if `flip`) random horizontal flips."""
    require(isinstance(pad, int) and not isinstance(pad, bool) and pad >= 0, "regularizer.pad", pad,
            "must be an integer >= 0 (pixels of padding before the random crop)")
    require(isinstance(flip, bool), "regularizer.flip", flip, "must be true or false")
    proc.batch_transform = CropFlip(pad, flip, then=proc.batch_transform)
    proc.tags["augment"] = {"pad": pad, "flip": flip}
    return proc
