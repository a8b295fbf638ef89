"""Affine pre-alignment: the field of a matrix, one convention for the fit's sampling and our warp,
and a known affine recovered in 2D and 3D."""
import pytest
import torch

from conftest import inverse_affine, known_affine, make_anatomy
from rl_i2it.ops.affine import _matrix, _sample, affine_field, fit_affine, global_ncc
from rl_i2it.ops.warp import warp


@pytest.mark.parametrize("nd", [2, 3])
def test_affine_field_and_the_fits_sampling_agree(nd):
    shape = (12, 10, 8)[:nd]
    assert torch.equal(affine_field(torch.cat([torch.eye(nd), torch.zeros(nd, 1)], 1)[None], shape),
                       torch.zeros(1, nd, *shape))
    shift = torch.cat([torch.eye(nd), torch.arange(1.0, nd + 1)[:, None]], 1)[None]
    assert torch.allclose(affine_field(shift, shape), torch.arange(1.0, nd + 1).view(1, nd, *[1] * nd).expand(1, nd, *shape))
    gen = torch.Generator().manual_seed(0)
    img = torch.rand(2, 1, *shape, generator=gen)
    a = torch.eye(nd) + 0.1 * torch.randn(2, nd, nd, generator=gen)
    t = 0.2 * torch.randn(2, nd, generator=gen)
    # affine_grid's coordinates (the fit's) and a voxel field through our warp: one map
    assert torch.allclose(_sample(img, a, t), warp(img, affine_field(_matrix(a, t, shape), shape)), atol=1e-5)
    with pytest.raises(ValueError, match=r"matrix must be \[B, 2, 3\]"):
        affine_field(torch.zeros(1, 3, 4), (5, 5))


@pytest.mark.parametrize("nd, size", [(2, 64), (3, 24)])
def test_fit_affine_recovers_a_known_affine(nd, size):
    imgs, _ = make_anatomy(1, size, nd, seed=3)
    true = known_affine(nd, size)
    moving = warp(imgs, affine_field(inverse_affine(true), (size,) * nd))     # moving(true(x)) = fixed(x)
    mat, start, fit = fit_affine(imgs, moving)
    err = (affine_field(mat, (size,) * nd) - affine_field(true, (size,) * nd)).norm(dim=1)
    inner = err[(0,) + (slice(size // 4, 3 * size // 4),) * nd]
    assert inner.max() < 0.6 and err.mean() < 0.5, (inner.max(), err.mean())
    at_true = float(global_ncc(imgs, warp(moving, affine_field(true, (size,) * nd))))   # < 1: interpolation
    assert float(global_ncc(imgs, moving)) < float(start) < float(fit) and float(fit) > at_true - 0.005
    assert torch.allclose(fit, global_ncc(imgs, warp(moving, affine_field(mat, (size,) * nd))), atol=1e-5)
    if nd == 2:            # fitted at 32x32 at most: the same map at 64x64, to within a voxel of 32x32
        coarse, _, _ = fit_affine(imgs, moving, max_voxels=32 ** 2)
        assert (affine_field(coarse, (size,) * nd) - affine_field(true, (size,) * nd)).norm(dim=1).mean() < 1.0


def test_fit_affine_keeps_its_start_when_the_fit_is_worse():
    """Aligned images stay (about) where they are; a pair with nothing to align on keeps the
    centre-of-mass start rather than a worse fit."""
    imgs, _ = make_anatomy(2, 32, 2, seed=1)
    mat, start, fit = fit_affine(imgs[:1], imgs[:1])
    assert affine_field(mat, (32, 32)).abs().max() < 0.2 and float(fit) > 0.999
    mat, start, fit = fit_affine(imgs[:1], imgs[1:], iters=(1,), lr=5.0)     # one wild step: worse than its start
    from rl_i2it.ops.affine import centre_of_mass
    half = torch.full((2,), 15.5)
    begin = _matrix(torch.eye(2)[None], (centre_of_mass(imgs[1:]) - centre_of_mass(imgs[:1])) / half, (32, 32))
    assert torch.allclose(mat, begin, atol=1e-5) and float(fit) == float(start)      # the start, kept
    assert abs(float(global_ncc(imgs[:1], warp(imgs[1:], affine_field(mat, (32, 32))))) - float(fit)) < 1e-5
    with torch.inference_mode():                     # as a user's inference code may call it
        again, _, _ = fit_affine(imgs[:1], imgs[:1])
    assert torch.allclose(again, fit_affine(imgs[:1], imgs[:1])[0])
    with pytest.raises(ValueError, match=r"fixed must be \[B, 1, H, W\]"):
        fit_affine(torch.zeros(1, 2, 8, 8), torch.zeros(1, 2, 8, 8))
    with pytest.raises(ValueError, match="one shape"):
        fit_affine(imgs[:1], imgs[:1, :, :16])


def test_fit_affine_takes_the_moving_content_beyond_the_fixed_grid():
    """A shift that brings in moving content beyond the fixed grid: given it (``margin``), the fit
    finds the shift; the moving image cut to the fixed grid reads zeros there instead."""
    y, x = torch.meshgrid(torch.arange(48.0), torch.arange(48.0), indexing="ij")
    scene = (0.5 + 0.3 * torch.sin(x / 3) * torch.cos(y / 4) + 0.2 * torch.sin((x + y) / 6))[None, None]
    fixed = scene[..., 12:36, 12:36]                      # 24 x 24; the moving image is the scene 3 rows up
    wide = scene[..., 5:37, 8:40]                         # its copy on the fixed grid and 4 voxels beyond each side
    cut = wide[..., 4:28, 4:28]
    mat, _, fit = fit_affine(fixed, wide, margin=4)
    assert float(fit) > 0.99
    assert torch.allclose(affine_field(mat, (24, 24)), torch.tensor([3.0, 0.0]).view(1, 2, 1, 1), atol=0.3)
    assert float(fit_affine(fixed, cut)[2]) < float(fit) - 0.02
    with pytest.raises(ValueError, match=r"\(4, 4\) voxels on both sides"):
        fit_affine(fixed, cut, margin=(4, 4))
