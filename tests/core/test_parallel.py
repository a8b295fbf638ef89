"""Data-parallel training under torchrun (2 CPU processes, gloo): the ranks collect different
episodes, average every gradient (policy, critic, temperature, the task's discriminator), so
their networks stay identical; rank 0 alone writes the run; a loss averaged over the ranks (so a
NaN on one is a NaN on all) and a Ctrl-C on one rank stop every rank; a stopped run resumes on
every rank, also with another number of them; what ranks cannot share is refused."""
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from rl_i2it.core import parallel
from rl_i2it.errors import UserError

TESTS = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent("""
    import sys
    import time
    import torch
    sys.path.insert(0, {tests!r})
    from conftest import faces, grey_to_colour, image_trainer
    from rl_i2it.core import parallel

    from rl_i2it.errors import Stopped, UserError

    run, out, steps, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    r = parallel.rank()
    data = faces(grey_to_colour((("train", 96, 0), ("valid", 16, 1), ("test", 24, 2))))
    opts = {{"small-shards": {{"replay_size": 80, "learning_starts": 30}},
            "small-replay": {{"replay_size": 120}}, "minutes": {{"steps": 0, "minutes": 0.04}}}}.get(mode, {{}})
    try:
        tr = image_trainer("inpainting", run + ("-elsewhere" if mode == "own-folders" and r else ""), data,
                           steps=steps, train=opts)
    except UserError as exc:
        print(f"rank {{r}} refused: {{exc}}")
        parallel.finish(0)          # as the CLI ends: the group left, the process ended at once
    resumed = tr.counters["updates"]
    logged = []                                # what each rank brings to each line of metrics.jsonl
    log_line = tr._log
    def log_and_keep(log, stats, scores):
        logged.append(({{k: sum(v) / len(v) for k, v in stats.items()}}, list(scores)))
        log_line(log, stats, scores)
    tr._log = log_and_keep
    if mode.startswith("ctrl-c") and r == 1:   # rank 1 alone gets a Ctrl-C after its 6th update
        update = tr.sac.update
        def update_then_stop(batch):
            logs = update(batch)
            if tr.sac.updates == 6:
                tr._request_stop(None, None)
            return logs
        tr.sac.update = update_then_stop
    if mode == "ctrl-c-exit" and r == 0:       # rank 0's last checkpoint takes a while to write
        save = tr.save
        def slow_save():
            if tr.stopped:
                time.sleep(3)
            save()
        tr.save = slow_save
    try:
        tr.train()
    except Stopped:
        print(f"rank {{r}} stopped at update {{tr.counters['updates']}}", flush=True)
        if mode == "ctrl-c-exit":
            parallel.finish(130)               # as the CLI ends a stopped run: torchrun then stops the others
    torch.save({{"world": parallel.world(), "resumed": resumed, "counters": tr.counters,
                "policy": tr.policy.state_dict(), "critic": tr.sac.critic.state_dict(),
                "log_alpha": tr.sac.log_alpha.detach(), "disc": tr.task.disc.state_dict(),
                "replay": tr.replay.state_dict(), "logged": logged}}, f"{{out}}/rank{{parallel.rank()}}.pt")
    parallel.finish(0)
""")

CHECKS = textwrap.dedent("""
    import sys
    import torch
    from rl_i2it.core import parallel
    parallel.init(torch.device("cpu"))
    r = parallel.rank()
    w = torch.nn.Parameter(torch.zeros(3))
    w.grad = torch.full((3,), float(r + 1))               # rank 0: 1s, rank 1: 2s
    mean = parallel.average_gradients([w], torch.tensor(10.0 * (r + 1)))
    assert torch.equal(w.grad, torch.full((3,), 1.5)) and mean.item() == 15.0, (w.grad, mean)
    assert parallel.on_every_rank(True, r == 0) == [True, False]
    assert parallel.summed([r, 1.5]) == [1.0, 3.0]
    m = torch.nn.Linear(2, 2)
    torch.nn.init.constant_(m.weight, float(r))
    parallel.broadcast(m)
    assert m.weight.eq(0).all()                            # rank 0's weights everywhere
    from rl_i2it.core.sac import temperature_loss       # entropy_steps > 0: the mean over every rank's weighted samples
    log_alpha = torch.nn.Parameter(torch.zeros(()))
    gap, wt = (torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([1.0, 1.0, 0.0, 0.0])) if r == 0 else \
        (torch.tensor([10.0, 20.0, 30.0, 40.0]), torch.tensor([1.0, 0.0, 0.0, 0.0]))
    temperature_loss(log_alpha, gap, wt, True).backward()
    parallel.average_gradients([log_alpha], torch.zeros(()))
    assert abs(log_alpha.grad.item() + (1 + 2 + 10) / 3) < 1e-6, log_alpha.grad   # not -(1.5 + 10) / 2
    bad = torch.tensor(float("nan") if r == 1 else 1.0)   # one rank's loss is NaN: every rank sees it
    assert parallel.average_gradients([], bad).isnan()
    print("checked on rank", r, "of", parallel.world())
    parallel.finish(0)
""")


def torchrun(tmp_path, script: str, *args, procs=2, timeout=120):
    """``script`` run by torchrun on ``procs`` processes (1: as a plain process)."""
    path = tmp_path / "script.py"
    path.write_text(script)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(TESTS.parent / "src"))
    launch = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}"] if procs > 1 else []
    return subprocess.run([sys.executable, *launch, str(path), *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_alone_every_call_is_a_no_op():
    assert not parallel.active() and parallel.world() == 1 and parallel.rank() == 0
    w = torch.nn.Parameter(torch.ones(2))
    w.grad = torch.full((2,), 3.0)
    loss = torch.tensor(2.0)
    assert parallel.average_gradients([w], loss) is loss and w.grad.eq(3).all()
    assert parallel.on_every_rank(True, False) == [True, False]
    assert parallel.summed([2, 3.5]) == [2.0, 3.5]
    assert parallel.init(torch.device("cpu")) == torch.device("cpu")


def test_one_named_gpu_for_every_rank_is_refused(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    with pytest.raises(UserError, match="every rank on one GPU"):
        parallel.init(torch.device("cuda", 0))


def test_the_collectives_average_and_agree(tmp_path):
    res = torchrun(tmp_path, CHECKS)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.count("checked on rank") == 2


def test_two_ranks_train_one_model_on_different_episodes(tmp_path):
    steps = 12
    run, out = tmp_path / "run", tmp_path / "out"
    out.mkdir()
    res = torchrun(tmp_path, SCRIPT.format(tests=str(TESTS)), run, out, steps, "train")
    assert res.returncode == 0, res.stderr[-3000:]
    r0, r1 = (torch.load(out / f"rank{r}.pt", weights_only=False) for r in (0, 1))
    assert r0["world"] == r1["world"] == 2
    done = r0["counters"]["updates"]            # the episode that reaches `steps` finishes
    assert done == r1["counters"]["updates"] and steps <= done < steps + 8
    # each rank drew its own episodes ...
    assert r0["replay"]["size"] > 0 and r1["replay"]["size"] > 0
    assert not torch.equal(r0["replay"]["data"]["index"], r1["replay"]["data"]["index"])
    # ... and every network is still one model: each update averaged the ranks' gradients
    for part in ("policy", "critic", "disc"):
        for k, v in r0[part].items():
            assert torch.equal(v, r1[part][k]), (part, k)
    assert torch.equal(r0["log_alpha"], r1["log_alpha"])
    saved = torch.load(run / "policy.pt", weights_only=False)
    assert saved["counters"]["updates"] == done
    for k, v in r0["policy"].items():
        assert torch.equal(v, saved["policy"][k]), k
    # rank 0 alone wrote the run, and its log holds one line per log_every updates
    assert sorted(p.name for p in run.iterdir() if not p.name.startswith(".")) == [
        "checkpoint.pt", "config.json", "curves.png", "metrics.jsonl", "policy.pt"]
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == done // 4
    # ... of both ranks' updates and episodes: each loss the mean of the ranks' means, the score
    # the mean of every episode ended since the last line, on either rank
    assert len(r0["logged"]) == len(r1["logged"]) == len(lines)
    scored = 0
    for line, (stats0, scores0), (stats1, scores1) in zip(lines, r0["logged"], r1["logged"]):
        for k in ("critic_loss", "recon", "d_loss"):
            assert stats0[k] != stats1[k] and line[k] == pytest.approx((stats0[k] + stats1[k]) / 2, rel=1e-5), k
        if scores0 or scores1:
            scored += 1
            assert line["score"] == pytest.approx(sum(scores0 + scores1) / len(scores0 + scores1), rel=1e-5)
    assert scored > 0
    # a second command with more steps resumes on both ranks from the checkpoint
    res = torchrun(tmp_path, SCRIPT.format(tests=str(TESTS)), run, out, done + 8, "train")
    assert res.returncode == 0, res.stderr[-3000:]
    r0, r1 = (torch.load(out / f"rank{r}.pt", weights_only=False) for r in (0, 1))
    assert r0["resumed"] == r1["resumed"] == done
    assert r0["counters"]["updates"] == r1["counters"]["updates"] >= done + 8
    for k, v in r0["policy"].items():
        assert torch.equal(v, r1["policy"][k]), k



def test_a_ctrl_c_on_one_rank_stops_every_rank_at_the_same_update(tmp_path):
    run, out = tmp_path / "run", tmp_path / "out"
    out.mkdir()
    res = torchrun(tmp_path, SCRIPT.format(tests=str(TESTS)), run, out, 40, "ctrl-c")
    assert res.returncode == 0, res.stderr[-3000:]
    # the stop comes between environment steps: after the updates of the step under way
    # (two ranks print on one stdout: with PYTHONUNBUFFERED a line's text and its newline are two writes
    # and the ranks' can interleave, "rank 0 stopped at update 6rank 1 stopped at update 6")
    at = [int(n) for n in re.findall(r"rank \d stopped at update (\d+)", res.stdout)]
    assert len(at) == 2 and at[0] == at[1] and 6 <= at[0] < 10, res.stdout
    assert torch.load(run / "checkpoint.pt", weights_only=False)["counters"]["updates"] == at[0]


def test_a_rank_ending_on_a_ctrl_c_waits_for_rank_zeros_checkpoint(tmp_path):
    """Rank 1 stopped by a Ctrl-C ends with 130 as the CLI does; torchrun then stops the other ranks
    (SIGTERM): it did so while rank 0 still wrote the stop's checkpoint, which was lost."""
    run, out = tmp_path / "run", tmp_path / "out"
    out.mkdir()
    res = torchrun(tmp_path, SCRIPT.format(tests=str(TESTS)), run, out, 40, "ctrl-c-exit")
    assert res.returncode != 0 and "rank 1 stopped at update" in res.stdout, res.stdout + res.stderr[-2000:]
    at = int(re.findall(r"rank 1 stopped at update (\d+)", res.stdout)[0])
    assert torch.load(run / "checkpoint.pt", weights_only=False)["counters"]["updates"] == at
    assert (run / "curves.png").is_file()


def test_minutes_are_rank_zeros_clock_on_every_rank(tmp_path):
    """``--minutes`` under torchrun: every rank reads rank 0's training seconds (rank 0 leaves its
    checkpoint writing out; another rank waited through it on its own clock and stopped the run
    early, so the same command trained again)."""
    run, out = tmp_path / "run", tmp_path / "out"
    out.mkdir()
    res = torchrun(tmp_path, SCRIPT.format(tests=str(TESTS)), run, out, 0, "minutes")
    assert res.returncode == 0, res.stderr[-3000:]
    seconds = [torch.load(out / f"rank{r}.pt", weights_only=False)["counters"]["seconds"] for r in (0, 1)]
    saved = torch.load(run / "checkpoint.pt", weights_only=False)["counters"]["seconds"]
    assert seconds[0] == seconds[1] == saved >= 0.04 * 60, (seconds, saved)


def test_what_a_rank_cannot_share_is_refused_on_every_rank(tmp_path):
    run, out = tmp_path / "run", tmp_path / "out"
    out.mkdir()
    # a replay shard (80 rows / 2 ranks: about 22 transitions) that never reaches train.learning_starts (30)
    res = torchrun(tmp_path, SCRIPT.format(tests=str(TESTS)), run, out, 8, "small-shards")
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.count("each of the 2 ranks' replay shard holds (40 rows") == 2, res.stdout
    # rank 1 resuming from a folder other than rank 0's: both refuse, none trains on
    assert torchrun(tmp_path, SCRIPT.format(tests=str(TESTS)), run, out, 8, "train").returncode == 0
    res = torchrun(tmp_path, SCRIPT.format(tests=str(TESTS)), run, out, 16, "own-folders")
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.count("the ranks found different runs in") == 2, res.stdout


def test_a_run_resumes_with_another_number_of_ranks(tmp_path):
    """One process, then two (each rank's shard too small for the saved replay: it refills), then
    one again (the shard fits in the whole replay: it is kept)."""
    run, out = tmp_path / "run", tmp_path / "out"
    out.mkdir()
    script = SCRIPT.format(tests=str(TESTS))
    res = torchrun(tmp_path, script, run, out, 12, "small-replay", procs=1)
    assert res.returncode == 0, res.stderr[-3000:]
    alone = torch.load(out / "rank0.pt", weights_only=False)
    assert alone["world"] == 1 and alone["replay"]["size"] > 60          # over a 2-rank shard (60 rows)
    res = torchrun(tmp_path, script, run, out, alone["counters"]["updates"] + 8, "small-replay")
    assert res.returncode == 0, res.stderr[-3000:]
    r0, r1 = (torch.load(out / f"rank{r}.pt", weights_only=False) for r in (0, 1))
    assert r0["resumed"] == r1["resumed"] == alone["counters"]["updates"]
    assert all(torch.equal(v, r1["policy"][k]) for k, v in r0["policy"].items())
    res = torchrun(tmp_path, script, run, out, r0["counters"]["updates"] + 8, "small-replay", procs=1)
    assert res.returncode == 0, res.stderr[-3000:]
    again = torch.load(out / "rank0.pt", weights_only=False)
    assert again["resumed"] == r0["counters"]["updates"] and again["counters"]["updates"] >= again["resumed"] + 8
