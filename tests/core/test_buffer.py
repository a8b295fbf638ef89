import pytest
import torch

from rl_i2it.core.buffer import Field, ReplayBuffer
from rl_i2it.errors import UserError

FIELDS = {"fixed": Field((1, 4, 4), "uint8", static=True), "current": Field((1, 4, 4), "uint8")}
Z = Field((3,), "float16")


def test_size_known_before_allocation_and_matches(capsys):
    rb = ReplayBuffer(10, FIELDS, Z)
    expected = 16 + 16 + 16 + 6 + 4 + 1            # fixed once, current and next, z fp16, reward, done
    assert rb.bytes_per_transition == expected
    assert rb.nbytes == 10 * expected == sum(t.numel() * t.element_size() for t in rb.data.values())
    assert "MiB" in capsys.readouterr().out


def test_roundtrip_and_quantisation():
    rb = ReplayBuffer(8, FIELDS, Z, verbose=False)
    s = {"fixed": torch.rand(4, 1, 4, 4), "current": torch.rand(4, 1, 4, 4)}
    s2 = {"fixed": s["fixed"], "current": torch.rand(4, 1, 4, 4)}
    z, r, d = torch.randn(4, 3), torch.arange(4.0), torch.tensor([0, 1, 0, 0]).bool()
    rb.add(s, z, r, s2, d)
    b = rb.sample(64, torch.Generator().manual_seed(0))
    assert b["state"]["fixed"].shape == (64, 1, 4, 4)
    # every sampled row is one of the stored rows, within uint8 / fp16 precision
    for i in range(64):
        k = int(b["reward"][i])
        assert (b["state"]["current"][i] - s["current"][k]).abs().max() <= 0.5 / 255 + 1e-6
        assert (b["next_state"]["current"][i] - s2["current"][k]).abs().max() <= 0.5 / 255 + 1e-6
        assert torch.equal(b["next_state"]["fixed"][i], b["state"]["fixed"][i])
        assert (b["z"][i] - z[k]).abs().max() < 1e-2
        assert b["done"][i] == float(d[k])


def test_ring_wraps_and_keep_mask():
    rb = ReplayBuffer(5, FIELDS, Z, verbose=False)
    for step in range(3):
        s = {"fixed": torch.zeros(2, 1, 4, 4), "current": torch.zeros(2, 1, 4, 4)}
        rb.add(s, torch.zeros(2, 3), torch.full((2,), float(step)), s, torch.zeros(2, dtype=torch.bool),
               keep=torch.tensor([True, step != 1]))
    assert len(rb) == 5 and rb.pos == 0
    assert sorted(rb.data["reward"].tolist()) == [0.0, 0.0, 1.0, 2.0, 2.0]


def test_refuses_what_does_not_fit():
    with pytest.raises(UserError, match="replay needs"):
        ReplayBuffer(10**9, FIELDS, Z, memory_fraction=0.01, verbose=False)


def test_state_dict_roundtrip():
    rb = ReplayBuffer(6, FIELDS, Z, verbose=False)
    s = {"fixed": torch.rand(3, 1, 4, 4), "current": torch.rand(3, 1, 4, 4)}
    rb.add(s, torch.randn(3, 3), torch.rand(3), s, torch.zeros(3, dtype=torch.bool))
    rb2 = ReplayBuffer(6, FIELDS, Z, verbose=False)
    rb2.load_state_dict(rb.state_dict())
    assert len(rb2) == 3 and all(torch.equal(rb.data[k], rb2.data[k]) for k in rb.data)
