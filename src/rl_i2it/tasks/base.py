"""What a task supplies to the task-agnostic core (see DESIGN.md section 1)."""
from __future__ import annotations

import dataclasses
import math
from typing import Protocol

import torch
import torch.nn as nn

from ..config import fill
from ..core.buffer import Field
from ..core.policy import MetaPolicy
from ..errors import UserError


class Env(Protocol):
    """A batch of ``n`` episodes on the training device."""

    def reset(self) -> dict[str, torch.Tensor]:
        """Start ``n`` new episodes; return the state (a dict of ``[n, ...]`` tensors)."""

    def step(self, action: torch.Tensor) -> tuple[dict, torch.Tensor, torch.Tensor, dict]:
        """Apply ``action [n, ...]``: ``(next_state, reward [n], done [n] bool, info)``;
        ``info["score"] [n]`` is the task's quality measure after the step."""


def check_sizes_and_weights(options) -> None:
    """Every task's layer sizes (``*widths``, ``*hidden``, ``*channels``) are >= 1, its loss
    weights (``*_weight``) >= 0, its learning rates (``lr*``), ``reward_scale`` and limits
    (``*_limit``) > 0 and every number finite (a limit may be inf: no limit): a width of 0 failed deep in torch, a negative
    adversarial weight trained the generator for the discriminator, a NaN limit turned its check off."""
    for f in dataclasses.fields(options) if dataclasses.is_dataclass(options) else ():
        v = getattr(options, f.name)
        if isinstance(v, float) and not math.isfinite(v) and not (f.name.endswith("_limit") and v == math.inf):
            raise UserError(f"bad config: task_options.{f.name} must be a finite number, got {v}")   # (a limit: inf = off)
        if (f.name.startswith("lr") or f.name.endswith("_limit") or f.name == "reward_scale") and \
                isinstance(v, (int, float)) and not v > 0:
            raise UserError(f"bad config: task_options.{f.name} must be > 0, got {v}")
        if f.name.endswith(("widths", "hidden", "channels")):
            values = list(v) if isinstance(v, (list, tuple)) else [v]
            if not values or any(not isinstance(x, int) or x < 1 for x in values):
                raise UserError(f"bad config: task_options.{f.name} must be >= 1, got {v}")
        elif f.name.endswith("_weight") and isinstance(v, (int, float)) and not v >= 0:
            raise UserError(f"bad config: task_options.{f.name} must be >= 0, got {v}")


class Task:
    """Base class of the applications. Subclasses set ``name`` and ``Options`` (a dataclass)."""

    name = "task"
    Options: type = object
    score_name = "episode score"
    """What ``info["score"]`` measures, for the training curves (``curves.png``)."""
    rewards_used: bool = True
    """False while training without RL (the trainer sets it): a task may then skip rewards that
    cost much to compute (the style task's VGG pass per step)."""

    def __init__(self, options: dict | object | None = None, device: torch.device | str = "cpu"):
        if options is None or isinstance(options, dict):
            options = fill(self.Options, options or {}, "task_options.")
        self.options = options
        self.device = torch.device(device)
        check_sizes_and_weights(options)
        self.validate()

    def validate(self) -> None:
        """Raise ``UserError`` for inconsistent options (beyond ``check_sizes_and_weights``)."""

    def load_training_data(self) -> None:
        """Read what training uses (a ``UserError`` for bad data options), so that the trainer can
        fail before it writes anything."""

    def training_tensors(self) -> list[torch.Tensor]:
        """The data training's replay rows point into (they hold its indices, not its images): a
        resume checks that they are what the run was trained on (``checkpoint.data_fingerprint``)."""
        return []

    def init_differences(self, other) -> list[str]:
        """What in ``other`` (the task options of a run this one starts from, ``train.init``) makes
        its weights a start for another model than this one, in words (none: nothing to say)."""
        return []

    def check_critic_pool(self) -> None:
        """The critic's ``critic_pool`` must divide the image side ``size`` (tasks that have both)."""
        o = self.options
        if o.critic_pool < 1 or o.size % o.critic_pool:
            raise UserError(f"task_options.critic_pool must divide the size {o.size}")

    # --- what the core needs ---------------------------------------------------------------
    plan_shape: tuple[int, ...]
    action_shape: tuple[int, ...]

    def build_policy(self) -> MetaPolicy: ...

    def build_critic(self, critic_on: str) -> nn.Module:
        """One Q network ``(obs, z) -> [B]``; ``z`` is the plan, or the action when ``critic_on='action'``."""

    def state_fields(self) -> dict[str, Field]: ...

    def z_field(self, critic_on: str) -> Field:
        return Field(self.plan_shape if critic_on == "plan" else self.action_shape, "float16")

    def make_env(self, n: int, generator: torch.Generator, split: str = "train") -> Env: ...

    def observe(self, state: dict[str, torch.Tensor]) -> torch.Tensor: ...

    def critic_observe(self, state: dict[str, torch.Tensor], obs):
        """What the critic sees, given ``obs = observe(state)``: that observation, unless a task
        adds what only training knows (an asymmetric critic: the inpainting target, say); the
        policy never sees it."""
        return obs

    def auxiliary_loss(self, state: dict, action: torch.Tensor, policy=None) -> tuple[torch.Tensor, dict[str, float]]:
        """The auxiliary loss of the policy's ``action`` in ``state`` (a scalar) and scalars to log;
        ``policy`` (the one being trained) for terms that run it again (the style task's temporal
        consistency)."""

    # --- optional: learners of the task's own (a discriminator) ---------------------------------
    def update_learners(self, state: dict, action: torch.Tensor) -> dict[str, float]:
        """Called after each policy update with the batch's states and the policy's detached
        actions: train what the auxiliary loss uses (a GAN's discriminator); return scalars to log."""
        return {}

    def learner_state(self) -> dict:
        """What ``update_learners`` trains, for checkpoints (empty when nothing)."""
        return {}

    def load_learner_state(self, sd: dict) -> None:
        """Restore ``learner_state()``; ``{}``: none trained yet (a fresh run's, also in a task
        object that trained another run before)."""
