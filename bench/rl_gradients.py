"""The RL term of a trained RL-I2IT run: how hard it pulls, and whether its critic points the right way.

    python bench/rl_gradients.py RUN_DIR [--batches 8] [--states 32] [--plans 16] [--steps 1,2,5] [--seed 0]

1. Gradient balance: the norm of the planner's gradient from the RL term (alpha log pi - Q), from
   -Q alone, and from the weighted auxiliary term (aux_weight x aux), and the cosine between the
   RL and auxiliary gradients, averaged over ``--batches`` replay batches of the run's batch size.
   A diagnostic for ``sac.rl_weight`` / ``sac.aux_weight``: an RL term far larger than the
   auxiliary one swamps the planner; a far smaller one barely acts.
2. Critic ranking: on ``--states`` training episodes run with the mean plan, at each step of
   ``--steps`` the planner draws ``--plans`` plans of one state; the critic's min Q of each is
   set against the reward the environment gives for it (each plan stepped on a copy of the
   environment), and the rank correlation (Spearman) within each state is averaged over states.
   The planner's RL gradient follows the critic *within* a state (d Q / d plan): near +1 it
   points to plans that do better, near 0 it carries no information beyond noise, below 0 it
   points the wrong way. (One step's reward, not the return: at gamma < 1 with rewards of one
   step's gain the immediate reward is the part a plan decides most.)

The run directory is not changed (it is copied to a temporary folder); its checkpoint must hold
the replay (``checkpoint_replay_mb``).
"""
from __future__ import annotations

import argparse
import copy
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from rl_i2it.config import Config, fill  # noqa: E402
from rl_i2it.core import checkpoint as ckpt  # noqa: E402
from rl_i2it.core.policy import squashed_gaussian  # noqa: E402
from rl_i2it.core.trainer import Trainer  # noqa: E402


def gradient_balance(trainer: Trainer, batches: int = 8, seed: int = 0) -> dict[str, float]:
    """``SAC.term_gradients`` averaged over ``batches`` replay batches."""
    gen = torch.Generator().manual_seed(seed)
    rows = [trainer.sac.term_gradients(trainer.replay.sample(trainer.cfg.sac.batch_size, gen))
            for _ in range(batches)]
    return {k: statistics.mean(r[k] for r in rows) for k in rows[0]}


def spearman_within(q: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Rank correlation ``[B]`` between ``q [K, B]`` and ``r [K, B]`` along K (no tie correction:
    ties are broken by position)."""
    def ranks(x):
        x = x.argsort(0).argsort(0).float()
        return x - x.mean(0)
    a, b = ranks(q), ranks(r)
    return (a * b).sum(0) / (a.norm(dim=0) * b.norm(dim=0)).clamp_min(1e-12)


@torch.no_grad()
def plan_outcomes(task, policy, q_fn, env, state: dict, plans: int, critic_on: str = "plan"
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(q [plans, B], reward [plans, B])``: ``plans`` plans drawn by the planner in ``state``
    (``env``'s current state), each scored by ``q_fn(obs, z)`` and stepped on a shallow copy
    of ``env`` (whose ``step`` reassigns, never changes in place, what it holds)."""
    obs = task.observe(state)
    cobs = task.critic_observe(state, obs)
    mu, log_std, skips = policy.plan_distribution(obs)
    qs, rs = [], []
    for _ in range(plans):
        plan, _ = squashed_gaussian(mu, log_std)
        action = policy.actor(plan, skips)
        qs.append(q_fn(cobs, plan if critic_on == "plan" else action))
        rs.append(copy.copy(env).step(action)[1])
    return torch.stack(qs), torch.stack(rs)


@torch.no_grad()
def critic_ranking(trainer: Trainer, states: int = 32, plans: int = 16, steps=(1, 2, 5), seed: int = 0
                   ) -> dict[int, dict[str, float]]:
    """Per step of ``steps``: the mean within-state Spearman correlation between the critic's min
    Q and the reward of ``plans`` drawn plans (``spearman``, with its standard error ``se``), and
    the mean spread (std) of those rewards and Q values across the plans of one state."""
    task, policy = trainer.task, trainer.policy
    torch.manual_seed(seed)
    env = task.make_env(states, torch.Generator().manual_seed(seed), "train")
    state = env.reset()
    policy.eval()
    out = {}
    for t in range(1, max(steps) + 1):
        if t in steps:
            q, r = plan_outcomes(task, policy, trainer.sac.critic.min_q, env, state, plans, trainer.cfg.sac.critic_on)
            rho = spearman_within(q, r)
            out[t] = {"spearman": rho.mean().item(), "se": (rho.std() / len(rho) ** 0.5).item(),
                      "reward_spread": r.std(0).mean().item(), "q_spread": q.std(0).mean().item()}
        state = env.step(policy(task.observe(state), sample=False).action)[0]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", help="a run directory trained with RL (its checkpoint.pt holds the replay)")
    ap.add_argument("--batches", type=int, default=8)
    ap.add_argument("--states", type=int, default=32, help="training episodes for the critic ranking")
    ap.add_argument("--plans", type=int, default=16, help="plans drawn per state for the critic ranking")
    ap.add_argument("--steps", default="1,2,5", help="steps at which to rank the plans")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    run = Path(args.run)
    saved = ckpt.load(run / "checkpoint.pt")
    cfg = fill(Config, saved["config"])
    if not cfg.sac.use_rl:
        sys.exit(f"{run} was trained without RL: there is no RL term to measure")
    if "replay" not in saved:
        sys.exit(f"{run}/checkpoint.pt holds no replay (its replay was above train.checkpoint_replay_mb)")
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp) / "run"
        scratch.mkdir()
        shutil.copy(run / "checkpoint.pt", scratch / "checkpoint.pt")
        trainer = Trainer(cfg, scratch, verbose=False)
        r = gradient_balance(trainer, args.batches, args.seed)
        steps = tuple(int(v) for v in args.steps.split(","))
        ranking = critic_ranking(trainer, args.states, args.plans, steps, args.seed)
    print(f"{run}: planner gradient norms over {args.batches} replay batches of {cfg.sac.batch_size}")
    print(f"  RL term (alpha log pi - Q): {r['rl']:.4g}   (-Q alone: {r['minus_q']:.4g})")
    print(f"  auxiliary term x {cfg.sac.aux_weight:g}: {r['aux']:.4g}")
    print(f"  RL / auxiliary: {r['rl'] / max(r['aux'], 1e-12):.3f}; cosine between them: {r['cos_rl_aux']:.3f}")
    print(f"critic ranking: {args.plans} plans drawn in each of {args.states} training states; "
          f"Spearman(min Q, reward) within a state (+1: the critic orders plans as their rewards do)")
    for t, k in ranking.items():
        print(f"  step {t}: {k['spearman']:+.3f} +- {k['se']:.3f}   reward spread {k['reward_spread']:.4g}, "
              f"Q spread {k['q_spread']:.4g}")


if __name__ == "__main__":
    main()
