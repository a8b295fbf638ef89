"""Running a policy for T steps (inference and evaluation)."""
from __future__ import annotations

import operator
from typing import Iterator

import torch

from .policy import MetaPolicy


def check_count(value, name: str) -> int:
    """A count argument (``steps``, ``batch``): an integer >= 1 (numpy's and torch's too), or a
    ``ValueError`` naming it."""
    try:
        n = operator.index(value) if not isinstance(value, bool) else None
    except TypeError:
        n = None
    if n is None or n < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return n


def check_steps(steps) -> int:
    """``steps`` of an inference function (see ``check_count``)."""
    return check_count(steps, "steps")


def check_step_counts(steps) -> list[int]:
    """The step counts an evaluation reports, sorted: one int or several (each as ``check_steps``)."""
    try:
        counts = sorted({check_steps(t) for t in steps})
    except TypeError:                                  # one step count, not a list of them
        counts = [check_steps(steps)]
    if not counts:
        raise ValueError("steps: give at least one step count, e.g. (1, 5, 10)")
    return counts


@torch.no_grad()
def rollout(policy: MetaPolicy, task, env, state: dict, steps: int, sample: bool = False
            ) -> Iterator[tuple[int, dict, torch.Tensor, dict]]:
    """Yield ``(t, state_t, action_t, info_t)`` for ``t = 1..steps``; the mean plan unless ``sample``."""
    was_training = policy.training
    policy.eval()
    try:
        for t in range(1, steps + 1):
            action = policy(task.observe(state), sample=sample).action
            state, _, _, info = env.step(action)
            yield t, state, action, info
    finally:
        policy.train(was_training)
