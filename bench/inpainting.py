"""Face inpainting benchmark: every method on the same held-out faces, in one run (issue 4's table).

    python bench/inpainting.py [--quick] [--minutes M] [--json FILE] [--out DIR] [--device cpu|cuda]

RL-I2IT and the one-step planner-actor with SNGAN ("PA + SNGAN", paper Table II: the same
networks and auxiliary loss, trained without RL on one step) are trained for the same wall time,
one after the other, on the training faces (CelebA 000001-000849); then every method fills the
same centre holes of the 100 test faces (000900-000999, never seen in training or tuning):
OpenCV's Telea inpainting (classical), PA + SNGAN, and RL-I2IT at T = 1, 5, 10.

Reported: PSNR and SSIM over the hole and over the whole image, LPIPS (AlexNet, v0.1), FID
(Inception pool features, 100 images: biased upward, comparable only within this table), and
seconds per image (wall, this machine, all T steps). ``--quick`` = the 64x64 preset
(``configs/inpainting.toml``); without it the 128x128 paper preset (``inpainting-128.toml``).
Training runs go to ``--out`` (default runs/bench-inpainting[-quick]): running the bench again
resumes them (a finished run has nothing left to train; a killed one trains the rest).
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
from rl_i2it.baselines.telea import telea_inpaint  # noqa: E402
from rl_i2it.core.trainer import load_policy  # noqa: E402
from rl_i2it.experiment import train_methods  # noqa: E402
from rl_i2it.features import inception_features  # noqa: E402
from rl_i2it.nets.profile import count_params  # noqa: E402
from rl_i2it.tasks.imagegen import evaluate, format_scores, image_scores, predict  # noqa: E402
from rl_i2it.viz import image_grid  # noqa: E402

METRICS = ("psnr_hole", "ssim_hole", "psnr_full", "ssim_full", "lpips", "fid", "sec_per_image")
HIGHER = {"psnr_hole", "ssim_hole", "psnr_full", "ssim_full"}
LABEL = {"telea": "Telea (OpenCV)", "onestep_sngan": "PA + SNGAN (one step)", "rl_t1": "RL-I2IT T=1",
         "rl_t5": "RL-I2IT T=5", "rl_t10": "RL-I2IT T=10"}
METHODS = {"rl": {}, "onestep_sngan": {"sac": {"use_rl": False}, "train": {"horizon": 1}}}


def verdict(m: dict) -> list[str]:
    rl, one, telea = m["rl"], m["onestep_sngan"], m["telea"]
    gain = rl["psnr_hole"] - one["psnr_hole"]
    lines = [f"RL-I2IT (T=10) vs PA + SNGAN, same training time: hole PSNR {gain:+.3f} dB (target >= +0.5: "
             f"{'met' if gain >= 0.5 else 'NOT met'}), LPIPS {rl['lpips']:.4f} vs {one['lpips']:.4f} "
             f"({'met' if rl['lpips'] < one['lpips'] else 'NOT met'})"]
    worse = [k for k in METRICS[:-1] if (rl[k] <= telea[k] if k in HIGHER else rl[k] >= telea[k])]
    lines.append(f"RL-I2IT (T=10) vs Telea on every quality metric: "
                 f"{'met' if not worse else 'NOT met (' + ', '.join(worse) + ')'}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="64x64 preset, shorter training (< 20 min on 2 cores)")
    ap.add_argument("--minutes", type=float, help="training minutes per method (default 6 quick, 30 full)")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--out", help="run directory (default runs/bench-inpainting[-quick])")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    t_start = time.time()
    minutes = args.minutes or (6.0 if args.quick else 30.0)
    config = ROOT / "configs" / ("inpainting.toml" if args.quick else "inpainting-128.toml")
    out = Path(args.out or f"runs/bench-inpainting{'-quick' if args.quick else ''}")
    over = {"device": args.device, "seed": args.seed}
    train_methods(out, minutes, str(config), over, METHODS)     # finished runs resume with nothing to do

    task, rl, cfg = load_policy(out / "rl", args.device)
    _, one, _ = load_policy(out / "onestep_sngan", args.device)
    src, tgt = task.split_data("test")
    tgt = tgt.float().cpu() / 255
    mask = task.eval_mask(len(tgt))
    print(f"\n{len(tgt)} test faces at {task.options.size}x{task.options.size}, hole {task.hole}x{task.hole} "
          f"({task.options.hole}); training {minutes:g} min per method; computing metrics ...")
    real = inception_features(tgt.to(task.device))
    params = count_params(rl)
    res = {}
    t0 = time.perf_counter()
    filled = telea_inpaint(tgt, mask)
    seconds = time.perf_counter() - t0
    res["telea"] = {**image_scores(filled, tgt, mask, True, task.device, real),
                    "sec_per_image": seconds / len(tgt), "params": 0}
    r1 = evaluate(task, one, steps=(1,), real_features=real)[1]
    res["onestep_sngan"] = {**r1, "params": params}
    for t, r in evaluate(task, rl, steps=(1, 5, 10), real_features=real).items():
        res[f"rl_t{t}"] = {**r, "params": params}
    print()
    print(format_scores(res, LABEL))
    print(f"planner + actor: {params / 1e6:.2f} M parameters")
    methods = {"telea": res["telea"], "onestep_sngan": res["onestep_sngan"], "rl": res["rl_t10"]}
    lines = verdict(methods)
    print("\n" + "\n".join(lines))

    # a picture: input, Telea, one-step, RL at T=1..10 (each step), truth, for 8 test faces
    pick = torch.arange(8) * (len(tgt) // 8)
    holed = tgt[pick].masked_fill(mask[pick].expand(-1, 3, -1, -1), task.options.fill)
    steps, _ = predict(task, rl, tgt[pick], tgt[pick], 10, mask[pick])
    once, _ = predict(task, one, tgt[pick], tgt[pick], 1, mask[pick])
    rows = [[holed[i], filled[pick[i]], once[0][i]] + [steps[t][i] for t in (0, 2, 4, 9)] + [tgt[pick[i]]]
            for i in range(8)]
    out.mkdir(parents=True, exist_ok=True)
    image_grid(rows, out / "faces.png", headers=["input", "Telea", "PA+SNGAN", "RL T1", "T3", "T5", "T10", "truth"],
               zoom=max(1, 128 // task.options.size))
    summary = {"preset": config.name, "size": task.options.size, "test_images": len(tgt),
               "minutes_per_method": minutes, "seed": args.seed, "device": args.device,
               "methods": {k: {m: v[m] for m in METRICS} for k, v in methods.items()},
               "rl_steps": {t: {m: res[f"rl_t{t}"][m] for m in METRICS} for t in (1, 5, 10)},
               "params": params, "verdict": lines, "bench_minutes": (time.time() - t_start) / 60}
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        write_json(args.json, summary)
    print(f"\npicture: {out}/faces.png; bench took {(time.time() - t_start) / 60:.1f} min")


if __name__ == "__main__":
    main()
