"""A small U-Net split in two at its bottleneck: planner (encoder + Gaussian plan head) and actor
(decoder taking the plan plus the planner's skip features), and a convolutional critic.

Sizes: an input of spatial size ``S`` gives a plan map of ``plan_channels x S / 2**(L-1)`` where
``L = len(widths)`` (28x28 with widths (16, 32, 32) gives 1x7x7 = 49 values, the paper's plan).
No batch statistics anywhere: the same function in train and eval mode, any batch size.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class Conv3d(nn.Conv3d):
    """``nn.Conv3d`` that runs oneDNN's kernel on one CPU volume too. For a batch of one whose
    first four sizes multiply to at most 20480 (a 5-channel 64^3 observation, a 16-channel 32^3
    feature map) PyTorch picks its native ``slow_conv3d``, 7-13x slower here; registering one
    volume at a time (users, the bench) hit it in most of the U-Net's layers
    (``bench/unet.py``). Same numbers to rounding, same gradients, same state dict."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (x.shape[0] == 1 and x.device.type == "cpu" and x.dtype == torch.float32
                and self.padding_mode == "zeros" and torch.backends.mkldnn.is_available()
                and torch.backends.mkldnn.enabled):
            return torch.mkldnn_convolution(x, self.weight, self.bias, self.padding, self.stride,
                                            self.dilation, self.groups)
        return super().forward(x)


def conv(nd: int, cin: int, cout: int, stride: int = 1) -> nn.Module:
    return (nn.Conv2d if nd == 2 else Conv3d)(cin, cout, 3, stride=stride, padding=1)


def block(nd: int, cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(conv(nd, cin, cout, stride), nn.LeakyReLU(0.2, inplace=True))


# Nearest-neighbour x2 upsampling followed by a 3-tap convolution (padding 1) is, per axis, a
# stride-2 transposed convolution with 4 taps: output 2i + a sees inputs i - 1 + a and i + a,
# tap t = 3 - a - 2p of the 4 sums the 3 taps that land on input p (rows of UPSAMPLED_TAPS).
UPSAMPLED_TAPS = torch.tensor([[0., 0., 1.], [0., 1., 1.], [1., 1., 0.], [1., 0., 0.]])


def upsample_conv(conv: nn.Module, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
    """``conv(cat([nearest_upsample(x, skip's size), skip], 1))`` for a 3-wide, padding-1 ``conv``:
    on the CPU by :func:`transposed_upsample_conv`; on a GPU by :func:`concat_upsample_conv`,
    since the shortcut is slower there (H200: 2.3x the plain composition's inference time, 1.7x
    its training step; ``bench/unet.py --device cuda``)."""
    return (transposed_upsample_conv if x.device.type == "cpu" else concat_upsample_conv)(conv, x, skip)


def concat_upsample_conv(conv: nn.Module, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
    """The plain composition: upsample ``x`` (nearest) to ``skip``'s size, concatenate, convolve."""
    return conv(torch.cat([F.interpolate(x, size=skip.shape[2:], mode="nearest"), skip], 1))


def transposed_upsample_conv(conv: nn.Module, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
    """:func:`concat_upsample_conv`, in 2D with ``skip`` exactly twice ``x``'s size computed as one
    transposed convolution of ``x`` for the upsampled half: the same numbers to rounding, 16
    instead of 36 multiply-adds per output and no upsampled copy or concatenation
    (``bench/unet.py``, registration planner-actor on CPU: a training step 0.8x the time,
    inference of 8 pairs 0.93x, of one pair 1.1x). Other sizes and 3D (where the transposed
    convolution was slower on CPU) take the plain composition."""
    if x.dim() != 4 or tuple(skip.shape[2:]) != (2 * x.shape[2], 2 * x.shape[3]):
        return concat_upsample_conv(conv, x, skip)
    w, c = conv.weight, x.shape[1]
    taps = UPSAMPLED_TAPS.to(w)
    up = F.conv_transpose2d(x, torch.einsum("tk,ul,ockl->cotu", taps, taps, w[:, :c]), stride=2, padding=1)
    return up + F.conv2d(skip, w[:, c:], conv.bias, padding=1)


class UNetPlanner(nn.Module):
    """``obs [B, C, *S] -> (mu, log_std, skips)`` with ``mu, log_std [B, plan_channels, *S']``.

    ``skips`` = [obs, level-0 features, level-1 features, ...] (all but the bottleneck).
    """

    def __init__(self, in_channels: int, widths=(16, 32, 32), plan_channels: int = 1, nd: int = 2):
        super().__init__()
        self.nd = nd
        chans = [in_channels, *widths]
        self.levels = nn.ModuleList(block(nd, chans[i], chans[i + 1]) for i in range(len(widths)))
        self.head = conv(nd, widths[-1], 2 * plan_channels)

    def forward(self, obs: torch.Tensor):
        pool = F.max_pool2d if self.nd == 2 else F.max_pool3d
        skips, x = [obs], obs
        for i, level in enumerate(self.levels):
            x = level(pool(x, 2) if i > 0 else x)
            if i < len(self.levels) - 1:
                skips.append(x)
        mu, log_std = self.head(x).chunk(2, dim=1)
        return mu, log_std, skips


class UNetActor(nn.Module):
    """``(plan [B, plan_channels, *S'], skips) -> action [B, out_channels, *S]``.

    The output is ``out_scale * tanh(.)`` (bounded steps) or linear when ``out_scale == 0``.
    ``out_level > 0``: the decoder stops at level ``out_level`` (``1 / 2**out_level`` of the
    input's side) and its output is upsampled linearly to full size, as VoxelMorph predicts its
    fields at half size: the full-size decoder levels, most of the cost, are skipped.
    """

    def __init__(self, in_channels: int, out_channels: int, widths=(16, 32, 32), plan_channels: int = 1,
                 nd: int = 2, out_scale: float = 0.0, out_level: int = 0):
        super().__init__()
        if not 0 <= out_level < len(widths) - 1:
            raise ValueError(f"out_level must be in [0, {len(widths) - 2}], got {out_level}")
        self.nd, self.out_scale, self.out_level = nd, out_scale, out_level
        self.inp = block(nd, plan_channels, widths[-1])
        ups, c = [], widths[-1]
        for w in reversed(widths[out_level:-1]):      # upsample, concatenate the skip, convolve
            ups.append(block(nd, c + w, w))
            c = w
        self.ups = nn.ModuleList(ups)
        self.out = conv(nd, c + (in_channels if out_level == 0 else 0), out_channels)
        nn.init.normal_(self.out.weight, std=1e-3)
        nn.init.zeros_(self.out.bias)

    def forward(self, plan: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        x = self.inp(plan)
        for up, skip in zip(self.ups, reversed(skips[1 + self.out_level:])):
            up_conv, act = up                                     # a block: conv, activation
            x = act(upsample_conv(up_conv, x, skip))
        x = self.out(torch.cat([x, skips[0]], 1) if self.out_level == 0 else x)
        x = self.out_scale * torch.tanh(x / self.out_scale) if self.out_scale > 0 else x
        if self.out_level:
            x = F.interpolate(x, size=skips[0].shape[2:], mode="bilinear" if self.nd == 2 else "trilinear",
                              align_corners=True)
        return x


class ConvCritic(nn.Module):
    """``Q(obs, z)``: strided convs bring ``obs`` down to at most 4 per axis, the result is flattened
    and concatenated with ``z`` flattened (the plan, or an action downsampled to the same grid),
    and an MLP gives one value per sample.

    Args:
        in_channels, in_shape: of the observation.
        z_shape: shape of one ``z``; a ``z`` on the observation's grid (an action, for the
            ``critic_on=action`` ablation) is concatenated to the observation as channels instead.
        pool: average-pool the observation (and a map ``z``) by this factor first: the critic
            judges coarse content at a fraction of the cost (image tasks at 64 px and more).
    """

    def __init__(self, in_channels: int, in_shape: tuple[int, ...], z_shape: tuple[int, ...],
                 widths=(16, 32, 32), hidden: int = 128, pool: int = 1):
        super().__init__()
        nd = len(in_shape)
        self.nd, self.pool = nd, pool
        self.z_is_map = len(z_shape) == nd + 1 and tuple(z_shape[1:]) == tuple(in_shape)
        c = in_channels + (z_shape[0] if self.z_is_map else 0)
        layers, shape = [], [s // pool for s in in_shape]
        for i, w in enumerate(widths):
            stride = 2 if (i > 0 and max(shape) > 4) else 1
            layers.append(block(nd, c, w, stride))
            shape = [(s + 2 - 3) // stride + 1 for s in shape]
            c = w
        while max(shape) > 4:
            layers.append(block(nd, c, c, 2))
            shape = [(s - 1) // 2 + 1 for s in shape]
        self.encoder = nn.Sequential(*layers)
        self.grid = tuple(shape)
        z_dim = 0 if self.z_is_map else math.prod(z_shape)
        self.mlp = nn.Sequential(nn.Linear(c * math.prod(self.grid) + z_dim, hidden), nn.LeakyReLU(0.2),
                                 nn.Linear(hidden, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, 1))

    def forward(self, obs: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        if self.pool > 1:
            down = F.avg_pool2d if self.nd == 2 else F.avg_pool3d
            obs = down(obs, self.pool)
            z = down(z, self.pool) if self.z_is_map else z
        if self.z_is_map:
            return self.mlp(self.encoder(torch.cat([obs, z], 1)).flatten(1)).squeeze(1)
        return self.mlp(torch.cat([self.encoder(obs).flatten(1), z.flatten(1)], 1)).squeeze(1)
