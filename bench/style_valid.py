"""Choosing style settings on validation data (never the bench's test crops, test clip or unseen styles).

    python bench/style_valid.py video IMAGE_RUN VIDEO_RUN [VIDEO_RUN ...]
    python bench/style_valid.py codes ARBITRARY_RUN [--seeds 5000,5001,5002]

``video``: warping error and style loss at T=10 of each video model (memory carried) and of the
one-style image model frame by frame, on a validation clip: frames 100-111 of opencv-doc's
``Megamind.avi`` at 160x120 (the bench's test clip is ``tree.avi``), with the ratios to the image
model that the video target judges (flicker <= 0.5, style <= 1.1).
``codes``: does an arbitrary-style model follow the style code it is given? Style loss at
T = 1, 5, 10 on 16 training-split crops for validation textures (made seeds 5000-5002; training
uses 0-63, the bench's unseen ones are >= 10000), with each texture's own code and with the
next texture's code: lower with its own code = the model uses the code.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from rl_i2it.core.trainer import load_policy  # noqa: E402
from rl_i2it.data.style import made_style, read_frames, style_file  # noqa: E402
from rl_i2it.ops.temporal import warp_error  # noqa: E402
from rl_i2it.tasks.style import load_style_image, style_losses, stylize, stylize_video  # noqa: E402

CLIP, FIRST, N_FRAMES = "Megamind.avi", 100, 12


def video(image_run: str, video_runs: list[str]) -> None:
    frames = read_frames(style_file(CLIP), max_frames=FIRST + N_FRAMES)[FIRST:]
    vid = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255
    vid = F.interpolate(vid, size=(120, 160), mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)
    vin = (vid.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    task, model, _ = load_policy(image_run)
    style = load_style_image(task.options.style)

    def judged(out):
        return warp_error(vin, out.permute(0, 2, 3, 1).numpy()), float(style_losses(task, out, vid, style)[1].mean())
    iw, ist = judged(stylize(task, model, vid, 10)[0][9])
    print(f"{CLIP} frames {FIRST}-{FIRST + N_FRAMES - 1} at 160x120, T=10")
    print(f"  image model {image_run}: warping error {iw:.4f}, style {ist:.3e}")
    for run in video_runs:
        vtask, vmodel, _ = load_policy(run)
        w, st = judged(stylize_video(vtask, vmodel, vid, 10)[0])
        print(f"  {run}: warping error {w:.4f} (x{w / iw:.2f}), style {st:.3e} (x{st / ist:.2f})")


def codes(run: str, seeds: list[int]) -> None:
    task, model, _ = load_policy(run)
    if not task.options.arbitrary:
        sys.exit(f"{run} is a one-style model: it takes no style code")
    content = task.content_bank("train")[-16:].float() / 255
    styles = {s: torch.from_numpy(made_style(s)).permute(2, 0, 1)[None].float() / 255 for s in seeds}
    print("style loss at T = 1, 5, 10 (16 training-split crops)")
    for i, s in enumerate(seeds):
        other = seeds[(i + 1) % len(seeds)]
        row = []
        for code_of in (s, other):
            outs, _ = stylize(task, model, content, 10, styles[code_of])
            row.append(" ".join(f"{style_losses(task, outs[t], content, styles[s])[1].mean():.2e}" for t in (0, 4, 9)))
        print(f"  made:{s}: own code {row[0]}; code of made:{other} {row[1]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    v = sub.add_parser("video", help="video models against the image model on the validation clip")
    v.add_argument("image_run")
    v.add_argument("video_runs", nargs="+")
    c = sub.add_parser("codes", help="an arbitrary model with each validation texture's code and another's")
    c.add_argument("run")
    c.add_argument("--seeds", default="5000,5001,5002")
    args = ap.parse_args()
    if args.what == "video":
        video(args.image_run, args.video_runs)
    else:
        codes(args.run, [int(s) for s in args.seeds.split(",")])


if __name__ == "__main__":
    main()
