"""Rollouts, update schedule, logging, checkpoints and resume; the loss math is in ``sac.py``.

A run directory holds ``config.json`` (resolved), ``checkpoint.pt`` (everything needed to resume:
networks, optimisers, temperature, counters, RNG states and, when small, the replay),
``policy.pt`` (what inference needs), ``metrics.jsonl`` and ``curves.png``.

Checkpoints are taken only between episodes, where the environment holds nothing that the RNG
states cannot redraw, so a run killed and resumed goes on exactly as if it had stopped at its last
checkpoint (on a CPU; on a GPU closely, not bit for bit: some of its kernels, grid_sample's
backward among them, add in no fixed order, and have no deterministic version). A first Ctrl-C ends the episode at the step under way (its transitions kept, its
updates not made), saves and stops; an error (a non-finite loss or gradient) leaves the last checkpoint as it was.
"""
from __future__ import annotations

import json
import math
import os
import signal
import sys
import threading
import time
import zlib
from dataclasses import asdict, replace
from pathlib import Path

import torch

from ..config import Config, absolute_paths, fill, reachable_transitions
from ..data.cache import writable_dir
from ..errors import Stopped, UserError
from ..nets import fast_layout
from ..viz import plot_curves, read_metrics
from . import checkpoint as ckpt
from . import parallel
from .buffer import ReplayBuffer
from .critic import TwinCritic, make_target, soft_update
from .sac import SAC


def resolve_device(name: str) -> torch.device:
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r} (use cpu, cuda or cuda:N)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {name} asked for (--device, or the config's device), but torch sees no CUDA "
                        f"device; use cpu")
    if dev.type == "cuda" and (dev.index or 0) >= torch.cuda.device_count():
        n = torch.cuda.device_count()
        raise UserError(f"device {name}: torch sees only {n} CUDA device(s) (cuda:0 to cuda:{n - 1})")
    if dev.type not in ("cpu", "cuda"):
        raise UserError(f"unsupported device {name!r}")
    if dev.type == "cuda" and dev.index is None and not parallel.launched():   # (torchrun: cuda:LOCAL_RANK)
        dev = torch.device("cuda", torch.cuda.current_device())   # tensors say cuda:N; a bare cuda != cuda:N
    return dev


def differing(old: dict, new: dict, prefix: str = "") -> list[str]:
    """The keys whose values differ between two nested dicts, dotted, each with both values:
    ``"sac.gamma 0.99 (now 0.9)"``."""
    out = []
    for k in sorted(set(old) | set(new), key=str):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += differing(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k} {a!r} (now {b!r})")
    return out


def typed_options(cfg: Config, task) -> Config:
    """``cfg`` with its task options as ``task`` reads them (``--set task_options.size=64`` gives
    the string "64": config.json and the checkpoints hold 64); only the keys given, lists as lists."""
    filled = asdict(fill(type(task.options), cfg.task_options, "task_options."))
    return replace(cfg, task_options={k: list(filled[k]) if isinstance(filled[k], tuple) else filled[k]
                                      for k in cfg.task_options})


def build_task(cfg: Config, device: torch.device):
    from ..tasks import task_class
    return task_class(cfg.task)(cfg.task_options, device)


def saved_policy(obj: dict) -> dict:
    """The planner-actor weights a checkpoint or policy file stands for: the moving average when
    the run keeps one (as its ``policy.pt`` holds), else the last weights."""
    return obj.get("policy_avg", obj["policy"])


def new_policy(task, cfg: Config, device):
    """The task's planner-actor on ``device`` with the config's plan noise limits (``sac.log_std_min``,
    ``log_std_max``: not weights, so a loaded policy needs them from its config as a trained one does)."""
    policy = fast_layout(task.build_policy().to(device))
    policy.log_std_bounds = (cfg.sac.log_std_min, cfg.sac.log_std_max)
    return policy


SPLIT_BY_HEIGHT = ("brain2d", "brain2d-inter")
"""Named pair sets whose levels were split 4 mm apart in session 35: a run of them whose weights'
data is not known (``checkpoint.trained_on``) may have learnt from the old, interleaved levels."""


def same_training_data(run, task) -> None:
    """Refuse to score ``run`` when its task's training data is no longer what it trained on
    (the fingerprint in its policy.pt): its test split may now hold what it trained on."""
    trained_on = ckpt.trained_on(ckpt.load(run))
    if trained_on is None:              # not known (an older version's policy.pt, a resume on other data, an
        if getattr(task.options, "pairs", None) in SPLIT_BY_HEIGHT:       # --init of another): but for the brains
            raise UserError(f"{run} learnt from data not known to be {task.options.pairs}'s pairs of today (trained "
                            f"by an older version on its former slices, 1 mm from some of today's test slices, or "
                            f"resumed or started from such a run): train it anew into a new --out")
        return
    if trained_on != ckpt.data_fingerprint(task.training_tensors()):
        raise UserError(f"{run} was trained on other data than its task_options give now (files added, removed, "
                        f"changed or renamed, another split column, or a named set this version builds anew): its "
                        f"test split may now hold pairs it trained on; restore the data to score it, or train anew")


def load_policy(path, device="cpu"):
    """``(task, policy, cfg)`` from a ``policy.pt``, ``checkpoint.pt`` or run directory (a checkpoint's
    averaged weights when the run keeps an average, as its ``policy.pt`` has)."""
    obj = ckpt.load(path)
    if not isinstance(obj.get("config"), dict):
        raise UserError(f"{path} is not an rl-i2it checkpoint (it holds no config)")
    cfg = fill(Config, obj["config"])
    device = resolve_device(str(device))
    task = build_task(cfg, device)
    policy = new_policy(task, cfg, device)
    try:
        policy.load_state_dict(saved_policy(obj))
    except (RuntimeError, KeyError) as exc:
        raise UserError(f"{path}: weights do not fit the {cfg.task} model ({exc.__class__.__name__})") from None
    return task, policy.eval(), cfg


def average_policies(paths: list) -> dict:
    """The mean of the saved planner-actor weights of several runs (integer tensors: the first's)."""
    weights = [saved_policy(ckpt.load(p)) for p in paths]
    return {k: (sum(w[k].double() for w in weights) / len(weights)).to(v.dtype) if v.is_floating_point() else v
            for k, v in weights[0].items()}


def train_run(cfg: Config, run_dir: str | Path, task=None, verbose: bool = True) -> dict:
    """Train ``cfg`` into ``run_dir`` (resuming) and return the counters. With ``train.init`` and
    ``train.fine_tunes = K > 1``: K fine-tunes, seeds ``seed .. seed + K - 1``, into
    ``run_dir/fine_tune_k``, then ``run_dir/policy.pt`` = the average of their weights."""
    run_dir, k = writable_dir(run_dir, make=False), cfg.train.fine_tunes     # --out named in its errors
    lead = parallel.rank() == 0                  # torchrun: rank 0 speaks and writes
    verbose = verbose and lead
    if k > 1 and not cfg.train.init:
        if verbose:
            print(f"train.fine_tunes = {k} averages fine-tunes of one model (train.init); runs from "
                  f"different random starts do not average: training one model")
        k = 1
    soup = (run_dir / "fine_tune_0").is_dir()
    held = sum(1 for p in run_dir.glob("fine_tune_*") if p.is_dir()) if soup else 0
    if (k == 1 and soup) or (k > 1 and (run_dir / "checkpoint.pt").is_file()) or held > k or (
            held and (run_dir / "policy.pt").is_file() and held != k):
        raise UserError(f"{run_dir} holds {f'an average of {held} fine-tunes' if soup else 'a single run'}: "
                        f"use a new --out or the same train.fine_tunes to resume it")
    if k > 1:        # the average lands in run_dir itself: what a single run refuses there, refused here too
        refuse_another_task(run_dir, cfg.task)
        if not soup and (run_dir / "policy.pt").is_file():
            raise UserError(f"{run_dir} holds a trained model (policy.pt) but no fine-tunes: their average would "
                            f"replace it; use a new --out")
    subs, total = [run_dir] if k == 1 else [run_dir / f"fine_tune_{i}" for i in range(k)], {}
    if cfg.train.init and not all((sub / "checkpoint.pt").is_file() for sub in subs):
        try:                               # the run to start from is there: said before any fine-tune is announced
            ckpt.checkpoint_file(cfg.train.init)
        except UserError as exc:
            raise UserError(f"train.init (--init): {exc}") from None
    for i, sub in enumerate(subs):
        one = cfg
        if k > 1:                  # a fine-tune: its own seed, one model
            one = fill(Config, {**cfg.to_dict(), "seed": cfg.seed + i})
            one.train.fine_tunes = 1
            if verbose:
                print(f"fine-tune {i + 1} of {k} (seed {one.seed}) -> {sub}")
        trainer = Trainer(one, sub, task=task, verbose=verbose)
        before = trainer.counters["updates"]
        if trainer.resumed and verbose:
            print(f"resuming {sub} at update {before}")
        total = {name: total.get(name, 0) + v for name, v in trainer.train().items()}   # Ctrl-C: Stopped
        if trainer.resumed and verbose and trainer.counters["updates"] == before:
            print(f"nothing to train: {sub} holds {before} updates, as many as its budget asks or more")
        if k == 1:
            return total
    if not lead:
        return total
    cfg = replace(cfg, task_options=trainer.cfg.task_options)       # as the task read them (typed_options)
    ckpt.atomic_save({"format": ckpt.POLICY_FORMAT, "config": cfg.to_dict(), "policy": average_policies(subs),
                      "data": trainer.data_key, "trained_on": trainer.trained_on, "counters": total},
                     run_dir / "policy.pt")   # one task: one data
    (run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    plot_curves(subs, run_dir / "curves.png", score_name=trainer.task.score_name)
    if verbose:
        print(f"{run_dir}/policy.pt: the average of the {k} fine-tunes' weights")
    return total


RESUME_MAY_CHANGE = ("steps", "minutes", "log_every", "checkpoint_every_s", "checkpoint_replay_mb", "memory_fraction")
"""``train`` keys a resumed run may change: none changes what it learns."""
RUN_FILES = ("config.json", "metrics.jsonl", "curves.png", "checkpoint.pt", "policy.pt")
"""What a run writes in its folder."""


def refuse_another_task(run_dir: Path, task: str) -> None:
    """A run of another task in ``run_dir``: say so at once (before any data is loaded); a
    folder holding files a run writes that are no run's (a project's own config.json): refused."""
    mine = [f for f in RUN_FILES if (run_dir / f).is_file()]
    trained = any((run_dir / f).is_file() for f in ("checkpoint.pt", "policy.pt"))
    try:
        config = json.loads((run_dir / "config.json").read_text()) if mine else {}
    except (OSError, ValueError):
        config = None
    if not isinstance(config, dict):
        config = {}
    if mine and not trained and not {"task", "sac", "train"} <= set(config):     # a checkpoint decides itself
        raise UserError(f"{run_dir} holds {', '.join(mine)} but no rl-i2it run (its config.json is not one): "
                        f"training would replace them; give another --out")
    there = config.get("task")
    if there and there != task and trained:
        raise UserError(f"{run_dir} holds a {there} run: train {task} into another --out")


class Trainer:
    """Trains ``cfg`` in ``run_dir``, resuming from ``run_dir/checkpoint.pt`` when present."""

    def __init__(self, cfg: Config, run_dir: str | Path, task=None, verbose: bool = True):
        self.cfg = cfg
        if not (cfg.train.steps or cfg.train.minutes):
            raise UserError("give a stopping rule: --steps N or --minutes M")
        if cfg.train.fine_tunes > 1 and cfg.train.init:
            raise UserError(f"train.fine_tunes = {cfg.train.fine_tunes}: a Trainer trains one model; "
                            f"train_run (what `rl-i2it train` runs) trains and averages the fine-tunes")
        self.run_dir = Path(run_dir)
        refuse_another_task(self.run_dir, cfg.task)
        if parallel.rank() == 0 and (self.run_dir / ".lock").is_file():   # another training here: said now, not
            ckpt.lock_run(self.run_dir).close()     # after loading its checkpoint, data and replay (GiBs in 3D)
        self.device = parallel.init(resolve_device(cfg.device))    # torchrun: this rank's device
        self.lead = parallel.rank() == 0          # the rank that writes the run directory
        self.verbose = verbose and self.lead
        ckpt.seed_everything(cfg.seed)
        self.task = task if task is not None else build_task(cfg, self.device)
        self.cfg = typed_options(cfg, self.task)
        self.task.device = self.device
        self.task.rewards_used = cfg.sac.use_rl
        self.task.load_learner_state({})      # a given task may hold another run's discriminator (fine-tunes)
        saved = self._saved_run()              # a run that cannot be resumed fails here, before the data loads
        if not parallel.same_everywhere([saved is not None, saved["counters"]["updates"] if saved else 0]):
            raise UserError(f"the ranks found different runs in {self.run_dir}: under torchrun every rank must "
                            f"read rank 0's run folder (on several machines, a folder they all share)")
        with parallel.rank_zero_first():           # torchrun: one rank fills the data cache
            self.task.load_training_data()     # bad data fails here, before the run directory is written
        self.data_key = ckpt.data_fingerprint(self.task.training_tensors())
        self.trained_on = self.data_key if saved is None or ckpt.trained_on(saved) == self.data_key else None
        if saved is not None and "replay" in saved and saved.get("data") != self.data_key:
            if "data" in saved:          # (no replay saved: nothing points into the data, the run goes on)
                raise UserError(f"{self.run_dir} was trained on other data than its task_options give now (files "
                                f"added, removed, changed or renamed): its replay points into the old data; "
                                f"restore it, or train into a new --out (--init {self.run_dir} starts from its weights)")
            del saved["replay"]          # an older version's checkpoint: its replay cannot be checked, so it refills
            saved["replay_unchecked"] = True
        self.policy = new_policy(self.task, cfg, self.device)
        if cfg.train.init and saved is None:
            self._start_from(cfg.train.init)
        critic = None
        if cfg.sac.use_rl:
            critic = fast_layout(TwinCritic(lambda: self.task.build_critic(cfg.sac.critic_on)).to(self.device))
        self.sac = SAC(self.policy, critic, cfg.sac, self.task).to(self.device)
        parallel.broadcast(self.sac)               # torchrun: every rank starts from rank 0's networks
        self.policy_avg = make_target(self.policy) if cfg.train.policy_ema > 0 else None
        self.env_gen, self.sample_gen = torch.Generator(), torch.Generator()
        self._seed_streams()
        self.env = self.task.make_env(cfg.train.n_envs, self.env_gen, "train")
        shard = -(-cfg.train.replay_size // parallel.world())
        reach = reachable_transitions(cfg.train, shard)
        if cfg.train.learning_starts > reach:      # a shard that never fills so far: no update, ever
            raise UserError(f"train.learning_starts ({cfg.train.learning_starts}) is more than each of the "
                            f"{parallel.world()} ranks' replay shard holds ({shard} rows of train.replay_size "
                            f"{cfg.train.replay_size}: about {reach} transitions): raise train.replay_size "
                            f"or lower train.learning_starts")
        self.replay = ReplayBuffer(shard, self.task.state_fields(),
                                   self.task.z_field(cfg.sac.critic_on), self.device,
                                   cfg.train.memory_fraction / parallel.world(), self.verbose)
        if parallel.world() > 1 and self.verbose:
            n = parallel.world()
            print(f"torchrun: {n} processes, each with its own {cfg.train.n_envs} environments and replay shard; "
                  f"every update averages their gradients ({n} x {cfg.sac.batch_size} samples)")
        self.counters = {"updates": 0, "env_steps": 0, "episodes": 0, "seconds": 0.0}
        self.resumed = saved is not None
        self._prepare_run_dir(saved)

    def _seed_streams(self, salt: int = 0) -> None:
        """The environments' and replay sampling's random streams (and, on ranks > 0, torch's): the
        run's seed on rank 0; under torchrun each other rank its own (``salt``: the update count it
        resumes at, so a resumed rank does not draw again what it drew from the start)."""
        seed = self.cfg.seed
        if not self.lead:
            seed += 10_000 * parallel.rank() + 100_003 * salt
            ckpt.seed_everything(seed)
        self.env_gen.manual_seed(seed)
        self.sample_gen.manual_seed(seed + 1)

    def _start_from(self, path: str) -> None:
        """Copy ``path``'s planner-actor weights (its average when it keeps one) into this run's,
        wherever name and shape agree (``train.init``)."""
        obj = ckpt.load(path)
        task = fill(Config, obj["config"]).task
        if task != self.cfg.task:
            raise UserError(f"train.init {path} is a {task} model, this run trains {self.cfg.task}")
        if ckpt.trained_on(obj) != self.data_key:     # its weights learnt from other (or unknown) data too
            self.trained_on = None
        try:
            other = fill(type(self.task.options), absolute_paths(obj["config"]).get("task_options") or {}, "task_options.")
        except UserError:              # options of an older version: nothing to compare
            other = None
        for words in self.task.init_differences(other) if other is not None else ():
            print(f"rl-i2it: note: train.init {path}: {words}; only its weights of the same name and shape carry "
                  f"over", file=sys.stderr)
        own = self.policy.state_dict()
        fit = {k: v for k, v in saved_policy(obj).items() if k in own and own[k].shape == v.shape}
        if not fit:
            raise UserError(f"train.init {path}: none of its weights fit this {task} model")
        self.policy.load_state_dict(fit, strict=False)
        if self.verbose:
            print(f"planner-actor from {path}: {len(fit)} of {len(own)} tensors (the rest start fresh)")

    # -- run directory ------------------------------------------------------------------------
    def _saved_run(self) -> dict | None:
        """The checkpoint to resume from (``None`` for a fresh start), refused when its config
        differs from this one in more than the stopping rule and device, or when only a trained
        model (``policy.pt``) is there."""
        if (self.run_dir / "checkpoint.pt").is_file():
            saved = ckpt.load(self.run_dir / "checkpoint.pt", (ckpt.TRAIN_FORMAT,))
            old = fill(Config, absolute_paths(saved["config"])).to_dict()   # keys added since: defaults;
            new = self.cfg.to_dict()                  # a relative path saved by an older version: as now
            for d in (old, new):       # the stopping rule, device and bookkeeping may change on resume
                d.pop("device", None)
                d["train"] = {k: v for k, v in d["train"].items() if k not in RESUME_MAY_CHANGE}
                if d["train"].get("init"):      # --init runs/img again, from here, after runs/img was deleted
                    d["train"]["init"] = str(Path(d["train"]["init"]).absolute())
                if d["task"] == self.cfg.task:          # "8,16" and [8, 16] are the same widths
                    d["task_options"] = asdict(fill(type(self.task.options), d["task_options"], "task_options."))
            if old != new:
                raise UserError(f"{self.run_dir} holds a run with another config ({', '.join(differing(old, new))}): "
                                f"use a new --out or the same settings to resume it")
            return saved
        if (self.run_dir / "policy.pt").is_file():       # a trained model without its training state
            raise UserError(f"{self.run_dir} holds a trained model (policy.pt) but no checkpoint.pt to resume: "
                            f"training there would start over and replace it; use a new --out")
        return None

    def _prepare_run_dir(self, saved: dict | None) -> None:
        if not self.lead:                          # torchrun: rank 0 writes the folder
            if saved is not None:
                self._restore(saved)
            return
        writable_dir(self.run_dir)
        with ckpt.lock_run(self.run_dir):          # not while another process trains here (train() locks too)
            for tmp in self.run_dir.glob("*.pt.*.tmp"):     # a save cut off by a kill (atomic_save's names)
                tmp.unlink(missing_ok=True)
            if saved is not None:
                self._restore(saved)
            else:                      # a fresh start: no metrics of a run killed before its first checkpoint
                (self.run_dir / "metrics.jsonl").unlink(missing_ok=True)
            (self.run_dir / "config.json").write_text(json.dumps(self.cfg.to_dict(), indent=2) + "\n")

    def _state(self) -> dict:
        sd = {"format": ckpt.TRAIN_FORMAT, "config": self.cfg.to_dict(), "counters": dict(self.counters),
              "world": parallel.world(), "data": self.data_key, "trained_on": self.trained_on,
              "policy": self.policy.state_dict(), "log_alpha": self.sac.log_alpha.detach().cpu(),
              "optim": self.sac.optim_state(), "rng": ckpt.rng_state(self.device),
              "env_gen": self.env_gen.get_state(), "sample_gen": self.sample_gen.get_state()}
        if self.cfg.sac.use_rl:
            sd["critic"] = self.sac.critic.state_dict()
            sd["critic_target"] = self.sac.critic_target.state_dict()
        if self.policy_avg is not None:
            sd["policy_avg"] = self.policy_avg.state_dict()
        learners = self.task.learner_state()
        if learners:
            sd["task"] = learners
        if self.replay.nbytes <= self.cfg.train.checkpoint_replay_mb * 2**20:
            sd["replay"] = self.replay.state_dict()
        return sd

    def _restore(self, sd: dict) -> None:
        self.policy.load_state_dict(sd["policy"])
        with torch.no_grad():
            self.sac.log_alpha.copy_(sd["log_alpha"])
        if self.cfg.sac.use_rl:
            self.sac.critic.load_state_dict(sd["critic"])
            self.sac.critic_target.load_state_dict(sd["critic_target"])
        if self.policy_avg is not None:
            self.policy_avg.load_state_dict(sd["policy_avg"])
        self.sac.load_optim_state(sd["optim"])
        self.task.load_learner_state(sd.get("task", {}))
        self.counters.update(sd["counters"])
        self.sac.updates = self.counters["updates"]
        if not self.lead:            # rank 0's replay and random streams are its own: this rank draws anew
            self._seed_streams(self.counters["updates"])
            return
        ckpt.set_rng_state(sd["rng"], self.device)
        self.env_gen.set_state(sd["env_gen"])
        self.sample_gen.set_state(sd["sample_gen"])
        if "replay" in sd and sd["replay"]["size"] <= self.replay.capacity:     # (its ring fits in ours)
            self.replay.load_state_dict(sd["replay"])
        elif sd.get("replay_unchecked"):
            if self.verbose:
                print("note: this checkpoint, of an older version, does not say which data its replay points into: "
                      "the replay refills from here, so the run goes on close to, not exactly as, one that never stopped")
        elif "replay" in sd:             # torchrun with more ranks than the saved run: a smaller shard
            if self.verbose:
                print(f"note: the saved replay holds {sd['replay']['size']} rows, this run's shard "
                      f"{self.replay.capacity} (trained with {sd.get('world', 1)} process(es), resumed with "
                      f"{parallel.world()}): it refills from here, so the run goes on close to, not exactly as, "
                      f"one that never stopped")
        elif self.verbose:
            print(f"note: the replay ({self.replay.nbytes / 2**20:.0f} MiB) is over train.checkpoint_replay_mb "
                  f"({self.cfg.train.checkpoint_replay_mb:g}) and was not saved: it refills from here, so the "
                  f"run goes on close to, not exactly as, one that never stopped")
        if sd.get("world", 1) != parallel.world() and self.verbose:
            print(f"note: trained with {sd.get('world', 1)} process(es), resumed with {parallel.world()}: an update "
                  f"now learns from {parallel.world()} x {self.cfg.sac.batch_size} samples")
        if parallel.world() > 1 and self.verbose:
            print("note: under torchrun the checkpoint holds rank 0's replay and random streams; the other "
                  "ranks refill theirs, so the run goes on close to, not exactly as, one that never stopped")
        # forget log lines written after this checkpoint by the run that was killed
        log = self.run_dir / "metrics.jsonl"
        if log.is_file():
            keep = [json.dumps(row) for row in read_metrics(self.run_dir)
                    if row.get("updates", 0) <= self.counters["updates"]]
            tmp = log.with_suffix(".jsonl.tmp")
            tmp.write_text("".join(ln + "\n" for ln in keep))
            os.replace(tmp, log)

    def save(self) -> None:
        if not self.lead:
            return
        ckpt.atomic_save(self._state(), self.run_dir / "checkpoint.pt")
        policy = self.policy if self.policy_avg is None else self.policy_avg
        ckpt.atomic_save({"format": ckpt.POLICY_FORMAT, "config": self.cfg.to_dict(), "data": self.data_key,
                          "trained_on": self.trained_on, "policy": policy.state_dict(), "counters": dict(self.counters)},
                         self.run_dir / "policy.pt")

    # -- training -----------------------------------------------------------------------------
    def _done(self) -> bool:
        t = self.cfg.train
        return ((t.steps and self.counters["updates"] >= t.steps)
                or (t.minutes and self.counters["seconds"] >= 60 * t.minutes))

    def train(self) -> dict:
        """Run until ``train.steps`` updates or ``train.minutes`` of training; return the counters."""
        t, cfg = self.cfg.train, self.cfg
        # one training per folder: two would overwrite each other (torchrun: rank 0 writes it)
        lock = ckpt.lock_run(self.run_dir) if self.lead else None
        bar = self._progress()
        log = open(self.run_dir / "metrics.jsonl", "a") if self.lead else None
        last_ckpt, stats, scores = time.monotonic(), {}, []
        self.stopped = False
        ok = False
        old_handlers = {}          # Ctrl-C; and under no torchrun (which ends its workers so) the SIGTERM of kill,
        if threading.current_thread() is threading.main_thread():      # Slurm, Docker, systemd, and a closed terminal's SIGHUP
            stops = [signal.SIGINT] + ([] if parallel.launched() else
                                       [getattr(signal, n) for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n)])
            old_handlers = {sig: signal.signal(sig, self._request_stop) for sig in stops}
        try:
            while self._go_on(not self._done()):
                start = time.monotonic()
                if self.lead and start - last_ckpt >= t.checkpoint_every_s:
                    self.save()
                    last_ckpt = time.monotonic()
                    start = last_ckpt
                state = self.env.reset()
                active = torch.ones(self.env.n, dtype=torch.bool, device=self.device)
                ended = None                  # the step's info where this rank's episodes all ended
                for step in range(t.horizon):
                    with torch.no_grad():
                        self.policy.eval()
                        out = self.policy(self.task.observe(state))
                    next_state, reward, done, info = self.env.step(out.action)
                    z = out.plan if cfg.sac.critic_on == "plan" else out.action
                    self.replay.add(state, z, reward, next_state, done, keep=active, first=step == 0)
                    self.counters["env_steps"] += 1
                    active = active & ~done
                    state = next_state
                    if ended is None and not active.any():     # (torchrun: others may still go on)
                        ended = info
                    ready, finished, calm = parallel.on_every_rank(len(self.replay) >= t.learning_starts,
                                                                   ended is not None, not self.stopped)
                    if not calm:     # a Ctrl-C on any rank: every rank stops here, between steps (the
                        self.stopped = True     # replay holds each transition whole: the checkpoint is sound)
                        break
                    if ready:
                        for _ in range(t.updates_per_step):
                            batch = self.replay.sample(cfg.sac.batch_size, self.sample_gen, first_share=t.first_share)
                            logs = self.sac.update(batch)
                            self.counters["updates"] += 1
                            self._average_policy()
                            for k, v in logs.items():
                                stats.setdefault(k, []).append(v)
                            if self.counters["updates"] % t.log_every == 0:
                                self._log(log, stats, scores)
                                stats, scores = {}, []
                    if finished:
                        break
                score = (ended or info)["score"].mean().item()
                if math.isfinite(score):      # NaN: a task that measures nothing without rewards (style --no-rl)
                    scores.append(score)
                self.counters["episodes"] += 1
                elapsed = time.monotonic() - start      # torchrun: rank 0's clock on every rank, so `--minutes`
                self.counters["seconds"] = parallel.from_rank_zero(self.counters["seconds"] + elapsed)   # stops
                # all at once and the checkpoint holds the seconds the rule read (a rank's own ran ahead)
                self._advance(bar, scores)
            if stats:          # the updates since the last line (a run shorter than log_every has only these)
                self._log(log, stats, scores)
            ok = True
        except FloatingPointError as exc:
            raise UserError(f"training stopped: {exc}; the last good checkpoint in {self.run_dir} is kept "
                            f"(lower the learning rates or raise sac.grad_clip, then resume)") from None
        finally:
            for sig, handler in old_handlers.items():
                signal.signal(sig, handler)
            bar.close()
            if log is not None:
                log.close()
            if ok:            # only between episodes: an error mid-update leaves the last checkpoint
                self.save()
            if lock is not None:
                lock.close()
        self.plot()
        parallel.wait_for_all()          # rank 0's checkpoint and curves written before any rank ends
        if self.stopped:
            raise Stopped(f"stopped: checkpoint saved in {self.run_dir} (run the same command again to resume)")
        return dict(self.counters)

    def _go_on(self, more: bool) -> bool:
        """Whether every rank goes on: ``more`` on each and no Ctrl-C on any (a Ctrl-C on one rank
        stops them all, each as stopped)."""
        more, calm = parallel.on_every_rank(more, not self.stopped)
        self.stopped = self.stopped or not calm
        return more and calm

    def _average_policy(self) -> None:
        """One step of the weights' moving average, after update n (counted from 1): its decay
        (n+1)/(n+10) grows from 2/11 up to ``policy_ema``, so early weights fade out of short runs too."""
        if self.policy_avg is not None:
            n = self.counters["updates"]
            soft_update(self.policy_avg, self.policy, 1 - min(self.cfg.train.policy_ema, (n + 1) / (n + 10)))

    def _request_stop(self, signum, frame) -> None:
        """First Ctrl-C (or SIGTERM, SIGHUP): end the episode after the step under way, save, stop. A
        second one stops at once."""
        if self.stopped:
            raise KeyboardInterrupt
        self.stopped = True
        if self.verbose:
            what = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
            print(f"\n{what}: stopping after this step (Ctrl-C again to abort without saving) ...")

    def _log(self, log, stats: dict, scores: list) -> None:
        """One line of ``metrics.jsonl``: the mean of each update log since the last line and of the
        scores of the episodes ended since; under torchrun, over every rank's updates and episodes."""
        keys = list(stats)
        values = [sum(stats[k]) / len(stats[k]) for k in keys] + [sum(scores), len(scores)]
        # (ranks that log different keys, which the config rules out, keep rank 0's own rather than hang)
        if parallel.active() and parallel.same_everywhere([len(keys), zlib.crc32(",".join(keys).encode())]):
            values = parallel.summed(values)
            values[:len(keys)] = [v / parallel.world() for v in values[:len(keys)]]
        if log is None:                  # torchrun: rank 0 writes
            return

        def six(x: float) -> float:          # 6 significant digits: a style loss of 8.8e-6 is not 9e-06
            return float(f"{x:.6g}")
        row = {**{k: round(v, 6) if isinstance(v, float) else v for k, v in self.counters.items()},
               **{k: six(v) for k, v in zip(keys, values)}}
        if values[-1]:
            row["score"] = six(values[-2] / values[-1])
        log.write(json.dumps(row) + "\n")
        log.flush()

    def _progress(self):
        from tqdm.auto import tqdm
        t = self.cfg.train
        if t.steps:
            total, done, unit, form = t.steps, self.counters["updates"], "upd", None
        else:             # seconds of training: no rate (it would read "1.0 s/s")
            total, done, unit = round(60 * t.minutes), round(self.counters["seconds"]), "s"
            form = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} s [{elapsed}<{remaining}{postfix}]"
        return tqdm(total=max(total, done), initial=done, unit=unit, disable=not self.verbose, bar_format=form,
                    desc=f"train {self.cfg.task}", dynamic_ncols=True, mininterval=1.0)

    def _advance(self, bar, scores: list) -> None:
        n = self.counters["updates"] if self.cfg.train.steps else round(self.counters["seconds"])
        bar.total = max(bar.total, n)          # the last episode's updates past --steps: counted, rate true
        bar.n = n
        recent = scores[-10:]
        shown = {"score": f"{sum(recent) / len(recent):.3f}"} if recent else {}
        bar.set_postfix(**shown, alpha=f"{self.sac.alpha.item():.3g}", refresh=False)
        bar.refresh()

    def plot(self) -> None:
        if self.lead:
            plot_curves([self.run_dir], self.run_dir / "curves.png", score_name=self.task.score_name)
