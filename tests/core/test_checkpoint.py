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


def test_a_write_cut_short_is_an_os_error_and_leaves_the_old_file(tmp_path):
    """Past a file size limit (as on a full disk) torch's writer raises a RuntimeError of its own;
    the command line reports OSErrors in one line, so atomic_save raises one naming the file."""
    import subprocess
    import sys
    import textwrap
    path = tmp_path / "checkpoint.pt"
    atomic_save({"x": torch.zeros(2)}, path)
    script = textwrap.dedent(f"""
        import resource, signal, torch
        from rl_i2it.core.checkpoint import atomic_save
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)           # a write past the limit fails (EFBIG)
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
        try:
            atomic_save({{"x": torch.zeros(1_000_000)}}, {str(path)!r})
        except OSError as exc:
            print("OSError", exc.filename)
    """)
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert res.stdout.split() == ["OSError", str(path)], res.stdout + res.stderr
    assert torch.load(path, weights_only=True)["x"].shape == (2,)
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_flipped_bytes_in_a_checkpoint_are_refused_with_a_way_on(tmp_path):
    """torch.load read a checkpoint with flipped bytes without a word (a review resumed one with other
    critic weights and replay); the zip's checksums catch it, and the message says how to go on."""
    import random

    import pytest
    from rl_i2it.core.checkpoint import TRAIN_FORMAT, load
    from rl_i2it.errors import UserError
    path = tmp_path / "checkpoint.pt"
    atomic_save({"format": TRAIN_FORMAT, "x": torch.randn(300, 300)}, path)
    assert load(path)["x"].shape == (300, 300)
    data = bytearray(path.read_bytes())
    for i in random.Random(0).sample(range(len(data) // 4, len(data) // 2), 10):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(UserError, match=r"damaged \(.* fails its checksum\); to go on from the run's policy.pt: "
                                        r"`rl-i2it train ... --init"):
        load(path)
    policy = tmp_path / "policy.pt"                      # a damaged model beside a sound checkpoint: that one
    policy.write_bytes(b"PK\x03\x04 cut short")
    atomic_save({"format": TRAIN_FORMAT, "x": torch.randn(3)}, path)
    with pytest.raises(UserError, match=r"not a valid torch file .*; the checkpoint.pt beside it holds the model "
                                        r"too: give .*checkpoint.pt$"):
        load(tmp_path)
    assert load(path)["x"].shape == (3,)
