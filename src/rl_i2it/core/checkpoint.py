"""Checkpoints: atomic writes, safe loads (``weights_only``), RNG state capture and restore."""
from __future__ import annotations

import errno
import hashlib
import random
from pathlib import Path

import torch

from ..data.cache import atomic_write
from ..errors import UserError

TRAIN_FORMAT = "rl-i2it/train-1"
POLICY_FORMAT = "rl-i2it/policy-1"


def atomic_save(obj, path: str | Path) -> None:
    """``torch.save`` through ``atomic_write``; a failed write (a full disk) is an ``OSError``
    naming ``path``, which is left as it was."""
    with atomic_write(path) as f:
        try:
            torch.save(obj, f)
        except RuntimeError as exc:      # a short write (a full disk, a file size limit) inside torch's writer
            if "inline_container" not in str(exc) and "write" not in str(exc):
                raise
            raise OSError(errno.EIO, "could not write the whole file (a full disk, or a file size limit?); "
                          "it is left as it was", str(path)) from None


def checkpoint_file(path: str | Path) -> Path:
    """The file ``path`` names (a run directory: its ``policy.pt``, else its ``checkpoint.pt``), or a
    ``UserError`` when there is none."""
    path = Path(path)
    if path.is_dir():
        for name in ("policy.pt", "checkpoint.pt"):
            if (path / name).is_file():
                path = path / name
                break
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    return path


def load(path: str | Path, expect: tuple[str, ...] = (TRAIN_FORMAT, POLICY_FORMAT)) -> dict:
    """Load one of our checkpoints; a missing, corrupt or foreign file is a ``UserError``. The
    zip's checksums are checked first: ``torch.load`` reads flipped bytes without a word (a
    damaged training checkpoint resumed with other weights and replay)."""
    import zipfile
    path = checkpoint_file(path)
    way_on = (f"; to go on from the run's policy.pt: `rl-i2it train ... --init {path.parent} --out NEW` (critic, "
              f"optimisers and replay start afresh)" if path.name == "checkpoint.pt" else
              f"; the checkpoint.pt beside it holds the model too: give {path.parent / 'checkpoint.pt'}"
              if path.name == "policy.pt" and (path.parent / "checkpoint.pt").is_file() else "")
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except (zipfile.BadZipFile, OSError, EOFError):
        bad = None                            # not a zip (or cut off): torch.load names it below
    if bad is not None:
        raise UserError(f"cannot read checkpoint {path}: damaged ({bad} fails its checksum){way_on}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a damaged or foreign file
        raise UserError(f"cannot read checkpoint {path}: not a valid torch file "
                        f"({exc.__class__.__name__}){way_on}") from None
    if not isinstance(obj, dict) or obj.get("format") not in expect:
        raise UserError(f"{path} is not an rl-i2it checkpoint")
    return obj


def lock_run(run_dir: Path):
    """An exclusive lock on ``run_dir/.lock`` (an open file; closing it, or the process ending,
    releases it), or a ``UserError`` when another training holds it: two would overwrite each
    other's checkpoints. Where ``fcntl`` is missing (Windows) or the file system has no locks,
    no lock is taken."""
    f = open(Path(run_dir) / ".lock", "a")
    try:
        import fcntl
    except ImportError:
        return f
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        raise UserError(f"another training is running in {run_dir}: wait for it, or give another --out") from None
    except OSError:                # a file system without locks (some NFS, FUSE): go on unlocked
        pass
    return f


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def rng_state(device: torch.device | None = None) -> dict:
    """Python's and torch's random states, and the CUDA generator's of ``device`` when it is a GPU
    (that one only: a resume on a machine with fewer GPUs, or on another one, restores it there)."""
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if device is not None and device.type == "cuda":
        state["cuda_device"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device | None = None) -> None:
    """Restore ``rng_state``'s; its CUDA state goes to ``device`` when that is a GPU (a run saved on
    the CPU, or by an older version that saved every GPU's, leaves the GPU's stream as seeded)."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    torch.set_rng_state(state["torch"])
    if device is not None and device.type == "cuda" and "cuda_device" in state:
        torch.cuda.set_rng_state(state["cuda_device"], device)


def trained_on(obj: dict) -> str | None:
    """The ``data_fingerprint`` of all a saved run's weights learnt from, or None where that is not
    one known set: an older version's file, a run resumed or started (``train.init``) from weights
    of other data. (``"data"`` is the data its replay points into, which a resume checks.)"""
    return obj["trained_on"] if "trained_on" in obj else obj.get("data")


def data_fingerprint(tensors: list[torch.Tensor]) -> str:
    """sha1 of the tensors' shapes and bytes (``Task.training_tensors``; milliseconds for tens of MB)."""
    h = hashlib.sha1()
    for t in tensors:
        arr = t.detach().cpu().contiguous().numpy()
        h.update(repr((arr.dtype.str, arr.shape)).encode())
        h.update(memoryview(arr).cast("B"))
    return h.hexdigest()
