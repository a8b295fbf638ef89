"""Shared fixtures: small synthetic digit data made here (tests never touch the network or caches)."""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rl_i2it.data.mnist import Digits


def make_shapes(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` 28x28 uint8 'digits': class c is an ellipse (or ring for odd c) whose size and tilt
    depend on c, jittered in position and size."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:28, 0:28].astype(np.float32)
    labels = np.arange(n) % 10
    rng.shuffle(labels)
    out = np.zeros((n, 28, 28), np.uint8)
    for i, c in enumerate(labels):
        a = 4 + c * 0.7 + rng.uniform(-0.7, 0.7)
        b = 9 - c * 0.4 + rng.uniform(-0.7, 0.7)
        t = c * np.pi / 10
        cy, cx = 14 + rng.uniform(-1.5, 1.5), 14 + rng.uniform(-1.5, 1.5)
        u = (xx - cx) * np.cos(t) + (yy - cy) * np.sin(t)
        v = -(xx - cx) * np.sin(t) + (yy - cy) * np.cos(t)
        r = np.sqrt((u / a) ** 2 + (v / b) ** 2)
        img = np.clip((1.15 - r) * 6, 0, 1)
        if c % 2:
            img = img * np.clip((r - 0.45) * 6, 0, 1)
        out[i] = (img * 255).astype(np.uint8)
    return out, labels.astype(np.int64)


@pytest.fixture(scope="session")
def digits() -> Digits:
    tx, ty = make_shapes(600, 0)
    ex, ey = make_shapes(200, 1)
    return Digits(tx, ty, ex, ey)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """Fresh seeds; the data cache points at an empty temporary folder."""
    torch.manual_seed(0)
    monkeypatch.setenv("RL_I2IT_DATA", str(tmp_path / "cache"))


SMALL = {"widths": [8, 16, 16], "critic_widths": [8, 8, 8], "critic_hidden": 32}


def make_anatomy(n: int, size: int, nd: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` synthetic 'organs' ``[n, 1, *S]`` in [0, 1] with labels ``[n, *S]``: a body (label 1)
    holding two inner structures (labels 2, 3) of other intensities, sizes and positions jittered."""
    gen = torch.Generator().manual_seed(seed)
    axes = torch.meshgrid(*[torch.linspace(-1, 1, size)] * nd, indexing="ij")
    imgs, labs = [], []
    for _ in range(n):
        lab = torch.zeros((size,) * nd, dtype=torch.int16)
        img = torch.zeros((size,) * nd)
        for label, (radius, value, off) in enumerate([(0.8, 0.35, 0.0), (0.35, 0.9, 0.3), (0.25, 0.6, -0.35)], 1):
            jitter = (torch.rand(nd, generator=gen) - 0.5) * 0.2
            r = sum(((a - off * (i == 0) - jitter[i]) / (radius * (1 + 0.3 * (i == 1)))) ** 2 for i, a in enumerate(axes))
            inside = r < 1
            lab[inside], img[inside] = label, value
        imgs.append(img)
        labs.append(lab)
    return torch.stack(imgs)[:, None], torch.stack(labs)


@pytest.fixture(scope="session")
def reg_pairs():
    """Synthetic 2D registration pairs at 32x32: train and test."""
    from rl_i2it.data.pairs import deform_pairs
    imgs, labs = make_anatomy(6, 32, 2, seed=0)
    return {"train": deform_pairs(imgs, labs, 48, seed=1, magnitude=2.5),
            "test": deform_pairs(imgs, labs, 16, seed=2, magnitude=2.5)}


REG_SMALL = {"size": 32, "widths": [8, 16, 16], "critic_widths": [8, 8, 8], "critic_hidden": 32}
REG3D_SMALL = {"dims": 3, "pairs": "liver3d", "size": 16, "widths": [4, 8, 8], "critic_widths": [4, 8], "critic_hidden": 16}
STYLE_SMALL = {"size": 32, "widths": [8, 8, 16], "critic_widths": [8, 8, 8], "vgg": "random"}
"""The style nets at test size; VGG16 with seeded random weights (no download)."""


def make_photos(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """``n`` smooth colour 'photos' ``[n, 3, size, size]`` uint8: a colour gradient plus two soft
    coloured blobs; the centre is predictable from the surroundings."""
    gen = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    out = []
    for _ in range(n):
        c0, c1, c2 = torch.rand(3, 3, 1, 1, generator=gen)
        img = c0 * (1 + xx) / 2 + c1 * (1 - xx) / 2
        for c in (c2, 1 - c2):
            cy, cx = (torch.rand(2, generator=gen) - 0.5) * 1.2
            img = img + 0.5 * (c - img) * torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 0.3)
        out.append(img)
    return (torch.stack(out).clamp(0, 1) * 255).round().byte()


def grey_to_colour(sizes: tuple, size: int = 16) -> dict:
    """Image-task data: ``{split: (grey source as RGB, colour target)}`` uint8, ``sizes`` = ((split, n, seed), ...)."""
    data = {}
    for split, n, seed in sizes:
        tgt = make_photos(n, size, seed)
        grey = (tgt.float() * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
        data[split] = (grey.round().byte().expand(-1, 3, -1, -1).contiguous(), tgt)
    return data


@pytest.fixture(scope="session")
def photo_data():
    """Image-task data at 16x16: ``{split: (source, target)}`` with grey sources (grey -> colour)."""
    return grey_to_colour((("train", 96, 0), ("valid", 16, 1), ("test", 24, 2)))


def image_trainer(task: str, run_dir, data: dict, steps: int = 8, train: dict | None = None, **opts):
    """A trainer of an image task at 16x16 with the small nets and test-speed settings (``train``:
    train settings over them, ``opts``: task options)."""
    from rl_i2it.config import load_config
    from rl_i2it.core.trainer import Trainer
    from rl_i2it.tasks import task_class
    cfg = load_config(None, {"task": task, "task_options": {**IMG_SMALL, **opts},
                             "train": {"steps": steps, "n_envs": 8, "horizon": 3, "learning_starts": 16,
                                       "replay_size": 400, "checkpoint_every_s": 0, "log_every": 4,
                                       **(train or {})},
                             "sac": {"batch_size": 8, "rl_warmup": 0, "lr_policy": 1e-3, "aux_weight": 100.0,
                                     "log_std_max": -2.0, "init_alpha": 0.0005}})
    return Trainer(cfg, run_dir, task=task_class(task)(cfg.task_options, data=data), verbose=False)


def faces(photo_data):
    """Inpainting data from ``photo_data``: the colour images are both source and target."""
    return {k: (t, t) for k, (_, t) in photo_data.items()}


IMG_SMALL = {"size": 16, "widths": [8, 16], "plan_dim": 16, "critic_widths": [8, 8], "critic_hidden": 32,
             "disc_widths": [8, 16]}


def _smooth(b=2, size=64, seed=0, c=3):
    """Smooth random RGB in [0, 1] with structure at several scales (feature-extractor tests)."""
    g = torch.Generator().manual_seed(seed)
    x = sum(F.interpolate(torch.rand(b, c, s, s, generator=g), size=(size, size), mode="bilinear",
                          align_corners=False) / (i + 1) for i, s in enumerate((4, 8, 16, 32)))
    lo, hi = x.amin((1, 2, 3), keepdim=True), x.amax((1, 2, 3), keepdim=True)
    return (x - lo) / (hi - lo)


@pytest.fixture
def smooth():
    return _smooth


def load_bench(name: str):
    """The module of the script ``bench/{name}.py`` (bench scripts are not a package)."""
    path = Path(__file__).resolve().parents[1] / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def moving_frames(n=4, h=48, w=64, shift=2):
    """``[n, h, w, 3]`` uint8 frames of a smooth random texture moving ``shift`` px right per frame."""
    import cv2
    g = np.random.default_rng(0)
    base = (np.kron(g.random((h // 4, (w + n * shift) // 4 + 1, 3)), np.ones((4, 4, 1))) * 255).astype(np.uint8)
    base = cv2.GaussianBlur(base, (5, 5), 1.0)
    return np.stack([base[:, i * shift:i * shift + w] for i in range(n)])


def write_style(path, seed=0, size=48):
    """A striped colour texture saved as PNG."""
    from PIL import Image
    g = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    phase = g.uniform(0, 6.28)
    stripes = (np.sin((xx + yy * g.uniform(-1, 1)) / g.uniform(1.5, 4) + phase) > 0)
    col = g.integers(0, 256, (2, 3))
    img = np.where(stripes[..., None], col[0], col[1]).astype(np.uint8)
    Image.fromarray(img).save(path)
    return str(path)


def known_affine(nd: int, size: int) -> torch.Tensor:
    """A 9 degree rotation in the first two axes, scales 1.07 and 0.94, a shift of (4, -3, 2) voxels,
    about the grid's centre: ``[1, N, N + 1]`` in voxels."""
    th = math.radians(9)
    a = torch.eye(nd)
    a[:2, :2] = torch.tensor([[math.cos(th) * 1.07, -math.sin(th)], [math.sin(th), math.cos(th) * 0.94]])
    c = torch.full((nd,), (size - 1) / 2)
    return torch.cat([a, (c + torch.tensor([4.0, -3.0, 2.0][:nd]) - a @ c)[:, None]], 1)[None]


def inverse_affine(mat: torch.Tensor) -> torch.Tensor:
    """The inverse of ``[1, N, N + 1]``."""
    n = mat.shape[1]
    a = torch.linalg.inv(mat[0, :, :n])
    return torch.cat([a, -a @ mat[0, :, n:]], 1)[None]
