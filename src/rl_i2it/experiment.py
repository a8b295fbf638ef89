"""The digit-transform experiment of the paper (section 4.1), side by side in one run.

Methods, each trained for the same wall time on the same data:

* ``identity``: no registration;
* ``onestep``: a VoxelMorph-style one-step network: the same planner-actor, the same auxiliary
  loss, no RL, an episode of one step (``--no-rl`` with ``horizon = 1``) and a step bound of
  half the image;
* ``norl``: the multi-step planner-actor trained by the auxiliary loss alone (paper "w/o RL");
* ``rl``: RL-I2IT.

Evaluation: the paper's protocol (10 atlases, ``n_moving`` randomly scaled and rotated test
digits, Dice binarised at 0.5 per class and mean at T = 1, 5, 10, 20).
"""
from __future__ import annotations

import time
from pathlib import Path

from .config import load_config, merge
from .core import checkpoint as ckpt
from .core.trainer import build_task, load_policy, resolve_device, train_run
from .data.cache import write_json, writable_dir
from .errors import UserError

METHODS = {        # each sets what makes it that method, over any --config or --set (which the CLI refuses)
    "rl": {"sac": {"use_rl": True, "use_aux": True}},
    "norl": {"sac": {"use_rl": False, "use_aux": True}},
    # a one-step network must be free to move pixels far in its one step (VoxelMorph's field is
    # unbounded): its step bound is half the image, not the small per-step bound of RL-I2IT
    "onestep": {"sac": {"use_rl": False, "use_aux": True}, "train": {"horizon": 1}, "task_options": {"max_step": 14.0}},
}
LABELS = {"identity": "identity", "onestep": "one-step (VM-style)", "norl": "RL-I2IT w/o RL",
          "rl": "RL-I2IT"}


def train_methods(out: Path, minutes: float, config: str | None = None, overrides: dict | None = None,
                  methods: dict | None = None, verbose: bool = True, labels: dict | None = None,
                  steps: int = 0) -> None:
    """Train each method (``{name: config overrides}``, default ``METHODS``) for ``minutes`` (or,
    given ``steps``, that many updates) into ``out/name``, one after the other (never side by
    side: they would share the cores)."""
    budget = {"minutes": 0.0, "steps": steps} if steps else {"minutes": minutes, "steps": 0}
    for name, method in (METHODS if methods is None else methods).items():
        cfg = load_config(config, merge(merge(overrides or {}, method), {"train": budget}))
        if verbose:
            print(f"== training {(LABELS if labels is None else labels).get(name, name)} for "
                  f"{f'{steps} updates' if steps else f'{minutes:g} min'} -> {out / name}")
        train_run(cfg, out / name, verbose=verbose)


def evaluate_runs(out: Path, runs: dict[str, Path | None], steps=(1, 5, 10, 20), n_moving: int = 1000,
                  transform: str | None = None, device: str = "cpu", verbose: bool = True,
                  split: str = "test") -> dict:
    """Evaluate each run (``None`` = identity) on the same pairs; write results.json/.md and pictures."""
    from .tasks.digits import DigitsTask, chain_grid, eval_pairs, evaluate, step_grid
    from .viz import plot_curves
    # load every run and check the protocol first: a bad path or size fails before any work
    loaded = {name: load_policy(run, device) for name, run in runs.items() if run is not None}
    main = loaded.get("rl") or next(iter(loaded.values()), None)     # every method on its pairs
    pairs = None
    if main is not None:
        transform = transform or main[0].options.transform
        for name, (task, _, _) in loaded.items():
            if task.options.source != main[0].options.source:
                raise UserError(f"{runs[name]} was trained on other digits ({task.options.source or 'MNIST'}, the "
                                f"main run on {main[0].options.source or 'MNIST'}): compare runs of one data source")
        # the main run's pairs for every method (a baseline trained with other scale or rotation
        # ranges drew other moving digits from its own task: easier or harder pairs, unsaid)
        pairs = eval_pairs(main[0], n_moving, transform=transform, split=split)
    out.mkdir(parents=True, exist_ok=True)
    for name in set(METHODS) - set(loaded):          # an earlier eval's picture of a baseline not given now
        (out / f"steps_{name}.png").unlink(missing_ok=True)
    results, task = {}, None
    for name, (task, policy, cfg) in loaded.items():
        run = runs[name]
        t0 = time.perf_counter()
        results[name] = evaluate(task, policy, steps, n_moving, transform=transform, progress=verbose,
                                 split=split, pairs=pairs)
        results[name]["eval_seconds"] = time.perf_counter() - t0
        results[name]["train_counters"] = ckpt.load(run).get("counters")
        step_grid(task, policy, out / f"steps_{name}.png", steps=10, transform=transform, split=split,
                  pairs_of=main[0])
        if name == "rl":
            results[name]["chain_dice"] = chain_grid(task, policy, out / "chain_rl.png", split=split)
    if "identity" in runs and main is not None:
        results["identity"] = evaluate(main[0], None, steps, n_moving, transform=transform, split=split, pairs=pairs)
    order = [m for m in ("identity", "onestep", "norl", "rl") if m in results]
    results = {m: results[m] for m in order}
    trained = [m for m in order if runs.get(m) is not None]
    plot_curves([runs[m] for m in trained], out / "curves.png", [LABELS[m] for m in trained],
                score_name=DigitsTask.score_name)
    table = format_table(results, steps)
    summary = {"protocol": {"split": split, "transform": transform,
                            "n_moving": n_moving, "atlases": 10, "steps": list(steps),
                            "pairs": next(iter(results.values()))["pairs"] if results else 0},
               "methods": results}
    write_json(out / "results.json", summary)
    (out / "results.md").write_text(table + "\n")
    return summary


def format_table(results: dict, steps) -> str:
    head = "| method | T | mean | std | " + " | ".join(str(c) for c in range(10)) + " |"
    lines = [head, "|" + "---|" * (14)]
    for name, r in results.items():
        for t in ([0] if name == "identity" else steps):
            d = r["dice"][t] if t in r["dice"] else r["dice"][str(t)]
            cls = " | ".join(f"{v:.3f}" for v in d["per_class"])
            lines.append(f"| {LABELS[name]} | {t} | {d['mean']:.3f} | {d['std']:.3f} | {cls} |")
    return "\n".join(lines)


def run_experiment(out: str | Path, minutes: float, config: str | None = None, overrides: dict | None = None,
                   n_moving: int = 1000, device: str | None = None, verbose: bool = True) -> dict:
    """Train RL-I2IT, w/o RL and the one-step network for ``minutes`` each into ``out/<method>`` and
    evaluate them on the same pairs. ``device`` (if given) over the config's and ``overrides``'."""
    if not minutes > 0:
        raise UserError(f"--minutes must be > 0, got {minutes}")
    from .tasks.digits import eval_pairs
    if device:
        overrides = merge(overrides or {}, {"device": device})
    cfg = load_config(config, overrides)
    if cfg.task != "digits":
        raise UserError(f"the experiment is defined for digits; {config} is a {cfg.task} config")
    held = [f for f in ("checkpoint.pt", "policy.pt", "config.json") if (Path(out) / f).is_file()]
    if held:                                  # its curves.png would be replaced by the experiment's
        raise UserError(f"{out} holds a run ({', '.join(held)}): the experiment trains its methods into "
                        f"subfolders and would write its curves.png over the run's; give another --out")
    eval_pairs(build_task(cfg, resolve_device(cfg.device)), n_moving)  # before training
    out = writable_dir(out)
    train_methods(out, minutes, config, overrides, verbose=verbose)
    runs = {"identity": None, **{m: out / m for m in METHODS}}
    return evaluate_runs(out, runs, n_moving=n_moving, device=cfg.device, verbose=verbose)
