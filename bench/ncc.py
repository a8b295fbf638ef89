"""Local NCC benchmark: box sums by ``unfold`` (``ops.losses.box_sum``, what the loss uses)
against the two it replaced, float64 running sums and a depthwise box convolution, side by side.

    python bench/ncc.py [--reps 5] [--json FILE] [--device cpu|cuda]

For the registration presets' training batches (16 x 128^2, 4 x 64^3, 2 x 128^3) it times,
interleaved, the local NCC loss with its gradient (forward + backward, window 9) both ways and
prints ``time(ours) / time(other)`` for each (medians; below 1 = faster) and each one's largest
difference from a float64 reference on the same smooth random images. Then the NCC force
(``losses.ncc_force``, the 3D preset's observation channels: the intensity gradient written out)
against the same force by autograd through ``local_ncc`` (what it replaced): ``time(ours) /
time(autograd)`` and the largest difference.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from rl_i2it.data.cache import write_json  # noqa: E402
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


def box_running_sums(x: torch.Tensor, window: int) -> torch.Tensor:
    """The other replaced one: per axis a difference of running sums (cumsum), in float64
    (the running sums grow to ``window**(nd-1)`` x the axis length)."""
    r, out = window // 2, x.double()
    for axis in range(2, x.dim()):
        pad = [0, 0] * (x.dim() - 2)
        pad[2 * (x.dim() - 1 - axis)] = r + 1
        pad[2 * (x.dim() - 1 - axis) + 1] = r
        run = F.pad(out, pad).cumsum(axis)
        n = x.shape[axis]
        out = run.narrow(axis, window, n) - run.narrow(axis, 0, n)
    return out.to(x.dtype)


SUMS = losses.box_sum
WAYS = {"ours": SUMS, "running": box_running_sums, "conv": box_conv}


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

    times = {k: [] for k in WAYS}
    for _ in range(reps + 1):                      # the first round warms up, then interleaved
        for name, box in WAYS.items():
            sync(device)
            t0 = time.perf_counter()
            step(box)
            sync(device)
            times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v[1:]) for k, v in times.items()}
    res = {f"seconds_{k}": med[k] for k in WAYS}
    res.update({f"ratio_vs_{k}": med["ours"] / med[k] for k in WAYS if k != "ours"})
    res.update({f"max_err_{k}": (step(box).double() - ref).abs().max().item() for k, box in WAYS.items()})
    return res


def force_by_autograd(fixed: torch.Tensor, moved: torch.Tensor, window: int = 9) -> torch.Tensor:
    """The baseline: the intensity gradient of ``sum(local_ncc)`` by autograd, times the slope."""
    m = moved.clone().requires_grad_(True)
    grad, = torch.autograd.grad(losses.local_ncc(fixed, m, window).sum(), m)
    return grad * torch.stack(torch.gradient(moved[:, 0], dim=tuple(range(1, moved.dim() - 1))), 1)


def measure_force(shape, device, reps: int) -> dict:
    gen = torch.Generator().manual_seed(0)
    pool = F.avg_pool2d if len(shape) == 4 else F.avg_pool3d
    a, b = (pool(torch.rand(shape, generator=gen), 5, 1, 2).to(device) for _ in range(2))
    ways = {"ours": losses.ncc_force, "autograd": force_by_autograd}
    times = {k: [] for k in ways}
    for _ in range(reps + 1):
        for name, fn in ways.items():
            sync(device)
            t0 = time.perf_counter()
            fn(a, b)
            sync(device)
            times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v[1:]) for k, v in times.items()}
    ours = losses.ncc_force(a, b)
    return {"seconds_ours": med["ours"], "seconds_autograd": med["autograd"],
            "ratio_vs_autograd": med["ours"] / med["autograd"],
            "max_diff": (ours - force_by_autograd(a, b)).abs().max().item(), "max_force": ours.abs().max().item()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=5, help="timed repetitions per shape (default 5)")
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    device = torch.device(args.device)
    print(f"local NCC (window 9) forward + backward on {device}, medians of {args.reps}")
    print("| batch | ours, unfold (s) | running sums (s) | convolution (s) | ours / running | ours / conv "
          "| max error: ours, running, conv |\n|---|---|---|---|---|---|---|")
    res = {}
    for name, shape in SHAPES.items():
        r = res[name] = measure(shape, device, args.reps)
        print(f"| {name} | {r['seconds_ours']:.4f} | {r['seconds_running']:.4f} | {r['seconds_conv']:.4f} | "
              f"{r['ratio_vs_running']:.3f} | {r['ratio_vs_conv']:.3f} | {r['max_err_ours']:.1e}, "
              f"{r['max_err_running']:.1e}, {r['max_err_conv']:.1e} |", flush=True)
    print(f"\nNCC force (window 9) on {device}: written out against autograd through local_ncc, medians of {args.reps}")
    print("| batch | ours (s) | autograd (s) | ours / autograd | max difference (largest force) |\n|---|---|---|---|---|")
    for name, shape in SHAPES.items():
        r = res[f"force, {name}"] = measure_force(shape, device, args.reps)
        print(f"| {name} | {r['seconds_ours']:.4f} | {r['seconds_autograd']:.4f} | {r['ratio_vs_autograd']:.3f} | "
              f"{r['max_diff']:.1e} ({r['max_force']:.2f}) |", flush=True)
    if args.json:
        write_json(args.json, res)


if __name__ == "__main__":
    main()
