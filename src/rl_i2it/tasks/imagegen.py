"""What the image-generating tasks share (paper sections 4.2-4.3): the action is an image.

Face inpainting and paired photo translation differ only in what the agent sees and where its
image goes; both have a vector plan (256-d), the encoder-decoder planner-actor of ``nets/encdec``,
a reward that is the step's improvement of PSNR (or SSIM) against the target, and an auxiliary
loss = ``recon_weight`` x L1/L2 reconstruction + ``adv_weight`` x adversarial (a discriminator of
``ops/gan``, trained here, one step per policy update) + ``tv_weight`` x total variation.

The discriminator is the task's own learner: ``update_learners`` trains it on the replay batch's
targets against the policy's detached output, and ``learner_state`` puts it (and its optimiser)
into checkpoints. A non-finite discriminator loss or scores beyond ``disc_limit`` stop the run
(``FloatingPointError``: the trainer keeps the last good checkpoint and says so).
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass

import torch

from ..core import parallel
from ..core.policy import MetaPolicy
from ..errors import UserError
from ..nets import ConvCritic
from ..nets.encdec import VectorActor, VectorPlanner, levels_for
from ..nets.profile import sync
from ..ops import gan
from ..ops.losses import smoothness
from ..ops.metrics import psnr, ssim
from .base import Task

SPLITS = ("train", "valid", "test")


@dataclass
class ImageOptions:
    size: int = 64
    """Image side (a power of two >= 8): 64 (demo) or 128 (paper preset)."""
    widths: tuple = (32, 64, 128, 256)
    """Planner channels, one stride-2 level per entry down to 4x4 (4 at 64 px, 5 at 128 px)."""
    plan_dim: int = 256
    """Dimension of the plan (the paper's latent action: 256)."""
    critic_widths: tuple = (32, 64, 64)
    """Channels of the critic's conv encoder."""
    critic_hidden: int = 256
    """Width of the critic's MLP."""
    critic_target: bool = False
    """The critic also sees the target image (training only; the policy never does): an asymmetric
    critic that can tell how close a step's image comes to the target, as the reward does."""
    critic_pool: int = 4
    """The critic sees the observation average-pooled by this factor (coarse content; 4x faster
    per factor 2 than at full resolution)."""
    reward: str = "psnr"
    """'psnr' (dB) or 'ssim': reward = reward_scale x (metric after - metric before)."""
    reward_scale: float = 0.1
    """0.1 per dB for PSNR (use about 10 for SSIM)."""
    recon: str = "l1"
    """Reconstruction distance: 'l1' or 'l2'."""
    recon_weight: float = 1.0
    """Weight of the reconstruction term."""
    gan: str = "sngan"
    """Adversarial term: sngan | wgan-gp | ragan | hinge | vanilla | none."""
    adv_weight: float = 0.02
    """Weight of the adversarial term."""
    disc: str = "global"
    """Discriminator shape: 'global' (one score) or 'patch' (PatchGAN)."""
    disc_conditional: bool = False
    """The discriminator also sees the source image (pix2pix's conditional GAN)."""
    disc_widths: tuple = (32, 64, 128, 256)
    """Channels of the discriminator's strided convs."""
    lr_disc: float = 2e-4
    """Adam learning rate of the discriminator (betas 0.5, 0.999)."""
    gp_weight: float = 10.0
    """Gradient-penalty weight (wgan-gp)."""
    disc_limit: float = 1e4
    """Stop the run when the discriminator's loss or mean |score| passes this (it has exploded)."""
    tv_weight: float = 0.0
    """Weight of the total variation of the predicted image."""


class ImageEnv:
    """What the image tasks' environments share: ``n`` episodes on the task's device; a step puts
    the action into the current image (``apply``) and rewards the change of ``measure()``."""

    mask = None

    def __init__(self, task: "ImageTask", n: int, generator: torch.Generator, split: str = "train"):
        self.task, self.n, self.gen, self.split = task, n, generator, split

    def begin(self, current: torch.Tensor, index) -> dict:
        dev = self.task.device
        self.index = (index if index is not None else torch.zeros(self.n, dtype=torch.long)).to(dev)
        self.current = current
        self.score = self.measure()
        return self.state

    def apply(self, action: torch.Tensor) -> torch.Tensor:
        """The next current image."""
        return action

    def measure(self) -> torch.Tensor:
        """The reward's metric of the current image ``[n]`` (NaN without a target)."""
        if self.target is None:
            return torch.full((self.n,), float("nan"), device=self.current.device)
        return self.task.score(self.current, self.target, self.mask)

    def step(self, action: torch.Tensor):
        self.current = self.apply(action)
        score = self.measure()
        reward = self.task.options.reward_scale * (score - self.score)
        self.score = score
        return self.state, reward, torch.zeros_like(reward, dtype=torch.bool), {"score": score}


DEVICE_SHARE = 0.25
"""A split stays on a GPU when it takes at most this share of the GPU's free memory."""


def resident(tensors: tuple, device, what: str) -> tuple:
    """``tensors`` on ``device`` (one copy of a tensor given twice, as inpainting's source and
    target); on a GPU without room for them (``DEVICE_SHARE``), left in CPU memory (each batch's
    rows are then copied over), with a note saying so."""
    device, distinct = torch.device(device), list({id(t): t for t in tensors}.values())
    if device.type == "cuda":
        need = sum(t.numel() * t.element_size() for t in distinct)
        free, _ = torch.cuda.mem_get_info(device)
        if need > DEVICE_SHARE * free:
            print(f"note: {what} ({need / 2**30:.1f} GiB) stays in CPU memory (over {DEVICE_SHARE:.0%} of "
                  f"{device}'s free {free / 2**30:.1f} GiB); each batch's images are copied over", file=sys.stderr)
            return tensors
    moved = {id(t): t.to(device) for t in distinct}
    return tuple(moved[id(t)] for t in tensors)


class ImageTask(Task):
    """Base of the tasks whose action is an image ``[3, size, size]`` in [0, 1]."""

    in_channels = 3        # of the observation; set by subclasses

    def __init__(self, options=None, device="cpu", data: dict | None = None):
        super().__init__(options, device)
        self._data = dict(data or {})
        self._on_device: dict = {}
        self.disc = self.disc_opt = None

    def validate(self) -> None:
        o = self.options
        try:
            n = levels_for(o.size)
        except ValueError as exc:
            raise UserError(f"task_options.size: {exc}") from None
        if len(o.widths) != n:
            raise UserError(f"task_options.widths needs {n} entries at size {o.size} (one per halving to 4x4), "
                            f"got {len(o.widths)}")
        if o.reward not in ("psnr", "ssim"):
            raise UserError("task_options.reward must be 'psnr' or 'ssim'")
        if o.recon not in ("l1", "l2"):
            raise UserError("task_options.recon must be 'l1' or 'l2'")
        if o.gan not in (*gan.KINDS, "none"):
            raise UserError(f"task_options.gan must be one of {', '.join((*gan.KINDS, 'none'))}, got {o.gan!r}")
        if o.disc not in ("global", "patch"):
            raise UserError("task_options.disc must be 'global' or 'patch'")
        if o.plan_dim < 1:
            raise UserError("task_options.plan_dim must be >= 1")
        if o.gan != "none" and o.adv_weight > 0 and o.disc == "patch":   # said now, not at the first update
            try:
                gan.check_patch_size(o.size, len(o.disc_widths))
            except ValueError as exc:
                raise UserError(f"task_options.disc_widths: {exc}") from None
        self.check_critic_pool()

    # -- data -------------------------------------------------------------------------------
    def load_training_data(self) -> None:
        self.split_data("train")

    def training_tensors(self) -> list[torch.Tensor]:
        return list(self.split_data("train"))

    def load_split(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(source, target)`` uint8 ``[N, 3, S, S]`` of a split (subclasses read the data)."""
        raise NotImplementedError

    def split_data(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The split's (source, target) as uint8 (loaded once), on the task's device, or in CPU
        memory when it would take more than ``DEVICE_SHARE`` of a GPU's free memory (index it, then
        move the rows: ``rows``)."""
        if split not in SPLITS:
            raise UserError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        key = (split, self.device)
        if key not in self._on_device:
            if split not in self._data:
                self._data[split] = self.load_split(split)
            src, tgt = self._data[split]
            s = self.options.size
            if tgt.shape[1:] != (3, s, s) or src.shape[0] != tgt.shape[0] or src.shape[2:] != (s, s):
                raise UserError(f"{split} data: expected [N, 3, {s}, {s}] images, got source "
                                f"{tuple(src.shape)} and target {tuple(tgt.shape)}")
            self._on_device[key] = resident((src, tgt), self.device, f"the {split} split")
        return self._on_device[key]

    def rows(self, split: str, index: torch.Tensor, which=("source", "target")) -> tuple[torch.Tensor, ...]:
        """The split's images at ``index`` (``which``: source, target or both) in [0, 1] on the
        task's device."""
        data = dict(zip(("source", "target"), self.split_data(split)))
        return tuple(data[w][index.to(data[w].device)].to(self.device).float() / 255 for w in which)

    def _lookup(self, state: dict, name: str) -> torch.Tensor:
        """``state[name]`` when the environment carries it, else the training split's image at
        ``state['index']`` (replay states hold the index only)."""
        if name in state:
            return state[name]
        return self.rows("train", state["index"], (name,))[0]

    def source_of(self, state: dict) -> torch.Tensor:
        return self._lookup(state, "source")

    def target_of(self, state: dict) -> torch.Tensor:
        return self._lookup(state, "target")

    # -- the core's interface ---------------------------------------------------------------
    @property
    def plan_shape(self) -> tuple[int, ...]:
        return (self.options.plan_dim,)

    @property
    def action_shape(self) -> tuple[int, ...]:
        return (3, self.options.size, self.options.size)

    def build_policy(self) -> MetaPolicy:
        o = self.options
        w = tuple(o.widths)
        return MetaPolicy(VectorPlanner(self.in_channels, o.size, w, o.plan_dim),
                          VectorActor(self.in_channels, 3, o.size, w, o.plan_dim), self.plan_shape)

    def build_critic(self, critic_on: str = "plan"):
        z = self.plan_shape if critic_on == "plan" else self.action_shape
        o = self.options
        return ConvCritic(self.in_channels + 3 * o.critic_target, (o.size, o.size), z, tuple(o.critic_widths),
                          o.critic_hidden, o.critic_pool)

    def critic_observe(self, state: dict, obs: torch.Tensor) -> torch.Tensor:
        return torch.cat([obs, self.target_of(state)], 1) if self.options.critic_target else obs

    @property
    def score_name(self) -> str:
        where = " over the hole" if self.name == "inpainting" else ""
        return f"PSNR{where} (dB)" if self.options.reward == "psnr" else f"SSIM{where}"

    def score(self, image: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """The reward's metric ``[B]`` (PSNR in dB or SSIM of the whole map: the border counts), over
        ``mask`` when given."""
        if self.options.reward == "psnr":
            return psnr(image, target, mask)
        return ssim(image, target, mask, whole=True)

    def recon_loss(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        d = (pred - target).abs() if self.options.recon == "l1" else (pred - target) ** 2
        if mask is None:
            return d.mean()
        m = mask.float().expand_as(d)
        return (d * m).sum() / m.sum().clamp_min(1)

    def adversarial_pair(self, state: dict, action: torch.Tensor):
        """``(real, fake, condition)`` the discriminator judges; subclasses say what the fake is."""
        cond = self.source_of(state) if self.options.disc_conditional else None
        return self.target_of(state), action, cond

    def _build_disc(self) -> None:
        o = self.options
        try:
            disc = gan.Discriminator(3, o.size, tuple(o.disc_widths), o.gan, o.disc, 3 if o.disc_conditional else 0)
        except ValueError as exc:
            raise UserError(f"task_options.disc_widths: {exc}") from None
        self.disc = disc.to(self.device)
        parallel.broadcast(self.disc)             # torchrun: rank 0's first weights everywhere
        self.disc_opt = torch.optim.Adam(self.disc.parameters(), lr=o.lr_disc, betas=(0.5, 0.999))

    def generated(self, state: dict, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(image the action makes, mask the reconstruction is measured over or None)``."""
        return action, None

    def auxiliary_loss(self, state: dict, action: torch.Tensor, policy=None):
        o = self.options
        image, mask = self.generated(state, action)
        recon = self.recon_loss(image, self.target_of(state), mask)
        loss, logs = o.recon_weight * recon, {"recon": recon.item()}
        if o.gan != "none" and o.adv_weight > 0:
            if self.disc is None:
                self._build_disc()
            real, fake, cond = self.adversarial_pair(state, image)
            self.disc.requires_grad_(False)
            adv = gan.generator_loss(o.gan, self.disc, real, fake, cond)
            self.disc.requires_grad_(True)
            loss = loss + o.adv_weight * adv
            logs["g_adv"] = adv.item()
        if o.tv_weight > 0:
            tv = smoothness(image, "l1")
            loss = loss + o.tv_weight * tv
            logs["tv"] = tv.item()
        return loss, logs

    def update_learners(self, state: dict, action: torch.Tensor) -> dict[str, float]:
        """One discriminator step on the batch's targets against the policy's (detached) images."""
        o = self.options
        if o.gan == "none" or o.adv_weight <= 0:
            return {}
        if self.disc is None:
            self._build_disc()
        real, fake, cond = self.adversarial_pair(state, self.generated(state, action.detach())[0])
        loss, dr, df = gan.discriminator_loss(o.gan, self.disc, real, fake, cond, o.gp_weight)
        self.disc_opt.zero_grad(set_to_none=True)
        loss.backward()                         # torchrun: gradients and checks averaged over the ranks
        checks = parallel.average_gradients(self.disc.parameters(), torch.stack(
            [loss.detach(), dr.detach().abs().mean(), df.detach().abs().mean()]))
        d_loss, scale = checks[0].item(), checks[1:].max().item()
        if not (math.isfinite(d_loss) and math.isfinite(scale)) or d_loss > o.disc_limit or scale > o.disc_limit:
            raise FloatingPointError(f"the discriminator diverged (loss {d_loss:.3g}, mean |score| "
                                     f"{scale:.3g} > task_options.disc_limit {o.disc_limit:g})")
        self.disc_opt.step()
        return {"d_loss": loss.item(), "d_real": dr.mean().item(), "d_fake": df.mean().item()}

    def learner_state(self) -> dict:
        if self.disc is None:
            return {}
        return {"disc": self.disc.state_dict(), "disc_opt": self.disc_opt.state_dict()}

    def load_learner_state(self, sd: dict) -> None:
        self.disc = self.disc_opt = None          # empty: none trained yet (built at the first update)
        if sd:
            self._build_disc()
            self.disc.load_state_dict(sd["disc"])
            self.disc_opt.load_state_dict(sd["disc_opt"])


# -- evaluation ---------------------------------------------------------------------------------------
def image_scores(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None,
                 features: bool = True, device="cpu", real_features: torch.Tensor | None = None,
                 fid: bool = True) -> dict[str, float]:
    """The paper's metrics of predictions ``[N, 3, S, S]`` against targets, all in [0, 1]:
    PSNR/SSIM over the hole (when ``mask``; SSIM's 11-px windows at the hole's edge also see
    known pixels, as in the usual practice) and over the whole image, and with ``features``
    LPIPS (AlexNet, v0.1) and FID (Inception pool features, 2048-d; biased upward on small sets,
    so compare only values over the same images; ``fid=False`` skips it). ``real_features``: the
    targets' Inception features when already computed (``inception_features(target)``)."""
    if features and fid and real_features is None:
        from ..features import inception_features
        with torch.no_grad():
            real_features = inception_features(target.to(device)).cpu()
    return mean_scores([per_image_scores(pred, target, mask, features, device, fid)], real_features)


def per_image_scores(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None, features: bool,
                     device, fid: bool) -> dict[str, torch.Tensor]:
    """``image_scores``'s metrics of each image (``[N]`` each), and the predictions' Inception
    features (``"inception"``, ``[N, 2048]``) for the FID: ``mean_scores`` makes the table's row."""
    out = {}
    if mask is not None:
        m = mask.expand(pred.shape[0], 1, *pred.shape[2:])
        out["psnr_hole"], out["ssim_hole"] = psnr(pred, target, m), ssim(pred, target, m)
    out["psnr_full"], out["ssim_full"] = psnr(pred, target), ssim(pred, target)
    if features:
        from ..features import inception_features, lpips
        with torch.no_grad():
            out["lpips"] = torch.cat([lpips(pred[i:i + 50].to(device), target[i:i + 50].to(device)).cpu()
                                      for i in range(0, len(pred), 50)])
            if fid:
                out["inception"] = inception_features(pred.to(device)).cpu()
    return out


def mean_scores(parts: list[dict[str, torch.Tensor]], real_features: torch.Tensor | None) -> dict[str, float]:
    """The mean of each metric over the images of all ``parts`` (``per_image_scores`` of
    successive batches), and the FID of their Inception features against ``real_features``."""
    from ..features import fid_from_features
    joined = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
    out = {k: float(v.mean()) for k, v in joined.items() if k != "inception"}
    if "inception" in joined:
        out["fid"] = float(fid_from_features(real_features, joined["inception"]))
    return out


COLUMNS = (("psnr_hole", "PSNR hole", "9.3f"), ("ssim_hole", "SSIM hole", "9.4f"), ("psnr_full", "PSNR full", "9.3f"),
           ("ssim_full", "SSIM full", "9.4f"), ("lpips", "LPIPS", "7.4f"), ("fid", "FID", "7.2f"),
           ("sec_per_image", "s/img", "8.4f"))


def format_scores(rows: dict[str, dict], labels: dict | None = None) -> str:
    """A table of ``{method: scores}`` with the columns the scores have."""
    cols = [c for c in COLUMNS if any(c[0] in r for r in rows.values())]
    head = f"{'method':24s} " + " ".join(f"{name:>{int(fmt.split('.')[0])}s}" for _, name, fmt in cols)
    lines = [head, "-" * len(head)]
    for method, r in rows.items():
        cells = [format(r[k], fmt) if k in r else " " * int(fmt.split(".")[0]) for k, _, fmt in cols]
        lines.append(f"{(labels or {}).get(method, method):24s} " + " ".join(cells))
    return "\n".join(lines)


def hole_masks(mask, n: int, size: int) -> torch.Tensor:
    """A library caller's hole masks as bool ``[n or 1, 1, size, size]`` (True = hole): bool, 0/1
    or 0-255 (nonzero = hole; floats: over 0.5), ``[S, S]``, ``[n or 1, S, S]`` or
    ``[n or 1, 1, S, S]``; anything else a ``TypeError`` / ``ValueError`` saying so."""
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"mask must be a torch.Tensor (True = hole), got {type(mask).__name__}")
    m = mask if mask.dtype == torch.bool else mask > 0.5 if mask.is_floating_point() else mask != 0
    m = m.reshape(1, 1, *m.shape) if m.dim() == 2 else m.unsqueeze(1) if m.dim() == 3 else m
    if m.dim() != 4 or m.shape[1] != 1 or tuple(m.shape[2:]) != (size, size) or len(m) not in (1, n):
        raise ValueError(f"mask of shape {tuple(mask.shape)}: give [{size}, {size}], [N, {size}, {size}] or "
                         f"[N, 1, {size}, {size}] with N = 1 or the {n} images")
    return m.detach()


@torch.no_grad()
def predict(task: ImageTask, policy, source: torch.Tensor, target: torch.Tensor | None, steps: int,
            mask: torch.Tensor | None = None, batch: int = 64, sample: bool = False
            ) -> tuple[list[torch.Tensor], float]:
    """Run ``steps`` steps on images ``[N, 3, S, S]`` in [0, 1] (uint8 0-255 and grey ``[N, 1, S, S]``
    taken too) at the model's ``S``; ``([T] x [N, 3, S, S] on the CPU, seconds)``. Inpainting:
    ``target`` is the image whose ``mask`` is filled (``source`` unused, may be None); ``mask``
    True or nonzero = hole, ``[S, S]``, ``[N or 1, S, S]`` or ``[N or 1, 1, S, S]`` (None: the
    model's centre hole). Translation: ``target`` may be None. Bad input: ``TypeError`` /
    ``ValueError`` naming the argument."""
    from ..core.rollout import check_count, check_steps, rollout
    from ..data.images import as_unit_images, as_unit_pairs
    check_steps(steps)
    batch = check_count(batch, "batch")
    size = task.options.size
    if task.name == "inpainting":
        if target is None:
            raise ValueError("inpainting fills the masked pixels of target: give target (source is unused)")
        source = target = as_unit_images(target, "target", 3, size)
        mask = task.centre_mask(len(target)) if mask is None else hole_masks(mask, len(target), size)
        if mask.flatten(1).all(1).any():
            raise ValueError("mask covers the whole image: leave some pixels outside the hole to fill it from")
        empty = [int(i) for i in torch.nonzero(~mask.flatten(1).any(1))[:, 0]]
        if empty:
            raise ValueError(f"mask marks no pixel of image {empty[0]}{' and others' if len(empty) > 1 else ''} "
                             f"(True, nonzero or over 0.5 = hole): nothing to fill")
    elif mask is not None:
        raise ValueError("mask is for inpainting models; a translation model translates the whole source")
    elif target is None:
        source = as_unit_images(source, "source", 3, size)
    else:
        source, target = as_unit_pairs(source, target, ("source", "target"), 3, size)
    outs: list[list[torch.Tensor]] = [[] for _ in range(steps)]
    seconds = 0.0
    dev = task.device
    for i in range(0, len(source), batch):
        env = task.make_env(0, torch.Generator(), "eval")
        m = None if mask is None else mask[i:i + batch] if len(mask) > 1 else mask
        state = env.start(source[i:i + batch].to(dev), None if target is None else target[i:i + batch].to(dev),
                          None if m is None else m.to(dev))
        t0 = time.perf_counter()
        batch_out = [s["current"] for _, s, _, _ in rollout(policy, task, env, state, steps, sample)]
        sync(task.device)
        seconds += time.perf_counter() - t0       # the steps (with their reward's metric), not the copies
        for t, img in enumerate(batch_out):
            outs[t].append(img.cpu())
    return [torch.cat(o) for o in outs], seconds


def evaluate(task: ImageTask, policy, steps=(1, 5, 10), split: str = "test", features: bool = True,
             n: int = 0, real_features: torch.Tensor | None = None, fid: bool = True, batch: int = 64) -> dict:
    """Every metric after each of ``steps`` on a split (``n`` first images, 0 = all); ``{T: scores}``
    with ``sec_per_image`` (T steps' share of the longest rollout's time, after one untimed warm-up
    step: a method evaluated first no longer carries the first call's costs). ``batch`` images at a time are run and scored, so memory
    does not grow with the split (a progress bar shows when it takes over 2 s)."""
    from ..core.rollout import check_count, check_step_counts
    from ..data.cache import progress
    steps = check_step_counts(steps)
    batch = check_count(batch, "batch")
    src, tgt = task.split_data(split)
    if not 0 <= n <= len(src):
        raise ValueError(f"n: give 0 (all) to {len(src)} images of the {split} split, got {n}")
    if n:
        src, tgt = src[:n], tgt[:n]
    mask = task.eval_mask(len(tgt))
    predict(task, policy, src[:1].float() / 255, tgt[:1].float() / 255, 1, None if mask is None else mask[:1], 1)
    parts, reals, seconds = {t: [] for t in steps}, [], 0.0     # (above: first-call costs, untimed)
    need_real = features and fid and real_features is None
    if need_real:
        from ..features import inception_features
    for i in progress(range(0, len(tgt), batch), f"evaluating {len(tgt)} images, {batch} at a time", "batch"):
        s, g = src[i:i + batch].float() / 255, tgt[i:i + batch].float() / 255
        m = None if mask is None else mask[i:i + batch] if len(mask) > 1 else mask
        images, sec = predict(task, policy, s, g, max(steps), m, batch)
        seconds += sec
        g, m = g.cpu(), None if m is None else m.cpu()
        for t in steps:
            parts[t].append(per_image_scores(images[t - 1], g, m, features, task.device, fid))
        if need_real:
            with torch.no_grad():
                reals.append(inception_features(g.to(task.device)).cpu())
    real_features = torch.cat(reals) if need_real else real_features
    res = {}
    for t in steps:
        res[t] = mean_scores(parts[t], real_features)
        res[t]["sec_per_image"] = seconds / len(tgt) * t / max(steps)
    return res
