"""Evaluation metrics (no gradients needed): Dice per label, Jacobian determinant statistics."""
from __future__ import annotations

import torch

__all__ = ["dice", "binary_dice", "jacobian_determinant", "jacobian_stats"]


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
        labels = [int(v) for v in torch.unique(torch.cat([a.flatten(), b.flatten()])) if v != 0]
    if not labels:
        raise ValueError("no foreground label to score")
    out = []
    for lab in labels:
        x, y = (a == lab).flatten(1), (b == lab).flatten(1)
        inter = (x & y).sum(1).double()
        size = x.sum(1).double() + y.sum(1).double()
        out.append(torch.where(size > 0, 2 * inter / size.clamp_min(1), torch.full_like(size, float("nan"))))
    return torch.stack(out, 1).float()


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
    # grads[i][j] = d disp_i / d x_j, with one-sided differences at the borders
    grads = torch.stack([torch.stack(torch.gradient(disp[:, i], dim=tuple(range(1, nd + 1))), -1)
                         for i in range(nd)], -2)
    jac = grads + torch.eye(nd, device=disp.device, dtype=disp.dtype)
    return torch.linalg.det(jac)


def jacobian_stats(disp: torch.Tensor) -> dict[str, float]:
    """``neg_jac_pct``: % of voxels with det <= 0; ``std_log_jac``: std of log det over det > 0."""
    det = jacobian_determinant(disp)
    pos = det[det > 0]
    return {"neg_jac_pct": float((det <= 0).float().mean() * 100),
            "std_log_jac": float(pos.log().std()) if pos.numel() > 1 else float("nan")}
