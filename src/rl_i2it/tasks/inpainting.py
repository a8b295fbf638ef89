"""Face inpainting (paper section 4.2): fill a hole in a face, step by step.

State = the image with the hole filled by the current prediction (``fill`` grey at the start),
seen with the hole's mask; action = a predicted image, of which the hole's pixels are kept;
reward = ``reward_scale`` x the step's improvement of PSNR (or SSIM) over the hole; auxiliary
loss = L1 over the hole + 0.02 x adversarial on the completed image (SNGAN by default; WGAN-GP,
RaGAN, hinge by ``gan=``). Plan: 256-d.

Holes: a centred square of ``hole_size`` (default half the side: 64x64 at 128, 32x32 at 64), or
with ``hole = "random"`` a square of the same size at a random place (evaluation uses seeded
random places). Data: the faces of ``data/faces`` (CelebA aligned; train 000001-000849, valid
000850-000899, test 000900-000999, never trained on) or a user's CelebA(-HQ) folder.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..core.buffer import Field
from ..errors import UserError
from .imagegen import ImageEnv, ImageOptions, ImageTask

VALID = 50
"""Training faces held out at the end of the train split to choose settings."""


@dataclass
class InpaintingOptions(ImageOptions):
    hole: str = "centre"
    """'centre' (the paper) or 'random' (a square at a random place)."""
    hole_size: int = 0
    """Side of the square hole in pixels (0 = half the image side)."""
    fill: float = 0.5
    """Grey level the hole holds before the first step."""
    data: str = "celeba"
    """'celeba' (the cached CelebA faces) or a folder of face images (CelebA layout, test = 000900-000999)."""


def square_masks(n: int, size: int, hole: int, gen: torch.Generator | None, random: bool) -> torch.Tensor:
    """``[n, 1, size, size]`` bool: a ``hole`` x ``hole`` square per image, centred or at random places."""
    if random:
        top = torch.randint(0, size - hole + 1, (n,), generator=gen)
        left = torch.randint(0, size - hole + 1, (n,), generator=gen)
    else:
        top = left = torch.full((n,), (size - hole) // 2)
    r = torch.arange(size)
    rows = (r[None] >= top[:, None]) & (r[None] < top[:, None] + hole)
    cols = (r[None] >= left[:, None]) & (r[None] < left[:, None] + hole)
    return (rows[:, :, None] & cols[:, None, :])[:, None]


class InpaintingEnv(ImageEnv):
    """``n`` inpainting episodes on the task's device."""

    def reset(self) -> dict:
        n = len(self.task.split_data(self.split)[1])
        idx = torch.randint(0, n, (self.n,), generator=self.gen)
        masks = self.task.masks(self.n, self.gen)
        return self.start(None, self.task.rows(self.split, idx, ("target",))[0], masks, index=idx)

    def start(self, source, target: torch.Tensor, mask: torch.Tensor | None = None, index=None) -> dict:
        """Begin on images ``target [n, 3, S, S]`` in [0, 1] with holes ``mask`` (bool, True = hole;
        None = the task's evaluation masks). ``source`` is unused (the target with its hole is the input)."""
        dev = self.task.device
        self.target = target.to(dev)
        self.n = target.shape[0]
        mask = self.task.eval_mask(self.n) if mask is None else mask
        self.mask = mask.to(dev).expand(self.n, 1, *target.shape[2:])
        hole = torch.full_like(self.target, self.task.options.fill)
        return self.begin(torch.where(self.mask, hole, self.target), index)

    def apply(self, action: torch.Tensor) -> torch.Tensor:
        return torch.where(self.mask, action, self.current)        # the known pixels never change

    @property
    def state(self) -> dict:
        return {"index": self.index, "mask": self.mask, "current": self.current, "target": self.target}


class InpaintingTask(ImageTask):
    name = "inpainting"
    Options = InpaintingOptions
    in_channels = 4            # the current image and the hole's mask

    def validate(self) -> None:
        super().validate()
        o = self.options
        if o.hole not in ("centre", "random"):
            raise UserError("task_options.hole must be 'centre' or 'random'")
        if not 0 <= o.hole_size < o.size:
            raise UserError(f"task_options.hole_size must be in [0, {o.size}) (0 = half the side)")
        if not 0 <= o.fill <= 1:
            raise UserError("task_options.fill must be in [0, 1]")
        if o.disc_conditional:
            raise UserError("task_options.disc_conditional is for translation: an inpainting "
                            "discriminator conditioned on the source would see the answer")

    @property
    def hole(self) -> int:
        return self.options.hole_size or self.options.size // 2

    def masks(self, n: int, gen: torch.Generator | None) -> torch.Tensor:
        return square_masks(n, self.options.size, self.hole, gen, self.options.hole == "random")

    def centre_mask(self, n: int) -> torch.Tensor:
        """The centred hole of the model's size: what a user's face is filled in when no mask is given
        (also for a model trained on random holes, whose evaluation holes are random places)."""
        return square_masks(n, self.options.size, self.hole, None, False)

    def eval_mask(self, n: int) -> torch.Tensor:
        """The evaluation holes: centred, or seeded random places (the same for every method)."""
        return self.masks(n, torch.Generator().manual_seed(4242))

    def load_split(self, split: str):
        from ..data.faces import load_faces
        o = self.options
        source = None if o.data == "celeba" else o.data
        faces = load_faces(o.size, "test" if split == "test" else "train", source)
        if split != "test":
            if len(faces) <= 2 * VALID:
                raise UserError(f"{len(faces)} training faces are too few (need > {2 * VALID})")
            faces = faces[:-VALID] if split == "train" else faces[-VALID:]
        return faces, faces

    # -- the core's interface ---------------------------------------------------------------
    def state_fields(self) -> dict[str, Field]:
        s = self.options.size
        return {"index": Field((), "int64", static=True), "mask": Field((1, s, s), "uint8", static=True),
                "current": Field((3, s, s), "uint8")}

    def make_env(self, n: int, generator: torch.Generator, split: str = "train") -> InpaintingEnv:
        return InpaintingEnv(self, n, generator, split)

    def observe(self, state: dict) -> torch.Tensor:
        return torch.cat([state["current"], state["mask"].to(state["current"].dtype)], 1)

    def generated(self, state: dict, action: torch.Tensor):
        mask = state["mask"] > 0.5
        return torch.where(mask, action, state["current"]), mask
