"""Paired photo translation benchmark (paper section 4.3, Tables III-IV), in one run.

    python bench/translation.py [--kinds edges,grey] [--minutes M] [--json FILE] [--out DIR] [--device cpu|cuda]

No paired set (facades, cityscapes, edges2shoes) is reachable offline, so the pairs are made from
reachable photos (``data/paired.py``): ``edges`` (edge map -> photo) and ``grey`` (grey ->
colour), from the CelebA faces and bundled photos at 64x64; the test pairs come from faces
000900-000999 and held-out photo crops, never trained on.

Per kind, RL-I2IT and a pix2pix-style one-step generator (the same encoder-decoder with skips,
trained without RL on one step with L1 + 0.01 x a conditional PatchGAN with BCE: pix2pix's
lambda = 100) are trained for the same wall time, one after the other; then both translate the
same test pairs. Reported: PSNR, SSIM, LPIPS (AlexNet v0.1), seconds per image; and a table of
parameters and multiply-accumulates (our own count) like the paper's Table IV.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from rl_i2it.data.cache import write_json  # noqa: E402
from rl_i2it.core.critic import TwinCritic  # noqa: E402
from rl_i2it.core.trainer import load_policy  # noqa: E402
from rl_i2it.experiment import train_methods  # noqa: E402
from rl_i2it.nets.profile import count_macs, count_params  # noqa: E402
from rl_i2it.ops.gan import Discriminator  # noqa: E402
from rl_i2it.tasks.imagegen import evaluate, format_scores, predict  # noqa: E402
from rl_i2it.viz import image_grid  # noqa: E402

METRICS = ("psnr_full", "ssim_full", "lpips", "sec_per_image")
METHODS = {"rl": {}, "pix2pix": {"sac": {"use_rl": False}, "train": {"horizon": 1},
                                 "task_options": {"gan": "vanilla", "adv_weight": 0.01}}}
LABEL = {"pix2pix": "pix2pix-style (one step)", "rl_t1": "RL-I2IT T=1", "rl_t5": "RL-I2IT T=5",
         "rl_t10": "RL-I2IT T=10"}


def cost_table(task, policy, steps=10) -> tuple[str, dict]:
    """Parameters and MACs per image of each network (one step of planner + actor; T steps)."""
    s, dev = task.options.size, task.device
    obs = torch.rand(1, task.in_channels, s, s, device=dev)
    plan = torch.zeros(1, *task.plan_shape, device=dev)
    critic = TwinCritic(lambda: task.build_critic("plan")).to(dev)
    o = task.options
    disc = Discriminator(3, s, tuple(o.disc_widths), o.gan, o.disc, 3 if o.disc_conditional else 0).to(dev)
    img = torch.rand(1, 3, s, s, device=dev)
    rows = {"planner + actor (inference, per step)": (count_params(policy), count_macs(policy, obs)),
            f"planner + actor x {steps} steps": (count_params(policy), steps * count_macs(policy, obs)),
            "twin critic (training only)": (count_params(critic), count_macs(critic, obs, plan)),
            "discriminator (training only)": (count_params(disc), count_macs(disc, img, img if o.disc_conditional else None))}
    lines = [f"{'network':40s} {'params (M)':>10s} {'GMACs/img':>10s}"]
    lines += [f"{k:40s} {p / 1e6:10.3f} {m / 1e9:10.4f}" for k, (p, m) in rows.items()]
    return "\n".join(lines), {k: {"params": p, "macs": m} for k, (p, m) in rows.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kinds", default="edges,grey", help="pair kinds (edges, grey; default both)")
    ap.add_argument("--minutes", type=float, default=4.0, help="training minutes per method and kind (default 4)")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--out", default="runs/bench-translation", help="run directory")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    t_start = time.time()
    summary = {"minutes_per_method": args.minutes, "seed": args.seed, "device": args.device, "kinds": {}}
    for kind in args.kinds.split(","):
        out = Path(args.out) / kind
        over = {"device": args.device, "seed": args.seed, "task_options": {"data": kind}}
        train_methods(out, args.minutes, str(ROOT / "configs" / "translation.toml"), over, METHODS)
        task, rl, _ = load_policy(out / "rl", args.device)
        _, p2p, _ = load_policy(out / "pix2pix", args.device)
        res = {"pix2pix": evaluate(task, p2p, steps=(1,), fid=False)[1]}
        for t, r in evaluate(task, rl, steps=(1, 5, 10), fid=False).items():
            res[f"rl_t{t}"] = r
        src, tgt = task.split_data("test")
        print(f"\n{kind} -> photo, {len(tgt)} test pairs at {task.options.size}x{task.options.size}, "
              f"{args.minutes:g} min training per method:")
        print(format_scores(res, LABEL))
        costs, cost_json = cost_table(task, rl)
        print("\n" + costs)
        pick = torch.arange(8) * (len(tgt) // 8)
        s8, t8 = src[pick].float().cpu() / 255, tgt[pick].float().cpu() / 255
        steps, _ = predict(task, rl, s8, t8, 10)
        once, _ = predict(task, p2p, s8, t8, 1)
        image_grid([[s8[i], once[0][i]] + [steps[t][i] for t in (0, 2, 4, 9)] + [t8[i]] for i in range(8)],
                   out / "pairs.png", headers=["source", "pix2pix", "RL T1", "T3", "T5", "T10", "target"], zoom=2)
        summary["kinds"][kind] = {"test_pairs": len(tgt),
                                  "methods": {k: {m: v[m] for m in METRICS} for k, v in res.items()},
                                  "costs": cost_json}
        print(f"picture: {out}/pairs.png")
    summary["bench_minutes"] = (time.time() - t_start) / 60
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        write_json(args.json, summary)
    print(f"\nbench took {summary['bench_minutes']:.1f} min")


if __name__ == "__main__":
    main()
