import importlib

import pytest
import torch

from rl_i2it.features import LPIPS

lp = importlib.import_module("rl_i2it.features.lpips")   # the package's `lpips` is the function


@pytest.fixture(scope="module", params=["alex", "vgg"])
def model(request):
    torch.manual_seed(0)
    return LPIPS(request.param, pretrained=False)


def test_identical_is_zero_and_symmetric(model, smooth):
    x, y = smooth(3, 48, seed=0), smooth(3, 48, seed=1)
    torch.testing.assert_close(model(x, x), torch.zeros(3))
    d = model(x, y)
    assert d.shape == (3,) and (d > 0).all()
    torch.testing.assert_close(d, model(y, x))


def test_monotone_in_noise(model, smooth):
    x = smooth(3, 48)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    d = torch.stack([model(x, (x + s * noise).clamp(0, 1)) for s in (0.02, 0.05, 0.1, 0.2, 0.4)])
    assert (d[1:] > d[:-1]).all(), d


def test_grey_repeated(model, smooth):
    g1, g2 = smooth(2, 48, c=1), smooth(2, 48, seed=3, c=1)
    torch.testing.assert_close(model(g1, g2), model(g1.repeat(1, 3, 1, 1), g2.repeat(1, 3, 1, 1)))


def test_gradients_reach_inputs(smooth):
    model = LPIPS("alex", pretrained=False)
    x = smooth(2, 64)
    y = (x + 0.2 * torch.randn(x.shape)).clamp(0, 1).requires_grad_()
    model(x, y).sum().backward()
    assert y.grad is not None and torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in model.parameters())


def test_exceptions():
    model = LPIPS("alex", pretrained=False)
    with pytest.raises(ValueError, match="differ in shape"):
        model(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 63))
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        model(torch.rand(1, 2, 64, 64), torch.rand(1, 2, 64, 64))
    with pytest.raises(ValueError, match="at least 31x31"):
        model(torch.rand(1, 3, 24, 24), torch.rand(1, 3, 24, 24))
    with pytest.raises(ValueError, match="'alex' or 'vgg'"):
        LPIPS("squeeze", pretrained=False)
    with pytest.raises(TypeError, match="uint8"):                       # 0-255 read as [0, 1] would be off by 255
        model(torch.zeros(1, 3, 64, 64, dtype=torch.uint8), torch.zeros(1, 3, 64, 64, dtype=torch.uint8))
    x, y = torch.rand(2, 1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(model(x.double(), y.double()), model(x, y))   # float64 is measured as float32


def test_function_caches_per_net_and_device(monkeypatch, smooth):
    built = []

    def fake(net):
        built.append(net)
        return LPIPS(net, pretrained=False)

    monkeypatch.setattr(lp, "_CACHE", {})
    monkeypatch.setattr(lp, "LPIPS", fake)
    x, y = smooth(2, 64), smooth(2, 64, seed=1)
    d1 = lp.lpips(x, y)
    d2 = lp.lpips(x, y)
    lp.lpips(x, y, net="vgg")
    assert built == ["alex", "vgg"] and torch.equal(d1, d2)
    assert set(lp._CACHE) == {("alex", "cpu"), ("vgg", "cpu")}


def test_function_refuses_0_255_floats(monkeypatch, smooth):
    monkeypatch.setattr(lp, "_CACHE", {("alex", "cpu"): LPIPS("alex", pretrained=False)})
    x, y = smooth(1, 64), smooth(1, 64, seed=1)
    with pytest.raises(ValueError, match="divide by 255"):
        lp.lpips(x * 255, y * 255)
    with pytest.raises(ValueError, match=r"give \(x \+ 1\) / 2"):
        lp.lpips(2 * x - 1, y)
    with pytest.raises(ValueError, match="NaN"):
        lp.lpips(x * float("nan"), y)
    assert lp.lpips(x, y.clamp(0, 1) * 1.2)[0] > 0          # a little beyond 1 is a generated image, measured


def test_images_enter_in_the_networks_range_and_features_are_unit_normalised(smooth):
    """[0, 1] images reach the network as ((2 x - 1) - shift) / scale, and each position's features are
    normalised over channels before the distance: features 7x larger give the same distance."""
    torch.manual_seed(0)
    m = LPIPS("alex", pretrained=False)
    seen = []

    class Spy(torch.nn.Module):
        def __init__(self, net, gain):
            super().__init__()
            self.net, self.gain = net, gain

        def forward(self, x):
            seen.append(x)
            return {k: self.gain * v for k, v in self.net(x).items()}
    x, y = smooth(2, 64, seed=0), smooth(2, 64, seed=1)
    d = m(x, y)
    m.net = Spy(m.net, 7.0)
    torch.testing.assert_close(m(x, y), d, rtol=1e-4, atol=1e-7)
    grey = torch.full((1, 3, 64, 64), 0.5)
    m(grey, grey)
    torch.testing.assert_close(seen[-1], ((0 - m.shift) / m.scale).expand(2, 3, 64, 64))
