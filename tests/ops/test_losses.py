import pytest
import torch

from rl_i2it.ops.losses import box_sum, local_ncc, ncc_force, ncc_loss, smoothness
from rl_i2it.ops.warp import warp


def smooth_image(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 1, *shape, generator=g)
    pool = torch.nn.functional.avg_pool2d if len(shape) == 2 else torch.nn.functional.avg_pool3d
    return pool(x, 3, 1, 1)


@pytest.mark.parametrize("shape", [(20, 20), (10, 10, 10)])
def test_identical_images_score_minus_one(shape):
    a = smooth_image(*shape)
    assert ncc_loss(a, a, window=5).item() == pytest.approx(-1.0, abs=2e-2)


def test_invariant_to_affine_intensity_away_from_the_zero_padded_border():
    a = smooth_image(24, 24)
    m = local_ncc(a, 3 * a + 2, 9)[..., 4:-4, 4:-4]
    assert m.min().item() > 0.99


def test_unrelated_images_score_near_zero():
    a, b = torch.rand(1, 1, 64, 64), torch.rand(1, 1, 64, 64)
    assert -0.1 < ncc_loss(a, b, 9).item() < 0


def test_monotone_under_growing_misalignment():
    a = smooth_image(32, 32, seed=3)
    losses = [ncc_loss(a, torch.roll(a, s, dims=3), 9).item() for s in (0, 1, 2, 4)]
    assert losses == sorted(losses)


@pytest.mark.parametrize("shape,window", [((2, 3, 11, 7), 5), ((1, 2, 6, 9, 5), 3), ((1, 1, 4, 4), 9)])
def test_box_sum_is_the_zero_padded_box_convolution(shape, window):
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(1), requires_grad=True)
    nd, c = len(shape) - 2, shape[1]
    conv = torch.nn.functional.conv2d if nd == 2 else torch.nn.functional.conv3d
    ref = conv(x, torch.ones(c, 1, *[window] * nd, dtype=x.dtype), padding=window // 2, groups=c)
    out = box_sum(x, window)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.allclose(out, ref, atol=1e-5)
    g, = torch.autograd.grad((out * ref.detach()).sum(), x)
    g_ref, = torch.autograd.grad((ref * ref.detach()).sum(), x)
    assert torch.allclose(g, g_ref, atol=1e-4)


def test_box_sum_keeps_float32_precision_on_large_volumes():
    # each output adds window values per axis: no running sums whose rounding grows with the axis
    x = 0.5 + 0.01 * torch.rand(1, 1, 96, 96, 96, generator=torch.Generator().manual_seed(2))
    out = box_sum(x, 9)
    ref = box_sum(x.double(), 9)
    inner = (slice(None), slice(None), slice(4, -4), slice(4, -4), slice(4, -4))
    assert out.dtype == torch.float32
    assert ((out.double() - ref)[inner].abs() / ref[inner]).max() < 5e-7     # float32 running sums: 1e-6
    assert torch.allclose(ref[inner], x.double()[inner].new_tensor(0.505 * 729), rtol=0.02)


def test_ncc_map_range_and_shape():
    m = local_ncc(torch.rand(2, 1, 12, 12), torch.rand(2, 1, 12, 12), 3)
    assert m.shape == (2, 1, 12, 12) and (m >= 0).all() and (m <= 1 + 1e-4).all()


def test_ncc_exceptions():
    with pytest.raises(ValueError, match="differ"):
        ncc_loss(torch.rand(1, 1, 5, 5), torch.rand(1, 1, 5, 6))
    with pytest.raises(ValueError, match="odd"):
        ncc_loss(torch.rand(1, 1, 5, 5), torch.rand(1, 1, 5, 5), window=4)
    with pytest.raises(ValueError):
        ncc_loss(torch.rand(5, 5), torch.rand(5, 5))


def test_ncc_gradcheck():
    a = smooth_image(6, 6).double()
    b = smooth_image(6, 6, seed=1).double().requires_grad_()
    assert torch.autograd.gradcheck(lambda x: ncc_loss(a, x, 3), (b,))


def waves(shape, seed, shift=None, n=6):
    """A smooth image, a sum of ``n`` random plane waves of 20-40 pixels' wavelength, evaluated
    at ``x + shift(x)`` (a field ``[1, N, *S]``): an exactly moved image, free of the blur that
    a linear interpolation adds at any fractional displacement."""
    g = torch.Generator().manual_seed(seed)
    x = torch.stack(torch.meshgrid(*[torch.arange(s, dtype=torch.float64) for s in shape], indexing="ij"))
    x = x if shift is None else x + shift[0]
    img = torch.zeros(shape, dtype=torch.float64)
    for _ in range(n):
        k = torch.randn(len(shape), generator=g, dtype=torch.float64)
        k = k / k.norm() * 2 * torch.pi / (20 + 20 * torch.rand(1, generator=g, dtype=torch.float64))
        img += torch.sin((k.view(-1, *[1] * len(shape)) * x).sum(0) + 6.3 * torch.rand(1, generator=g).item())
    return img[None, None] / n + 0.5


@pytest.mark.parametrize("shape", [(32, 32), (16, 16, 16)])
def test_ncc_force_is_the_similarity_gradient_of_a_displacement(shape):
    """First order: moving the image by a small field u changes sum(local_ncc) by sum(force . u)
    (within 10 %: central differences, one-sided at the border, are not the exact slope; measured
    2 % in 2D, 9 % in 3D, against 110 % / 80 % with the force's channels swapped), and a step
    along the force raises the NCC."""
    nd = len(shape)
    fixed, moved = waves(shape, 0), waves(shape, 1)
    with torch.no_grad():                                              # needs no caller gradient
        force = ncc_force(fixed, moved, 5)
    assert force.shape == (1, nd, *shape) and not force.requires_grad
    u = torch.cat([waves(shape, 2 + i) - 0.5 for i in range(nd)], 1)
    base = local_ncc(fixed, moved, 5).sum()
    for eps in (1e-2, 1e-3):
        change = (local_ncc(fixed, waves(shape, 1, eps * u), 5).sum() - base).item()
        predicted = eps * (force * u).sum().item()
        assert abs(change - predicted) < 0.1 * abs(predicted), (eps, change, predicted)
    step = 0.5 * force / force.abs().max()
    assert ncc_loss(fixed, warp(moved, step), 5) < ncc_loss(fixed, moved, 5)
    with pytest.raises(ValueError, match="one-channel"):
        ncc_force(fixed.repeat(1, 2, *[1] * nd), moved.repeat(1, 2, *[1] * nd))


@pytest.mark.parametrize("shape", [(2, 1, 24, 20), (2, 1, 10, 12, 9)])
def test_ncc_force_equals_autograd_through_local_ncc(shape):
    """The written-out intensity gradient is autograd's through ``local_ncc``, flat regions (zero
    variance) and the zero-padded border included; a wrong sign or a missing term would not be."""
    g = torch.Generator().manual_seed(0)
    fixed, moved = (torch.rand(shape, generator=g, dtype=torch.float64) for _ in range(2))
    moved[0, :, :4] = 0.3                                            # a flat slab: var_m = 0 there
    nd = len(shape) - 2
    for window in (3, 5):
        m = moved.clone().requires_grad_(True)
        grad, = torch.autograd.grad(local_ncc(fixed, m, window).sum(), m)
        slope = torch.stack(torch.gradient(moved[:, 0], dim=tuple(range(1, nd + 1))), 1)
        force = ncc_force(fixed, moved, window)
        assert force.dtype == torch.float64 and (force - grad * slope).abs().max() < 1e-9
        assert (force - grad * slope).abs().max() < 1e-6 * force.abs().max()
        m32 = moved.float().requires_grad_(True)                     # float32, as in training: as autograd's
        grad32, = torch.autograd.grad(local_ncc(fixed.float(), m32, window).sum(), m32)
        diff = ncc_force(fixed.float(), moved.float(), window) - grad32 * slope.float()
        assert diff.abs().max() < 1e-5 * force.abs().max()
    with pytest.raises(ValueError, match="odd"):
        ncc_force(fixed, moved, 4)


def test_smoothness_analytic():
    assert smoothness(torch.ones(1, 2, 5, 5) * 3) == 0
    yy, xx = torch.meshgrid(torch.arange(5.0), torch.arange(5.0), indexing="ij")
    u = torch.stack([2 * yy, 0 * xx])[None]           # d u0/dy = 2, everything else 0
    assert smoothness(u, "l2").item() == pytest.approx((4 / 2 + 0) / 2)   # mean over axes of mean sq diff
    assert smoothness(u, "l1").item() == pytest.approx((2 / 2) / 2)


def test_smoothness_exceptions_and_gradcheck():
    with pytest.raises(ValueError):
        smoothness(torch.zeros(1, 2, 5, 5), "l3")
    with pytest.raises(ValueError):
        smoothness(torch.zeros(5, 5))
    u = torch.rand(1, 3, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: smoothness(x, "l2"), (u,))
