"""Why the 3D liver models stay near identity: what a network learns of its loss, against what
the loss itself can give.

    python bench/registration_probe.py [--size 32] [--seconds 40] [--pairs 8] [--seed 0]

Trains the one-step planner-actor of ``configs/liver3d.toml`` (on the preset's observation, the
NCC force included; mean plan, no RL) on the synthetic liver pairs at ``--size``^3 with its
auxiliary loss alone (local NCC + smoothness of the step's field) for ``--seconds``, printing the
validation pairs' NCC and Dice as it goes; then optimises one field per validation pair directly
(Adam on a half-size field, the same loss, 150 iterations: instance optimisation, the loss's own
ceiling at that field resolution) and prints NCC, liver and tumour Dice, mean |field| and the
cosine between the two fields.
A diagnostic, not a method of the benchmark: nothing is saved.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from rl_i2it.config import load_config  # noqa: E402
from rl_i2it.data.pairs import load_pairs  # noqa: E402
from rl_i2it.ops.losses import ncc_loss, smoothness  # noqa: E402
from rl_i2it.ops.metrics import mean_dice  # noqa: E402
from rl_i2it.ops.warp import warp  # noqa: E402
from rl_i2it.tasks.registration import RegistrationTask, warp_labels  # noqa: E402


def images(ps, idx) -> tuple[torch.Tensor, torch.Tensor]:
    return ps.fixed[idx].float() / 255, ps.moving[idx].float() / 255


def scores(ps, n: int, field: torch.Tensor, window: int) -> dict[str, float]:
    f, m = images(ps, slice(0, n))
    ml, fl = ps.moving_labels[:n].long(), ps.fixed_labels[:n].long()
    wl = warp_labels(ml, field)
    return {"ncc": -ncc_loss(f, warp(m, field), window).item(), "dice": mean_dice(wl, fl).mean().item(),
            "liver": mean_dice(wl, fl, [1]).mean().item(), "tumour": mean_dice(wl, fl, [2]).mean().item(),
            "mean |u|": field.abs().mean().item()}


def line(name: str, s: dict) -> str:
    return f"| {name} | " + " | ".join(f"{v:.4f}" for v in s.values()) + " |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=32, help="voxels per axis (default 32)")
    ap.add_argument("--seconds", type=float, default=40.0, help="training time of the network (default 40)")
    ap.add_argument("--pairs", type=int, default=8, help="validation pairs scored (default 8)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    cfg = load_config(ROOT / "configs" / "liver3d.toml", {"task_options": {"size": args.size}})
    o, batch = cfg.task_options, cfg.sac.batch_size
    torch.manual_seed(args.seed)
    task = RegistrationTask(o)
    window, weight = task.options.ncc_window, task.options.smooth_weight
    policy = task.build_policy()
    train, valid = load_pairs("liver3d", "train", task.options.n_pairs, args.size), load_pairs("liver3d", "valid", 64, args.size)
    n = min(args.pairs, len(valid))
    fv, mv = images(valid, slice(0, n))
    opt = torch.optim.Adam(policy.parameters(), lr=cfg.sac.lr_policy)
    gen = torch.Generator().manual_seed(args.seed)
    zero = torch.zeros(n, 3, *task.grid)
    print(f"liver3d at {args.size}^3, {n} validation pairs; one-step network, batch {batch}, lr {cfg.sac.lr_policy}")
    print("| field | NCC | Dice | liver | tumour | mean abs field (vx) |\n|---|---|---|---|---|---|")
    print(line("identity", scores(valid, n, zero, window)), flush=True)
    t0, updates, report = time.perf_counter(), 0, args.seconds / 4
    while time.perf_counter() - t0 < args.seconds:
        f, m = images(train, torch.randint(0, len(train), (batch,), generator=gen))
        step = policy(task.observe({"fixed": f, "current": m}), sample=False).action
        loss = ncc_loss(f, warp(m, step), window) + weight * smoothness(step)
        opt.zero_grad()
        loss.backward()
        opt.step()
        updates += 1
        if time.perf_counter() - t0 >= report:
            report += args.seconds / 4
            with torch.no_grad():
                net = policy(task.observe({"fixed": fv, "current": mv}), sample=False).action
            print(line(f"network, {updates} updates", scores(valid, n, net, window)), flush=True)
    with torch.no_grad():
        net = policy(task.observe({"fixed": fv, "current": mv}), sample=False).action
    coarse = torch.zeros(n, 3, *[s // 2 for s in task.grid], requires_grad=True)
    opt = torch.optim.Adam([coarse], lr=0.05)
    for _ in range(150):
        field = F.interpolate(coarse, size=task.grid, mode="trilinear", align_corners=True)
        loss = ncc_loss(fv, warp(mv, field), window) + weight * smoothness(field)
        opt.zero_grad()
        loss.backward()
        opt.step()
    field = field.detach()
    print(line("per-pair optimisation (150 Adam steps)", scores(valid, n, field, window)))
    print(f"cosine(network field, optimised field) = {F.cosine_similarity(net.flatten(), field.flatten(), 0).item():.3f}")


if __name__ == "__main__":
    main()
