"""The classical tools: skipped with a clear line when absent; when present, their fields come back
in our convention (warping the moving image with them brings it onto the fixed one)."""
import numpy as np
import pytest
import torch

from rl_i2it.baselines import classical
from rl_i2it.ops.warp import warp


def test_missing_tool_is_reported(monkeypatch):
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    assert not classical.available("syn") and not classical.available("elastix")
    assert "pip install .[baselines]" in classical.missing_line("syn")


@pytest.mark.parametrize("tool", ["syn", "elastix"])
def test_fields_follow_our_convention(tool):
    if not classical.available(tool):
        pytest.skip(classical.missing_line(tool))
    yy, xx = np.mgrid[0:48, 0:48].astype(np.float32)
    blob = lambda cy, cx: np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 60)   # noqa: E731
    fixed, moving = blob(24, 24)[None], blob(27, 21)[None]                   # moved 3 down, 3 left
    fields, secs = classical.register_pairs(tool, fixed, moving)
    assert fields.shape == (1, 2, 48, 48) and len(secs) == 1
    assert abs(fields[0, 0, 24, 24] - 3) < 1 and abs(fields[0, 1, 24, 24] + 3) < 1   # pull-back, row/column order
    warped = warp(torch.from_numpy(moving)[None], torch.from_numpy(fields))[0, 0].numpy()
    near = (yy - 24) ** 2 + (xx - 24) ** 2 < 100                                     # the blob itself
    if tool == "syn":    # elastix's B-spline wanders in this toy's flat background; its centre is right
        assert np.abs(warped - fixed[0])[near].mean() < 0.6 * np.abs(moving - fixed)[0][near].mean()
