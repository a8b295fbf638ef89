"""LPIPS v0.1 (Zhang et al. 2018, "The unreasonable effectiveness of deep features as a perceptual
metric"), as the ``lpips`` package computes it with ``spatial=False``:

1. map [0, 1] RGB to [-1, 1], then the scaling layer ``(x - shift) / scale``;
2. AlexNet (relu1..relu5) or VGG16 (relu1_2..relu5_3) activations of both images;
3. unit-normalise each feature vector over the channels, squared difference;
4. a learnt non-negative 1x1 linear head per layer, spatial mean, sum over the layers.

The heads are the ``lpips==0.1.4`` package's ``weights/v0.1/{alex,vgg}.pth``.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from .vgg import AlexNetFeatures, VGG16Features, float_images
from .weights import fetch_weights, load_state
from ..errors import UserError

__all__ = ["LPIPS", "lpips"]

_BACKBONES = {"alex": AlexNetFeatures, "vgg": VGG16Features}


class LPIPS(nn.Module):
    """Learned perceptual distance ``[B, C, H, W]`` x2 -> ``[B]`` (0 for identical images, larger =
    less alike). Inputs are RGB in [0, 1] (grey ``C = 1`` is repeated to RGB); gradients flow to the
    inputs, the weights are frozen. ``pretrained=False`` gives random backbone weights and random
    non-negative heads (for tests).

    Example:
        >>> d = LPIPS("alex", pretrained=False)
        >>> x = torch.rand(2, 3, 64, 64)
        >>> d(x, x)
        tensor([0., 0.])
    """

    def __init__(self, net: str = "alex", pretrained: bool = True):
        super().__init__()
        if net not in _BACKBONES:
            raise ValueError(f"net must be 'alex' or 'vgg', got {net!r}")
        self.net_name = net
        self.net = _BACKBONES[net](normalize=False, pretrained=pretrained)
        chans = list(self.net.channels.values())
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in chans)
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1), persistent=False)
        if pretrained:
            path = fetch_weights("lpips") / f"{net}.pth"
            heads = load_state(path)
            try:
                for i, lin in enumerate(self.lins):
                    lin.weight.data.copy_(heads[f"lin{i}.model.1.weight"])
            except (KeyError, RuntimeError) as exc:
                raise UserError(f"{path} does not hold LPIPS heads for {net}: {exc}") from None
        else:
            for lin, c in zip(self.lins, chans):
                nn.init.uniform_(lin.weight, 0.0, 2.0 / c)
        self.requires_grad_(False)
        self.eval()

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if a.shape != b.shape:
            raise ValueError(f"images differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
        dtype = self.lins[0].weight.dtype
        a, b = float_images(a, dtype), float_images(b, dtype)
        n = a.shape[0]
        x = torch.cat([a, b]).expand(-1, 3, -1, -1)
        x = ((2 * x - 1) - self.shift) / self.scale
        feats = self.net(x)           # both images in one pass
        total = a.new_zeros(n)
        for lin, f in zip(self.lins, feats.values()):
            f = f / (f.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            total = total + lin((f[:n] - f[n:]) ** 2).mean((1, 2, 3))
        return total


_CACHE: dict[tuple[str, str], LPIPS] = {}


def lpips(a: torch.Tensor, b: torch.Tensor, net: str = "alex") -> torch.Tensor:
    """LPIPS v0.1 between images ``[B, 3 or 1, H, W]`` in [0, 1]: ``[B]``, with the pretrained
    ``net`` (``"alex"``, the package's default, or ``"vgg"``); the module is built once per net
    and device. Differentiable in the images. Floats far outside [0, 1] (0-255 values) are refused."""
    for x in (a, b):
        if not (x.is_floating_point() and x.numel()):
            continue                                 # (integer images: refused by the module, with advice)
        lo, hi = float(x.detach().amin()), float(x.detach().amax())
        if not -0.5 <= lo <= hi <= 1.5:              # NaN fails too
            hint = ("NaN or infinite values" if not (math.isfinite(lo) and math.isfinite(hi)) else
                    "[-1, 1] images, as the lpips package takes? give (x + 1) / 2" if lo >= -1.01 and hi <= 1.01 else
                    "0-255 floats? divide by 255" if lo >= -0.5 and hi <= 255.5 else "")
            raise ValueError(f"images in [0, 1] expected, got values from {lo:g} to {hi:g}" + (f" ({hint})" if hint else ""))
    key = (net, str(a.device))
    if key not in _CACHE:
        _CACHE[key] = LPIPS(net).to(a.device)
    return _CACHE[key](a, b)
