"""Paired photo translation (paper section 4.3): source image -> target image, step by step.

State = [source, current]; the first current is the source; action = the predicted image, which
becomes the current; reward = ``reward_scale`` x the step's PSNR improvement over the whole image;
auxiliary loss = L1 + SNGAN (+ TV), as in inpainting, with a conditional PatchGAN by default.

Data (``data``): ``edges`` (edge map -> photo) or ``grey`` (grey -> colour), made from the cached
CelebA faces and bundled photos (no paired set is reachable offline; test = faces 000900-000999),
or ``pix2pix:PATH`` for a pix2pix dataset (AB side by side or A/ and B/ folders; a ``train``
and a ``test`` or ``val`` subfolder, else the last 10 % of the images is the test split) read
in ``direction``. Sources are given 3 channels (grey repeated).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..core.buffer import Field
from ..errors import UserError
from .imagegen import ImageEnv, ImageOptions, ImageTask

VALID_FRACTION = 0.1
"""Part of a pix2pix set's training pairs held out (at the end) to choose settings; for the
made pairs the validation split is faces 000850-000899 (as for inpainting)."""


@dataclass
class TranslationOptions(ImageOptions):
    data: str = "edges"
    """'edges' (edges -> photo), 'grey' (grey -> colour) or 'pix2pix:PATH' (a pix2pix dataset folder)."""
    direction: str = "AtoB"
    """pix2pix data: AtoB or BtoA."""
    disc: str = "patch"
    disc_conditional: bool = True
    tv_weight: float = 1e-3


def three_channels(x: torch.Tensor) -> torch.Tensor:
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def split_pix2pix(path: str, split: str, direction: str, size: int):
    """``(A, B)`` of a pix2pix folder's split: its train/ and test/ (or val/) subfolders (or
    A/train, A/test, B/...; names in any case) when present, else the last 10 % of the images as
    the test split. A train/ folder without a test/ or val/ one holding images is refused whichever
    split is asked for (before training, not at its evaluation)."""
    from pathlib import Path

    from ..data.paired import ab_folders, read_pix2pix, split_folders
    root = Path(path)
    sides = ab_folders(root)
    nested = sides is not None and "train" in split_folders(sides[0])   # A/train, B/train, A/test ... layout
    base = sides[0] if nested else root
    subs = split_folders(base)
    if "train" in subs:
        test = subs.get("test") or subs.get("val")
        if test is None:
            raise UserError(f"{base} has a train/ folder but no test/ or val/ folder with images: the test split "
                            f"is read from one (or give a folder of all the pairs: its last 10 % are the test split)")
        sub = test if split == "test" else subs["train"]
        return read_pix2pix(root, direction, size, split=sub.name) if nested else read_pix2pix(sub, direction, size)
    a, b = read_pix2pix(root, direction, size)
    cut = len(a) - max(1, round(0.1 * len(a)))
    return (a[cut:], b[cut:]) if split == "test" else (a[:cut], b[:cut])


class TranslationEnv(ImageEnv):
    def reset(self) -> dict:
        n = len(self.task.split_data(self.split)[1])
        idx = torch.randint(0, n, (self.n,), generator=self.gen)
        return self.start(*self.task.rows(self.split, idx), index=idx)

    def start(self, source: torch.Tensor, target: torch.Tensor | None, mask=None, index=None) -> dict:
        """Begin on ``source [n, 3, S, S]`` in [0, 1]; ``target`` may be None (no score then)."""
        dev = self.task.device
        self.source = three_channels(source.to(dev))
        self.n = source.shape[0]
        self.target = None if target is None else target.to(dev)
        return self.begin(self.source, index)

    @property
    def state(self) -> dict:
        st = {"index": self.index, "current": self.current, "source": self.source}
        if self.target is not None:
            st["target"] = self.target
        return st


class TranslationTask(ImageTask):
    name = "translation"
    Options = TranslationOptions
    in_channels = 6            # source and current

    def validate(self) -> None:
        super().validate()
        o = self.options
        if o.direction not in ("AtoB", "BtoA"):
            raise UserError("task_options.direction must be AtoB or BtoA")
        if o.direction != "AtoB" and not o.data.startswith("pix2pix:"):
            raise UserError(f"task_options.direction is for pix2pix:PATH data; data = {o.data!r} is made "
                            f"{'edges -> photo' if o.data == 'edges' else 'grey -> colour'}")
        if not (o.data in ("edges", "grey") or o.data.startswith("pix2pix:")):
            raise UserError(f"task_options.data must be edges, grey or pix2pix:PATH, got {o.data!r}")
        if o.data.startswith("pix2pix:") and not o.data.split(":", 1)[1].strip():
            raise UserError("task_options.data = 'pix2pix:' names no folder: give pix2pix:PATH (not the working "
                            "folder by default)")

    def eval_mask(self, n: int):
        return None

    def load_split(self, split: str):
        o = self.options
        if o.data.startswith("pix2pix:"):
            src, tgt = split_pix2pix(o.data.split(":", 1)[1], split, o.direction, o.size)
        else:
            from ..data.paired import photo_pairs
            src, tgt = photo_pairs(o.data, o.size, "test" if split == "test" else "train")
        src, tgt = three_channels(src), three_channels(tgt)
        if split != "test":
            if o.data.startswith("pix2pix:"):
                n_valid = max(1, round(VALID_FRACTION * len(tgt)))
                valid = torch.zeros(len(tgt), dtype=torch.bool)
                valid[-n_valid:] = True
            else:       # made pairs = training faces, then photo crops: valid = faces 000850-000899
                from ..data.faces import load_faces
                from .inpainting import VALID
                n_faces = len(load_faces(o.size, "train"))
                valid = torch.zeros(len(tgt), dtype=torch.bool)
                valid[n_faces - VALID:n_faces] = True
            if valid.all():
                raise UserError(f"{len(tgt)} training pairs are too few")
            keep = valid if split == "valid" else ~valid
            src, tgt = src[keep], tgt[keep]
        return src.contiguous(), tgt.contiguous()

    def state_fields(self) -> dict[str, Field]:
        s = self.options.size
        return {"index": Field((), "int64", static=True), "current": Field((3, s, s), "uint8")}

    def make_env(self, n: int, generator: torch.Generator, split: str = "train") -> TranslationEnv:
        return TranslationEnv(self, n, generator, split)

    def observe(self, state: dict) -> torch.Tensor:
        return torch.cat([self.source_of(state), state["current"]], 1)
