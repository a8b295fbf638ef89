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
