"""How hard each term of the planner's loss pulls, on replay batches of a trained RL-I2IT run.

    python bench/rl_gradients.py RUN_DIR [--batches 8] [--seed 0]

Prints the norm of the planner's gradient from the RL term (alpha log pi - Q), from -Q alone,
and from the weighted auxiliary term (aux_weight x aux), and the cosine between the RL and
auxiliary gradients, averaged over ``--batches`` replay batches of the run's batch size. A
diagnostic for ``sac.rl_weight`` / ``sac.aux_weight``: an RL term far larger than the auxiliary
one swamps the planner; a far smaller one barely acts. The run directory is not changed (it is
copied to a temporary folder); its checkpoint must hold the replay (``checkpoint_replay_mb``).
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from rl_i2it.config import Config, fill  # noqa: E402
from rl_i2it.core import checkpoint as ckpt  # noqa: E402
from rl_i2it.core.trainer import Trainer  # noqa: E402


def gradient_balance(trainer: Trainer, batches: int = 8, seed: int = 0) -> dict[str, float]:
    """``SAC.term_gradients`` averaged over ``batches`` replay batches."""
    gen = torch.Generator().manual_seed(seed)
    rows = [trainer.sac.term_gradients(trainer.replay.sample(trainer.cfg.sac.batch_size, gen))
            for _ in range(batches)]
    return {k: statistics.mean(r[k] for r in rows) for k in rows[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", help="a run directory trained with RL (its checkpoint.pt holds the replay)")
    ap.add_argument("--batches", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    run = Path(args.run)
    saved = ckpt.load(run / "checkpoint.pt")
    cfg = fill(Config, saved["config"])
    if not cfg.sac.use_rl:
        sys.exit(f"{run} was trained without RL: there is no RL term to measure")
    if "replay" not in saved:
        sys.exit(f"{run}/checkpoint.pt holds no replay (its replay was above train.checkpoint_replay_mb)")
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "run"
        copy.mkdir()
        shutil.copy(run / "checkpoint.pt", copy / "checkpoint.pt")
        trainer = Trainer(cfg, copy, verbose=False)
        r = gradient_balance(trainer, args.batches, args.seed)
    print(f"{run}: planner gradient norms over {args.batches} replay batches of {cfg.sac.batch_size}")
    print(f"  RL term (alpha log pi - Q): {r['rl']:.4g}   (-Q alone: {r['minus_q']:.4g})")
    print(f"  auxiliary term x {cfg.sac.aux_weight:g}: {r['aux']:.4g}")
    print(f"  RL / auxiliary: {r['rl'] / max(r['aux'], 1e-12):.3f}; cosine between them: {r['cos_rl_aux']:.3f}")


if __name__ == "__main__":
    main()
