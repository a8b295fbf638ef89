"""U-Net benchmarks, each side by side in one run on a registration preset's planner-actor (same
weights, same input), against what it replaces:

    python bench/unet.py [--quick] [--json FILE] [--device cpu|cuda]

* the decoder's transposed-convolution shortcut (``nets.unet.transposed_upsample_conv``) against upsample ->
  concatenate -> conv (``concat_upsample_conv``), on the 2D preset (128x128; a batch of 8 pairs, as the bench registers
  them, and one pair): the inference forward (the mean plan) and a training step's forward +
  backward;
* ``nets.unet.Conv3d`` (oneDNN's kernel for one volume) against ``nn.Conv3d``, on the 3D liver
  preset (64^3, one volume, as ``register`` and the bench run 3D pairs): the inference forward;
* ``nets.channels_last`` (conv weights channels-last) against PyTorch's default contiguous
  weights, on the 2D preset (batch 8) and the 3D liver preset (one volume): the inference forward
  and a training step.

The library takes each where it is faster: on the CPU all three (``nets.fast_layout``,
``nets.unet.upsample_conv``); on a GPU none, as ``--device cuda`` measures.

Each prints ``time(ours) / time(replaced)`` (medians of interleaved repetitions; below 1 =
faster) and the largest difference of the outputs (rounding only).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from rl_i2it.data.cache import write_json  # noqa: E402
from rl_i2it.config import load_config  # noqa: E402
from rl_i2it.core.trainer import build_task  # noqa: E402
from rl_i2it.nets import channels_last, fast_layout, unet  # noqa: E402
from rl_i2it.nets.profile import sync  # noqa: E402

LIBRARY = unet.upsample_conv, unet.Conv3d.forward


def set_decoder(impl, policy) -> None:
    unet.upsample_conv = impl


def set_conv3d(impl, policy) -> None:
    unet.Conv3d.forward = impl


def set_layout(impl, policy) -> None:
    impl(policy)


def default_layout(module: torch.nn.Module) -> torch.nn.Module:
    """PyTorch's default: contiguous (NCHW / NCDHW) conv weights."""
    for m in module.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Conv3d)):
            m.to(memory_format=torch.contiguous_format)
    return module


# name: (config, batch, what is swapped, ours, replaced, timed parts)
CASES = {"registration-2d, batch 8": ("registration.toml", 8, set_decoder, unet.transposed_upsample_conv,
                                      unet.concat_upsample_conv, ("inference", "train_step")),
         "registration-2d, one pair": ("registration.toml", 1, set_decoder, unet.transposed_upsample_conv,
                                       unet.concat_upsample_conv, ("inference", "train_step")),
         "registration-3d (liver 64^3), one volume: Conv3d": ("liver3d.toml", 1, set_conv3d, unet.Conv3d.forward,
                                                             torch.nn.Conv3d.forward, ("inference",)),
         "registration-2d, batch 8: channels-last weights": ("registration.toml", 8, set_layout, channels_last,
                                                             default_layout, ("inference", "train_step")),
         "registration-3d (liver 64^3), one volume: channels-last weights": (
             "liver3d.toml", 1, set_layout, channels_last, default_layout, ("inference", "train_step"))}


def measure(name: str, device: torch.device, reps: int) -> dict:
    config, batch, swap, ours, replaced, parts = CASES[name]
    cfg = load_config(ROOT / "configs" / config, {"device": str(device)})
    task = build_task(cfg, device)
    torch.manual_seed(0)
    policy = fast_layout(task.build_policy().to(device))
    obs = torch.rand(batch, task.obs_channels, *task.grid, device=device)

    def infer():
        with torch.no_grad():
            return policy(obs, sample=False).action

    def train_step():
        policy.zero_grad(set_to_none=True)
        policy(obs).action.square().mean().backward()

    out = {}
    for label in parts:
        fn = infer if label == "inference" else train_step
        times = {"ours": [], "replaced": []}
        for rep in range(reps + 2):                       # the first two rounds warm up
            for kind, impl in (("ours", ours), ("replaced", replaced)):
                swap(impl, policy)
                sync(device)
                t0 = time.perf_counter()
                fn()
                sync(device)
                if rep >= 2:
                    times[kind].append(time.perf_counter() - t0)
        swap(ours, policy)
        out[f"{label}_ratio"] = statistics.median(times["ours"]) / statistics.median(times["replaced"])
        out[f"{label}_ms_replaced"] = 1000 * statistics.median(times["replaced"])
    a = infer()
    swap(replaced, policy)
    b = infer()
    unet.upsample_conv, unet.Conv3d.forward = LIBRARY          # the library's own choices again
    out["max_abs_diff"] = float((a - b).abs().max())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (about 15 s on 2 cores)")
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    device = torch.device(args.device)
    reps = 10 if args.quick else 30
    res = {}
    for name in CASES:
        res[name] = r = measure(name, device, reps)
        parts = [f"{k[:-6].replace('_', ' ')} {v:.3f} x the replaced code's time ({r[k[:-6] + '_ms_replaced']:.1f} ms)"
                 for k, v in r.items() if k.endswith("_ratio")]
        print(f"{name}: " + ", ".join(parts) + f"; outputs differ by {r['max_abs_diff']:.1e}", flush=True)
    if args.json:
        write_json(args.json, {"device": str(device), "reps": reps, **res})


if __name__ == "__main__":
    main()
