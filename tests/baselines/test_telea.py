"""Telea inpainting (OpenCV): the known pixels stay exactly, a hole in a smooth image is filled well."""
import pytest
import torch

from rl_i2it.baselines import telea

pytestmark = pytest.mark.skipif(not telea.available(), reason="OpenCV (cv2) is not installed")


def gradient(b=2, c=3, h=32, w=40):
    yy = torch.linspace(0, 1, h)[:, None]
    xx = torch.linspace(0, 1, w)[None]
    img = torch.stack([0.2 + 0.6 * xx + 0 * yy, 0.8 * yy + 0 * xx, 0.5 * (xx + yy)])[:c]
    return img.expand(b, c, h, w).clone()


def centre_hole(h=32, w=40, batch=1):
    m = torch.zeros(batch, 1, h, w, dtype=torch.bool)
    m[..., 10:22, 14:26] = True
    return m


def test_known_pixels_are_unchanged_bit_for_bit():
    x = torch.rand(3, 3, 32, 40, generator=torch.Generator().manual_seed(0))
    m = centre_hole(batch=3)
    m[1, :, 0:4, 0:4] = True                                # per-image masks differ
    out = telea.telea_inpaint(x, m)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.equal(out[~m.expand_as(x)], x[~m.expand_as(x)])
    assert not torch.equal(out[m.expand_as(x)], x[m.expand_as(x)])


def test_fills_a_smooth_gradient_close_to_the_truth():
    truth = gradient()
    m = centre_hole()                                       # one mask shared by the batch
    holed = truth.masked_fill(m, 0.0)
    out = telea.telea_inpaint(holed, m, radius=3)
    hole = m.expand_as(truth)
    err = (out - truth)[hole].abs().mean()
    black = (holed - truth)[hole].abs().mean()
    assert err < 0.05 and err < black / 10                  # measured 0.030 vs 0.47


def test_grey_images_and_shape_errors():
    g = gradient(1, 1)
    out = telea.telea_inpaint(g.masked_fill(centre_hole(), 0), centre_hole())
    assert out.shape == (1, 1, 32, 40) and (out - g).abs().max() < 0.1
    with pytest.raises(ValueError, match="mask"):
        telea.telea_inpaint(gradient(2), centre_hole(batch=3))
    with pytest.raises(ValueError, match="images"):
        telea.telea_inpaint(gradient(1, 2), centre_hole())
    with pytest.raises(ValueError, match="radius"):
        telea.telea_inpaint(gradient(1), centre_hole(), radius=0)
