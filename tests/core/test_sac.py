import copy

import pytest
import torch

from rl_i2it.config import load_config
from rl_i2it.core.buffer import ReplayBuffer
from rl_i2it.core.critic import TwinCritic
from rl_i2it.core.sac import SAC
from rl_i2it.tasks.digits import DigitsTask
from conftest import SMALL


def setup(digits, **sac):
    cfg = load_config(None, {"sac": {"batch_size": 16, **sac}})
    task = DigitsTask(dict(SMALL, transform="cross"), data=digits)
    pol = task.build_policy()
    critic = TwinCritic(lambda: task.build_critic(cfg.sac.critic_on)) if cfg.sac.use_rl else None
    agent = SAC(pol, critic, cfg.sac, task)
    env = task.make_env(16, torch.Generator().manual_seed(0))
    rb = ReplayBuffer(64, task.state_fields(), task.z_field(cfg.sac.critic_on), verbose=False)
    s = env.reset()
    with torch.no_grad():
        out = pol(task.observe(s))
    s2, r, d, _ = env.step(out.action)
    rb.add(s, out.plan if cfg.sac.critic_on == "plan" else out.action, r, s2, d)
    return agent, rb.sample(16, torch.Generator().manual_seed(1))


def test_target_is_an_ema_with_tau(digits):
    agent, batch = setup(digits, tau=0.25)
    before = [p.clone() for p in agent.critic_target.parameters()]
    agent.update(batch)
    for t, old, new in zip(agent.critic_target.parameters(), before, agent.critic.parameters()):
        torch.testing.assert_close(t, 0.75 * old + 0.25 * new)


def test_critic_fits_its_targets(digits):
    agent, batch = setup(digits, lr_critic=1e-3, gamma=0.0)     # gamma 0: target = reward
    first = agent.update(batch)["critic_loss"]
    for _ in range(60):
        last = agent.update(batch)["critic_loss"]
    assert last < 0.5 * first


@pytest.mark.parametrize("per_dim,sign", [(10.0, 1), (-10.0, -1)])
def test_temperature_moves_toward_target_entropy(digits, per_dim, sign):
    agent, batch = setup(digits, target_entropy_per_dim=per_dim, lr_alpha=0.05)
    a0 = agent.alpha.item()
    for _ in range(3):
        agent.update(batch)
    assert (agent.alpha.item() - a0) * sign > 0


def test_policy_step_leaves_critic_alone_and_trains_planner(digits):
    agent, batch = setup(digits, use_aux=False, lr_critic=1e-12)
    planner0 = copy.deepcopy(agent.policy.planner.state_dict())
    critic0 = copy.deepcopy(agent.critic.state_dict())
    agent.update(batch)
    moved = max((agent.policy.planner.state_dict()[k] - v).abs().max() for k, v in planner0.items())
    assert moved > 0                    # the RL objective alone moved the planner (the critic's path: term_gradients)
    drift = max((agent.critic.state_dict()[k] - v).abs().max() for k, v in critic0.items())
    assert drift < 1e-6                 # ...and the policy step did not step the critic


def test_no_rl_has_no_critic_and_no_rl_terms(digits):
    agent, batch = setup(digits, use_rl=False)
    logs = agent.update(batch)
    assert agent.critic is None and "critic_loss" not in logs and "aux_loss" in logs


def test_no_aux_and_critic_on_action(digits):
    agent, batch = setup(digits, use_aux=False, critic_on="action")
    logs = agent.update(batch)
    assert "aux_loss" not in logs and "critic_loss" in logs
    assert batch["z"].shape[1:] == (2, 28, 28)


def test_term_gradients_scale_with_their_weights_and_take_no_step(digits):
    agent, batch = setup(digits)
    before = copy.deepcopy(agent.policy.state_dict())
    agent.policy.eval()
    g = agent.term_gradients(batch)
    assert not agent.policy.training                # the caller's mode is kept
    assert all(g[k] > 0 for k in ("rl", "minus_q", "aux")) and -1 <= g["cos_rl_aux"] <= 1
    assert all(torch.equal(v, agent.policy.state_dict()[k]) for k, v in before.items())
    agent.cfg.aux_weight *= 3                      # the auxiliary norm is of aux_weight x aux
    torch.manual_seed(0)
    g1 = agent.term_gradients(batch)
    agent.cfg.aux_weight /= 3
    torch.manual_seed(0)
    g0 = agent.term_gradients(batch)
    assert g1["aux"] == pytest.approx(3 * g0["aux"], rel=1e-4) and g1["rl"] == pytest.approx(g0["rl"], rel=1e-4)
    noaux, _ = setup(digits, use_aux=False)
    with pytest.raises(ValueError, match="both"):
        noaux.term_gradients(batch)


def test_entropy_steps_keep_the_entropy_term_off_the_later_steps(digits):
    def agent_with(entropy_steps):
        torch.manual_seed(0)
        agent, batch = setup(digits, entropy_steps=entropy_steps, init_alpha=1.0, lr_alpha=0.05)
        return agent, batch
    every, batch = agent_with(0)
    assert (batch["step"] == 0).all()                 # setup's transitions leave first states
    first, _ = agent_with(1)
    assert first.entropy_weight(torch.tensor([0, 1, 4])).tolist() == [1.0, 0.0, 0.0]
    assert every.entropy_weight(torch.tensor([0, 1, 4])).tolist() == [1.0, 1.0, 1.0]
    # the soft target: the next state (step 1) has the bonus with 0 or 2 entropy steps, not with 1
    q_target = {}
    for n in (0, 1, 2):
        agent, _ = agent_with(n)
        torch.manual_seed(1)
        q_target[n] = agent.update(batch)["q_target"]
    assert q_target[2] == pytest.approx(q_target[0], abs=1e-6) and abs(q_target[1] - q_target[0]) > 1e-3
    # past the first step: no entropy in the policy's RL term and no temperature tuning
    later = dict(batch, step=batch["step"] + 1)
    obs = first.task.observe(later["state"])
    _, terms, _ = first._policy_terms(later, obs, first.task.critic_observe(later["state"], obs))
    assert terms["rl"].item() == pytest.approx(-terms["q"].mean().item(), abs=1e-6)
    a0 = first.alpha.item()
    first.update(later)
    assert first.alpha.item() == a0
    first.update(batch)
    assert first.alpha.item() != a0


def test_soft_target_stops_at_an_episodes_end(digits):
    """r + gamma (1 - done) [...]: past an episode's last step nothing is bootstrapped."""
    for done, bootstrapped in ((1.0, False), (0.0, True)):
        torch.manual_seed(0)
        agent, batch = setup(digits, gamma=0.99)
        batch = dict(batch, done=torch.full_like(batch["done"], done))
        q_target = agent.update(batch)["q_target"]
        assert (q_target != pytest.approx(batch["reward"].mean().item(), abs=1e-4)) == bootstrapped


def test_the_target_takes_the_lower_of_the_twin_critics_and_both_learn(digits):
    def q_target(offset):
        torch.manual_seed(0)
        agent, batch = setup(digits, gamma=0.99)
        batch = dict(batch, done=torch.zeros_like(batch["done"]))
        q1, q2 = agent.critic_target.q1, agent.critic_target.q2
        q2.load_state_dict(q1.state_dict())
        q2.forward = lambda obs, z, f=q2.forward: f(obs, z) + offset     # q2' = q1' + offset
        before = copy.deepcopy(agent.critic.state_dict())
        torch.manual_seed(1)
        out = agent.update(batch)["q_target"]
        for name in ("q1", "q2"):                 # each critic took its own step
            assert any(not torch.equal(v, agent.critic.state_dict()[k]) for k, v in before.items()
                       if k.startswith(name + "."))
        return out
    same = q_target(0.0)
    assert q_target(5.0) == pytest.approx(same, abs=1e-4)                 # the higher one is not used
    assert q_target(-5.0) == pytest.approx(same - 0.99 * 5, abs=1e-3)     # the lower one is
    torch.manual_seed(0)
    agent, batch = setup(digits)
    obs = agent.task.critic_observe(batch["state"], agent.task.observe(batch["state"]))
    a, b = agent.critic(obs, batch["z"])
    assert not torch.allclose(a, b) and torch.equal(agent.critic.min_q(obs, batch["z"]), torch.minimum(a, b))


def test_the_policys_rl_term_holds_the_entropy_term(digits):
    """rl = mean(alpha log pi - min Q): with alpha 1 the log-probability counts in full."""
    torch.manual_seed(0)
    agent, batch = setup(digits, init_alpha=1.0)
    obs = agent.task.observe(batch["state"])
    out, terms, _ = agent._policy_terms(batch, obs, agent.task.critic_observe(batch["state"], obs))
    assert abs(out.log_prob.mean().item()) > 1e-2
    assert terms["rl"].item() == pytest.approx((out.log_prob - terms["q"]).mean().item(), rel=1e-5)


def test_the_rl_term_ramps_up_over_rl_warmup(digits):
    def policy_losses(warmup):
        torch.manual_seed(0)
        agent, batch = setup(digits, use_aux=False, rl_warmup=warmup)
        losses, step = [], agent._step
        def record(opt, loss, params):
            if opt is agent.policy_opt:
                losses.append(loss.item())
            step(opt, loss, params)
        agent._step = record
        torch.manual_seed(1)
        agent.update(batch)
        return losses[0]
    assert policy_losses(4) == pytest.approx(0.25 * policy_losses(0), rel=1e-5)     # update 1 of 4: a quarter
