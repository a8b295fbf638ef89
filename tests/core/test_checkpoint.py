"""Checkpoints are written atomically and readable as the user's other files are."""
import os

import torch

from rl_i2it.core.checkpoint import atomic_save


def test_saved_files_have_the_modes_of_the_users_other_files(tmp_path):
    umask = os.umask(0o022)
    try:
        atomic_save({"x": torch.zeros(2)}, tmp_path / "policy.pt")
        (tmp_path / "other.txt").write_text("")
    finally:
        os.umask(umask)
    mode = lambda name: os.stat(tmp_path / name).st_mode & 0o777      # noqa: E731
    assert mode("policy.pt") == mode("other.txt") == 0o644            # mkstemp alone gives 0600
    assert torch.load(tmp_path / "policy.pt", weights_only=True)["x"].shape == (2,)
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
