"""Pairs that the headers leave apart: RL-I2IT with and without the affine pre-alignment
(``register --affine``), beside ANTs SyN (whose own rigid and affine stages run first), on one set.

    python bench/affine.py [RUN] [--set brain2d-inter] [--split test] [--degrees 10] [--scale 0.08]
                           [--shift 0.06] [--seed 0] [--size S] [--iters 100,50,25] [--json FILE]

RUN is a trained registration run of the set's dimension (``rl-i2it train registration``);
without one only identity, the pre-alignment and SyN are scored, at ``--size`` (default 128). Each
moving image of the set, with its labels, is moved by its own random affine map about the grid's
centre (seeded): a rotation of up to ``--degrees`` (in the first two axes), a scale of 1 +- ``--scale``
per axis, a shift of up to ``--shift`` of the side per axis; the fixed images stay. Rows, all on
these pairs: identity, the affine pre-alignment alone, RL-I2IT T=10 alone, the pre-alignment +
T=10, and ANTs SyN when ``antspyx`` is installed; and identity and RL-I2IT T=10 on the pairs as
they were before the move (what the pre-alignment is to give back). Dice is the mean over each pair's labels.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from rl_i2it.data.cache import write_json  # noqa: E402
from rl_i2it.baselines import classical  # noqa: E402
from rl_i2it.core.trainer import load_policy  # noqa: E402
from rl_i2it.data.pairs import SETS, PairSet, load_pairs  # noqa: E402
from rl_i2it.ops.affine import affine_field, fit_affine, warm_up  # noqa: E402
from rl_i2it.ops.warp import warp  # noqa: E402
from rl_i2it.tasks.registration import (evaluate_policy, format_rows, identity_scores, score_fields,  # noqa: E402
                                        summarise)


def random_affines(n: int, nd: int, size: int, degrees: float, scale: float, shift: float,
                   seed: int) -> torch.Tensor:
    """``[n, N, N + 1]`` voxel maps ``y = c + R S (x - c) + t``, drawn uniformly within the bounds."""
    g = torch.Generator().manual_seed(seed)
    u = lambda *shape: torch.rand(*shape, generator=g) * 2 - 1          # noqa: E731
    c = torch.full((nd,), (size - 1) / 2)
    out = []
    for _ in range(n):
        th = math.radians(degrees) * float(u(1))
        r = torch.eye(nd)
        r[:2, :2] = torch.tensor([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
        a = r @ torch.diag(1 + scale * u(nd))
        t = shift * size * u(nd)
        out.append(torch.cat([a, (c + t - a @ c)[:, None]], 1))
    return torch.stack(out)


def moved(pairs: PairSet, maps: torch.Tensor) -> PairSet:
    """The pairs with each moving image (bilinear) and its labels (nearest) resampled at ``maps``."""
    u = affine_field(maps, pairs.shape)
    img = warp(pairs.moving.float(), u).round().clamp(0, 255).to(torch.uint8)
    lab = warp(pairs.moving_labels[:, None].float(), u, mode="nearest")[:, 0].round().to(pairs.moving_labels.dtype)
    return PairSet(pairs.fixed, img, pairs.fixed_labels, lab, name=pairs.name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", nargs="?")
    ap.add_argument("--set", default="brain2d-inter")
    ap.add_argument("--split", default="test", choices=["test", "valid"])
    ap.add_argument("--degrees", type=float, default=10.0)
    ap.add_argument("--scale", type=float, default=0.08)
    ap.add_argument("--shift", type=float, default=0.06)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, default=128, help="the grid without RUN (with one: the model's)")
    ap.add_argument("--iters", default="100,50,25", help="the pre-alignment's iterations per level (its alone row)")
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    task, policy = load_policy(args.run, "cpu")[:2] if args.run else (None, None)
    dims, size = (task.dims, task.options.size) if task else (SETS.get(args.set, 2), args.size)
    pairs = load_pairs(args.set, args.split, 40 if dims == 2 else 8, size)
    maps = random_affines(len(pairs), dims, size, args.degrees, args.scale, args.shift, args.seed)
    apart = moved(pairs, maps)
    res = {"identity": identity_scores(apart)}
    warm_up()                                # (the first Adam's import of torch._dynamo: untimed)
    t0 = time.perf_counter()
    fitted, _, _ = fit_affine(apart.fixed.float() / 255, apart.moving.float() / 255,
                              tuple(int(k) for k in args.iters.split(",")))
    res["affine"] = summarise(score_fields(apart, affine_field(fitted, apart.shape)), time.perf_counter() - t0,
                              len(apart))
    if task:
        res["rl_t10"] = evaluate_policy(task, policy, apart, (10,))["t10"]
        res["affine_rl_t10"] = evaluate_policy(task, policy, apart, (10,), affine=True)["t10"]
    if classical.available("syn"):
        fields, secs = classical.register_pairs("syn", apart.fixed[:, 0].float().numpy() / 255,
                                                apart.moving[:, 0].float().numpy() / 255)
        res["syn"] = summarise(score_fields(apart, torch.from_numpy(fields)), sum(secs), len(apart))
    else:
        print(classical.missing_line("syn"))
    res["unmoved"] = identity_scores(pairs)
    if task:
        res["unmoved_rl_t10"] = evaluate_policy(task, policy, pairs, (10,))["t10"]
    names = {"identity": "identity", "affine": "affine pre-alignment alone", "rl_t10": "RL-I2IT T=10",
             "affine_rl_t10": "affine + RL-I2IT T=10 (`--affine`)", "syn": "ANTs SyN (rigid + affine + SyN)",
             "unmoved": "identity on the pairs before the move",
             "unmoved_rl_t10": "RL-I2IT T=10 on the pairs before the move"}
    print(f"{len(pairs)} {args.split} pairs of {args.set}, moving images moved by random affines (rotation <= "
          f"{args.degrees:g} deg, scale 1 +- {args.scale:g}, shift <= {args.shift:g} x side; seed {args.seed}):")
    print(format_rows(res, names))
    if args.json:
        write_json(args.json, {"set": args.set, "split": args.split, "n": len(pairs), "methods": res,
                               "perturbation": {k: getattr(args, k) for k in ("degrees", "scale", "shift", "seed")}})


if __name__ == "__main__":
    main()
