"""Evaluation metrics: Dice per label, Jacobian determinant statistics (no gradients needed), and the
differentiable image-quality metrics PSNR and SSIM."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["dice", "mean_dice", "binary_dice", "kmeans_labels", "jacobian_determinant", "jacobian_stats",
           "psnr", "ssim"]


def dice(a: torch.Tensor, b: torch.Tensor, labels: list[int] | None = None) -> torch.Tensor:
    """Dice per label between integer label maps ``[B, *S]``; returns ``[B, L]``.

    ``labels`` defaults to the non-zero labels present in either map. A label absent from both
    maps of a pair scores NaN there (it has no overlap to measure); average with ``nanmean``.
    """
    if a.shape != b.shape:
        raise ValueError(f"label maps differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    if a.dim() < 2:
        raise ValueError(f"expected [B, *S] label maps, got {tuple(a.shape)}")
    if labels is None:
        labels = [v for v in torch.unique(torch.cat([a.flatten(), b.flatten()])).tolist() if v != 0]   # one GPU sync
    if not labels:
        raise ValueError("no foreground label to score")
    out = []
    for lab in labels:
        x, y = (a == lab).flatten(1), (b == lab).flatten(1)
        inter = (x & y).sum(1).double()
        size = x.sum(1).double() + y.sum(1).double()
        out.append(torch.where(size > 0, 2 * inter / size.clamp_min(1), torch.full_like(size, float("nan"))))
    return torch.stack(out, 1).float()


def mean_dice(a: torch.Tensor, b: torch.Tensor, labels: list[int] | None = None) -> torch.Tensor:
    """Dice per label averaged over the labels present in either map of each pair: ``[B]``
    (1 where neither map has any of the labels, all-background maps included)."""
    if labels is None and not (a.any() or b.any()):
        return torch.ones(a.shape[0], device=a.device)
    d = dice(a, b, labels)
    return torch.where(d.isnan().all(1), torch.ones_like(d[:, 0]), d.nanmean(1))


def kmeans_labels(img: torch.Tensor, k: int = 3, iters: int = 15) -> torch.Tensor:
    """Intensity K-means per image: ``[B, 1, *S] -> [B, *S]`` labels ``0..k-1`` ordered by the
    class's mean intensity (0 = darkest), so the labels of two images of one anatomy correspond
    even under monotone intensity changes. Centres start evenly spread between the 1st and 99th
    percentiles (quantile starts collapse when one class fills most of the image)."""
    if img.dim() < 3 or img.shape[1] != 1:
        raise ValueError(f"expected [B, 1, *S], got {tuple(img.shape)}")
    if k < 2:
        raise ValueError(f"k must be >= 2, got {k}")
    x = img.flatten(1).float()
    sub = x[:, :: max(1, x.shape[1] // 200_000)]            # quantile has a size limit; a sample is plenty
    lo, hi = torch.quantile(sub, torch.tensor([0.01, 0.99], device=x.device), dim=1)
    hi = torch.maximum(hi, x.amax(1) * (hi <= lo))          # a class under 1% of the voxels
    frac = (torch.arange(k, device=x.device) + 0.5) / k
    centres = (lo[:, None] + (hi - lo)[:, None] * frac).contiguous()   # [B, k]

    def assign(c):
        edges = ((c[:, 1:] + c[:, :-1]) / 2).contiguous()
        return torch.searchsorted(edges, x.contiguous())

    for _ in range(iters):
        lab = assign(centres)
        sums = torch.zeros_like(centres).scatter_add_(1, lab, x)
        counts = torch.zeros_like(centres).scatter_add_(1, lab, torch.ones_like(x))
        centres = torch.where(counts > 0, sums / counts.clamp_min(1), centres).sort(1).values
    return assign(centres).view(img.shape[0], *img.shape[2:])


def binary_dice(a: torch.Tensor, b: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Dice of the foregrounds ``a > threshold`` and ``b > threshold`` for images ``[B, C, *S]``; ``[B]``."""
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    x, y = (a > threshold).flatten(1), (b > threshold).flatten(1)
    inter = (x & y).sum(1).float()
    size = (x.sum(1) + y.sum(1)).float()
    return torch.where(size > 0, 2 * inter / size.clamp_min(1), torch.ones_like(size))


def jacobian_determinant(disp: torch.Tensor) -> torch.Tensor:
    """Determinant of the Jacobian of ``x + disp(x)``, central differences; ``[B, *S]``."""
    nd = disp.dim() - 2
    if nd not in (2, 3) or disp.shape[1] != nd:
        raise ValueError(f"expected a field [B, N, *S], got {tuple(disp.shape)}")
    # j[i][k] = delta_ik + d disp_i / d x_k, with one-sided differences at the borders; the
    # determinant written out (no [B, *S, N, N] stack: a CT's field would need gigabytes for it)
    j = [list(torch.gradient(disp[:, i], dim=tuple(range(1, nd + 1)))) for i in range(nd)]
    for i in range(nd):
        j[i][i] = j[i][i] + 1
    if nd == 2:
        return j[0][0] * j[1][1] - j[0][1] * j[1][0]
    return (j[0][0] * (j[1][1] * j[2][2] - j[1][2] * j[2][1]) - j[0][1] * (j[1][0] * j[2][2] - j[1][2] * j[2][0])
            + j[0][2] * (j[1][0] * j[2][1] - j[1][1] * j[2][0]))


def jacobian_stats(disp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per field of ``disp [B, N, *S]``: the % of voxels with det J <= 0 and the (population) std of
    log det J over the voxels with det J > 0 (NaN where none is), both ``[B]``."""
    det = jacobian_determinant(disp)
    neg = (det <= 0).flatten(1).float().mean(1) * 100
    logs = torch.where(det > 0, det.clamp_min(1e-12).log(), torch.nan).flatten(1)
    mu = logs.nanmean(1, keepdim=True)
    return neg, ((logs - mu) ** 2).nanmean(1).sqrt()


def _image_pair(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None,
                max_val: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Check a pair of images ``[B, C, H, W]``; return them as floats (integer images, such as uint8
    with ``max_val=255``, are measured in float32, not in their own wrapping arithmetic) and the
    pixel weights ``[B, 1, H, W]``. uint8 images with ``max_val`` 1 are refused (they scored -27 dB)."""
    if torch.uint8 in (pred.dtype, target.dtype) and max_val < 255:
        raise ValueError(f"uint8 images with max_val={max_val:g}: give max_val=255, or floats in [0, 1]")
    pred, target = (x if x.is_floating_point() else x.float() for x in (pred, target))
    if pred.dim() != 4:
        raise ValueError(f"expected images [B, C, H, W], got {tuple(pred.shape)}")
    if pred.shape != target.shape:
        raise ValueError(f"images differ in shape: {tuple(pred.shape)} vs {tuple(target.shape)}")
    b, _, h, w = pred.shape
    if mask is None:
        return pred, target, pred.new_ones(b, 1, h, w)
    if mask.dim() != 4 or mask.shape[1] != 1 or mask.shape[0] not in (1, b) or mask.shape[2:] != pred.shape[2:]:
        raise ValueError(f"expected a mask [{b} or 1, 1, {h}, {w}], got {tuple(mask.shape)}")
    weights = mask.to(device=pred.device, dtype=pred.dtype).expand(b, 1, h, w)
    if bool((weights.flatten(1).sum(1) <= 0).any()):
        raise ValueError("the mask of some image has no pixel")
    return pred, target, weights


def psnr(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None,
         max_val: float = 1.0, eps: float = 1e-10) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image: ``[B, C, H, W]`` x2 -> ``[B]``.

    Integer images (uint8 with ``max_val=255``) are measured in float32. The mean squared error is
    taken over all channels and the pixels where ``mask`` (``[B, 1, H, W]``
    or ``[1, 1, H, W]``, bool or 0/1 float; None = every pixel) is set, and clamped at ``eps``, so
    identical images give ``10 log10(max_val^2 / eps)`` (100 dB at the defaults) instead of infinity.

    Example:
        >>> x = torch.rand(2, 3, 8, 8)
        >>> psnr(x, (x + 0.1)).round()            # an offset of 0.1 everywhere: MSE 0.01
        tensor([20., 20.])
    """
    pred, target, weights = _image_pair(pred, target, mask, max_val)
    err = ((pred - target) ** 2).sum(1, keepdim=True)                     # summed over channels
    mse = (err * weights).flatten(1).sum(1) / (weights.flatten(1).sum(1) * pred.shape[1])
    return 10 * torch.log10(max_val ** 2 / mse.clamp_min(eps))


def gaussian_along(x: torch.Tensor, dim: int, sigma: float, radius: int | None = None,
                   mode: str = "replicate") -> torch.Tensor:
    """``x`` filtered along ``dim`` by a normalised Gaussian of std ``sigma`` and ``2 radius + 1``
    taps (default radius: 3 sigma), 'same' size, borders padded by ``mode`` (as ``F.pad``)."""
    r = max(1, math.ceil(3 * sigma)) if radius is None else radius
    g = torch.exp(-torch.arange(-r, r + 1, dtype=x.dtype, device=x.device) ** 2 / (2 * max(sigma, 1e-6) ** 2))
    y = x.movedim(dim, -1)
    shape = y.shape
    y = F.pad(y.reshape(-1, 1, shape[-1]), (r, r), mode=mode)
    return F.conv1d(y, (g / g.sum()).view(1, 1, -1)).reshape(shape).movedim(-1, dim)


def _gaussian_blur(x: torch.Tensor, window: int, sigma: float) -> torch.Tensor:
    """Separable Gaussian filter per channel of ``[B, C, H, W]`` with 'same' output size (reflect
    padding, or replicate where the image is too small to reflect)."""
    pad = window // 2
    mode = "reflect" if min(x.shape[2:]) > pad else "replicate"
    return gaussian_along(gaussian_along(x, 2, sigma, pad, mode), 3, sigma, pad, mode)


def ssim(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None,
         window: int = 11, sigma: float = 1.5, max_val: float = 1.0, whole: bool = False) -> torch.Tensor:
    """Structural similarity (Wang et al. 2004, K1 = 0.01, K2 = 0.03) per image: ``[B, C, H, W]`` x2 -> ``[B]``.

    Local statistics use a separable Gaussian window (``window`` taps, std ``sigma``) on each channel,
    padded by reflection so the SSIM map is ``H x W``; the map is averaged over the channels, then
    over the pixels where ``mask`` is set (``[B, 1, H, W]`` or ``[1, 1, H, W]``: a hole at the border
    keeps its pixels), or without a mask over the pixels at least ``window // 2`` from the border,
    whose statistics do not lean on the padding: the standard value (Wang et al.'s code, scikit-image,
    torchmetrics; the whole map read up to 0.08 lower on noisy 64 px faces). ``whole``: the whole
    map's mean without a mask too (the translation reward's form: its border counts). Identical
    images give 1; integer images (uint8 with ``max_val=255``) are measured in float32.

    Example:
        >>> x = torch.rand(2, 3, 16, 16)
        >>> ssim(x, x)
        tensor([1., 1.])
    """
    pred, target, weights = _image_pair(pred, target, mask, max_val)
    if window < 1 or window % 2 == 0:
        raise ValueError(f"window must be a positive odd number, got {window}")
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    c1, c2 = (0.01 * max_val) ** 2, (0.03 * max_val) ** 2
    n = pred.shape[1]
    stats = _gaussian_blur(torch.cat([pred, target, pred * pred, target * target, pred * target], 1), window, sigma)
    mu_p, mu_t, pp, tt, pt = stats.split(n, 1)
    var_p, var_t, cov = pp - mu_p ** 2, tt - mu_t ** 2, pt - mu_p * mu_t
    smap = ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / ((mu_p ** 2 + mu_t ** 2 + c1) * (var_p + var_t + c2))
    smap = smap.mean(1, keepdim=True)
    pad = window // 2
    if mask is None and not whole and min(smap.shape[2:]) > 2 * pad:
        return smap[..., pad:-pad, pad:-pad].flatten(1).mean(1)
    return (smap * weights).flatten(1).sum(1) / weights.flatten(1).sum(1)
