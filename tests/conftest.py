"""Shared fixtures: small synthetic digit data made here (tests never touch the network or caches)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

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
