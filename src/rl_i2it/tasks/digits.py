"""Digit transform (paper section 4.1): register one MNIST digit onto another, step by step.

State = [fixed, current moved]; action = a displacement field (pixels, at most ``max_step`` per
step); the next state warps the *original* moving digit with the accumulated field (Eq. 11-12),
so no interpolation blur piles up; reward = ``reward_scale`` x the step's Dice improvement (both
binarised at 0.5), plus ``bonus`` when Dice passes ``done_threshold`` (which ends the episode);
auxiliary loss = local NCC (window 9) of the fixed image and the current image warped by the
step's field + ``smooth_weight`` x the field's smoothness. Plan: a 1x7x7 map (49-d).

Transform types: ``inner`` (same class), ``cross`` (different classes), ``random`` (different or
same class, the moving digit scaled by 0.3-1.7 and rotated by 0-360 degrees) and ``continuous``
(trained as ``random``; evaluated on chains of digits, each result moved onto the next digit).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..core.buffer import Field
from ..core.policy import MetaPolicy
from ..errors import UserError
from ..nets import ConvCritic, UNetActor, UNetPlanner
from ..ops.losses import ncc_loss, smoothness
from ..ops.metrics import binary_dice
from ..ops.warp import compose, warp
from .base import Task

SIZE = 28
TRANSFORMS = ("inner", "cross", "random", "continuous")
SPLITS = ("train", "valid", "test")
VALID = 10000
"""The last 10 000 training digits (MNIST's usual validation set) are held out of training, for
choosing settings; the test split is only for the final table."""


@dataclass
class DigitsOptions:
    transform: str = "random"
    """inner | cross | random | continuous (see the module doc)."""
    scale_range: tuple = (0.3, 1.7)
    """Random scale of the moving digit (random and continuous transforms)."""
    rotation_range: tuple = (0.0, 360.0)
    """Random rotation in degrees of the moving digit (random and continuous transforms)."""
    widths: tuple = (16, 32, 64)
    """Channels of the planner's three levels (the actor mirrors them); the plan is 1x7x7."""
    critic_widths: tuple = (16, 32, 32)
    """Channels of the critic's conv encoder."""
    critic_hidden: int = 128
    """Width of the critic's MLP."""
    max_step: float = 2.0
    """Largest displacement of one step, in pixels (tanh bound)."""
    reward_scale: float = 10.0
    """Reward = reward_scale x (Dice after - Dice before)."""
    bonus: float = 1.0
    """Added to the reward when Dice passes done_threshold."""
    done_threshold: float = 0.96
    """Dice that ends an episode (> 1 never ends one early)."""
    ncc_window: int = 9
    """Window of the local NCC."""
    smooth_weight: float = 1.0
    """Weight of the field smoothness in the auxiliary loss."""
    smooth_penalty: str = "l2"
    """'l2' (diffusion) or 'l1' (total variation) on the field's gradient."""
    source: str = ""
    """MNIST: an IDX folder, a mnist.pkl.gz or an .npz; empty = the cache (fetched if absent)."""


def similarity_transform(images: torch.Tensor, scale: torch.Tensor, angle_deg: torch.Tensor) -> torch.Tensor:
    """Scale by ``scale`` and rotate by ``angle_deg`` about the centre; ``images [B, 1, H, W]``."""
    a = angle_deg * math.pi / 180
    cos, sin = torch.cos(a) / scale, torch.sin(a) / scale
    theta = torch.stack([torch.stack([cos, -sin, torch.zeros_like(a)], 1),
                         torch.stack([sin, cos, torch.zeros_like(a)], 1)], 1)
    grid = F.affine_grid(theta.to(images), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def random_transform(images: torch.Tensor, o: DigitsOptions, gen: torch.Generator,
                     transform: str | None = None) -> torch.Tensor:
    """Random scale and rotation (``o``'s ranges) for the random and continuous types; else identity."""
    if (transform or o.transform) not in ("random", "continuous"):
        return images
    n = images.shape[0]
    (s0, s1), (r0, r1) = o.scale_range, o.rotation_range
    scale = s0 + (s1 - s0) * torch.rand(n, generator=gen)
    angle = r0 + (r1 - r0) * torch.rand(n, generator=gen)
    return similarity_transform(images, scale.to(images.device), angle.to(images.device))


class DigitsEnv:
    """``n`` registration episodes at once, on the task's device."""

    def __init__(self, task: "DigitsTask", n: int, generator: torch.Generator, split: str = "train"):
        self.task, self.n, self.gen, self.split = task, n, generator, split
        o = task.options
        self.o = o
        if split in SPLITS:
            x, y = task.split_arrays(split)
            self.images, self.labels = x, y
            self.counts = counts = class_counts(y, split)
            self.by_class = torch.full((10, int(counts.max())), -1, dtype=torch.long)
            for c in range(10):
                idx = torch.nonzero(y == c).flatten()
                self.by_class[c, : len(idx)] = idx

    # -- pairs ------------------------------------------------------------------------------
    def _pick(self, labels: torch.Tensor) -> torch.Tensor:
        r = (torch.rand(len(labels), generator=self.gen) * self.counts[labels]).long()
        return self.by_class[labels, r]

    def sample_pair_indices(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        fixed = torch.randint(0, len(self.labels), (n,), generator=self.gen)
        fl = self.labels[fixed]
        if self.o.transform == "inner":
            ml = fl
        elif self.o.transform == "cross":
            ml = (fl + torch.randint(1, 10, (n,), generator=self.gen)) % 10
        else:
            ml = torch.randint(0, 10, (n,), generator=self.gen)
        return fixed, self._pick(ml)

    # -- episodes ---------------------------------------------------------------------------
    def reset(self) -> dict:
        fi, mi = self.sample_pair_indices(self.n)
        fixed = self.task.to_float(self.images[fi])
        moving = random_transform(self.task.to_float(self.images[mi]), self.o, self.gen)
        return self.start(fixed, moving)

    def start(self, fixed: torch.Tensor, moving: torch.Tensor) -> dict:
        """Begin episodes on given images ``[n, 1, 28, 28]`` in [0, 1]."""
        dev = self.task.device
        self.fixed, self.moving = fixed.to(dev), moving.to(dev)
        self.n = fixed.shape[0]
        self.field = torch.zeros(self.n, 2, *fixed.shape[2:], device=dev)
        self.current = self.moving
        self.score = binary_dice(self.current, self.fixed)
        return self.state

    @property
    def state(self) -> dict:
        return {"fixed": self.fixed, "current": self.current}

    def step(self, action: torch.Tensor):
        self.field = compose(self.field, action)
        self.current = warp(self.moving, self.field)
        score = binary_dice(self.current, self.fixed)
        reached = score > self.o.done_threshold
        reward = self.o.reward_scale * (score - self.score) + self.o.bonus * reached.float()
        self.score = score
        return self.state, reward, reached, {"score": score}


class DigitsTask(Task):
    score_name = "Dice"
    name = "digits"
    Options = DigitsOptions
    plan_shape = (1, 7, 7)
    action_shape = (2, SIZE, SIZE)

    def __init__(self, options=None, device="cpu", data=None):
        super().__init__(options, device)
        self._data = data

    def validate(self) -> None:
        o = self.options
        if o.transform not in TRANSFORMS:
            raise UserError(f"task_options.transform must be one of {', '.join(TRANSFORMS)}, got {o.transform!r}")
        if len(o.scale_range) != 2 or len(o.rotation_range) != 2:
            raise UserError("task_options.scale_range and rotation_range take two numbers: [lo, hi]")
        if not (0 < o.scale_range[0] <= o.scale_range[1]):
            raise UserError(f"task_options.scale_range must be 0 < lo <= hi, got {o.scale_range}")
        if len(o.widths) != 3:
            raise UserError("task_options.widths must have 3 entries (28 -> 14 -> 7)")
        if o.max_step <= 0 or o.ncc_window < 1 or o.ncc_window % 2 == 0:
            raise UserError("task_options.max_step must be > 0 and ncc_window a positive odd number")
        if o.smooth_penalty not in ("l1", "l2"):
            raise UserError("task_options.smooth_penalty must be 'l1' or 'l2'")
        if not 0 < o.done_threshold <= 1:
            raise UserError(f"task_options.done_threshold must be a Dice in (0, 1], got {o.done_threshold}")

    # -- data -------------------------------------------------------------------------------
    def load_training_data(self) -> None:
        self.data               # read once, kept

    def training_tensors(self) -> list[torch.Tensor]:
        return list(self.split_arrays("train"))

    @property
    def data(self):
        if self._data is None:
            from ..data.mnist import load_mnist
            self._data = load_mnist(self.options.source or None)
        return self._data

    def split_arrays(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``train`` (all training digits but the last ``VALID``, or a sixth of a small set),
        ``valid`` (those) or ``test``: uint8 ``[N, 28, 28]`` and labels."""
        if split not in SPLITS:
            raise UserError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        d = self.data
        if split == "test":
            x, y = d.test_x, d.test_y
        else:
            n_valid = min(VALID, len(d.train_x) // 6)
            part = slice(None, -n_valid) if split == "train" else slice(-n_valid, None)
            x, y = d.train_x[part], d.train_y[part]
        if x.shape[1:] != (SIZE, SIZE):
            raise UserError(f"digits must be {SIZE}x{SIZE}, got {x.shape[1:]}")
        return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.asarray(y, np.int64))

    def to_float(self, images_u8: torch.Tensor) -> torch.Tensor:
        return images_u8.to(self.device).float().div_(255).unsqueeze(1)

    def check_image(self, img: torch.Tensor, what: str) -> tuple[torch.Tensor, str | None]:
        """A user's image ``[1, H, W]`` in [0, 1], which must be 28x28 grey, as MNIST draws digits (light
        on black), and a note when it was turned so: a digit drawn dark on a light page (its border's
        median over 0.5) is inverted, or the model would register the page."""
        if img.shape[-2:] != (SIZE, SIZE):
            raise UserError(f"{what} is {img.shape[-1]}x{img.shape[-2]}: this model registers {SIZE}x{SIZE} grey digits")
        border = torch.cat([img[..., 0, :], img[..., -1, :], img[..., 1:-1, 0], img[..., 1:-1, -1]], -1)
        if border.median() > 0.5:
            return 1 - img, f"{what}: a dark digit on a light background, inverted (MNIST's digits are light on black; so are the outputs)"
        return img, None

    # -- the core's interface ---------------------------------------------------------------
    def build_policy(self) -> MetaPolicy:
        w = tuple(self.options.widths)
        return MetaPolicy(UNetPlanner(2, w, plan_channels=1),
                          UNetActor(2, 2, w, plan_channels=1, out_scale=self.options.max_step),
                          self.plan_shape)

    def build_critic(self, critic_on: str = "plan"):
        z = self.plan_shape if critic_on == "plan" else self.action_shape
        return ConvCritic(2, (SIZE, SIZE), z, tuple(self.options.critic_widths), self.options.critic_hidden)

    def state_fields(self) -> dict[str, Field]:
        return {"fixed": Field((1, SIZE, SIZE), "uint8", static=True),
                "current": Field((1, SIZE, SIZE), "uint8")}

    def make_env(self, n: int, generator: torch.Generator, split: str = "train") -> DigitsEnv:
        return DigitsEnv(self, n, generator, split)

    def observe(self, state: dict) -> torch.Tensor:
        return torch.cat([state["fixed"], state["current"]], 1)

    def auxiliary_loss(self, state: dict, action: torch.Tensor, policy=None):
        o = self.options
        moved = warp(state["current"], action)
        sim = ncc_loss(state["fixed"], moved, o.ncc_window)
        smooth = smoothness(action, o.smooth_penalty)
        return sim + o.smooth_weight * smooth, {"ncc": -sim.item(), "smooth": smooth.item()}


# -- evaluation: the paper's protocol -------------------------------------------------------------
def class_counts(labels: torch.Tensor, split: str) -> torch.Tensor:
    """Digits of each class 0..9 in a split's ``labels`` ``[10]``; a class missing is a ``UserError``
    (episodes draw a fixed digit of each class, the protocol takes an atlas of each)."""
    counts = torch.bincount(labels, minlength=10)
    if (counts == 0).any():
        raise UserError(f"digits {split} split lacks classes {torch.nonzero(counts == 0).flatten().tolist()}")
    return counts


def atlas_indices(labels: torch.Tensor, split: str = "test") -> torch.Tensor:
    """The first image of each class 0..9 of a split's ``labels``: the ten atlases."""
    class_counts(labels, split)
    return torch.stack([torch.nonzero(labels == c).flatten()[0] for c in range(10)])


def eval_pairs(task: DigitsTask, n_moving: int = 1000, seed: int = 1234, transform: str | None = None,
               split: str = "test"):
    """The protocol's pairs: ``(fixed, moving, fixed_class, moving_class)``, ``[P, 1, 28, 28]`` each.

    Atlases = one digit per class of ``split``; moving = ``n_moving`` others, transformed as
    ``transform`` says (random: scaled and rotated), seeded by ``seed``. ``random`` and
    ``continuous`` pair every moving digit with every atlas; ``inner`` with its own class's atlas;
    ``cross`` with the nine others.
    """
    transform = transform or task.options.transform
    if transform not in TRANSFORMS:
        raise UserError(f"transform must be one of {', '.join(TRANSFORMS)}, got {transform!r}")
    x, y = task.split_arrays(split)
    atlas = atlas_indices(y, split)
    gen = torch.Generator().manual_seed(seed)
    pool = torch.ones(len(y), dtype=torch.bool)
    pool[atlas] = False
    candidates = torch.nonzero(pool).flatten()
    if not 1 <= n_moving <= len(candidates):
        raise UserError(f"--n-moving must be between 1 and {len(candidates)} "
                        f"(the {split} split less its 10 atlases), got {n_moving}")
    moving_idx = candidates[torch.randperm(len(candidates), generator=gen)[:n_moving]]
    moving = random_transform(task.to_float(x[moving_idx]), task.options, gen, transform)
    mc = y[moving_idx]
    fc_all = torch.arange(10).repeat(n_moving)               # pair p: moving p // 10, atlas p % 10
    mc_all = mc.repeat_interleave(10)
    keep = {"inner": fc_all == mc_all, "cross": fc_all != mc_all}.get(transform, torch.ones_like(fc_all, dtype=torch.bool))
    mov = moving.repeat_interleave(10, 0)[keep.to(moving.device)]
    fix = task.to_float(x[atlas])[fc_all[keep]]
    return fix, mov, fc_all[keep], mc_all[keep]


@torch.no_grad()
def evaluate(task: DigitsTask, policy, steps=(1, 5, 10, 20), n_moving: int = 1000, seed: int = 1234,
             transform: str | None = None, batch: int = 2000, progress: bool = False,
             split: str = "test", pairs: tuple | None = None) -> dict:
    """Dice (binarised at 0.5) per atlas class and mean after each of ``steps``; ``policy=None``
    is the identity. ``pairs``: ``eval_pairs``' output to score on (another run's: methods
    compared on one set of pairs), else ``eval_pairs(task, n_moving, seed, transform, split)``.
    Returns ``{"dice": {T: {"per_class": [10], "mean", "std"}}, "pairs": P,
    "sec_per_pair_step": s}`` (T = 0 is the unregistered pair)."""
    import time
    from ..core.rollout import check_step_counts, rollout
    steps = check_step_counts(steps)
    fix, mov, fc, _ = pairs if pairs is not None else eval_pairs(task, n_moving, seed, transform, split)
    scores = {0: []} | {s: [] for s in steps}
    chunks = range(0, len(fix), batch)
    if progress:
        from ..data.cache import progress as bar
        chunks = bar(chunks, f"evaluating {len(fix)} pairs, {batch} at a time", "batch")
    elapsed = 0.0
    for i in chunks:
        env = task.make_env(0, torch.Generator(), "eval")
        state = env.start(fix[i: i + batch], mov[i: i + batch])
        scores[0].append(env.score.cpu())
        if policy is None:
            for s in steps:
                scores[s].append(env.score.cpu())
            continue
        t0 = time.perf_counter()
        for t, state, _, info in rollout(policy, task, env, state, max(steps)):
            if t in scores:
                scores[t].append(info["score"].cpu())
        elapsed += time.perf_counter() - t0
    out = {}
    for s, parts in scores.items():
        d = torch.cat(parts)
        per_class = [float(d[fc == c].mean()) if (fc == c).any() else float("nan") for c in range(10)]
        out[s] = {"per_class": per_class, "mean": float(d.mean()), "std": float(d.std())}
    return {"dice": out, "pairs": len(fix),
            "sec_per_pair_step": elapsed / max(1, len(fix) * max(steps)) if policy is not None else 0.0}


@torch.no_grad()
def register(task: DigitsTask, policy, fixed: torch.Tensor, moving: torch.Tensor, steps: int,
             sample: bool = False) -> dict:
    """Register ``moving`` onto ``fixed`` (``[B, 1, 28, 28]``) in ``steps`` steps.

    Returns ``{"steps": [B,1,28,28] per step, "field": [B,2,28,28] accumulated, "dice": [B] (of the
    last step's image and ``fixed``), "dice_before": [B] (of ``moving`` and ``fixed``)}``.
    """
    from ..core.rollout import check_steps, rollout
    from ..data.images import as_unit_pairs
    check_steps(steps)
    fixed, moving = as_unit_pairs(fixed, moving, ("fixed", "moving"), 1, SIZE)
    env = task.make_env(0, torch.Generator(), "eval")
    state = env.start(fixed.to(task.device), moving.to(task.device))
    before = env.score.cpu()
    images = [s["current"].cpu() for _, s, _, _ in rollout(policy, task, env, state, steps, sample)]
    return {"steps": images, "field": env.field.cpu(), "dice": env.score.cpu(), "dice_before": before}


def chain_grid(task: DigitsTask, policy, path, steps: int = 10, length: int = 5, rows: int = 4,
               seed: int = 99, split: str = "test") -> float:
    """Continuous transform: chains of random scaled/rotated digits of ``split``; each result is
    moved onto the next digit. Saves the chains (digits above, results below) and returns the mean
    Dice of the links."""
    from ..viz import image_grid
    x, _ = task.split_arrays(split)
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, len(x), (rows * length,), generator=gen)
    digits = random_transform(task.to_float(x[idx]), task.options, gen, "continuous").view(rows, length, 1, SIZE, SIZE)
    current, out_rows, dices = digits[:, 0], [], []
    results = [current.cpu()]
    for k in range(1, length):
        r = register(task, policy, digits[:, k], current, steps)
        current = r["steps"][-1].to(task.device)
        results.append(current.cpu())
        dices.append(r["dice"])
    for i in range(rows):
        out_rows.append([digits[i, k].cpu() for k in range(length)])
        out_rows.append([results[k][i] for k in range(length)])
    image_grid(out_rows, path, headers=["start"] + [f"-> {k}" for k in range(1, length)],
               row_labels=[("target" if j % 2 == 0 else "ours") for j in range(2 * rows)])
    return float(torch.cat(dices).mean())


def step_grid(task: DigitsTask, policy, path, steps: int = 10, n: int = 8, seed: int = 7,
              transform: str | None = None, split: str = "test", pairs_of: DigitsTask | None = None) -> None:
    """Rows of (moving, step 1..T, fixed) for ``n`` protocol pairs of ``split``, drawn by the task
    ``pairs_of`` (default ``task``: another run's, to show methods on the same pairs)."""
    from ..viz import image_grid
    fix, mov, _, _ = eval_pairs(pairs_of or task, n_moving=n, seed=seed, transform=transform, split=split)
    pick = torch.arange(n) * (len(fix) // n) + torch.arange(n) % max(1, len(fix) // n)
    fix, mov = fix[pick], mov[pick]
    r = register(task, policy, fix, mov, steps)
    rows = [[mov[i].cpu()] + [s[i] for s in r["steps"]] + [fix[i].cpu()] for i in range(n)]
    image_grid(rows, path, headers=["moving"] + [str(t) for t in range(1, steps + 1)] + ["fixed"])
