"""Image helpers: uint8 pictures in and out of [0, 1] tensors."""
import numpy as np
import torch

from rl_i2it.data.images import from_uint8, to_uint8


def test_from_uint8_and_to_uint8_are_inverse():
    a = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    t = from_uint8(a)
    assert t.shape == (3, 5, 7) and t.dtype == torch.float32 and 0 <= t.min() and t.max() <= 1
    assert torch.allclose(t[:, 2, 3], torch.from_numpy(a[2, 3]).float() / 255)
    assert np.array_equal(to_uint8(t), a)
    before = t.clone()
    a[:] = 0
    assert torch.equal(t, before)                          # a copy: later edits of the array do not reach it
