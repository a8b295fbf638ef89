"""Where can an inpainting model fill a hole? Hole PSNR at T=1 and T=10 on the 50 validation
faces (000850-000899, never the test faces) for one centre hole of half the side, and for holes of
half and a quarter of the side at seeded random places, with OpenCV's Telea on the same holes.

    python bench/inpainting_holes.py RUN [RUN ...]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from rl_i2it.baselines.telea import telea_inpaint  # noqa: E402
from rl_i2it.core.trainer import load_policy  # noqa: E402
from rl_i2it.tasks.imagegen import image_scores, predict  # noqa: E402
from rl_i2it.tasks.inpainting import square_masks  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", metavar="RUN", help="inpainting runs (run folder, policy.pt or checkpoint.pt)")
    for run in ap.parse_args().runs:
        task, policy, _ = load_policy(run)
        faces = task.split_data("valid")[1].float() / 255
        n, side = len(faces), task.options.size
        gen = torch.Generator().manual_seed(3)
        print(f"{run} (trained on {task.options.hole} holes): hole PSNR over {n} validation faces, T=1 / T=10")
        for name, mask in ((f"centre {side // 2}", square_masks(n, side, side // 2, None, False)),
                           (f"random {side // 2}", square_masks(n, side, side // 2, gen, True)),
                           (f"random {side // 4}", square_masks(n, side, side // 4, gen, True))):
            outs, _ = predict(task, policy, faces, faces, 10, mask=mask)
            rl = [image_scores(o, faces, mask, features=False)["psnr_hole"] for o in (outs[0], outs[9])]
            telea = image_scores(telea_inpaint(faces, mask), faces, mask, features=False)["psnr_hole"]
            print(f"  {name:10s} RL-I2IT {rl[0]:.2f} / {rl[1]:.2f} dB, Telea {telea:.2f} dB")


if __name__ == "__main__":
    main()
