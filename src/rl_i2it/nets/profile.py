"""Parameters and multiply-accumulates of a network, counted by our own hooks (paper Table IV).

MACs count the multiply-accumulates of convolutions, transposed convolutions and linear layers
(what tools such as thop report as "FLOPs"; the arithmetic FLOPs are about twice as many);
activations, normalisation and resampling are not counted.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn


def sync(device) -> None:
    """Wait for the work queued on ``device`` (CUDA runs asynchronously): call before reading a timer."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


COUNTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d, nn.Linear)


def _layer_macs(m: nn.Module, inp: torch.Tensor, out: torch.Tensor) -> int:
    if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        return out.numel() * (m.in_channels // m.groups) * math.prod(m.kernel_size)
    if isinstance(m, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
        return inp.numel() * (m.out_channels // m.groups) * math.prod(m.kernel_size)
    if isinstance(m, nn.Linear):
        return out.numel() * m.in_features
    return 0


@torch.no_grad()
def count_macs(module: nn.Module, *inputs) -> int:
    """Multiply-accumulates of one call ``module(*inputs)`` (all samples of the batch)."""
    total = [0]
    hooks = [m.register_forward_hook(lambda m, i, o: total.__setitem__(0, total[0] + _layer_macs(m, i[0], o)))
             for m in module.modules() if isinstance(m, COUNTED)]
    try:
        module(*inputs)
    finally:
        for h in hooks:
            h.remove()
    return total[0]
