"""Temporal consistency of stylised video: flow warping error (evaluation) and the compound
temporal regularisation's synthetic motion (training, paper section 4.5).

Warping error (the evaluation of video style transfer papers): with the optical flow of the
*input* frames (OpenCV's DIS, medium preset) from frame t back to frame t-1, the previous output
is warped onto frame t and compared where the flow is reliable:

    E = sum_x M(x) |O_t(x) - W(O_{t-1})(x)|^2 / sum_x M(x)      (mean over colour channels)

``M`` is the forward-backward consistency test of Sundaram et al. (occluded or unreliable pixels
out): ``|f + b(x + f)|^2 < 0.01 (|f|^2 + |b(x + f)|^2) + 0.5``, the mask the style issue names.
Lai et al.'s evaluation code (after Ruder et al.) also drops motion boundaries (``|grad u|^2 +
|grad v|^2 > 0.01 |f|^2 + 0.002``): its errors read lower (5.5x on a clip with a moving square, a
session-31 review), so compare our values with each other, not with that code's. Outputs in [0, 1].
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["dis_flow", "warp_np", "consistency_mask", "warp_error", "synthetic_motion", "warp_image"]


def _grey(frame: np.ndarray) -> np.ndarray:
    import cv2
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if frame.ndim == 3 else frame


def dis_flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Flow ``[H, W, 2]`` (dx, dy) with ``a(x) ~ b(x + flow(x))``; frames uint8 RGB or grey."""
    import cv2
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return dis.calc(_grey(a), _grey(b), None)


def warp_np(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``image`` sampled at ``x + flow(x)`` (bilinear, borders replicated)."""
    import cv2
    h, w = flow.shape[:2]
    xx, yy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(image, xx + flow[..., 0], yy + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def consistency_mask(forward: np.ndarray, backward: np.ndarray) -> np.ndarray:
    """Bool ``[H, W]``: where ``forward`` (t -> t-1, at t) and ``backward`` (t-1 -> t, at t-1) agree."""
    back_at = warp_np(backward, forward)
    diff = forward + back_at
    return (diff ** 2).sum(-1) < 0.01 * ((forward ** 2).sum(-1) + (back_at ** 2).sum(-1)) + 0.5


def warp_error(inputs: np.ndarray, outputs: np.ndarray) -> float:
    """Mean over consecutive pairs of the masked warping error; ``inputs [N, H, W, 3]`` uint8 give
    the flow, ``outputs [N, H, W, 3]`` float in [0, 1] (or uint8) are judged."""
    if len(inputs) != len(outputs) or len(inputs) < 2:
        raise ValueError("warp_error needs as many outputs as inputs, at least 2")
    out = outputs.astype(np.float32) / (255.0 if outputs.dtype == np.uint8 else 1.0)
    errs = []
    for t in range(1, len(inputs)):
        fw = dis_flow(inputs[t], inputs[t - 1])
        bw = dis_flow(inputs[t - 1], inputs[t])
        m = consistency_mask(fw, bw)
        if not m.any():
            continue
        d = ((out[t] - warp_np(out[t - 1], fw)) ** 2).mean(-1)
        errs.append(float((d * m).sum() / m.sum()))
    return float(np.mean(errs)) if errs else float("nan")


# -- synthetic motion (training) -------------------------------------------------------------------
def warp_image(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """``image [B, C, H, W]`` sampled at ``x + flow(x)`` with ``flow [B, 2, H, W]`` in pixels
    (dx, dy); bilinear, borders reflected."""
    b, _, h, w = image.shape
    yy, xx = torch.meshgrid(torch.arange(h, device=image.device, dtype=image.dtype),
                            torch.arange(w, device=image.device, dtype=image.dtype), indexing="ij")
    gx = (xx + flow[:, 0]) * (2 / max(w - 1, 1)) - 1
    gy = (yy + flow[:, 1]) * (2 / max(h - 1, 1)) - 1
    return F.grid_sample(image, torch.stack([gx, gy], -1), mode="bilinear", padding_mode="reflection",
                         align_corners=True)


def synthetic_motion(shape: tuple[int, int, int, int], generator: torch.Generator | None, device="cpu",
                     max_shift: float = 4.0, max_flow: float = 2.0) -> torch.Tensor:
    """A random flow ``[B, 2, H, W]`` in pixels: a global shift (up to ``max_shift``) plus a smooth
    random field (a 4x4 grid of offsets up to ``max_flow``, bicubically upsampled): the compound
    regularisation's known motion between a frame and its synthetic successor."""
    b, _, h, w = shape
    shift = (torch.rand(b, 2, 1, 1, generator=generator) * 2 - 1) * max_shift
    coarse = (torch.rand(b, 2, 4, 4, generator=generator) * 2 - 1) * max_flow
    smooth = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=True)
    return (shift + smooth).to(device)
