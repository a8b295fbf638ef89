"""Paired photo translation: pix2pix's folder layouts, and pairs made from the photos we reach.

No paired set (facades, cityscapes, edges2shoes) is reachable here (DESIGN.md section 4), so:

* ``read_pix2pix(folder)`` reads a set a user brings, in either of pix2pix's layouts:
  (a) ``AB``: each image holds A (left half) and B (right half) side by side, as made by
  pix2pix's ``combine_A_and_B.py`` (the folder, or ``folder/split``, holds the images);
  (b) ``A/`` and ``B/`` subfolders (or ``A/split``, ``B/split``) with matching file names.
* ``photo_pairs(kind, size, split)`` makes pairs from reachable photos: an edge map -> the photo
  (``edges``, like edges2shoes) or the grey image -> the colour photo (``grey``, colourisation).
  Photos: the CelebA faces (``load_faces``; its test split is 000900-000999, never trained on),
  plus scikit-learn's bundled ``china.jpg``/``flower.jpg`` (a dependency: every install reads them) and any
  photos in ``cache_dir()/photos`` (``fetch_photos``: 16 photos of opencv-doc's ``examples/data``), cut into
  seeded random square crops: train crops from the left 75% of each photo, test crops from the
  right 25%, so no pixel is in both.

All images are uint8 tensors ``[N, C, H, W]``.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import UserError
from .cache import cache_dir, cached_arrays, existing_folder, files_key, name_key, progress, refetch_hint
from .faces import PHOTO, _check_size, load_faces
from .images import READ_ERRORS, image_files, pil_uint8, unreadable

DIRECTIONS = ("AtoB", "BtoA")
KINDS = ("edges", "grey")
IMAGE = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
CROPS_PER_PHOTO = {"train": 48, "test": 12}
TEST_STRIP = 0.25                 # the right quarter of each big photo is the test region
SEED = {"train": 11, "test": 12}


# -- pix2pix folders -----------------------------------------------------------------------------
def _images_in(folder: Path) -> list[Path]:
    return image_files(folder, IMAGE)


def _open(path: Path, mode: str) -> Image.Image:
    try:
        with Image.open(path) as im:
            im.load()
            return pil_uint8(im, mode)
    except READ_ERRORS as exc:
        raise unreadable(path, exc) from None


def _read_pairs(pairs: list, labels: list[tuple[str, str]], size: int | None) -> dict[str, np.ndarray]:
    """The images of ``pairs`` (each a function giving the A and B images, named by ``labels``)
    as uint8 ``[N, C, H, W]`` arrays ``{"A", "B"}``, each image resized to ``size`` as it is read
    (None: all must share one size)."""
    a_out = b_out = None
    first = None
    what = f"reading {len(pairs)} image pairs" + (" (once; then cached)" if size else "")
    for i, (read, names) in enumerate(zip(progress(pairs, what, "pair"), labels)):
        ims = read()
        if size is not None:
            ims = [im.resize((size, size), Image.Resampling.BICUBIC) if im.size != (size, size) else im for im in ims]
        for im, n in zip(ims, names):
            if first is None:
                first = n, im.size
            elif im.size != first[1]:
                raise UserError(f"images differ in size: {first[0]} is {first[1][0]}x{first[1][1]}, "
                                f"{n} is {im.size[0]}x{im.size[1]} (pass a size to resize them all)")
        a, b = (np.asarray(im, np.uint8) for im in ims)
        a, b = (x[None] if x.ndim == 2 else x.transpose(2, 0, 1) for x in (a, b))
        if a_out is None:
            a_out, b_out = np.empty((len(pairs), *a.shape), np.uint8), np.empty((len(pairs), *b.shape), np.uint8)
        a_out[i], b_out[i] = a, b
    return {"A": a_out, "B": b_out}


def _halves(path: Path, mode: str) -> tuple[Image.Image, Image.Image]:
    im = _open(path, mode)
    w, h = im.size
    if w % 2:
        raise UserError(f"{path}: width {w} is odd; an A|B pix2pix image holds two halves side by side")
    return im.crop((0, 0, w // 2, h)), im.crop((w // 2, 0, w, h))


PIX2PIX_READER = 1
"""Version of how ``read_pix2pix`` reads and resizes: caches of another are rebuilt."""


SPLIT_HINT = "a split layout is read from train/ and test/ (or val/) folders holding images"


def split_folders(folder: Path) -> dict[str, Path]:
    """``folder``'s ``train/``, ``test/`` and ``val/`` subfolders that hold images, side by side
    or in their own ``A/`` and ``B/``, by lower-case name (``Train/`` counts; an empty one does not)."""
    subs = [p for p in sorted(folder.iterdir()) if p.is_dir()] if folder.is_dir() else []

    def holds_images(p: Path) -> bool:
        sides = ab_folders(p)
        return bool(_images_in(p) or sides and _images_in(sides[0]))
    return {p.name.lower(): p for p in subs if p.name.lower() in ("train", "test", "val") and holds_images(p)}


def ab_folders(folder: Path) -> tuple[Path, Path] | None:
    """A pix2pix folder's ``A/`` and ``B/`` subfolders (``a/`` and ``b/`` too), or None."""
    subs = {p.name.lower(): p for p in sorted(folder.iterdir()) if p.is_dir()} if folder.is_dir() else {}
    return (subs["a"], subs["b"]) if "a" in subs and "b" in subs else None


def read_pix2pix(folder: str | Path, direction: str = "AtoB", size: int | None = None,
                 split: str | None = None, mode: str = "RGB") -> tuple[torch.Tensor, torch.Tensor]:
    """A pix2pix set as ``(source, target)`` uint8 ``[N, C, H, W]`` (``C`` 3 for ``mode`` RGB, 1
    for L), files in name order. ``direction`` ``AtoB`` gives (A, B), ``BtoA`` gives (B, A).

    Layout ``A/`` + ``B/`` subfolders when ``folder`` has both, else ``AB`` side-by-side images in
    ``folder`` (width even; left half A). ``split`` (``train``, ``val``, ``test``) looks in
    ``folder/split`` or ``folder/A/split`` and ``folder/B/split``; a split folder may also be
    passed as ``folder`` itself. ``size`` resizes every image (each half) to ``size x size``
    (bicubic); without it all images must share one size.
    """
    if direction not in DIRECTIONS:
        raise UserError(f"unknown direction {direction!r} (use AtoB or BtoA)")
    if mode not in ("RGB", "L"):
        raise UserError(f"unknown image mode {mode!r} (use RGB or L)")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= 8192):
        raise UserError(f"size must be an integer from 1 to 8192, got {size!r}")
    folder = existing_folder(folder, "pix2pix folder")
    sides = ab_folders(folder)
    if sides:
        a_dir, b_dir = sides
        if split is not None:
            a_dir, b_dir = a_dir / split, b_dir / split
            if not (a_dir.is_dir() and b_dir.is_dir()):
                raise UserError(f"{folder}: no {split} split (expected A/{split} and B/{split})")
        a_files, b_files = _images_in(a_dir), _images_in(b_dir)
        if not a_files or not b_files:
            empty = a_dir if not a_files else b_dir
            subs = sorted(p.name for p in empty.iterdir() if p.is_dir())
            hint = f" (it has folders {', '.join(subs)}: {SPLIT_HINT})" if subs else ""
            raise UserError(f"{folder}: no images in {empty}{hint}")
        a_names, b_names = [p.name for p in a_files], [p.name for p in b_files]
        if a_names != b_names:
            only_a = sorted(set(a_names) - set(b_names))[:5]
            only_b = sorted(set(b_names) - set(a_names))[:5]
            raise UserError(f"{folder}: A/ and B/ file names differ: only in A: {only_a or '-'}; "
                            f"only in B: {only_b or '-'}")
        files, labels = a_files + b_files, [(f"{a_dir.relative_to(folder)}/{n}", f"{b_dir.relative_to(folder)}/{n}")
                                            for n in a_names]
        pairs = [lambda a=a, b=b: (_open(a, mode), _open(b, mode)) for a, b in zip(a_files, b_files)]
    else:
        if split is not None:
            folder = folder / split
            if not folder.is_dir():
                raise UserError(f"pix2pix split folder not found: {folder}")
        files = _images_in(folder)
        if not files:
            subs = sorted(p.name for p in folder.iterdir() if p.is_dir())
            hint = f" (it has folders {', '.join(subs)}: {SPLIT_HINT})" if subs else ""
            raise UserError(f"{folder}: no images, and no A/ and B/ folders{hint}")
        labels = [(f"{p.name} (left half)", f"{p.name} (right half)") for p in files]
        pairs = [lambda p=p: _halves(p, mode) for p in files]
    if size is None:
        arrays = _read_pairs(pairs, labels, None)
    else:       # resized sets are cached: a large set is decoded once, not at every run
        name = name_key(sorted({os.path.abspath(p.parent) for p in files}), size, mode)
        arrays = cached_arrays(cache_dir() / "paired" / "user" / f"{size}-{mode}-{name}.npz",
                               lambda: _read_pairs(pairs, labels, size), key=files_key(files, PIX2PIX_READER, size, mode))
    A, B = torch.from_numpy(arrays["A"]), torch.from_numpy(arrays["B"])
    return (A, B) if direction == "AtoB" else (B, A)


# -- pairs made from photos ----------------------------------------------------------------------
def _check_images(images: torch.Tensor) -> np.ndarray:
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() != 4 \
            or images.shape[1] != 3:
        raise ValueError(f"expected uint8 images [N, 3, H, W], got "
                         f"{getattr(images, 'dtype', type(images))} {tuple(getattr(images, 'shape', ()))}")
    return images.cpu().numpy().transpose(0, 2, 3, 1)


def luminance(images: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma (Pillow's ``L``: 0.299 R + 0.587 G + 0.114 B, rounded): ``[N, 1, H, W]`` uint8."""
    x = images.to(torch.int64)
    y = (x[:, 0] * 19595 + x[:, 1] * 38470 + x[:, 2] * 7471 + 0x8000) >> 16
    return y[:, None].to(torch.uint8)


def grey_to_colour(images: torch.Tensor, channels: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """``(grey, colour)`` for colourisation: the luma (``[N, channels, H, W]``, repeated when
    ``channels`` is 3) and the photo itself."""
    _check_images(images)
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    grey = luminance(images)
    return (grey.repeat(1, channels, 1, 1) if channels == 3 else grey), images


def edge_map(rgb: np.ndarray) -> np.ndarray:
    """One ``[H, W, 3]`` uint8 photo -> ``[H, W]`` uint8, white (255) with dark (0) edges: Canny
    (L2 gradient) on the grey image blurred by a Gaussian of sigma ``max(0.7, side / 128)``, with
    the high threshold at the 80th percentile of that image's Sobel gradient magnitude (at least
    20) and the low one at half of it, so every photo gets a similar edge density whatever its
    contrast; lines dilated (2x2) when the shorter side is 192 pixels or more."""
    import cv2
    grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    side = min(grey.shape)
    blurred = cv2.GaussianBlur(grey, (0, 0), max(0.7, side / 128))
    dx = cv2.Sobel(blurred, cv2.CV_32F, 1, 0, ksize=3)
    dy = cv2.Sobel(blurred, cv2.CV_32F, 0, 1, ksize=3)
    hi = max(float(np.percentile(np.sqrt(dx * dx + dy * dy), 80)), 20.0)
    edges = cv2.Canny(blurred, 0.5 * hi, hi, L2gradient=True)
    if side >= 192:
        edges = cv2.dilate(edges, np.ones((2, 2), np.uint8))
    return 255 - edges


def edges_to_photo(images: torch.Tensor, channels: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """``(edges, photo)`` like edges2shoes: an edge map (``edge_map``: white background, dark
    lines; ``[N, channels, H, W]`` uint8) and the photo ``[N, 3, H, W]``."""
    arr = _check_images(images)
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    edges = torch.from_numpy(np.stack([edge_map(a) for a in arr]))[:, None]
    return (edges.repeat(1, channels, 1, 1) if channels == 3 else edges), images


OPENCV_DOC = "usr/share/doc/opencv-doc/examples/data"
OPENCV_PHOTOS = {
    "aero1.jpg": "d9a69191f6e3642ea361bc3c62e677b2f40fe6534b78da540f4155e0734b59ef",
    "aero3.jpg": "1c407146f8762b3b14a7953ff9bc4c01ed64c467d7277122e769bf7e816017a4",
    "aloeL.jpg": "cce5736808efe80d9f04b118dbb978c344d4345672b332718c3e039a3eeb8eee",
    "apple.jpg": "e86879de3d9a807dedc742a8f464f39e6b74bbb531a1fba3583155d94997d1cd",
    "baboon.jpg": "1a1dd18d78eec44420af3b0b7f08ee3d41c982916cae3ce203d7ff35d754cc0f",
    "building.jpg": "742a1baad62ac82e91e718e77eedf7e85c2eddc4badfb8c87c6cbc86c45a8b07",
    "butterfly.jpg": "34a99716b78ded10eae87b4880de739d3e68cc7dd1a96812bb28f469d5eeaea8",
    "fruits.jpg": "9c031d80a1c52da5eca790db896baffec6a7e52bf786cdb7bbfca5c7f880e6a1",
    "home.jpg": "23b8cf46a1965d0ec33459b875aed43187802834db49e0daa9fa2cc842e9d8d2",
    "leuvenA.jpg": "b2977cdbd9fb3f94dadd6f76cf586d145676deb8a22b5f0f42149d21c058c09f",
    "messi5.jpg": "1d570e49654e84c7a943918537bd9e5e1ef82920152e147c834006e235be97c9",
    "orange.jpg": "152c20d2f380ac985de25e474e1a5f06ed34b932191342099b8272a63a15a079",
    "rubberwhale1.png": "eb312435369dac9efcc92f7e098edbd9ed8d7e6dfede8b3b4d8e3702cd80b796",
    "squirrel_cls.jpg": "20bb6e8ae96918a36c9886b6d48e54eedeb3948591e1485c206bc1dc60c8dc8b",
    "stuff.jpg": "21cd00afbdd0727f445dd91c0a09633e6345ed5b05a3d2355453a1f3c314c6c5",
    "graf1.png": "1504b769303c7bde00fa578eeaad3c68e02aceabeb1242e556f1f8d19e4bdea5",
}
"""Natural colour photos of Debian's ``opencv-doc`` (4.6.0) examples, with their sha256."""


def fetch_opencv_doc(files: dict[str, str], out: Path, force: bool = False, verify: bool = False) -> Path:
    """Copy ``files`` (``{name: sha256}``) of Debian's ``opencv-doc`` examples (``apt-get
    download``, never installed) into ``out``, sha256 checked; nothing when all are there (and,
    with ``verify``, whole: ``cache.present``)."""
    import tempfile

    from .cache import apt_download, copy_checked, fetch_lock, present
    if not force and present(out, files, verify):
        return out
    with fetch_lock(out):
        if not force and present(out, files, verify, say=False):     # fetched by another process meanwhile
            return out
        with tempfile.TemporaryDirectory() as tmp:
            root = apt_download("opencv-doc", Path(tmp))
            for name, sha in files.items():
                copy_checked(root / OPENCV_DOC / name, out / name, sha)
    return out


def fetch_photos(force: bool = False, verify: bool = False) -> Path:
    """``cache_dir()/photos`` holding the ``OPENCV_PHOTOS`` (``fetch_opencv_doc``)."""
    return fetch_opencv_doc(OPENCV_PHOTOS, cache_dir() / "photos", force, verify)


def sample_photos() -> list[tuple[str, np.ndarray]]:
    """Big photos we can reach without a download: scikit-learn's bundled ones and any images in
    ``cache_dir()/photos`` (name order). ``[(name, HxWx3 uint8)]``. scikit-learn is a dependency:
    read only when importable, an install without it drew its photo crops from other pictures than
    one with it (the style bench's test crops moved when ANTs' antspyx brought it in), unsaid."""
    try:
        from sklearn.datasets import load_sample_images
    except ImportError:
        raise UserError("scikit-learn is not installed: its two sample photos are part of the photo set "
                        "(pip install scikit-learn; `make` installs it)") from None
    data = load_sample_images()
    out = [(f"sklearn:{Path(f).name}", np.asarray(im, np.uint8)) for f, im in zip(data.filenames, data.images)]
    folder = cache_dir() / "photos"
    if folder.is_dir():
        for p in sorted(folder.rglob("*")):
            if p.is_file() and p.suffix.lower() in PHOTO:
                try:
                    with Image.open(p) as im:
                        if im.mode not in ("RGB", "RGBA", "P", "CMYK", "YCbCr"):
                            continue                  # grey or odd: not a colour photo
                        out.append((f"photos:{p.relative_to(folder)}", np.asarray(im.convert("RGB"))))
                except READ_ERRORS as exc:     # one the fetch checked, damaged since: the data would shrink, unsaid
                    if p.parent == folder and p.name in OPENCV_PHOTOS:
                        raise UserError(f"{p} is damaged ({exc.__class__.__name__}){refetch_hint(p)}") from None
                    continue                   # a file of the user's that is no image
    return out


def photo_crops(photos: list[tuple[str, np.ndarray]], size: int, split: str) -> np.ndarray:
    """Seeded random square crops (side from ``size`` to the region's height, resized to ``size``
    with LANCZOS after cutting, so the filter never reads past the crop) of each photo's ``split``
    region: the left 75% for train, the right 25% for test. Photos whose region is smaller than ``size`` give none. ``[M, 3, size, size]`` uint8."""
    rng = np.random.default_rng(SEED[split])
    out = []
    for _, img in photos:
        h, w = img.shape[:2]
        cut = int(round(w * (1 - TEST_STRIP)))
        x0, x1 = (0, cut) if split == "train" else (cut, w)
        region_w = x1 - x0
        if min(h, region_w) < size:
            continue
        im = Image.fromarray(img)
        for _ in range(CROPS_PER_PHOTO[split]):
            side = int(rng.integers(size, min(h, region_w) + 1))
            left = x0 + int(rng.integers(0, region_w - side + 1))
            top = int(rng.integers(0, h - side + 1))
            crop = im.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.LANCZOS)
            out.append(np.asarray(crop).transpose(2, 0, 1))
    return np.stack(out) if out else np.zeros((0, 3, size, size), np.uint8)


def photo_pairs(kind: str = "edges", size: int = 64, split: str = "train", faces: bool = True,
                fetch: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Self-made translation pairs ``(source, target)`` uint8: ``edges`` -> photo
    (``[N, 3, s, s]`` both) or ``grey`` -> colour (``[N, 1, s, s]``, ``[N, 3, s, s]``).

    Photos: the CelebA faces' ``split`` (train 000001-000899, test 000900-000999) when ``faces``,
    then crops of ``sample_photos()`` (see ``photo_crops``). Deterministic; cached in
    ``paired/{kind}_{size}_{split}_{sources}.npz`` (``sources`` a hash of the photo list)."""
    if kind not in KINDS:
        raise UserError(f"unknown pair kind {kind!r} (known: {', '.join(KINDS)})")
    if split not in ("train", "test"):
        raise UserError(f"unknown split {split!r} (use train or test)")
    _check_size(size)
    photos = sample_photos()
    key = hashlib.sha256(repr((faces, [(n, p.shape, hashlib.sha256(p.tobytes()).hexdigest()[:12])
                                        for n, p in photos])).encode()).hexdigest()[:10]
    path = cache_dir() / "paired" / f"{kind}_{size}_{split}_{key}.npz"

    def make():
        parts = [load_faces(size, split, fetch=fetch)] if faces else []
        parts.append(torch.from_numpy(photo_crops(photos, size, split)))
        target = torch.cat(parts)
        if len(target) == 0:
            raise UserError("no photos to make pairs from (faces off and no sample photos found)")
        source = (edges_to_photo(target, channels=1) if kind == "edges" else grey_to_colour(target))[0]
        return {"source": source.numpy(), "target": target.numpy()}    # one channel stored; edges shown in three

    pairs = cached_arrays(path, make)
    source, target = torch.from_numpy(pairs["source"]), torch.from_numpy(pairs["target"])
    return (source.repeat(1, 3, 1, 1) if kind == "edges" else source), target
