"""Typed configuration: dataclasses whose field docs are the reference, loaded from TOML.

A config file has a top-level ``task = "digits"`` plus the tables ``[sac]``, ``[train]`` and
``[task_options]``; every key is optional and an unknown key or a bad value is a ``UserError``.
``--set sac.gamma=0.95`` on the command line overrides any one field.
"""
from __future__ import annotations

import dataclasses
import json
import math
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UserError


@dataclass
class SACConfig:
    """Soft actor-critic on the plan, plus the task's auxiliary loss."""
    gamma: float = 0.9
    """Discount of future rewards (episodes are short: a few to tens of steps)."""
    tau: float = 0.005
    """EMA rate of the target critics: target <- (1 - tau) target + tau critic."""
    batch_size: int = 64
    """Transitions per update."""
    lr_policy: float = 3e-4
    """Adam learning rate of planner + actor."""
    lr_critic: float = 3e-4
    """Adam learning rate of the twin critics."""
    lr_alpha: float = 3e-4
    """Adam learning rate of log(alpha)."""
    init_alpha: float = 0.05
    """Initial entropy temperature."""
    autotune_alpha: bool = True
    """Tune alpha toward the target entropy (SAC v2); else keep init_alpha."""
    target_entropy_per_dim: float = -1.0
    """Target entropy = this x plan dimension."""
    entropy_steps: int = 0
    """The entropy term (in the policy loss, the critic's soft target and alpha's tuning) acts on
    the states of an episode's first ``entropy_steps`` steps only (0 = every step): plan noise
    that helps the first step can cost the refining steps after it."""
    rl_weight: float = 1.0
    """Weight of the SAC policy objective (alpha log pi - Q) in the planner/actor loss."""
    aux_weight: float = 1.0
    """Weight of the task's auxiliary loss in the planner/actor loss."""
    use_rl: bool = True
    """False = the paper's 'w/o RL' ablation: planner + actor trained by the auxiliary loss alone."""
    use_aux: bool = True
    """False = the paper's 'w/o Reg' ablation: no auxiliary loss."""
    critic_on: str = "plan"
    """'plan' (the paper's method) or 'action' (the 'RL-I2IT-action' ablation)."""
    grad_clip: float = 10.0
    """Clip the global gradient norm of each optimiser step (0 = off)."""
    rl_warmup: int = 0
    """Updates over which the RL term's weight ramps linearly from 0 to rl_weight (the critic and
    temperature train from the start): an untrained critic's gradient slows the auxiliary
    learning of the planner it shares its features with."""
    log_std_min: float = -5.0
    """Lower bound of the plan's log-std (before tanh)."""
    log_std_max: float = 1.0
    """Upper bound of the plan's log-std: a low bound keeps plans from saturating at +-1 (then
    the actor learns to ignore its plan and the mean plan at inference is out of distribution)."""


@dataclass
class TrainConfig:
    """Rollouts, replay, schedule, logging and checkpoints."""
    n_envs: int = 32
    """Episodes run in parallel (one batched environment)."""
    horizon: int = 10
    """Steps per training episode (1 makes a one-step method)."""
    replay_size: int = 30000
    """Transitions the replay holds."""
    learning_starts: int = 640
    """Transitions collected before the first update."""
    updates_per_step: int = 2
    """Gradient updates after each batched environment step."""
    first_share: float = 0.0
    """Fraction of each batch drawn from the episodes' first transitions (the rest uniformly from
    the replay, where they are 1 / horizon): more training for the first step, whose state is
    the task's input (0 = uniform)."""
    steps: int = 0
    """Stop after this many updates (0 = no limit; then minutes must be set)."""
    minutes: float = 0.0
    """Stop after this much training wall time, summed over resumes (0 = no limit)."""
    log_every: int = 100
    """Write a line to metrics.jsonl every this many updates."""
    checkpoint_every_s: float = 60.0
    """Seconds between checkpoints (always one at the end)."""
    checkpoint_replay_mb: float = 512.0
    """Save the replay inside checkpoints when it is at most this big (exact resume)."""
    memory_fraction: float = 0.6
    """Refuse a replay larger than this fraction of the memory available now (of the GPU's free
    memory, for a replay on a GPU)."""
    policy_ema: float = 0.0
    """Decay of an exponential moving average of the planner-actor's weights, updated after every
    update (the rollouts use the live weights); ``policy.pt`` holds the average, which smooths
    out where a noisy (adversarial) training happens to stop. 0 = keep the last weights. The decay
    used at update n is min(this, (n + 1) / (n + 10)), so early weights fade out of short runs and
    this value binds only after about 9 / (1 - this) updates (890 at 0.99, 1790 at 0.995)."""
    init: str = ""
    """A run (or its policy.pt / checkpoint.pt) of the same task whose planner-actor weights a new
    run starts from, wherever name and shape agree (the rest, and the critic, start fresh):
    fine-tuning, for example a video model from an image model. Not used on resume."""
    fine_tunes: int = 1
    """With ``init``: train this many fine-tunes of it (seeds seed, seed + 1, ...; each in
    ``RUN/fine_tune_K`` with the whole budget, steps or minutes, of its own) and write the average
    of their weights as ``RUN/policy.pt`` (a "model soup": fine-tunes of one start average into
    one model; the video model's flickers less than its parts, at their style or better, README).
    Runs from different random starts do not average: without ``init`` one model is trained."""


@dataclass
class Config:
    task: str = "digits"
    """Task name (a module of rl_i2it.tasks)."""
    seed: int = 0
    """Seeds python, torch and the environments."""
    device: str = "cpu"
    """'cpu', 'cuda' or 'cuda:N'."""
    sac: SACConfig = field(default_factory=SACConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    task_options: dict = field(default_factory=dict)
    """Task-specific options, validated by the task's own dataclass."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _coerce(name: str, value: Any, default: Any) -> Any:
    kind = type(default)
    if kind is bool:
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
            return value.lower() in ("true", "1")
        if isinstance(value, bool):
            return value
    elif kind is int and not isinstance(value, bool):
        try:
            if isinstance(value, (int, str)) or float(value) == int(value):
                return int(value)
        except (TypeError, ValueError, OverflowError):          # "abc", None, inf
            pass
    elif kind is float and not isinstance(value, bool):
        try:
            return float(value)
        except (TypeError, ValueError):
            pass
    elif kind in (tuple, list):
        if isinstance(value, str):
            value = [v.strip() for v in value.strip("()[]").split(",")]
        if isinstance(value, (list, tuple)) and value and default:     # lengths are the task's to check
            try:
                return type(default)(_coerce(name, v, default[min(i, len(default) - 1)]) for i, v in enumerate(value))
            except UserError:
                pass
    elif kind is str and isinstance(value, str):
        return value
    raise UserError(f"config {name}: expected {kind.__name__} like {default!r}, got {value!r}")


def fill(cls, values: dict, prefix: str = ""):
    """Build dataclass ``cls`` from ``values``, refusing unknown keys and wrong types."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    defaults = cls()
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            raise UserError(f"unknown config key {prefix}{key} (known: {', '.join(fields)})")
        default = getattr(defaults, key)
        if dataclasses.is_dataclass(default):
            if not isinstance(value, dict):
                raise UserError(f"config {prefix}{key} must be a table")
            kwargs[key] = fill(type(default), value, f"{prefix}{key}.")
        elif isinstance(default, dict):
            if not isinstance(value, dict):
                raise UserError(f"config {prefix}{key} must be a table")
            kwargs[key] = dict(value)
        else:
            kwargs[key] = _coerce(prefix + key, value, default)
    return cls(**kwargs)


def parse_overrides(pairs: list[str]) -> dict:
    """``["sac.gamma=0.95", "task_options.transform=inner"]`` -> nested dict."""
    out: dict = {}
    for pair in pairs:
        if "=" not in pair:
            raise UserError(f"--set expects KEY=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        node = out
        parts = key.strip().split(".")
        if not all(parts):
            raise UserError(f"--set {pair!r}: the key needs a name between its dots (like sac.gamma)")
        for i, p in enumerate(parts):
            if i < len(parts) - 1:
                node = node.setdefault(p, {})
                if isinstance(node, dict):
                    continue
            elif not isinstance(node.get(p), dict):
                node[p] = value.strip()
                continue
            raise UserError(f"--set {key.strip()} clashes with another --set of {'.'.join(parts[:i + 1])}")
    return out


def merge(base: dict, over: dict, prefix: str = "") -> dict:
    """``over`` laid on ``base``, tables key by key; a table against a single value (``--set
    train=5`` beside ``--steps``, which sets train.steps) is refused, not one of them dropped."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v, f"{prefix}{k}.")
        elif k in out and isinstance(v, dict) != isinstance(out[k], dict):
            raise UserError(f"bad config: {prefix}{k} is a table of settings ({prefix}{k}.KEY = VALUE), "
                            f"given a single value")
        else:
            out[k] = v
    return out


PRESETS = Path(__file__).resolve().parent / "configs"
"""The presets shipped in the package (``configs/`` of a checkout links here)."""


def preset_path(path: str | Path) -> Path:
    """``path`` itself when it is a file; else the shipped preset of its name (``liver3d``,
    ``liver3d.toml`` or ``configs/liver3d.toml`` from any folder, as an installed package runs)."""
    path = Path(path)
    if path.is_file():
        return path
    name = path.name if path.suffix else path.name + ".toml"
    if (PRESETS / name).is_file() and path.parent in (Path("."), Path("configs")):
        return PRESETS / name
    known = ", ".join(sorted(p.stem for p in PRESETS.glob("*.toml")))
    raise UserError(f"config file not found: {path} (the presets, by name from any folder: {known})")


def read_config(path: str | Path) -> dict:
    """The values a TOML (or a run's config.json) sets, unchecked; a preset may be named
    (``preset_path``)."""
    path = preset_path(path)
    try:
        text = path.read_text()
        values = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot parse config {path}: {exc}") from None
    if not isinstance(values, dict):
        raise UserError(f"config {path} holds a {type(values).__name__}, not a table of settings")
    return values


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> Config:
    """Read a TOML (or a run's config.json) and apply overrides; validate everything. Relative
    paths of files and folders that exist are made absolute (``absolute_paths``)."""
    values = read_config(path) if path is not None else {}
    if overrides is not None and not isinstance(overrides, dict):
        raise TypeError(f"overrides must be a dict of sections, e.g. {{'sac': {{'gamma': 0.9}}}}, "
                        f"got {type(overrides).__name__}")
    cfg = fill(Config, absolute_paths(merge(values, overrides or {})))
    validate(cfg)
    return cfg


def _path_options(task: str) -> tuple:
    """The options of ``task`` that name a file or folder: ``(option, prefix before the path,
    is_name)``, ``is_name(value)`` telling our named sources (starry_night, photos, ...) apart."""
    from .data.style import DEMO_STYLE, named_styles
    return {"digits": (("source", "", lambda v: False),),
            "inpainting": (("data", "", lambda v: v == "celeba"),),
            "translation": (("data", "pix2pix:", lambda v: False),),
            "registration": (("pairs", "manifest:", lambda v: False),),
            "style": (("style", "", lambda v: v == DEMO_STYLE), ("styles", "", named_styles),
                      ("content", "", lambda v: v == "photos"))}.get(task, ())


_NOTED: set = set()


def absolute_paths(values: dict) -> dict:
    """``values`` (a config as a dict) with each relative path that exists from here, in a task
    option (``pairs = "manifest:pairs.csv"``, ``content``, ``style``, ...) or ``train.init``, made
    absolute (symlinks kept): a run's config.json then works from any folder (eval, resume).
    Missing paths stay as typed, for the error that names them. A name of ours (``photos``) is ours
    even where a folder of that name is at hand: a note says so, once, and how to give the folder."""
    def absolute(path: str) -> str:
        return str(Path(path).absolute()) if path and not Path(path).is_absolute() and Path(path).exists() else path
    out = dict(values)
    options = dict(values.get("task_options") or {})
    for key, prefix, is_name in _path_options(values.get("task", Config.task)):
        value = options.get(key)
        if not (isinstance(value, str) and value.startswith(prefix)):
            continue
        name = value[len(prefix):]
        if not is_name(name):
            options[key] = prefix + absolute(name)
        elif Path(name).exists() and (key, name) not in _NOTED:      # our own set, a folder of that name here
            _NOTED.add((key, name))
            print(f"rl-i2it: note: task_options.{key} = {value!r} is our own {name!r}, not ./{name} here "
                  f"(give ./{name} for yours)", file=sys.stderr)
    if options:
        out["task_options"] = options
    train = values.get("train")
    if isinstance(train, dict) and isinstance(train.get("init"), str):
        out["train"] = {**train, "init": absolute(train["init"])}
    return out


def reachable_transitions(t, rows: int | None = None) -> int:
    """About the most transitions a replay of ``rows`` (default ``t.replay_size``) rows holds: an
    episode of H steps takes H + 1 rows (one per state), less one batch of episodes' margin."""
    return (t.replay_size if rows is None else rows) * t.horizon // (t.horizon + 1) - t.n_envs


def validate(cfg: Config) -> None:
    s, t = cfg.sac, cfg.train
    checks = [
        (0 <= s.gamma <= 1, "sac.gamma must be in [0, 1]"),
        (0 < s.tau <= 1, "sac.tau must be in (0, 1]"),
        (s.batch_size >= 1, "sac.batch_size must be >= 1"),
        (min(s.lr_policy, s.lr_critic, s.lr_alpha) > 0, "learning rates must be > 0"),
        (s.init_alpha > 0, "sac.init_alpha must be > 0"),
        (s.log_std_min < s.log_std_max, "sac.log_std_min must be < sac.log_std_max"),
        (s.rl_warmup >= 0, "sac.rl_warmup must be >= 0"),
        (min(s.rl_weight, s.aux_weight) >= 0, "sac.rl_weight and sac.aux_weight must be >= 0"),
        (s.entropy_steps >= 0, "sac.entropy_steps must be >= 0 (0 = every step)"),
        (s.critic_on in ("plan", "action"), "sac.critic_on must be 'plan' or 'action'"),
        (s.use_rl or s.use_aux, "use_rl and use_aux cannot both be false: nothing would train"),
        (t.n_envs >= 1 and t.horizon >= 1, "train.n_envs and train.horizon must be >= 1"),
        (t.replay_size >= max(s.batch_size, t.n_envs), "train.replay_size must hold a batch"),
        (t.updates_per_step >= 1 and t.log_every >= 1, "train.updates_per_step and train.log_every must be >= 1"),
        (t.checkpoint_every_s >= 0, "train.checkpoint_every_s must be >= 0"),
        (t.learning_starts >= 0, "train.learning_starts must be >= 0"),
        (t.steps >= 0 and t.minutes >= 0, "train.steps and train.minutes must be >= 0"),
        (0 < t.memory_fraction <= 1, "train.memory_fraction must be in (0, 1]"),
        (t.fine_tunes >= 1, "train.fine_tunes must be >= 1"),
        (0 <= t.policy_ema < 1, "train.policy_ema must be in [0, 1)"),
        (0 <= t.first_share <= 1, "train.first_share must be in [0, 1]"),
        (s.grad_clip >= 0, "sac.grad_clip must be >= 0 (0 = off)"),
    ]
    for section in ("sac", "train"):          # NaN passes every comparison above as false, inf most
        for f in dataclasses.fields(getattr(cfg, section)):
            v = getattr(getattr(cfg, section), f.name)
            if isinstance(v, float) and not math.isfinite(v):
                raise UserError(f"bad config: {section}.{f.name} must be a finite number, got {v}")
    reach = reachable_transitions(t) if t.horizon >= 1 else t.learning_starts     # (a horizon < 1: said above)
    checks += [
        (0 <= cfg.seed < 2 ** 63, "seed must be from 0 to 2^63 - 1"),
        (t.learning_starts <= reach, f"train.learning_starts ({t.learning_starts}) must be at most "
         f"{reach}: a replay of {t.replay_size} rows holds about that many transitions of "
         f"{t.horizon}-step episodes (one row per state), and no update would ever run"),
    ]
    for ok, message in checks:
        if not ok:
            raise UserError(f"bad config: {message}")
    from .tasks import task_class
    task_class(cfg.task)(cfg.task_options)    # an unknown task or a bad task option: said here, not at training
