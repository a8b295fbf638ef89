"""Twin soft Q-functions on (observation, plan) and their EMA target."""
from __future__ import annotations

import copy
from typing import Callable

import torch
import torch.nn as nn


class TwinCritic(nn.Module):
    """Two independent Q networks built by ``make()``; each maps ``(obs, z) -> [B]``."""

    def __init__(self, make: Callable[[], nn.Module]):
        super().__init__()
        self.q1, self.q2 = make(), make()

    def forward(self, obs: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.q1(obs, z).flatten(), self.q2(obs, z).flatten()

    def min_q(self, obs: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return torch.minimum(*self(obs, z))


def make_target(critic: nn.Module) -> nn.Module:
    """A frozen copy updated only by ``soft_update``."""
    target = copy.deepcopy(critic)
    for p in target.parameters():
        p.requires_grad_(False)
    return target.eval()


@torch.no_grad()
def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """``target <- (1 - tau) target + tau source`` for every parameter and buffer."""
    torch._foreach_lerp_(list(target.parameters()), list(source.parameters()), tau)
    for t, s in zip(target.buffers(), source.buffers()):
        t.copy_(s)
