"""Registration pair sets: seeded, written once to the cache, reused by every method.

A ``PairSet`` holds ``P`` pairs on one grid: images as uint8 ``[P, 1, *S]`` (values k/255) and
integer label maps ``[P, *S]``. Sets (``S`` = 128x128 in 2D, ``s^3`` in 3D):

* ``brain2d`` (synthetic): axial slices of the ch2 brain (``ch2bet``, mricron-data) with its 116
  AAL labels; each pair = two random smooth large deformations of one slice (a coarse random
  velocity grid, cubic-B-spline upsampled and integrated, so it is invertible) plus intensity
  changes (gamma, a smooth bias field, noise); labels warped by nearest neighbour.
* ``brain2d-inter`` (real, inter-subject): the same axial level of ch2 (moving) and the MNI152
  2009a template (fixed, nilearn), aligned by their header affines (both are in MNI space: an
  affine alignment in world coordinates), both skull-stripped; labels grey and white matter,
  defined the same way on both (3-class K-means of the brain's intensities, CSF = background).
  One pair per level.
* ``liver3d`` (synthetic, 3D): the 128^3 liver CT (liver-ct-segmentation-package), HU window
  [-200, 300], resized to ``s^3``; labels liver and tumour; pairs made as for ``brain2d``.
* ``manifest:PATH``: a user's pairs from a CSV (``moving, fixed[, moving_labels, fixed_labels,
  split]``), each image scaled to [0, 1] by its 0.5-99.5 percentiles and resampled to the set's
  grid; with a ``split`` column (train / valid / test) each split takes its own rows.

Splits: ``train``, ``valid`` and ``test`` pairs come from disjoint seed streams and, for the two brain
sets, from ch2 levels at least 4 mm apart (``brain_levels``: 20 mm blocks, each with 3 test, 2 valid and
3 training levels; both sets share them, so nothing trained on either has seen a near-twin of a slice
either tests or validates on).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UserError
from ..ops.metrics import gaussian_along
from ..ops.warp import integrate_velocity, warp
from .cache import cache_dir, cached_arrays, files_key, name_key, progress

SETS = {"brain2d": 2, "brain2d-inter": 2, "liver3d": 3}     # the named pair sets and their dimension
SPLIT_SEED = {"train": 1000, "valid": 2000, "test": 3000}


PAIR_ARRAYS = ("fixed", "moving", "fixed_labels", "moving_labels")


@dataclass
class PairSet:
    fixed: torch.Tensor           # uint8 [P, 1, *S]
    moving: torch.Tensor          # uint8 [P, 1, *S]
    fixed_labels: torch.Tensor    # int16 [P, *S]
    moving_labels: torch.Tensor   # int16 [P, *S]
    name: str = ""

    def __post_init__(self):
        p, shape = self.fixed.shape[0], tuple(self.fixed.shape[2:])
        for k in ("moving", "fixed_labels", "moving_labels"):
            t = getattr(self, k)
            if t.shape[0] != p or tuple(t.shape[-len(shape):]) != shape:
                raise UserError(f"pair set {self.name}: {k} {tuple(t.shape)} does not match fixed {tuple(self.fixed.shape)}")

    def __len__(self) -> int:
        return self.fixed.shape[0]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.fixed.shape[2:])

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k).numpy() for k in PAIR_ARRAYS}

    @classmethod
    def of_arrays(cls, arrays: dict, name: str = "") -> "PairSet":
        return cls(*(torch.from_numpy(arrays[k]) for k in PAIR_ARRAYS), name=name)


# -- random smooth deformations and intensity changes -------------------------------------------------
def bspline_matrix(n_ctrl: int, n_out: int) -> torch.Tensor:
    """``[n_out, n_ctrl]`` weights of a uniform cubic B-spline through ``n_ctrl`` control points
    spanning ``n_out`` samples (end points clamped by repeating the border controls)."""
    t = torch.linspace(0, n_ctrl - 1, n_out, dtype=torch.float64)
    i = t.floor().long()
    u = t - i
    basis = [(1 - u) ** 3 / 6, (3 * u ** 3 - 6 * u ** 2 + 4) / 6, (-3 * u ** 3 + 3 * u ** 2 + 3 * u + 1) / 6, u ** 3 / 6]
    m = torch.zeros(n_out, n_ctrl, dtype=torch.float64)
    for k, w in enumerate(basis):
        m.index_put_((torch.arange(n_out), (i + k - 1).clamp(0, n_ctrl - 1)), w, accumulate=True)
    return m.float()


def bspline_upsample(coarse: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """Cubic B-spline upsampling of ``[B, C, *g]`` control values to ``[B, C, *size]`` (separable)."""
    x = coarse
    for axis, n in enumerate(size):
        m = bspline_matrix(x.shape[2 + axis], n).to(x)
        x = torch.movedim(torch.movedim(x, 2 + axis, -1) @ m.T, -1, 2 + axis)
    return x


def random_field(n: int, shape: tuple[int, ...], gen: torch.Generator, magnitude: float,
                 grid: int = 5) -> torch.Tensor:
    """Random smooth invertible displacements ``[n, N, *shape]`` in voxels: a ``grid^N`` random
    velocity (std ``magnitude`` voxels), B-spline upsampled, integrated by scaling and squaring."""
    nd = len(shape)
    coarse = torch.randn(n, nd, *([grid] * nd), generator=gen) * magnitude
    return integrate_velocity(bspline_upsample(coarse, shape))


def random_intensity(img: torch.Tensor, gen: torch.Generator, gamma=(0.7, 1.4), bias: float = 0.15,
                     noise: float = 0.02) -> torch.Tensor:
    """Gamma, a smooth multiplicative bias field (``exp(+-bias)``) and Gaussian noise; in [0, 1]."""
    n, nd = img.shape[0], img.dim() - 2
    lo, hi = math.log(gamma[0]), math.log(gamma[1])
    g = torch.exp(lo + (hi - lo) * torch.rand(n, generator=gen))
    b = bspline_upsample(torch.randn(n, 1, *([3] * nd), generator=gen) * bias, tuple(img.shape[2:]))
    out = img.clamp(0, 1) ** g.view(n, *([1] * (nd + 1))) * torch.exp(b)
    out = out + noise * torch.randn(img.shape, generator=gen) * (img > 0)
    return out.clamp(0, 1)


def deform_pairs(images: torch.Tensor, labels: torch.Tensor, n: int, seed: int, magnitude: float,
                 source: torch.Tensor | None = None) -> PairSet:
    """``n`` synthetic pairs from base images ``[N, 1, *S]`` in [0, 1] and labels ``[N, *S]``: each
    pair deforms one base image twice (fixed and moving) and changes both intensities."""
    gen = torch.Generator().manual_seed(seed)
    pick = source if source is not None else torch.randint(0, images.shape[0], (n,), generator=gen)
    out = {k: [] for k in PAIR_ARRAYS}
    for i in range(0, n, 16):
        idx = pick[i: i + 16]
        img, lab = images[idx].float(), labels[idx].unsqueeze(1).short()
        for role in ("fixed", "moving"):
            u = random_field(len(idx), tuple(images.shape[2:]), gen, magnitude)
            out[role].append(to_u8(random_intensity(warp(img, u), gen)))
            out[role + "_labels"].append(warp(lab, u, mode="nearest").squeeze(1))
    return PairSet(*(torch.cat(out[k]) for k in PAIR_ARRAYS))


def to_u8(x: torch.Tensor) -> torch.Tensor:
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


# -- base images from the sources ----------------------------------------------------------------------
def resample(arr: np.ndarray, affine: np.ndarray, target_affine: np.ndarray, target_shape, labels=False,
             offset: np.ndarray | None = None) -> np.ndarray:
    """Resample a 2D or 3D image ``[*S]`` (or several on one grid, ``[C, *S]``: one pass) onto another
    grid through world coordinates (n-linear, or nearest for labels; zero outside the image), a slab
    of the target at a time (a CT's grid in float32 sampling coordinates would be gigabytes).
    ``offset`` ``[n, *target_shape]``: a displacement in source voxels added where each target
    voxel samples (a field taking the image along in the same single interpolation)."""
    from ..ops.warp import identity_grid
    n = len(target_shape)
    if offset is not None and offset.shape != (n, *target_shape):
        raise ValueError(f"offset {offset.shape}: expected {(n, *target_shape)}, a displacement per target voxel")
    vox = torch.from_numpy(np.linalg.inv(affine) @ target_affine).float()     # target voxel -> source voxel
    scale = 2 / torch.tensor(arr.shape[-n:], dtype=torch.float32).sub(1).clamp(min=1)
    rest = identity_grid(tuple(target_shape[1:])).movedim(0, -1)               # [*S[1:], n - 1]
    t = torch.from_numpy(np.ascontiguousarray(arr, np.float32)).reshape(1, -1, *arr.shape[-n:])
    out = np.empty((t.shape[1], *target_shape), np.float32)
    slab = max(1, 2 ** 21 // max(1, rest[..., 0].numel()))
    for i0 in range(0, target_shape[0], slab):
        rows = torch.arange(i0, min(i0 + slab, target_shape[0]), dtype=torch.float32)
        first = rows.view(-1, *(1,) * (n - 1), 1).expand(-1, *rest.shape[:-1], 1)
        idx = torch.cat([first, rest.expand(len(rows), *rest.shape)], -1)         # [rows, *S[1:], n]
        src = idx @ vox[:n, :n].T + vox[:n, 3]
        if offset is not None:
            src = src + torch.from_numpy(np.ascontiguousarray(offset[:, i0: i0 + len(rows)], np.float32)).movedim(0, -1)
        grid = (src * scale - 1).flip(-1)[None]                                  # grid_sample wants (x, y[, z])
        out[:, i0: i0 + len(rows)] = F.grid_sample(t, grid, mode="nearest" if labels else "bilinear",
                                                   align_corners=True)[0].numpy()
    return out.reshape(arr.shape[:-n] + tuple(target_shape))


def compact_labels(*maps: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Label maps with any integer ids (an atlas's 484682470, say) as indices ``0..K-1`` into the
    sorted ids of all of them (0, background, stays 0), and those ids: the maps go through float
    resampling, int16 pair sets and one-hot Dice exactly, and ``ids[index]`` gives them back."""
    ids, inverse = np.unique(np.concatenate([np.zeros(1, np.int64)] + [m.ravel() for m in maps]), return_inverse=True)
    if len(ids) > 32767:
        raise UserError(f"{len(ids) - 1} distinct labels: at most 32766 are supported")
    out, start = [], 1
    for m in maps:
        out.append(inverse[start: start + m.size].reshape(m.shape).astype(np.int64))
        start += m.size
    return out, ids


def label_dtype(ids: np.ndarray):
    """The smallest NIfTI integer type that holds the label ids."""
    top = int(ids.max()) if len(ids) else 0
    return np.int16 if top < 2 ** 15 else np.int32 if top < 2 ** 31 else np.int64


def onto_fixed_grid(fixed, moving, moving_labels: np.ndarray | None = None, by_voxel: bool = False,
                    what: str = "--moving") -> tuple[np.ndarray, np.ndarray | None, float, float]:
    """The moving image (a ``Volume``) and its labels on the fixed image's grid, through the two
    headers' world coordinates, as ANTs and elastix start a registration; as given when grid and
    header agree, or with ``by_voxel`` (voxel to voxel: the shapes must agree). Returns them, the
    share of the fixed grid that the moving image covers (1 when as given) and, for 2D slices, how
    far (mm) the moving slice's corners lie off the fixed slice's plane (0 in 3D)."""
    if moving.array.ndim != fixed.array.ndim:
        raise UserError(f"{what} is {moving.array.ndim}D {moving.array.shape}, the fixed image {fixed.array.ndim}D "
                        f"{fixed.array.shape}: register images of one dimensionality")
    if by_voxel or (moving.array.shape == fixed.array.shape and np.allclose(moving.affine, fixed.affine, atol=1e-3)):
        if moving.array.shape != fixed.array.shape:
            raise UserError(f"{what} {moving.array.shape} and the fixed image {fixed.array.shape} differ in shape: "
                            f"voxel to voxel needs one grid")
        return moving.array, moving_labels, 1.0, 0.0
    if moving.array.ndim == 2 and fixed.array.ndim == 2:     # slices: read in the fixed one's plane, if near it
        normals = [np.cross(v.affine[:3, 0], v.affine[:3, 1]) for v in (fixed, moving)]
        cos = abs(float(normals[0] @ normals[1])) / max(float(np.linalg.norm(normals[0]) * np.linalg.norm(normals[1])),
                                                        1e-12)
        if cos < np.cos(np.radians(45)):
            raise UserError(f"{what} and the fixed image are slices at {np.degrees(np.arccos(min(cos, 1.0))):.0f} "
                            f"degrees to each other (a sagittal and a coronal slice, say): they share one line, "
                            f"not a picture; register slices of one orientation (or voxel to voxel, same shape)")
    bg = background(moving.array)         # beyond the moving image: its background (a CT's air), not 0
    m, inside = resample(np.stack([moving.array - bg, np.ones_like(moving.array)]), moving.affine, fixed.affine,
                         fixed.array.shape)                              # the image and where it reaches
    m += bg
    cover = float((inside > 0.5).mean())
    if cover == 0:
        raise UserError(f"{what} and the fixed image do not overlap in world coordinates (their headers place "
                        f"them apart): fix the headers, or register voxel to voxel (same shape)")
    lab = None if moving_labels is None else resample(moving_labels, moving.affine, fixed.affine, fixed.array.shape,
                                                      labels=True).round().astype(np.int64)
    off = 0.0
    if moving.array.ndim == 2:                 # resampled in the fixed slice's plane: how far off it is the moving one?
        normal = np.cross(fixed.affine[:3, 0], fixed.affine[:3, 1])
        normal /= np.linalg.norm(normal)
        corners = np.array([[i, j, 0, 1] for i in (0, moving.array.shape[0] - 1) for j in (0, moving.array.shape[1] - 1)])
        off = float(np.abs((corners @ moving.affine.T)[:, :3] @ normal - fixed.affine[:3, 3] @ normal).max())
    return m, lab, cover, off


def moving_at(fixed, moving, image: np.ndarray, field: torch.Tensor, by_voxel: bool = False,
              labels: bool = False, fill: float = 0.0) -> np.ndarray:
    """``image`` (the moving image, or its labels, on the moving grid) at ``x + field(x)`` for each
    voxel ``x`` of the fixed grid (``field [1, N, *S]`` in fixed voxels), through the two headers in
    one interpolation (voxel to voxel with ``by_voxel``): what ``antsApplyTransforms`` gives with
    the field, content beyond the fixed grid included (``fill`` beyond the moving image: 0, as ANTs,
    or its ``background`` for the model's input)."""
    source = fixed.affine if by_voxel else moving.affine
    n = field.shape[1]
    linear = (np.linalg.inv(source) @ fixed.affine)[:n, :n].astype(np.float32)   # fixed voxel steps -> moving ones
    offset = np.einsum("ij,j...->i...", linear, field[0].numpy().astype(np.float32, copy=False))
    return resample(image - fill if fill else image, source, fixed.affine, fixed.array.shape, labels=labels,
                    offset=offset) + fill


def model_to_voxels(shape: tuple[int, ...], size: int, margin: tuple[int, ...] | None = None) -> np.ndarray:
    """``(N + 1) x (N + 1)``: model-grid voxel (``size`` an axis, cell-centred as ``to_grid``:
    voxel ``i`` at ``(i + 0.5) S / size - 0.5``) -> voxel of the grid of ``shape``; ``margin``: the
    model grid extended by that many voxels (one per axis) before its first."""
    n = len(shape)
    step = np.array([s / size for s in shape])
    m = np.eye(n + 1)
    m[:n, :n] = np.diag(step)
    m[:n, n] = (0.5 - np.array(margin or (0,) * n)) * step - 0.5
    return m


def model_grid_affine(fixed, size: int, margin: tuple[int, ...] | None = None) -> np.ndarray:
    """Voxel -> world (4 x 4) of the fixed image's model grid extended by ``margin`` model voxels
    (one per axis) on both sides."""
    n = fixed.array.ndim
    m, grid = model_to_voxels(fixed.array.shape, size, margin), np.eye(4)
    grid[:n, :n], grid[:n, 3] = m[:n, :n], m[:n, n]
    return fixed.affine @ grid


def margin_beyond(fixed, size: int, fraction: float = 0.25) -> tuple[int, ...]:
    """Model voxels per axis that reach ``fraction`` of the fixed image's longest side (in mm) beyond
    it, at most ``size``: one distance on every axis, so a shift along the short side of a long
    thin crop is covered as along its long side."""
    n = fixed.array.ndim
    mm = np.linalg.norm(model_grid_affine(fixed, size)[:3, :n], axis=0)        # a model voxel's side, per axis
    reach = fraction * max(float(k) for k in mm * size)
    return tuple(int(min(size, max(1, math.ceil(reach / max(float(v), 1e-9))))) for v in mm)


def moving_beyond(fixed, moving, size: int, margin: tuple[int, ...], by_voxel: bool = False) -> torch.Tensor:
    """The moving image (normalised) on the fixed image's model grid extended by ``margin`` voxels
    (one per axis) on both sides, ``[1, 1, *(size + 2 margin)]``, through the headers (zero beyond
    the moving image), blurred first where the model's voxels are larger than its own (as
    ``to_grid``): what an affine fit needs to bring in content that lies beyond the fixed grid."""
    source = fixed.affine if by_voxel else moving.affine
    target = model_grid_affine(fixed, size, margin)
    n = moving.array.ndim
    model_mm = float(np.linalg.norm(target[:3, :n], axis=0).mean())
    img = normalise(moving.array)[None, None]
    for axis in range(n):
        ratio = model_mm / max(float(np.linalg.norm(source[:3, axis])), 1e-6)
        if ratio > 1:
            img = gaussian_along(img, axis + 2, (ratio - 1) / 2)
    return torch.from_numpy(resample(img[0, 0].numpy(), source, target, tuple(size + 2 * k for k in margin)))[None, None]


def affine_to_voxels(matrix: torch.Tensor, size: int, shape: tuple[int, ...]) -> torch.Tensor:
    """An affine map ``[B, N, N + 1]`` of model-grid voxels (``size`` an axis, cell-centred as
    ``to_grid``) as the same map of the voxels of the grid of ``shape``."""
    n = len(shape)
    to_full = torch.from_numpy(model_to_voxels(shape, size))
    m = torch.eye(n + 1, dtype=torch.float64).repeat(matrix.shape[0], 1, 1)
    m[:, :n] = matrix.double()
    return (to_full @ m @ torch.linalg.inv(to_full))[:, :n].to(matrix.dtype)


def placement(fixed, moving, cover: float, off: float) -> str:
    """How ``onto_fixed_grid`` placed ``moving`` (a ``Volume``) on ``fixed``'s grid, in words for a note."""
    how = ("pictures carry no position: placed by their top-left pixels, as ITK reads them"
           if "picture" in (fixed.kind, moving.kind) else "through their headers (world coordinates)")
    words = (f"{how}; it covers {cover * 100:.0f} % of the fixed grid"
             f"{'' if cover > 0.5 else ': are both in one world space?'}")
    if off > 0.5:
        words += (f"; the slices lie in different planes (up to {off:.1f} mm apart): the moving one is read as "
                  f"if in the fixed one's plane")
    return words


def _square_crop(masks: np.ndarray, margin: int = 4) -> tuple[slice, slice]:
    """A square box around the union of 2D masks ``[N, H, W]``."""
    ys, xs = np.nonzero(masks.any(0))
    cy, cx = (ys.min() + ys.max()) / 2, (xs.min() + xs.max()) / 2
    half = max(ys.max() - ys.min(), xs.max() - xs.min()) / 2 + margin
    y0, x0 = int(round(cy - half)), int(round(cx - half))
    side = int(round(2 * half))
    return slice(y0, y0 + side), slice(x0, x0 + side)


def _slices_to(arr: np.ndarray, box, size: int, labels=False) -> torch.Tensor:
    """``[N, H, W]`` -> cropped (zero padded) and resized ``[N, size, size]``."""
    ys, xs = box
    pad = max(0, -ys.start, -xs.start, ys.stop - arr.shape[1], xs.stop - arr.shape[2])
    a = np.pad(arr, ((0, 0), (pad, pad), (pad, pad)))[:, ys.start + pad: ys.stop + pad, xs.start + pad: xs.stop + pad]
    t = torch.from_numpy(np.ascontiguousarray(a, np.float32))[:, None]
    out = F.interpolate(t, size=(size, size), mode="nearest-exact" if labels else "area")   # both cell-centred
    return out[:, 0]


def axial(vol: np.ndarray, zs) -> np.ndarray:
    """Axial slices ``[len(zs), Y, X]`` of an ``[X, Y, Z]`` (RAS) volume, anterior up."""
    return np.stack([np.flipud(vol[:, :, z].T) for z in zs])


def kmeans_tissue(img: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Grey (1) and white (2) matter of a skull-stripped T1 ``[N, *S]``: 3-class K-means of the
    intensities inside ``mask``, CSF (darkest class) and outside = 0."""
    from ..ops.metrics import kmeans_labels
    out = torch.zeros(img.shape, dtype=torch.int16)
    for i in range(img.shape[0]):
        vals = img[i][mask[i]]
        lab = kmeans_labels(vals.view(1, 1, -1), 3)[0]
        full = torch.zeros(img.shape[1:], dtype=torch.int16)
        full[mask[i]] = lab.short()
        out[i] = full
    return out


BLOCKS = range(32, 132, 20)          # ch2 axial levels (1 mm voxels) in 20 mm blocks, all with much brain
IN_BLOCK = {"test": (0, 2, 4), "valid": (8, 10), "train": (14, 15, 16)}
"""Where each split's levels lie in a block: every training level is at least 4 mm from every test and
valid level, and every valid level 4 mm from every test level (1 mm apart, two slices are near-twins:
ch2 at level 40 against 41, NCC 0.98 and AAL Dice 0.93; 4 mm apart, 0.86 and 0.40)."""


def brain_levels(split: str) -> list[int]:
    """The ch2 levels of one split, shared by ``brain2d`` and ``brain2d-inter`` (until session 35 the
    two had interleaved levels 1 mm from each other's, so a learned method had trained on near-twins
    of half the real test pairs' moving slices)."""
    return [b + r for b in BLOCKS for r in IN_BLOCK[split]]


ALL_LEVELS = sorted(z for split in IN_BLOCK for z in brain_levels(split))
"""Every split's slices are cropped by one box, so all are framed alike."""


def brain_slices(size: int, zs) -> tuple[torch.Tensor, torch.Tensor]:
    """ch2bet axial slices ``[N, 1, size, size]`` in [0, 1] and AAL labels ``[N, size, size]``, cropped
    by the box of ``ALL_LEVELS``."""
    from .volumes import read_volume, source_files
    root = source_files("mricron")
    img = read_volume(root / "ch2bet.nii.gz").array
    aal = read_volume(root / "aal.nii.gz", labels=True).array
    box = _square_crop(axial(img, ALL_LEVELS) > 0)
    sl, lab = axial(img, zs), axial(aal, zs)
    x = _slices_to(sl, box, size) / max(float(img.max()), 1.0)
    return x[:, None].clamp(0, 1), _slices_to(lab, box, size, labels=True).round().short()


def brain_intersubject(size: int, zs) -> PairSet:
    """ch2 (moving) and MNI152 2009a (fixed) at the same axial levels: skull-stripped, tissue labels;
    cropped and scaled as ``ALL_LEVELS``, so every split alike."""
    from .volumes import read_volume, source_files
    ch2 = read_volume(source_files("mricron") / "ch2bet.nii.gz")
    root = source_files("mni152")
    t1 = read_volume(root / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz")
    gm = read_volume(root / "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz").array
    wm = read_volume(root / "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz").array
    shape = ch2.array.shape
    mni = resample(t1.array, t1.affine, ch2.affine, shape)
    brain = resample(gm + wm, t1.affine, ch2.affine, shape) > 0.2 * max(float(gm.max()), 1.0)
    mni = mni * brain
    m_all, f_all = axial(ch2.array, ALL_LEVELS), axial(mni, ALL_LEVELS)
    box = _square_crop((m_all > 0) | (f_all > 0))
    rows = [ALL_LEVELS.index(z) for z in zs]
    m = (_slices_to(m_all[rows], box, size) / max(float(m_all.max()), 1.0)).clamp(0, 1)
    f = (_slices_to(f_all[rows], box, size) / max(float(f_all.max()), 1.0)).clamp(0, 1)
    return PairSet(to_u8(f)[:, None], to_u8(m)[:, None], kmeans_tissue(f, f > 0.02), kmeans_tissue(m, m > 0.02),
                   name="brain2d-inter")


def liver_volume(size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """The liver CT ``[1, 1, s, s, s]`` (HU window [-200, 300] -> [0, 1]) and labels (1 liver, 2 tumour)."""
    from .volumes import read_volume, source_files
    root = source_files("liver")
    img = torch.from_numpy(read_volume(root / "img_117.mrc").array)
    lab = torch.from_numpy(read_volume(root / "lab_117.mrc", labels=True).array).float()
    x = ((img + 200) / 500).clamp(0, 1)[None, None]
    if tuple(x.shape[2:]) != (size,) * 3:
        x = F.interpolate(x, size=(size,) * 3, mode="trilinear", align_corners=False)
        # at a halving (128^3 -> 64), legacy nearest's voxel 2i is as far from the image's 2i + 0.5 as 2i + 1
        lab = F.interpolate(lab[None, None], size=(size,) * 3, mode="nearest")[0, 0]
    return x, lab.round().short()[None]


# -- named sets, cached -------------------------------------------------------------------------------
def default_magnitude(shape) -> float:
    """Std of the random velocity: 3% of the image side (about 4 px at 128, large after integration)."""
    return 0.03 * max(shape)


def build_set(name: str, split: str, n: int, size: int) -> PairSet:
    seed = SPLIT_SEED[split]
    if name == "brain2d":
        images, labels = brain_slices(size, brain_levels(split))
        return deform_pairs(images, labels, n, seed, default_magnitude((size, size)))
    if name == "brain2d-inter":
        return brain_intersubject(size, brain_levels(split))
    if name == "liver3d":
        images, labels = liver_volume(size)
        return deform_pairs(images, labels, n, seed, default_magnitude((size,) * 3))
    raise UserError(f"unknown pair set {name!r} (known: {', '.join(SETS)}, manifest:PATH)")


def load_pairs(name: str, split: str = "train", n: int = 256, size: int = 128, by_voxel: bool = False) -> PairSet:
    """A named pair set (built once, then read from the cache) or ``manifest:PATH`` (its moving
    images placed on the fixed grids through the headers, or voxel to voxel with ``by_voxel``)."""
    if split not in SPLIT_SEED:
        raise UserError(f"split must be one of {', '.join(SPLIT_SEED)}, got {split!r}")
    if name.startswith("manifest:"):
        return manifest_pairs(Path(name[len("manifest:"):]), size, by_voxel, split)
    if by_voxel:
        raise UserError(f"--by-voxel is for your own pairs (a CSV); {name} is one of ours, on one grid")
    key = hashlib.sha1(json.dumps([name, split, n, size, 5]).encode()).hexdigest()[:10]   # 5: levels in blocks
    path = cache_dir() / "registration" / "pairs" / f"{name}-{split}-{size}-{key}.npz"
    return PairSet.of_arrays(cached_arrays(path, lambda: build_set(name, split, n, size).arrays(), compress=True), name)


def background(arr: np.ndarray) -> float:
    """What lies beyond an image for the model: its 0.5th percentile, ``normalise``'s 0 (a CT's air at
    -1000 HU; a zero there would read as bright tissue after normalising)."""
    return float(np.percentile(arr, 0.5))


def normalise(arr: np.ndarray) -> torch.Tensor:
    """Scale to [0, 1] by the 0.5 and 99.5 percentiles (robust to a few bright voxels)."""
    lo, hi = np.percentile(arr, [0.5, 99.5])
    return torch.from_numpy(np.clip((arr - lo) / max(hi - lo, 1e-6), 0, 1).astype(np.float32))


def to_grid(t: torch.Tensor, size: int, labels: bool = False) -> torch.Tensor:
    """Resample ``[*S]`` (2D or 3D) to ``size`` per axis, model voxel ``i`` of an axis of ``N`` at
    ``(i + 0.5) N / size - 0.5`` (cell-centred, as ``ops.warp.resize_field`` brings fields back):
    labels nearest there; an image n-linearly, after a Gaussian blur along each axis that shrinks
    (sigma ``(N / size - 1) / 2`` voxels, scikit-image's anti-aliasing: a 512^3 CT at 64^3 is not
    every 8th voxel; symmetric, so no voxel moves, whatever the ratio, 160 -> 128 too)."""
    nd = t.dim()
    if tuple(t.shape) == (size,) * nd:
        return t
    x = t.float()[None, None]
    if labels:
        return F.interpolate(x, size=(size,) * nd, mode="nearest-exact")[0, 0]
    for axis, n in enumerate(t.shape):
        if n > size:
            x = gaussian_along(x, axis + 2, (n / size - 1) / 2)
    return F.interpolate(x, size=(size,) * nd, mode="bilinear" if nd == 2 else "trilinear", align_corners=False)[0, 0]


def manifest_split(rows: list[dict], path) -> list[str] | None:
    """Each row's split from an optional ``split`` column (train, valid or test; an empty cell is
    train), or None when the manifest has no such column (every row then serves every split)."""
    if not any("split" in r for r in rows):
        return None
    splits = [r.get("split") or "train" for r in rows]
    bad = sorted(set(splits) - set(SPLIT_SEED))
    if bad:
        raise UserError(f"{path}: the split column holds {', '.join(map(repr, bad))}; use {', '.join(SPLIT_SEED)} "
                        f"(an empty cell is train)")
    return splits


def manifest_pairs(path: Path, size: int, by_voxel: bool = False, split: str | None = None) -> PairSet:
    """A user's pairs; labels are optional (then the K-means pseudo-labels score them). Each moving
    image goes onto its fixed image's grid through the headers (``onto_fixed_grid``), or voxel to
    voxel with ``by_voxel`` (headers that are wrong; the shapes must agree). With a ``split``
    column (``manifest_split``) only the rows of ``split`` are read; without one, every row."""
    from .volumes import read_manifest
    rows = read_manifest(path, text=("split",))
    splits = manifest_split(rows, path)
    if splits is not None and split is not None:
        rows = [r for r, s in zip(rows, splits) if s == split]
        if not rows:
            raise UserError(f"{path}: no pairs of the {split} split (its split column names "
                            f"{', '.join(sorted(set(splits)))})")
    cells = [[str(r[k]) if r[k] else None for k in PAIR_ARRAYS] for r in rows]     # which file plays which role
    key = files_key([path] + [c for row in cells for c in row if c], MANIFEST_READER, size, by_voxel, cells)
    name = name_key(os.path.abspath(path), split, size, by_voxel)
    arrays = cached_arrays(cache_dir() / "registration" / "user" / f"{size}-{name}.npz",
                           lambda: _read_manifest_rows(rows, size, by_voxel), key=key)
    for row, placed in zip(arrays["note_rows"], arrays["notes"]):     # said again each time the pairs are read
        print(f"rl-i2it: note: {rows[row]['moving']} on {rows[row]['fixed']}'s grid: {placed}", file=sys.stderr)
    return PairSet.of_arrays(arrays, name=f"manifest:{path}")


MANIFEST_READER = 4                    # 4: beyond the moving image its background, NIfTI without orientation
                                      # placed as ITK (3: images anti-aliased to the model grid, labels
                                      # at voxel centres, to_grid)
"""Version of how ``manifest_pairs`` reads and places a pair: caches of another are rebuilt."""


def _read_manifest_rows(rows: list[dict], size: int, by_voxel: bool) -> dict[str, np.ndarray]:
    from .volumes import read_labels_of, read_volume
    out = {k: [] for k in PAIR_ARRAYS}
    notes, note_rows = [], []
    for i, r in enumerate(progress(rows, f"reading {len(rows)} pairs at {size} (once; then cached)", "pair")):
        vols, labs = {}, {}
        for role in ("fixed", "moving"):
            vols[role] = read_volume(r[role])
            lab_path = r[role + "_labels"]
            labs[role] = (read_labels_of(lab_path, vols[role], str(lab_path)) if lab_path
                          else np.zeros(vols[role].array.shape, np.int64))
        (labs["fixed"], labs["moving"]), _ = compact_labels(labs["fixed"], labs["moving"])   # Dice needs no ids
        m, labs["moving"], cover, off = onto_fixed_grid(vols["fixed"], vols["moving"], labs["moving"],
                                                        by_voxel=by_voxel, what=str(r["moving"]))
        if cover < 0.5 or off > 0.5:
            notes.append(placement(vols["fixed"], vols["moving"], cover, off))
            note_rows.append(i)
        for role, arr in (("fixed", vols["fixed"].array), ("moving", m)):
            out[role].append(to_u8(to_grid(normalise(arr), size))[None])
            out[role + "_labels"].append(to_grid(torch.from_numpy(labs[role]), size, labels=True).round().short())
    return {**{k: torch.stack(v).numpy() for k, v in out.items()}, "notes": np.array(notes, dtype=str),
            "note_rows": np.array(note_rows, dtype=np.int64)}
