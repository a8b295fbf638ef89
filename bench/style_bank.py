"""The arbitrary-style preset's training bank (64 made textures + 64 crops of the stills, 256 px):
each style's Gram matrices and code from two VGG16 passes (``style_grams`` then ``style_code``, the
bank until session 29) against one (``style_stats``, the bank now), side by side on the same images.

    python bench/style_bank.py [--n 64]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from rl_i2it.data.images import from_uint8  # noqa: E402
from rl_i2it.data.style import style_images  # noqa: E402
from rl_i2it.features.style import StyleObjective  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=64, help="styles of each source (the preset: 64)")
    args = ap.parse_args()
    obj = StyleObjective()
    images = [from_uint8(a)[None] for _, a in style_images("made+photos", args.n)]
    obj.style_stats(images[0])                   # first-use costs (allocator, kernels) on neither way
    two, one, t_two, t_one = [], [], 0.0, 0.0
    for im in images:                            # the two ways alternate, image by image
        t = time.perf_counter()
        two.append((obj.style_grams(im), obj.style_code(im)))
        t_two += time.perf_counter() - t
        t = time.perf_counter()
        one.append(obj.style_stats(im))
        t_one += time.perf_counter() - t
    same = all(torch.equal(ca, cb) and all(torch.equal(x, y) for x, y in zip(ga, gb))
               for (ga, ca), (gb, cb) in zip(two, one))
    print(f"{len(images)} styles: two passes {t_two:.1f} s, one pass {t_one:.1f} s, "
          f"ratio {t_one / t_two:.2f}; identical: {same}")


if __name__ == "__main__":
    main()
