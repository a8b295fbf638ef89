"""Differentiable losses on images and fields, 2D and 3D alike. Each returns a scalar."""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["box_sum", "local_ncc", "ncc_loss", "ncc_force", "smoothness", "gram", "gram_distance", "total_variation"]


def _check_pair(a: torch.Tensor, b: torch.Tensor) -> int:
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    nd = a.dim() - 2
    if nd not in (2, 3):
        raise ValueError(f"expected [B, C, H, W] or [B, C, D, H, W], got {tuple(a.shape)}")
    return nd


def _check_window(window: int) -> None:
    if window < 1 or window % 2 == 0:
        raise ValueError(f"window must be a positive odd number, got {window}")


def box_sum(x: torch.Tensor, window: int) -> torch.Tensor:
    """Sum of ``x [B, C, *S]`` over the ``window``-wide box around each voxel (zero padded).

    Per axis, the sum of the ``window`` neighbours (``unfold``: a view, no copy), in ``x``'s own
    dtype: each output adds ``window`` values, so float32 keeps its precision (running sums,
    which grow to ``window**(nd-1)`` x the axis length, needed float64). The local NCC with its
    gradient at 2 x 128^3 takes a quarter of the time of float64 running sums, and less than a
    depthwise box convolution per axis (``bench/ncc.py``, CPU)."""
    r, out = window // 2, x
    for axis in range(2, x.dim()):
        pad = [0, 0] * (x.dim() - 2)
        pad[2 * (x.dim() - 1 - axis)] = pad[2 * (x.dim() - 1 - axis) + 1] = r   # last axis first
        out = F.pad(out, pad).unfold(axis, window, 1).sum(-1)
    return out


def local_ncc(a: torch.Tensor, b: torch.Tensor, window: int = 9, eps: float = 1e-5) -> torch.Tensor:
    """Squared local normalised cross-correlation map ``[B, C, *S]`` in [0, 1].

    Over each ``window``-wide box (zero padded), ``cc = cov(a, b)^2 / (var(a) var(b) + eps)``:
    the similarity of VoxelMorph, invariant to local affine intensity changes.
    """
    nd = _check_pair(a, b)
    _check_window(window)
    n = float(window ** nd)
    sa, sb = box_sum(a, window), box_sum(b, window)
    cross = box_sum(a * b, window) - sa * sb / n
    var_a = box_sum(a * a, window) - sa * sa / n
    var_b = box_sum(b * b, window) - sb * sb / n
    return cross * cross / (var_a.clamp_min(0) * var_b.clamp_min(0) + eps)


def ncc_loss(fixed: torch.Tensor, moved: torch.Tensor, window: int = 9) -> torch.Tensor:
    """``-mean(local_ncc)``: -1 for a perfect match, 0 for unrelated images."""
    return -local_ncc(fixed, moved, window).mean()


def ncc_force(fixed: torch.Tensor, moved: torch.Tensor, window: int = 9, eps: float = 1e-5) -> torch.Tensor:
    """The local NCC's pull on ``moved [B, 1, *S]``: ``d sum(local_ncc) / du`` at ``u = 0`` for
    ``moved`` resampled at ``x + u(x)``, a field ``[B, nd, *S]`` (the steepest-ascent displacement
    of the similarity, like the demons force): the NCC's gradient in the intensities times the
    image gradient (central differences). Needs no gradient from its caller; returns none.

    The intensity gradient is written out (the adjoint of a zero-padded box sum is the same box
    sum): with ``cc_w = A^2 / D`` per window, ``A`` the covariance, ``D = var_f var_m + eps``,
    ``d sum(cc) / dm(x) = sum_{w ∋ x} a_w (f(x) - mean_f,w) - b_w (m(x) - mean_m,w)``,
    ``a = 2 A / D``, ``b = 2 A^2 var_f / D^2``: four more box sums. The same numbers as autograd
    through ``local_ncc`` (tested), in about three quarters of the time, with no graph kept
    (``bench/ncc.py``); the 3D preset computes it for every state it sees."""
    nd = _check_pair(fixed, moved)
    if moved.shape[1] != 1:
        raise ValueError(f"expected one-channel images, got {tuple(moved.shape)}")
    _check_window(window)
    with torch.no_grad():
        f, m, n = fixed.detach(), moved.detach(), float(window ** nd)
        sf, sm, sfm, sff, smm = (box_sum(x, window) for x in (f, m, f * m, f * f, m * m))
        cross, var_f, var_m = sfm - sf * sm / n, sff - sf * sf / n, smm - sm * sm / n   # as local_ncc
        mean_f, mean_m = sf / n, sm / n
        vf = var_f.clamp_min(0)
        den = vf * var_m.clamp_min(0) + eps
        a = 2 * cross / den
        b = a * cross * vf / den      # (autograd's clamp_min would zero it where var_m < 0: only in flat
                                      # windows, by rounding, where the covariance and so b are ~0 anyway)
        g = (f * box_sum(a, window) - box_sum(a * mean_f, window)
             - m * box_sum(b, window) + box_sum(b * mean_m, window))
        return g * torch.stack(torch.gradient(m[:, 0], dim=tuple(range(1, nd + 1))), 1)


def smoothness(disp: torch.Tensor, penalty: str = "l2") -> torch.Tensor:
    """Mean finite-difference gradient of a field ``[B, N, *S]``: ``l2`` (diffusion) or ``l1`` (TV)."""
    nd = disp.dim() - 2
    if nd not in (2, 3):
        raise ValueError(f"expected a field [B, N, *S], got {tuple(disp.shape)}")
    if penalty not in ("l1", "l2"):
        raise ValueError(f"penalty must be 'l1' or 'l2', got {penalty!r}")
    total = disp.new_zeros(())
    for axis in range(2, nd + 2):
        d = disp.diff(dim=axis)
        total = total + (d.abs() if penalty == "l1" else d * d).mean()
    return total / nd


def gram(features: torch.Tensor) -> torch.Tensor:
    """Gram matrices ``F F^T / (C H W)`` ``[B, C, C]`` of features ``[B, C, H, W]`` (Gatys et al.;
    the normalisation makes them independent of the image size)."""
    b, c, h, w = features.shape
    f = features.reshape(b, c, h * w)
    return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


def gram_distance(features: torch.Tensor, target_gram: torch.Tensor) -> torch.Tensor:
    """Per sample ``[B]``: the mean squared difference between the Gram matrix of ``features``
    and ``target_gram`` (``[C, C]``, ``[1, C, C]`` or ``[B, C, C]``)."""
    return (gram(features) - target_gram).square().mean((1, 2))


def total_variation(image: torch.Tensor) -> torch.Tensor:
    """Per sample ``[B]``: the sum of absolute differences between neighbouring pixels (the
    style-transfer convention: a sum, hence weights like 1e-7)."""
    return ((image[..., 1:, :] - image[..., :-1, :]).abs().flatten(1).sum(1)
            + (image[..., :, 1:] - image[..., :, :-1]).abs().flatten(1).sum(1))
