"""Discriminators and adversarial losses (the family of the paper's Table II).

Kinds (``gan=``):

- ``sngan``: non-saturating BCE, spectral normalisation on every layer of the discriminator;
- ``wgan-gp``: Wasserstein critic (no sigmoid) with the gradient penalty ``gp_weight (|grad| - 1)^2``
  on random interpolates of real and fake;
- ``ragan``: relativistic average BCE (each side scored against the other's mean);
- ``hinge``: hinge loss with spectral normalisation;
- ``vanilla``: BCE without spectral normalisation (pix2pix's conditional GAN).

A discriminator is ``global`` (strided 4x4 convs down to 4x4, then one linear score: the
context-encoder / paper Fig. 6 shape) or ``patch`` (PatchGAN: three strided and two unit-stride
4x4 convs giving one score per overlapping patch). ``cond_channels > 0`` makes it conditional:
it sees ``cat(condition, image)``.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

KINDS = ("sngan", "wgan-gp", "ragan", "hinge", "vanilla")
SPECTRAL = ("sngan", "hinge")


def check_patch_size(size: int, n_widths: int) -> None:
    """A ``ValueError`` when a PatchGAN of ``n_widths`` (up to 4) conv layers leaves no patch of a
    ``size``-px image (checked with the options, before any network is built)."""
    out = size
    for i in range(min(4, n_widths)):
        out = out // 2 if i < 3 else out - 1
    if out - 1 < 1:
        raise ValueError(f"a {size}-px image is too small for a PatchGAN with {min(4, n_widths)} layers")


class Discriminator(nn.Module):
    """``D(image [B, C, H, W], cond [B, C', H, W] | None) -> scores [B, N]`` (N = 1 or patches).

    Args:
        in_channels: of the image judged (plus ``cond_channels`` when conditional).
        size: image side (square, a power of two >= 8) for the ``global`` shape.
        widths: channels of the strided convs (``patch``: the first four are used).
        kind: the GAN kind (decides spectral normalisation).
        shape: ``global`` or ``patch``.
    """

    def __init__(self, in_channels: int, size: int, widths=(64, 128, 256, 512), kind: str = "sngan",
                 shape: str = "global", cond_channels: int = 0):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"unknown GAN kind {kind!r} (known: {', '.join(KINDS)})")
        if shape not in ("global", "patch"):
            raise ValueError(f"discriminator shape must be 'global' or 'patch', got {shape!r}")
        sn = nn.utils.parametrizations.spectral_norm if kind in SPECTRAL else (lambda m: m)
        c, layers, s = in_channels + cond_channels, [], size
        if shape == "global":
            for w in widths:
                if s <= 4:
                    break
                layers += [sn(nn.Conv2d(c, w, 4, 2, 1)), nn.LeakyReLU(0.2)]
                c, s = w, s // 2
            self.body = nn.Sequential(*layers)
            self.head = nn.Sequential(nn.Flatten(), sn(nn.Linear(c * s * s, 1)))
        else:
            check_patch_size(size, len(widths))
            for i, w in enumerate(widths[:4]):
                stride = 2 if i < 3 else 1
                layers += [sn(nn.Conv2d(c, w, 4, stride, 1)), nn.LeakyReLU(0.2)]
                c = w
            self.body = nn.Sequential(*layers)
            self.head = nn.Sequential(sn(nn.Conv2d(c, 1, 4, 1, 1)), nn.Flatten())
        self.cond_channels = cond_channels

    def forward(self, image: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        if self.cond_channels:
            if cond is None:
                raise ValueError("a conditional discriminator needs its condition")
            image = torch.cat([cond, image], 1)
        return self.head(self.body(image))


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def gradient_penalty(disc: Discriminator, real: torch.Tensor, fake: torch.Tensor,
                     cond: torch.Tensor | None = None) -> torch.Tensor:
    """WGAN-GP: ``mean((|grad_x D(x)| - 1)^2)`` at random interpolates of real and fake. A patch
    discriminator's ``D(x)`` is the sum of its patch scores (pix2pix's ``cal_gradient_penalty``
    convention), where the losses take their mean: with N patches the penalty holds the gradient
    of N times the critic the losses use to 1 (as ``gp_weight`` x N with the adversarial term / N)."""
    eps = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype)
    x = (eps * real + (1 - eps) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(disc(x, cond).sum(), x, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def discriminator_loss(kind: str, disc: Discriminator, real: torch.Tensor, fake: torch.Tensor,
                       cond: torch.Tensor | None = None, gp_weight: float = 10.0
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(loss, real_scores, fake_scores)`` for one discriminator step; ``fake`` is detached here."""
    fake = fake.detach()
    dr, df = disc(real, cond), disc(fake, cond)
    if kind in ("sngan", "vanilla"):
        loss = _bce(dr, 1.0) + _bce(df, 0.0)
    elif kind == "hinge":
        loss = F.relu(1 - dr).mean() + F.relu(1 + df).mean()
    elif kind == "ragan":
        loss = _bce(dr - df.mean(), 1.0) + _bce(df - dr.mean(), 0.0)
    elif kind == "wgan-gp":
        loss = df.mean() - dr.mean() + gp_weight * gradient_penalty(disc, real, fake, cond)
    else:
        raise ValueError(f"unknown GAN kind {kind!r} (known: {', '.join(KINDS)})")
    return loss, dr.detach(), df.detach()


def generator_loss(kind: str, disc: Discriminator, real: torch.Tensor, fake: torch.Tensor,
                   cond: torch.Tensor | None = None) -> torch.Tensor:
    """The adversarial term of the generator (here: planner + actor); gradients reach ``fake``
    only (the caller freezes the discriminator's parameters)."""
    df = disc(fake, cond)
    if kind in ("sngan", "vanilla"):
        return _bce(df, 1.0)
    if kind in ("hinge", "wgan-gp"):
        return -df.mean()
    if kind == "ragan":
        dr = disc(real, cond).detach()
        return _bce(dr - df.mean(), 0.0) + _bce(df - dr.mean(), 1.0)
    raise ValueError(f"unknown GAN kind {kind!r} (known: {', '.join(KINDS)})")
