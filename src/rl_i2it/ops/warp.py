"""Spatial transformer and displacement-field algebra, for 2D and 3D alike.

Conventions (the same as VoxelMorph's):

* an image is ``[B, C, *S]`` with ``S = (H, W)`` or ``(D, H, W)``;
* a displacement field is ``[B, N, *S]`` with ``N = len(S)``, in voxels, channel ``i`` moving
  along spatial axis ``i``;
* ``warp(m, u)(x) = m(x + u(x))``: the field is a *pull-back*, so the warped image lives on the
  fixed image's grid.

Example:
    >>> m = torch.zeros(1, 1, 5, 5); m[0, 0, 2, 3] = 1
    >>> u = torch.zeros(1, 2, 5, 5); u[:, 1] = 1.0          # look one voxel to the right
    >>> warp(m, u)[0, 0, 2, 2].item()
    1.0
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

__all__ = ["identity_grid", "warp", "compose", "resize_field", "invert_field", "integrate_velocity", "check_field"]


def check_field(disp: torch.Tensor, image: torch.Tensor | None = None) -> int:
    """Validate a displacement field (and an image on the same grid); return the spatial rank."""
    if not isinstance(disp, torch.Tensor):
        raise TypeError(f"field must be a tensor, got {type(disp).__name__}")
    nd = disp.dim() - 2
    if nd not in (2, 3) or disp.shape[1] != nd:
        raise ValueError(f"field must be [B, N, *S] with N = len(S) in (2, 3), got {tuple(disp.shape)}")
    if image is not None:
        if image.dim() != disp.dim():
            raise ValueError(f"image {tuple(image.shape)} and field {tuple(disp.shape)} differ in rank")
        if image.shape[2:] != disp.shape[2:]:
            raise ValueError(f"image grid {tuple(image.shape[2:])} != field grid {tuple(disp.shape[2:])}")
        if image.shape[0] != disp.shape[0] and 1 not in (image.shape[0], disp.shape[0]):
            raise ValueError(f"batch sizes differ: image {image.shape[0]}, field {disp.shape[0]}")
    return nd


def identity_grid(shape: tuple[int, ...], device=None, dtype=torch.float32) -> torch.Tensor:
    """Voxel coordinates ``[N, *shape]``: ``grid[i][x] = x_i``."""
    axes = [torch.arange(n, device=device, dtype=dtype) for n in shape]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"))


@functools.lru_cache(maxsize=16)
def sampling_grid(shape: tuple[int, ...], device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """``(identity, scale)`` for ``grid_sample`` (align_corners=True): the identity grid in its
    [-1, 1] coordinates ``[N, *shape]`` and the voxel -> [-1, 1] factor of each axis
    ``[1, N, 1, ...]``, so that ``identity + disp * scale`` samples at ``x + disp(x)``. Made once
    per grid and device: a tensor made from Python numbers on a GPU waits for the GPU to finish
    all queued work, which each warp (each environment step, each auxiliary loss) paid."""
    with torch.inference_mode(False):            # usable in autograd even if first made under inference
        scale = torch.tensor([2.0 / max(n - 1, 1) for n in shape], dtype=dtype)
        ident = identity_grid(shape, dtype=dtype) * scale.view(-1, *([1] * len(shape))) - 1.0
        return ident.to(device), scale.view(1, -1, *([1] * len(shape))).to(device)


def warp(image: torch.Tensor, disp: torch.Tensor, mode: str = "bilinear",
         padding: str = "zeros") -> torch.Tensor:
    """Resample ``image`` at ``x + disp(x)``.

    Args:
        image: ``[B, C, *S]``.
        disp: ``[B, N, *S]`` displacement in voxels.
        mode: ``"bilinear"`` (trilinear in 3D) or ``"nearest"`` (for label maps: an integer
            image, such as int64 labels below 2^24, comes back in its own dtype).
        padding: ``"zeros"``, ``"border"`` or ``"reflection"``, as ``grid_sample``.
    Returns:
        ``[B, C, *S]``, differentiable in both inputs (for ``"bilinear"``).
    """
    if not image.is_floating_point():
        if mode != "nearest":
            raise TypeError(f"an integer image ({image.dtype}: labels?) is warped with mode='nearest'")
        return warp(image.to(disp.dtype), disp, mode, padding).round().to(image.dtype)
    nd = check_field(disp, image)
    ident, scale = sampling_grid(tuple(disp.shape[2:]), disp.device, disp.dtype)
    loc = ident + disp * scale                # grid_sample's [-1, 1] coordinates (align_corners=True),
    grid = loc.permute(0, *range(2, nd + 2), 1).flip(-1)      # ordered (x, y[, z])
    if image.shape[0] != grid.shape[0]:
        b = max(image.shape[0], grid.shape[0])
        image, grid = image.expand(b, *image.shape[1:]), grid.expand(b, *grid.shape[1:])
    return F.grid_sample(image, grid.to(image.dtype), mode=mode, padding_mode=padding,
                         align_corners=True)


def compose(prev: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
    """Accumulated field after one more step (paper Eq. 11-12).

    With ``I_t = warp(M0, prev)`` and ``I_{t+1} = warp(I_t, step)``,
    ``I_{t+1} = warp(M0, compose(prev, step))`` where
    ``compose(prev, step)(x) = step(x) + prev(x + step(x))``.
    """
    check_field(prev, step)
    return step + warp(prev, step, padding="border")


def resize_field(disp: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """Resample a field to another grid over the same extent, rescaling the displacements to the
    new voxel size: voxel ``i`` of ``o`` per axis sits at ``(i + 0.5) n / o - 0.5`` of ``n``
    (cell-centred, ``align_corners=False``), as images are shrunk to the model grid
    (``data.pairs.to_grid``), so a model-grid shift of ``t`` is ``t n / o`` voxels of the new
    grid exactly (corner-aligned it was ``t (n - 1) / (o - 1)``: a voxel off at 9 voxels of 64 -> 512)."""
    nd = check_field(disp)
    if len(size) != nd:
        raise ValueError(f"size {size} must have {nd} entries")
    old = disp.shape[2:]
    out = F.interpolate(disp, size=tuple(size), mode="bilinear" if nd == 2 else "trilinear",
                        align_corners=False)
    factors = [n / o for n, o in zip(size, old)]
    return out * torch.tensor(factors, device=disp.device, dtype=disp.dtype).view(1, nd, *([1] * nd))


def invert_field(disp: torch.Tensor, iters: int = 300, tol: float = 1e-4) -> tuple[torch.Tensor, torch.Tensor]:
    """The inverse ``v`` of a pull-back field ``u`` ``[B, N, *S]`` (voxels): where ``warp(I, u)``
    takes ``I`` at ``x + u(x)``, ``warp(warp(I, u), v)`` gives ``I`` back, so ``y + v(y)`` is the
    voxel that ``y`` of the moving image went to. Solves ``v(y) = -u(y + v(y))`` by fixed-point
    iteration (Chen et al. 2008, as ITK's ``InvertDisplacementFieldImageFilter``), its step halved
    (down to 1/16) whenever the largest update grows, which keeps large deformations converging
    (a 3D field of 9 voxels: residual 2e-3 voxels instead of 17); stops when no displacement moves
    by ``tol`` voxels. Returns ``v`` and the residual ``|v(y) + u(y + v(y))|`` ``[B, *S]`` in voxels:
    large where ``u`` folds, and infinite where ``y + v(y)`` leaves the grid (what is at ``y`` came
    from outside it: no inverse there, though the border-extended equation may hold)."""
    check_field(disp)
    v, rate, last = -disp, 1.0, float("inf")
    for _ in range(iters):
        step = -warp(disp, v, padding="border") - v
        size = step.abs().max().item()
        if size < tol:
            break
        if size > last:
            rate = max(rate / 2, 1 / 16)
        v, last = v + rate * step, size
    residual = (v + warp(disp, v, padding="border")).norm(dim=1)
    ident, scale = sampling_grid(tuple(disp.shape[2:]), disp.device, disp.dtype)
    outside = ((ident + v * scale).abs() > 1 + 1e-6).any(1)          # [-1, 1]: the grid's first to last voxel
    return v, residual.masked_fill(outside, float("inf"))


def integrate_velocity(vel: torch.Tensor, steps: int = 7) -> torch.Tensor:
    """Scaling and squaring: the displacement of ``exp(vel)``, a diffeomorphism for smooth ``vel``."""
    check_field(vel)
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    disp = vel / (2 ** steps)
    for _ in range(steps):
        disp = compose(disp, disp)
    return disp
