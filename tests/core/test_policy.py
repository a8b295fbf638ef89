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
