import math

import pytest
import torch
import torch.nn.functional as F

from rl_i2it.ops.metrics import psnr, ssim


def smooth_image(b=2, c=3, size=32, seed=0):
    """Smooth random images in [0, 1] with structure at several scales."""
    g = torch.Generator().manual_seed(seed)
    x = sum(F.interpolate(torch.rand(b, c, s, s, generator=g), size=(size, size), mode="bilinear",
                          align_corners=False) / (i + 1) for i, s in enumerate((4, 8, 16, 32)))
    return (x - x.amin()) / (x.amax() - x.amin())


def blur(x, sigma):
    t = torch.arange(-6, 7, dtype=x.dtype)
    g = torch.exp(-t ** 2 / (2 * sigma ** 2))
    k = (g[:, None] * g[None]) / g.sum() ** 2
    return F.conv2d(F.pad(x, (6, 6, 6, 6), mode="reflect"), k.expand(x.shape[1], 1, 13, 13), groups=x.shape[1])


def test_smoke_identical():
    x = smooth_image()
    torch.testing.assert_close(psnr(x, x), torch.full((2,), 100.0))
    torch.testing.assert_close(ssim(x, x), torch.ones(2))
    assert psnr(x, x, eps=1e-8)[0].item() == pytest.approx(80.0)


def test_cardinality_and_broadcast_mask():
    x = smooth_image(4, 1, 16)
    y = smooth_image(4, 1, 16, seed=1)
    assert psnr(x, y).shape == (4,) and ssim(x, y).shape == (4,)
    mask = torch.ones(1, 1, 16, 16, dtype=torch.bool)
    torch.testing.assert_close(psnr(x, y, mask), psnr(x, y))
    inner = torch.zeros(1, 1, 16, 16, dtype=torch.bool)
    inner[..., 5:-5, 5:-5] = True                     # without a mask SSIM leaves out the 5-pixel border
    torch.testing.assert_close(ssim(x, y, inner), ssim(x, y))


def test_ssim_without_a_mask_is_the_standard_valid_window_mean():
    """Wang et al.'s definition with no padding at all (a 'valid' Gaussian filter, as scikit-image's
    and torchmetrics' crop), on noisy pictures where the padded border would read differently."""
    import torch.nn.functional as F
    x = smooth_image(2, 3, 32)
    y = (x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    t = torch.arange(11.0) - 5
    g = torch.exp(-t ** 2 / (2 * 1.5 ** 2))
    g = (g / g.sum()).double()
    w = (g[:, None] * g[None, :]).expand(3, 1, 11, 11)
    blur = lambda a: F.conv2d(a.double(), w, groups=3)                 # 22 x 22: only whole windows
    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx ** 2, blur(y * y) - my ** 2, blur(x * y) - mx * my
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    ref = (((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))).mean((1, 2, 3))
    torch.testing.assert_close(ssim(x, y).double(), ref, atol=1e-5, rtol=0)
    assert (ssim(x, y, torch.ones(1, 1, 32, 32)) - ssim(x, y)).abs().max() > 1e-3    # the padded border differs
    torch.testing.assert_close(ssim(x, y, whole=True), ssim(x, y, torch.ones(1, 1, 32, 32)))   # the reward's form


def test_psnr_analytic_offset():
    x = smooth_image() * 0.8
    torch.testing.assert_close(psnr(x + 0.1, x), torch.full((2,), 20.0), rtol=0, atol=1e-3)
    torch.testing.assert_close(psnr(x + 0.01, x), torch.full((2,), 40.0), rtol=0, atol=1e-2)
    # max_val 255: the same relative error in 8-bit units
    torch.testing.assert_close(psnr((x + 0.1) * 255, x * 255, max_val=255.0), torch.full((2,), 20.0),
                               rtol=0, atol=1e-3)
    # uint8 images at max_val 255: measured in floats, not in wrapping 8-bit arithmetic
    a, b = (x * 255).round().byte(), ((x + 0.1) * 255).round().byte()
    torch.testing.assert_close(psnr(a, b, max_val=255.0), psnr(a.float(), b.float(), max_val=255.0))
    torch.testing.assert_close(ssim(a, b, max_val=255.0), ssim(a.float(), b.float(), max_val=255.0))
    for metric in (psnr, ssim):                    # uint8 at the default max_val 1: refused (psnr read -27 dB)
        with pytest.raises(ValueError, match="uint8 images with max_val=1: give max_val=255"):
            metric(a, b)
    # an error in one channel of three: MSE / 3
    y = x.clone()
    y[:, 0] += 0.1
    torch.testing.assert_close(psnr(y, x), torch.full((2,), 20 + 10 * math.log10(3)), rtol=0, atol=1e-3)


def test_mask_restricts():
    x = smooth_image()
    y = x.clone()
    y[..., :8] = 1 - y[..., :8]                        # differ only in the left 8 columns
    mask = torch.zeros(2, 1, 32, 32)
    mask[..., 16:] = 1
    torch.testing.assert_close(psnr(y, x, mask), torch.full((2,), 100.0))
    torch.testing.assert_close(ssim(y, x, mask), torch.ones(2))
    assert (psnr(y, x) < 30).all() and (ssim(y, x) < 0.9).all()
    # a per-image mask: only the second image sees the difference
    m2 = torch.ones(2, 1, 32, 32, dtype=torch.bool)
    m2[0, ..., :16] = False
    p = psnr(y, x, m2)
    assert p[0] == pytest.approx(100.0) and p[1] < 30


def test_monotone_under_noise_and_blur():
    x = smooth_image()
    g = torch.Generator().manual_seed(3)
    noise = torch.randn(x.shape, generator=g)
    for metric in (psnr, ssim):
        by_noise = torch.stack([metric(x + s * noise, x) for s in (0.01, 0.03, 0.1, 0.3)])
        by_blur = torch.stack([metric(blur(x, s), x) for s in (0.5, 1.0, 2.0, 4.0)])
        assert (by_noise[1:] < by_noise[:-1]).all(), by_noise
        assert (by_blur[1:] < by_blur[:-1]).all(), by_blur


def test_ssim_known_properties():
    x = smooth_image()
    # a constant offset leaves the structure and contrast terms at 1: only luminance drops, a little
    s = ssim(x * 0.8 + 0.1, x * 0.8)
    assert ((s > 0.9) & (s < 1)).all()
    # symmetric
    y = smooth_image(seed=5)
    torch.testing.assert_close(ssim(x, y), ssim(y, x))
    # a negated-contrast copy is anticorrelated: SSIM below zero
    assert (ssim(1 - x, x) < 0).all()
    # small images still work (replicate padding where reflection does not fit)
    assert ssim(x[..., :4, :4], x[..., :4, :4]).allclose(torch.ones(2))


def test_gradcheck():
    x = smooth_image(1, 2, 8).double()
    y = smooth_image(1, 2, 8, seed=1).double().requires_grad_()
    mask = torch.zeros(1, 1, 8, 8, dtype=torch.double)
    mask[..., 2:] = 1
    assert torch.autograd.gradcheck(lambda t: psnr(t, x, mask), (y,))
    assert torch.autograd.gradcheck(lambda t: ssim(t, x, mask, window=5), (y,))


def test_backward_improves():
    x = smooth_image()
    y = (x + 0.2 * torch.randn(x.shape)).requires_grad_()
    loss = -(ssim(y, x).mean() + psnr(y, x).mean() / 100)
    loss.backward()
    with torch.no_grad():
        y2 = y - 0.05 * y.grad / y.grad.abs().max()
    assert (ssim(y2, x) > ssim(y.detach(), x)).all()


@pytest.mark.parametrize("metric", [psnr, ssim])
def test_exceptions(metric):
    x = torch.rand(2, 3, 16, 16)
    with pytest.raises(ValueError, match="differ in shape"):
        metric(x, x[:, :1])
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        metric(x[0], x[0])
    with pytest.raises(ValueError, match="mask"):
        metric(x, x, torch.ones(2, 3, 16, 16))
    with pytest.raises(ValueError, match="mask"):
        metric(x, x, torch.ones(3, 1, 16, 16))
    empty = torch.ones(2, 1, 16, 16)
    empty[1] = 0
    with pytest.raises(ValueError, match="no pixel"):
        metric(x, x, empty)


def test_ssim_bad_window():
    x = torch.rand(1, 1, 16, 16)
    with pytest.raises(ValueError, match="odd"):
        ssim(x, x, window=4)
    with pytest.raises(ValueError, match="sigma"):
        ssim(x, x, sigma=0)


def test_ssim_of_0_255_images_with_max_val_255_is_that_of_0_1_images():
    """c1 and c2 scale with max_val: the same pictures score the same in either range."""
    a, b = smooth_image(seed=0), smooth_image(seed=1)
    torch.testing.assert_close(ssim(a * 255, b * 255, max_val=255.0), ssim(a, b))
