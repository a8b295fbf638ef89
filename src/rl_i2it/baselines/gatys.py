"""Gatys et al.'s style transfer: the image itself optimised by L-BFGS on the style objective.

The quality ceiling of the feed-forward methods (same content, style and TV terms and weights as
the style task's auxiliary loss), and slow: every iteration is a VGG16 forward and backward.
The image is parameterised as ``sigmoid(u)`` (always in [0, 1]), starting at the content.
"""
from __future__ import annotations

import torch

from ..ops.losses import total_variation


def gatys(objective, content: torch.Tensor, grams: list[torch.Tensor], content_weight: float = 1.0,
          style_weight: float = 1e5, tv_weight: float = 1e-7, iterations: int = 100) -> torch.Tensor:
    """Stylise ``content [B, 3, H, W]`` in [0, 1] towards the style ``grams`` (of
    ``StyleObjective.style_grams``); returns ``[B, 3, H, W]`` after ``iterations`` L-BFGS steps."""
    u = torch.logit(content.clamp(1e-3, 1 - 1e-3)).detach().requires_grad_(True)
    cf = objective.content_features(content)
    opt = torch.optim.LBFGS([u], lr=1.0, max_iter=iterations, history_size=50, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        x = torch.sigmoid(u)
        c, s = objective(x, cf, grams)
        loss = (content_weight * c + style_weight * s + tv_weight * total_variation(x)).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return torch.sigmoid(u).detach()
