"""Choosing style settings on validation data (never the bench's test crops, test clip or unseen styles).

    python bench/style_valid.py video IMAGE_RUN VIDEO_RUN [VIDEO_RUN ...]
    python bench/style_valid.py codes ARBITRARY_RUN [--seeds 5000,5001,5002]
    python bench/style_valid.py steps RUN [RUN ...]
    python bench/style_valid.py arbitrary RUN [RUN ...]
    python bench/style_valid.py scale RUN [RUN ...]

``video``: warping error and style loss at T=10 of each video model (memory carried) and of the
one-style image model frame by frame, on three validation clips: frames 100-111 of opencv-doc's
``Megamind.avi`` and ``vtest.avi`` at 160x120 (training videos, of which every 10th frame is
cropped for content; the bench's test clip is ``tree.avi``) and ``sway``, a training photo in
small non-rigid motion (``sway_clip``), with the ratios to the image model that the video target judges (flicker <=
0.5, style <= 1.1).
``codes``: does an arbitrary-style model follow the style code it is given? Style loss at
T = 1, 5, 10 on 16 training-split crops for validation textures (made seeds 5000-5002; training
uses 0-63, the bench's unseen ones are >= 10000), with each texture's own code and with the
next texture's code: lower with its own code = the model uses the code.
``steps``: content and style loss at T = 1, 2, 5, 10 of one-style models on 32 validation crops
(new crops of the training pictures, crop seed 7; training uses seed 0, the bench the test
pictures), with content + style_weight x style beside them: the sum ranks the trade-off; the
bench's "T=1 against the one-step network" target asks for both losses lower, so read the two
losses for it, for choosing training settings.
``scale``: an arbitrary-style model with each validation style's code measured at its own size,
at a longer side of 384 and of 256 (``CODE_SIDE``, the training styles' scale; made textures drawn
at 512 here): content and style at T = 1 and 10, scored against the style at its own size.
``arbitrary``: does an arbitrary-style model's style loss fall over steps 1..10 on styles it
never trained on? Content and style at T = 1, 5, 10 and the steps whose style loss fell, on 16
training-split crops (crop seed 7), for the validation stills (``VALID_STYLE_PICTURES``: never
cut into photo styles) and made textures of seeds 5000-5002 (the bench's unseen styles are
starry_night and seeds >= 10000).
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from rl_i2it.core.trainer import load_policy  # noqa: E402
from rl_i2it.errors import UserError  # noqa: E402
from rl_i2it.data.images import from_uint8  # noqa: E402
from rl_i2it.data.style import VALID_STYLE_PICTURES, made_style, read_clip, style_file  # noqa: E402
from rl_i2it.tasks.style import (VALID_SEED, load_style_image, step_losses, style_losses, stylize,  # noqa: E402
                                 stylize_video, video_scores)

CLIPS, N_FRAMES = (("Megamind.avi", 100), ("vtest.avi", 100), ("sway", 0)), 12


def sway_clip(n: int = N_FRAMES, seed: int = 0) -> torch.Tensor:
    """A natural picture in small non-rigid motion, like foliage in wind: the left (training)
    region of the first still photo, at 160x120, warped by ``sin(2 pi t / 8) x`` a smooth random
    field (an 8x8 grid of offsets up to 1.5 px, bicubic), frame ``t``; ``[n, 3, 120, 160]``."""
    import torch.nn.functional as F
    from PIL import Image
    from rl_i2it.data.paired import TEST_STRIP, sample_photos
    from rl_i2it.ops.temporal import warp_image
    _, img = sample_photos()[0]
    h, w = img.shape[:2]
    region = img[:, : int(w * (1 - TEST_STRIP))]
    side = min(region.shape[0], region.shape[1] * 3 // 4)
    crop = region[:side, : side * 4 // 3]
    base = from_uint8(np.asarray(Image.fromarray(crop).resize((160, 120), Image.Resampling.LANCZOS)))[None]
    g = torch.Generator().manual_seed(seed)
    field = F.interpolate((torch.rand(1, 2, 8, 8, generator=g) * 2 - 1) * 1.5, size=(120, 160), mode="bicubic",
                          align_corners=True)
    return torch.cat([warp_image(base, math.sin(2 * math.pi * t / 8) * field) for t in range(n)]).clamp(0, 1)


def kind(run: str, arbitrary: bool) -> tuple:
    """``load_policy(run)``, or a one-line exit when the run is not of the kind a command scores."""
    try:
        loaded = load_policy(run)
    except UserError as exc:
        sys.exit(f"style_valid: error: {exc}")
    if loaded[0].name != "style" or loaded[0].options.arbitrary != arbitrary:
        sys.exit(f"style_valid: error: {run} is not {'an arbitrary' if arbitrary else 'a one'}-style model")
    return loaded


def video(image_run: str, video_runs: list[str]) -> None:
    task, model, _ = kind(image_run, False)
    style = load_style_image(task.options.style)
    video_models = [(run, *load_policy(run)[:2]) for run in video_runs]
    for clip, first in CLIPS:
        vid = sway_clip() if clip == "sway" else read_clip(style_file(clip), first, N_FRAMES)
        image = video_scores(task, stylize(task, model, vid, 10)[0][9], vid, style)
        print(f"{clip} frames {first}-{first + N_FRAMES - 1} at 160x120, T=10")
        print(f"  image model {image_run}: warping error {image['warp_error']:.4f}, style {image['style']:.3e}")
        for run, vtask, vmodel in video_models:
            v = video_scores(task, stylize_video(vtask, vmodel, vid, 10)[0], vid, style)
            print(f"  {run}: warping error {v['warp_error']:.4f} (x{v['warp_error'] / image['warp_error']:.2f}), "
                  f"style {v['style']:.3e} (x{v['style'] / image['style']:.2f})")


def codes(run: str, seeds: list[int]) -> None:
    if len(seeds) < 2:
        sys.exit("style_valid: error: codes compares each seed's code with another's: give two seeds or more")
    task, model, _ = kind(run, True)
    content = task.content_bank("train")[-16:].float() / 255
    styles = {s: from_uint8(made_style(s))[None] for s in seeds}
    print("style loss at T = 1, 5, 10 (16 training-split crops)")
    for i, s in enumerate(seeds):
        other = seeds[(i + 1) % len(seeds)]
        row = []
        for code_of in (s, other):
            outs, _ = stylize(task, model, content, 10, styles[code_of])
            row.append(" ".join(f"{style_losses(task, outs[t], content, styles[s])[1].mean():.2e}" for t in (0, 4, 9)))
        print(f"  made:{s}: own code {row[0]}; code of made:{other} {row[1]}")


def validation_styles(made_side: int = 256) -> dict[str, torch.Tensor]:
    """The validation stills at their own size and made textures of seeds 5000-5002 drawn at ``made_side``."""
    from rl_i2it.data.paired import sample_photos
    stills = dict(sample_photos())
    styles = {name: stills[name] for name in VALID_STYLE_PICTURES if name in stills}
    styles.update({f"made:{s}": made_style(s, made_side) for s in range(VALID_SEED, VALID_SEED + 3)})
    return {k: from_uint8(a)[None] for k, a in styles.items()}


def arbitrary(runs: list[str], n: int = 16, crop_seed: int = 7) -> None:
    styles = validation_styles()
    for run in runs:
        task, model, _ = kind(run, True)
        content = task.load_content("train", n, crop_seed).float() / 255
        print(f"{run}: content / style at T = 1, 5, 10 on {n} validation crops (seed {crop_seed})")
        for name, st in styles.items():
            _, _, c = step_losses(task, model, content, st)
            falls = sum(c[t][1] < c[t - 1][1] for t in range(1, 10))
            print(f"  {name:20s} " + "  ".join(f"T{t}: {c[t - 1][0]:.3f} / {c[t - 1][1]:.2e}" for t in (1, 5, 10))
                  + f"  style falls at {falls}/9 steps, T10/T1 x{c[9][1] / c[0][1]:.2f}")


def scale(runs: list[str], sides=(0, 384, 256), n: int = 16, crop_seed: int = 7) -> None:
    """Style codes measured on the style at its own size (0) or shrunk to a longer side (``CODE_SIDE``
    is what the code does): content / style at T = 1 and 10, scored against the style at its own size."""
    import rl_i2it.features.style as objective
    styles = validation_styles(512)                      # made textures drawn at twice the training scale
    for run in runs:
        task, model, _ = kind(run, True)
        content = task.load_content("train", n, crop_seed).float() / 255
        print(f"{run}: content / style at T = 1 and 10 on {n} validation crops, code measured at a longer side of "
              f"{', '.join(str(s or 'own size') for s in sides)} (the code's default: {objective.CODE_SIDE})")
        default = objective.CODE_SIDE
        for name, st in styles.items():
            cells = []
            for side in sides:
                objective.CODE_SIDE = side or max(st.shape[-2:])
                try:
                    outs, _ = stylize(task, model, content, 10, st)
                finally:
                    objective.CODE_SIDE = default
                (c1, s1), (c10, s10) = (style_losses(task, outs[t], content, st) for t in (0, 9))
                cells.append(f"{side or 'own'}: {c1.mean():.3f} / {s1.mean():.2e}, {c10.mean():.3f} / {s10.mean():.2e}")
            print(f"  {name:20s} {st.shape[-1]}x{st.shape[-2]}  " + " | ".join(cells), flush=True)


def steps(runs: list[str], n: int = 32, crop_seed: int = 7) -> None:
    print(f"content / style at T = 1, 2, 5, 10 on {n} validation crops (seed {crop_seed}); sum = content + w x style")
    for run in runs:
        task, model, cfg = kind(run, False)
        content = task.load_content("train", n, crop_seed).float() / 255
        _, _, curve = step_losses(task, model, content, load_style_image(task.options.style))
        w = task.options.style_weight
        cells = "  ".join(f"T{t}: {curve[t - 1][0]:.4g} / {curve[t - 1][1]:.3g} ({curve[t - 1][0] + w * curve[t - 1][1]:.4g})"
                          for t in (1, 2, 5, 10))
        print(f"  {run} ({cfg.train.horizon}-step episodes): {cells}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    v = sub.add_parser("video", help="video models against the image model on the validation clip")
    v.add_argument("image_run")
    v.add_argument("video_runs", nargs="+")
    c = sub.add_parser("codes", help="an arbitrary model with each validation texture's code and another's")
    c.add_argument("run")
    c.add_argument("--seeds", default=",".join(str(VALID_SEED + i) for i in range(3)))
    st = sub.add_parser("steps", help="one-style models' losses over steps on validation crops")
    st.add_argument("runs", nargs="+")
    a = sub.add_parser("arbitrary", help="arbitrary models' losses over steps on validation styles")
    a.add_argument("runs", nargs="+")
    sc = sub.add_parser("scale", help="arbitrary models with style codes measured at several sizes")
    sc.add_argument("runs", nargs="+")
    args = ap.parse_args()
    if args.what == "video":
        video(args.image_run, args.video_runs)
    elif args.what == "steps":
        steps(args.runs)
    elif args.what == "arbitrary":
        arbitrary(args.runs)
    elif args.what == "scale":
        scale(args.runs)
    else:
        try:
            seeds = [int(s) for s in args.seeds.split(",")]
        except ValueError:
            sys.exit(f"style_valid: error: --seeds takes whole numbers joined by commas, got {args.seeds!r}")
        codes(args.run, seeds)


if __name__ == "__main__":
    main()
