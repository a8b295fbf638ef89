"""Meta policy: state -> stochastic low-dimensional plan (planner) -> high-dimensional action (actor).

The planner returns the Gaussian's mean and log-std (of any shape: a 49-vector, a 1x64x64 map)
plus skip features; the plan is ``tanh(mu + std * eps)``, drawn with the reparameterisation
trick so that the critic's gradient reaches the planner, and its log-probability carries the
tanh correction. The actor decodes (plan, skips) into the action.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class PolicyOutput:
    plan: torch.Tensor
    """``[B, *plan_shape]`` in (-1, 1)."""
    log_prob: torch.Tensor
    """``[B]``, log density of ``plan`` (zeros for the mean plan)."""
    action: torch.Tensor | None
    """``[B, *action_shape]``: what the environment applies (None when not decoded)."""


def squashed_gaussian(mu: torch.Tensor, log_std: torch.Tensor, sample: bool = True
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """``tanh`` of a reparameterised Gaussian draw and its log-probability summed per sample."""
    if not sample:
        return torch.tanh(mu), mu.new_zeros(mu.shape[0])
    std = log_std.exp()
    u = mu + std * torch.randn_like(mu)
    log_prob = (-0.5 * ((u - mu) / std) ** 2 - log_std - 0.5 * math.log(2 * math.pi))
    # log |d tanh(u) / du| = log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)), stable for large |u|
    log_prob = log_prob - 2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))
    return torch.tanh(u), log_prob.flatten(1).sum(1)


class MetaPolicy(nn.Module):
    """Planner + actor.

    Args:
        planner: ``obs -> (mu, log_std, skips)``.
        actor: ``(plan, skips) -> action``.
        plan_shape: the shape of one plan, for checks and the entropy target.
        log_std_bounds: the planner's log-std is squashed into this range.
        any_size: the planner is fully convolutional: the plan is a map whose spatial size
            follows the image's, so only its channels are checked (``plan_shape`` is then the
            plan at the training size, which sets the entropy target).
    """

    def __init__(self, planner: nn.Module, actor: nn.Module, plan_shape: tuple[int, ...],
                 log_std_bounds: tuple[float, float] = (-5.0, 1.0), any_size: bool = False):
        super().__init__()
        self.planner, self.actor = planner, actor
        self.plan_shape = tuple(plan_shape)
        self.log_std_bounds = log_std_bounds
        self.any_size = any_size

    @property
    def plan_dim(self) -> int:
        return math.prod(self.plan_shape)

    def plan_distribution(self, obs: torch.Tensor):
        mu, log_std, skips = self.planner(obs)
        got = tuple(mu.shape[1:2] if self.any_size else mu.shape[1:])
        if got != (self.plan_shape[:1] if self.any_size else self.plan_shape):
            raise RuntimeError(f"planner gave a plan of shape {tuple(mu.shape[1:])}, expected {self.plan_shape}")
        lo, hi = self.log_std_bounds
        log_std = lo + 0.5 * (hi - lo) * (torch.tanh(log_std) + 1)
        return mu, log_std, skips

    def forward(self, obs: torch.Tensor, sample: bool = True, decode: bool = True) -> PolicyOutput:
        """One decision. ``sample=False`` takes the mean plan (inference); ``decode=False``
        skips the actor (the action is None: a critic of plans needs no more)."""
        mu, log_std, skips = self.plan_distribution(obs)
        plan, log_prob = squashed_gaussian(mu, log_std, sample)
        return PolicyOutput(plan, log_prob, self.actor(plan, skips) if decode else None)
