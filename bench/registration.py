"""Registration benchmark: every method on the same pairs, in one run (issue 3's table).

    python bench/registration.py [--quick] [--minutes M] [--json FILE] [--out DIR] [--device cpu|cuda]

Per group of pair sets, RL-I2IT, its w/o-RL ablation and a one-step VoxelMorph-style network
(same backbone, same NCC + smoothness loss, one unbounded-ish step) are trained for the same wall
time, one after the other, on the group's *training* pairs; then every method registers the same
*test* pairs: identity, onestep (T=1), w/o RL (T=10), ANTs SyN, elastix B-spline, RL-I2IT at
T = 1, 10, 20 and adaptive (stop when a step's local-NCC gain < 1e-3, at most 30 steps).

Groups: ``brain2d`` (trained on synthetic ch2 slices; tested on unseen synthetic pairs of other
slices with AAL labels, and on the real ch2 -> MNI152 pairs with grey/white-matter labels);
``liver64`` and ``liver128`` (3D liver CT, synthetic pairs, liver + tumour labels). ``--quick``
runs the 2D group only, with shorter training.

Reported per method: mean per-label Dice (over the labels of each pair, then pairs) and its std
over pairs, % voxels with det J <= 0, std of log det J, seconds per pair (wall, this machine),
and parameters. Training runs go to ``--out`` (default runs/bench-registration): running the
bench again reuses finished runs.
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
from rl_i2it.baselines import classical  # noqa: E402
from rl_i2it.config import load_config  # noqa: E402
from rl_i2it.core.trainer import build_task, resolve_device  # noqa: E402
from rl_i2it.data.pairs import PairSet, load_pairs  # noqa: E402
from rl_i2it.experiment import train_methods  # noqa: E402
from rl_i2it.tasks.registration import (BASELINE_STEPS, evaluate_run, format_rows, grid_slices,  # noqa: E402
                                        identity_scores, mid_slices, register, score_fields, summarise)
from rl_i2it.ops.warp import warp  # noqa: E402
from rl_i2it.viz import image_grid  # noqa: E402

CONFIGS = ROOT / "configs"
GROUPS = {
    "brain2d": {"config": "registration.toml", "sets": {"brain2d": ("brain2d", 40), "brain2d-inter": ("brain2d-inter", 0)}},
    "liver64": {"config": "liver3d.toml", "sets": {"liver3d-64": ("liver3d", 6)}},
    "liver128": {"config": "liver3d-128.toml", "sets": {"liver3d-128": ("liver3d", 6)}},
}
ORDER = ("identity", "onestep", "norl_t10", "syn", "elastix", "rl_t1", "rl_t10", "rl_t20", "rl_adaptive")
LABEL = {"identity": "identity", "onestep": "one-step (VM-style)", "norl_t10": "RL-I2IT w/o RL, T=10",
         "syn": "ANTs SyN", "elastix": "elastix B-spline", "rl_t1": "RL-I2IT T=1", "rl_t10": "RL-I2IT T=10",
         "rl_t20": "RL-I2IT T=20", "rl_adaptive": "RL-I2IT adaptive"}


def methods_for(cfg) -> dict:
    """RL-I2IT, w/o RL, and the one-step network (a quarter-image step bound: one step must go far)."""
    return {"rl": {}, "norl": {"sac": {"use_rl": False}},
            "onestep": {"sac": {"use_rl": False}, "train": {"horizon": 1},
                        "task_options": {"max_step": cfg.task_options.get("size", 128) / 4}}}


def subset(ps: PairSet, n: int) -> PairSet:
    return PairSet(ps.fixed[:n], ps.moving[:n], ps.fixed_labels[:n], ps.moving_labels[:n], name=ps.name)


def run_set(name: str, pairs: PairSet, runs: dict, device, out: Path) -> dict:
    res = {"identity": identity_scores(pairs)}
    fields = {}
    for tool in ("syn", "elastix"):
        if not classical.available(tool):
            print(classical.missing_line(tool))
            continue
        print(f"  {tool} on {len(pairs)} pairs ...", flush=True)
        f, secs = classical.register_pairs(tool, pairs.fixed[:, 0].float().numpy() / 255,
                                           pairs.moving[:, 0].float().numpy() / 255)
        fields[tool] = torch.from_numpy(f)
        res[tool] = summarise(score_fields(pairs, fields[tool]), sum(secs), len(pairs))
    for run_name, run in runs.items():
        if run_name in BASELINE_STEPS:
            t = BASELINE_STEPS[run_name]
            res["onestep" if run_name == "onestep" else f"norl_t{t}"] = evaluate_run(run, pairs, (t,), device=device)[2][f"t{t}"]
        else:
            task, policy, r = evaluate_run(run, pairs, (1, 10, 20), adaptive=30, device=device)
            res.update({f"rl_{k}": v for k, v in r.items()})
            show = min(4, len(pairs))
            f = pairs.fixed[:show].to(task.device).float() / 255
            m = pairs.moving[:show].to(task.device).float() / 255
            fields["rl_t10"] = register(task, policy, f, m, 10)["field"].cpu()
    picture(pairs, fields, out / f"{name}.png")
    return {m: res[m] for m in ORDER if m in res}


def picture(pairs: PairSet, fields: dict, path: Path) -> None:
    """Rows: moving, fixed, then each method's warped image and deformed grid (mid slices in 3D)."""
    rows, headers = [], ["moving", "fixed"]
    for k in fields:
        headers += [k, k + " grid"]
    for i in range(min(4, len(pairs))):
        m, f = pairs.moving[i].float() / 255, pairs.fixed[i].float() / 255
        for s in range(len(mid_slices(m))):
            row = [mid_slices(m)[s], mid_slices(f)[s]]
            for fld in fields.values():
                if i < len(fld):
                    row += [mid_slices(warp(m[None], fld[i: i + 1])[0])[s], grid_slices(fld[i])[s]]
            rows.append(row)
    image_grid(rows, path, headers=headers, zoom=2 if pairs.fixed.dim() == 4 and pairs.shape[0] <= 64 else 1)


def table(name: str, res: dict) -> str:
    return f"### {name}\n\n" + format_rows(res, LABEL)


def verdict(name: str, res: dict, dims: int = 2, diffeomorphic: bool = False) -> list[str]:
    """The issue's targets for one pair set, each with met / NOT met: RL-I2IT at T=10 against SyN
    (Dice; in 2D also under 1/20 of its seconds per pair), against the one-step network (Dice
    + 0.02; in 3D at most 12x its time), against elastix (Dice), and its folds (< 0.5 %; none
    with diffeomorphic steps)."""
    out = []
    rl = res.get("rl_t10")
    if rl is None:
        return out

    def met(ok: bool) -> str:
        return "met" if ok else "NOT met"
    if "syn" in res:
        s = res["syn"]
        ratio = rl["sec_per_pair"] / max(s["sec_per_pair"], 1e-9)
        time_part = f"; time {rl['sec_per_pair']:.3f} s vs SyN {s['sec_per_pair']:.3f} s (ratio {ratio:.3f}"
        time_part += f", target < 0.05: {met(ratio < 0.05)})" if dims == 2 else ")"
        out.append(f"{name}: RL T=10 Dice {rl['dice']:.3f} vs SyN {s['dice']:.3f} ({met(rl['dice'] >= s['dice'])})"
                   + time_part)
    if "onestep" in res:
        o = res["onestep"]
        ratio = rl["sec_per_pair"] / max(o["sec_per_pair"], 1e-9)
        out.append(f"{name}: RL T=10 vs one-step + 0.02: {rl['dice']:.3f} vs {o['dice'] + 0.02:.3f} "
                   f"({met(rl['dice'] >= o['dice'] + 0.02)}); time ratio {ratio:.1f}x the one-step's"
                   + (f" (target <= 12x: {met(ratio <= 12)})" if dims == 3 else ""))
    if "elastix" in res:
        e = res["elastix"]
        out.append(f"{name}: RL T=10 vs elastix Dice {rl['dice']:.3f} vs {e['dice']:.3f} "
                   f"({met(rl['dice'] > e['dice'])}{'' if dims == 3 else '; a 3D target only'})")
    folds = rl["neg_jac_pct"]
    target = f"= 0: {met(folds == 0)}" if diffeomorphic else f"< 0.5: {met(folds < 0.5)}"
    out.append(f"{name}: RL T=10 % det J <= 0 = {folds:.3f} (target {target})")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="2D only, shorter training (< 20 min on 2 cores)")
    ap.add_argument("--minutes", type=float, help="training minutes per method (default 4 quick, 10 full)")
    ap.add_argument("--groups", help="comma list of " + ", ".join(GROUPS))
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--out", default=str(ROOT / "runs" / "bench-registration"), help="runs and pictures")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0, help="seed of the training runs (the pairs stay the same)")
    ap.add_argument("--diffeomorphic", action="store_true", help="train RL-I2IT with diffeomorphic steps")
    args = ap.parse_args()
    t_start = time.time()
    device = resolve_device(args.device)
    groups = args.groups.split(",") if args.groups else (["brain2d"] if args.quick else list(GROUPS))
    minutes = args.minutes or (4.0 if args.quick else 10.0)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary, tables, verdicts = {}, [], []
    for g in groups:
        spec = GROUPS[g]
        config = str(CONFIGS / spec["config"])
        cfg = load_config(config)
        over = {"device": str(device), "seed": args.seed}
        if args.diffeomorphic:
            over["task_options"] = {"diffeomorphic": True}
        methods = methods_for(load_config(config, over))
        gdir = out / (g + ("-diffeo" if args.diffeomorphic else ""))
        train_methods(gdir, minutes, config, over, methods)
        task = build_task(cfg, device)
        for set_name, (pair_name, n) in spec["sets"].items():
            n_test = n if not args.quick else min(n, 16) or 0
            pairs = load_pairs(pair_name, "test", max(n, 1), task.options.size)
            if n_test:
                pairs = subset(pairs, n_test)
            print(f"== {set_name}: {len(pairs)} test pairs at {'x'.join(map(str, pairs.shape))}", flush=True)
            res = run_set(set_name, pairs, {m: gdir / m for m in methods}, device, gdir)
            summary[set_name] = {"methods": res, "pairs": len(pairs), "shape": list(pairs.shape),
                                 "train_minutes_per_method": minutes}
            tables.append(table(set_name, res))
            verdicts += verdict(set_name, res, len(pairs.shape), args.diffeomorphic)
            print(tables[-1], flush=True)
    summary["seconds"] = time.time() - t_start
    print("\n" + "\n\n".join(tables))
    print("\n" + "\n".join(verdicts))
    print(f"\ntotal {summary['seconds'] / 60:.1f} min; pictures in {out}")
    (out / "results.md").write_text("\n\n".join(tables) + "\n\n" + "\n".join(verdicts) + "\n")
    if args.json:
        write_json(args.json, summary)


if __name__ == "__main__":
    main()
