"""Warping error (DIS flow, occlusion mask) and the synthetic motion of the temporal regularisation."""
import numpy as np
import torch

from conftest import moving_frames
from rl_i2it.ops.temporal import consistency_mask, dis_flow, synthetic_motion, warp_error, warp_image, warp_np


def test_dis_flow_finds_a_shift_and_the_mask_keeps_consistent_pixels():
    f = moving_frames(2, shift=2)
    flow = dis_flow(f[1], f[0])                 # f1(x) = f0(x + 2): flow x ~ +2
    inner = flow[8:-8, 8:-8]
    assert abs(np.median(inner[..., 0]) - 2) < 0.3 and abs(np.median(inner[..., 1])) < 0.3
    mask = consistency_mask(flow, dis_flow(f[0], f[1]))
    assert mask[8:-8, 8:-8].mean() > 0.9
    warped = warp_np(f[0].astype(np.float32), flow)
    assert np.abs(warped[8:-8, 8:-8] - f[1][8:-8, 8:-8]).mean() < 6


def test_warp_error_is_low_for_consistent_outputs_and_high_for_flicker():
    f = moving_frames(5)
    steady = f.astype(np.float32) / 255
    flicker = np.clip(steady * np.array([1.0, 0.6, 1.0, 0.6, 1.0])[:, None, None, None], 0, 1)
    e0, e1 = warp_error(f, steady), warp_error(f, flicker)
    assert e0 < 0.003 and e1 > 10 * e0


def test_synthetic_motion_is_seeded_smooth_and_warps_like_a_shift():
    g = torch.Generator().manual_seed(0)
    flow = synthetic_motion((2, 3, 32, 32), g, max_shift=4.0, max_flow=2.0)
    assert flow.shape == (2, 2, 32, 32) and flow.abs().max() <= 6.0
    assert torch.equal(flow, synthetic_motion((2, 3, 32, 32), torch.Generator().manual_seed(0)))
    assert (flow.diff(dim=3).abs().max()) < 0.5                 # smooth
    x = torch.rand(1, 3, 16, 16)
    shift = torch.zeros(1, 2, 16, 16)
    shift[:, 0] = 1.0                                           # sample one pixel to the right
    assert torch.allclose(warp_image(x, shift)[..., :, :-1], x[..., :, 1:], atol=1e-5)


def test_warp_error_counts_only_the_pixels_the_mask_keeps(monkeypatch):
    """Occluded pixels (the forward-backward check fails) are left out: outputs that differ only
    there score as steady."""
    import rl_i2it.ops.temporal as temporal
    f = moving_frames(2)
    steady = f.astype(np.float32) / 255
    changed = steady.copy()
    changed[1, :, changed.shape[2] // 2:] = 1 - changed[1, :, changed.shape[2] // 2:]   # frame 1's right half
    assert warp_error(f, changed) > 10 * warp_error(f, steady)
    def keep_left(fw, bw):                                      # as if the right half were occluded
        return np.broadcast_to(np.arange(fw.shape[1]) < fw.shape[1] // 2 - 8, fw.shape[:2])
    monkeypatch.setattr(temporal, "consistency_mask", keep_left)
    assert warp_error(f, changed) < 0.003
