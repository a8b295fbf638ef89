"""U-Net decoder benchmark: the transposed-convolution shortcut against upsample -> concatenate ->
conv, side by side in one run, on the registration presets' planner-actor (same weights, same input).

    python bench/unet.py [--quick] [--json FILE] [--device cpu|cuda]

On the 2D preset (128x128; a batch of 8 pairs, as the bench registers them, and one pair) it times, interleaved, the planner-actor's
inference forward (the mean plan) and a training step's forward + backward, once with
``nets.unet.upsample_conv`` and once with the plain composition, and prints
``time(shortcut) / time(plain)`` (medians; below 1 = faster) and the largest difference of the
outputs (rounding only).
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

from rl_i2it.config import load_config  # noqa: E402
from rl_i2it.core.trainer import build_task  # noqa: E402
from rl_i2it.nets import fast_layout, unet  # noqa: E402
from rl_i2it.nets.profile import sync  # noqa: E402

PRESETS = {"registration-2d, batch 8": ("registration.toml", 8), "registration-2d, one pair": ("registration.toml", 1)}


def plain(conv, x, skip):
    """The composition the shortcut replaces."""
    return conv(torch.cat([F.interpolate(x, size=skip.shape[2:], mode="nearest"), skip], 1))


def measure(name: str, batch: int, device: torch.device, reps: int) -> dict:
    cfg = load_config(ROOT / "configs" / PRESETS[name][0], {"device": str(device)})
    task = build_task(cfg, device)
    torch.manual_seed(0)
    policy = fast_layout(task.build_policy().to(device))
    obs = torch.rand(batch, 2, *task.grid, device=device)

    def infer():
        with torch.no_grad():
            return policy(obs, sample=False).action

    def train_step():
        policy.zero_grad(set_to_none=True)
        policy(obs).action.square().mean().backward()

    fast = unet.upsample_conv
    out = {}
    for label, fn in (("inference", infer), ("train_step", train_step)):
        times = {"shortcut": [], "plain": []}
        for rep in range(reps + 2):                       # the first two rounds warm up
            for kind, impl in (("shortcut", fast), ("plain", plain)):
                unet.upsample_conv = impl
                sync(device)
                t0 = time.perf_counter()
                fn()
                sync(device)
                if rep >= 2:
                    times[kind].append(time.perf_counter() - t0)
        unet.upsample_conv = fast
        out[f"{label}_ratio"] = statistics.median(times["shortcut"]) / statistics.median(times["plain"])
        out[f"{label}_ms_plain"] = 1000 * statistics.median(times["plain"])
    a = infer()
    unet.upsample_conv = plain
    b = infer()
    unet.upsample_conv = fast
    out["max_abs_diff"] = float((a - b).abs().max())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (about 10 s on 2 cores)")
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    device = torch.device(args.device)
    reps = 10 if args.quick else 30
    res = {}
    for name, (_, batch) in PRESETS.items():
        res[name] = r = measure(name, batch, device, reps)
        print(f"{name}: inference {r['inference_ratio']:.3f} x the plain decoder's time "
              f"({r['inference_ms_plain']:.1f} ms plain), training step {r['train_step_ratio']:.3f} x "
              f"({r['train_step_ms_plain']:.1f} ms plain); outputs differ by {r['max_abs_diff']:.1e}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"device": str(device), "reps": reps, **res}, indent=1) + "\n")


if __name__ == "__main__":
    main()
