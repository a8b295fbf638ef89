"""Local NCC benchmark: box sums by running sums (``ops.losses.box_sum``, what the loss uses)
against the depthwise box convolution it replaced, side by side in one run.

    python bench/ncc.py [--reps 5] [--json FILE] [--device cpu|cuda]

For the registration presets' training batches (16 x 128^2, 4 x 64^3, 2 x 128^3) it times,
interleaved, the local NCC loss with its gradient (forward + backward, window 9) both ways and
prints ``time(running sums) / time(convolution)`` (medians; below 1 = faster) and each one's
largest difference from a float64 reference on the same smooth random images.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from rl_i2it.nets.profile import sync  # noqa: E402
from rl_i2it.ops import losses  # noqa: E402

SHAPES = {"2D, 16 x 128^2": (16, 1, 128, 128), "3D, 4 x 64^3": (4, 1, 64, 64, 64), "3D, 2 x 128^3": (2, 1, 128, 128, 128)}


def box_conv(x: torch.Tensor, window: int) -> torch.Tensor:
    """The baseline: one depthwise convolution per axis (window taps each, zero padded)."""
    nd, c = x.dim() - 2, x.shape[1]
    conv = F.conv2d if nd == 2 else F.conv3d
    for axis in range(nd):
        shape, pad = [1] * nd, [0] * nd
        shape[axis], pad[axis] = window, window // 2
        x = conv(x, torch.ones(c, 1, *shape, device=x.device, dtype=x.dtype), padding=tuple(pad), groups=c)
    return x


SUMS = losses.box_sum


def ncc_map(a, b, box):
    """``losses.local_ncc`` (window 9) computing its box sums with ``box``."""
    losses.box_sum = box
    try:
        return losses.local_ncc(a, b, 9)
    finally:
        losses.box_sum = SUMS


def measure(shape, device, reps: int) -> dict:
    gen = torch.Generator().manual_seed(0)
    pool = F.avg_pool2d if len(shape) == 4 else F.avg_pool3d
    a, b = (pool(torch.rand(shape, generator=gen), 5, 1, 2).to(device) for _ in range(2))
    ref = ncc_map(a.double(), b.double(), box_conv)

    def step(box):
        bb = b.clone().requires_grad_()
        out = ncc_map(a, bb, box)
        (-out.mean()).backward()
        return out.detach()

    times = {"sums": [], "conv": []}
    for _ in range(reps + 1):                      # the first round warms up, then interleaved
        for name, box in (("sums", SUMS), ("conv", box_conv)):
            sync(device)
            t0 = time.perf_counter()
            step(box)
            sync(device)
            times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v[1:]) for k, v in times.items()}
    err = {k: (step(box).double() - ref).abs().max().item() for k, box in (("sums", SUMS), ("conv", box_conv))}
    return {"seconds_sums": med["sums"], "seconds_conv": med["conv"], "ratio": med["sums"] / med["conv"],
            "max_err_sums": err["sums"], "max_err_conv": err["conv"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5, help="timed repetitions per shape (default 5)")
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    device = torch.device(args.device)
    print(f"local NCC (window 9) forward + backward on {device}, medians of {args.reps}")
    print("| batch | running sums (s) | convolution (s) | ratio | max error, sums | max error, conv |\n|---|---|---|---|---|---|")
    res = {}
    for name, shape in SHAPES.items():
        r = res[name] = measure(shape, device, args.reps)
        print(f"| {name} | {r['seconds_sums']:.4f} | {r['seconds_conv']:.4f} | {r['ratio']:.3f} | "
              f"{r['max_err_sums']:.1e} | {r['max_err_conv']:.1e} |", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
