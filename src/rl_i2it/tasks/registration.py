"""Deformable medical image registration, 2D and 3D from the same code (paper section 5.1).

State = [fixed, current] where current = the *initial* moving image warped by the accumulated
field (Eq. 11-12: each step's field is composed onto it, so no interpolation blur piles up);
with ``force`` the observation adds where the local NCC pulls the current image
(``ops.losses.ncc_force``, recomputed from the state, never stored);
action = one step's displacement field (voxels, ``tanh``-bounded by ``max_step``), or with
``diffeomorphic`` a stationary velocity integrated by scaling and squaring (each step a
diffeomorphism in the continuum; on the voxel grid a step folds no voxel for smooth velocities,
and the linear resampling of their composition can still fold a few: ~1 % after 10 large random
steps against ~10 % without); reward = ``reward_scale`` x the step's improvement of the
mean Dice over K-means (k=3) pseudo-labels of the fixed and moving images, computed at reset
without any ground truth (paper Fig. 22), or of the given labels with ``reward = "labels"``;
auxiliary loss = local NCC + ``smooth_weight`` x smoothness of the step field, or with
``smooth_on = "total"`` of the accumulated field after the step (the one-step network's objective
at every step: a step that roughens an aligned pair's field pays for it).

The replay stores the fixed image by its index in the training pair set (``pair``), not the image.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from ..core.buffer import Field
from ..core.policy import MetaPolicy
from ..errors import UserError
from ..nets import ConvCritic, UNetActor, UNetPlanner
from ..ops.losses import local_ncc, ncc_force, ncc_loss, smoothness
from ..ops.metrics import jacobian_stats, kmeans_labels, mean_dice
from ..ops.warp import compose, integrate_velocity, warp
from .base import Task


@dataclass
class RegistrationOptions:
    pairs: str = "brain2d"
    """Training pairs: brain2d (synthetic ch2 slices + AAL), liver3d (synthetic CT), manifest:PATH
    (your CSV; with a split column, its train rows train and its valid/test rows evaluate)."""
    by_voxel: bool = False
    """manifest:PATH pairs voxel to voxel, ignoring their headers (as ``register --by-voxel``)."""
    dims: int = 2
    """2 (slices) or 3 (volumes); must match the pairs."""
    size: int = 128
    """Voxels per axis of the model's grid (images are resampled to it)."""
    n_pairs: int = 256
    """Synthetic training pairs generated (seeded, cached)."""
    reward: str = "kmeans"
    """'kmeans': Dice of K-means pseudo-labels (no ground truth); 'labels': the pairs' labels."""
    kmeans_k: int = 3
    """Classes of the K-means pseudo-labels (the darkest is background)."""
    widths: tuple = (16, 32, 32, 32, 32)
    """Planner channels per level (each halves the grid; the plan is 1 x (size / 2**(L-1))^dims)."""
    critic_widths: tuple = (16, 32, 32, 32)
    """Critic conv encoder channels."""
    critic_hidden: int = 128
    """Critic MLP width."""
    critic_pool: int = 1
    """The critic sees the observation average-pooled by this factor (cheaper updates)."""
    max_step: float = 2.0
    """Largest displacement (or velocity) of one step, in voxels."""
    field_level: int = 0
    """The actor predicts each step's field at ``1 / 2**field_level`` of the grid, upsampled
    linearly (VoxelMorph's half-size fields at 1: the costly full-size decoder level is skipped)."""
    diffeomorphic: bool = False
    """Integrate each step from a velocity (scaling and squaring): far fewer folded voxels, not
    none (the steps' composition is resampled linearly on the grid; module docstring)."""
    int_steps: int = 6
    """Squarings of the velocity integration (diffeomorphic only)."""
    reward_scale: float = 10.0
    """Reward = reward_scale x (Dice after - Dice before)."""
    ncc_window: int = 9
    """Window of the local NCC."""
    force: bool = False
    """The observation adds the local NCC's force on the current image (``ops.losses.ncc_force``:
    the similarity's steepest-ascent displacement, squashed by tanh), so each step sees where the
    similarity pulls (beyond the paper: a learned step of an iterative optimiser)."""
    smooth_weight: float = 1.0
    """Weight of the field smoothness in the auxiliary loss."""
    smooth_penalty: str = "l2"
    """'l2' (diffusion) or 'l1' (total variation)."""
    smooth_on: str = "step"
    """'step': smoothness of each step's field; 'total': of the accumulated field after the step
    (the replay then stores the field, fp16: 2 x 128^2 x 2 B = 64 KiB per 2D transition)."""


class RegistrationEnv:
    """``n`` registration episodes at once on the task's device."""

    def __init__(self, task: "RegistrationTask", n: int, generator: torch.Generator, split: str = "train"):
        self.task, self.n, self.gen, self.o = task, n, generator, task.options
        self.pool = task.pairs(split) if split != "eval" else None

    def reset(self) -> dict:
        idx = torch.randint(0, len(self.pool), (self.n,), generator=self.gen)
        p, dev = self.pool, self.task.device
        return self.start(p.fixed[idx].to(dev).float() / 255, p.moving[idx].to(dev).float() / 255,
                          p.fixed_labels[idx].to(dev), p.moving_labels[idx].to(dev), pair=idx.to(dev))

    def start(self, fixed, moving, fixed_labels=None, moving_labels=None, pair=None, scored: bool = True,
              field=None) -> dict:
        """Begin episodes on images ``[n, 1, *S]`` in [0, 1] (labels ``[n, *S]``, for ``reward='labels'``),
        from the identity or from ``field`` (an affine pre-alignment: the steps compose onto it).
        ``scored=False`` (inference): no labels, no K-means, no Dice; scores and rewards are NaN."""
        dev = self.task.device
        self.fixed, self.moving = fixed.to(dev), moving.to(dev)
        self.n = fixed.shape[0]
        self.pair = pair if pair is not None else torch.full((self.n,), -1, dtype=torch.long, device=dev)
        self.scored = scored
        if not scored:
            self.fl = self.ml = self.label_ids = None
        elif self.o.reward == "labels":
            if fixed_labels is None or moving_labels is None:
                raise UserError("reward = 'labels' needs labelled pairs")
            self.fl, self.ml = fixed_labels.to(dev).long(), moving_labels.to(dev).long()
            self.label_ids = None
        else:
            self.fl, self.ml = kmeans_labels(self.fixed, self.o.kmeans_k), kmeans_labels(self.moving, self.o.kmeans_k)
            self.label_ids = list(range(1, self.o.kmeans_k))
        self.field = torch.zeros(self.n, self.task.dims, *fixed.shape[2:], device=dev) if field is None else field.to(dev)
        self.current = self.moving if field is None else warp(self.moving, self.field)
        self.score = self._dice()
        return self.state

    def _dice(self) -> torch.Tensor:
        if not self.scored:
            return torch.full((self.n,), float("nan"), device=self.field.device)
        return mean_dice(warp_labels(self.ml, self.field), self.fl, self.label_ids)

    @property
    def state(self) -> dict:
        return {"pair": self.pair, "fixed": self.fixed, "current": self.current, "field": self.field}

    def step(self, action: torch.Tensor):
        self.field = compose(self.field, self.task.step_field(action))
        self.current = warp(self.moving, self.field)
        score = self._dice()
        reward = self.o.reward_scale * (score - self.score)
        self.score = score
        return self.state, reward, torch.zeros_like(score, dtype=torch.bool), {"score": score}


class RegistrationTask(Task):
    name = "registration"
    Options = RegistrationOptions

    def __init__(self, options=None, device="cpu", pairs=None):
        super().__init__(options, device)
        self._pairs = dict(pairs or {})

    def validate(self) -> None:
        o = self.options
        if o.dims not in (2, 3):
            raise UserError(f"task_options.dims must be 2 or 3, got {o.dims}")
        from ..data.pairs import SETS
        if SETS.get(o.pairs, o.dims) != o.dims:
            raise UserError(f"task_options.pairs={o.pairs!r} needs dims={SETS[o.pairs]}")
        if o.by_voxel and not o.pairs.startswith("manifest:"):
            raise UserError(f"task_options.by_voxel is for your own pairs (pairs = manifest:PATH); "
                            f"{o.pairs} is one of ours, on one grid")
        levels = len(o.widths)
        if levels < 2 or o.size % 2 ** (levels - 1):
            raise UserError(f"task_options.size ({o.size}) must be divisible by 2**(len(widths)-1) = {2 ** (levels - 1)}")
        if o.reward not in ("kmeans", "labels"):
            raise UserError(f"task_options.reward must be 'kmeans' or 'labels', got {o.reward!r}")
        if o.kmeans_k < 2 or o.max_step <= 0 or o.ncc_window < 1 or o.ncc_window % 2 == 0:
            raise UserError("need kmeans_k >= 2, max_step > 0 and an odd ncc_window")
        if not 0 <= o.field_level <= levels - 2:
            raise UserError(f"task_options.field_level must be in [0, {levels - 2}] (len(widths) - 2)")
        self.check_critic_pool()
        if o.smooth_penalty not in ("l1", "l2"):
            raise UserError("task_options.smooth_penalty must be 'l1' or 'l2'")
        if o.smooth_on not in ("step", "total"):
            raise UserError(f"task_options.smooth_on must be 'step' or 'total', got {o.smooth_on!r}")

    @property
    def dims(self) -> int:
        return self.options.dims

    @property
    def score_name(self) -> str:
        return "label Dice" if self.options.reward == "labels" else "Dice of K-means pseudo-labels"

    @property
    def grid(self) -> tuple[int, ...]:
        return (self.options.size,) * self.dims

    @property
    def plan_shape(self) -> tuple[int, ...]:
        return (1,) + (self.options.size // 2 ** (len(self.options.widths) - 1),) * self.dims

    @property
    def action_shape(self) -> tuple[int, ...]:
        return (self.dims, *self.grid)

    # -- data ----------------------------------------------------------------------------------
    def load_training_data(self) -> None:
        ps = self.pairs("train")
        if self.options.reward == "labels":       # an unlabelled pair would stop training at its first episode
            bare = [i for i in range(len(ps)) if not (ps.fixed_labels[i].any() and ps.moving_labels[i].any())]
            if bare:
                raise UserError(f"task_options.reward = 'labels' needs labels on both images of every training "
                                f"pair: {len(bare)} of the {len(ps)} of {ps.name} have none (pair {bare[0] + 1}, ...); "
                                f"give their label maps, or use reward = 'kmeans'")

    def training_tensors(self) -> list[torch.Tensor]:
        ps = self.pairs("train")
        return [ps.fixed, ps.moving, ps.fixed_labels, ps.moving_labels]

    def pairs(self, split: str = "train"):
        """The pair set of ``split`` (built or read from the cache on first use), checked against the model."""
        if split not in self._pairs:
            from ..data.pairs import load_pairs
            o = self.options
            self._pairs[split] = load_pairs(o.pairs, split, o.n_pairs, o.size, by_voxel=o.by_voxel)
        ps = self._pairs[split]
        if ps.shape != self.grid:
            raise UserError(f"pairs {ps.name} are {'x'.join(map(str, ps.shape))}, the model's grid is "
                            f"{'x'.join(map(str, self.grid))}")
        return ps

    def step_field(self, action: torch.Tensor) -> torch.Tensor:
        """One step's displacement: the action, or its exponential when diffeomorphic."""
        return integrate_velocity(action, self.options.int_steps) if self.options.diffeomorphic else action

    # -- the core's interface -----------------------------------------------------------------
    def build_policy(self) -> MetaPolicy:
        w, nd = tuple(self.options.widths), self.dims
        return MetaPolicy(UNetPlanner(self.obs_channels, w, plan_channels=1, nd=nd),
                          UNetActor(self.obs_channels, nd, w, plan_channels=1, nd=nd,
                                    out_scale=self.options.max_step, out_level=self.options.field_level),
                          self.plan_shape)

    def build_critic(self, critic_on: str = "plan"):
        z = self.plan_shape if critic_on == "plan" else self.action_shape
        o = self.options
        return ConvCritic(self.obs_channels, self.grid, z, tuple(o.critic_widths), o.critic_hidden, o.critic_pool)

    def state_fields(self) -> dict[str, Field]:
        fields = {"pair": Field((), "int64", static=True), "current": Field((1, *self.grid), "uint8")}
        if self.options.smooth_on == "total":
            fields["field"] = Field((self.dims, *self.grid), "float16")
        return fields

    def make_env(self, n: int, generator: torch.Generator, split: str = "train") -> RegistrationEnv:
        return RegistrationEnv(self, n, generator, split)

    def fixed_of(self, state: dict) -> torch.Tensor:
        """The fixed images of a state: carried by the environment's states, looked up by index
        in the training pairs for the replay's (kept on the device once)."""
        if "fixed" in state:
            return state["fixed"]
        cached = getattr(self, "_fixed_on_device", None)
        if cached is None or cached.device != self.device:
            cached = self._fixed_on_device = self.pairs("train").fixed.to(self.device)
        return cached[state["pair"]].float() / 255

    @property
    def obs_channels(self) -> int:
        return 2 + (self.dims if self.options.force else 0)

    def observe(self, state: dict) -> torch.Tensor:
        fixed, current = self.fixed_of(state), state["current"]
        if not self.options.force:
            return torch.cat([fixed, current], 1)
        return torch.cat([fixed, current, torch.tanh(ncc_force(fixed, current, self.options.ncc_window))], 1)

    def auxiliary_loss(self, state: dict, action: torch.Tensor, policy=None):
        o = self.options
        step = self.step_field(action)
        sim = ncc_loss(self.fixed_of(state), warp(state["current"], step), o.ncc_window)
        smooth = smoothness(compose(state["field"], step) if o.smooth_on == "total" else step, o.smooth_penalty)
        return sim + o.smooth_weight * smooth, {"ncc": -sim.item(), "smooth": smooth.item()}


# -- inference and evaluation ------------------------------------------------------------------------
def mean_ncc(a: torch.Tensor, b: torch.Tensor, window: int = 9) -> torch.Tensor:
    """Mean local NCC per image pair: ``[B]``."""
    return local_ncc(a, b, window).flatten(1).mean(1)


@torch.no_grad()
def register(task: RegistrationTask, policy, fixed: torch.Tensor, moving: torch.Tensor, steps: int = 10,
             adaptive: bool = False, tol: float = 1e-3, every_step: bool = False, affine: bool = False,
             keep=()) -> dict:
    """Register ``moving`` onto ``fixed`` (``[B, 1, *S]`` in [0, 1], on the task's grid); no
    labels and no rewards are needed (nor computed).

    Fixed ``steps``, or ``adaptive``: each pair stops at the first step whose mean local-NCC gain
    is below ``tol`` (that step is undone), at most ``steps`` steps. With ``affine`` the steps
    start from an affine pre-alignment (``ops.affine.fit_affine``), which the returned fields
    include. Returns ``{"field", "warped", "steps_taken" [B], "fields": the accumulated field
    after each step (with every_step) or after each step count in ``keep`` (one rollout serves
    several T), "seconds": the seconds from the call to each of those fields (affine fit
    included, the device synced, the copies of earlier fields to the CPU left out), "affine":
    ([B, N, N + 1] voxel matrices, global NCC at the start, after the fit) or None}``: field and
    warped on the task's device (the CLI inverts the field there), the rest on the CPU.
    """
    from ..core.rollout import check_steps
    from ..data.images import as_unit_pairs
    from ..nets.profile import sync
    from ..ops.affine import affine_field, fit_affine
    t0 = time.perf_counter()
    check_steps(steps)
    if any(not (isinstance(k, int) and 1 <= k <= steps) for k in keep):   # (a count past the rollout: no field)
        raise ValueError(f"keep holds step counts from 1 to steps = {steps}, got {tuple(keep)}")
    fixed, moving = as_unit_pairs(fixed, moving, ("fixed", "moving"), 1, task.options.size, task.dims)
    fixed, moving = fixed.to(task.device), moving.to(task.device)
    fitted, start = None, None
    if affine:
        fitted = fit_affine(fixed, moving)
        start = affine_field(fitted[0], task.grid)
        fitted = tuple(x.cpu() for x in fitted)
    env = task.make_env(0, torch.Generator(), "eval")
    state = env.start(fixed, moving, scored=False, field=start)
    was_training = policy.training
    policy.eval()
    try:
        active = torch.ones(env.n, dtype=torch.bool, device=task.device)
        taken = torch.zeros(env.n, dtype=torch.long)
        ncc = mean_ncc(env.fixed, env.current, task.options.ncc_window) if adaptive else None   # fixed T: no NCC
        fields, seconds, copying = [], [], 0.0       # (the copies to the CPU are not the registration's time)
        for t in range(steps):
            action = policy(task.observe(state), sample=False).action       # the mean plan
            if adaptive:
                prev_field = env.field
                action = action * active.view(-1, *([1] * (action.dim() - 1)))
            state, _, _, _ = env.step(action)
            if adaptive:
                new = mean_ncc(env.fixed, env.current, task.options.ncc_window)
                stop = active & (new - ncc < tol)
                if stop.any():      # undo the step that did not help
                    undo = stop.view(-1, *([1] * (env.field.dim() - 1)))
                    env.field = torch.where(undo, prev_field, env.field)
                    env.current = warp(env.moving, env.field)
                    state = env.state
                ncc = torch.where(stop, ncc, new)
                active &= ~stop
                taken += active.cpu().long()
            else:
                taken += 1
            if (every_step and (not adaptive or active.any())) or t + 1 in keep:   # not a step every pair undid
                sync(task.device)
                now = time.perf_counter()
                seconds.append(now - t0 - copying)
                fields.append(env.field.cpu())
                copying += time.perf_counter() - now
            if adaptive and not active.any():
                break
    finally:
        policy.train(was_training)
    return {"field": env.field, "warped": env.current, "steps_taken": taken, "fields": fields, "seconds": seconds,
            "affine": fitted}


def warp_labels(labels: torch.Tensor, field: torch.Tensor) -> torch.Tensor:
    """Integer labels ``[B, *S]`` warped by nearest neighbour."""
    return warp(labels.unsqueeze(1).long(), field, mode="nearest").squeeze(1)


def score_fields(pairs, fields: torch.Tensor, lo: int = 0) -> dict[str, list[float]]:
    """Dice per anatomical label (averaged over the labels of each pair) and Jacobian statistics."""
    fl = pairs.fixed_labels[lo: lo + len(fields)].long()
    ml = pairs.moving_labels[lo: lo + len(fields)].long()
    fields = fields.cpu()
    d = mean_dice(warp_labels(ml, fields), fl)
    neg, std = jacobian_stats(fields)
    return {"dice": d.tolist(), "neg_jac": neg.tolist(), "std_log_jac": std.tolist()}


def summarise(scores: dict[str, list[float]], seconds: float, n: int, **extra) -> dict:
    d = torch.tensor(scores["dice"])
    out = {"dice": float(d.mean()), "dice_std": float(d.std()) if n > 1 else 0.0,
           "neg_jac_pct": float(torch.tensor(scores["neg_jac"]).mean()),
           "std_log_jac": float(torch.tensor(scores["std_log_jac"]).nanmean()),
           "sec_per_pair": seconds / max(n, 1), "pairs": n}
    out.update(extra)
    return out


@torch.no_grad()
def evaluate_policy(task: RegistrationTask, policy, pairs, steps=(1, 10, 20), adaptive: int = 0,
                    tol: float = 1e-3, batch: int = 0, affine: bool = False) -> dict:
    """``{"t{T}": summary with "params"}`` for each fixed T, plus ``"adaptive"`` (at most ``adaptive``
    steps) when > 0; pairs registered ``batch`` at a time (0 = 8 in 2D, 1 in 3D), from an affine
    pre-alignment with ``affine`` (its time counted). The rollout is deterministic, so every fixed T
    is read off one rollout to the largest (its seconds: those up to step T)."""
    from ..core.rollout import check_step_counts
    from ..data.cache import progress
    from ..nets.profile import count_params, sync
    batch = batch or (8 if task.dims == 2 else 1)
    counts = check_step_counts(steps)
    if affine:                   # the fit's one-off cost out of the first method's seconds
        from ..ops.affine import warm_up
        warm_up()

    def fixed_steps(f, m):
        r = register(task, policy, f, m, counts[-1], affine=affine, keep=counts)
        return [(f"t{c}", fld, sec, [c] * len(f)) for c, fld, sec in zip(counts, r["fields"], r["seconds"])]

    def adaptive_steps(f, m):
        t0 = time.perf_counter()
        r = register(task, policy, f, m, adaptive, adaptive=True, tol=tol, affine=affine)
        sync(task.device)
        return [("adaptive", r["field"], time.perf_counter() - t0, r["steps_taken"].tolist())]

    runs = [(", ".join(f"T={c}" for c in counts), fixed_steps)] + ([("adaptive", adaptive_steps)] if adaptive else [])
    out = {}
    for name, run in runs:
        acc = {}
        for lo in progress(range(0, len(pairs), batch), f"registering {len(pairs)} pairs, {name}", "batch"):
            f = pairs.fixed[lo: lo + batch].to(task.device).float() / 255
            m = pairs.moving[lo: lo + batch].to(task.device).float() / 255
            for key, field, sec, taken in run(f, m):
                a = acc.setdefault(key, {"dice": [], "neg_jac": [], "std_log_jac": [], "sec": 0.0, "taken": []})
                a["sec"] += sec
                a["taken"] += taken
                for k, v in score_fields(pairs, field, lo).items():
                    a[k] += v
        for key, a in acc.items():
            out[key] = summarise(a, a["sec"], len(pairs), mean_steps=sum(a["taken"]) / max(1, len(a["taken"])),
                                 params=count_params(policy))
    return out


BASELINE_STEPS = {"onestep": 1, "norl": 10}
"""The step count each baseline run is scored at: the one-step network at T=1, w/o RL at T=10."""


def evaluate_run(run, pairs, steps=(1, 10, 20), adaptive: int = 0, device="cpu", affine: bool = False):
    """Load a run directory and score it on ``pairs`` (``evaluate_policy``):
    ``(task, policy, {"t{T}" | "adaptive": summary with "params"})``; a run of a named set whose
    pairs changed since it trained is refused (``same_training_data``)."""
    from ..core.trainer import load_policy, same_training_data
    from ..data.pairs import SETS
    task, policy, _ = load_policy(run, device)
    if pairs.name in SETS and task.options.pairs in SETS:      # a run of ours on our pairs: trained on them?
        same_training_data(run, task)
    task._pairs["test"] = pairs
    return task, policy, evaluate_policy(task, policy, pairs, steps, adaptive=adaptive, affine=affine)


COLUMNS = "| method | Dice | std | % det J <= 0 | std log det J | s / pair | steps | params |\n|---|---|---|---|---|---|---|---|"


def format_rows(results: dict, names: dict | None = None) -> str:
    """A markdown table of ``{method: summary}`` (names maps keys to labels)."""
    lines = [COLUMNS]
    for m, r in results.items():
        steps = f"{r['mean_steps']:.1f}" if "mean_steps" in r else ""
        lines.append(f"| {(names or {}).get(m, m)} | {r['dice']:.3f} | {r['dice_std']:.3f} | {r['neg_jac_pct']:.3f} | "
                     f"{r['std_log_jac']:.3f} | {r['sec_per_pair']:.3f} | {steps} | {r.get('params', '')} |")
    return "\n".join(lines)


def identity_scores(pairs) -> dict:
    shape = (len(pairs), len(pairs.shape), *pairs.shape)
    return summarise(score_fields(pairs, torch.zeros(shape)), 0.0, len(pairs))


def mid_slices(vol: torch.Tensor) -> list[torch.Tensor]:
    """``[1, *S]`` -> 2D pictures ``[1, H, W]``: the image itself in 2D, three orthogonal mid slices in 3D."""
    if vol.dim() == 3:
        return [vol]
    d, h, w = vol.shape[1:]
    return [vol[:, d // 2], vol[:, :, h // 2], vol[:, :, :, w // 2]]


def upright(pictures: list[torch.Tensor], image) -> list[torch.Tensor]:
    """``mid_slices``'s (or ``grid_slices``'s) pictures of a NIfTI ``image`` (a ``Volume``: its
    affine, RAS) turned as ITK-SNAP and 3D Slicer show it: superior, else anterior, up; the
    patient's left on the right (radiological) and, in a sagittal slice, anterior on the left; that
    is, each picture axis runs toward a falling RAS coordinate, the one along the higher world axis
    (z, then y) down. A picture (PNG: rows posterior, columns left) stays as it is, and so does an
    MRC map (its viewers show x right and y up: no anatomy to put up)."""
    import numpy as np
    if image.kind != "nifti":
        return pictures
    n = image.array.ndim
    world = np.abs(image.affine[:3, :n]).argmax(0)             # the world axis of each array axis
    sign = np.sign(image.affine[world, range(n)])
    planes = [(0, 1)] if n == 2 else [(1, 2), (0, 2), (0, 1)]
    out = []
    for pic, (a, b) in zip(pictures, planes):
        if world[a] < world[b]:                     # the axis along the higher world axis goes down
            pic, (a, b) = pic.transpose(-1, -2), (b, a)
        flips = [d for d, ax in ((-2, a), (-1, b)) if sign[ax] > 0]
        out.append(pic.flip(flips) if flips else pic)
    return out


def grid_slices(field: torch.Tensor, spacing: int = 8) -> list[torch.Tensor]:
    """Deformed grid pictures of a field ``[N, *S]``, one for each of ``mid_slices``'s pictures:
    lines every ``spacing`` voxels of that picture's own two axes (in 3D a mid slice lying on a
    grid plane of the third axis would be all line), drawn with a Gaussian profile across each
    line so that a thin, bent line stays unbroken."""
    from ..ops.warp import identity_grid
    shape = field.shape[1:]
    coords = identity_grid(shape) + field.cpu()

    def lines(cs: torch.Tensor) -> torch.Tensor:
        off = spacing * (torch.remainder(cs / spacing + 0.5, 1.0) - 0.5)      # to the nearest line, voxels
        return torch.exp(-off ** 2 / 0.5).amax(0)[None]
    if len(shape) == 2:
        return [lines(coords)]
    d, h, w = shape
    return [lines(coords[1:, d // 2]), lines(coords[[0, 2], :, h // 2]), lines(coords[:2, :, :, w // 2])]
