"""Data-parallel training (``torchrun``) against one process, side by side on the same machine and
config: updates per second and replay samples learnt from per second (an update of N ranks
averages N batches), each run from a fresh folder with a fixed number of updates.

    python bench/parallel.py [--task digits] [--steps 300] [--procs 2] [--threads 2] [--reps 2] [--device cpu]
        [--set KEY=VALUE ...]

One process uses ``--threads`` threads; ``--procs`` processes use ``threads / procs`` each, so
both use the same cores. On a GPU machine give ``--device cuda``: one process per GPU.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def train(task: str, steps: int, procs: int, threads: int, device: str, sets: list[str], out: Path) -> dict:
    cmd = ["-m", "rl_i2it.cli", "train", task, "--steps", str(steps), "--device", device, "--out", str(out)]
    for s in sets:
        cmd += ["--set", s]
    launcher = [sys.executable] if procs == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}"]
    env = dict(os.environ, OMP_NUM_THREADS=str(max(1, threads // procs)), PYTHONPATH=str(ROOT / "src"))
    res = subprocess.run(launcher + cmd, env=env, capture_output=True, text=True)
    if res.returncode:
        sys.exit(f"{' '.join(launcher + cmd)} failed:\n{res.stderr[-3000:]}")
    saved = torch.load(out / "checkpoint.pt", weights_only=False)
    c, batch = saved["counters"], saved["config"]["sac"]["batch_size"]
    return {"updates": c["updates"], "seconds": c["seconds"], "updates_per_s": c["updates"] / c["seconds"],
            "samples_per_s": c["updates"] * batch * procs / c["seconds"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="digits")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--set", action="append", default=[], dest="sets")
    ap.add_argument("--json")
    args = ap.parse_args()
    runs = {1: [], args.procs: []}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):                       # interleaved, the order swapped each repeat
            for procs in ([1, args.procs] if rep % 2 == 0 else [args.procs, 1]):
                r = train(args.task, args.steps, procs, args.threads, args.device, args.sets,
                          Path(tmp) / f"run{rep}_{procs}")
                runs[procs].append(r)
                print(f"{procs} process(es): {r['updates']} updates in {r['seconds']:.1f} s, "
                      f"{r['updates_per_s']:.2f} updates/s, {r['samples_per_s']:.0f} samples/s", flush=True)
    mean = {p: {k: sum(r[k] for r in rs) / len(rs) for k in ("updates_per_s", "samples_per_s")}
            for p, rs in runs.items()}
    one, many = mean[1], mean[args.procs]
    out = {"task": args.task, "steps": args.steps, "threads": args.threads, "device": args.device,
           "runs": {str(p): rs for p, rs in runs.items()},
           "updates_per_s_ratio": many["updates_per_s"] / one["updates_per_s"],
           "samples_per_s_ratio": many["samples_per_s"] / one["samples_per_s"]}
    print(f"\n| | updates/s | samples/s |\n|---|---|---|\n"
          f"| 1 process, {args.threads} threads | {one['updates_per_s']:.2f} | {one['samples_per_s']:.0f} |\n"
          f"| {args.procs} processes (torchrun) | {many['updates_per_s']:.2f} | {many['samples_per_s']:.0f} |\n"
          f"| ratio | {out['updates_per_s_ratio']:.2f} | {out['samples_per_s_ratio']:.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
