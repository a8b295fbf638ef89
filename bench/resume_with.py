"""Copy a run with some settings changed, so that it can be resumed under them.

    python bench/resume_with.py SRC DST KEY=VALUE [KEY=VALUE ...]

A resume refuses a changed config (only the stopping rule, device and bookkeeping may change),
and ``--init SRC`` keeps the weights but starts the replay, critic and optimisers afresh. For
the README's "resumed with one setting changed" experiments, this copies the run folder SRC to
DST and writes the settings (``--set`` syntax) into the copy's checkpoint and config.json: the
copy then resumes with everything else as it was, e.g.

    python bench/resume_with.py RUN RUN-es1 sac.entropy_steps=1
    rl-i2it train inpainting --steps 7500 --set sac.entropy_steps=1 --out RUN-es1

(the same ``--set`` again: ``train`` checks it against the copy). ``sac.init_alpha`` also sets
the temperature the copy resumes with (the run's current one lives in the checkpoint).
SRC is not changed; DST must not exist.
"""
from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path

import torch

from rl_i2it.config import load_config, merge, parse_overrides
from rl_i2it.core import checkpoint as ckpt
from rl_i2it.errors import UserError


def resume_with(src: str | Path, dst: str | Path, settings: list[str]) -> dict:
    """Copy run ``src`` to ``dst`` with ``settings`` (``KEY=VALUE``) written into its config;
    returns the copy's config as a dict."""
    src, dst = Path(src), Path(dst)
    if not settings:
        raise UserError("give at least one KEY=VALUE to change")
    if dst.exists():
        raise UserError(f"{dst} exists: give a new folder for the copy")
    saved = ckpt.load(src / "checkpoint.pt", (ckpt.TRAIN_FORMAT,))
    overrides = parse_overrides(settings)
    config = load_config(None, merge(saved["config"], overrides)).to_dict()     # checked as --set is
    shutil.copytree(src, dst)
    saved["config"] = config
    if "init_alpha" in overrides.get("sac", {}):
        saved["log_alpha"] = torch.tensor(math.log(config["sac"]["init_alpha"]))
    ckpt.atomic_save(saved, dst / "checkpoint.pt")
    (dst / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return config


if __name__ == "__main__":
    if "-h" in sys.argv[1:] or "--help" in sys.argv[1:]:
        print(__doc__)
        sys.exit(0)
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    try:
        resume_with(sys.argv[1], sys.argv[2], sys.argv[3:])
    except UserError as exc:
        sys.exit(f"resume_with: error: {exc}")
    print(f"{sys.argv[2]}: resume it with the same settings: {' '.join('--set ' + s for s in sys.argv[3:])}")
