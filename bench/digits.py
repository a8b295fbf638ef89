"""Digit-transform benchmark: ratios measured side by side in one run, on batches of one size from MNIST.

    python bench/digits.py [--quick] [--json FILE] [--device cpu|cuda]

* ``train_throughput_ratio``: RL-I2IT's SAC update (critic + planner/actor + temperature + target),
  in transitions per second, divided by the one-step baseline's supervised update (same
  planner-actor, same auxiliary loss, same batch size: each its own replay's batch, since the
  rows of 10-step and 1-step episodes differ; the time depends on the shapes), in samples per second. Blocks of the two are
  interleaved and the medians taken. ``train_loop_ratio`` does the same for whole training
  iterations (environment step + updates), which is what a wall-clock budget buys.
* ``inference_overhead_ratio``: T-step inference (policy + composing the field + warping +
  scoring, per step) divided by T x one planner+actor forward, same batch.
* ``replay_bytes_ratio``: replay bytes per transition (one row per state, L + 1 rows per
  episode of L steps) divided by the uint8 size of one state.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from rl_i2it.data.cache import write_json  # noqa: E402
from rl_i2it.config import load_config  # noqa: E402
from rl_i2it.core.rollout import rollout  # noqa: E402
from rl_i2it.core.trainer import Trainer  # noqa: E402
from rl_i2it.nets.profile import sync  # noqa: E402

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "digits.toml"


def timed(fn, n: int, device) -> float:
    sync(device)
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    sync(device)
    return (time.perf_counter() - t0) / n


NEVER = 10_000
"""learning_starts beyond what `fill` collects: the trainers here never update by themselves."""


def make_trainer(tmp: Path, name: str, device: str, **over) -> Trainer:
    cfg = load_config(CONFIG, {"device": device, "train": {"steps": 1, "learning_starts": NEVER}, **over})
    return Trainer(cfg, tmp / name, verbose=False)


def fill(tr: Trainer, episodes: int) -> None:
    """Collect transitions with the (untrained) policy, no updates."""
    for _ in range(episodes):
        state = tr.env.reset()
        for t in range(tr.cfg.train.horizon):
            with torch.no_grad():
                out = tr.policy(tr.task.observe(state))
            nxt, r, d, _ = tr.env.step(out.action)
            tr.replay.add(state, out.plan, r, nxt, d, first=t == 0)
            state = nxt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (< 10 min on 2 cores)")
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    reps, n = (3, 10) if args.quick else (7, 30)
    device = torch.device(args.device)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rl = make_trainer(tmp, "rl", args.device)
        one = make_trainer(tmp, "onestep", args.device, sac={"use_rl": False}, train={"horizon": 1, "steps": 1,
                                                                                        "learning_starts": NEVER})
        fill(rl, 3)
        fill(one, 3)
        bs = rl.cfg.sac.batch_size
        batch_rl = rl.replay.sample(bs, torch.Generator().manual_seed(0))
        batch_one = one.replay.sample(bs, torch.Generator().manual_seed(0))
        for _ in range(3):                                   # warm-up
            rl.sac.update(batch_rl)
            one.sac.update(batch_one)
        t_rl, t_one = [], []
        for _ in range(reps):
            t_rl.append(timed(lambda: rl.sac.update(batch_rl), n, device))
            t_one.append(timed(lambda: one.sac.update(batch_one), n, device))
        upd_rl, upd_one = statistics.median(t_rl), statistics.median(t_one)

        # whole training iterations: one batched env step + updates_per_step updates, an episode's
        # reset in the first of each horizon (both methods pay theirs) and its first state's row
        def iteration(tr):
            k = [0]

            def go():
                first = k[0] % tr.cfg.train.horizon == 0
                if first:
                    tr.env.reset()
                state = tr.env.state                  # (read after the step it would be the next state)
                with torch.no_grad():
                    out = tr.policy(tr.task.observe(state))
                nxt, r, d, _ = tr.env.step(out.action)
                tr.replay.add(state, out.plan, r, nxt, d, first=first)
                for _ in range(tr.cfg.train.updates_per_step):
                    tr.sac.update(tr.replay.sample(bs, tr.sample_gen))
                k[0] += 1
            return go
        l_rl, l_one = [], []
        step_rl, step_one = iteration(rl), iteration(one)
        for _ in range(reps):
            l_rl.append(timed(step_rl, rl.cfg.train.horizon, device))
            l_one.append(timed(step_one, n // 2, device))
        per_iter_rl = rl.cfg.train.updates_per_step * bs / statistics.median(l_rl)
        per_iter_one = one.cfg.train.updates_per_step * bs / statistics.median(l_one)

        # inference: T steps vs T bare planner+actor forwards, batch 256
        T, B = 10, 256
        env = rl.task.make_env(B, torch.Generator().manual_seed(5), "test")
        state0 = env.reset()
        fixed, moving = state0["fixed"].clone(), state0["current"].clone()
        obs = rl.task.observe(state0)
        policy = rl.policy.eval()

        def infer():
            for _ in rollout(policy, rl.task, env, env.start(fixed, moving), T):
                pass

        def forward():
            with torch.no_grad():
                policy(obs, sample=False)
        infer()
        forward()
        t_inf, t_fwd = [], []
        for _ in range(reps):
            t_inf.append(timed(infer, max(2, n // 5), device))
            t_fwd.append(timed(forward, max(2, n // 5) * T, device) * T)
        inference_ratio = statistics.median(t_inf) / statistics.median(t_fwd)

        state_u8 = sum(f.nbytes for f in rl.task.state_fields().values())
        per_transition = rl.replay.bytes_per_transition * (rl.cfg.train.horizon + 1) / rl.cfg.train.horizon
        replay_ratio = per_transition / state_u8

    res = {
        "device": str(device), "batch_size": bs, "torch_threads": torch.get_num_threads(),
        "rl_update_ms": round(upd_rl * 1e3, 2), "onestep_update_ms": round(upd_one * 1e3, 2),
        "train_throughput_ratio": round((bs / upd_rl) / (bs / upd_one), 3),
        "train_loop_ratio": round(per_iter_rl / per_iter_one, 3),
        "inference_T": T, "inference_batch": B,
        "inference_ms": round(statistics.median(t_inf) * 1e3, 2),
        "planner_actor_forward_x_T_ms": round(statistics.median(t_fwd) * 1e3, 2),
        "inference_overhead_ratio": round(inference_ratio, 3),
        "replay_bytes_per_transition": round(per_transition), "state_uint8_bytes": state_u8,
        "replay_bytes_ratio": round(replay_ratio, 3),
    }
    targets = {"train_throughput_ratio": (">=", 0.35), "inference_overhead_ratio": ("<=", 1.15),
               "replay_bytes_ratio": ("<=", 2.0)}
    for k, v in res.items():
        mark = ""
        if k in targets:
            op, bound = targets[k]
            ok = v >= bound if op == ">=" else v <= bound
            mark = f"   (target {op} {bound}: {'met' if ok else 'MISSED'})"
        print(f"{k:32s} {v}{mark}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        write_json(args.json, res)


if __name__ == "__main__":
    main()
