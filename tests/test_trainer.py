"""Training loop: determinism, exact resume, resume after a real kill, learning."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from rl_i2it.config import load_config, merge
from rl_i2it.core.trainer import Trainer
from rl_i2it.tasks.digits import DigitsTask, evaluate
from conftest import SMALL

FAST = {"train": {"n_envs": 8, "horizon": 4, "learning_starts": 16, "updates_per_step": 1,
                  "replay_size": 512, "log_every": 5}, "sac": {"batch_size": 16}}


def run(tmp, digits, steps, **over):
    base = merge(FAST, {"task_options": dict(SMALL, transform="cross"), "train": {"steps": steps}})
    cfg = load_config(None, merge(base, over))
    tr = Trainer(cfg, tmp, task=DigitsTask(cfg.task_options, data=digits), verbose=False)
    tr.train()
    return tr


def flat(module):
    return torch.cat([p.detach().flatten() for p in module.parameters()])


def test_cpu_determinism_same_seed_same_numbers(tmp_path, digits):
    a = run(tmp_path / "a", digits, 24)
    b = run(tmp_path / "b", digits, 24)
    assert torch.equal(flat(a.policy), flat(b.policy))
    assert torch.equal(flat(a.sac.critic), flat(b.sac.critic))
    la = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    lb = [json.loads(x) for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
    assert strip(la) == strip(lb) and len(la) >= 4
    c = run(tmp_path / "c", digits, 24, seed=1)
    assert not torch.equal(flat(a.policy), flat(c.policy))


def test_one_training_per_folder_and_a_replay_too_big_to_save_is_said(tmp_path, digits, capsys):
    from rl_i2it.errors import UserError
    base = merge(FAST, {"task_options": dict(SMALL, transform="cross"), "train": {"steps": 4}})
    cfg = load_config(None, base)
    from rl_i2it.core.checkpoint import lock_run
    first = Trainer(cfg, tmp_path / "r", task=DigitsTask(cfg.task_options, data=digits), verbose=False)
    with lock_run(tmp_path / "r"):                       # as another process training there holds it
        busy = DigitsTask(cfg.task_options, data=digits)
        busy.load_training_data = lambda: pytest.fail("refused only after loading the data")   # refused first
        with pytest.raises(UserError, match="another training is running in"):
            Trainer(cfg, tmp_path / "r", task=busy, verbose=False)
        with pytest.raises(UserError, match="another training is running in"):
            first.train()
    again = Trainer(cfg, tmp_path / "r", task=DigitsTask(cfg.task_options, data=digits), verbose=False)
    first.train()                                        # a Trainer built and not trained holds no lock
    del again
    import shutil
    (tmp_path / "copy").mkdir()                          # a checkpoint alone (as bench/rl_gradients copies one)
    shutil.copy(tmp_path / "r" / "checkpoint.pt", tmp_path / "copy" / "checkpoint.pt")
    (tmp_path / "copy" / "config.json").write_text("{cut short")
    assert Trainer(cfg, tmp_path / "copy", task=DigitsTask(cfg.task_options, data=digits), verbose=False).resumed
    small = load_config(None, merge(base, {"train": {"steps": 8, "checkpoint_replay_mb": 0}}))
    Trainer(small, tmp_path / "s", task=DigitsTask(cfg.task_options, data=digits), verbose=False).train()
    capsys.readouterr()
    again = Trainer(small, tmp_path / "s", task=DigitsTask(cfg.task_options, data=digits), verbose=True)
    assert again.resumed and len(again.replay) == 0
    assert "was not saved: it refills from here" in capsys.readouterr().out


def test_resume_continues_exactly(tmp_path, digits):
    straight = run(tmp_path / "s", digits, 32)
    run(tmp_path / "r", digits, 16)                        # stops (and checkpoints) at 16 updates
    resumed = run(tmp_path / "r", digits, 32)              # a new process would do exactly this
    assert resumed.resumed and resumed.counters["updates"] == straight.counters["updates"]
    assert resumed.sac.updates == straight.sac.updates == straight.counters["updates"]     # rl_warmup's clock
    assert torch.equal(flat(straight.policy), flat(resumed.policy))
    assert torch.equal(flat(straight.sac.critic_target), flat(resumed.sac.critic_target))
    assert resumed.sac.log_alpha.item() == straight.sac.log_alpha.item()
    rows = [json.loads(x)["updates"] for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert rows == sorted(set(rows))                       # no duplicated log lines


def test_policy_average_is_saved_and_resumes_exactly(tmp_path, digits):
    from rl_i2it.core.checkpoint import load
    ema = {"train": {"policy_ema": 0.9}}
    straight = run(tmp_path / "s", digits, 32, **ema)
    saved = load(tmp_path / "s" / "policy.pt")["policy"]
    avg = straight.policy_avg.state_dict()
    assert all(torch.equal(saved[k], avg[k]) for k in avg)               # policy.pt holds the average
    live = straight.policy.state_dict()
    assert not all(torch.equal(saved[k], live[k]) for k in live)         # ... not the last weights
    from rl_i2it.core.trainer import load_policy
    _, from_ckpt, _ = load_policy(tmp_path / "s" / "checkpoint.pt")
    assert torch.equal(flat(from_ckpt), flat(straight.policy_avg))     # a checkpoint gives the average too
    run(tmp_path / "r", digits, 16, **ema)
    resumed = run(tmp_path / "r", digits, 32, **ema)
    assert torch.equal(flat(resumed.policy_avg), flat(straight.policy_avg))
    plain = run(tmp_path / "p", digits, 32)
    assert plain.policy_avg is None and torch.equal(flat(plain.policy), flat(straight.policy))  # rollouts unchanged


def test_a_loaded_policy_samples_with_its_configs_noise_limits(tmp_path, digits):
    """The plan's log-std limits are config, not weights: a loaded model (``--sample``) draws plans
    as the trained one did, not with the policy's default limits (up to e^1 where it trained at e^-2)."""
    from rl_i2it.core.trainer import load_policy
    tr = run(tmp_path / "s", digits, 4, sac={"log_std_min": -4.0, "log_std_max": -2.0})
    for path in ("policy.pt", "checkpoint.pt"):
        task, policy, _ = load_policy(tmp_path / "s" / path)
        assert policy.log_std_bounds == (-4.0, -2.0)
    obs = task.observe(task.make_env(32, torch.Generator().manual_seed(0)).reset())
    with torch.no_grad():
        log_std = policy.plan_distribution(obs)[1]
        assert torch.equal(log_std, tr.policy.eval().plan_distribution(obs)[1])
    assert -4.0 <= float(log_std.min()) and float(log_std.max()) <= -2.0


def test_fine_tunes_average_into_policy_pt_and_resume(tmp_path, digits, capsys):
    """``train.fine_tunes = 2`` with ``init``: two fine-tunes (seeds 0 and 1) from one start, and
    ``policy.pt`` = the mean of their weights; the same command again trains nothing more."""
    from rl_i2it.core.checkpoint import load
    from rl_i2it.core.trainer import load_policy, train_run
    from rl_i2it.errors import Stopped, UserError
    run(tmp_path / "start", digits, 8)
    base = merge(FAST, {"task_options": dict(SMALL, transform="cross"),
                        "train": {"steps": 8, "init": str(tmp_path / "start"), "fine_tunes": 2}})
    cfg = load_config(None, base)
    task = DigitsTask(cfg.task_options, data=digits)
    counters = train_run(cfg, tmp_path / "soup", task=task, verbose=False)
    a, b = (load(tmp_path / "soup" / f"fine_tune_{i}" / "policy.pt") for i in (0, 1))
    assert (a["config"]["seed"], b["config"]["seed"]) == (0, 1)
    soup = load(tmp_path / "soup" / "policy.pt")
    assert not torch.equal(a["policy"]["planner.head.weight"], b["policy"]["planner.head.weight"])
    for k, v in soup["policy"].items():
        assert torch.allclose(v, (a["policy"][k] + b["policy"][k]) / 2, atol=1e-6), k
    assert counters["updates"] == a["counters"]["updates"] + b["counters"]["updates"] >= 16
    assert soup["data"] == a["data"] == b["data"]          # what eval checks the data against, as for one run
    assert load_policy(tmp_path / "soup")[2].train.fine_tunes == 2      # loads as any run
    assert train_run(cfg, tmp_path / "soup", task=task, verbose=False) == counters   # done: nothing more
    one = load_config(None, merge(base, {"train": {"fine_tunes": 1}}))
    with pytest.raises(UserError, match="holds an average of 2 fine-tunes"):
        train_run(one, tmp_path / "soup", task=task, verbose=False)
    three = load_config(None, merge(base, {"train": {"fine_tunes": 3}}))    # a finished average: not re-made
    with pytest.raises(UserError, match="holds an average of 2 fine-tunes"):
        train_run(three, tmp_path / "soup", task=task, verbose=False)
    with pytest.raises(UserError, match="holds a single run"):
        train_run(cfg, tmp_path / "start", task=task, verbose=False)
    # the average lands in the folder itself: a project's own config.json, a trained model: refused, kept
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "config.json").write_text('{"my": "settings"}')
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "policy.pt").write_bytes((tmp_path / "start" / "policy.pt").read_bytes())
    for folder, message in (("project", "but no rl-i2it run"), ("model", "policy.pt\\) but no fine-tunes")):
        kept = {p.name: p.read_bytes() for p in (tmp_path / folder).iterdir()}
        with pytest.raises(UserError, match=message):
            train_run(cfg, tmp_path / folder, task=task, verbose=False)
        assert {p.name: p.read_bytes() for p in (tmp_path / folder).iterdir()} == kept
    stop_first = Trainer.train

    def stopped_by_ctrl_c(self):             # as a first Ctrl-C does: this run saved, then stop
        stop_first(self)
        raise Stopped("stopped: checkpoint saved")
    with pytest.MonkeyPatch.context() as mp, pytest.raises(Stopped):
        mp.setattr(Trainer, "train", stopped_by_ctrl_c)
        train_run(cfg, tmp_path / "stop", task=task, verbose=False)
    assert (tmp_path / "stop" / "fine_tune_0" / "policy.pt").is_file()
    assert not (tmp_path / "stop" / "fine_tune_1").exists() and not (tmp_path / "stop" / "policy.pt").exists()
    assert train_run(cfg, tmp_path / "stop", task=task, verbose=False)["updates"] == counters["updates"]  # goes on
    gone = load_config(None, merge(base, {"train": {"init": str(tmp_path / "no-such-run")}}))
    capsys.readouterr()
    with pytest.raises(UserError, match=r"train.init \(--init\): checkpoint not found"):
        train_run(gone, tmp_path / "gone", task=task)
    assert capsys.readouterr().out == "" and not (tmp_path / "gone").exists()   # one line, nothing announced
    scratch = load_config(None, merge(base, {"train": {"init": ""}}))    # from scratch: one model
    train_run(scratch, tmp_path / "scratch", task=task)
    assert "training one model" in capsys.readouterr().out
    assert (tmp_path / "scratch" / "checkpoint.pt").is_file() and not (tmp_path / "scratch" / "fine_tune_0").exists()


def test_a_resume_takes_the_same_relative_init_after_its_run_is_gone(tmp_path, digits, monkeypatch):
    """`train --init start` again, after start/ was deleted (a relative path that no longer
    exists stays as typed): the same run, resumed, not "another config"."""
    import shutil
    monkeypatch.chdir(tmp_path)
    run(tmp_path / "start", digits, 8)
    first = run(tmp_path / "ft", digits, 8, train={"init": "start"})
    shutil.rmtree(tmp_path / "start")
    again = run(tmp_path / "ft", digits, 16, train={"init": "start"})
    assert again.resumed and again.counters["updates"] > first.counters["updates"]


def test_resume_accepts_a_run_saved_before_a_key_was_added(tmp_path, digits):
    run(tmp_path / "r", digits, 8)
    path = tmp_path / "r" / "checkpoint.pt"
    sd = torch.load(path, weights_only=True)
    del sd["config"]["train"]["policy_ema"]                # as written by an older version
    torch.save(sd, path)
    assert run(tmp_path / "r", digits, 12).resumed


def test_resume_survives_a_log_line_cut_short(tmp_path, digits):
    run(tmp_path / "r", digits, 8)
    with open(tmp_path / "r" / "metrics.jsonl", "a") as fh:
        fh.write('{"updates": 9, "sco')                        # the killed process's last words
    resumed = run(tmp_path / "r", digits, 16)
    assert resumed.counters["updates"] >= 16
    rows = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert [r["updates"] for r in rows] == sorted({r["updates"] for r in rows})


def test_resume_refuses_another_config(tmp_path, digits):
    from rl_i2it.errors import UserError
    run(tmp_path / "r", digits, 4)
    assert run(tmp_path / "r", digits, 6, train={"log_every": 3, "checkpoint_every_s": 5.0}).resumed   # bookkeeping
    with pytest.raises(UserError, match=r"another config \(sac\.batch_size 16 \(now 8\)\)"):   # both values said
        run(tmp_path / "r", digits, 8, sac={"batch_size": 8})
    # said before any data loads (a 3D set takes minutes to build)
    cfg = load_config(None, merge(FAST, {"task_options": dict(SMALL, transform="cross"), "sac": {"batch_size": 8},
                                         "train": {"steps": 8}}))
    task = DigitsTask(cfg.task_options, data=digits)
    task.load_training_data = lambda: pytest.fail("the data loaded before the config was compared")
    with pytest.raises(UserError, match="another config"):
        Trainer(cfg, tmp_path / "r", task=task, verbose=False)
    (tmp_path / "r" / "checkpoint.pt").unlink()                          # policy.pt alone: refused as early
    with pytest.raises(UserError, match="no checkpoint.pt"):
        Trainer(cfg, tmp_path / "r", task=task, verbose=False)


def test_resume_refuses_other_data_its_replay_would_point_into(tmp_path, digits):
    """The replay holds indices into the training data: a folder that lost, gained or reordered
    images since (an IndexError, or silently other pairs) is refused in one line."""
    from rl_i2it.core.checkpoint import load
    from rl_i2it.errors import UserError
    from conftest import Digits
    run(tmp_path / "r", digits, 4)
    assert len(load(tmp_path / "r" / "checkpoint.pt")["data"]) == 40           # a sha1 of the training digits
    assert run(tmp_path / "r", digits, 6).resumed                                # the same data: goes on
    n = len(digits.train_x)
    order = torch.arange(n).roll(1)
    for other in (Digits(digits.train_x[: n - 50], digits.train_y[: n - 50], digits.test_x, digits.test_y),
                  Digits(digits.train_x[order], digits.train_y[order], digits.test_x, digits.test_y)):
        with pytest.raises(UserError, match="was trained on other data than its task_options give now"):
            run(tmp_path / "r", other, 8)
    sd = torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=True)
    del sd["data"]                                          # a checkpoint of an older version: its replay
    torch.save(sd, tmp_path / "r" / "checkpoint.pt")        # cannot be checked, so it is not restored
    old = run(tmp_path / "r", other, 8)
    assert old.resumed and old.counters["updates"] >= 8
    small = {"train": {"checkpoint_replay_mb": 0}}           # no replay saved: nothing points into the data
    run(tmp_path / "n", digits, 4, **small)
    assert run(tmp_path / "n", other, 8, **small).resumed
    # what the weights learnt from (eval's check): known for a run on one data, never re-stamped by a resume
    from rl_i2it.core.checkpoint import trained_on
    assert trained_on(load(tmp_path / "n" / "policy.pt")) is None                  # old digits, then others
    assert trained_on(load(tmp_path / "r" / "policy.pt")) is None                  # an older version's, resumed
    run(tmp_path / "r", other, 9)
    assert trained_on(load(tmp_path / "r" / "policy.pt")) is None                  # and again: still not known
    fresh = run(tmp_path / "f", digits, 4)
    assert trained_on(load(tmp_path / "f" / "policy.pt")) == fresh.data_key
    assert run(tmp_path / "f", digits, 6).resumed and trained_on(load(tmp_path / "f" / "policy.pt")) == fresh.data_key
    run(tmp_path / "i", other, 4, train={"init": str(tmp_path / "f")})         # weights from other digits
    assert trained_on(load(tmp_path / "i" / "policy.pt")) is None


def test_resume_takes_a_list_spelled_either_way(tmp_path, digits):
    """``--set task_options.widths=8,16`` and ``[8, 16]`` are one config (compared resolved)."""
    widths = list(SMALL["widths"])
    run(tmp_path / "r", digits, 4, task_options=dict(SMALL, transform="cross", widths=",".join(map(str, widths))))
    assert run(tmp_path / "r", digits, 8, task_options=dict(SMALL, transform="cross", widths=widths)).resumed


def test_resume_after_kill(tmp_path, digits):
    """A real training process killed with SIGKILL resumes from its last checkpoint."""
    data = tmp_path / "digits.npz"
    np.savez(data, train_x=digits.train_x, train_y=digits.train_y, test_x=digits.test_x, test_y=digits.test_y)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "rl_i2it.cli", "train", "digits", "--steps", "100000", "--out", str(out),
           "--set", "train.checkpoint_every_s=0.5", "--set", f"task_options.source={data}",
           "--set", "task_options.transform=cross", "--set", "train.n_envs=8", "--set", "train.horizon=4",
           "--set", "train.learning_starts=16", "--set", "sac.batch_size=16",
           *[f"--set=task_options.{k}={','.join(map(str, v)) if isinstance(v, list) else v}" for k, v in SMALL.items()]]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            if (out / "checkpoint.pt").exists():
                saved = torch.load(out / "checkpoint.pt", weights_only=True)
                if saved["counters"]["updates"] > 0:
                    break
            time.sleep(0.2)
        else:
            pytest.fail("no checkpoint within 60 s")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    saved = torch.load(out / "checkpoint.pt", weights_only=True)
    done = saved["counters"]["updates"]
    target = done + 8
    res = subprocess.run(cmd[:6] + [str(target)] + cmd[7:], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert f"resuming {out} at update {done}" in res.stdout
    final = torch.load(out / "checkpoint.pt", weights_only=True)["counters"]["updates"]
    assert target <= final < target + 8
    assert not [f for f in os.listdir(out) if f.endswith(".tmp")]

    # Ctrl-C: the run stops after the step under way, saves and exits as interrupted (so `train && next` stops)
    lines = len((out / "metrics.jsonl").read_text().splitlines())
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60      # wait until it trains (its Ctrl-C handler is in place by then)
    while len((out / "metrics.jsonl").read_text().splitlines()) <= lines and time.time() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130 and f"stopped: checkpoint saved in {out}" in stderr, stderr
    assert "Traceback" not in stderr and "trained" not in stdout
    assert torch.load(out / "checkpoint.pt", weights_only=True)["counters"]["updates"] > final

    # SIGTERM (kill, Slurm, Docker): the same graceful stop (it ended the process unsaved before)
    saved = torch.load(out / "checkpoint.pt", weights_only=True)["counters"]["updates"]
    lines = len((out / "metrics.jsonl").read_text().splitlines())
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while len((out / "metrics.jsonl").read_text().splitlines()) <= lines and time.time() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130 and f"stopped: checkpoint saved in {out}" in stderr, stderr
    assert "SIGTERM: stopping after this step" in stdout
    assert torch.load(out / "checkpoint.pt", weights_only=True)["counters"]["updates"] > saved


def test_short_training_beats_untrained_policy(tmp_path, digits):
    """RL-I2IT trained for 150 updates (~6 s) registers held-out pairs far better than untrained:
    Dice at T=10 rises by more than 0.1 (measured: about 0.61 -> 0.85)."""
    opts = dict(SMALL, transform="random", scale_range=[0.7, 1.3], rotation_range=[-30, 30])
    over = {"task_options": opts, "train": {"n_envs": 16, "horizon": 5, "learning_starts": 64},
            "sac": {"lr_policy": 1e-3, "lr_critic": 1e-3}}
    cfg = load_config(None, merge(FAST, merge(over, {"train": {"steps": 150}})))
    tr = Trainer(cfg, tmp_path / "t", task=DigitsTask(opts, data=digits), verbose=False)
    before = evaluate(tr.task, tr.policy, steps=(10,), n_moving=40)["dice"]
    tr.train()
    after = evaluate(tr.task, tr.policy, steps=(10,), n_moving=40)["dice"]
    assert abs(before[10]["mean"] - before[0]["mean"]) < 0.02      # untrained = about identity
    assert after[10]["mean"] > before[10]["mean"] + 0.10, (before, after)


@pytest.mark.parametrize("bad", [lambda action: action.sum() * float("nan"),
                                 lambda action: (action * 0).sum().sqrt()],      # 0, but a NaN gradient
                         ids=["nan-loss", "nan-gradient"])
def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, digits, monkeypatch, bad):
    from rl_i2it.errors import UserError
    run(tmp_path / "r", digits, 8)
    good = torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=True)
    monkeypatch.setattr(DigitsTask, "auxiliary_loss", lambda self, state, action, policy=None: (bad(action), {}))
    with pytest.raises(UserError, match="non-finite loss or gradient"):
        run(tmp_path / "r", digits, 16)
    kept = torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=True)
    assert kept["counters"] == good["counters"]
    assert all(torch.equal(kept["policy"][k], v) for k, v in good["policy"].items())


def test_device_errors_name_the_device_asked_for():
    from rl_i2it.core.trainer import resolve_device
    from rl_i2it.errors import UserError
    assert resolve_device("cpu") == torch.device("cpu")
    for name in ("cuda:3", "tpu", "gpu"):
        if name == "cuda:3" and torch.cuda.device_count() > 3:
            continue
        with pytest.raises(UserError, match=name):
            resolve_device(name)


def test_a_fresh_start_drops_the_metrics_of_a_run_killed_before_its_first_checkpoint(tmp_path, digits):
    """config.json and metrics.jsonl but no checkpoint (killed within the first minute): training
    starts over and its curves hold only its own rows."""
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "config.json").write_text(json.dumps(load_config(None, FAST).to_dict()))
    (tmp_path / "r" / "metrics.jsonl").write_text('{"updates": 999, "score": 0.0}\n')
    run(tmp_path / "r", digits, 8, train={"log_every": 2})
    rows = [json.loads(x)["updates"] for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert rows and 999 not in rows and rows == sorted(rows)


def test_a_resume_removes_the_temporary_files_of_a_save_cut_off_by_a_kill(tmp_path, digits):
    run(tmp_path / "r", digits, 8)
    for name in ("checkpoint.pt.k1ll3d.tmp", "policy.pt.x_y.tmp"):      # as atomic_save names them
        (tmp_path / "r" / name).write_bytes(b"half a checkpoint")
    (tmp_path / "r" / "notes.tmp").write_text("the user's")
    run(tmp_path / "r", digits, 16)
    assert sorted(p.name for p in (tmp_path / "r").glob("*.tmp")) == ["notes.tmp"]


def test_a_run_shorter_than_log_every_logs_its_updates_and_names_its_score(tmp_path, digits, monkeypatch):
    """The updates since the last metrics line are logged when training ends (a 3-update run had
    an empty metrics.jsonl and blank curves), and the curves name what the task's score is."""
    import rl_i2it.core.trainer as trainer_mod
    seen = {}
    monkeypatch.setattr(trainer_mod, "plot_curves", lambda runs, path, *a, **kw: seen.update(kw))
    tr = run(tmp_path / "r", digits, 3, train={"log_every": 50})
    rows = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["updates"] == tr.counters["updates"] >= 3 and "critic_loss" in rows[0]
    assert seen == {"score_name": "Dice"}


def test_a_budget_already_spent_says_nothing_was_trained(tmp_path, digits, capsys):
    """Resumed with --steps below what the run holds: nothing trains, and a line says so (the
    command's last line, "trained N updates", read as if it had)."""
    from rl_i2it.core.trainer import train_run
    run(tmp_path / "r", digits, 8)
    done = torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=True)["counters"]["updates"]
    cfg = load_config(None, merge(FAST, {"task_options": dict(SMALL, transform="cross"), "train": {"steps": 4}}))
    capsys.readouterr()
    counters = train_run(cfg, tmp_path / "r", task=DigitsTask(cfg.task_options, data=digits))
    assert counters["updates"] == done
    assert f"nothing to train: {tmp_path / 'r'} holds {done} updates" in capsys.readouterr().out


def test_progress_bar_counts_every_update(tmp_path, digits, capsys):
    """--steps stops at an episode's end, past the count: the bar shows the updates made, so its
    rate is per update (it stopped at 3 of 22 and read 7x too slow)."""
    base = merge(FAST, {"task_options": dict(SMALL, transform="cross"), "train": {"steps": 3, "updates_per_step": 4}})
    cfg = load_config(None, base)
    tr = Trainer(cfg, tmp_path / "r", task=DigitsTask(cfg.task_options, data=digits), verbose=True)
    tr.train()
    n = tr.counters["updates"]
    last = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    assert n > 3 and f"{n}/{n} [" in last, last


def test_the_policy_average_follows_its_decay(tmp_path, digits):
    """After update n the average moves by 1 - min(policy_ema, (n + 1) / (n + 10)) toward the live weights."""
    tr = run(tmp_path / "r", digits, 4, train={"policy_ema": 0.9})
    for n, decay in ((5, 0.4), (1000, 0.9)):
        with torch.no_grad():
            for live, avg in zip(tr.policy.parameters(), tr.policy_avg.parameters()):
                live.fill_(1.0)
                avg.fill_(0.0)
        tr.counters["updates"] = n
        tr._average_policy()
        for p in tr.policy_avg.parameters():
            torch.testing.assert_close(p, torch.full_like(p, 1 - decay))


def test_train_first_share_reaches_the_replay(tmp_path, digits, monkeypatch):
    from rl_i2it.core.buffer import ReplayBuffer
    shares, sample = [], ReplayBuffer.sample
    def record(self, *args, first_share=0.0, **kw):
        shares.append(first_share)
        return sample(self, *args, first_share=first_share, **kw)
    monkeypatch.setattr(ReplayBuffer, "sample", record)
    run(tmp_path / "r", digits, 3, train={"first_share": 0.75})
    assert shares and set(shares) == {0.75}


def test_resume_refuses_a_changed_training_setting(tmp_path, digits):
    """only RESUME_MAY_CHANGE's train.* keys may change on resume; another replay size or
    number of environments would resume the saved replay/environments under other settings."""
    from rl_i2it.errors import UserError
    run(tmp_path / "r", digits, 4)
    with pytest.raises(UserError, match=r"another config \(train\.replay_size"):
        run(tmp_path / "r", digits, 6, train={"replay_size": 256})
