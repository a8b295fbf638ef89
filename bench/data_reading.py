"""Reading a user's dataset: the first read (decode, resize or resample, cache) against a read from
the cache, side by side on made files, each in a fresh process (seconds and peak memory); and the
memory of ``eval`` on the pix2pix set's training split (an untrained model, metrics without features).

    python bench/data_reading.py [--images 1000] [--volumes 12] [--size 64] [--volume-size 128]

pix2pix: ``--images`` 512x256 AB JPEGs read at ``--size``; registration: ``--volumes`` 160x192x224
NIfTI volumes paired in a chain (a manifest CSV), read at ``--volume-size``. The files are made in
a temporary folder and the cache points at another (``RL_I2IT_DATA``), so ``~/.cache`` is untouched.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from rl_i2it.data.volumes import write_nifti  # noqa: E402

READ = {
    "pix2pix": "from rl_i2it.data.paired import read_pix2pix; n = len(read_pix2pix({path!r}, size={size})[0])",
    "manifest": "from rl_i2it.data.pairs import load_pairs; n = len(load_pairs('manifest:' + {path!r}, size={size}))",
    "eval": """import torch
from rl_i2it.config import load_config
from rl_i2it.tasks import task_class
from rl_i2it.tasks.imagegen import evaluate
levels = ({size} // 4).bit_length() - 1               # one width per halving to 4x4 (the preset's 4 at 64)
widths = [min(32 * 2 ** i, 256) for i in range(levels)]
cfg = load_config(None, {{"task": "translation", "task_options": {{"data": "pix2pix:" + {path!r}, "size": {size},
                                                                  "widths": widths}}}})
task = task_class("translation")(cfg.task_options)
torch.manual_seed(0)
t = time.perf_counter()                   # imports not timed; the set was cached by the rows above
n = len(task.split_data("train")[0])
evaluate(task, task.build_policy(), (1, 5, 10), "train", features=False)""",
}
TIMED = """
import json, resource, sys, time
sys.path.insert(0, {src!r})
t = time.perf_counter()
{read}
print(json.dumps({{"n": n, "seconds": time.perf_counter() - t,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def timed(kind: str, path: Path, size: int, cache: Path) -> dict:
    code = TIMED.format(src=str(ROOT / "src"), read=READ[kind].format(path=str(path), size=size))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "RL_I2IT_DATA": str(cache)})
    if out.returncode:                             # the child's own error, not a CalledProcessError
        sys.exit(f"data_reading: the {kind} row failed:\n{out.stderr.strip()}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=1000, help="AB images of the pix2pix set (default 1000)")
    ap.add_argument("--volumes", type=int, default=12, help="NIfTI volumes of the manifest (default 12)")
    ap.add_argument("--size", type=int, default=64, help="side the images are read at (default 64)")
    ap.add_argument("--volume-size", type=int, default=128, help="side the volumes are read at (default 128)")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ab = tmp / "ab"
        ab.mkdir()
        tiles = (rng.random((8, 256, 512, 3)) * 255).astype(np.uint8)
        for i in range(args.images):
            Image.fromarray(tiles[i % 8]).save(ab / f"{i:05d}.jpg", quality=90)
        rows = ["moving,fixed,moving_labels,fixed_labels"]
        for i in range(args.volumes):
            v = rng.random((160, 192, 224), dtype=np.float32)
            write_nifti(tmp / f"v{i}.nii.gz", v, np.eye(4))
            write_nifti(tmp / f"l{i}.nii.gz", (v * 5).astype(np.int16), np.eye(4))
            if i:
                rows.append(f"v{i - 1}.nii.gz,v{i}.nii.gz,l{i - 1}.nii.gz,l{i}.nii.gz")
        (tmp / "pairs.csv").write_text("\n".join(rows) + "\n")
        print("| set | items | first read: s, peak MB | from the cache: s, peak MB | first / cached time |")
        print("|---|---|---|---|---|")
        for kind, path, size in (("pix2pix", ab, args.size), ("manifest", tmp / "pairs.csv", args.volume_size)):
            first, again = (timed(kind, path, size, tmp / "cache") for _ in range(2))
            print(f"| {kind} at {size} | {first['n']} | {first['seconds']:.1f}, {first['peak_mb']:.0f} | "
                  f"{again['seconds']:.1f}, {again['peak_mb']:.0f} | {first['seconds'] / again['seconds']:.1f} |")
        ev = timed("eval", ab, args.size, tmp / "cache")
        print(f"\neval (T = 1, 5, 10, no features) of {ev['n']} training pairs at {args.size}: "
              f"{ev['seconds']:.1f} s, peak {ev['peak_mb']:.0f} MB")


if __name__ == "__main__":
    main()
