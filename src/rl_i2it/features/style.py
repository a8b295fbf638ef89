"""The style-transfer objective of the paper (section 4.4) on a frozen VGG16, in its evaluation form.

Images are fed to VGG16 as raw RGB in [0, 1] (no ImageNet mean and std) and clamped to [0, 1]
first; this form reproduces the paper's Table VI with the authors' checkpoints.

* content loss: mean squared difference of the relu2_2 features of image and content;
* style loss: sum over relu1_2, relu2_2, relu3_3, relu4_3 of the mean squared difference
  between Gram matrices ``F F^T / (C H W)`` of image and style (the style at its own size);
* style code (the arbitrary-style model's input): log(1 + channel mean) and log(1 + channel
  std) of those four layers, 1920 numbers, measured on the style image shrunk to a longer side
  of at most ``CODE_SIDE`` (the scale of the training styles; the Gram targets keep its own size).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..data.images import resize_longer
from ..ops.losses import gram, gram_distance
from .vgg import VGG16Features

STYLE_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
CONTENT_LAYER = "relu2_2"
CODE_DIM = 2 * sum(VGG16Features.channels[name] for name in STYLE_LAYERS)
CODE_SIDE = 256
"""Longest side a style image is measured at for its code (larger ones are shrunk, antialiased;
never enlarged): the 256 px of the arbitrary model's training styles, so a 12 MP photo as
``--style`` costs one small VGG16 pass, not gigabytes. On the validation styles (graf1 800 px,
baboon, fruits; made textures drawn at 512) codes at own size, 384 and 256 gave the same losses
at T = 1 and 10 to within 3.2 % (README, "A style image of any size")."""


def code_image(style: torch.Tensor) -> torch.Tensor:
    """``style [B, 3, H, W]`` as its code is measured: shrunk to a longer side of ``CODE_SIDE``
    (a long thin picture's short side kept at VGG16's 16 pixels)."""
    return style if max(style.shape[-2:]) <= CODE_SIDE else resize_longer(style, CODE_SIDE, VGG16Features.min_size)


class StyleObjective(nn.Module):
    """Content and style losses per image. ``vgg``: a ``VGG16Features(normalize=False)`` (the
    default builds one with the pretrained weights)."""

    def __init__(self, vgg: VGG16Features | None = None):
        super().__init__()
        self.vgg = vgg if vgg is not None else VGG16Features(normalize=False)
        if self.vgg.normalize:
            raise ValueError("the style objective's VGG16 takes raw RGB: build it with normalize=False")

    def features(self, image: torch.Tensor, layers=STYLE_LAYERS) -> dict[str, torch.Tensor]:
        return self.vgg(image.clamp(0, 1), layers)

    @torch.no_grad()
    def style_grams(self, style: torch.Tensor) -> list[torch.Tensor]:
        """Gram matrices ``[B, C, C]`` of style images ``[B, 3, H, W]`` (each at its own size)."""
        return [gram(f) for f in self.features(style).values()]

    @torch.no_grad()
    def content_features(self, content: torch.Tensor) -> torch.Tensor:
        return self.features(content, (CONTENT_LAYER,))[CONTENT_LAYER]

    @torch.no_grad()
    def style_code(self, style: torch.Tensor) -> torch.Tensor:
        """``[B, CODE_DIM]``: log(1 + mean) and log(1 + std) of each channel of the style layers,
        of ``code_image(style)``."""
        return code_of_features(self.features(code_image(style)).values())

    @torch.no_grad()
    def style_stats(self, style: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """``(style_grams(style), style_code(style))``, from one VGG16 pass where the style is no
        larger than ``CODE_SIDE`` (a bank of styles)."""
        feats = list(self.features(style).values())
        code = code_of_features(feats) if code_image(style) is style else self.style_code(style)
        return [gram(f) for f in feats], code

    def forward(self, image: torch.Tensor, content_features: torch.Tensor | None,
                grams: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(content loss [B], style loss [B])`` of ``image``; content loss zeros when
        ``content_features`` is None."""
        feats = self.features(image)
        style = sum(gram_distance(feats[name], g) for name, g in zip(STYLE_LAYERS, grams))
        if content_features is None:
            content = style.new_zeros(style.shape)
        else:
            content = (feats[CONTENT_LAYER] - content_features).square().flatten(1).mean(1)
        return content, style


def code_of_features(feats) -> torch.Tensor:
    """The style code ``[B, CODE_DIM]`` of the style layers' features ``[B, C, H, W]``."""
    parts = []
    for f in feats:
        parts += [f.mean((2, 3)), f.flatten(2).std(2)]
    return torch.log1p(torch.cat(parts, 1).clamp_min(0))
