"""Checks on the real pretrained weights; skipped unless they are already in the user's cache
(``rl_i2it.features.fetch_weights`` puts them there; tests never fetch)."""
import importlib
import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from rl_i2it.data.cache import sha256
from rl_i2it.features import LPIPS, VGG16Features, inception_features, lpips

# read before the autouse fixture points RL_I2IT_DATA at an empty folder
REAL_CACHE = Path(os.environ.get("RL_I2IT_DATA", Path.home() / ".cache" / "rl-i2it")).expanduser()
W = importlib.import_module("rl_i2it.features.weights")


@pytest.fixture
def real_cache(monkeypatch):
    def use(*names):
        for name in names:
            for m in W._MEMBERS[name]:
                if not (REAL_CACHE / "weights" / m.out).is_file():
                    pytest.skip(f"{name} weights not in {REAL_CACHE} (fetch them with rl_i2it.features.fetch_weights)")
        monkeypatch.setenv("RL_I2IT_DATA", str(REAL_CACHE))
        for module in ("lpips", "fid"):
            monkeypatch.setattr(importlib.import_module(f"rl_i2it.features.{module}"), "_CACHE", {})
    return use


def test_real_lpips(real_cache, smooth):
    real_cache("alexnet", "lpips")
    heads = W._MEMBERS["lpips"][0]
    assert sha256(REAL_CACHE / "weights" / heads.out) == heads.sha256
    x, y = smooth(2, 64, seed=0), smooth(2, 64, seed=1)
    blurred = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    torch.testing.assert_close(lpips(x, x), torch.zeros(2))
    near, far = lpips(x, blurred), lpips(x, y)
    assert (near < 0.2).all() and (far > near).all(), (near, far)
    assert all(w.min() >= 0 for w in (lin.weight for lin in LPIPS("alex").lins))   # v0.1 heads are non-negative


def test_real_vgg16(real_cache, smooth):
    real_cache("vgg16")
    out = VGG16Features()(smooth(1, 32), ["relu1_2", "relu3_3"])
    assert all(torch.isfinite(v).all() and 0 < v.mean() < 10 for v in out.values())


def test_real_inception(real_cache, smooth):
    real_cache("inception")
    f = inception_features(smooth(2, 32))
    assert f.shape == (2, 2048) and torch.isfinite(f).all() and (f >= 0).all() and f.mean() > 0
