"""Discriminators and adversarial losses: shapes, spectral normalisation, the gradient penalty,
the losses' known values, and that a discriminator step learns to tell real from fake."""
import pytest
import torch

from rl_i2it.ops.gan import KINDS, Discriminator, discriminator_loss, generator_loss, gradient_penalty


@pytest.mark.parametrize("shape,expect", [("global", (4, 1)), ("patch", (4, 1))])
def test_shapes(shape, expect):
    d = Discriminator(3, 32, (8, 16, 16, 16), "sngan", shape)
    out = d(torch.rand(4, 3, 32, 32))
    assert out.shape[0] == 4 and out.dim() == 2
    if shape == "patch":
        assert out.shape[1] > 1                  # one score per patch
    cond = Discriminator(3, 32, (8, 16), "vanilla", "global", cond_channels=1)
    assert cond(torch.rand(2, 3, 32, 32), torch.rand(2, 1, 32, 32)).shape == (2, 1)
    with pytest.raises(ValueError, match="condition"):
        cond(torch.rand(2, 3, 32, 32))


def test_spectral_norm_only_where_the_kind_says():
    def has_sn(kind):
        return any("parametrizations" in n for n, _ in Discriminator(3, 16, (8, 8), kind).named_parameters())
    assert has_sn("sngan") and has_sn("hinge")
    assert not has_sn("wgan-gp") and not has_sn("vanilla") and not has_sn("ragan")
    with pytest.raises(ValueError, match="unknown GAN kind"):
        Discriminator(3, 16, (8,), "lsgan")


def test_gradient_penalty_is_zero_for_a_unit_slope_critic():
    class Linear(torch.nn.Module):
        def forward(self, x, cond=None):
            w = torch.zeros_like(x[0]).flatten()
            w[0] = 1.0                                   # D(x) = x_0: |grad| = 1 everywhere
            return (x.flatten(1) * w).sum(1, keepdim=True)
    real, fake = torch.rand(5, 3, 4, 4), torch.rand(5, 3, 4, 4)
    assert gradient_penalty(Linear(), real, fake).item() == pytest.approx(0.0, abs=1e-10)

    class Double(Linear):
        def forward(self, x, cond=None):
            return 2 * super().forward(x)
    assert gradient_penalty(Double(), real, fake).item() == pytest.approx(1.0)


def test_known_values_for_an_undecided_discriminator():
    class Zero(torch.nn.Module):
        def forward(self, x, cond=None):
            return x.flatten(1)[:, :1] * 0
    real, fake = torch.rand(3, 3, 4, 4), torch.rand(3, 3, 4, 4)
    ln2 = torch.log(torch.tensor(2.0)).item()
    assert discriminator_loss("sngan", Zero(), real, fake)[0].item() == pytest.approx(2 * ln2)
    assert discriminator_loss("ragan", Zero(), real, fake)[0].item() == pytest.approx(2 * ln2)
    assert discriminator_loss("hinge", Zero(), real, fake)[0].item() == pytest.approx(2.0)
    class Half(torch.nn.Module):                  # a score of 0.5 on both: the signs of each term show
        def forward(self, x, cond=None):
            return x.flatten(1)[:, :1] * 0 + 0.5
    assert discriminator_loss("hinge", Half(), real, fake)[0].item() == pytest.approx(0.5 + 1.5)    # relu(1 - dr) + relu(1 + df)
    assert generator_loss("sngan", Zero(), real, fake).item() == pytest.approx(ln2)
    assert generator_loss("hinge", Zero(), real, fake).item() == pytest.approx(0.0)


@pytest.mark.parametrize("kind", KINDS)
def test_discriminator_learns_and_generator_gradient_reaches_only_the_fake(kind):
    torch.manual_seed(0)
    d = Discriminator(3, 16, (8, 16), kind)
    opt = torch.optim.Adam(d.parameters(), 2e-3, betas=(0.5, 0.999))
    real = 0.8 + 0.1 * torch.rand(16, 3, 16, 16)            # bright images vs dark ones
    fake = 0.2 * torch.rand(16, 3, 16, 16)
    first = None
    for _ in range(30):
        loss, dr, df = discriminator_loss(kind, d, real, fake)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    _, dr, df = discriminator_loss(kind, d, real, fake)
    assert dr.mean() > df.mean() and loss.item() < first
    x = fake.clone().requires_grad_(True)
    d.requires_grad_(False)
    generator_loss(kind, d, real, x).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    # the generator step moves the fake towards what the discriminator calls real
    with torch.no_grad():
        moved = d((x - 0.05 * x.grad.sign()).clamp(0, 1)).mean()
    assert moved > df.mean()
