"""One SAC update on the plan, plus the task's auxiliary loss: only the loss math lives here.

critic:  Q_i(s, z) -> r + gamma (1 - d) [min_j Q'_j(s', z') - alpha log pi(p' | s')]
         (the critic sees ``task.critic_observe(s, obs)``, the policy ``obs = task.observe(s)``)
policy:  rl_weight * (alpha log pi(p | s) - min_j Q_j(s, z)) + aux_weight * aux(s, actor(p))
alpha:   log_alpha * (-log pi - target_entropy)   (SAC v2 temperature tuning)

where ``alpha`` is 0 on the states past an episode's first ``entropy_steps`` steps (when set).

with ``p = tanh(mu + sigma eps)`` drawn with ``rsample`` so the critic trains the planner, and
``z`` the plan (the paper) or the action (``critic_on="action"``, its ablation).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import SACConfig
from . import parallel
from .critic import TwinCritic, make_target, soft_update
from .policy import MetaPolicy


def weighted_mean(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over the samples of weight ``w`` (0 when no sample has weight)."""
    return (x * w).sum() / w.sum().clamp_min(1)


def temperature_loss(log_alpha: torch.Tensor, gap: torch.Tensor, w: torch.Tensor, weighted: bool) -> torch.Tensor:
    """``-log_alpha x`` the mean of ``gap`` (log pi + target entropy) over the samples of weight
    ``w``; under torchrun with ``weighted`` weights, scaled so that the ranks' averaged gradients are
    those of the weighted mean over every rank's samples (each rank's own mean, averaged, weighed a
    rank with few first-step samples as much as one with many)."""
    if weighted and parallel.active():
        share = parallel.summed([float(w.sum())])[0] / parallel.world()
        return -log_alpha * (gap * w).sum() / (share or 1.0)
    return -log_alpha * weighted_mean(gap, w)


class SAC(nn.Module):
    def __init__(self, policy: MetaPolicy, critic: TwinCritic | None, cfg: SACConfig, task):
        super().__init__()
        self.cfg, self.task = cfg, task
        self.policy = policy
        self.policy_opt = torch.optim.Adam(policy.parameters(), lr=cfg.lr_policy)
        self.critic = critic
        if cfg.use_rl:
            if critic is None:
                raise ValueError("use_rl needs a critic")
            self.critic_target = make_target(critic)
            self.critic_opt = torch.optim.Adam(critic.parameters(), lr=cfg.lr_critic)
        self.log_alpha = nn.Parameter(torch.tensor(math.log(cfg.init_alpha)))
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=cfg.lr_alpha)
        self.target_entropy = cfg.target_entropy_per_dim * policy.plan_dim
        self.updates = 0

    @property
    def alpha(self) -> torch.Tensor:
        return self.log_alpha.detach().exp()

    def entropy_weight(self, step: torch.Tensor) -> torch.Tensor:
        """1 where the entropy term acts on a state at episode step ``step`` (0 = the first), else 0."""
        n = self.cfg.entropy_steps
        return torch.ones_like(step, dtype=torch.float32) if n <= 0 else (step < n).float()

    def _z(self, out) -> torch.Tensor:
        return out.plan if self.cfg.critic_on == "plan" else out.action

    def _step(self, opt: torch.optim.Optimizer, loss: torch.Tensor, params) -> None:
        params = list(params)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        loss = parallel.average_gradients(params, loss)       # torchrun: every rank's mean (a no-op alone)
        grads = [p.grad for p in params if p.grad is not None]
        norm = nn.utils.get_total_norm(grads) if grads else loss.new_zeros(())
        # a finite loss may still have a NaN gradient (sqrt at 0): either would spoil the weights
        if not torch.isfinite(loss + norm):
            raise FloatingPointError(f"non-finite loss or gradient (loss {loss.item():.4g}, gradient norm "
                                     f"{norm.item():.4g}) at update {self.updates}")
        if self.cfg.grad_clip > 0:
            nn.utils.clip_grads_with_norm_(params, self.cfg.grad_clip, norm)
        opt.step()

    def update(self, batch: dict) -> dict[str, float]:
        """One gradient step of every learner on a replay batch; returns scalars to log."""
        cfg, task = self.cfg, self.task
        obs = task.observe(batch["state"])
        critic_obs = task.critic_observe(batch["state"], obs) if cfg.use_rl else None
        logs: dict[str, float] = {}
        self.policy.train()
        if cfg.use_rl:
            with torch.no_grad():
                obs_next = task.observe(batch["next_state"])
                nxt = self.policy(obs_next, decode=cfg.critic_on != "plan")
                q_next = self.critic_target.min_q(task.critic_observe(batch["next_state"], obs_next), self._z(nxt))
                bonus = self.alpha * self.entropy_weight(batch["step"] + 1) * nxt.log_prob
                target = batch["reward"] + cfg.gamma * (1 - batch["done"]) * (q_next - bonus)
            q1, q2 = self.critic(critic_obs, batch["z"])
            critic_loss = F.mse_loss(q1, target) + F.mse_loss(q2, target)
            self._step(self.critic_opt, critic_loss, self.critic.parameters())
            logs.update(critic_loss=critic_loss.item(), q=q1.mean().item(), q_target=target.mean().item())

        out, terms, term_logs = self._policy_terms(batch, obs, critic_obs)
        logs.update(term_logs)
        loss = self.log_alpha.new_zeros(())
        if cfg.use_rl:
            ramp = min(1.0, (self.updates + 1) / cfg.rl_warmup) if cfg.rl_warmup else 1.0
            loss = loss + ramp * cfg.rl_weight * terms["rl"]
        if cfg.use_aux:
            loss = loss + cfg.aux_weight * terms["aux"]
        self._step(self.policy_opt, loss, self.policy.parameters())
        if cfg.use_aux:
            logs.update(task.update_learners(batch["state"], out.action.detach()))

        if cfg.use_rl:
            if cfg.autotune_alpha:
                w = self.entropy_weight(batch["step"])
                alpha_loss = temperature_loss(self.log_alpha, out.log_prob.detach() + self.target_entropy, w,
                                              cfg.entropy_steps > 0)
                self._step(self.alpha_opt, alpha_loss, [self.log_alpha])
            soft_update(self.critic_target, self.critic, cfg.tau)
            logs["alpha"] = self.alpha.item()
        self.updates += 1
        return logs

    def _policy_terms(self, batch: dict, obs, critic_obs) -> tuple:
        """``(out, terms, logs)``: the policy's output on ``obs`` and the unweighted terms of its
        loss: with RL ``q`` (min of the twin critics; their weights get no gradient) and ``rl`` =
        mean(alpha log pi - q); with the auxiliary loss ``aux``."""
        out = self.policy(obs)
        terms, logs = {}, {}
        if self.cfg.use_rl:
            self.critic.requires_grad_(False)
            terms["q"] = self.critic.min_q(critic_obs, self._z(out))
            self.critic.requires_grad_(True)
            w = self.entropy_weight(batch["step"])
            terms["rl"] = (self.alpha * w * out.log_prob - terms["q"]).mean()
            logs.update(rl_loss=terms["rl"].item(), entropy=-weighted_mean(out.log_prob.detach(), w).item())
        if self.cfg.use_aux:
            terms["aux"], aux_logs = self.task.auxiliary_loss(batch["state"], out.action, policy=self.policy)
            logs.update(aux_loss=terms["aux"].item(), **aux_logs)
        return out, terms, logs

    def term_gradients(self, batch: dict) -> dict[str, float]:
        """Norms of the planner's gradient from each term of the policy loss on ``batch`` (no
        step taken): ``rl`` (alpha log pi - Q), ``minus_q``, ``aux`` (x aux_weight), and the
        cosine between the RL and auxiliary gradients: how hard each term pulls, for setting
        ``rl_weight`` and ``aux_weight`` (``bench/rl_gradients.py``)."""
        cfg = self.cfg
        if not (cfg.use_rl and cfg.use_aux):
            raise ValueError("term_gradients needs both the RL and the auxiliary terms")
        params = [p for p in self.policy.planner.parameters() if p.requires_grad]

        def grad(loss):
            gs = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
            return torch.cat([(g if g is not None else torch.zeros_like(p)).flatten() for g, p in zip(gs, params)])
        was_training = self.policy.training
        self.policy.train()
        obs = self.task.observe(batch["state"])
        _, t, _ = self._policy_terms(batch, obs, self.task.critic_observe(batch["state"], obs))
        g_rl, g_q, g_aux = grad(t["rl"]), grad(-t["q"].mean()), grad(cfg.aux_weight * t["aux"])
        self.policy.train(was_training)
        return {"rl": g_rl.norm().item(), "minus_q": g_q.norm().item(), "aux": g_aux.norm().item(),
                "cos_rl_aux": F.cosine_similarity(g_rl, g_aux, 0).item()}

    def optim_state(self) -> dict:
        sd = {"policy_opt": self.policy_opt.state_dict(), "alpha_opt": self.alpha_opt.state_dict()}
        if self.cfg.use_rl:
            sd["critic_opt"] = self.critic_opt.state_dict()
        return sd

    def load_optim_state(self, sd: dict) -> None:
        self.policy_opt.load_state_dict(sd["policy_opt"])
        self.alpha_opt.load_state_dict(sd["alpha_opt"])
        if self.cfg.use_rl:
            self.critic_opt.load_state_dict(sd["critic_opt"])
