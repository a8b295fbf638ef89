"""bench/rl_gradients.py's critic ranking, and the asymmetric critic (``critic_target``): the
critic sees the target, the policy never does."""
import json

import pytest
import torch

from conftest import faces, image_trainer, load_bench
from rl_i2it.ops.metrics import psnr


@pytest.fixture(scope="module")
def bench():
    return load_bench("rl_gradients")


def test_spearman_within_states(bench):
    r = torch.randn(12, 5, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(bench.spearman_within(r, r), torch.ones(5))
    assert torch.allclose(bench.spearman_within(r.exp() * 3 - 1, r), torch.ones(5))      # monotone: ranks only
    assert torch.allclose(bench.spearman_within(-r, r), -torch.ones(5))
    q = torch.randn(4000, 3, generator=torch.Generator().manual_seed(1))
    noise = torch.randn(4000, 3, generator=torch.Generator().manual_seed(2))
    assert bench.spearman_within(q, noise).abs().max() < 0.06                          # independent: ~0


def test_critic_sees_the_target_and_the_policy_does_not(tmp_path, photo_data):
    tr = image_trainer("inpainting", tmp_path, faces(photo_data), steps=6, critic_target=True)
    state = tr.env.reset()
    obs = tr.task.observe(state)
    cobs = tr.task.critic_observe(state, obs)
    assert obs.shape[1] == 4 and cobs.shape[1] == 7
    assert torch.equal(cobs[:, :4], obs) and torch.equal(cobs[:, 4:], state["target"])
    batch_state = {k: v for k, v in state.items() if k != "target"}            # replay rows: the index only
    assert torch.equal(tr.task.critic_observe(batch_state, obs)[:, 4:], state["target"])
    tr.train()
    assert tr.counters["updates"] >= 6
    plan = tr.policy(obs).plan
    assert tr.sac.critic.min_q(cobs, plan).shape == (len(obs),)
    with pytest.raises(RuntimeError):                                      # built for 7 channels
        tr.sac.critic.min_q(obs, plan)
    plain = image_trainer("inpainting", tmp_path / "plain", faces(photo_data), steps=1)
    assert plain.task.critic_observe(state, obs) is obs


def test_an_update_observes_each_state_once(tmp_path, photo_data, monkeypatch):
    """The critic's observation is built on the policy's: one ``observe`` per state and next state."""
    tr = image_trainer("inpainting", tmp_path, faces(photo_data), steps=1)
    tr.train()
    calls = []
    observe = tr.task.observe
    monkeypatch.setattr(tr.task, "observe", lambda state: calls.append(1) or observe(state))
    tr.sac.update(tr.replay.sample(8, torch.Generator().manual_seed(0)))
    assert len(calls) == 2


def test_plan_outcomes_steps_each_plan_on_a_copy(bench, tmp_path, photo_data):
    """With an oracle for a critic (the reward the plan's image earns, computed from the target
    the asymmetric critic sees), the ranking is perfect; the environment itself never moves."""
    tr = image_trainer("inpainting", tmp_path, faces(photo_data), steps=1, critic_target=True)
    task, policy, env = tr.task, tr.policy.eval(), tr.env
    state = env.reset()
    before = env.current.clone()

    def oracle(cobs, plan):
        obs, target = cobs[:, :4], cobs[:, 4:]
        image = torch.where(state["mask"], policy.actor(plan, policy.plan_distribution(obs)[2]), obs[:, :3])
        return task.options.reward_scale * (psnr(image, target, state["mask"]) - env.score)

    q, r = bench.plan_outcomes(task, policy, oracle, env, state, plans=8)
    assert q.shape == r.shape == (8, env.n)
    assert torch.allclose(q, r, atol=1e-4) and r.std(0).min() > 0
    assert torch.allclose(bench.spearman_within(q, r), torch.ones(env.n))
    assert torch.equal(env.current, before)
    ranking = bench.critic_ranking(tr, states=4, plans=4, steps=(1, 2))
    assert set(ranking) == {1, 2} and all(-1 <= k["spearman"] <= 1 for k in ranking.values())


def test_resume_with_copies_a_run_that_resumes_under_the_changed_settings(tmp_path, photo_data):
    import math
    from rl_i2it.config import load_config
    from rl_i2it.core.trainer import Trainer
    from rl_i2it.errors import UserError
    from rl_i2it.tasks.inpainting import InpaintingTask
    tool = load_bench("resume_with")
    tr = image_trainer("inpainting", tmp_path / "run", faces(photo_data), steps=6)
    tr.train()
    done = tr.counters["updates"]

    def trainer(run, **sac):                       # the source run's settings, with ``sac`` changed
        cfg = load_config(tmp_path / "run/config.json", {"sac": sac, "train": {"steps": done + 4}})
        return Trainer(cfg, run, task=InpaintingTask(cfg.task_options, data=faces(photo_data)), verbose=False)
    with pytest.raises(UserError, match="sac.bogus"):
        tool.resume_with(tmp_path / "run", tmp_path / "bad", ["sac.bogus=1"])
    assert not (tmp_path / "bad").exists()
    config = tool.resume_with(tmp_path / "run", tmp_path / "copy", ["sac.entropy_steps=1", "sac.init_alpha=0.01"])
    assert config["sac"]["entropy_steps"] == 1 and json.loads((tmp_path / "copy/config.json").read_text()) == config
    with pytest.raises(UserError, match="exists"):
        tool.resume_with(tmp_path / "run", tmp_path / "copy", ["sac.entropy_steps=2"])
    with pytest.raises(UserError, match="another config"):
        trainer(tmp_path / "copy")                                     # the old settings: refused
    with pytest.raises(UserError, match="another config"):
        trainer(tmp_path / "run", entropy_steps=1, init_alpha=0.01)    # the source is unchanged
    resumed = trainer(tmp_path / "copy", entropy_steps=1, init_alpha=0.01)
    assert resumed.counters["updates"] == done
    assert resumed.sac.log_alpha.item() == pytest.approx(math.log(0.01))
    assert resumed.replay.data["step"][: resumed.replay.size].max() == 3     # horizon 3: steps 0-3 kept
    resumed.train()
    assert resumed.counters["updates"] >= done + 4
