"""Gatys' L-BFGS style transfer lowers the objective it optimises and stays in [0, 1]."""
import torch

from rl_i2it.baselines.gatys import gatys
from rl_i2it.features.style import StyleObjective
from rl_i2it.features.vgg import VGG16Features
from rl_i2it.ops.losses import total_variation


def test_gatys_lowers_the_style_objective(smooth):
    obj = StyleObjective(VGG16Features(normalize=False, pretrained=False))
    content, style = smooth(1, 32, 0), smooth(1, 40, 1)
    grams = obj.style_grams(style)
    cw, sw, tw = 1.0, 1e9, 1e-7

    def total(x):
        c, s = obj(x, obj.content_features(content), grams)
        return float(cw * c + sw * s + tw * total_variation(x))
    out = gatys(obj, content, grams, cw, sw, tw, iterations=15)
    assert out.shape == content.shape and 0 <= out.min() and out.max() <= 1
    assert total(out) < 0.5 * total(content)


def test_gatys_starts_at_the_content():
    """Content-only objective: the content itself is the optimum, so started there L-BFGS returns it
    (up to the [1e-3, 1 - 1e-3] clamp of the logit parameterisation)."""
    obj = StyleObjective(VGG16Features(normalize=False, pretrained=False))
    g = torch.Generator().manual_seed(0)
    content = torch.rand(1, 3, 32, 32, generator=g)
    grams = obj.style_grams(torch.rand(1, 3, 32, 32, generator=g))
    out = gatys(obj, content, grams, content_weight=1.0, style_weight=0.0, tv_weight=0.0, iterations=3)
    torch.testing.assert_close(out, content.clamp(1e-3, 1 - 1e-3), atol=1e-4, rtol=0)
