"""Affine pre-alignment, 2D and 3D: what ANTs and elastix run before their deformable stage.

``fit_affine(fixed, moving)`` finds, per pair, the affine map of the fixed grid's voxel coordinates
``y = c + A (x - c) + t`` (``c`` the grid's centre) that maximises the global normalised
cross-correlation of ``fixed(x)`` and ``moving(y)``. It starts from the translation that puts the
intensity centres of mass together, then runs Adam on ``A`` and ``t`` over a pyramid of the
images (a quarter, a half, then the full grid), and keeps that start instead wherever the fit
ends with a lower NCC. ``affine_field`` writes such a map as the displacement field our warps take
(``ops/warp.py``: ``warp(m, u)(x) = m(x + u(x))``), so the deformable steps start from it and
compose onto it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .warp import identity_grid

__all__ = ["affine_field", "fit_affine", "global_ncc", "warm_up"]


def affine_field(matrix: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """The displacement ``[B, N, *shape]`` (voxels) of ``y = A x + b``, ``matrix = [A | b]``
    ``[B, N, N + 1]`` in voxel coordinates."""
    n = len(shape)
    if matrix.dim() != 3 or matrix.shape[1:] != (n, n + 1):
        raise ValueError(f"matrix must be [B, {n}, {n + 1}] for a {n}D grid, got {tuple(matrix.shape)}")
    x = identity_grid(shape, matrix.device, matrix.dtype).flatten(1)             # [N, P]
    y = matrix[:, :, :n] @ x + matrix[:, :, n:]
    return (y - x).view(matrix.shape[0], n, *shape)


def global_ncc(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Normalised cross-correlation of each pair of images ``[B, C, *S]`` over the whole grid: ``[B]``."""
    a, b = a.flatten(1), b.flatten(1)
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + eps)


def centre_of_mass(img: torch.Tensor) -> torch.Tensor:
    """Intensity-weighted mean voxel coordinate of each image ``[B, 1, *S]``: ``[B, N]``."""
    grid = identity_grid(tuple(img.shape[2:]), img.device, img.dtype).flatten(1)   # [N, P]
    w = img.flatten(1).clamp_min(0)
    return (w @ grid.T) / w.sum(1, keepdim=True).clamp_min(1e-8)


def _matrix(a: torch.Tensor, t: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """``[A | b]`` in voxel coordinates of a grid of ``shape`` for the map ``y' = a x' + t`` of
    coordinates ``x' = (x - c) / h`` (``c`` the grid's centre, ``h`` its half-size per axis: -1 to
    1 from the first voxel to the last), so that one ``a, t`` means one map at any resolution."""
    c = torch.tensor([(s - 1) / 2 for s in shape], device=a.device, dtype=a.dtype)
    h = c.clamp_min(0.5)
    mat = a * h.view(-1, 1) / h                     # diag(h) a diag(h)^-1
    return torch.cat([mat, (c + h * t - mat @ c).unsqueeze(-1)], -1)


def _sample(image: torch.Tensor, a: torch.Tensor, t: torch.Tensor, shape: tuple[int, ...] | None = None,
            ratio: torch.Tensor | None = None) -> torch.Tensor:
    """``image`` at ``y' = a x' + t`` (the coordinates of ``_matrix``) on a grid of ``shape`` (default:
    the image's), by ``affine_grid``: its [-1, 1] coordinates with ``align_corners=True`` are
    ``x'``, in reversed axis order. ``ratio`` ``[N]``: the image spans more than the grid, ``y'``
    lies at ``ratio * y'`` of its own coordinates (a margin around the fixed grid)."""
    if ratio is not None:
        a, t = a * ratio.view(1, -1, 1), t * ratio
    theta = torch.cat([a.flip(1, 2), t.flip(1).unsqueeze(-1)], -1)
    grid = F.affine_grid(theta, [image.shape[0], image.shape[1], *(shape or image.shape[2:])], align_corners=True)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def warm_up() -> None:
    """The fit's one-off cost paid now, before a timed fit: a process's first ``torch.optim.Adam``
    imports ``torch._dynamo`` (1.5-2 s on 2 cores), which fell in the first pair's seconds."""
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])


def fit_affine(fixed: torch.Tensor, moving: torch.Tensor, iters: tuple[int, ...] = (100, 50, 25),
               lr: float = 0.02, max_voxels: int = 64 ** 3, margin: int | tuple[int, ...] = 0
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fit the affine pre-alignment of ``moving`` to ``fixed`` (``[B, 1, *S]``, one grid, 2D or 3D).
    ``margin`` (one number, or one per axis): ``moving`` covers that many voxels more on both sides
    of the fixed grid (``[B, 1, *(S + 2 margin)]``, same voxel size), content beyond it which the map may
    bring in (without it, a map reaching past the grid reads zeros there and the fit prefers a
    distortion to the true shift).

    ``iters`` are Adam steps at each pyramid level, coarsest first (one level per entry, each
    halving the grid, down to 8 voxels a side); the finest level is the grid itself or, beyond
    ``max_voxels``, the grid shrunk to about that many (the map's coordinates do not depend on
    the resolution: a 128^3 pair is fitted at 64^3, 8x faster). Returns ``(matrix [B, N, N + 1], ncc_start [B],
    ncc_fit [B])``: ``matrix`` in voxel coordinates of the grid (``affine_field`` makes its
    field), and the global NCC after the centre-of-mass start and after the fit (the start is
    kept where the fit is worse)."""
    nd = fixed.dim() - 2
    if nd not in (2, 3) or fixed.shape[1] != 1:
        raise ValueError(f"fixed must be [B, 1, H, W] or [B, 1, D, H, W], got {tuple(fixed.shape)}")
    margin = (margin,) * nd if isinstance(margin, int) else tuple(margin)
    wide = tuple(n + 2 * k for n, k in zip(fixed.shape[2:], margin))
    if len(margin) != nd or min(margin) < 0 or moving.shape[:2] != fixed.shape[:2] or tuple(moving.shape[2:]) != wide:
        raise ValueError(f"fixed {tuple(fixed.shape)} and moving {tuple(moving.shape)} must have one shape" +
                         (f" but for the moving's {margin} voxels on both sides" if any(margin) else ""))
    shape = tuple(fixed.shape[2:])
    b, dev = fixed.shape[0], fixed.device
    mode = "bilinear" if nd == 2 else "trilinear"
    ratio = torch.tensor([(n - 1) / max(n - 1 + 2 * k, 1) for n, k in zip(shape, margin)], device=dev) if any(margin) else None
    with torch.inference_mode(False), torch.enable_grad():     # also when called under no_grad / inference_mode
        fixed, moving = fixed.float().clone(), moving.float().clone()   # (inference tensors hold no graph)
        half = torch.tensor([(s - 1) / 2 for s in shape], device=dev).clamp_min(0.5)
        t0 = ((centre_of_mass(moving) - torch.tensor(margin, device=dev) - centre_of_mass(fixed)) / half).detach()
        eye = torch.eye(nd, device=dev).expand(b, nd, nd)
        a = eye.clone().requires_grad_(True)
        t = t0.clone().requires_grad_(True)
        opt = torch.optim.Adam([a, t], lr=lr)
        top = min(1.0, (max_voxels / fixed[0, 0].numel()) ** (1 / nd))
        for level, steps in enumerate(iters):
            factor = top / 2 ** (len(iters) - 1 - level)
            size = tuple(max(round(s * factor), min(s, 8)) for s in shape)
            f = fixed if size == shape else F.interpolate(fixed, size=size, mode=mode, align_corners=True)
            m = moving if size == shape else F.interpolate(
                moving, size=tuple(round(k * n / s) for k, n, s in zip(size, wide, shape)), mode=mode, align_corners=True)
            for _ in range(steps):
                loss = -global_ncc(f, _sample(m, a, t, size, ratio)).sum()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    with torch.no_grad():                     # both ends scored on the full grid, as the fit samples
        a, t = a.detach(), t.detach()
        ncc_start, ncc_fit = (global_ncc(fixed, _sample(moving, a_, t_, shape, ratio)) for a_, t_ in ((eye, t0), (a, t)))
        worse = (ncc_fit < ncc_start).view(-1, 1, 1)
        return (torch.where(worse, _matrix(eye, t0, shape), _matrix(a, t, shape)), ncc_start,
                torch.maximum(ncc_fit, ncc_start))
