import pytest
import torch

from rl_i2it.core.buffer import Field, ReplayBuffer
from rl_i2it.errors import UserError

FIELDS = {"fixed": Field((1, 4, 4), "uint8", static=True), "current": Field((1, 4, 4), "uint8")}
Z = Field((3,), "float16")


def test_size_known_before_allocation_and_matches(capsys):
    rb = ReplayBuffer(10, FIELDS, Z)
    expected = 16 + 16 + 6 + 4 + 1 + 8 + 1 + 8   # a state (fixed, current), z fp16, reward, done, next row, valid, step
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


def marked(env_ids, t):
    """States whose value encodes (env, step): current = (10 env + t) / 255."""
    cur = torch.stack([torch.full((1, 4, 4), (10 * e + t) / 255) for e in env_ids])
    return {"fixed": torch.stack([torch.full((1, 4, 4), e / 255) for e in env_ids]), "current": cur}


def run_episodes(rb, episodes, steps, n=2, stop_env1_after=None):
    for ep in range(episodes):
        active = torch.ones(n, dtype=torch.bool)
        for t in range(steps):
            s, s2 = marked(range(n), t), marked(range(n), t + 1)
            done = torch.zeros(n, dtype=torch.bool)
            if stop_env1_after is not None and t == stop_env1_after:
                done[1] = True
            rb.add(s, torch.zeros(n, 3), torch.full((n,), 100.0 * ep + t), s2, done, keep=active, first=t == 0)
            active &= ~done


def test_each_state_is_stored_once_and_next_states_follow():
    rb = ReplayBuffer(64, FIELDS, Z, verbose=False)
    run_episodes(rb, 1, 3)
    assert rb.size == 2 * (3 + 1) and len(rb) == 6            # L + 1 rows per episode, L transitions
    b = rb.sample(200, torch.Generator().manual_seed(0))
    cur, nxt = (b["state"]["current"][:, 0, 0, 0] * 255).round(), (b["next_state"]["current"][:, 0, 0, 0] * 255).round()
    assert torch.equal(nxt, cur + 1)                          # the next state is the next step's state
    assert torch.equal((cur % 10), b["reward"])               # ... of this transition
    assert torch.equal(b["step"], cur % 10)                   # each state's step in its episode
    assert torch.equal(b["next_state"]["fixed"], b["state"]["fixed"])


def test_keep_mask_and_ring_recycling_keep_transitions_consistent():
    rb = ReplayBuffer(64, FIELDS, Z, verbose=False)
    run_episodes(rb, 1, 3, stop_env1_after=0)                 # env 1 ends after its first step
    assert len(rb) == 3 + 1 and rb.size == 4 + 2
    small = ReplayBuffer(7, FIELDS, Z, verbose=False)
    run_episodes(small, 3, 3)                                 # 24 rows written into 7
    assert 0 < len(small) < 7
    b = small.sample(300, torch.Generator().manual_seed(1))
    cur, nxt = (b["state"]["current"][:, 0, 0, 0] * 255).round(), (b["next_state"]["current"][:, 0, 0, 0] * 255).round()
    assert torch.equal(nxt, cur + 1) and (b["reward"] >= 200).all()   # only the last episode survives intact
    assert torch.equal(b["step"], cur % 10)                   # steps survive recycling
    with pytest.raises(UserError, match="replay_size"):
        run_episodes(ReplayBuffer(3, FIELDS, Z, verbose=False), 1, 2)


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
    assert torch.equal(rb2.sample(5, torch.Generator().manual_seed(0))["reward"],
                       rb.sample(5, torch.Generator().manual_seed(0))["reward"])


def test_a_replay_saved_without_steps_gets_them_back_from_its_chains():
    rb = ReplayBuffer(64, FIELDS, Z, verbose=False)
    run_episodes(rb, 2, 4, stop_env1_after=1)
    sd = rb.state_dict()
    del sd["data"]["step"]                                    # as a checkpoint written before steps were kept
    old = ReplayBuffer(64, FIELDS, Z, verbose=False)
    old.load_state_dict(sd)
    assert torch.equal(old.data["step"], rb.data["step"]) and rb.data["step"][: rb.size].max() == 4



def test_first_share_draws_that_part_of_the_batch_from_first_transitions():
    rb = ReplayBuffer(64, FIELDS, Z, verbose=False)
    run_episodes(rb, 3, 5)                                  # 1 in 5 transitions is a first one
    g = torch.Generator().manual_seed(0)
    b = rb.sample(8, g, first_share=0.5)
    assert (b["step"][:4] == 0).all()                       # the first half: first transitions only
    steps = torch.cat([rb.sample(8, g, first_share=0.5)["step"][4:] for _ in range(100)])
    assert (steps > 0).float().mean() > 0.6                 # the rest: uniform (4 in 5 not first)
    assert (b["reward"][:4] % 100 == 0).all()               # and their own transitions (reward 100 ep + 0)
