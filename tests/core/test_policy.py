import math

import pytest
import torch
from torch.distributions import Normal, TransformedDistribution
from torch.distributions.transforms import TanhTransform

from rl_i2it.core.policy import MetaPolicy, squashed_gaussian
from rl_i2it.nets import ConvCritic, UNetActor, UNetPlanner


def test_log_prob_matches_torch_tanh_normal():
    torch.manual_seed(0)
    mu, log_std = torch.randn(5, 1, 3, 3), torch.randn(5, 1, 3, 3) * 0.5
    plan, lp = squashed_gaussian(mu, log_std)
    ref = TransformedDistribution(Normal(mu, log_std.exp()), [TanhTransform()])
    expected = ref.log_prob(plan.double().clamp(-1 + 1e-12, 1 - 1e-12).float()).flatten(1).sum(1)
    torch.testing.assert_close(lp, expected, atol=2e-3, rtol=1e-4)
    assert (plan.abs() < 1).all()


def test_mean_plan_is_deterministic():
    mu = torch.randn(2, 4)
    p1, lp = squashed_gaussian(mu, torch.zeros(2, 4), sample=False)
    torch.testing.assert_close(p1, torch.tanh(mu))
    assert (lp == 0).all()


def make_policy():
    return MetaPolicy(UNetPlanner(2, (8, 16, 16)), UNetActor(2, 2, (8, 16, 16), out_scale=2.0), (1, 7, 7))


def test_shapes_and_bounds():
    pol = make_policy()
    out = pol(torch.rand(3, 2, 28, 28))
    assert out.plan.shape == (3, 1, 7, 7) and out.log_prob.shape == (3,)
    assert out.action.shape == (3, 2, 28, 28) and out.action.abs().max() <= 2.0
    assert pol.plan_dim == 49


def test_reparameterised_plan_carries_critic_gradient_to_planner():
    """The authors' bug: a plan drawn with sample() gives the planner no gradient from Q."""
    torch.manual_seed(0)
    pol = make_policy()
    critic = ConvCritic(2, (28, 28), (1, 7, 7), (8, 8, 8), 16)
    obs = torch.rand(4, 2, 28, 28)
    q = critic(obs, pol(obs).plan).sum()
    q.backward()
    g = sum(p.grad.abs().sum() for p in pol.planner.parameters() if p.grad is not None)
    assert g > 0


def test_wrong_plan_shape_is_caught():
    pol = MetaPolicy(UNetPlanner(2, (8, 16, 16)), UNetActor(2, 2, (8, 16, 16)), (1, 5, 5))
    with pytest.raises(RuntimeError, match="plan of shape"):
        pol(torch.rand(1, 2, 28, 28))


def test_log_std_bounded():
    pol = make_policy()
    _, log_std, _ = pol.plan_distribution(torch.rand(2, 2, 28, 28) * 100)
    lo, hi = pol.log_std_bounds
    assert log_std.min() >= lo and log_std.max() <= hi


def test_critic_on_action_concatenates_channels():
    c = ConvCritic(2, (28, 28), (2, 28, 28), (8, 8, 8), 16)
    assert c.z_is_map and c(torch.rand(3, 2, 28, 28), torch.rand(3, 2, 28, 28)).shape == (3,)
    assert math.prod(c.grid) <= 16



@pytest.mark.parametrize("nd", [2, 3])
def test_actor_at_half_size_is_upsampled_and_cheaper(nd):
    """``out_level=1``: the field is decoded at half size (skipping the full-size level), bounded,
    then linearly upsampled to full size."""
    import torch.nn.functional as F
    torch.manual_seed(0)
    size = (16,) * nd
    full = UNetActor(2, nd, (4, 8, 8), nd=nd, out_scale=2.0)
    half = UNetActor(2, nd, (4, 8, 8), nd=nd, out_scale=2.0, out_level=1)
    torch.nn.init.normal_(half.out.weight, std=0.5)
    mu, _, skips = UNetPlanner(2, (4, 8, 8), nd=nd)(torch.rand(2, 2, *size))
    a = half(mu, skips)
    assert a.shape == (2, nd, *size) and 0.1 < a.abs().max() <= 2.0
    assert sum(p.numel() for p in half.parameters()) < sum(p.numel() for p in full.parameters())
    x = half.inp(mu)                               # the decoder by hand, down to half size
    x = half.ups[0](torch.cat([F.interpolate(x, size=skips[2].shape[2:]), skips[2]], 1))
    coarse = 2.0 * torch.tanh(half.out(x) / 2.0)
    assert coarse.shape[2:] == (8,) * nd
    expected = F.interpolate(coarse, size=size, mode="bilinear" if nd == 2 else "trilinear", align_corners=True)
    torch.testing.assert_close(a, expected)
    with pytest.raises(ValueError, match="out_level"):
        UNetActor(2, nd, (4, 8, 8), nd=nd, out_level=2)


@pytest.mark.parametrize("nd", [2, 3])
def test_upsample_conv_is_the_conv_of_the_upsampled_concatenation(nd):
    """The decoder's transposed-convolution shortcut (2D) gives the numbers (and gradients) of
    upsample -> concatenate -> conv, at every border; odd sizes and 3D take the plain path."""
    import torch.nn.functional as F
    from rl_i2it.nets.unet import upsample_conv
    torch.manual_seed(0)
    conv = (torch.nn.Conv2d if nd == 2 else torch.nn.Conv3d)(7, 5, 3, padding=1)
    for x_size, skip_size in ((5, 10), (4, 7)):          # exact x2 (shortcut) and not (fallback)
        x = torch.randn(2, 3, *[x_size] * nd, requires_grad=True)
        skip = torch.randn(2, 4, *[skip_size] * nd, requires_grad=True)
        ref = conv(torch.cat([F.interpolate(x, size=skip.shape[2:], mode="nearest"), skip], 1))
        got = upsample_conv(conv, x, skip)
        torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)
        for a, b in zip(torch.autograd.grad(ref.square().sum(), [x, skip, conv.weight, conv.bias]),
                        torch.autograd.grad(got.square().sum(), [x, skip, conv.weight, conv.bias])):
            torch.testing.assert_close(b, a, atol=2e-4, rtol=1e-4)


def test_conv3d_takes_onednn_for_one_volume_with_the_same_numbers():
    """nets.unet.Conv3d on a batch of one: the numbers and gradients of nn.Conv3d (also with
    channels-last weights, as fast_layout stores them), and no slow native kernel in a 3D
    planner-actor's forward (PyTorch's own choice for such inputs)."""
    from torch.profiler import profile
    from rl_i2it.nets import fast_layout
    from rl_i2it.nets.unet import Conv3d
    torch.manual_seed(0)
    for stride, layout in ((1, False), (2, False), (1, True)):
        ours = Conv3d(5, 8, 3, stride=stride, padding=1)
        stock = torch.nn.Conv3d(5, 8, 3, stride=stride, padding=1)
        stock.load_state_dict(ours.state_dict())
        if layout:
            fast_layout(ours), fast_layout(stock)
        x = torch.randn(1, 5, 12, 12, 12, requires_grad=True)
        a, b = ours(x), stock(x)
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
        for ga, gb in zip(torch.autograd.grad(a.square().sum(), [x, ours.weight, ours.bias]),
                          torch.autograd.grad(b.square().sum(), [x, stock.weight, stock.bias])):
            torch.testing.assert_close(ga, gb, atol=1e-3, rtol=1e-4)
    planner, actor = UNetPlanner(5, (8, 16, 16), nd=3), UNetActor(5, 3, (8, 16, 16), nd=3, out_level=1)
    policy = fast_layout(MetaPolicy(planner, actor, (1, 4, 4, 4)))
    with torch.no_grad(), profile() as prof:
        policy(torch.rand(1, 5, 16, 16, 16), sample=False)
    kernels = {e.key for e in prof.key_averages()}
    assert "aten::slow_conv3d_forward" not in kernels and "aten::mkldnn_convolution" in kernels, kernels


def test_fast_layout_is_channels_last_on_the_cpu_only():
    """On the CPU conv weights go channels-last (faster there); elsewhere (a GPU; here the meta
    device stands in) they keep PyTorch's default layout, which was as fast or faster on a GPU."""
    from rl_i2it.nets import fast_layout
    for nd, fmt in ((2, torch.channels_last), (3, torch.channels_last_3d)):
        cpu = fast_layout(UNetPlanner(2, (4, 8), nd=nd))
        other = fast_layout(UNetPlanner(2, (4, 8), nd=nd).to("meta"))
        w_cpu, w_other = cpu.levels[0][0].weight, other.levels[0][0].weight
        assert w_cpu.is_contiguous(memory_format=fmt) and not w_cpu.is_contiguous()
        assert w_other.is_contiguous() and not w_other.is_contiguous(memory_format=fmt)


def test_the_policy_without_sampling_takes_the_mean_plan():
    """``policy(obs, sample=False)`` (inference, the temporal term) decodes tanh(mu): the same every call."""
    torch.manual_seed(0)
    policy = make_policy()
    obs = torch.rand(3, 2, 28, 28)
    a, b = policy(obs, sample=False), policy(obs, sample=False)
    mu, _, _ = policy.plan_distribution(obs)
    assert torch.equal(a.plan, b.plan) and torch.equal(a.action, b.action)
    torch.testing.assert_close(a.plan, torch.tanh(mu))
    assert not torch.equal(policy(obs).plan, a.plan)                  # sampling draws around it
