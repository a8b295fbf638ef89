"""Encoder-decoder planner-actor with a vector plan (paper Fig. 6: context-encoder shape, with skip
connections and a stochastic 256-d plan), for tasks whose action is an image.

Planner: 4x4 convs of stride 2 from ``size`` down to 4x4 (one per entry of ``widths``), then a
linear layer to the plan's mean and log-std. Actor: a linear layer from the plan back to 4x4,
then transposed 4x4 convs of stride 2 up to ``size``, each followed by a 3x3 conv over the
upsampled map concatenated with the planner's features at that scale; the last layer sees the
observation too. Output in [0, 1] (sigmoid). No batch statistics: the same function in train and
eval mode and for any batch size.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from .unet import block


def levels_for(size: int) -> int:
    """Stride-2 levels from ``size`` to 4 (``size`` a power of two >= 8)."""
    if size < 8:
        raise ValueError(f"image size must be a power of two >= 8, got {size}")
    n = round(math.log2(size / 4))
    if 4 * 2 ** n != size:
        raise ValueError(f"image size must be a power of two >= 8, got {size}")
    return n


class VectorPlanner(nn.Module):
    """``obs [B, C, S, S] -> (mu [B, D], log_std [B, D], skips)``; skips = [obs, f_1, ..., f_{L-1}]."""

    def __init__(self, in_channels: int, size: int, widths: tuple[int, ...], plan_dim: int):
        super().__init__()
        if len(widths) != levels_for(size):
            raise ValueError(f"size {size} needs {levels_for(size)} widths (one per halving to 4x4), got {len(widths)}")
        chans = [in_channels, *widths]
        self.down = nn.ModuleList(nn.Sequential(nn.Conv2d(chans[i], chans[i + 1], 4, 2, 1), nn.LeakyReLU(0.2))
                                  for i in range(len(widths)))
        self.head = nn.Linear(widths[-1] * 16, 2 * plan_dim)

    def forward(self, obs: torch.Tensor):
        skips, x = [obs], obs
        for i, layer in enumerate(self.down):
            x = layer(x)
            if i < len(self.down) - 1:
                skips.append(x)
        mu, log_std = self.head(x.flatten(1)).chunk(2, dim=1)
        return mu, log_std, skips


class VectorActor(nn.Module):
    """``(plan [B, D], skips) -> image [B, out_channels, S, S]`` in [0, 1]."""

    def __init__(self, in_channels: int, out_channels: int, size: int, widths: tuple[int, ...], plan_dim: int):
        super().__init__()
        levels_for(size)
        self.inp = nn.Sequential(nn.Linear(plan_dim, widths[-1] * 16), nn.LeakyReLU(0.2))
        self.bottom = widths[-1]
        ups, fuse, c = [], [], widths[-1]
        for w in reversed(widths[:-1]):
            ups.append(nn.Sequential(nn.ConvTranspose2d(c, w, 4, 2, 1), nn.LeakyReLU(0.2)))
            fuse.append(block(2, 2 * w, w))
            c = w
        self.ups, self.fuse = nn.ModuleList(ups), nn.ModuleList(fuse)
        self.last_up = nn.Sequential(nn.ConvTranspose2d(c, c, 4, 2, 1), nn.LeakyReLU(0.2))
        self.out = nn.Conv2d(c + in_channels, out_channels, 3, padding=1)

    def forward(self, plan: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        x = self.inp(plan).view(plan.shape[0], self.bottom, 4, 4)
        for up, fuse, skip in zip(self.ups, self.fuse, reversed(skips[1:])):
            x = fuse(torch.cat([up(x), skip], 1))
        x = self.out(torch.cat([self.last_up(x), skips[0]], 1))
        return torch.sigmoid(x)
