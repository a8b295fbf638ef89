"""Telea's fast-marching inpainting (OpenCV ``cv2.inpaint``, ``INPAINT_TELEA``): the classical,
training-free baseline for the inpainting task.

A. Telea, "An image inpainting technique based on the fast marching method", J. Graphics Tools 9(1), 2004.
"""
from __future__ import annotations

import importlib.util

import numpy as np
import torch


def available() -> bool:
    """True when OpenCV (``cv2``) can be imported."""
    if importlib.util.find_spec("cv2") is None:
        return False
    try:
        import cv2  # noqa: F401
    except ImportError:
        return False
    return True


def telea_inpaint(images: torch.Tensor, mask: torch.Tensor, radius: int = 3) -> torch.Tensor:
    """Fill the holes of ``images`` by Telea's method, image by image.

    Args:
        images: float ``[B, C, H, W]`` in [0, 1], ``C`` 1 or 3 (any device).
        mask: bool ``[B, 1, H, W]`` or ``[1, 1, H, W]`` (shared), True inside the hole.
        radius: the neighbourhood (pixels) each filled pixel is estimated from.

    Returns:
        float ``[B, C, H, W]``, same dtype and device: the input outside the hole (bit for bit),
        OpenCV's fill (computed on the image rounded to uint8) inside it.

    >>> x = torch.rand(2, 3, 32, 32); m = torch.zeros(1, 1, 32, 32, dtype=torch.bool)
    >>> m[..., 8:24, 8:24] = True
    >>> telea_inpaint(x, m).shape
    torch.Size([2, 3, 32, 32])
    """
    import cv2
    if images.dim() != 4 or images.shape[1] not in (1, 3) or not images.is_floating_point():
        raise ValueError(f"images must be float [B, 1|3, H, W], got {images.dtype} {tuple(images.shape)}")
    b, c, h, w = images.shape
    if mask.dim() != 4 or mask.shape[1] != 1 or mask.shape[2:] != (h, w) or mask.shape[0] not in (1, b):
        raise ValueError(f"mask must be [B or 1, 1, {h}, {w}], got {tuple(mask.shape)}")
    if int(radius) < 1:
        raise ValueError(f"radius must be at least 1, got {radius}")
    hole = mask.bool().expand(b, 1, h, w)
    u8 = images.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    holes = hole[:, 0].cpu().numpy().astype(np.uint8)
    filled = np.empty_like(u8)
    for i in range(b):
        out = cv2.inpaint(np.ascontiguousarray(u8[i]), holes[i], float(radius), cv2.INPAINT_TELEA)
        filled[i] = out.reshape(h, w, c)
    fill = torch.from_numpy(filled).permute(0, 3, 1, 2).to(images.device, images.dtype) / 255
    return torch.where(hole, fill, images)
